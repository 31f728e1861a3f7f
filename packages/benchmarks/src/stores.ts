/**
 * What the Redis stores cost per call: the same plain calls with the client's state in memory (the default)
 * and in `RedisStores.layer({ url })` on a loopback Redis, in interleaved rounds in one process, at C = 16
 * and C = 64 callers, with `maxConcurrency` = C and a `usage.budget` (so each call takes a concurrency lease,
 * a budget hold and its settlement, and the breaker's state, from the stores). Prints a table per C: µs of
 * CPU per call of this process (the client; `process.cpuUsage`), the wall latency of a call (p50, p99), calls
 * per second, and Redis's own CPU, scripts (one per store operation, each a round trip) and commands (those
 * the scripts call included) per call, from `INFO all` read before and after each run; then the added cost,
 * Redis − memory. Each run of `--calls` calls follows a warm-up of a fifth as many (at most 1000); each
 * figure is the median of the rounds.
 *
 *   pnpm --filter @effect-inference/benchmarks stores [--calls 5000] [--rounds 3]
 *
 * It starts a `redis-server` (it must be on PATH) on a free loopback port, in a temporary directory with no
 * persistence, and the simulator in a process of its own (`server.ts`, no pacing: an answer of 20 tokens at
 * once), so that neither's CPU counts as the client's; both are stopped at the end, on an error and on
 * SIGINT. The three processes share the machine's cores: on a small machine the latencies include waiting
 * for a core, in both rows alike. The stores run with `onUnavailable: "fail"`, so a call that Redis did not
 * answer stops the run rather than being measured on memory.
 */
import { InferenceClient } from "@effect-inference/client"
import * as UndiciHttpClient from "@effect-inference/client/UndiciHttpClient"
import { RedisStores } from "@effect-inference/redis"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import { type ChildProcess, spawn } from "node:child_process"
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { startSimulator, stopChildren, track } from "./processes.js"

const option = (name: string, fallback: number): number => {
  const at = process.argv.indexOf(`--${name}`)
  const value = at === -1 ? fallback : Number(process.argv[at + 1])
  if (!Number.isInteger(value) || value < 1) {
    process.stderr.write(`stores: --${name} takes a whole number of at least 1\n`)
    process.exit(2)
  }
  return value
}

const calls = option("calls", 5_000)
const rounds = option("rounds", 3)
const concurrencies = [16, 64]
const warmup = Math.min(1_000, Math.ceil(calls / 5))
const MODEL = "meta-llama/Llama-3.1-8B-Instruct"
const body = {
  model: MODEL,
  messages: [{ role: "user" as const, content: "Say something short about benchmarks." }],
  max_tokens: 20
}

// ---------------------------------------------------------------------------
// Processes: redis-server and the simulator, stopped however this one ends
// ---------------------------------------------------------------------------

let redisDir: string | undefined
let stopping = false

const stopAll = () => {
  stopping = true
  stopChildren("SIGTERM")
  if (redisDir !== undefined) fs.rmSync(redisDir, { recursive: true, force: true })
  redisDir = undefined
}

/** Stops the run: a benchmark that goes wrong has no figures to give. */
const fail = (message: string): never => {
  process.stderr.write(`stores: ${message}\n`)
  stopAll()
  return process.exit(1)
}

process.on("exit", stopAll)
process.on("SIGINT", () => fail("interrupted"))
process.on("SIGTERM", () => fail("terminated"))

/** A loopback port nobody listens on now: the OS picks it, we let it go. */
const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const server = net.createServer()
    server.on("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const address = server.address()
      const port = typeof address === "object" && address !== null ? address.port : 0
      server.close(() => resolve(port))
    })
  })

/**
 * One command to the Redis server on `port`, on a connection of its own, and its reply as text (a status or
 * a bulk string: `PING`, `INFO`), so that reading Redis's figures needs neither redis-cli nor a Redis client.
 */
const redisCommand = (port: number, ...args: Array<string>): Promise<string> =>
  new Promise((resolve, reject) => {
    const socket = net.connect({ port, host: "127.0.0.1" })
    let reply = Buffer.alloc(0)
    const finish = (text: string | undefined, error?: Error) => {
      socket.destroy()
      if (error === undefined) resolve(text ?? "")
      else reject(error)
    }
    socket.setTimeout(2_000, () => socket.destroy(new Error(`no answer to ${args[0]} within 2 s`)))
    socket.on("error", reject)
    socket.on("connect", () =>
      socket.write(`*${args.length}\r\n${args.map((arg) => `$${Buffer.byteLength(arg)}\r\n${arg}\r\n`).join("")}`))
    socket.on("data", (data) => {
      reply = Buffer.concat([reply, data])
      const end = reply.indexOf("\r\n")
      if (end === -1) {
        return
      }
      const head = reply.subarray(0, end).toString()
      if (head.startsWith("+")) {
        return finish(head.slice(1))
      }
      if (head.startsWith("-")) {
        return finish(undefined, new Error(`redis: ${head.slice(1)}`))
      }
      if (!head.startsWith("$")) {
        return finish(undefined, new Error(`redis: unexpected reply ${head}`))
      }
      const length = Number(head.slice(1))
      if (reply.length >= end + 2 + length) {
        finish(reply.subarray(end + 2, end + 2 + length).toString())
      }
    })
  })

interface Redis {
  readonly port: number
  readonly url: string
  readonly process: ChildProcess
}

const startRedis = async (): Promise<Redis> => {
  const port = await freePort()
  redisDir = fs.mkdtempSync(path.join(os.tmpdir(), "effect-inference-stores-"))
  const child = spawn(
    "redis-server",
    ["--port", String(port), "--bind", "127.0.0.1", "--dir", redisDir, "--save", "", "--appendonly", "no"],
    { stdio: ["ignore", "ignore", "inherit"] }
  )
  track(child)
  child.on(
    "error",
    (error) => fail(`redis-server did not start (${error.message}): install it (apt-get install -y redis-server)`)
  )
  child.on("exit", (code, signal) => {
    if (!stopping) fail(`redis-server stopped (${signal ?? `exit code ${code}`})`)
  })
  for (let tries = 0; tries < 100; tries++) {
    const answer = await redisCommand(port, "PING").catch(() => "")
    if (answer === "PONG") return { port, url: `redis://127.0.0.1:${port}`, process: child }
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  return fail(`redis-server did not answer on port ${port} within 5 s`)
}

/** The simulator in a process of its own (see server.ts): its URL once it listens. */
const startServer = async (): Promise<string> => {
  const server = startSimulator(["--answer-tokens", "20", "--per-token", "0"], { stderr: "inherit" })
  server.script.process.on("error", (error) => fail(`the simulator did not start: ${error.message}`))
  server.script.process.on("exit", (code, signal) => {
    if (!stopping) fail(`the simulator stopped (${signal ?? `exit code ${code}`})`)
  })
  const url = await server.ready
  return url ?? fail("the simulator did not print READY within 30 s")
}

interface RedisFigures {
  /** CPU time of the server, user + system. */
  readonly cpuMicros: number
  /** The scripts run (`EVALSHA`, `EVAL`): one per store operation, a round trip each. */
  readonly scripts: number
  /** Every command processed, those the scripts call included. */
  readonly commands: number
}

/** Redis's figures so far, from one `INFO all`. */
const redisFigures = async (port: number): Promise<RedisFigures> => {
  const info = await redisCommand(port, "INFO", "all")
  const field = (pattern: string, required = true) => {
    const value = info.match(new RegExp(`^${pattern}([0-9.]+)`, "m"))?.[1]
    return value === undefined ? (required ? fail(`INFO has no ${pattern}`) : 0) : Number(value)
  }
  return {
    cpuMicros: (field("used_cpu_user:") + field("used_cpu_sys:")) * 1e6,
    scripts: field("cmdstat_evalsha:calls=", false) + field("cmdstat_eval:calls=", false),
    commands: field("total_commands_processed:")
  }
}

// ---------------------------------------------------------------------------
// Measurement
// ---------------------------------------------------------------------------

const variants = ["memory (default)", "Redis on loopback"] as const
type Variant = typeof variants[number]

interface Run {
  readonly cpuMicrosPerCall: number
  readonly p50Millis: number
  readonly p99Millis: number
  readonly callsPerSecond: number
  readonly redisCpuMicrosPerCall: number
  readonly redisScriptsPerCall: number
  readonly redisCommandsPerCall: number
}

/**
 * `total` calls by `concurrency` workers, each taking the next call when its last one ends (as a server
 * handling `concurrency` requests at once does); each call's wall time into `latencies`, if given.
 */
const load = (
  call: Effect.Effect<unknown, unknown>,
  total: number,
  concurrency: number,
  latencies?: Float64Array
): Effect.Effect<void, unknown> =>
  Effect.suspend(() => {
    let started = 0
    const timed = Effect.suspend(() => {
      const i = started++
      const start = performance.now()
      return Effect.tap(call, () => {
        if (latencies !== undefined) latencies[i] = performance.now() - start
      })
    })
    const worker = Effect.whileLoop({ while: () => started < total, body: () => timed, step: () => {} })
    return Effect.all(Array.from({ length: concurrency }, () => worker), { concurrency: "unbounded", discard: true })
  })

const percentile = (sorted: Float64Array, p: number): number =>
  sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)]!

const gc = () => (globalThis as { gc?: () => void }).gc?.()

/** One measured run of `calls` calls, after a warm-up. */
const measure = (
  call: Effect.Effect<unknown, unknown>,
  concurrency: number,
  redisPort: number
): Effect.Effect<Run, unknown> =>
  Effect.gen(function*() {
    yield* load(call, warmup, concurrency)
    gc()
    const latencies = new Float64Array(calls)
    const redisBefore = yield* Effect.promise(() => redisFigures(redisPort))
    const cpu = process.cpuUsage()
    const start = performance.now()
    yield* load(call, calls, concurrency, latencies)
    const wallMillis = performance.now() - start
    const used = process.cpuUsage(cpu)
    const redisAfter = yield* Effect.promise(() => redisFigures(redisPort))
    latencies.sort()
    return {
      cpuMicrosPerCall: (used.user + used.system) / calls,
      p50Millis: percentile(latencies, 0.5),
      p99Millis: percentile(latencies, 0.99),
      callsPerSecond: calls / (wallMillis / 1000),
      redisCpuMicrosPerCall: (redisAfter.cpuMicros - redisBefore.cpuMicros) / calls,
      redisScriptsPerCall: (redisAfter.scripts - redisBefore.scripts) / calls,
      // Less the INFO read before, counted once it had run.
      redisCommandsPerCall: (redisAfter.commands - redisBefore.commands - 1) / calls
    }
  })

/**
 * The two clients at `concurrency`, built once (as an application builds its client) and measured in
 * interleaved rounds, the first of each round alternating so that a drift of the machine falls on both.
 */
const measureAt = (concurrency: number, simulatorUrl: string, redis: Redis) =>
  Effect.gen(function*() {
    const options: InferenceClient.Options = {
      apiKey: Redacted.make("bench-key"),
      baseUrl: simulatorUrl,
      maxConcurrency: concurrency,
      // Far above what the calls cost, so that every call is admitted: the budget is here for its hold and
      // its settlement on each call, not to stop any.
      usage: { budget: { usd: 1_000_000, period: "1 day" } }
    }
    const onMemory = yield* InferenceClient.make(options)
    // A prefix of its own for each C, so that the second starts from no state of the first.
    const stores = yield* Layer.build(
      RedisStores.layer({ url: redis.url, keyPrefix: `bench-stores:c${concurrency}:`, onUnavailable: "fail" })
    )
    const onRedis = yield* InferenceClient.make(options).pipe(Effect.provide(stores))
    const callOf: Record<Variant, Effect.Effect<unknown, unknown>> = {
      "memory (default)": onMemory.chatCompletion(body),
      "Redis on loopback": onRedis.chatCompletion(body)
    }
    const runs: Record<Variant, Array<Run>> = { "memory (default)": [], "Redis on loopback": [] }
    for (let round = 0; round < rounds; round++) {
      const order = round % 2 === 0 ? variants : [...variants].reverse()
      for (const variant of order) {
        runs[variant].push(yield* measure(callOf[variant], concurrency, redis.port))
        process.stderr.write(`stores: C = ${concurrency}, round ${round + 1} of ${rounds}, ${variant}: done\n`)
      }
    }
    return runs
  }).pipe(Effect.scoped)

// ---------------------------------------------------------------------------
// Report
// ---------------------------------------------------------------------------

const median = (values: ReadonlyArray<number>): number => {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.floor(sorted.length / 2)]!
}

const medians = (runs: ReadonlyArray<Run>): Run => ({
  cpuMicrosPerCall: median(runs.map((run) => run.cpuMicrosPerCall)),
  p50Millis: median(runs.map((run) => run.p50Millis)),
  p99Millis: median(runs.map((run) => run.p99Millis)),
  callsPerSecond: median(runs.map((run) => run.callsPerSecond)),
  redisCpuMicrosPerCall: median(runs.map((run) => run.redisCpuMicrosPerCall)),
  redisScriptsPerCall: median(runs.map((run) => run.redisScriptsPerCall)),
  redisCommandsPerCall: median(runs.map((run) => run.redisCommandsPerCall))
})

const signed = (value: number, digits: number) => `${value >= 0 ? "+" : "−"}${Math.abs(value).toFixed(digits)}`

const range = (runs: ReadonlyArray<Run>) => {
  const values = runs.map((run) => run.cpuMicrosPerCall)
  return runs.length < 2 ? "" : ` (${Math.min(...values).toFixed(0)}–${Math.max(...values).toFixed(0)})`
}

const table = (concurrency: number, runs: Record<Variant, Array<Run>>): string => {
  const memory = medians(runs["memory (default)"])
  const redis = medians(runs["Redis on loopback"])
  const row = (name: string, f: Run, spread: string) =>
    `| ${name} | ${f.cpuMicrosPerCall.toFixed(0)}${spread} | ${f.p50Millis.toFixed(2)} | ${f.p99Millis.toFixed(2)} | ${
      f.callsPerSecond.toFixed(0)
    } | ${f.redisCpuMicrosPerCall.toFixed(0)} | ${f.redisScriptsPerCall.toFixed(1)} (${
      f.redisCommandsPerCall.toFixed(0)
    }) |`
  return [
    `### Plain calls, C = ${concurrency} (maxConcurrency ${concurrency}, a budget)`,
    "",
    "| stores | client CPU µs per call | p50 ms | p99 ms | calls/s | Redis CPU µs per call | Redis scripts (commands) per call |",
    "|---|--:|--:|--:|--:|--:|--:|",
    row("memory (default)", memory, range(runs["memory (default)"])),
    row("Redis on loopback", redis, range(runs["Redis on loopback"])),
    `| added (Redis − memory) | ${signed(redis.cpuMicrosPerCall - memory.cpuMicrosPerCall, 0)} | ${
      signed(redis.p50Millis - memory.p50Millis, 2)
    } | ${signed(redis.p99Millis - memory.p99Millis, 2)} | ${
      signed(redis.callsPerSecond - memory.callsPerSecond, 0)
    } (${signed((redis.callsPerSecond / memory.callsPerSecond - 1) * 100, 0)}%) | ${
      signed(redis.redisCpuMicrosPerCall - memory.redisCpuMicrosPerCall, 0)
    } | ${signed(redis.redisScriptsPerCall - memory.redisScriptsPerCall, 1)} (${
      signed(redis.redisCommandsPerCall - memory.redisCommandsPerCall, 0)
    }) |`,
    ""
  ].join("\n")
}

const main = async () => {
  const [redis, simulatorUrl] = await Promise.all([startRedis(), startServer()])
  const version = (await redisCommand(redis.port, "INFO", "server")).match(/^redis_version:(\S+)/m)?.[1] ?? "?"
  const redisAtStart = await redisFigures(redis.port)
  process.stdout.write(
    `Redis ${version} on 127.0.0.1:${redis.port}, the simulator at ${simulatorUrl} (no pacing, 20 tokens an answer); ` +
      `node ${process.version}, ${os.cpus().length} CPUs. ${calls} calls a run after ${warmup} to warm up, ` +
      `${rounds} interleaved rounds; each figure is the median of the rounds (client CPU: its range in brackets).\n\n`
  )
  for (const concurrency of concurrencies) {
    const runs = await Effect.runPromise(
      measureAt(concurrency, simulatorUrl, redis).pipe(Effect.provide(UndiciHttpClient.layer))
    )
    process.stdout.write(`${table(concurrency, runs)}\n`)
  }
  const redisAtEnd = await redisFigures(redis.port)
  process.stdout.write(
    `redis-server's CPU over the whole run (warm-ups included): ${
      ((redisAtEnd.cpuMicros - redisAtStart.cpuMicros) / 1e6).toFixed(2)
    } s for ${redisAtEnd.commands - redisAtStart.commands} commands.\n`
  )
}

main().then(
  () => {
    stopAll()
    process.exit(0)
  },
  (error: unknown) => fail(String(error))
)
