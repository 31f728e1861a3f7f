/**
 * A loopback server that answers HTTP requests with raw bytes (`Hostile.Answer`),
 * written straight to the TCP socket: nothing between it and the client checks
 * that they are HTTP at all. Each connection gets one answer, then the socket is
 * closed, reset or left open as the answer says; closing the scope destroys every
 * socket and the server.
 */
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import * as net from "node:net"
import type { Answer } from "./Hostile.js"

/** What the server saw of a request: enough to tell which answer it gets. */
export interface Request {
  /** Whether the body asked for a stream. */
  readonly stream: boolean
}

export interface RawServer {
  /** `http://127.0.0.1:<port>` */
  readonly url: string
  /** Requests answered so far. */
  readonly requests: () => number
}

const HEAD_END = Buffer.from("\r\n\r\n")

/** The request's head and body, once they have fully arrived; `undefined` until then. */
const complete = (buffered: Buffer): Request | undefined => {
  const end = buffered.indexOf(HEAD_END)
  if (end < 0) return undefined
  const head = buffered.subarray(0, end).toString("latin1")
  const body = buffered.subarray(end + HEAD_END.length)
  const length = /\r\ncontent-length:\s*(\d+)/i.exec(head)
  if (length !== null) {
    if (body.length < Number(length[1])) return undefined
  } else if (/\r\ntransfer-encoding:\s*chunked/i.test(head) && !body.subarray(-5).equals(Buffer.from("0\r\n\r\n"))) {
    return undefined
  }
  return { stream: body.includes("\"stream\":true") }
}

/** Serves `answer` on 127.0.0.1 at a free port until the scope closes. */
export const serve = (answer: (request: Request) => Answer): Effect.Effect<RawServer, never, Scope.Scope> =>
  Effect.map(
    Effect.acquireRelease(
      Effect.async<{ readonly server: net.Server; readonly sockets: Set<net.Socket>; readonly count: () => number }>(
        (resume) => {
          const sockets = new Set<net.Socket>()
          let count = 0
          const play = (socket: net.Socket, reply: Answer, index: number): void => {
            if (socket.destroyed) return
            if (index < reply.pieces.length) {
              socket.write(reply.pieces[index])
              if (reply.pace === 0) return play(socket, reply, index + 1)
              setTimeout(() => play(socket, reply, index + 1), reply.pace).unref()
              return
            }
            if (reply.end === "close") socket.end()
            else if (reply.end === "reset") socket.resetAndDestroy()
          }
          const server = net.createServer((socket) => {
            sockets.add(socket)
            socket.on("close", () => sockets.delete(socket))
            // The client may abort or reset at any point: a failed write is expected, not an error of the test.
            socket.on("error", () => {})
            let buffered = Buffer.alloc(0)
            let answered = false
            socket.on("data", (bytes) => {
              if (answered) return
              buffered = Buffer.concat([buffered, bytes])
              const request = complete(buffered)
              if (request === undefined) return
              answered = true
              count++
              play(socket, answer(request), 0)
            })
          })
          server.on("error", (error) => resume(Effect.die(error)))
          server.listen(0, "127.0.0.1", () => resume(Effect.succeed({ server, sockets, count: () => count })))
        }
      ),
      ({ server, sockets }) =>
        Effect.async<void>((resume) => {
          for (const socket of sockets) socket.destroy()
          server.close(() => resume(Effect.void))
        })
    ),
    ({ count, server }) => ({ url: `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`, requests: count })
  )
