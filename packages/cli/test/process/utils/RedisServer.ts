/**
 * A real `redis-server` for the `--redis` test: started on a free loopback port with a directory of its own, no
 * persistence, stopped (and its directory removed) when the scope closes.
 *
 * Not packages/redis/test/utils/RedisServer.ts: this package's tests compile with `rootDir: "."`
 * (tsconfig.test.json), which a relative import of another package's test folder breaks, and that starter also
 * brings an `ioredis` client, which this package does not depend on. This is its start and stop only.
 */
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import { type ChildProcess, spawn, spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"

export interface RedisServer {
  readonly port: number
  /** `redis://127.0.0.1:<port>`. */
  readonly url: string
}

/** A port nobody listens on now: the OS picks it, we let it go. */
const freePort: Effect.Effect<number> = Effect.async<number>((resume) => {
  const server = net.createServer()
  server.listen(0, "127.0.0.1", () => {
    const address = server.address()
    const port = typeof address === "object" && address !== null ? address.port : 0
    server.close(() => resume(Effect.succeed(port)))
  })
})

/** Whether the server answers `PING`. */
const answers = (port: number): Effect.Effect<boolean> =>
  Effect.async<boolean>((resume) => {
    const socket = net.connect({ port, host: "127.0.0.1" })
    const done = (ok: boolean) => {
      socket.destroy()
      resume(Effect.succeed(ok))
    }
    socket.setTimeout(500, () => done(false))
    socket.on("error", () => done(false))
    socket.on("connect", () => socket.write("PING\r\n"))
    socket.on("data", (data) => done(data.toString().includes("+PONG")))
    return Effect.sync(() => socket.destroy())
  })

const exited = (child: ChildProcess): Effect.Effect<void> =>
  Effect.async<void>((resume) => {
    if (child.exitCode !== null || child.signalCode !== null) return resume(Effect.void)
    child.once("exit", () => resume(Effect.void))
  })

/** Starts a server for the scope's life; a defect if redis-server is not installed or does not answer. */
export const make: Effect.Effect<RedisServer, never, Scope.Scope> = Effect.gen(function*() {
  if (spawnSync("redis-server", ["--version"], { stdio: "ignore" }).status !== 0) {
    return yield* Effect.dieMessage("redis-server is not installed: apt-get install -y redis-server (.ci/run does)")
  }
  const port = yield* freePort
  const dir = yield* Effect.acquireRelease(
    Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), "effect-inference-cli-redis-"))),
    (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
  )
  yield* Effect.acquireRelease(
    Effect.sync(() => {
      const child = spawn(
        "redis-server",
        ["--port", String(port), "--bind", "127.0.0.1", "--dir", dir, "--save", "", "--appendonly", "no"],
        { stdio: "ignore" }
      )
      const orphaned = () => child.kill("SIGKILL")
      process.once("exit", orphaned)
      child.once("exit", () => process.off("exit", orphaned))
      return child
    }),
    (child) =>
      Effect.suspend(() => {
        if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL")
        return exited(child)
      })
  )
  const deadline = Date.now() + 10_000
  while (!(yield* answers(port))) {
    if (Date.now() > deadline) return yield* Effect.dieMessage(`redis-server did not answer on port ${port}`)
    yield* Effect.sleep("20 millis")
  }
  return { port, url: `redis://127.0.0.1:${port}` }
})
