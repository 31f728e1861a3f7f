/**
 * The place for the benchmarks' child processes: a node process on a script of this package (its stdout line
 * by line, its stderr kept, a promise of its exit), the registry that lets a benchmark stop every child it
 * started when it fails or is interrupted, the simulator (`server.ts`: started, asked for its counts, given a
 * limit, stopped), the measured run's own side (it prints `RESULT <json>`) and the options on the command line.
 *
 * Scripts whose children differ in a way that matters spawn their own: `bench.ts`'s runner (`--expose-gc`,
 * no input, its last line read at `close`) and `slots.ts`'s children.
 */
import { type ChildProcess, spawn } from "node:child_process"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

const packageDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..")

// ---------------------------------------------------------------------------
// This process's options
// ---------------------------------------------------------------------------

const argv = process.argv.slice(2)

/** The value after `--<name>` on this process's command line, if it is there. */
export const option = (name: string): string | undefined => {
  const at = argv.indexOf(`--${name}`)
  return at === -1 ? undefined : argv[at + 1]
}

// ---------------------------------------------------------------------------
// Scripts and the registry
// ---------------------------------------------------------------------------

/** The children that have not exited yet, so that a benchmark that stops early leaves none behind. */
const running = new Set<ChildProcess>()

/** Adds a child spawned elsewhere (a `redis-server`) to those `stopChildren` stops. */
export const track = (child: ChildProcess): void => {
  running.add(child)
  child.on("exit", () => running.delete(child))
}

/** Sends `signal` to every child that has not exited: on a failure, an interrupt or the end of a run. */
export const stopChildren = (signal: NodeJS.Signals): void => {
  for (const child of running) child.kill(signal)
}

/** A node process on a script of this package. */
export interface Script {
  readonly process: ChildProcess
  /** Its exit code (`null` when a signal stopped it), once it has exited. */
  readonly exited: Promise<number | null>
  /** What it has written to stderr so far; always empty when its stderr is this process's. */
  readonly errors: () => string
}

export interface ScriptOptions {
  /** `"inherit"`: its stderr goes to this process's, as it comes, rather than being kept. */
  readonly stderr?: "pipe" | "inherit"
}

/**
 * Starts `node --conditions=@effect-inference/source --import tsx <args>` in this package; its stdout comes
 * line by line to `onLine`.
 */
export const spawnScript = (
  args: ReadonlyArray<string>,
  onLine: (line: string) => void,
  options: ScriptOptions = {}
): Script => {
  const child = spawn(process.execPath, ["--conditions=@effect-inference/source", "--import", "tsx", ...args], {
    cwd: packageDir,
    stdio: ["pipe", "pipe", options.stderr ?? "pipe"]
  })
  track(child)
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)))
  let errors = ""
  if (child.stderr !== null) {
    child.stderr.setEncoding("utf8")
    child.stderr.on("data", (text: string) => errors += text)
  }
  let buffered = ""
  child.stdout!.setEncoding("utf8")
  child.stdout!.on("data", (text: string) => {
    buffered += text
    const lines = buffered.split("\n")
    buffered = lines.pop()!
    lines.forEach(onLine)
  })
  return { process: child, exited, errors: () => errors }
}

/** Ends the script's input (which stops the simulator and any measured run) and waits for it; kills it after 5 s. */
export const stopScript = async (script: Script): Promise<void> => {
  script.process.stdin!.end()
  const timer = setTimeout(() => script.process.kill("SIGKILL"), 5_000)
  await script.exited
  clearTimeout(timer)
}

const wait = <A>(ms: number, value: A): Promise<A> => new Promise((resolve) => setTimeout(() => resolve(value), ms))

// ---------------------------------------------------------------------------
// The simulator
// ---------------------------------------------------------------------------

/** The simulator (`server.ts`) in a process of its own. */
export interface Simulator {
  readonly script: Script
  /** Its URL once it prints `READY <url>`; `undefined` if it exits first or has not printed it within 30 s. */
  readonly ready: Promise<string | undefined>
  /** Its chat requests so far by outcome (`STATS <json>`), or `undefined` if it gives none within 5 s. */
  readonly stats: () => Promise<Record<string, number> | undefined>
  /** Sets a model's limit of requests in flight; it prints `LIMIT <epoch ms> <model> <n>` when it has. */
  readonly limit: (model: string, n: number) => void
  /** Ends its input, which stops it; kills it after 5 s. */
  readonly stop: () => Promise<void>
}

export interface SimulatorOptions extends ScriptOptions {
  /** Every line it prints, `READY` and `STATS` included. */
  readonly onLine?: (line: string) => void
}

/** Starts the simulator with `args` (`--answer-tokens 20 --per-token 0 ...`, see server.ts). */
export const startSimulator = (args: ReadonlyArray<string>, options: SimulatorOptions = {}): Simulator => {
  let onReady: (url: string) => void = () => {}
  let onStats: (stats: Record<string, number>) => void = () => {}
  const printedReady = new Promise<string>((resolve) => onReady = resolve)
  const script = spawnScript(["src/server.ts", ...args], (line) => {
    if (line.startsWith("READY ")) onReady(line.slice("READY ".length))
    else if (line.startsWith("STATS ")) onStats(JSON.parse(line.slice("STATS ".length)) as Record<string, number>)
    options.onLine?.(line)
  }, options)
  let timer: ReturnType<typeof setTimeout> | undefined
  const ready = Promise.race([
    printedReady,
    script.exited.then(() => undefined),
    new Promise<undefined>((resolve) => {
      timer = setTimeout(() => resolve(undefined), 30_000)
    })
  ]).finally(() => clearTimeout(timer))
  return {
    script,
    ready,
    stats: () => {
      const stats = new Promise<Record<string, number>>((resolve) => onStats = resolve)
      script.process.stdin!.write("stats\n")
      return Promise.race([stats, wait(5_000, undefined)])
    },
    limit: (model, n) => script.process.stdin!.write(`limit ${model} ${n}\n`),
    stop: () => stopScript(script)
  }
}

// ---------------------------------------------------------------------------
// Measured runs
// ---------------------------------------------------------------------------

/**
 * The measured run's end: prints `RESULT <json>` of what `run` gives and exits 0, or its error on stderr and
 * exits 1. It stops with the suite (the end of its input): a run whose parent has gone has nobody to report to.
 */
export const reportResult = (run: () => Promise<unknown>): void => {
  process.stdin.on("end", () => process.exit(1))
  process.stdin.resume()
  run().then(
    (result) => {
      process.stdout.write(`RESULT ${JSON.stringify(result)}\n`)
      process.exit(0)
    },
    (error) => {
      process.stderr.write(`${String(error)}\n`)
      process.exit(1)
    }
  )
}
