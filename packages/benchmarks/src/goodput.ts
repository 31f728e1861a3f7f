/**
 * Goodput under a concurrency limit the client is not told. W&B Inference limits the requests in flight per
 * project and model without publishing the numbers, and answers more with a 429. Against the simulator, with a
 * per-model limit L of 1, 8 and 64, and one that drops from 32 to 8 halfway, each client makes `--calls` chat
 * calls of 200 ms, launched with `Effect.forEach(…, { concurrency: 256 })` (the SDK: `Promise.all` of as many
 * `limit(() => …)` of `p-limit(64)`, how it is used today). Prints a table per case: completed calls per second
 * against the ideal L / 200 ms, the share of requests answered 429 (from the simulator's log: every request,
 * retries included) and the p50/p99 latency of the calls that succeeded, for
 * - the client with its defaults (adaptive concurrency),
 * - the client with `{ maxConcurrency: 64, adaptiveConcurrency: false }`,
 * - the `openai` SDK with its defaults under `p-limit(64)`.
 * The goal, marked per row: at least 90% of the ideal with at most 3% of requests answered 429.
 *
 *   pnpm --filter @effect-inference/benchmarks goodput [--calls 2000] [--cases 1,8,64,32-8]
 *     [--clients adaptive,fixed,openai] [--timeout <s>]
 *
 * Each (case, client) run has a fresh simulator in a process of its own (`server.ts`) and the client in another
 * (this file with `--run`), so neither's CPU time shows in the other's latencies; a run that fails shows its
 * error in its row and the others go on. A run is stopped after `--timeout` seconds (default twice the ideal
 * time plus a minute). At L = 1 the default 2,000 calls take 400 s a client at best: use `--calls 200` to try.
 */
import { InferenceClient } from "@effect-inference/client"
import * as UndiciHttpClient from "@effect-inference/client/UndiciHttpClient"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as os from "node:os"
import OpenAI from "openai"
import pLimit from "p-limit"
import { option, reportResult, spawnScript, startSimulator, stopChildren } from "./processes.js"

const API_KEY = "bench-key"
const MODEL = "meta-llama/Llama-3.1-8B-Instruct"
const LATENCY_MS = 200
const CALLER_CONCURRENCY = 256
const SDK_CONCURRENCY = 64

const body = {
  model: MODEL,
  messages: [{ role: "user" as const, content: "Say something short about goodput." }],
  max_tokens: 20
}

// ---------------------------------------------------------------------------
// The clients
// ---------------------------------------------------------------------------

const clientNames = ["adaptive", "fixed", "openai"] as const
type ClientName = typeof clientNames[number]

const clientLabels: Record<ClientName, string> = {
  adaptive: "client, defaults (adaptive concurrency)",
  fixed: "client, `maxConcurrency: 64, adaptiveConcurrency: false`",
  openai: "`openai` SDK under `p-limit(64)`"
}

/** The client's options per row, beside its key and the simulator's URL. */
const clientOptions: Record<Exclude<ClientName, "openai">, Partial<InferenceClient.Options>> = {
  adaptive: {},
  fixed: { maxConcurrency: 64, adaptiveConcurrency: false }
}

// ---------------------------------------------------------------------------
// One run (`--run <client>`): the calls, in this process
// ---------------------------------------------------------------------------

/** What one run prints, as `RESULT <json>`. */
interface RunResult {
  readonly calls: number
  readonly ok: number
  /** Failed calls by error tag (the client's `_tag`, the SDK's error class). */
  readonly failures: Readonly<Record<string, number>>
  /** Epoch milliseconds, to place the limit's change between them. */
  readonly startedAt: number
  readonly endedAt: number
  readonly wallMs: number
  /** Of the calls that succeeded, in ms. */
  readonly p50: number | null
  readonly p99: number | null
}

/** The nearest-rank percentile; `null` when no call succeeded. */
const percentile = (sorted: ReadonlyArray<number>, p: number): number | null =>
  sorted.length === 0 ? null : sorted[Math.max(0, Math.ceil(p * sorted.length) - 1)]!

/** The tally of one run's calls; `HALF` is printed once half of them have ended, for the case whose limit drops. */
const tally = (calls: number) => {
  const latencies: Array<number> = []
  const failures: Record<string, number> = {}
  let ended = 0
  let startedAt = 0
  let start = 0
  return {
    start: () => {
      startedAt = Date.now()
      start = performance.now()
      return start
    },
    end: (launched: number, failure: string | undefined) => {
      const now = performance.now()
      if (failure === undefined) latencies.push(now - launched)
      else failures[failure] = (failures[failure] ?? 0) + 1
      ended++
      if (ended === Math.ceil(calls / 2)) process.stdout.write(`HALF ${Date.now()}\n`)
      return now
    },
    result: (): RunResult => {
      const wallMs = performance.now() - start
      const sorted = latencies.sort((a, b) => a - b)
      return {
        calls,
        ok: latencies.length,
        failures,
        startedAt,
        endedAt: startedAt + wallMs,
        wallMs,
        p50: percentile(sorted, 0.5),
        p99: percentile(sorted, 0.99)
      }
    }
  }
}

const effectRun = (name: Exclude<ClientName, "openai">, url: string, calls: number): Promise<RunResult> =>
  Effect.gen(function*() {
    const client = yield* InferenceClient.make({
      apiKey: Redacted.make(API_KEY),
      baseUrl: url,
      ...clientOptions[name]
    })
    const run = tally(calls)
    run.start()
    // A call is timed from the moment forEach launches it: waits for the client's slots count, forEach's own do not.
    const call = Effect.suspend(() => {
      const launched = performance.now()
      return Effect.map(Effect.exit(client.chatCompletion(body)), (exit) =>
        run.end(
          launched,
          Exit.isSuccess(exit) ? undefined : Option.match(Cause.failureOption(exit.cause), {
            onNone: () => "defect",
            onSome: (error) => error._tag
          })
        ))
    })
    yield* Effect.forEach(Array.from({ length: calls }), () => call, {
      concurrency: CALLER_CONCURRENCY,
      discard: true
    })
    return run.result()
  }).pipe(
    Effect.provide(Layer.merge(UndiciHttpClient.layer, Logger.remove(Logger.defaultLogger))),
    Effect.runPromise
  )

const sdkRun = async (url: string, calls: number): Promise<RunResult> => {
  const openai = new OpenAI({ apiKey: API_KEY, baseURL: url })
  const limit = pLimit(SDK_CONCURRENCY)
  const run = tally(calls)
  const start = run.start()
  // The ends of the calls, in order. A call is timed from when `forEach` at 256 would have launched it (the 256
  // first at once, each next one as an earlier one ends), as for the Effect clients: its wait in p-limit's queue
  // counts as a wait for the client's slots does, and the rows compare like with like.
  const ends: Array<number> = []
  await Promise.all(Array.from({ length: calls }, (_, k) =>
    limit(async () => {
      let failure: string | undefined
      try {
        await openai.chat.completions.create(body)
      } catch (error) {
        failure = error instanceof Error ? error.constructor.name : String(error)
      }
      const launched = k < CALLER_CONCURRENCY ? start : ends[k - CALLER_CONCURRENCY]!
      ends.push(run.end(launched, failure))
    })))
  return run.result()
}

/** `--run <client> --url <url> --calls <n>`: prints `HALF <epoch ms>` halfway and `RESULT <json>` at the end. */
const runOne = (name: ClientName) =>
  reportResult(() => {
    const url = option("url")!
    const calls = Number(option("calls"))
    return name === "openai" ? sdkRun(url, calls) : effectRun(name, url, calls)
  })

// ---------------------------------------------------------------------------
// The suite: cases, processes, tables
// ---------------------------------------------------------------------------

interface Case {
  readonly name: string
  readonly title: string
  readonly limit: number
  /** The limit once half the calls have ended. */
  readonly dropTo?: number
}

const cases: ReadonlyArray<Case> = [
  { name: "1", title: "L = 1", limit: 1 },
  { name: "8", title: "L = 8", limit: 8 },
  { name: "64", title: "L = 64", limit: 64 },
  { name: "32-8", title: "L = 32, then 8 once half the calls have ended", limit: 32, dropTo: 8 }
]

/** The calls per second a client that always had L calls in flight would make. */
const idealRate = (limit: number): number => limit / (LATENCY_MS / 1000)

/** The time the ideal client takes for `calls` (half of them at each limit, for the case that drops). */
const idealSeconds = (c: Case, calls: number): number =>
  c.dropTo === undefined
    ? calls / idealRate(c.limit)
    : calls / 2 / idealRate(c.limit) + calls / 2 / idealRate(c.dropTo)

interface Figures {
  readonly result: RunResult
  /** Chat requests the simulator saw, by outcome. */
  readonly outcomes: Readonly<Record<string, number>>
  /** When the limit dropped (epoch ms), for the case that drops. */
  readonly droppedAt: number | undefined
}

type Outcome = { readonly _tag: "Done"; readonly figures: Figures } | {
  readonly _tag: "Failed"
  readonly error: string
}

/** The first lines of a failure, on one line, for a table cell. */
const brief = (text: string): string => {
  const lines = text.split("\n").map((line) => line.trim()).filter((line) => line !== "")
  const message = lines.find((line) => /error|fail|refus|unknown|invalid/i.test(line)) ?? lines[0] ?? "no output"
  return message.replaceAll("|", "\\|").slice(0, 200)
}

/** One (case, client) run: a fresh simulator, the client in its own process, then the simulator's counts. */
const runCase = async (c: Case, client: ClientName, calls: number, timeoutSeconds: number): Promise<Outcome> => {
  let droppedAt: number | undefined
  const server = startSimulator(["--first-byte", String(LATENCY_MS), "--model-limit", `${MODEL}=${c.limit}`], {
    onLine: (line) => {
      if (line.startsWith("LIMIT ")) droppedAt = Number(line.split(" ")[1])
    }
  })
  const url = await server.ready
  if (url === undefined) {
    await server.stop()
    return { _tag: "Failed", error: `the simulator did not start: ${brief(server.script.errors())}` }
  }
  let result: RunResult | undefined
  const runner = spawnScript(
    ["src/goodput.ts", "--run", client, "--url", url, "--calls", String(calls)],
    (line) => {
      if (line.startsWith("HALF ") && c.dropTo !== undefined) server.limit(MODEL, c.dropTo)
      else if (line.startsWith("RESULT ")) result = JSON.parse(line.slice("RESULT ".length)) as RunResult
    }
  )
  let timedOut = false
  const timer = setTimeout(() => {
    timedOut = true
    runner.process.kill("SIGKILL")
  }, timeoutSeconds * 1000)
  await runner.exited
  clearTimeout(timer)
  // The last responses' closes reach the simulator's log a moment after the client has them.
  await new Promise((resolve) => setTimeout(resolve, 200))
  const outcomes = await server.stats()
  await server.stop()
  if (timedOut) return { _tag: "Failed", error: `stopped after ${timeoutSeconds} s (--timeout)` }
  if (result === undefined) return { _tag: "Failed", error: `the run failed: ${brief(runner.errors())}` }
  if (outcomes === undefined) return { _tag: "Failed", error: "the simulator did not give its counts" }
  return { _tag: "Done", figures: { result, outcomes, droppedAt } }
}

const mark = (ok: boolean) => ok ? "✓" : "✗"

const ms = (n: number | null) => n === null ? "–" : `${Math.round(n)} ms`

/** The ideal rate of a run, and how it was found, for the case whose limit drops: weighted by the time at each. */
const idealOf = (c: Case, figures: Figures): { readonly rate: number; readonly text: string } => {
  if (c.dropTo === undefined) return { rate: idealRate(c.limit), text: `${idealRate(c.limit).toFixed(0)}/s` }
  const { endedAt, startedAt } = figures.result
  const at = figures.droppedAt === undefined ? endedAt : Math.min(Math.max(figures.droppedAt, startedAt), endedAt)
  const before = (at - startedAt) / 1000
  const after = (endedAt - at) / 1000
  const rate = (idealRate(c.limit) * before + idealRate(c.dropTo) * after) / (before + after)
  return {
    rate,
    text: `${rate.toFixed(1)}/s (${c.limit} for ${before.toFixed(1)} s, ${c.dropTo} for ${after.toFixed(1)} s)`
  }
}

const row = (c: Case, client: ClientName, outcome: Outcome): string => {
  const label = clientLabels[client]
  if (outcome._tag === "Failed") return `| ${label} | ${outcome.error} | | | | | | | |`
  const { outcomes, result } = outcome.figures
  const rate = result.ok / (result.wallMs / 1000)
  const ideal = idealOf(c, outcome.figures)
  const share = rate / ideal.rate
  const requests = Object.values(outcomes).reduce((sum, n) => sum + n, 0)
  const limited = outcomes["concurrency-limited"] ?? 0
  const limitedShare = requests === 0 ? 0 : limited / requests
  const failed = Object.entries(result.failures).map(([tag, n]) => `${n} ${tag}`).join(", ")
  return `| ${label} | ${rate.toFixed(1)}/s | ${ideal.text} | ${(share * 100).toFixed(1)}% ${mark(share >= 0.9)} | ${
    (limitedShare * 100).toFixed(1)
  }% (${limited} of ${requests}) ${mark(limitedShare <= 0.03)} | ${ms(result.p50)} | ${ms(result.p99)} | ${
    failed === "" ? "0" : failed
  } | ${(result.wallMs / 1000).toFixed(1)} s |`
}

/** Picks the entries of `all` named in the comma-separated option `name`, or all of them. */
const subset = <A>(name: string, all: ReadonlyArray<A>, key: (a: A) => string): ReadonlyArray<A> => {
  const value = option(name)
  if (value === undefined) return all
  const wanted = value.split(",").map((s) => s.trim()).filter((s) => s !== "")
  const unknown = wanted.find((w) => !all.some((a) => key(a) === w))
  if (unknown !== undefined) {
    process.stderr.write(`goodput: unknown --${name} entry "${unknown}"; one of ${all.map(key).join(", ")}\n`)
    process.exit(2)
  }
  return all.filter((a) => wanted.includes(key(a)))
}

const positive = (name: string, fallback: number | undefined): number | undefined => {
  const value = option(name)
  if (value === undefined) return fallback
  const n = Number(value)
  if (!(Number.isInteger(n) && n > 0)) {
    process.stderr.write(`goodput: --${name} must be a positive integer, not ${value}\n`)
    process.exit(2)
  }
  return n
}

const suite = async () => {
  process.on("SIGINT", () => {
    stopChildren("SIGKILL")
    process.exit(130)
  })
  const calls = positive("calls", 2000)!
  const timeout = positive("timeout", undefined)
  const selectedCases = subset("cases", cases, (c) => c.name)
  const selectedClients = subset("clients", clientNames, (name) => name)
  const cpus = os.cpus()
  const cpu = cpus[0]?.model.trim() ?? "unknown"
  process.stdout.write(
    `Machine: ${cpus.length} cores (${cpu}), Node ${process.version}, ${os.platform()} ${os.release()}. ` +
      `${calls} calls of ${LATENCY_MS} ms against the simulator (its own process, a fresh one per run), ` +
      `launched with Effect.forEach(…, { concurrency: ${CALLER_CONCURRENCY} }) ` +
      `(the SDK: Promise.all of ${calls} limit(() => …) under p-limit(${SDK_CONCURRENCY})).\n\n` +
      `Goal: ≥ 90% of the ideal (L / ${LATENCY_MS} ms) with ≤ 3% of requests answered 429. ` +
      `Calls/s: calls that succeeded / wall time (a client whose calls fail ends early: see the failed calls). ` +
      `429s: from the simulator's log, every request, retries included. ` +
      `p50/p99: of the calls that succeeded, from the moment forEach launches the call (for the SDK, the moment ` +
      `forEach at ${CALLER_CONCURRENCY} would have: waits in p-limit count) to its end.\n`
  )
  for (const c of selectedCases) {
    process.stdout.write(`\n### ${c.title}\n\n`)
    if (c.dropTo !== undefined) {
      process.stdout.write(
        `Ideal: the limit weighted by the time spent at each, from the start of the run to the drop (when half ` +
          `the calls have ended, ok or not) and from the drop to the end: (${c.limit} × t₁ + ${c.dropTo} × t₂) / ` +
          `(t₁ + t₂) / ${LATENCY_MS} ms.\n\n`
      )
    }
    process.stdout.write(
      "| client | calls/s | ideal | of ideal (≥ 90%) | answered 429 (≤ 3%) | p50 | p99 | failed calls | wall |\n" +
        "|---|---|---|---|---|---|---|---|---|\n"
    )
    for (const client of selectedClients) {
      const seconds = timeout ?? Math.ceil(2 * idealSeconds(c, calls) + 60)
      const outcome = await runCase(c, client, calls, seconds).catch((error): Outcome => ({
        _tag: "Failed",
        error: brief(String(error))
      }))
      process.stdout.write(`${row(c, client, outcome)}\n`)
    }
  }
}

const runName = option("run")
if (runName === undefined) {
  suite().then(() => process.exit(0), (error) => {
    process.stderr.write(`goodput: ${String(error)}\n`)
    stopChildren("SIGKILL")
    process.exit(1)
  })
} else if ((clientNames as ReadonlyArray<string>).includes(runName)) {
  runOne(runName as ClientName)
} else {
  process.stderr.write(`goodput: unknown --run ${runName}; one of ${clientNames.join(", ")}\n`)
  process.exit(2)
}
