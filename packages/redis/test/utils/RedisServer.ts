/**
 * A real `redis-server` for the tests: started on a free loopback port with a
 * directory of its own, stopped (and its directory removed) when the scope
 * closes. A test can stop it and start it again on the same port, or pause it
 * (SIGSTOP: connected, but answering nothing) to see what the stores do when
 * Redis goes away.
 */
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import { Redis } from "ioredis"
import { type ChildProcess, spawn, spawnSync } from "node:child_process"
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Os from "node:os"
import * as Path from "node:path"

export interface Options {
  /** Keep the data across a stop and a start (an append-only file, synced at every write). */
  readonly persistent?: boolean
  /** `requirepass`: clients must give it. */
  readonly password?: string
}

export interface RedisServer {
  readonly port: number
  /** `redis://127.0.0.1:<port>`, with the password if there is one. */
  readonly url: string
  /** Stops the server (SIGTERM) and waits for it to exit. */
  readonly stop: Effect.Effect<void>
  /** Starts it again on the same port, with the same directory, and waits until it answers. */
  readonly start: Effect.Effect<void>
  /** SIGSTOP: connections stay open and nothing is answered. */
  readonly pause: Effect.Effect<void>
  /** SIGCONT. */
  readonly resume: Effect.Effect<void>
  /** A plain client of the server, closed with the scope: to look at the keys the stores write. */
  readonly client: Effect.Effect<Redis, never, Scope.Scope>
}

export class Server extends Context.Tag("test/RedisServer")<Server, RedisServer>() {}

const binary = "redis-server"

const liveClock = Clock.make()

const installed = (): boolean => spawnSync(binary, ["--version"], { stdio: "ignore" }).status === 0

/** A port nobody listens on now: the OS picks it, we let it go. */
const freePort: Effect.Effect<number> = Effect.async<number>((resume) => {
  const server = Net.createServer()
  server.listen(0, "127.0.0.1", () => {
    const address = server.address()
    const port = typeof address === "object" && address !== null ? address.port : 0
    server.close(() => resume(Effect.succeed(port)))
  })
})

/** Whether the server answers `PING` (after `AUTH`, with a password). */
const answers = (port: number, password: string | undefined): Effect.Effect<boolean> =>
  Effect.async<boolean>((resume) => {
    const socket = Net.connect({ port, host: "127.0.0.1" })
    let reply = ""
    const done = (ok: boolean) => {
      socket.destroy()
      resume(Effect.succeed(ok))
    }
    socket.setTimeout(500, () => done(false))
    socket.on("error", () => done(false))
    socket.on("connect", () => socket.write(`${password === undefined ? "" : `AUTH ${password}\r\n`}PING\r\n`))
    socket.on("data", (data) => {
      reply += data.toString()
      if (reply.includes("+PONG")) done(true)
      else if (reply.includes("-")) done(false)
    })
    return Effect.sync(() => socket.destroy())
  })

const exited = (child: ChildProcess): Effect.Effect<void> =>
  Effect.async<void>((resume) => {
    if (child.exitCode !== null || child.signalCode !== null) return resume(Effect.void)
    child.once("exit", () => resume(Effect.void))
  })

/** Starts a server; stopped, and its directory removed, when the scope closes. */
export const make = (options: Options = {}): Effect.Effect<RedisServer, never, Scope.Scope> =>
  Effect.gen(function*() {
    if (!installed()) {
      return yield* Effect.dieMessage(
        "redis-server is not installed: apt-get install -y redis-server (.ci/run installs it)"
      )
    }
    const port = yield* freePort
    const dir = yield* Effect.acquireRelease(
      Effect.sync(() => Fs.mkdtempSync(Path.join(Os.tmpdir(), "effect-inference-redis-"))),
      (dir) => Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true }))
    )
    const args = [
      "--port",
      String(port),
      "--bind",
      "127.0.0.1",
      "--dir",
      dir,
      "--save",
      "",
      "--appendonly",
      options.persistent === true ? "yes" : "no",
      "--appendfsync",
      "always",
      ...(options.password === undefined ? [] : ["--requirepass", options.password])
    ]
    let child: ChildProcess | undefined
    const stop = Effect.suspend(() => {
      const running = child
      child = undefined
      if (running === undefined) return Effect.void
      running.kill("SIGCONT")
      running.kill("SIGTERM")
      return exited(running)
    })
    const start = Effect.suspend(() => {
      if (child !== undefined) return Effect.void
      const started = spawn(binary, args, { stdio: "ignore" })
      child = started
      // Should the scope never close (a test that timed out), the server still goes with this process.
      const orphaned = () => started.kill("SIGKILL")
      process.once("exit", orphaned)
      started.once("exit", () => process.off("exit", orphaned))
      return answers(port, options.password).pipe(
        Effect.filterOrFail((ok) => ok, () => "not yet"),
        Effect.retry(Schedule.spaced("20 millis").pipe(Schedule.upTo("10 seconds"))),
        Effect.orDieWith(() => new Error(`redis-server did not answer on port ${port}`)),
        Effect.asVoid,
        // Real waits, also under a TestClock.
        Effect.withClock(liveClock)
      )
    })
    yield* Effect.acquireRelease(start, () => stop)
    const url = `redis://${
      options.password === undefined ? "" : `:${encodeURIComponent(options.password)}@`
    }127.0.0.1:${port}`
    return {
      port,
      url,
      stop,
      start,
      pause: Effect.sync(() => child?.kill("SIGSTOP")),
      resume: Effect.sync(() => child?.kill("SIGCONT")),
      client: Effect.acquireRelease(
        Effect.sync(() => new Redis(url, { protocol: 2, maxRetriesPerRequest: 1 })),
        (redis) => Effect.sync(() => redis.disconnect())
      )
    }
  })

/** A server for a whole `describe` block (with `layer` from @effect/vitest). */
export const layer = (options: Options = {}): Layer.Layer<Server> => Layer.scoped(Server, make(options))
