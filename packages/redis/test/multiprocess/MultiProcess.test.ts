/**
 * Several client processes sharing one concurrency limit, one budget and one
 * breaker through the Redis stores: real OS processes (`worker.ts`, each an
 * `InferenceClient` over `UndiciHttpClient` with `RedisStores.layer` in
 * context), a real `redis-server`, and the simulator of W&B Inference in this
 * process. Each test has a key prefix of its own (or a server of its own), and
 * its processes are killed when it ends, however it ends.
 *
 * Requests in the simulator's log are told apart by their `user` field, which
 * each worker sets to its name.
 *
 * The assertions wait for conditions in bounded loops and compare counts, not
 * durations, so that a loaded machine makes the tests slower, not red.
 */
import { Fault, InferenceSimulator } from "@effect-inference/testing"
import { assert, describe, it, layer } from "@effect/vitest"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import type { Redis } from "ioredis"
import * as Processes from "../utils/Processes.js"
import * as RedisServer from "../utils/RedisServer.js"
import { uniquePrefix } from "../utils/Stores.js"
import type * as Holder from "./holder.js"
import type * as Worker from "./worker.js"

const MODEL = "meta-llama/Llama-3.1-8B-Instruct"
const PROJECT = "acme/shared"
/** The servers' password: it must never appear in what a process prints. */
const PASSWORD = "multi-process-secret-7d1f"
/** Each test's bound, far above what it takes (a few seconds), for a machine shared with other work. */
const TIMEOUT = 90_000

type Entry = InferenceSimulator.LogEntry
type Done = Extract<Worker.Message, { readonly _tag: "Done" }>

// -- processes -------------------------------------------------------------------------------------------------------

interface Client {
  readonly name: string
  readonly process: Processes.Child
  /** Sends a batch; `done` waits for its result. */
  readonly start: (batch: Worker.Batch) => Effect.Effect<void>
  readonly done: Effect.Effect<Done>
  readonly run: (batch: Worker.Batch) => Effect.Effect<Done>
}

interface Setup {
  readonly simulator: InferenceSimulator.Service
  readonly redisUrl: string
  readonly keyPrefix: string
  readonly onUnavailable?: "local" | "fail"
}

/** The options every client here shares: one project, no retries (so that a request is a call), a timeout. */
const baseOptions: Worker.ClientOptions = { project: PROJECT, retry: false, timeout: "10 seconds" }

/** Starts a worker and waits until its client is built. */
const client = (
  setup: Setup,
  name: string,
  options: Worker.ClientOptions,
  maxTokens?: number
): Effect.Effect<Client, never, Scope.Scope> =>
  Effect.gen(function*() {
    const config: Worker.Config = {
      name,
      baseUrl: setup.simulator.url,
      apiKey: "sim-key",
      redis: {
        url: setup.redisUrl,
        keyPrefix: setup.keyPrefix,
        onUnavailable: setup.onUnavailable ?? "local",
        timeout: "500 millis"
      },
      client: { ...baseOptions, ...options },
      model: MODEL,
      maxTokens
    }
    const child = yield* Processes.start("test/multiprocess/worker.ts", config)
    const ready = yield* child.next<Worker.Message>(60_000)
    assert.strictEqual(ready._tag, "Ready")
    const done = child.next<Done>(60_000)
    const start = (batch: Worker.Batch) => child.send(batch)
    return { name, process: child, start, done, run: (batch) => Effect.zipRight(start(batch), done) }
  })

/** Starts the workers side by side (each is a node process that loads the client's sources). */
const clients = (
  setup: Setup,
  names: ReadonlyArray<string>,
  options: Worker.ClientOptions,
  maxTokens?: number
) => Effect.forEach(names, (name) => client(setup, name, options, maxTokens), { concurrency: "unbounded" })

/** Sends `batch` to every client at once, then waits for every result. */
const runAll = (all: ReadonlyArray<Client>, batch: Worker.Batch) =>
  Effect.zipRight(
    Effect.forEach(all, (c) => c.start(batch), { discard: true }),
    Effect.forEach(all, (c) => c.done)
  )

/** Nothing a process printed holds the Redis password. */
const noPassword = (children: ReadonlyArray<Processes.Child>) => {
  for (const child of children) assert.notInclude(child.output(), PASSWORD, `output of process ${child.pid}`)
}

const total = (results: ReadonlyArray<Done>, tag: string) => results.reduce((n, r) => n + (r.failures[tag] ?? 0), 0)
const succeeded = (results: ReadonlyArray<Done>) => results.reduce((n, r) => n + r.succeeded, 0)

/** Every call of every batch ended in a success or a typed error: none lost, none a defect or an interruption. */
const allAccountedFor = (results: ReadonlyArray<Done>) => {
  for (const result of results) {
    const failed = Object.values(result.failures).reduce((a, b) => a + b, 0)
    assert.strictEqual(result.succeeded + failed, result.calls, JSON.stringify(result))
    assert.notProperty(result.failures, "Defect", JSON.stringify(result.messages))
    assert.notProperty(result.failures, "Interrupted")
  }
}

// -- the simulator's log ---------------------------------------------------------------------------------------------

const chatLog = (simulator: InferenceSimulator.Service) =>
  Effect.map(simulator.log, (log) => log.filter((entry) => entry.path === "/v1/chat/completions"))

const userOf = (entry: Entry): unknown =>
  typeof entry.body === "object" && entry.body !== null ? (entry.body as { readonly user?: unknown }).user : undefined

const from = (log: ReadonlyArray<Entry>, ...names: ReadonlyArray<string>) =>
  log.filter((entry) => names.includes(String(userOf(entry))))

/** Whether requests of two different processes were answered at the same time. */
const overlapped = (log: ReadonlyArray<Entry>): boolean =>
  log.some((a) =>
    log.some((b) =>
      userOf(a) !== userOf(b) && a.admittedAt !== undefined && b.admittedAt !== undefined &&
      a.admittedAt < (b.endedAt ?? Infinity) && b.admittedAt < (a.endedAt ?? Infinity)
    )
  )

// -- waiting ---------------------------------------------------------------------------------------------------------

/** Waits (polling every 25 ms) until `condition` holds; a defect naming `what` after `timeoutMillis`. */
const eventually = <E, R>(what: string, condition: Effect.Effect<boolean, E, R>, timeoutMillis = 20_000) =>
  Effect.gen(function*() {
    const deadline = Date.now() + timeoutMillis
    while (!(yield* condition)) {
      if (Date.now() > deadline) return yield* Effect.dieMessage(`timed out waiting for ${what}`)
      yield* Effect.sleep("25 millis")
    }
  })

// -- Redis -----------------------------------------------------------------------------------------------------------

/** The server's clock, in epoch milliseconds: the one leases expire by. */
const serverTime = (redis: Redis) =>
  Effect.promise(() => redis.time()).pipe(
    Effect.map(([seconds, micros]) => Number(seconds) * 1000 + Number(micros) / 1000)
  )

/** The leases of the client's concurrency key: lease id → expiry, in the server's epoch milliseconds. */
const leases = (redis: Redis, key: string) =>
  Effect.promise(() => redis.zrange(key, 0, "-1", "WITHSCORES")).pipe(
    Effect.map((flat) => {
      const all = new Map<string, number>()
      for (let i = 0; i < flat.length; i += 2) all.set(flat[i]!, Number(flat[i + 1]))
      return all
    })
  )

/** The Redis keys of a client of `simulator`, under `keyPrefix` (see docs/stores.md and RedisStores). */
const keysOf = (setup: Setup) => ({
  concurrency: `${setup.keyPrefix}concurrency:concurrency ${setup.simulator.url} ${PROJECT}`,
  budget: `${setup.keyPrefix}budget:budget ${setup.simulator.url} ${PROJECT}`,
  breaker: `${setup.keyPrefix}circuit-breaker:${setup.simulator.url} ${MODEL}`
})

// -- the tests -------------------------------------------------------------------------------------------------------

describe("several processes over the Redis stores", () => {
  layer(RedisServer.layer({ password: PASSWORD }), { excludeTestServices: true })("one Redis", (it) => {
    it.scoped(
      "4 processes of 50 calls at concurrency 64 keep to a shared maxConcurrency of 16: at most 16 in flight, no 429",
      () =>
        Effect.gen(function*() {
          const server = yield* RedisServer.Server
          const simulator = yield* InferenceSimulator.make({ concurrencyLimit: 16, perToken: "3 millis" })
          const setup: Setup = { simulator, redisUrl: server.url, keyPrefix: uniquePrefix() }
          const all = yield* clients(setup, ["p1", "p2", "p3", "p4"], { maxConcurrency: 16 })

          const results = yield* runAll(all, { calls: 50, concurrency: 64 })
          const log = yield* chatLog(simulator)

          allAccountedFor(results)
          assert.strictEqual(succeeded(results), 200, JSON.stringify(results.map((r) => r.messages)))
          assert.strictEqual(log.length, 200)
          assert.strictEqual(log.filter((entry) => entry.status === 429).length, 0, "429s")
          assert.isAtMost(InferenceSimulator.peakInFlight(log), 16, "requests answered at once")
          // The processes did run at the same time: the bound above is the shared limit's doing.
          assert.isTrue(overlapped(log), "requests of different processes in flight together")
          noPassword(all.map((c) => c.process))
        }),
      TIMEOUT
    )

    it.scoped(
      "4 processes with adaptive concurrency and no maxConcurrency below 64 find the project's limit of 16 together: 429s at most 3%",
      () =>
        Effect.gen(function*() {
          const server = yield* RedisServer.Server
          const simulator = yield* InferenceSimulator.make({ concurrencyLimit: 16, perToken: "2 millis" })
          const setup: Setup = { simulator, redisUrl: server.url, keyPrefix: uniquePrefix() }
          // Retried (a refused call goes back in line), so that every call ends answered.
          const retry = { maxRetries: 20, baseDelay: "20 millis", maxDelay: "200 millis", jitter: false } as const
          const all = yield* clients(setup, ["p1", "p2", "p3", "p4"], { retry })

          const results = yield* runAll(all, { calls: 500, concurrency: 64 })
          const log = yield* chatLog(simulator)

          allAccountedFor(results)
          assert.strictEqual(succeeded(results), 2000, JSON.stringify(results.map((r) => r.messages)))
          const refused = log.filter((entry) => entry.status === 429)
          assert.isAtMost(refused.length, 0.03 * log.length, `${refused.length} of ${log.length} requests refused`)
          // Converged: the second half of the run is nearly free of 429s (a probe now and then).
          const half = log[Math.floor(log.length / 2)]!.at
          assert.isAtMost(refused.filter((entry) => entry.at >= half).length, 0.01 * log.length)
          assert.isTrue(overlapped(log), "requests of different processes in flight together")
          noPassword(all.map((c) => c.process))
        }),
      TIMEOUT
    )

    it.scoped(
      "a budget of 10 calls' cost shared by 4 processes lets 10 requests through; a fifth process started later finds it spent",
      () =>
        Effect.gen(function*() {
          const server = yield* RedisServer.Server
          const redis = yield* server.client
          // Every answer is 16 tokens long, cut to max_tokens: each call uses its whole completion budget.
          const simulator = yield* InferenceSimulator.make({ answerTokens: [16, 16], perToken: "2 millis" })
          const setup: Setup = { simulator, redisUrl: server.url, keyPrefix: uniquePrefix() }
          // A call reserves its prompt estimate at the input price and max_tokens at the output price
          // (docs/usage-and-budgets.md). With the prompt free, the reservation is exactly what the call then
          // spends, 8 tokens at the output price, so no settlement gives anything back to make room for an
          // 11th call; the budget is 10.5 reservations, so that rounding cannot refuse the 10th.
          const maxTokens = 8
          const price = { input: 0, output: 0.22 }
          const reservation = maxTokens * price.output / 1_000_000
          const options: Worker.ClientOptions = {
            usage: { prices: { [MODEL]: price }, budget: { usd: 10.5 * reservation } }
          }
          const all = yield* clients(setup, ["p1", "p2", "p3", "p4"], options, maxTokens)

          const results = yield* runAll(all, { calls: 10, concurrency: 10 })
          const log = yield* chatLog(simulator)

          allAccountedFor(results)
          assert.strictEqual(log.length, 10, "requests that reached the simulator")
          assert.strictEqual(succeeded(results), 10)
          assert.strictEqual(total(results, "BudgetExceededError"), 30, JSON.stringify(results.map((r) => r.messages)))
          const spent = Number(yield* Effect.promise(() => redis.hget(keysOf(setup).budget, "usd.spent")))
          assert.closeTo(spent, 10 * reservation, 1e-12, "spent, as Redis keeps it")

          const late = yield* client(setup, "p5", options, maxTokens)
          const lateResult = yield* late.run({ calls: 1, concurrency: 1 })
          assert.deepStrictEqual(lateResult.failures, { BudgetExceededError: 1 }, "the budget outlived the processes")
          assert.include(lateResult.messages.BudgetExceededError, "Nothing was sent")
          assert.strictEqual((yield* chatLog(simulator)).length, 10, "nothing more was sent")
          noPassword([...all, late].map((c) => c.process))
        }),
      TIMEOUT
    )

    it.scoped(
      "once one process's breaker opens the others fail fast without sending; on recovery at most halfOpenProbes are sent in all",
      () =>
        Effect.gen(function*() {
          const server = yield* RedisServer.Server
          const redis = yield* server.client
          const simulator = yield* InferenceSimulator.make({ perToken: "5 millis" })
          const setup: Setup = { simulator, redisUrl: server.url, keyPrefix: uniquePrefix() }
          const breakerState = Effect.map(
            Effect.promise(() => redis.hget(keysOf(setup).breaker, "state")),
            (json) => JSON.parse(json ?? "null") as { readonly state: string; readonly openUntil: number | null } | null
          )
          const halfOpenProbes = 2
          const options: Worker.ClientOptions = {
            circuitBreaker: { consecutiveFailures: 3, failureRate: false, breakDuration: "2 seconds", halfOpenProbes }
          }
          const [a, ...others] = yield* clients(setup, ["a", "b", "c", "d"], options)
          yield* simulator.setFaultRate(1, [Fault.overloaded])

          // a's calls, one after another, trip the breaker after 3 503s.
          const tripped = yield* a.run({ calls: 6, concurrency: 1 })
          assert.deepStrictEqual(tripped.failures, { ServiceUnavailableError: 3, CircuitOpenError: 3 })
          assert.strictEqual(from(yield* chatLog(simulator), "a").length, 3)
          const open = yield* breakerState
          assert.strictEqual(open?.state, "open")

          // The others, in the same break, are refused before sending.
          const refused = yield* runAll(others, { calls: 5, concurrency: 5 })
          for (const result of refused) assert.deepStrictEqual(result.failures, { CircuitOpenError: 5 })
          assert.strictEqual(from(yield* chatLog(simulator), "b", "c", "d").length, 0, "requests of b, c and d")

          // The service recovers; after the break every process calls at once.
          yield* simulator.setFaultRate(0)
          const before = (yield* chatLog(simulator)).length
          yield* eventually("the end of the break", Effect.sync(() => Date.now() > open!.openUntil! + 10))
          const recovery = yield* runAll([a, ...others], { calls: 5, concurrency: 5 })
          const sent = (yield* chatLog(simulator)).slice(before).sort((x, y) => x.at - y.at)

          allAccountedFor(recovery)
          for (const result of recovery) {
            assert.deepStrictEqual(Object.keys(result.failures).filter((tag) => tag !== "CircuitOpenError"), [])
          }
          assert.strictEqual(succeeded(recovery), sent.length, "every request sent succeeded")
          assert.isAtLeast(sent.length, halfOpenProbes)
          // The probes are the first requests; no other was admitted before both had been answered (the breaker
          // closes only then), whichever process made it.
          const probes = sent.slice(0, halfOpenProbes)
          const closedAt = Math.max(...probes.map((probe) => probe.endedAt ?? Infinity))
          const duringProbes = sent.slice(halfOpenProbes).filter((entry) => entry.at < closedAt)
          assert.deepStrictEqual(duringProbes.map(userOf), [], "requests sent while half-open beyond the probes")
          assert.strictEqual((yield* breakerState)?.state, "closed")
          noPassword([a, ...others].map((c) => c.process))
        }),
      TIMEOUT
    )

    it.scoped(
      "a process killed with SIGKILL keeps its slots counted until their 30 s leases end; the others go on in the rest",
      () =>
        Effect.gen(function*() {
          const server = yield* RedisServer.Server
          const redis = yield* server.client
          const simulator = yield* InferenceSimulator.make({ concurrencyLimit: 16, perToken: "2 millis" })
          const setup: Setup = { simulator, redisUrl: server.url, keyPrefix: uniquePrefix() }
          const key = keysOf(setup).concurrency
          const [victim, ...others] = yield* clients(setup, ["victim", "b", "c"], { maxConcurrency: 16 })

          // The victim's 8 calls hang, each holding a slot.
          yield* simulator.script(...Array.from({ length: 8 }, () => Fault.hang))
          yield* victim.start({ calls: 8, concurrency: 8 })
          yield* eventually(
            "the victim's 8 requests and leases",
            Effect.zipWith(
              chatLog(simulator),
              leases(redis, key),
              (log, held) => from(log, "victim").length === 8 && held.size === 8
            )
          )
          yield* victim.process.kill("SIGKILL")
          assert.strictEqual((yield* victim.process.exited).signal, "SIGKILL")

          // Nobody gave the slots back; each comes back by itself within the lease time.
          const now = yield* serverTime(redis)
          const orphaned = yield* leases(redis, key)
          assert.strictEqual(orphaned.size, 8)
          for (const expiry of orphaned.values()) {
            assert.isAbove(expiry, now)
            assert.isAtMost(expiry, now + 30_000, "a lease ends within 30 s of its last renewal")
          }

          const results = yield* runAll(others, { calls: 50, concurrency: 64 })
          const log = from(yield* chatLog(simulator), "b", "c")
          allAccountedFor(results)
          assert.strictEqual(succeeded(results), 100, JSON.stringify(results.map((r) => r.messages)))
          assert.isAtMost(InferenceSimulator.peakInFlight(log), 8, "b and c shared the 8 slots the victim left")
          assert.strictEqual(log.filter((entry) => entry.status === 429).length, 0, "429s")
          assert.deepStrictEqual([...(yield* leases(redis, key)).keys()], [...orphaned.keys()], "still the victim's")
          noPassword([victim, ...others].map((c) => c.process))
        }),
      TIMEOUT
    )

    it.scoped(
      "slots held by a process killed with SIGKILL come back when their leases end, and a client process goes on",
      () =>
        Effect.gen(function*() {
          const server = yield* RedisServer.Server
          const redis = yield* server.client
          const simulator = yield* InferenceSimulator.make({ concurrencyLimit: 16, perToken: "2 millis" })
          const setup: Setup = { simulator, redisUrl: server.url, keyPrefix: uniquePrefix() }
          const leaseMillis = 2_000
          // The holder takes 12 of the 16 slots under the client's key, with a lease of 2 s (see holder.ts).
          const holderConfig: Holder.Config = {
            redis: { url: server.url, keyPrefix: setup.keyPrefix },
            key: `concurrency ${simulator.url} ${PROJECT}`,
            limit: 16,
            slots: 12,
            leaseMillis
          }
          const [holder, [b]] = yield* Effect.all([
            Processes.start("test/multiprocess/holder.ts", holderConfig),
            clients(setup, ["b"], { maxConcurrency: 16 })
          ], { concurrency: "unbounded" })
          const holding = yield* holder.next<Holder.Holding>(60_000)
          assert.strictEqual(holding._tag, "Holding")

          // Killed while b's batch runs on the 4 slots left.
          yield* b.start({ calls: 60, concurrency: 64 })
          yield* eventually("b's first requests", Effect.map(chatLog(simulator), (log) => log.length >= 4))
          yield* holder.kill("SIGKILL")
          assert.strictEqual((yield* holder.exited).signal, "SIGKILL")
          const killedAt = yield* serverTime(redis)
          const expiries = [...(yield* leases(redis, keysOf(setup).concurrency)).entries()]
            .filter(([id]) => holding.leases.includes(id))
            .map(([, expiry]) => expiry)
          assert.strictEqual(expiries.length, 12, "the holder's leases, not given back")
          for (const expiry of expiries) assert.isAtMost(expiry, killedAt + leaseMillis)
          yield* eventually(
            "the holder's leases to end",
            Effect.zipWith(
              serverTime(redis),
              leases(redis, keysOf(setup).concurrency),
              (now, held) => holding.leases.every((id) => !((held.get(id) ?? 0) > now))
            )
          )

          const first = yield* b.done
          allAccountedFor([first])
          assert.strictEqual(first.succeeded, 60, JSON.stringify(first.messages))
          const whileHeld = (yield* chatLog(simulator)).filter((entry) =>
            entry.admittedAt !== undefined && entry.admittedAt < Math.min(...expiries)
          )
          assert.isAbove(whileHeld.length, 0)
          assert.isAtMost(InferenceSimulator.peakInFlight(whileHeld), 4, "b in flight while the holder's leases lived")

          // Its slots are free again: b alone takes more than the 4 it had.
          const before = (yield* chatLog(simulator)).length
          const second = yield* b.run({ calls: 50, concurrency: 64 })
          assert.strictEqual(second.succeeded, 50, JSON.stringify(second.messages))
          const after = (yield* chatLog(simulator)).slice(before)
          assert.isAbove(InferenceSimulator.peakInFlight(after), 4, "b in flight once the leases ended")
          assert.isAtMost(InferenceSimulator.peakInFlight(after), 16)
          noPassword([holder, b.process])
        }),
      TIMEOUT
    )
  })

  describe("Redis restarted mid-run", () => {
    it.scopedLive(
      "onUnavailable local: every call ends in a success or a typed error, every process exits, and Redis is used again",
      () =>
        Effect.gen(function*() {
          const server = yield* RedisServer.make({ password: PASSWORD })
          const redis = yield* server.client
          // It loses its connection too, when the server stops: an error to expect, not to print.
          redis.on("error", () => {})
          const simulator = yield* InferenceSimulator.make({ perToken: "5 millis" })
          const setup: Setup = { simulator, redisUrl: server.url, keyPrefix: uniquePrefix(), onUnavailable: "local" }
          // A budget far from spent, so that each call leaves a key that outlives it (a budget without a period).
          const options: Worker.ClientOptions = { maxConcurrency: 16, usage: { budget: { usd: 1_000 } } }
          const all = yield* clients(setup, ["p1", "p2"], options)
          const calls = 150

          yield* Effect.forEach(all, (c) => c.start({ calls, concurrency: 32 }), { discard: true })
          yield* eventually("the first 60 requests", Effect.map(chatLog(simulator), (log) => log.length >= 60))
          yield* server.stop
          const stoppedAt = (yield* chatLog(simulator)).length
          yield* Effect.sleep("500 millis")
          const beforeRestart = (yield* chatLog(simulator)).length
          yield* server.start
          const results = yield* Effect.forEach(all, (c) => c.done)

          assert.deepStrictEqual(results.map((r) => r.calls), [calls, calls])
          allAccountedFor(results)
          assert.isBelow(stoppedAt, 2 * calls, "Redis stopped mid-run")
          assert.isAbove(beforeRestart, stoppedAt, "calls went on while Redis was down")

          // The restart lost every key (no persistence): the next calls write them again once the stores are back.
          yield* eventually(
            "the stores on Redis again",
            Effect.gen(function*() {
              yield* runAll(all, { calls: 2, concurrency: 2 })
              return (yield* Effect.promise(() => redis.exists(keysOf(setup).budget))) === 1
            })
          )
          yield* Effect.forEach(all, (c) => c.process.end, { discard: true })
          for (const c of all) {
            const exit = yield* c.process.exited.pipe(
              Effect.timeoutFail({ duration: "20 seconds", onTimeout: () => c })
            )
            assert.deepStrictEqual(exit, { code: 0, signal: null }, `${c.name} exited`)
          }
          noPassword(all.map((c) => c.process))
        }),
      TIMEOUT
    )

    // With "fail", a store that cannot answer at admission fails the call with CoordinationError (InferenceError.ts).
    it.scopedLive(
      "onUnavailable fail: calls made while Redis is down fail with CoordinationError before sending; then calls succeed again",
      () =>
        Effect.gen(function*() {
          const server = yield* RedisServer.make({ password: PASSWORD })
          const simulator = yield* InferenceSimulator.make({ perToken: "2 millis" })
          const setup: Setup = { simulator, redisUrl: server.url, keyPrefix: uniquePrefix(), onUnavailable: "fail" }
          const all = yield* clients(setup, ["p1", "p2"], { maxConcurrency: 16 })

          const up = yield* runAll(all, { calls: 5, concurrency: 5 })
          assert.strictEqual(succeeded(up), 10, JSON.stringify(up.map((r) => r.messages)))

          yield* server.stop
          const before = (yield* chatLog(simulator)).length
          const down = yield* runAll(all, { calls: 10, concurrency: 10 })
          allAccountedFor(down)
          for (const result of down) {
            assert.deepStrictEqual(result.failures, { CoordinationError: 10 }, JSON.stringify(result.messages))
          }
          assert.strictEqual((yield* chatLog(simulator)).length, before, "nothing was sent while Redis was down")

          yield* server.start
          yield* eventually(
            "calls to succeed again",
            Effect.map(runAll(all, { calls: 1, concurrency: 1 }), (results) => succeeded(results) === 2)
          )
          noPassword(all.map((c) => c.process))
        }),
      TIMEOUT
    )
  })
})
