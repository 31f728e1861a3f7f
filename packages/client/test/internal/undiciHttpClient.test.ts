import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import { assert, describe, it } from "@effect/vitest"
import type * as Duration from "effect/Duration"
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
