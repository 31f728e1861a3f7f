/**
 * The batch runner (`Batch.run` of @effect-inference/cli) against the simulator, in two cases:
 *
 * - **overhead**: an answer at once (no latency, 20 tokens, no limit), `--rows` rows (default 20,000): the
 *   runner's own rows per second and µs of CPU per row, the whole run measured (the first pass over the file,
 *   the preflight, the journal and the result lines), and beside it the same requests made by the client alone
 *   (`Effect.forEach` at 256, the bodies in memory, nothing written), so that the difference is what the
 *   files cost; and a dry run (the first pass alone: every row checked and estimated). The median of
 *   `--rounds` rounds (default 3).
 * - **latency**: every answer after 500 ms, and a limit of 64 requests in flight (the simulator's 429 past
 *   it), `--latency-rows` rows (default 3,000): goodput against the ideal 64 / 500 ms = 128 rows per second,
 *   and the share of requests answered 429.
 *
 * Both run as the command runs with `--concurrency auto` (the default): the client's adaptive concurrency up
 * to 256 in flight, rows taken as it lets them out (its limit and a few more), a `UsageTracker` for tokens
 * and cost.
 *
 *   pnpm --filter @effect-inference/benchmarks batch [--rows 20000] [--latency-rows 3000] [--rounds 3]
 *     [--cases overhead,latency]
 *
 * The simulator runs in a process of its own (`server.ts`, a fresh one per case) and each measured run in
 * another (this file with `--run`), so that neither's CPU is the other's; the input and output files live in
 * a temporary directory, removed at the end. Everything is on loopback, and every process is stopped at the
 * end, on an error and on Ctrl-C.
 */
import { Batch } from "@effect-inference/cli"
import { InferenceClient, UsageTracker } from "@effect-inference/client"
import * as UndiciHttpClient from "@effect-inference/client/UndiciHttpClient"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as Redacted from "effect/Redacted"
import * as Stream from "effect/Stream"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { option, reportResult, spawnScript, startSimulator, stopChildren } from "./processes.js"

const API_KEY = "bench-key"
const MODEL = "meta-llama/Llama-3.1-8B-Instruct"
const LATENCY_MS = 500
const LIMIT = 64
/** As the command's `--concurrency auto`: adaptive concurrency up to this many in flight. */
const AUTO_MAX = 256

const whole = (name: string, fallback: number): number => {
  const value = option(name)
  const n = value === undefined ? fallback : Number(value)
  if (!(Number.isInteger(n) && n >= 1)) {
    process.stderr.write(`batch: --${name} takes a whole number of at least 1, not ${value}\n`)
    process.exit(2)
  }
  return n
}

const body = (i: number) => ({
  model: MODEL,
  messages: [{ role: "user" as const, content: `Say something short about row ${i}.` }],
  max_tokens: 20
})

// ---------------------------------------------------------------------------
// One measured run (`--run <kind>`), in a process of its own
// ---------------------------------------------------------------------------

type Kind = "batch" | "client" | "dry-run"

/** What one run prints, as `RESULT <json>`. */
interface RunResult {
  readonly rows: number
  readonly succeeded: number
  readonly failed: number
  readonly attempts: number
  readonly wallMs: number
  /** CPU of this process over the run, user + system. */
  readonly cpuMicros: number
  /** Sampled every 50 ms over the run. */
  readonly peakRssMb: number
  readonly peakHeapMb: number
}

/** The client as the command builds it for `--concurrency auto`, with its tracker, over undici. */
const live = (url: string) =>
  InferenceClient.layer({
    apiKey: Redacted.make(API_KEY),
    baseUrl: url,
    maxConcurrency: AUTO_MAX,
    adaptiveConcurrency: { max: AUTO_MAX }
  }).pipe(
    Layer.provideMerge(UsageTracker.layer({ logLevel: "None" })),
    Layer.provide(UndiciHttpClient.layer),
    // The client warns at each retry; a 429 past the limit is expected here, and counted from the server.
    Layer.provide(Logger.remove(Logger.defaultLogger))
  )

/** The client alone: the same requests, from memory, results dropped. */
const clientAlone = (rows: number) =>
  Effect.gen(function*() {
    const client = yield* InferenceClient.InferenceClient
    let succeeded = 0
    let failed = 0
    yield* Stream.range(1, rows).pipe(
      Stream.mapEffect((i) => Effect.either(client.chatCompletion(body(i))), { concurrency: 256, unordered: true }),
      Stream.runForEach((result) =>
        Effect.sync(() => {
          if (result._tag === "Right") succeeded++
          else failed++
        })
      )
    )
    return { succeeded, failed }
  })

const measured = (kind: Kind, url: string, input: string, output: string, rows: number): Promise<RunResult> =>
  Effect.gen(function*() {
    const tracker = yield* UsageTracker.UsageTracker
    let peakRss = 0
    let peakHeap = 0
    const sample = () => {
      const memory = process.memoryUsage()
      peakRss = Math.max(peakRss, memory.rss)
      peakHeap = Math.max(peakHeap, memory.heapUsed)
    }
    const sampler = setInterval(sample, 50)
    const cpu = process.cpuUsage()
    const start = performance.now()
    const outcome = kind === "client"
      ? yield* clientAlone(rows)
      : yield* Batch.run({ input, output, dryRun: kind === "dry-run" })
    const wallMs = performance.now() - start
    const used = process.cpuUsage(cpu)
    clearInterval(sampler)
    sample()
    const totals = yield* tracker.totals
    return {
      rows,
      succeeded: outcome.succeeded,
      failed: outcome.failed,
      attempts: totals.overall.attempts,
      wallMs,
      cpuMicros: used.user + used.system,
      peakRssMb: peakRss / 2 ** 20,
      peakHeapMb: peakHeap / 2 ** 20
    }
  }).pipe(Effect.provide(live(url)), Effect.runPromise)

/** `--run <kind> --url <url> --input <file> --output <file> --rows <n>`: prints `RESULT <json>`. */
const runOne = (kind: Kind) =>
  reportResult(() => measured(kind, option("url")!, option("input")!, option("output")!, Number(option("rows"))))

// ---------------------------------------------------------------------------
// The suite: files, processes, tables
// ---------------------------------------------------------------------------

let workDir: string | undefined

const stopAll = () => {
  stopChildren("SIGKILL")
  if (workDir !== undefined) fs.rmSync(workDir, { recursive: true, force: true })
  workDir = undefined
}

/** Stops the suite: a benchmark that goes wrong has no figures to give. */
const fail = (message: string): never => {
  process.stderr.write(`batch: ${message}\n`)
  stopAll()
  return process.exit(1)
}

/** The simulator (server.ts) with `args`, once it listens: its URL, its counts of chat requests, and a stop. */
const startServer = async (args: ReadonlyArray<string>) => {
  const server = startSimulator(args)
  const url = await server.ready
  if (url === undefined) return fail(`the simulator did not start: ${server.script.errors()}`)
  return { ...server, url }
}

/** Writes `rows` rows in the OpenAI Batch API's input format. */
const writeInput = (file: string, rows: number) => {
  const fd = fs.openSync(file, "w")
  for (let i = 1; i <= rows; i++) {
    fs.writeSync(
      fd,
      `${
        JSON.stringify({
          custom_id: `row-${String(i).padStart(6, "0")}`,
          method: "POST",
          url: "/v1/chat/completions",
          body: body(i)
        })
      }\n`
    )
  }
  fs.closeSync(fd)
}

let runs = 0

/** One measured run in its own process, on fresh output files. */
const measure = async (kind: Kind, url: string, input: string, rows: number): Promise<RunResult> => {
  const output = path.join(workDir!, `results-${++runs}.jsonl`)
  let result: RunResult | undefined
  const runner = spawnScript(
    ["src/batch.ts", "--run", kind, "--url", url, "--input", input, "--output", output, "--rows", String(rows)],
    (line) => {
      if (line.startsWith("RESULT ")) result = JSON.parse(line.slice("RESULT ".length)) as RunResult
    }
  )
  await runner.exited
  if (result === undefined) return fail(`the ${kind} run failed: ${runner.errors().trim().slice(0, 500)}`)
  if (kind === "batch") {
    const lines = fs.readFileSync(output, "utf8").split("\n").filter((line) => line !== "").length
    const errors = fs.readFileSync(Batch.defaultErrors(output), "utf8").split("\n").filter((l) => l !== "").length
    if (lines !== result.succeeded || lines + errors !== rows) {
      return fail(`the batch run wrote ${lines} result and ${errors} error lines for ${rows} rows`)
    }
  }
  for (const file of [output, Batch.defaultErrors(output)]) fs.rmSync(file, { force: true })
  return result
}

const median = (values: ReadonlyArray<number>): number => [...values].sort((a, b) => a - b)[values.length >> 1]!

const range = (values: ReadonlyArray<number>, digits: number) =>
  values.length < 2
    ? ""
    : ` (${Math.min(...values).toFixed(digits)}–${Math.max(...values).toFixed(digits)})`

const overhead = async (rows: number, rounds: number) => {
  const input = path.join(workDir!, "overhead.jsonl")
  writeInput(input, rows)
  const server = await startServer(["--answer-tokens", "20", "--per-token", "0"])
  const labels: Record<Kind, string> = {
    "batch": "`Batch.run` (the whole run: first pass, preflight, journal, result lines)",
    "client": "the client alone (`Effect.forEach` at 256, requests in memory, nothing written)",
    "dry-run": "`Batch.run` with `dryRun` (the first pass alone: each row parsed, checked, estimated)"
  }
  const results: Record<Kind, Array<RunResult>> = { "batch": [], "client": [], "dry-run": [] }
  for (let round = 0; round < rounds; round++) {
    const order: ReadonlyArray<Kind> = round % 2 === 0 ? ["batch", "client", "dry-run"] : ["client", "batch", "dry-run"]
    for (const kind of order) {
      results[kind].push(await measure(kind, server.url, input, rows))
      process.stderr.write(`batch: overhead, round ${round + 1} of ${rounds}, ${kind}: done\n`)
    }
  }
  await server.stop()
  process.stdout.write(
    `\n### No latency: the runner's own cost, ${rows.toLocaleString("en-US")} rows\n\n` +
      "An answer of 20 tokens at once, no limit. The median of the rounds (their range in brackets); CPU is the " +
      "measuring process's (user + system), over the run only.\n\n" +
      "| run | rows/s | CPU µs per row | wall | peak RSS | peak heap | failed |\n|---|--:|--:|--:|--:|--:|--:|\n"
  )
  for (const kind of ["batch", "client", "dry-run"] as const) {
    const rs = results[kind]
    const rates = rs.map((r) => r.rows / (r.wallMs / 1000))
    const cpu = rs.map((r) => r.cpuMicros / r.rows)
    process.stdout.write(
      `| ${labels[kind]} | ${median(rates).toFixed(0)}${range(rates, 0)} | ${median(cpu).toFixed(0)}${
        range(cpu, 0)
      } | ${(median(rs.map((r) => r.wallMs)) / 1000).toFixed(2)} s | ${
        median(rs.map((r) => r.peakRssMb)).toFixed(0)
      } MB | ${median(rs.map((r) => r.peakHeapMb)).toFixed(0)} MB | ${
        kind === "dry-run" ? "–" : median(rs.map((r) => r.failed))
      } |\n`
    )
  }
  const batchCpu = median(results.batch.map((r) => r.cpuMicros / r.rows))
  const clientCpu = median(results.client.map((r) => r.cpuMicros / r.rows))
  const difference = batchCpu - clientCpu
  const share = Math.abs((batchCpu / clientCpu - 1) * 100).toFixed(0)
  process.stdout.write(
    `\nThe whole run against the client alone: ${Math.abs(difference).toFixed(0)} µs of CPU per row ` +
      `${difference >= 0 ? "more" : "less"} (${share}% ${difference >= 0 ? "more" : "less"}).\n`
  )
}

const latency = async (rows: number) => {
  const input = path.join(workDir!, "latency.jsonl")
  writeInput(input, rows)
  const server = await startServer([
    "--answer-tokens",
    "20",
    "--per-token",
    "0",
    "--first-byte",
    String(LATENCY_MS),
    "--model-limit",
    `${MODEL}=${LIMIT}`
  ])
  const result = await measure("batch", server.url, input, rows)
  // The last responses' closes reach the simulator's log a moment after the client has them.
  await new Promise((resolve) => setTimeout(resolve, 200))
  const stats = await server.stats()
  await server.stop()
  const ideal = LIMIT / (LATENCY_MS / 1000)
  const goodput = result.succeeded / (result.wallMs / 1000)
  const requests = stats === undefined ? 0 : Object.values(stats).reduce((sum, n) => sum + n, 0)
  const limited = stats?.["concurrency-limited"] ?? 0
  process.stdout.write(
    `\n### ${LATENCY_MS} ms per answer, a limit of ${LIMIT} in flight: ${rows.toLocaleString("en-US")} rows\n\n` +
      `Every answer after ${LATENCY_MS} ms; past ${LIMIT} requests in flight the simulator answers 429 (the ` +
      `client is not told the limit). Ideal: ${LIMIT} / ${LATENCY_MS} ms = ${ideal.toFixed(0)} rows/s.\n\n` +
      "| rows/s (succeeded / wall) | of ideal | answered 429 | attempts | CPU µs per row | wall | failed |\n" +
      "|--:|--:|--:|--:|--:|--:|--:|\n" +
      `| ${goodput.toFixed(1)} | ${(goodput / ideal * 100).toFixed(1)}% | ${
        requests === 0 ? "?" : `${(limited / requests * 100).toFixed(1)}% (${limited} of ${requests})`
      } | ${result.attempts} | ${(result.cpuMicros / result.rows).toFixed(0)} | ${
        (result.wallMs / 1000).toFixed(1)
      } s | ${result.failed} |\n`
  )
}

const suite = async () => {
  process.on("SIGINT", () => {
    stopAll()
    process.exit(130)
  })
  const rows = whole("rows", 20_000)
  const latencyRows = whole("latency-rows", 3_000)
  const rounds = whole("rounds", 3)
  const cases = (option("cases") ?? "overhead,latency").split(",").map((s) => s.trim())
  const unknown = cases.find((c) => c !== "overhead" && c !== "latency")
  if (unknown !== undefined) {
    process.stderr.write(`batch: unknown --cases entry "${unknown}"; overhead, latency\n`)
    process.exit(2)
  }
  workDir = fs.mkdtempSync(path.join(os.tmpdir(), "effect-inference-batch-bench-"))
  const cpus = os.cpus()
  process.stdout.write(
    `Machine: ${cpus.length} cores (${cpus[0]?.model.trim() ?? "unknown"}), Node ${process.version}, ` +
      `${os.platform()} ${os.release()}. Batch.run as \`effect-inference batch\` runs with \`--concurrency auto\`: ` +
      `${AUTO_MAX} rows taken at a time, adaptive concurrency up to ${AUTO_MAX} in flight, against the simulator ` +
      "on loopback (a process of its own, a fresh one per case); each run in a process of its own.\n"
  )
  if (cases.includes("overhead")) await overhead(rows, rounds)
  if (cases.includes("latency")) await latency(latencyRows)
}

const runKind = option("run")
if (runKind === undefined) {
  suite().then(
    () => {
      stopAll()
      process.exit(0)
    },
    (error) => fail(String(error))
  )
} else if (runKind === "batch" || runKind === "client" || runKind === "dry-run") {
  runOne(runKind)
} else {
  process.stderr.write(`batch: unknown --run ${runKind}; batch, client or dry-run\n`)
  process.exit(2)
}
