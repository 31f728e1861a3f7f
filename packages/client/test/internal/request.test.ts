/**
 * Where a request is built: bodies, the call's checks before anything is sent, extraBody, and what logs and spans may show.
 */
import * as Headers from "@effect/platform/Headers"
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Stream from "effect/Stream"
import * as InferenceClient from "../../src/InferenceClient.js"
import type * as InferenceError from "../../src/InferenceError.js"
import * as ResponseCache from "../../src/ResponseCache.js"
import * as Capture from "../utils/Capture.js"
import { hello, layer, MODEL, SECRET, withClient } from "../utils/Client.js"
import * as Fake from "../utils/FakeTransport.js"

describe("InferenceClient", () => {
  describe("bodies JSON cannot hold", () => {
    it.effect("a BigInt in tool parameters fails with InvalidRequestError instead of throwing", () =>
      Effect.gen(function*() {
        const fake = Fake.make([Fake.completion()])
        const request = {
          ...hello,
          tools: [{ type: "function" as const, function: { name: "f", parameters: { limit: 1n } } }]
        }
        const error = yield* withClient(
          fake,
          (client) => Effect.flip(Effect.suspend(() => client.chatCompletion(request)))
        )
        assert.strictEqual(error._tag, "InvalidRequestError")
        assert.include(error.message, "JSON")
        assert.strictEqual(fake.requests.length, 0)
      }))
  })

  describe("validateRequest", () => {
    it.effect("accepts what chatCompletion sends and names the wrong field of what it refuses", () =>
      Effect.gen(function*() {
        const ok = yield* InferenceClient.validateRequest(hello)
        assert.strictEqual(ok.model, MODEL)
        const error = yield* Effect.flip(InferenceClient.validateRequest({ ...hello, max_token: 5 }))
        assert.strictEqual(error._tag, "InvalidRequestError")
        assert.strictEqual(error.path, "max_token")
      }))
  })

  describe("extraBody", () => {
    it.effect("its fields are sent in the body beside the checked request, for calls and streams", () =>
      Effect.gen(function*() {
        const fake = Fake.make((n) => n === 1 ? Fake.completion() : Fake.sse(Fake.sseAnswer([" a"])))
        const extraBody = { guided_choice: ["yes", "no"], temperature: 0.5 }
        yield* withClient(fake, (client) =>
          Effect.zipRight(
            client.chatCompletion(hello, { extraBody }),
            Stream.runDrain(client.streamChatCompletion(hello, { extraBody }))
          ))
        for (const request of fake.requests) {
          const body = request.body as Record<string, unknown>
          assert.deepStrictEqual(body.guided_choice, ["yes", "no"])
          assert.strictEqual(body.temperature, 0.5)
          assert.strictEqual(body.model, MODEL)
        }
        assert.deepStrictEqual(fake.requests.map((r) => (r.body as { stream: boolean }).stream), [false, true])
      }))

    for (const field of ["model", "messages", "stream"]) {
      it.effect(`it may not set ${field}: InvalidRequestError, nothing sent`, () =>
        Effect.gen(function*() {
          const fake = Fake.make(() => Fake.completion())
          const extraBody = { [field]: "x" }
          const errors = yield* withClient(fake, (client) =>
            Effect.all([
              Effect.flip(client.chatCompletion(hello, { extraBody })),
              Effect.flip(Stream.runCollect(client.streamChatCompletion(hello, { extraBody })))
            ]))
          for (const error of errors) {
            assert.strictEqual(error._tag, "InvalidRequestError")
            if (error._tag === "InvalidRequestError") assert.strictEqual(error.path, `extraBody.${field}`)
          }
          assert.strictEqual(fake.requests.length, 0)
        }))
    }

    it.effect("its fields are part of the cache key", () =>
      Effect.gen(function*() {
        const fake = Fake.make(() => Fake.completion())
        const cache = ResponseCache.layerMemory()
        const deterministic = { ...hello, temperature: 0 }
        yield* Effect.flatMap(InferenceClient.InferenceClient, (client) =>
          Effect.all([
            client.chatCompletion(deterministic, { extraBody: { top_k: 1 } }),
            client.chatCompletion(deterministic, { extraBody: { top_k: 1 } }),
            client.chatCompletion(deterministic, { extraBody: { top_k: 2 } })
          ])).pipe(Effect.provide(layer(fake).pipe(Layer.provide(cache))))
        assert.deepStrictEqual(fake.requests.map((r) => (r.body as { top_k: number }).top_k), [1, 2])
      }))
  })

  describe("secrets", () => {
    it.effect("the Authorization header stays redacted in spans even where an application emptied the redacted names", () =>
      Effect.gen(function*() {
        const capture = Capture.make()
        const fake = Fake.make([Fake.completion()])
        yield* Capture.withCapture(capture, withClient(fake, (c) => c.chatCompletion(hello))).pipe(
          Effect.locally(Headers.currentRedactedNames, [])
        )
        const http = capture.spans.find((s) => s.name.startsWith("http.client"))
        assert.isDefined(http)
        assert.notInclude(capture.dump(), SECRET)
      }))

    it.effect("the API key appears in no log line, error message, serialised error or span", () =>
      Effect.gen(function*() {
        const capture = Capture.make()
        const fake = Fake.make((n) => {
          switch (n % 5) {
            case 1:
              return Fake.json(401, Fake.errorBody(`Invalid key ${SECRET}`))
            case 2:
              return Fake.json(500, Fake.errorBody(`upstream said ${SECRET}`))
            case 3:
              return Fake.reset
            case 4:
              return Fake.text(200, `not json ${SECRET}`)
            default:
              return Fake.json(429, Fake.errorBody(`Concurrency limit reached for ${SECRET}`))
          }
        })
        const errors: Array<InferenceError.InferenceError> = []
        yield* Fake.runWithClock(
          Capture.withCapture(
            capture,
            withClient(
              fake,
              (client) =>
                Effect.forEach(Array.from({ length: 6 }, () => hello), (request) =>
                  client.chatCompletion(request).pipe(
                    Effect.tapError((e) => Effect.sync(() => errors.push(e))),
                    Effect.ignore
                  ))
            )
          )
        )
        assert.isAtLeast(errors.length, 3)
        assert.isAtLeast(capture.logs.length, 5, "failed attempts were logged")
        assert.isAtLeast(capture.spans.length, 1, "calls were traced")
        const tags = new Set(capture.logs.map((log) => log.annotations["tag"]))
        for (const tag of ["AuthenticationError", "ConnectionError", "ResponseDecodeError"] as const) {
          assert.isTrue(tags.has(tag))
        }
        for (const error of errors) {
          assert.notInclude(error.message, SECRET)
          assert.notInclude(JSON.stringify(error), SECRET)
          assert.notInclude(String(error), SECRET)
        }
        assert.notInclude(capture.dump(), SECRET)
        // the server's echo is kept, with the key cut out
        assert.isTrue(errors.some((e) => e.message.includes("Invalid key <redacted>")))
      }))

    it.effect("each failed attempt is logged at warning level with attempt, tag, status, request id and delay", () =>
      Effect.gen(function*() {
        const capture = Capture.make()
        const fake = Fake.make([
          Fake.json(503, Fake.errorBody("busy"), { "x-request-id": "req-1" }),
          Fake.completion()
        ])
        yield* Fake.runWithClock(Capture.withCapture(capture, withClient(fake, (c) => c.chatCompletion(hello))))
        const warnings = capture.logs.filter((log) => log.level === "WARN")
        assert.strictEqual(warnings.length, 1)
        const log = warnings[0]
        assert.deepInclude(log.annotations, {
          attempt: 1,
          tag: "ServiceUnavailableError",
          status: 503,
          requestId: "req-1",
          retryIn: "1s"
        })
      }))

    it.effect("with Effect's built-in tracer the client makes no spans and sends no trace headers", () =>
      Effect.gen(function*() {
        const fake = Fake.make([Fake.completion()])
        yield* withClient(fake, (c) => c.chatCompletion(hello))
        assert.notProperty(fake.requests[0].headers, "traceparent")
        assert.notProperty(fake.requests[0].headers, "b3")
        const traced = Fake.make([Fake.completion()])
        yield* Capture.withCapture(Capture.make(), withClient(traced, (c) => c.chatCompletion(hello)))
        assert.property(traced.requests[0].headers, "traceparent")
      }))

    it.effect("each call runs in a span with the model, attempts and outcome", () =>
      Effect.gen(function*() {
        const capture = Capture.make()
        const fake = Fake.make([Fake.json(500, Fake.errorBody("oops")), Fake.json(401, Fake.errorBody("no"))])
        yield* Fake.runWithClock(Capture.withCapture(capture, withClient(fake, (c) => c.chatCompletion(hello))))
        const span = capture.spans.find((s) => s.name === "InferenceClient.chatCompletion")
        assert.isDefined(span)
        assert.strictEqual(span?.attributes.get("inference.model"), MODEL)
        assert.strictEqual(span?.attributes.get("inference.attempts"), 2)
        assert.strictEqual(span?.attributes.get("inference.outcome"), "AuthenticationError")
        const http = capture.spans.filter((s) => s.name.startsWith("http.client"))
        assert.strictEqual(http.length, 2)
        for (const s of http) {
          assert.strictEqual(String(s.attributes.get("http.request.header.authorization")), "<redacted>")
        }
      }))
  })
})
