/**
 * The policies of an attempt, through the client: the circuit breaker, the rate limits and the concurrency slot.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as CircuitBreaker from "../../src/CircuitBreaker.js"
import * as InferenceClient from "../../src/InferenceClient.js"
import { failureOf, hello, layer, MODEL, withClient } from "../utils/Client.js"
import * as Fake from "../utils/FakeTransport.js"

describe("InferenceClient", () => {
  describe("circuit breaker", () => {
    it.effect("after repeated service failures, calls fail fast with CircuitOpenError and send nothing", () =>
      Effect.gen(function*() {
        const fake = Fake.make([Fake.json(503, Fake.errorBody("The engine is currently overloaded"))])
        const errors = yield* Fake.runWithClock(
          withClient(
            fake,
            (client) => Effect.forEach(Array.from({ length: 4 }), () => Effect.flip(client.chatCompletion(hello))),
            {
              retry: false,
              circuitBreaker: { consecutiveFailures: 3, failureRate: false }
            }
          )
        ).pipe(Effect.flatten)
        assert.deepStrictEqual(errors.map((e) => e._tag), [
          "ServiceUnavailableError",
          "ServiceUnavailableError",
          "ServiceUnavailableError",
          "CircuitOpenError"
        ])
        assert.strictEqual(fake.requests.length, 3)
        const open = errors[3]
        if (open?._tag === "CircuitOpenError") {
          assert.strictEqual(open.model, MODEL)
          assert.strictEqual(open.breaker, `http://inference.test/v1 ${MODEL}`)
        }
      }))

    it.effect("retries stop at an open breaker (retry outside, breaker inside)", () =>
      Effect.gen(function*() {
        const fake = Fake.make([Fake.json(503, Fake.errorBody("busy"))])
        const exit = yield* Fake.runWithClock(
          withClient(fake, (client) => client.chatCompletion(hello), {
            retry: { maxRetries: 5, jitter: false },
            circuitBreaker: { consecutiveFailures: 2, failureRate: false }
          })
        )
        assert.strictEqual(failureOf(exit)._tag, "CircuitOpenError")
        assert.strictEqual(fake.requests.length, 2)
      }))

    it.effect("a CircuitBreaker.layer in context supplies the breakers: isolate one and its calls fail fast", () =>
      Effect.gen(function*() {
        const fake = Fake.make([Fake.completion()])
        const error = yield* Effect.gen(function*() {
          const breakers = yield* CircuitBreaker.Breakers
          const breaker = yield* breakers.get(CircuitBreaker.key("http://inference.test/v1", MODEL))
          yield* breaker.isolate
          const client = yield* InferenceClient.InferenceClient
          return yield* Effect.flip(client.chatCompletion(hello))
        }).pipe(
          Effect.provide(layer(fake)),
          Effect.provide(CircuitBreaker.layer())
        )
        assert.strictEqual(error._tag, "CircuitOpenError")
        assert.strictEqual(fake.requests.length, 0)
      }))
  })

  describe("rate limits", () => {
    it.effect("requests per interval: calls beyond the limit wait for the window (TestClock)", () =>
      Effect.gen(function*() {
        const fake = Fake.make(() => Fake.completion())
        const exit = yield* Fake.runWithClock(
          withClient(
            fake,
            (client) =>
              Effect.forEach(Array.from({ length: 5 }), () => client.chatCompletion(hello), { concurrency: 5 }),
            {
              rateLimit: { requests: { limit: 2, interval: "1 second" } }
            }
          )
        )
        assert.isTrue(Exit.isSuccess(exit))
        assert.deepStrictEqual(fake.requests.map((r) => r.at), [0, 0, 1000, 1000, 2000])
      }))

    it.effect("tokens per interval: an estimate is held while the call runs, then settled from usage", () =>
      Effect.gen(function*() {
        // each estimate (max_tokens 80 plus a 9-token prompt) is most of the 110-token limit; each answer takes 1 s
        // and reports 7 tokens, so the next call goes as soon as the one before it is settled
        const fake = Fake.make(() => Fake.delayed("1 second", () => Fake.completion()))
        const exit = yield* Fake.runWithClock(
          withClient(
            fake,
            (client) =>
              Effect.forEach(Array.from({ length: 3 }), () => client.chatCompletion({ ...hello, max_tokens: 80 }), {
                concurrency: 3
              }),
            { rateLimit: { tokens: { limit: 110, interval: "1 minute" } } }
          )
        )
        assert.isTrue(Exit.isSuccess(exit))
        assert.deepStrictEqual(fake.requests.map((r) => r.at), [0, 1000, 2000])
      }))
  })

  describe("concurrency", () => {
    it.effect("maxConcurrency bounds the requests in flight", () =>
      Effect.gen(function*() {
        const fake = Fake.make(() => Fake.delayed("1 second", () => Fake.completion()))
        const exit = yield* Fake.runWithClock(
          withClient(
            fake,
            (client) =>
              Effect.forEach(Array.from({ length: 7 }, () => hello), (request) => client.chatCompletion(request), {
                concurrency: 7
              }),
            { maxConcurrency: 2 }
          )
        )
        assert.isTrue(Exit.isSuccess(exit))
        assert.strictEqual(fake.requests.length, 7)
        assert.strictEqual(fake.maxInFlight(), 2)
      }))
  })
})
