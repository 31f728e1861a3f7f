import { assert, describe, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Logger from "effect/Logger"
import * as Redacted from "effect/Redacted"
import * as Stream from "effect/Stream"
import type { ChatCompletionChunk } from "../../src/ChatCompletionChunk.js"
import * as CircuitBreaker from "../../src/CircuitBreaker.js"
import * as InferenceClient from "../../src/InferenceClient.js"
import * as Environment from "../../src/internal/environment.js"
import * as request from "../../src/internal/request.js"
import type * as Slots from "../../src/internal/slots.js"
import * as streamFast from "../../src/internal/streamFast.js"
import * as UndiciHttpClient from "../../src/UndiciHttpClient.js"
import { failureOf, hello, MODEL } from "../utils/Client.js"
import { sseAnswer } from "../utils/FakeTransport.js"
import { Answer } from "../utils/Hostile.js"
import * as RawServer from "../utils/RawServer.js"

/** A whole 200 event stream, then the socket closed. */
const sseOk = (words: ReadonlyArray<string>): Answer => {
  const body = sseAnswer(words)
  return new Answer(
    "sse",
    [
      new TextEncoder().encode(
        `HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: ${
          Buffer.byteLength(body)
        }\r\n\r\n${body}`
      )
    ],
    0,
    "close"
  )
}

/** A 503 with an empty JSON error body, then the socket closed. */
const unavailable = new Answer(
  "503",
  [new TextEncoder().encode("HTTP/1.1 503 Service Unavailable\r\ncontent-length: 2\r\n\r\n{}")],
  0,
  "close"
)

const options = (url: string): InferenceClient.Options => ({
  apiKey: Redacted.make("fast-path-key"),
  baseUrl: `${url}/v1`,
  retry: { maxRetries: 2, baseDelay: "1 millis", jitter: false },
  maxConcurrency: 1,
  adaptiveConcurrency: { initial: 1, min: 1, max: 1 }
})

/**
 * One attempt through `streamFast.attempt` in `env`: which path ran (`"fused"`, with the response's status, or
 * `"general"`), and whether a fused attempt handed its holds over.
 */
const attemptIn = (env: Environment.Environment) =>
  Effect.gen(function*() {
    let kept: (() => Effect.Effect<void>) | undefined
    const path = yield* streamFast.attempt(
      env,
      env.direct!,
      { model: MODEL, attempt: 1, secret: env.secret, baseUrl: env.options.baseUrl },
      { duration: Duration.seconds(5), phase: "firstChunk" },
      env.direct!.shape(
        request.jsonBodyEither(request.streamBody(hello as never, MODEL, undefined)).pipe(
          (encoded) => encoded._tag === "Right" ? encoded.right : assert.fail("not encoded")
        )
      ),
      (response) => Effect.succeed(`fused ${response.status}`),
      (release) => {
        kept = release
      },
      Effect.succeed("general")
    )
    return { path, kept }
  })

const environment = (url: string) => Environment.make(options(url))

describe("streamFast", () => {
  it.live("takes the fused path when every policy is free, and gives the slot back when released", () =>
    Effect.gen(function*() {
      const server = yield* RawServer.serve(() => sseOk(["Hi"]))
      const env = yield* environment(server.url)
      // The breaker is made by the first call through the general path; until then the fused path does not see it.
      const before = yield* attemptIn(env)
      assert.strictEqual(before.path, "general")
      yield* env.breakers!.get(CircuitBreaker.key(env.options.baseUrl, MODEL))
      const { kept, path } = yield* attemptIn(env)
      assert.strictEqual(path, "fused 200")
      const slots = env.slots as Slots.Slots
      assert.strictEqual(slots.available, 0, "the slot is held until the stream ends")
      assert.strictEqual(env.adaptive!.limit(MODEL), 1)
      // While it is held, the next attempt finds the adaptive permit and the slot taken: the general path.
      const contended = yield* Effect.fork(attemptIn(env))
      yield* Effect.yieldNow()
      yield* kept!()
      const after = yield* contended.await
      assert.isTrue(Exit.isSuccess(after))
      assert.strictEqual(Exit.isSuccess(after) ? after.value.path : undefined, "general")
      assert.strictEqual(slots.available, 1, "the slot is back once released")
    }).pipe(Effect.provide(UndiciHttpClient.layer), Effect.scoped))

  it.live("falls back to the general path when the breaker is not closed", () =>
    Effect.gen(function*() {
      const server = yield* RawServer.serve(() => sseOk(["Hi"]))
      const env = yield* environment(server.url)
      const breaker = yield* env.breakers!.get(CircuitBreaker.key(env.options.baseUrl, MODEL))
      const fused = yield* attemptIn(env)
      assert.strictEqual(fused.path, "fused 200")
      yield* fused.kept!()
      yield* breaker.isolate
      assert.strictEqual((yield* attemptIn(env)).path, "general")
      // The slot and the adaptive permit the fused step took before it found the breaker open are back.
      assert.strictEqual((env.slots as Slots.Slots).available, 1)
      yield* breaker.reset
      assert.strictEqual((yield* attemptIn(env)).path, "fused 200")
    }).pipe(Effect.provide(UndiciHttpClient.layer), Effect.scoped))

  it.effect("falls back to the general path under the TestClock", () =>
    Effect.gen(function*() {
      const server = yield* RawServer.serve(() => sseOk(["Hi"]))
      const env = yield* environment(server.url)
      yield* env.breakers!.get(CircuitBreaker.key(env.options.baseUrl, MODEL))
      assert.strictEqual((yield* attemptIn(env)).path, "general")
    }).pipe(Effect.provide(UndiciHttpClient.layer), Effect.scoped))

  it.live(
    "a client's streams over UndiciHttpClient: the same chunks, the slot given back, retries and an open breaker",
    () =>
      Effect.gen(function*() {
        let requests = 0
        const server = yield* RawServer.serve(() => requests++ === 2 ? unavailable : sseOk(["Hello", " there"]))
        const breakers = yield* CircuitBreaker.makeRegistry()
        const client = yield* InferenceClient.make(options(server.url)).pipe(
          Effect.provideService(CircuitBreaker.Breakers, breakers)
        )
        const text = Chunk.reduce(
          "",
          (text: string, chunk: ChatCompletionChunk) => text + (chunk.choices[0]?.delta.content ?? "")
        )
        // The first stream makes the breaker; the next ones take the fused path. With one slot, each must give it
        // back, or the next would wait for ever.
        for (let i = 0; i < 2; i++) {
          assert.strictEqual(text(yield* Stream.runCollect(client.streamChatCompletion(hello))), "Hello there")
        }
        // A 503 on the fused path is retried, as on the general path.
        assert.strictEqual(text(yield* Stream.runCollect(client.streamChatCompletion(hello))), "Hello there")
        assert.strictEqual(requests, 4)
        // Left early: the slot is given back all the same.
        yield* Stream.runHead(client.streamChatCompletion(hello))
        yield* Stream.runDrain(client.streamChatCompletion(hello))
        // An isolated breaker refuses the stream, on the general path.
        const breaker = yield* breakers.get(CircuitBreaker.key(`${server.url}/v1`, MODEL))
        yield* breaker.isolate
        const refused = yield* Effect.exit(Stream.runDrain(client.streamChatCompletion(hello)))
        assert.strictEqual(failureOf(refused)._tag, "CircuitOpenError")
      }).pipe(
        Effect.provide(UndiciHttpClient.layer),
        Effect.provide(Logger.remove(Logger.defaultLogger)),
        Effect.scoped,
        Effect.timeout("20 seconds")
      )
  )
})
