import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import { assert, describe, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as http from "node:http"
import type * as net from "node:net"
import * as InferenceClient from "../../src/InferenceClient.js"
import * as BoundedBody from "../../src/internal/boundedBody.js"
import * as Environment from "../../src/internal/environment.js"
import { deadlineFail } from "../../src/internal/timeout.js"
import * as UndiciHttpClient from "../../src/UndiciHttpClient.js"
import { hello } from "../utils/Client.js"
import { sseAnswer } from "../utils/FakeTransport.js"

interface Server {
  readonly url: string
  /** Connections accepted so far. */
  readonly connections: () => number
  /** Connections closed so far. */
  readonly closed: () => number
}

/** A loopback server answering every request with `answer`, closed with the scope. */
const serve = (
  answer: (response: http.ServerResponse) => void
): Effect.Effect<Server, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.async<{ readonly server: http.Server; readonly info: Server }>((resume) => {
      let connections = 0
      let closed = 0
      const sockets = new Set<net.Socket>()
      const server = http.createServer((request, response) => {
        request.resume()
        request.on("end", () => answer(response))
      })
      server.on("connection", (socket) => {
        connections++
        sockets.add(socket)
        socket.on("close", () => {
          closed++
          sockets.delete(socket)
        })
      })
      server.listen(0, "127.0.0.1", () => {
        const { port } = server.address() as net.AddressInfo
        resume(Effect.succeed({
          server,
          info: { url: `http://127.0.0.1:${port}`, connections: () => connections, closed: () => closed }
        }))
      })
    }),
    ({ server }) =>
      Effect.async<void>((resume) => {
        server.closeAllConnections()
        server.close(() => resume(Effect.void))
      })
  ).pipe(Effect.map(({ info }) => info))

const eventStream = { "content-type": "text/event-stream" }

/** The text of every read of `reader` until its end (or its failure). */
const readAll = (reader: BoundedBody.Reader) =>
  Effect.gen(function*() {
    const decoder = new TextDecoder()
    let text = ""
    while (true) {
      const read = yield* Effect.either(reader.read)
      if (Either.isLeft(read)) return { text, end: read.left }
      for (const bytes of read.right) text += decoder.decode(bytes, { stream: true })
    }
  })

/**
 * Sends a request to `url` over `UndiciHttpClient` and, after `wait`, takes its body over with the transport's own
 * reader.
 */
const readerOf = (url: string, wait: Duration.DurationInput = 0) =>
  Effect.gen(function*() {
    const client = yield* HttpClient.HttpClient
    const response = yield* client.execute(HttpClientRequest.get(url))
    const scope = yield* Effect.scope
    yield* Effect.addFinalizer(() => BoundedBody.discard(response))
    yield* Effect.sleep(wait)
    return yield* BoundedBody.reader(response, scope)
  })

const pause = (millis: number) => new Promise<void>((resolve) => setTimeout(resolve, millis))

describe("UndiciHttpClient's reader of a streamed body", () => {
  it.live("gives what came with the headers and every later read, in order, then the end", () =>
    Effect.gen(function*() {
      const server = yield* serve(async (response) => {
        response.writeHead(200, eventStream)
        response.write("data: one\n\n")
        await pause(20)
        response.write("data: two\n\n")
        await pause(20)
        response.end("data: three\n\n")
      })
      // The reader is taken after the first write has arrived, so that it went to the body's Node stream first.
      const reader = yield* readerOf(server.url, "10 millis")
      const { end, text } = yield* readAll(reader)
      assert.strictEqual(text, "data: one\n\ndata: two\n\ndata: three\n\n")
      assert.isTrue(Option.isNone(end))
      const again = yield* Effect.either(reader.read)
      assert.isTrue(Either.isLeft(again) && Option.isNone(again.left), "a read after the end gives the end again")
    }).pipe(Effect.scoped, Effect.provide(UndiciHttpClient.layer)))

  it.live("abort fails the read in progress and closes the connection", () =>
    Effect.gen(function*() {
      const server = yield* serve((response) => {
        response.writeHead(200, eventStream)
        response.write("data: one\n\n")
      })
      const reader = yield* readerOf(server.url)
      const first = yield* reader.read
      assert.isAbove(Array.from(first).length, 0)
      const waiting = yield* Effect.fork(Effect.either(reader.read))
      yield* Effect.sleep("20 millis")
      reader.abort()
      const read = yield* Fiber.join(waiting)
      assert.isTrue(Either.isLeft(read) && Option.isSome(read.left))
      const deadline = Date.now() + 2_000
      while (server.closed() < server.connections() && Date.now() < deadline) yield* Effect.sleep("10 millis")
      assert.isAbove(server.connections(), 0)
      assert.strictEqual(server.closed(), server.connections(), "the request's connection is closed")
    }).pipe(Effect.scoped, Effect.provide(UndiciHttpClient.layer)))

  it.live("streams read to their end leave their connection to the next request", () =>
    Effect.gen(function*() {
      const server = yield* serve((response) => {
        response.writeHead(200, eventStream)
        response.end(sseAnswer([" a", " b"]))
      })
      const client = yield* InferenceClient.make({ apiKey: Redacted.make("sk-test"), baseUrl: `${server.url}/v1` })
      for (let i = 0; i < 5; i++) {
        assert.strictEqual(yield* Stream.runCount(client.streamChatCompletion(hello)), 5)
      }
      // undici may open a second connection while the first goes back to its pool; none is closed, and they serve
      // every later stream.
      assert.strictEqual(server.closed(), 0)
      assert.isAtMost(server.connections(), 2)
    }).pipe(
      Effect.scoped,
      Effect.provide(Layer.merge(UndiciHttpClient.layer, Logger.remove(Logger.defaultLogger)))
    ))
})

class TimedOut {
  readonly _tag = "TimedOut"
}

/** `effect` bounded by an attempt's deadline of `millis`. */
const withDeadline = <A, E, R>(effect: Effect.Effect<A, E, R>, millis: number) =>
  deadlineFail(effect, { duration: Duration.millis(millis), onTimeout: () => new TimedOut() })

/** Waits (a real second at most) until the server has seen every connection it accepted closed. */
const allClosed = (server: Server) =>
  Effect.gen(function*() {
    const until = Date.now() + 2_000
    while (server.closed() < server.connections() && Date.now() < until) yield* Effect.sleep("10 millis")
    return server.connections() > 0 && server.closed() === server.connections()
  })

describe("an attempt's deadline over UndiciHttpClient (deadlineFail: a timer, no fiber)", () => {
  it.live("headers that never come: the request is stopped at the deadline and fails with the timeout", () =>
    Effect.gen(function*() {
      const server = yield* serve(() => {})
      const client = yield* HttpClient.HttpClient
      const started = Date.now()
      const result = yield* Effect.either(withDeadline(client.execute(HttpClientRequest.get(server.url)), 50))
      assert.isTrue(Either.isLeft(result) && result.left instanceof TimedOut, "fails with the timeout")
      assert.isBelow(Date.now() - started, 1_000)
      assert.isTrue(yield* allClosed(server), "the request's connection is closed")
    }).pipe(Effect.scoped, Effect.provide(UndiciHttpClient.layer)))

  it.live("a body that stalls after its headers: the read is stopped at the deadline", () =>
    Effect.gen(function*() {
      const server = yield* serve((response) => {
        response.writeHead(200, { "content-type": "application/json" })
        response.write("{\"partial\":")
      })
      const client = yield* HttpClient.HttpClient
      const result = yield* Effect.either(
        withDeadline(Effect.flatMap(client.execute(HttpClientRequest.get(server.url)), (r) => r.text), 50)
      )
      assert.isTrue(Either.isLeft(result) && result.left instanceof TimedOut, "fails with the timeout")
      assert.isTrue(yield* allClosed(server), "the request's connection is closed")
    }).pipe(Effect.scoped, Effect.provide(UndiciHttpClient.layer)))

  it.live("an answer before the deadline wins, and a passed deadline does not stop later requests of the fiber", () =>
    Effect.gen(function*() {
      let hang = true
      const server = yield* serve((response) => {
        if (hang) return
        response.writeHead(200, { "content-type": "text/plain" })
        response.end("ok")
      })
      const client = yield* HttpClient.HttpClient
      const get = Effect.flatMap(client.execute(HttpClientRequest.get(server.url)), (r) => r.text)
      assert.isTrue(Either.isLeft(yield* Effect.either(withDeadline(get, 30))), "the first one times out")
      hang = false
      // Unbounded, on the same fiber: the deadline that passed is gone from it.
      assert.strictEqual(yield* get, "ok")
      assert.strictEqual(yield* withDeadline(get, 100), "ok")
      // Its timer is cleared: nothing stops a later request once that deadline would have passed.
      yield* Effect.sleep("150 millis")
      assert.strictEqual(yield* get, "ok")
    }).pipe(Effect.scoped, Effect.provide(UndiciHttpClient.layer)))

  it.live("an error before the deadline is that error", () =>
    Effect.gen(function*() {
      const client = yield* HttpClient.HttpClient
      const result = yield* Effect.either(withDeadline(client.execute(HttpClientRequest.get("http://[bad")), 1_000))
      assert.isTrue(Either.isLeft(result) && result.left._tag === "RequestError")
    }).pipe(Effect.scoped, Effect.provide(UndiciHttpClient.layer)))

  it.live("a client over UndiciHttpClient bounds its attempts this way; over another transport, or wrapped, it forks", () =>
    Effect.gen(function*() {
      const options = { apiKey: Redacted.make("sk-test"), baseUrl: "http://127.0.0.1:1/v1" } as const
      const native = yield* Environment.make(options).pipe(Effect.provide(UndiciHttpClient.layer))
      assert.isTrue(native.deadline)
      const wrapped = yield* Environment.make({ ...options, transformClient: (c) => c }).pipe(
        Effect.provide(UndiciHttpClient.layer)
      )
      assert.isFalse(wrapped.deadline)
      const other = yield* Environment.make(options).pipe(Effect.provide(FetchHttpClient.layer))
      assert.isFalse(other.deadline)
    }))
})
