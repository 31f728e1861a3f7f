/**
 * Child processes for the multi-process tests: a TypeScript program run by
 * node with tsx (the workspace's packages from their sources, as the package
 * scripts run them), given its configuration as its first stdin line (so that
 * no secret is on its command line), talking back in JSON lines on stdout.
 * Each child is killed (SIGKILL) when the scope closes, and when this process
 * exits should the scope never close, so that no test leaves one behind.
 */
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import type * as Scope from "effect/Scope"
import { type ChildProcess, spawn } from "node:child_process"
import * as Path from "node:path"

/** The package's directory: node finds tsx from there (the workspace's root `node_modules`). */
const root = Path.resolve(__dirname, "..", "..")

/**
 * This process's environment without what would configure a child behind the
 * test's back: the Redis settings (a child is told its server explicitly) and
 * node options (vitest's own loaders).
 */
const childEnv = (): NodeJS.ProcessEnv => {
  const env = { ...process.env }
  delete env.REDIS_URL
  delete env.REDIS_KEY_PREFIX
  delete env.NODE_OPTIONS
  return env
}

export interface Exited {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
}

export interface Child {
  readonly pid: number
  /** Writes one line to its stdin. */
  readonly send: (message: unknown) => Effect.Effect<void>
  /** Closes its stdin. */
  readonly end: Effect.Effect<void>
  /**
   * The next JSON line it printed; a defect, with what it wrote to stderr, if
   * none comes within `timeoutMillis` or it exits first.
   */
  readonly next: <A>(timeoutMillis?: number) => Effect.Effect<A>
  readonly kill: (signal: NodeJS.Signals) => Effect.Effect<void>
  /** Waits until it has exited. */
  readonly exited: Effect.Effect<Exited>
  /** Whether it has exited already. */
  readonly hasExited: Effect.Effect<Option.Option<Exited>>
  /** All it printed, on stdout and stderr: to look for what must never be there (a password). */
  readonly output: () => string
}

const waitExit = (child: ChildProcess): Effect.Effect<Exited> =>
  Effect.async<Exited>((resume) => {
    if (child.exitCode !== null || child.signalCode !== null) {
      return resume(Effect.succeed({ code: child.exitCode, signal: child.signalCode }))
    }
    child.once("exit", (code, signal) => resume(Effect.succeed({ code, signal })))
  })

/**
 * Starts `program` (a path relative to the package) and sends it `config` as
 * its first line. Killed with the scope.
 */
export const start = (program: string, config: unknown): Effect.Effect<Child, never, Scope.Scope> =>
  Effect.gen(function*() {
    const lines = yield* Queue.unbounded<Option.Option<unknown>>()
    let stdout = ""
    let stderr = ""
    const child = yield* Effect.acquireRelease(
      Effect.sync(() => {
        const started = spawn(
          process.execPath,
          ["--conditions=@effect-inference/source", "--import", "tsx", program],
          { cwd: root, stdio: ["pipe", "pipe", "pipe"], env: childEnv() }
        )
        const orphaned = () => started.kill("SIGKILL")
        process.once("exit", orphaned)
        started.once("exit", () => process.off("exit", orphaned))
        return started
      }),
      (child) =>
        Effect.suspend(() => {
          if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL")
          return Effect.asVoid(waitExit(child))
        })
    )
    let pending = ""
    child.stdout!.on("data", (chunk: Buffer) => {
      const text = chunk.toString()
      stdout += text
      pending += text
      let newline = pending.indexOf("\n")
      while (newline >= 0) {
        const line = pending.slice(0, newline).trim()
        pending = pending.slice(newline + 1)
        newline = pending.indexOf("\n")
        if (!line.startsWith("{")) continue
        try {
          Queue.unsafeOffer(lines, Option.some(JSON.parse(line) as unknown))
        } catch {
          // not one of its messages
        }
      }
    })
    child.stderr!.on("data", (chunk: Buffer) => stderr += chunk.toString())
    child.once("close", () => Queue.unsafeOffer(lines, Option.none()))
    // A child that died takes its stdin with it: a write then is an EPIPE to ignore, not a crash of the test.
    child.stdin!.on("error", () => {})
    const send = (message: unknown) =>
      Effect.sync(() => {
        if (child.stdin!.writable) child.stdin!.write(`${JSON.stringify(message)}\n`)
      })
    yield* send(config)
    const describe = () =>
      `process ${child.pid} (${program}): exit ${child.exitCode ?? child.signalCode ?? "none yet"}\n${stderr}`
    return {
      pid: child.pid!,
      send,
      end: Effect.sync(() => child.stdin!.end()),
      next: <A>(timeoutMillis = 30_000) =>
        Queue.take(lines).pipe(
          Effect.timeoutFail({ duration: timeoutMillis, onTimeout: () => "timed out" }),
          Effect.flatMap((line) =>
            Option.isSome(line)
              ? Effect.succeed(line.value as A)
              : Effect.zipRight(Queue.offer(lines, line), Effect.fail("exited"))
          ),
          Effect.catchAll((why) => Effect.dieMessage(`no message from ${describe()} (${why})`))
        ),
      kill: (signal) => Effect.sync(() => child.kill(signal)),
      exited: waitExit(child),
      hasExited: Effect.sync(() =>
        child.exitCode === null && child.signalCode === null
          ? Option.none()
          : Option.some({ code: child.exitCode, signal: child.signalCode })
      ),
      output: () => stdout + stderr
    }
  })
