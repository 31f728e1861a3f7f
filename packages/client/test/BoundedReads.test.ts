/**
 * A server can send more than any client should read: an endless 200, an error
 * page of 400 MB, a stream of role-only chunks. The client reads each body up to
 * its bound (`maxResponseBytes`, `maxErrorBodyBytes`, `maxBytesBeforeFirstOutput`)
 * and then closes the connection: the bytes the server manages to write stay near
 * the bound, whatever the transport.
 */
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import type * as HttpClient from "@effect/platform/HttpClient"
import type * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import { assert, describe, it } from "@effect/vitest"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as Stream from "effect/Stream"
import * as InferenceClient from "../src/InferenceClient.js"
import * as BoundedBody from "../src/internal/boundedBody.js"
import * as UndiciHttpClient from "../src/UndiciHttpClient.js"
import { hello, testOptions } from "./utils/Client.js"
import * as EndlessServer from "./utils/EndlessServer.js"
import { chunkBody, completionBody, sseEvent } from "./utils/FakeTransport.js"
import { refusesEach } from "./utils/Options.js"

const MiB = 1024 * 1024
/** What can be in flight between a server and a client that stopped reading: socket buffers on both sides and the
 * transport's own. Loopback on Linux autotunes its buffers to a few MiB. */
const SLACK = 16 * MiB
/** What the servers try to send: far more than any bound, so that a client that drains shows. */
const ATTEMPTED = 400 * MiB

const transports: ReadonlyArray<readonly [string, Layer.Layer<HttpClient.HttpClient>]> = [
  ["UndiciHttpClient", UndiciHttpClient.layer],
  ["FetchHttpClient", FetchHttpClient.layer],
  ["NodeHttpClient", NodeHttpClient.layer]
]

/** A client of `server` over `transport`; retries on, so that a test can see a failure is not retried. */
const withClient = <A, E>(
  server: EndlessServer.EndlessServer,
  transport: Layer.Layer<HttpClient.HttpClient>,
  options: Partial<InferenceClient.Options>,
  f: (client: InferenceClient.InferenceClient.Service) => Effect.Effect<A, E>
) =>
  Effect.provide(
    Effect.flatMap(InferenceClient.InferenceClient, f),
    InferenceClient.layer({
      ...testOptions,
      baseUrl: server.url,
      retry: { maxRetries: 2, baseDelay: "1 millis", jitter: false },
      ...options
    }).pipe(Layer.provide(transport), Layer.provide(Logger.remove(Logger.defaultLogger)))
  )

/** Waits (for real, briefly) for the server to see every response end, then reads what it wrote. */
const writtenOnceSettled = (server: EndlessServer.EndlessServer) =>
  Effect.as(
    Effect.timeout(Effect.promise(() => server.settled()), "5 seconds").pipe(Effect.orDie),
    server.written()
  )

const roleOnly = sseEvent(chunkBody({ role: "assistant", content: "" }))

describe("bounded reads", () => {
  for (const [name, transport] of transports) {
    describe(name, () => {
      it.live(
        "an endless 200 ends with ResponseDecodeError (too large, maxResponseBytes), not retried",
        () =>
          Effect.scoped(Effect.gen(function*() {
            const server = yield* EndlessServer.make({
              status: 200,
              headers: { "content-type": "application/json" },
              head: "{\"id\":\"",
              repeat: "x".repeat(64 * 1024),
              total: ATTEMPTED
            })
            const error = yield* withClient(
              server,
              transport,
              { maxResponseBytes: MiB },
              (client) => Effect.flip(client.chatCompletion(hello))
            )
            assert.strictEqual(error._tag, "ResponseDecodeError")
            assert.include(error.message, "too large")
            assert.include(error.message, "maxResponseBytes")
            assert.strictEqual(server.requests(), 1, "not retried")
            const written = yield* writtenOnceSettled(server)
            assert.isBelow(written, MiB + SLACK, `the server wrote ${written} bytes`)
          })),
        30_000
      )

      it.live(
        "a 400 MB error body: classified by its status from its first bytes, the rest never read",
        () =>
          Effect.scoped(Effect.gen(function*() {
            const server = yield* EndlessServer.make({
              status: 400,
              headers: { "content-type": "application/json" },
              head: "{\"error\":{\"message\":\"max_tokens is too large\",\"type\":\"invalid_request_error\",\"pad\":\"",
              repeat: "y".repeat(64 * 1024),
              total: ATTEMPTED
            })
            const error = yield* withClient(
              server,
              transport,
              {},
              (client) => Effect.flip(client.chatCompletion(hello))
            )
            assert.strictEqual(error._tag, "BadRequestError")
            assert.strictEqual("status" in error ? error.status : undefined, 400)
            // The body is cut off, so it is not JSON any more: its first characters are the message.
            assert.include(error.message, "max_tokens is too large")
            const written = yield* writtenOnceSettled(server)
            assert.isBelow(written, 64 * 1024 + SLACK, `the server wrote ${written} bytes`)
          })),
        30_000
      )

      it.live(
        "a stream of role-only chunks ends with ResponseDecodeError (too large, maxBytesBeforeFirstOutput)",
        () =>
          Effect.scoped(Effect.gen(function*() {
            const server = yield* EndlessServer.make({
              status: 200,
              headers: { "content-type": "text/event-stream" },
              repeat: roleOnly.repeat(Math.ceil(64 * 1024 / roleOnly.length)),
              total: ATTEMPTED
            })
            const error = yield* withClient(
              server,
              transport,
              { maxBytesBeforeFirstOutput: 256 * 1024 },
              (client) => Effect.flip(Stream.runDrain(client.streamChatCompletion(hello)))
            )
            assert.strictEqual(error._tag, "ResponseDecodeError")
            assert.include(error.message, "too large")
            assert.include(error.message, "maxBytesBeforeFirstOutput")
            assert.strictEqual(server.requests(), 1, "not retried")
            const written = yield* writtenOnceSettled(server)
            assert.isBelow(written, 256 * 1024 + SLACK, `the server wrote ${written} bytes`)
          })),
        30_000
      )
    })
  }

  it.live(
    "a Content-Length over maxResponseBytes is refused before the body is read",
    () =>
      Effect.scoped(Effect.gen(function*() {
        const body = JSON.stringify(completionBody("x".repeat(4 * MiB)))
        const server = yield* EndlessServer.make({
          status: 200,
          headers: { "content-type": "application/json", "content-length": String(body.length) },
          repeat: body,
          total: body.length
        })
        const error = yield* withClient(
          server,
          UndiciHttpClient.layer,
          { maxResponseBytes: MiB },
          (client) => Effect.flip(client.chatCompletion(hello))
        )
        assert.strictEqual(error._tag, "ResponseDecodeError")
        assert.include(error.message, "too large")
        assert.include(error.message, `${body.length} bytes`)
      })),
    30_000
  )

  it.live("a body within the bounds is read whole, over each transport", () =>
    Effect.scoped(Effect.gen(function*() {
      const body = JSON.stringify(completionBody("y".repeat(200 * 1024)))
      const server = yield* EndlessServer.make({
        status: 200,
        headers: { "content-type": "application/json" },
        repeat: body,
        total: body.length
      })
      for (const [, transport] of transports) {
        const completion = yield* withClient(server, transport, { maxResponseBytes: body.length }, (client) =>
          client.chatCompletion(hello))
        assert.strictEqual(completion.choices[0]?.message.content, "y".repeat(200 * 1024))
      }
    })), 30_000)
})

describe("the options", () => {
  refusesEach<Partial<InferenceClient.Options>>(
    (options) => Effect.provide(InferenceClient.make({ ...testOptions, ...options }), FetchHttpClient.layer),
    [
      ["maxResponseBytes: 0", { maxResponseBytes: 0 }, "maxResponseBytes must be a whole number"],
      ["maxErrorBodyBytes: 1.5", { maxErrorBodyBytes: 1.5 }, "maxErrorBodyBytes must be a whole number"],
      [
        "maxBytesBeforeFirstOutput: -1",
        { maxBytesBeforeFirstOutput: -1 },
        "maxBytesBeforeFirstOutput must be a whole number"
      ],
      ["maxResponseBytes: Infinity", { maxResponseBytes: Infinity }, "maxResponseBytes must be a whole number"]
    ]
  )
})

/** A response whose transport lets go of it itself, recording when it is asked to and holding until `gone`. */
const nativeResponse = (gone: Deferred.Deferred<void>, discarded: { count: number }) => {
  const response = {
    [BoundedBody.readBounded]: () => Effect.never,
    [BoundedBody.discardResponse]: Effect.zipRight(
      Effect.sync(() => discarded.count++),
      Deferred.await(gone)
    )
  }
  return response as unknown as HttpClientResponse.HttpClientResponse
}

describe("a response the client stops using", () => {
  it.live("interrupted while its body is read: let go of before the interruption completes", () =>
    Effect.gen(function*() {
      const gone = yield* Deferred.make<void>()
      const discarded = { count: 0 }
      const fiber = yield* Effect.fork(
        BoundedBody.withResponse(Effect.succeed(nativeResponse(gone, discarded)), () => Effect.never)
      )
      yield* Effect.sleep("10 millis")
      const interruption = yield* Effect.fork(Fiber.interrupt(fiber))
      yield* Effect.sleep("10 millis")
      assert.strictEqual(discarded.count, 1)
      assert.isTrue(interruption.unsafePoll() === null, "the interruption waits until the transport let go")
      yield* Deferred.succeed(gone, undefined)
      assert.isTrue(Exit.isInterrupted(yield* Fiber.join(interruption)))
    }))
})
