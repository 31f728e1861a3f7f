/**
 * The `effect-inference` command as a real OS process: `node --conditions=@effect-inference/source --import tsx
 * src/bin.ts …`, as `pnpm cli` runs it, with stdout and stderr on pipes (so stderr is not a terminal). Each process
 * is killed (SIGKILL) when its scope closes, and when this process exits should the scope never close.
 */
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import { type ChildProcess, spawn } from "node:child_process"
import * as path from "node:path"

/** The package's directory: node finds tsx from there. */
const root = path.resolve(__dirname, "..", "..", "..")

/**
 * This process's environment without what would configure the command behind the test's back: the W&B
 * settings (a test that wants a key sets one), Redis's, and node options (vitest's own loaders).
 */
const childEnv = (env: Readonly<Record<string, string>>): NodeJS.ProcessEnv => {
  const base = { ...process.env }
  for (const name of Object.keys(base)) {
    if (name.startsWith("WANDB_") || name.startsWith("REDIS_") || name === "NODE_OPTIONS") delete base[name]
  }
  return { ...base, ...env }
}

export interface Exited {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
  readonly stdout: string
  readonly stderr: string
  /** From the spawn to the exit. */
  readonly millis: number
}

export interface Running {
  readonly pid: number
  /** What it has printed so far. */
  readonly stdout: () => string
  readonly stderr: () => string
  readonly kill: (signal: NodeJS.Signals) => Effect.Effect<void>
  /** Waits for its exit. */
  readonly exited: Effect.Effect<Exited>
  /** Whether it has exited already. */
  readonly hasExited: () => boolean
}

export interface StartOptions {
  /** Added to the environment. */
  readonly env?: Readonly<Record<string, string>>
  /** node's own flags, before the program (`--max-old-space-size=…`). */
  readonly nodeFlags?: ReadonlyArray<string>
}

const waitExit = (child: ChildProcess): Effect.Effect<void> =>
  Effect.async<void>((resume) => {
    if (child.exitCode !== null || child.signalCode !== null) return resume(Effect.void)
    // "close", not "exit": by then stdout and stderr have been read to their end.
    child.once("close", () => resume(Effect.void))
  })

/** Starts `program` (a path relative to the package) with `args`; killed with the scope. */
export const startProgram = (
  program: string,
  args: ReadonlyArray<string>,
  options: StartOptions = {}
): Effect.Effect<Running, never, Scope.Scope> =>
  Effect.gen(function*() {
    const started = Date.now()
    let stdout = ""
    let stderr = ""
    let closed = false
    const child = yield* Effect.acquireRelease(
      Effect.sync(() => {
        const child = spawn(
          process.execPath,
          [...(options.nodeFlags ?? []), "--conditions=@effect-inference/source", "--import", "tsx", program, ...args],
          { cwd: root, stdio: ["ignore", "pipe", "pipe"], env: childEnv(options.env ?? {}) }
        )
        const orphaned = () => child.kill("SIGKILL")
        process.once("exit", orphaned)
        child.once("exit", () => process.off("exit", orphaned))
        return child
      }),
      (child) =>
        Effect.suspend(() => {
          if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL")
          return waitExit(child)
        })
    )
    child.stdout!.on("data", (chunk: Buffer) => stdout += chunk.toString())
    child.stderr!.on("data", (chunk: Buffer) => stderr += chunk.toString())
    child.once("close", () => closed = true)
    return {
      pid: child.pid!,
      stdout: () => stdout,
      stderr: () => stderr,
      kill: (signal) => Effect.sync(() => child.kill(signal)),
      exited: Effect.map(waitExit(child), () => ({
        code: child.exitCode,
        signal: child.signalCode,
        stdout,
        stderr,
        millis: Date.now() - started
      })),
      hasExited: () => closed || child.exitCode !== null || child.signalCode !== null
    }
  })

/** Starts `effect-inference <args>`; killed with the scope. */
export const start = (args: ReadonlyArray<string>, options: StartOptions = {}) =>
  startProgram("src/bin.ts", args, options)

/** Runs `effect-inference <args>` to its exit. */
export const run = (args: ReadonlyArray<string>, options: StartOptions = {}): Effect.Effect<Exited> =>
  Effect.scoped(Effect.flatMap(start(args, options), (running) => running.exited))

/** What to print when an assertion about a run fails. */
export const report = (exited: Exited): string =>
  `exit ${exited.code ?? exited.signal}\n--- stdout\n${exited.stdout}\n--- stderr\n${exited.stderr}`

/** Waits (polling every 10 ms) until `condition` holds; a defect naming `what` after `timeoutMillis`. */
export const eventually = <E, R>(what: string, condition: Effect.Effect<boolean, E, R>, timeoutMillis = 20_000) =>
  Effect.gen(function*() {
    const deadline = Date.now() + timeoutMillis
    while (!(yield* condition)) {
      if (Date.now() > deadline) return yield* Effect.dieMessage(`timed out waiting for ${what}`)
      yield* Effect.sleep("10 millis")
    }
  })

/** A figure of the summary: the first number after `label` on its line (0 when the line is not there). */
export const figure = (stdout: string, label: RegExp): number => {
  const match = new RegExp(`${label.source}[^\\n]*?([\\d,]+)`).exec(stdout)
  return match === null ? 0 : Number(match[1]!.replaceAll(",", ""))
}

/** A small seeded random number generator (mulberry32): the same delays for the same seed on every run. */
export const random = (seed: number) => {
  // Spread the seed first: mulberry32's first draws of 1, 2, 3 lie close together.
  let state = Math.imul(seed, 0x9e3779b1) >>> 0
  return (): number => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}
