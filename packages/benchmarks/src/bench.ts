/**
 * The benchmark suite: starts the benchmark servers, runs every client in
 * interleaved rounds (each run a fresh `runner.ts` process), prints a table per
 * scenario and, with `--write`, writes them, with the machine and versions, to
 * docs/benchmarks.md.
 *
 *   tsx src/bench.ts [--rounds 3] [--requests 10000] [--requests-256 10000] [--stream-requests 200]
 *     [--foreach-requests 10000] [--quick] [--no-profile] [--only <substring>] [--scenario <substring>] [--write]
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
import { summarise } from "./profile.js"

// ---------------------------------------------------------------------------
// Processes
// ---------------------------------------------------------------------------

const packageDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..")
const repoDir = path.resolve(packageDir, "..", "..")
const docsFile = path.join(repoDir, "docs", "benchmarks.md")

const servers: Array<ChildProcess> = []
let stopping = false
let current: ChildProcess | undefined

/** Stops the servers and the run in progress, if any. */
const stopAll = () => {
  current?.kill("SIGTERM")
  for (const server of servers) {
    server.stdin?.end()
    if (server.exitCode === null) server.kill("SIGTERM")
  }
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
    "--foreach-requests",
    "--only",
    "--scenario"
  ].includes(previous)
  if (!isValue && !known.has(arg)) fail(`unknown option ${arg}; options: ${[...known].join(" ")}`)
})

/** The defaults, and those of `--quick`, a smoke run. */
// The plain-call defaults are 10000 rather than 20000 requests a run to keep a default run short on a 2-core machine.
const defaults = { rounds: 3, requests64: 10_000, requests256: 10_000, streamRequests: 200, forEachRequests: 10_000 }
const quickDefaults = { rounds: 1, requests64: 3_000, requests256: 3_000, streamRequests: 40, forEachRequests: 3_000 }

const quick = argv.includes("--quick")
const base = quick ? quickDefaults : defaults
const rounds = count("rounds", base.rounds)
const requests64 = count("requests", base.requests64)
const requests256 = count("requests-256", base.requests256)
const streamRequests = count("stream-requests", base.streamRequests)
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

const startServer = (name: string, answerTokens: number, perToken: number): Promise<Server> =>
  new Promise((resolve) => {
    const child = spawn(
      process.execPath,
      [
        "--conditions=@effect-inference/source",
        "--import",
        "tsx",
        "src/server.ts",
        "--answer-tokens",
        String(answerTokens),
        "--per-token",
        String(perToken)
      ],
      { cwd: packageDir, stdio: ["pipe", "pipe", "inherit"] }
    )
    servers.push(child)
    let output = ""
    const timer = setTimeout(() => fail(`server "${name}" did not print READY within 30 s`), 30_000)
    child.on("error", (error) => fail(`server "${name}" did not start: ${error.message}`))
    child.on("exit", (code, signal) => {
      if (!stopping) fail(`server "${name}" stopped (${signal ?? `exit code ${code}`})`)
    })
    child.stdout!.setEncoding("utf8")
    child.stdout!.on("data", (text: string) => {
      output += text
      const ready = output.match(/^READY (\S+)/m)
      if (ready !== null) {
        clearTimeout(timer)
        child.stdout!.removeAllListeners("data")
        child.stdout!.resume()
        resolve({ name, url: ready[1]! })
      }
    })
  })

/** Ends each server's input (which stops it) and waits for it, killing it after 5 s. */
const stopServers = () =>
  Promise.all(servers.map((server) =>
    new Promise<void>((resolve) => {
      if (server.exitCode !== null || server.signalCode !== null) return resolve()
      const timer = setTimeout(() => server.kill("SIGKILL"), 5_000)
      server.on("exit", () => {
        clearTimeout(timer)
        resolve()
      })
      server.stdin!.end()
    })
  ))

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
  readonly nodeFlags?: ReadonlyArray<string>
}

/** One measured run in a fresh process. */
const run = (options: RunOptions): Promise<Result> =>
  new Promise((resolve) => {
    const args = [
      ...(options.nodeFlags ?? []),
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
      ...(options.drive === undefined ? [] : ["--drive", options.drive])
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
}

const streamingClients = clients.filter((client) => ["undici", "openai", "client"].includes(client))
// The cost of each feature shows at C = 64; at C = 256 the clients alone, which keeps a default run within ten minutes.
const clients256 = clients.filter((client) => !client.startsWith("client:"))

const scenarios: ReadonlyArray<Scenario> = [
  {
    title: "Plain calls, C = 64",
    tag: "plain C=64",
    server: "burst",
    clients: clients.filter(selected),
    concurrency: 64,
    requests: requests64,
    stream: false
  },
  {
    title: "Plain calls, C = 256",
    tag: "plain C=256",
    server: "burst",
    clients: clients256.filter(selected),
    concurrency: 256,
    requests: requests256,
    stream: false
  },
  {
    title: "Streaming, 500 chunks, burst",
    tag: "stream burst",
    server: "stream-burst",
    clients: streamingClients.filter(selected),
    concurrency: 16,
    requests: streamRequests,
    stream: true
  },
  {
    title: "Streaming, 500 chunks, token-paced (1 ms a token)",
    tag: "stream paced",
    server: "stream-paced",
    clients: streamingClients.filter(selected),
    concurrency: 64,
    requests: streamRequests,
    stream: true
  }
].filter((scenario) =>
  // With --only, a scenario none of whose clients match has nothing to compare with undici.
  (only === undefined || scenario.clients.some((client) => client.includes(only))) &&
  (scenarioFilter === undefined || scenario.tag.includes(scenarioFilter))
)

/** The cost the tables compare: CPU per request, or per chunk when streaming. */
const cost = (scenario: Scenario, result: Result) =>
  result.cpuMicros / (scenario.stream ? Math.max(1, result.chunks) : Math.max(1, result.requests))

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
  const unit = scenario.stream ? "chunk" : "request"
  const allCosts = rows.flatMap((row) => row.costs)
  const digits = scenario.stream ? (median(allCosts) < 10 ? 2 : 1) : 0
  const range = rounds > 1 ? " median (min–max)" : ""
  return [
    `| client | CPU µs per ${unit}${range} | × undici${range} | req/s median | peak RSS MB median | heap after GC MB median |`,
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
        stream: scenario.stream
      })
      const c = cost(scenario, result)
      costs.set(client, c)
      const row = rows.get(client)!
      row.costs.push(c)
      row.rates.push(result.requests / result.wallMillis * 1000)
      row.rss.push(result.peakRssMb)
      row.heap.push(result.heapAfterGcMb)
      process.stderr.write(
        `[${scenario.tag}] round ${round}/${rounds} ${client.padEnd(30)} ${c.toFixed(scenario.stream ? 2 : 0)} µs/${
          scenario.stream ? "chunk" : "request"
        }  (${((Date.now() - started) / 1000).toFixed(1)} s)\n`
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

const profileClient = async (url: string): Promise<string> => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "bench-profile-"))
  try {
    process.stderr.write(`[profile] client, plain C=64, ${requests64} requests\n`)
    await run({
      client: "client",
      url,
      concurrency: 64,
      requests: requests64,
      stream: false,
      nodeFlags: ["--cpu-prof", `--cpu-prof-dir=${dir}`]
    })
    const files = fs.readdirSync(dir)
      .filter((file) => file.endsWith(".cpuprofile"))
      .map((file) => path.join(dir, file))
      .sort((a, b) => fs.statSync(b).size - fs.statSync(a).size)
    const largest = files[0] ?? fail(`no .cpuprofile written in ${dir}`)
    return summarise(JSON.parse(fs.readFileSync(largest, "utf8")) as Parameters<typeof summarise>[0], 20)
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

const document = (started: Date, tables: ReadonlyArray<string>, profileSummary: string | undefined) =>
  [
    "# Benchmarks",
    "",
    "Each figure is the CPU time (user + system) of the client's own process per request, or per streamed chunk, " +
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
    `\`--stream-requests N\` (${defaults.streamRequests}), \`--foreach-requests N\` for the forEach rows ` +
    `(${defaults.forEachRequests}), \`--only <substring>\` (those clients and undici), \`--scenario <substring>\` ` +
    "(the scenarios whose tag has it: `plain C=64`, `plain C=256`, `plain forEach`, `stream burst`, " +
    "`stream paced`), `--no-profile`, `--quick` for a smoke run. " +
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
    `${streamRequests} (streaming, 500 chunks each), ${forEachRequests} (plain, Effect.forEach)`,
    "",
    ...tables.flatMap((t) => [t, ""]),
    ...(profileSummary === undefined ? [] : [
      "## Where the client's time goes",
      "",
      `Self time in a CPU profile (\`node --cpu-prof\`) of one run of \`client\`, plain calls, C = 64, ` +
      `${requests64} requests (warm-up included).`,
      "",
      profileSummary,
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
  const [burst, streamBurst, streamPaced] = await Promise.all([
    startServer("burst", 20, 0),
    startServer("stream-burst", 500, 0),
    startServer("stream-paced", 500, 1)
  ])
  const urls = new Map([burst, streamBurst, streamPaced].map((server) => [server.name, server.url]))
  process.stderr.write(
    `bench: ${rounds} round${
      rounds === 1 ? "" : "s"
    }; ${requests64} / ${requests256} plain requests, ${streamRequests} streamed\n`
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

  let profileSummary: string | undefined
  if (profile && scenarios.some((scenario) => scenario.tag === "plain C=64")) {
    profileSummary = await profileClient(burst.url)
    process.stdout.write(`## Where the client's time goes\n\n${profileSummary}\n\n`)
  }

  stopping = true
  await stopServers()

  if (!write) process.stderr.write("bench: docs/benchmarks.md left as it is (a full run with --write rewrites it)\n")
  if (write) {
    fs.mkdirSync(path.dirname(docsFile), { recursive: true })
    fs.writeFileSync(docsFile, document(started, tables, profileSummary))
    process.stderr.write(`bench: wrote ${path.relative(repoDir, docsFile)}\n`)
  }
  process.stderr.write(`bench: done in ${((Date.now() - started.getTime()) / 1000).toFixed(0)} s\n`)
}

main().catch((error) => fail(String(error)))
