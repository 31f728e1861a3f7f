/**
 * Where a call moves on to another model, and which failures move it.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Stream from "effect/Stream"
import * as InferenceClient from "../../src/InferenceClient.js"
import { failureOf, hello, MODEL, testOptions, withClient } from "../utils/Client.js"
import * as Fake from "../utils/FakeTransport.js"
import { refusesEach } from "../utils/Options.js"

describe("InferenceClient", () => {
  describe("fallback", () => {
    it.effect("falls back in order when a model fails after its retries; the completion names who answered", () =>
      Effect.gen(function*() {
        const fake = Fake.make((
          n
        ) => (n <= 4 + 4
          ? Fake.json(503, Fake.errorBody("busy"))
          : Fake.json(200, Fake.completionBody("from c", "c/model")))
        )
        const exit = yield* Fake.runWithClock(
          withClient(fake, (client) => client.chatCompletion(hello), {
            fallback: ["b/model", "c/model"],
            retry: { maxRetries: 3, jitter: false },
            circuitBreaker: false
          })
        )
        assert.isTrue(Exit.isSuccess(exit))
        if (Exit.isSuccess(exit)) assert.strictEqual(exit.value.model, "c/model")
        const models = fake.requests.map((r) => (r.body as { model: string }).model)
        assert.deepStrictEqual(models, [...Array(4).fill(MODEL), ...Array(4).fill("b/model"), "c/model"])
      }))

    it.effect("an open breaker sends the call to the fallback at once", () =>
      Effect.gen(function*() {
        const fake = Fake.make((
          n
        ) => (n === 1 ? Fake.json(503, Fake.errorBody("busy")) : Fake.json(200, Fake.completionBody("ok", "b/model"))))
        const models = yield* withClient(fake, (client) =>
          Effect.forEach(Array.from({ length: 3 }), () =>
            Effect.map(client.chatCompletion(hello), (c) => c.model)), {
          fallback: ["b/model"],
          retry: false,
          circuitBreaker: { consecutiveFailures: 1, failureRate: false }
        })
        // call 1: primary 503 (opens its breaker) → b; calls 2 and 3: primary open, straight to b
        assert.deepStrictEqual(models, ["b/model", "b/model", "b/model"])
        assert.deepStrictEqual(
          fake.requests.map((r) =>
            (r.body as { model: string }).model
          ),
          [MODEL, "b/model", "b/model", "b/model"]
        )
      }))

    it.effect("a non-retryable error does not fall back", () =>
      Effect.gen(function*() {
        const fake = Fake.make([Fake.json(401, Fake.errorBody("Authentication failed"))])
        const error = yield* Effect.flip(
          withClient(fake, (client) => client.chatCompletion(hello), { fallback: ["b/model"], retry: false })
        )
        assert.strictEqual(error._tag, "AuthenticationError")
        assert.strictEqual(fake.requests.length, 1)
      }))

    it.effect("totalTimeout bounds the whole call, fallback models included", () =>
      Effect.gen(function*() {
        const fake = Fake.make([Fake.hang])
        const exit = yield* Fake.runWithClock(
          withClient(fake, (client) => client.chatCompletion(hello), {
            fallback: ["b/model", "c/model"],
            retry: false,
            timeout: "10 seconds",
            totalTimeout: "15 seconds"
          })
        )
        const error = failureOf(exit)
        assert.strictEqual(error._tag, "TimeoutError")
        if (error._tag === "TimeoutError") {
          assert.strictEqual(error.phase, "total")
          assert.strictEqual(error.model, "b/model")
          assert.strictEqual(error.attempts, 2)
        }
        assert.deepStrictEqual(fake.requests.map((r) => r.at), [0, 10_000])
      }))

    it.effect("a stream falls back before its first content", () =>
      Effect.gen(function*() {
        const fake = Fake.make([Fake.json(503, Fake.errorBody("busy")), Fake.body(Fake.reads(Fake.sseAnswer([" hi"])))])
        const chunks = yield* withClient(fake, (client) => Stream.runCollect(client.streamChatCompletion(hello)), {
          fallback: ["b/model"],
          retry: false
        })
        assert.isAbove(Chunk.size(chunks), 0)
        assert.deepStrictEqual(fake.requests.map((r) => (r.body as { model: string }).model), [MODEL, "b/model"])
      }))
  })

  describe("fallbackOn", () => {
    const retired = Fake.json(404, Fake.errorBody("The requested resource was not found"))
    const fromB = Fake.json(200, Fake.completionBody("from b", "b/model"))

    it.effect("by default a 404 does not fall back: a retired or misspelt model is reported", () =>
      Effect.gen(function*() {
        const fake = Fake.make([retired, fromB])
        const error = yield* Effect.flip(
          withClient(fake, (client) => client.chatCompletion(hello), { fallback: ["b/model"], retry: false })
        )
        assert.strictEqual(error._tag, "NotFoundError")
        assert.strictEqual(fake.requests.length, 1)
      }))

    it.effect("with NotFoundError listed, a retired model falls back, for calls and streams", () =>
      Effect.gen(function*() {
        const fake = Fake.make((n) => n % 2 === 1 ? retired : n === 2 ? fromB : Fake.sse(Fake.sseAnswer([" b"])))
        const options = {
          fallback: ["b/model"],
          fallbackOn: [...InferenceClient.DEFAULT_FALLBACK_ON, "NotFoundError" as const],
          retry: false as const
        }
        const [completion, chunks] = yield* withClient(
          fake,
          (client) => Effect.all([client.chatCompletion(hello), Stream.runCollect(client.streamChatCompletion(hello))]),
          options
        )
        assert.strictEqual(completion.model, "b/model")
        assert.isAbove(Chunk.size(chunks), 0)
        assert.deepStrictEqual(
          fake.requests.map((r) => (r.body as { model: string }).model),
          [MODEL, "b/model", MODEL, "b/model"]
        )
      }))

    it.effect("a predicate decides which failures fall back", () =>
      Effect.gen(function*() {
        const fake = Fake.make([Fake.json(503, Fake.errorBody("busy")), fromB])
        const error = yield* Effect.flip(
          withClient(fake, (client) => client.chatCompletion(hello), {
            fallback: ["b/model"],
            fallbackOn: (e) => e._tag === "NotFoundError",
            retry: false
          })
        )
        assert.strictEqual(error._tag, "ServiceUnavailableError")
        assert.strictEqual(fake.requests.length, 1)
      }))

    refusesEach(
      (options: Partial<InferenceClient.Options>) =>
        Effect.provide(InferenceClient.make({ ...testOptions, ...options }), Fake.make([]).layer),
      [
        [
          "a fallbackOn tag that is no error",
          { fallbackOn: ["retryable", "NotFound" as "NotFoundError"] },
          "fallbackOn"
        ],
        ["a fallbackOn that is neither a list nor a function", {
          fallbackOn: "retryable" as unknown as InferenceClient.FallbackOn
        }, "fallbackOn"]
      ]
    )
  })
})
