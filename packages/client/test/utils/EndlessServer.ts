/**
 * A loopback HTTP server that sends more than any client should read (an
 * endless 200, a 400 MB error page, a stream of role-only chunks) and counts the
 * bytes it managed to hand to the socket, so that a test can check the client
 * stopped reading near its bound and closed the connection instead of draining it.
 */
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import * as http from "node:http"
import type { AddressInfo } from "node:net"

export interface Plan {
  readonly status: number
  readonly headers: Readonly<Record<string, string>>
  /** Sent first, whole. */
  readonly head?: string | undefined
  /** Sent again and again after `head` until `total` bytes in all, or until the client goes away. */
  readonly repeat: string
  readonly total: number
}

export interface EndlessServer {
  readonly url: string
  /** Bytes handed to the socket (their write callbacks fired without an error), over every request. */
  readonly written: () => number
  readonly requests: () => number
  /** Resolves once the server has seen every response it started end (the client closed it, or it was all sent). */
  readonly settled: () => Promise<void>
}

/** Starts the server for the life of the scope. */
export const make = (plan: Plan): Effect.Effect<EndlessServer, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.async<{ readonly server: http.Server; readonly endless: EndlessServer }>((resume) => {
      let written = 0
      let requests = 0
      let open = 0
      let waiting: Array<() => void> = []
      const ended = () => {
        open--
        if (open === 0) {
          for (const resolve of waiting) resolve()
          waiting = []
        }
      }
      const server = http.createServer((req, res) => {
        requests++
        open++
        res.on("close", ended)
        req.resume()
        req.on("end", () => {
          res.writeHead(plan.status, plan.headers)
          const chunk = Buffer.from(plan.repeat)
          let sent = 0
          const send = (data: Buffer) => {
            sent += data.length
            return res.write(data, (error) => {
              if (error === undefined || error === null) written += data.length
            })
          }
          if (plan.head !== undefined) send(Buffer.from(plan.head))
          const pump = () => {
            while (!res.destroyed && sent < plan.total) {
              if (!send(chunk)) return void res.once("drain", pump)
            }
            if (!res.destroyed) res.end()
          }
          pump()
        })
      })
      server.listen(0, "127.0.0.1", () => {
        const port = (server.address() as AddressInfo).port
        resume(Effect.succeed({
          server,
          endless: {
            url: `http://127.0.0.1:${port}/v1`,
            written: () => written,
            requests: () => requests,
            settled: () => open === 0 ? Promise.resolve() : new Promise((resolve) => waiting.push(resolve))
          }
        }))
      })
    }),
    ({ server }) =>
      Effect.async<void>((resume) => {
        server.closeAllConnections()
        server.close(() => resume(Effect.void))
      })
  ).pipe(Effect.map(({ endless }) => endless))
