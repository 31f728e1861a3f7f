/**
 * The benchmark suite: starts the benchmark servers, runs every client in
 * interleaved rounds (each run a fresh `runner.ts` process), prints a table per
 * scenario and, with `--write`, writes them, with the machine and versions, to
 * docs/benchmarks.md.
 *
 *   tsx src/bench.ts [--rounds 3] [--requests 10000] [--requests-256 10000] [--stream-requests 200]
 *     [--short-stream-requests 4000] [--foreach-requests 10000] [--quick] [--no-profile] [--only <substring>]
 *     [--scenario <substring>] [--write]
 *
 * Without `--write` nothing is written. `--write` is refused with `--quick`,
 * `--only` or `--scenario`, before anything runs: their rougher or fewer figures
 * must not replace those of a full run.
 */
import { type ChildProcess, spawn } from "node:child_process"
import * as fs from "node:fs"
import { createRequire } from "node:module"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { type ClientName, clients, type Result } from "./clients.js"
import { type Simulator, startSimulator, stopChildren } from "./processes.js"
import { summarise } from "./profile.js"

// ---------------------------------------------------------------------------
// Processes
// ---------------------------------------------------------------------------

const packageDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..")
const repoDir = path.resolve(packageDir, "..", "..")
const docsFile = path.join(repoDir, "docs", "benchmarks.md")

const servers: Array<Simulator> = []
let stopping = false
let current: ChildProcess | undefined

/** Stops the servers and the run in progress, if any. */
const stopAll = () => {
  current?.kill("SIGTERM")
  stopChildren("SIGTERM")
}

/** Stops the suite: a benchmark that goes wrong has no figures to give. */
const fail = (message: string): never => {
  process.stderr.write(`bench: ${message}\n`)
  stopAll()
  return process.exit(1)
}

process.on("SIGINT", () => fail("interrupted"))
process.on("SIGTERM", () => fail("terminated"))

// ---------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------

const argv = process.argv.slice(2)

const option = (name: string): string | undefined => {
  const at = argv.indexOf(`--${name}`)
  if (at === -1) return undefined
  const value = argv[at + 1]
  return value === undefined || value.startsWith("--") ? fail(`--${name} needs a value`) : value
}

const count = (name: string, fallback: number): number => {
  const value = option(name)
  if (value === undefined) return fallback
  const n = Number(value)
  return Number.isInteger(n) && n > 0 ? n : fail(`--${name} must be a positive integer, not ${value}`)
}

const known = new Set([
  "--rounds",
  "--requests",
  "--requests-256",
  "--stream-requests",
  "--short-stream-requests",
  "--foreach-requests",
  "--quick",
  "--profile",
  "--no-profile",
  "--only",
  "--scenario",
  "--write"
])
argv.forEach((arg, i) => {
  const previous = argv[i - 1]
  const isValue = previous !== undefined && [
    "--rounds",
    "--requests",
    "--requests-256",
    "--stream-requests",
    "--short-stream-requests",
    "--foreach-requests",
    "--only",
    "--scenario"
  ].includes(previous)
  if (!isValue && !known.has(arg)) fail(`unknown option ${arg}; options: ${[...known].join(" ")}`)
})

/** The defaults, and those of `--quick`, a smoke run. */
// The plain-call defaults are 10000 rather than 20000 requests a run to keep a default run short on a 2-core machine.
// A short stream costs about a fiftieth of a long one: twenty times as many make a run long enough to time.
const defaults = {
  rounds: 3,
  requests64: 10_000,
  requests256: 10_000,
  streamRequests: 200,
  shortStreamRequests: 4_000,
  forEachRequests: 10_000
}
const quickDefaults = {
  rounds: 1,
  requests64: 3_000,
  requests256: 3_000,
  streamRequests: 40,
  shortStreamRequests: 1_000,
  forEachRequests: 3_000
}

const quick = argv.includes("--quick")
const base = quick ? quickDefaults : defaults
const rounds = count("rounds", base.rounds)
const requests64 = count("requests", base.requests64)
const requests256 = count("requests-256", base.requests256)
const streamRequests = count("stream-requests", base.streamRequests)
const shortStreamRequests = count("short-stream-requests", base.shortStreamRequests)
const forEachRequests = count("foreach-requests", base.forEachRequests)
const profile = !argv.includes("--no-profile")
const only = option("only")
const scenarioFilter = option("scenario")
// A smoke run or a partial one would replace the figures of a full run with rougher or fewer ones.
const partial = quick || only !== undefined || scenarioFilter !== undefined
const write = argv.includes("--write")
if (write && partial) {
  fail("--write rewrites docs/benchmarks.md from a full run only: leave out --quick, --only and --scenario")
}

const selected = (client: ClientName) => only === undefined || client === "undici" || client.includes(only)

// ---------------------------------------------------------------------------
// Servers
// ---------------------------------------------------------------------------

interface Server {
  readonly name: string
  readonly url: string
}

const startServer = async (name: string, answerTokens: number, perToken: number): Promise<Server> => {
  const server = startSimulator(["--answer-tokens", String(answerTokens), "--per-token", String(perToken)], {
    stderr: "inherit"
  })
  servers.push(server)
  server.script.process.on("error", (error) => fail(`server "${name}" did not start: ${error.message}`))
  server.script.process.on("exit", (code, signal) => {
    if (!stopping) fail(`server "${name}" stopped (${signal ?? `exit code ${code}`})`)
  })
  const url = await server.ready
  return url === undefined ? fail(`server "${name}" did not print READY within 30 s`) : { name, url }
}

/** Ends each server's input (which stops it) and waits for it, killing it after 5 s. */
const stopServers = () => Promise.all(servers.map((server) => server.stop()))

// ---------------------------------------------------------------------------
// Runs
// ---------------------------------------------------------------------------

interface RunOptions {
  readonly client: ClientName
  readonly url: string
  readonly concurrency: number
  readonly requests: number
  readonly stream: boolean
  readonly drive?: "workers" | "forEach"
  /** Calls before the measured ones (the runner's default: a fifth of them, at most 2000). */
  readonly warmup?: number
  /** A file for a CPU profile of the measured calls. */
  readonly cpuProfile?: string
}

/** One measured run in a fresh process. */
const run = (options: RunOptions): Promise<Result> =>
  new Promise((resolve) => {
    const args = [
      "--conditions=@effect-inference/source",
      "--expose-gc",
      "--import",
      "tsx",
      "src/runner.ts",
      "--client",
      options.client,
      "--url",
      options.url,
      "--concurrency",
      String(options.concurrency),
      "--requests",
      String(options.requests),
      ...(options.stream ? ["--stream"] : []),
      ...(options.drive === undefined ? [] : ["--drive", options.drive]),
      ...(options.warmup === undefined ? [] : ["--warmup", String(options.warmup)]),
      ...(options.cpuProfile === undefined ? [] : ["--cpu-profile", options.cpuProfile])
    ]
    const child = spawn(process.execPath, args, { cwd: packageDir, stdio: ["ignore", "pipe", "inherit"] })
    current = child
    let output = ""
    child.stdout!.setEncoding("utf8")
    child.stdout!.on("data", (text: string) => {
      output += text
    })
    child.on("error", (error) => fail(`runner for "${options.client}" did not start: ${error.message}`))
    child.on("close", (code, signal) => {
      current = undefined
      if (code !== 0) return fail(`runner for "${options.client}" failed (${signal ?? `exit code ${code}`})`)
      const line = output.trim().split("\n").at(-1) ?? ""
      let result: Result | undefined
      try {
        result = JSON.parse(line) as Result
      } catch {
        result = undefined
      }
      if (result === undefined || typeof result.cpuMicros !== "number") {
        return fail(`runner for "${options.client}" printed no result: ${JSON.stringify(output)}`)
      }
      resolve(result)
    })
  })

// ---------------------------------------------------------------------------
// Scenarios
// ---------------------------------------------------------------------------

interface Scenario {
  readonly title: string
  readonly tag: string
  readonly server: string
  readonly clients: ReadonlyArray<ClientName>
  readonly concurrency: number
  readonly requests: number
  readonly stream: boolean
  /**
   * What a figure is the CPU of: a request, a streamed chunk (a long stream, where the cost per chunk is what
   * grows with the answer) or a whole stream (a short one, where the fixed cost of a stream dominates).
   */
  readonly per: "request" | "chunk" | "stream"
  readonly warmup?: number
}

const streamingClients = clients.filter((client) => ["undici", "openai", "platform", "client"].includes(client))
// The cost of each feature shows at C = 64; at C = 256 the clients alone, which keeps a default run within ten minutes.
const clients256 = clients.filter((client) => !client.startsWith("client:"))

const allScenarios: ReadonlyArray<Scenario> = [
  {
    title: "Plain calls, C = 64",
    tag: "plain C=64",
    server: "burst",
    clients: clients.filter(selected),
    concurrency: 64,
    requests: requests64,
    stream: false,
    per: "request"
  },
  {
    title: "Plain calls, C = 256",
    tag: "plain C=256",
    server: "burst",
    clients: clients256.filter(selected),
    concurrency: 256,
    requests: requests256,
    stream: false,
    per: "request"
  },
  {
    title: "Streaming, 500 chunks, burst",
    tag: "stream burst",
    server: "stream-burst",
    clients: streamingClients.filter(selected),
    concurrency: 16,
    requests: streamRequests,
    stream: true,
    per: "chunk"
  },
  {
    title: "Streaming, 500 chunks, token-paced (1 ms a token)",
    tag: "stream paced",
    server: "stream-paced",
    clients: streamingClients.filter(selected),
    concurrency: 64,
    requests: streamRequests,
    stream: true,
    per: "chunk"
  },
  {
    // 10 tokens (13 chunks with the role, the finish and the usage) as fast as the server writes them: what a
    // stream costs besides its chunks (its request, its setup and its end) is most of it.
    title: "Streaming, 10 chunks",
    tag: "stream short",
    server: "stream-short",
    clients: streamingClients.filter(selected),
    concurrency: 16,
    requests: shortStreamRequests,
    stream: true,
    per: "stream",
    // The cost of a short stream, most of it the code around the request, still falls after the runner's usual
    // warm-up (a fifth of the run) as V8 compiles that code, for every client: 2000 streams first settle it.
    warmup: Math.min(2_000, shortStreamRequests)
  }
]

const scenarios = allScenarios.filter((scenario) =>
  // With --only, a scenario none of whose clients match has nothing to compare with undici.
  (only === undefined || scenario.clients.some((client) => client.includes(only))) &&
  (scenarioFilter === undefined || scenario.tag.includes(scenarioFilter))
)

/** The cost the tables compare: CPU per request (or stream), or per chunk. */
const cost = (scenario: Scenario, result: Result) =>
  result.cpuMicros / Math.max(1, scenario.per === "chunk" ? result.chunks : result.requests)

interface Row {
  readonly client: ClientName
  readonly costs: Array<number>
  readonly ratios: Array<number>
  readonly rates: Array<number>
  readonly rss: Array<number>
  readonly heap: Array<number>
}

const median = (values: ReadonlyArray<number>) => {
  const sorted = [...values].sort((a, b) => a - b)
  const middle = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2
}

const spread = (values: ReadonlyArray<number>, digits: number) => {
  const m = median(values).toFixed(digits)
  if (values.length < 2) return m
  return `${m} (${Math.min(...values).toFixed(digits)}–${Math.max(...values).toFixed(digits)})`
}

const table = (scenario: Scenario, rows: ReadonlyArray<Row>) => {
  const allCosts = rows.flatMap((row) => row.costs)
  const digits = scenario.per === "chunk" ? (median(allCosts) < 10 ? 2 : 1) : 0
  const range = rounds > 1 ? " median (min–max)" : ""
  return [
    `| client | CPU µs per ${scenario.per}${range} | × undici${range} | req/s median | peak RSS MB median | heap after GC MB median |`,
    "|---|--:|--:|--:|--:|--:|",
    ...rows.map((row) =>
      [
        "",
        row.client,
        spread(row.costs, digits),
        row.ratios.length === 0 ? "–" : spread(row.ratios, 2),
        median(row.rates).toFixed(0),
        median(row.rss).toFixed(0),
        median(row.heap).toFixed(1),
        ""
      ].join(" | ").trim()
    )
  ].join("\n")
}

const runScenario = async (scenario: Scenario, urls: ReadonlyMap<string, string>): Promise<string> => {
  const rows = new Map<ClientName, Row>(
    scenario.clients.map((client) => [client, { client, costs: [], ratios: [], rates: [], rss: [], heap: [] }])
  )
  for (let round = 1; round <= rounds; round++) {
    const costs = new Map<ClientName, number>()
    for (const client of scenario.clients) {
      const started = Date.now()
      const result = await run({
        client,
        url: urls.get(scenario.server)!,
        concurrency: scenario.concurrency,
        requests: scenario.requests,
        stream: scenario.stream,
        ...(scenario.warmup === undefined ? {} : { warmup: scenario.warmup })
      })
      const c = cost(scenario, result)
      costs.set(client, c)
      const row = rows.get(client)!
      row.costs.push(c)
      row.rates.push(result.requests / result.wallMillis * 1000)
      row.rss.push(result.peakRssMb)
      row.heap.push(result.heapAfterGcMb)
      process.stderr.write(
        `[${scenario.tag}] round ${round}/${rounds} ${client.padEnd(30)} ${
          c.toFixed(scenario.per === "chunk" ? 2 : 0)
        } µs/${scenario.per}  (${((Date.now() - started) / 1000).toFixed(1)} s)\n`
      )
    }
    // Ratios within the round: both runs saw the same machine at about the same time.
    const undici = costs.get("undici")
    if (undici !== undefined && undici > 0) {
      for (const [client, c] of costs) rows.get(client)!.ratios.push(c / undici)
    }
  }
  return table(scenario, [...rows.values()])
}

// ---------------------------------------------------------------------------
// Calls driven by Effect.forEach
// ---------------------------------------------------------------------------

/** The caller counts of the forEach rows; the first is the baseline of the others. */
const forEachCallers = [64, 256, 1024] as const
const forEachTag = "plain forEach"
const runForEach = selected("client") && (scenarioFilter === undefined || forEachTag.includes(scenarioFilter))

/**
 * The client with its defaults (`maxConcurrency: 64`) driven as most callers
 * write it, `Effect.forEach(requests, call, { concurrency: C })`: a fiber a
 * call, and with C above 64 most of them waiting for a slot. The cost of a
 * call must not grow with the number waiting.
 */
const forEachScenario = async (url: string): Promise<string> => {
  const rows = forEachCallers.map((callers) => ({
    callers,
    costs: [] as Array<number>,
    ratios: [] as Array<number>,
    rates: [] as Array<number>,
    rss: [] as Array<number>,
    heap: [] as Array<number>
  }))
  for (let round = 1; round <= rounds; round++) {
    for (const row of rows) {
      const started = Date.now()
      const result = await run({
        client: "client",
        url,
        concurrency: row.callers,
        requests: forEachRequests,
        stream: false,
        drive: "forEach"
      })
      const c = result.cpuMicros / Math.max(1, result.requests)
      row.costs.push(c)
      row.rates.push(result.requests / result.wallMillis * 1000)
      row.rss.push(result.peakRssMb)
      row.heap.push(result.heapAfterGcMb)
      process.stderr.write(
        `[${forEachTag}] round ${round}/${rounds} client, C = ${String(row.callers).padEnd(19)} ${
          c.toFixed(0)
        } µs/request  (${((Date.now() - started) / 1000).toFixed(1)} s)\n`
      )
    }
    const baseline = rows[0]!.costs.at(-1)!
    for (const row of rows) row.ratios.push(row.costs.at(-1)! / baseline)
  }
  const range = rounds > 1 ? " median (min–max)" : ""
  return [
    `| callers | CPU µs per request${range} | × C = 64${range} | req/s median | peak RSS MB median | heap after GC MB median |`,
    "|---|--:|--:|--:|--:|--:|",
    ...rows.map((row) =>
      [
        "",
        `C = ${row.callers}`,
        spread(row.costs, 0),
        spread(row.ratios, 2),
        median(row.rates).toFixed(0),
        median(row.rss).toFixed(0),
        median(row.heap).toFixed(1),
        ""
      ].join(" | ").trim()
    )
  ].join("\n")
}

// ---------------------------------------------------------------------------
// Profile
// ---------------------------------------------------------------------------

/** A profile of one run of `client`, for the docs: what was run, and the tables of `profile.ts`. */
interface Profiled {
  readonly title: string
  readonly what: string
  readonly summary: string
}

/**
 * Profiles one run of `client` (`runner.ts --cpu-profile`: the measured calls only, not the start-up or the
 * warm-up), with each share also in µs of CPU per `per` (a request, a chunk or a stream) of that run.
 */
const profileClient = async (
  title: string,
  what: string,
  options: Omit<RunOptions, "client">,
  per: Scenario["per"]
): Promise<Profiled> => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "bench-profile-"))
  try {
    process.stderr.write(`[profile] client, ${what}\n`)
    const file = path.join(dir, "client.cpuprofile")
    const result = await run({ ...options, client: "client", cpuProfile: file })
    if (!fs.existsSync(file)) fail(`no CPU profile written to ${file}`)
    const units = per === "chunk" ? result.chunks : result.requests
    const summary = summarise(JSON.parse(fs.readFileSync(file, "utf8")) as Parameters<typeof summarise>[0], 20, {
      unit: per,
      micros: result.cpuMicros / Math.max(1, units)
    })
    process.stdout.write(`## ${title}\n\n${summary}\n\n`)
    return { title, what, summary }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

// ---------------------------------------------------------------------------
// Machine and versions
// ---------------------------------------------------------------------------

const require = createRequire(import.meta.url)

/** The version of an installed package, from its package.json. */
const versionOf = (name: string): string => {
  const read = (file: string) => JSON.parse(fs.readFileSync(file, "utf8")) as { name?: string; version?: string }
  try {
    const manifest = read(require.resolve(`${name}/package.json`))
    if (manifest.name === name && manifest.version !== undefined) return manifest.version
  } catch {
    // Its exports do not list package.json: find it from the entry point.
  }
  try {
    let dir = path.dirname(require.resolve(name))
    while (dir !== path.dirname(dir)) {
      const file = path.join(dir, "package.json")
      if (fs.existsSync(file)) {
        const manifest = read(file)
        if (manifest.name === name && manifest.version !== undefined) return manifest.version
      }
      dir = path.dirname(dir)
    }
  } catch {
    return "not installed"
  }
  return "unknown"
}

const machine = () => {
  const cpus = os.cpus()
  const versions = [
    "effect",
    "@effect/platform",
    "@effect/platform-node",
    "undici",
    "openai",
    "@effect-inference/client"
  ]
    .map((name) => `${name} ${versionOf(name)}`)
    .join(", ")
  return [
    `- CPU: ${cpus[0]?.model.trim() ?? "unknown"}, ${cpus.length} cores; ${
      (os.totalmem() / 1024 ** 3).toFixed(1)
    } GB memory`,
    `- Node ${process.version} on ${process.platform} (${os.arch()})`,
    `- Packages: ${versions}`
  ].join("\n")
}

// ---------------------------------------------------------------------------
// Docs
// ---------------------------------------------------------------------------

const analysisPlaceholder = "## Analysis\n\n(written by hand after a run)\n"

/** The hand-written `## Analysis` section of the current file, to the end, if there is one. */
const keptAnalysis = (): string => {
  if (!fs.existsSync(docsFile)) return analysisPlaceholder
  const text = fs.readFileSync(docsFile, "utf8")
  const at = text.search(/^## Analysis[ \t]*$/m)
  return at === -1 ? analysisPlaceholder : text.slice(at)
}

const quote = (arg: string) => /^[\w@%+=:,./-]+$/.test(arg) ? arg : `"${arg.replace(/(["\\$`])/g, "\\$1")}"`

const commandLine = () => ["pnpm bench", ...argv.map(quote)].join(" ")

const document = (started: Date, tables: ReadonlyArray<string>, profiles: ReadonlyArray<Profiled>) =>
  [
    "# Benchmarks",
    "",
    "Each figure is the CPU time (user + system) of the client's own process per request, per streamed chunk, " +
    "or per short stream, " +
    "measured after a warm-up while the OpenAI-compatible simulator answers from a separate process; " +
    "every run is a fresh process, the clients run one after another in interleaved rounds, and the " +
    "\"× undici\" ratios compare each run with the undici run of the same round before taking the median " +
    "and range across rounds.",
    "",
    "The clients: `undici` is `undici.request` and `JSON.parse` (the floor); `openai` the official SDK; " +
    "`platform` @effect/platform's `HttpClient` over `NodeHttpClient.layerUndici` with Schema decoding; " +
    "`client` this client with its defaults (retry, timeout, concurrency limit, breaker and usage tracking on) " +
    "over its own `UndiciHttpClient.layer`; `client: no …` the same with one feature off, `client: all off` " +
    "with all of them off; `client: over NodeHttpClient.layerUndici` its defaults over @effect/platform's " +
    "undici layer, as `platform` uses.",
    "",
    "Regenerate with `pnpm bench --write`: a full run, which rewrites this file (without `--write` a run prints " +
    "its tables and writes nothing; `--write` is refused with `--quick`, `--only` or `--scenario`). " +
    `Options: \`--rounds R\` (${defaults.rounds}), ` +
    `\`--requests N\` for C = 64 (${defaults.requests64}), \`--requests-256 N\` for C = 256 (${defaults.requests256}), ` +
    `\`--stream-requests N\` (${defaults.streamRequests}), \`--short-stream-requests N\` for the 10-chunk streams ` +
    `(${defaults.shortStreamRequests}), \`--foreach-requests N\` for the forEach rows ` +
    `(${defaults.forEachRequests}), \`--only <substring>\` (those clients and undici), \`--scenario <substring>\` ` +
    "(the scenarios whose tag has it: `plain C=64`, `plain C=256`, `plain forEach`, `stream burst`, " +
    "`stream paced`, `stream short`), `--no-profile`, `--quick` for a smoke run. " +
    `The plain-call defaults are ${defaults.requests64} requests a run (rather than 20000), and C = 256 runs the ` +
    "clients without the feature-off variants, to keep a default run within ten minutes on a 2-core machine; " +
    "pass larger counts for tighter ranges. " +
    `This file came from \`${commandLine()}\`.`,
    "",
    "## Machine",
    "",
    machine(),
    `- Date: ${started.toISOString()}`,
    `- Rounds: ${rounds}; requests per run: ${requests64} (plain, C = 64), ${requests256} (plain, C = 256), ` +
    `${streamRequests} (streaming, 500 chunks each), ${shortStreamRequests} (streaming, 10 chunks each), ` +
    `${forEachRequests} (plain, Effect.forEach)`,
    "",
    ...tables.flatMap((t) => [t, ""]),
    ...profiles.flatMap((profiled) => [
      `## ${profiled.title}`,
      "",
      `Self time in a CPU profile of one run of \`client\`, ${profiled.what}: the measured calls only, after ` +
      "the warm-up (`runner.ts --cpu-profile`); shares of the CPU time (idle left out), and the same in µs of " +
      "that run's CPU time.",
      "",
      profiled.summary,
      ""
    ]),
    keptAnalysis()
  ].join("\n")

// ---------------------------------------------------------------------------
// Main
// ---------------------------------------------------------------------------

const forEachSection = async (url: string): Promise<string> => {
  const body = await forEachScenario(url)
  const section = "## Plain calls, Effect.forEach, maxConcurrency 64\n\n" +
    "`client` with its defaults (at most 64 calls in flight), driven by " +
    `\`Effect.forEach(requests, call, { concurrency: C })\`, ${forEachRequests} requests a run, ${rounds} round${
      rounds === 1 ? "" : "s"
    }; "× C = 64" compares each run with the C = 64 run of its round.\n\n${body}`
  process.stdout.write(`${section}\n\n`)
  return section
}

const main = async () => {
  const started = new Date()
  const running = await Promise.all([
    startServer("burst", 20, 0),
    startServer("stream-burst", 500, 0),
    startServer("stream-paced", 500, 1),
    startServer("stream-short", 10, 0)
  ])
  const burst = running[0]!
  const urls = new Map(running.map((server) => [server.name, server.url]))
  process.stderr.write(
    `bench: ${rounds} round${
      rounds === 1 ? "" : "s"
    }; ${requests64} / ${requests256} plain requests, ${streamRequests} streamed, ${shortStreamRequests} short streams\n`
  )

  const tables: Array<string> = []
  const plural = rounds === 1 ? "" : "s"
  for (const scenario of scenarios) {
    const body = await runScenario(scenario, urls)
    const section =
      `## ${scenario.title}\n\n${scenario.concurrency} concurrent, ${scenario.requests} requests a run, ${rounds} round${plural}.\n\n${body}`
    process.stdout.write(`${section}\n\n`)
    tables.push(section)
    // Beside the plain-call tables: the same calls, driven by Effect.forEach.
    if (scenario.tag === "plain C=256" && runForEach) tables.push(await forEachSection(burst.url))
  }
  if (runForEach && !scenarios.some((scenario) => scenario.tag === "plain C=256")) {
    tables.push(await forEachSection(burst.url))
  }

  const profiles: Array<Profiled> = []
  const ran = (tag: string) => profile && scenarios.some((scenario) => scenario.tag === tag)
  if (ran("plain C=64")) {
    profiles.push(
      await profileClient("Where the client's time goes", `plain calls, C = 64, ${requests64} requests`, {
        url: burst.url,
        concurrency: 64,
        requests: requests64,
        stream: false
      }, "request")
    )
  }
  // What is left per chunk of a stream paced token by token, and per short stream: the figures the streaming rows
  // compare with the official SDK.
  for (
    const scenario of scenarios.filter((scenario) => scenario.tag === "stream paced" || scenario.tag === "stream short")
  ) {
    if (!ran(scenario.tag) || !scenario.clients.includes("client")) continue
    profiles.push(
      await profileClient(
        `Where the client's time goes: ${scenario.title.toLowerCase()}`,
        `${scenario.title.toLowerCase()}, ${scenario.concurrency} concurrent, ${scenario.requests} streams`,
        {
          url: urls.get(scenario.server)!,
          concurrency: scenario.concurrency,
          requests: scenario.requests,
          stream: true,
          ...(scenario.warmup === undefined ? {} : { warmup: scenario.warmup })
        },
        scenario.per
      )
    )
  }

  stopping = true
  await stopServers()

  if (!write) process.stderr.write("bench: docs/benchmarks.md left as it is (a full run with --write rewrites it)\n")
  if (write) {
    fs.mkdirSync(path.dirname(docsFile), { recursive: true })
    fs.writeFileSync(docsFile, document(started, tables, profiles))
    process.stderr.write(`bench: wrote ${path.relative(repoDir, docsFile)}\n`)
  }
  process.stderr.write(`bench: done in ${((Date.now() - started.getTime()) / 1000).toFixed(0)} s\n`)
}

main().catch((error) => fail(String(error)))
