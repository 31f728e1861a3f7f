import * as BudgetStore from "@effect-inference/client/BudgetStore"
import * as CircuitBreakerStore from "@effect-inference/client/CircuitBreakerStore"
import * as ConcurrencyStore from "@effect-inference/client/ConcurrencyStore"
import * as RateLimit from "@effect-inference/client/RateLimit"
import * as RateLimitStore from "@effect-inference/client/RateLimitStore"
import { assert, describe, it, layer } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Schedule from "effect/Schedule"
import { RedisStores } from "../src/index.js"
import * as Logs from "./utils/Logs.js"
import * as RedisServer from "./utils/RedisServer.js"
import * as Stores from "./utils/Stores.js"

const leaseMillis = 30_000
const tokens: RateLimitStore.Limits = { requests: undefined, tokens: { limit: 100, intervalMillis: 60_000 } }
const budget: BudgetStore.Limits = { usd: 1, tokens: undefined, periodMillis: undefined, origin: 0, thresholds: [] }
const breaker: CircuitBreakerStore.BreakerState = Stores.breakerState()

/** Waits until `condition` holds, for 5 seconds at most. */
const eventually = (condition: Effect.Effect<boolean>) =>
  condition.pipe(
    Effect.filterOrFail((holds) => holds, () => "not yet"),
    Effect.retry(Schedule.spaced("50 millis").pipe(Schedule.upTo("5 seconds"))),
    Effect.orDie
  )

/** Waits until Redis is back (the stores have logged so). */
const back = (logs: Logs.Logs) => eventually(Effect.sync(() => recoveries(logs).length === 1))

const warnings = (logs: Logs.Logs) => logs.lines.filter((line) => line.message.includes("Redis is unavailable"))
const recoveries = (logs: Logs.Logs) => logs.lines.filter((line) => line.message.includes("Redis answers again"))

/** The keys the stores wrote under `prefix`. */
const keys = (redis: { readonly keys: (pattern: string) => Promise<Array<string>> }, prefix: string) =>
  Effect.promise(() => redis.keys(`${prefix}*`))

/** One operation of each store, each answered. */
const oneOfEach = (stores: RedisStores.RedisStores, leaseId: string) =>
  Effect.all([
    stores.concurrency.tryAcquire({ key: "k", leaseId, limit: 100, leaseMillis }),
    stores.rateLimit.admit({ key: "k", tokens: 10, limits: tokens }),
    stores.budget.reserve({ key: "k", amount: { usd: 0.1, tokens: 0 }, limits: budget }),
    stores.circuitBreaker.get("k")
  ])

/** How long `effect` took, with its exit. */
const timed = <A, E>(effect: Effect.Effect<A, E>) =>
  Effect.suspend(() => {
    const start = Date.now()
    return Effect.map(Effect.exit(effect), (exit) => ({ exit, millis: Date.now() - start }))
  })

describe("RedisStores", () => {
  layer(RedisServer.layer(), { excludeTestServices: true })("over a server that answers", (it) => {
    it.scoped("the layer provides the four stores over one connection, closed with the layer", () =>
      Effect.gen(function*() {
        const server = yield* RedisServer.Server
        const redis = yield* server.client
        const connections = Effect.map(
          Effect.promise(() => redis.client("LIST")),
          (list) => String(list).split("\n").filter((line) => line.includes("name=effect-inference")).length
        )
        const keyPrefix = Stores.uniquePrefix()
        yield* Effect.scoped(
          Effect.gen(function*() {
            const concurrency = yield* ConcurrencyStore.ConcurrencyStore
            const rateLimit = yield* RateLimitStore.RateLimitStore
            const budgetStore = yield* BudgetStore.BudgetStore
            const breakers = yield* CircuitBreakerStore.CircuitBreakerStore
            assert.isTrue(yield* concurrency.tryAcquire({ key: "k", leaseId: "a", limit: 1, leaseMillis }))
            assert.deepStrictEqual(yield* rateLimit.admit({ key: "k", tokens: 1, limits: tokens }), {
              _tag: "Admitted",
              id: 1
            })
            assert.deepStrictEqual(
              yield* budgetStore.reserve({ key: "k", amount: { usd: 0.5, tokens: 0 }, limits: budget }),
              { _tag: "Held", id: 1 }
            )
            assert.isTrue(yield* breakers.compareAndSet("k", 0, breaker))
            assert.strictEqual(yield* connections, 1)
          }).pipe(Effect.provide(Layer.fresh(RedisStores.layer({ url: server.url, keyPrefix }))))
        )
        assert.strictEqual((yield* keys(redis, keyPrefix)).length, 6)
        yield* eventually(Effect.map(connections, (n) => n === 0))
      }))

    it.scoped("a rate limit made where the layer is provided keeps its windows on Redis", () =>
      Effect.gen(function*() {
        const server = yield* RedisServer.Server
        const redis = yield* server.client
        const keyPrefix = Stores.uniquePrefix()
        yield* Effect.gen(function*() {
          const limiter = yield* RateLimit.make({ requests: { limit: 10, interval: "1 minute" } })
          yield* limiter.withLimit(Effect.void, { estimatedTokens: 0 })
        }).pipe(Effect.provide(RedisStores.layer({ url: server.url, keyPrefix })))
        assert.includeMembers(yield* keys(redis, keyPrefix), [
          `${keyPrefix}rate-limit:rate-limit`,
          `${keyPrefix}rate-limit-requests:rate-limit`
        ])
      }))

    it.scoped("layerConfig reads REDIS_URL and REDIS_KEY_PREFIX", () =>
      Effect.gen(function*() {
        const server = yield* RedisServer.Server
        const redis = yield* server.client
        const keyPrefix = Stores.uniquePrefix()
        const provider = ConfigProvider.fromMap(new Map([["REDIS_URL", server.url], ["REDIS_KEY_PREFIX", keyPrefix]]))
        yield* Effect.flatMap(
          ConcurrencyStore.ConcurrencyStore,
          (concurrency) => concurrency.tryAcquire({ key: "k", leaseId: "a", limit: 1, leaseMillis })
        ).pipe(Effect.provide(RedisStores.layerConfig()), Effect.withConfigProvider(provider))
        assert.deepStrictEqual(yield* keys(redis, keyPrefix), [`${keyPrefix}concurrency:k`])
      }))
  })

  describe("options", () => {
    it.effect("layerConfig fails with a ConfigError naming REDIS_URL when it is not set, or not a Redis URL", () =>
      Effect.gen(function*() {
        const build = (map: Map<string, string>) =>
          Effect.scoped(Layer.build(RedisStores.layerConfig())).pipe(
            Effect.withConfigProvider(ConfigProvider.fromMap(map)),
            Effect.flip
          )
        const missing = yield* build(new Map())
        assert.include(String(missing), "REDIS_URL is not set")
        const wrong = yield* build(new Map([["REDIS_URL", "http://:hunter2@example.com"]]))
        assert.include(String(wrong), "REDIS_URL must be a redis:// or rediss:// URL")
        assert.notInclude(String(wrong), "hunter2")
      }))

    it.scoped("an invalid option stops the program with a message naming it, and never the URL", () =>
      Effect.gen(function*() {
        const defect = (options: RedisStores.Options) =>
          Effect.map(
            Effect.exit(RedisStores.make(options)),
            (exit) => Exit.isFailure(exit) ? Cause.pretty(exit.cause) : "built"
          )
        const url = yield* defect({ url: Redacted.make("http://:hunter2@example.com") })
        assert.include(url, "RedisStores: url must be a redis:// or rediss:// URL")
        assert.notInclude(url, "hunter2")
        assert.include(
          yield* defect({ url: "redis://localhost", timeout: "-1 seconds" }),
          "RedisStores: timeout must be a finite duration above 0"
        )
        assert.include(
          yield* defect({ url: "redis://localhost", onUnavailable: "retry" as "fail" }),
          "RedisStores: onUnavailable must be \"local\" or \"fail\""
        )
      }))
  })

  describe("when Redis cannot answer, \"local\"", () => {
    it.scopedLive("a server down at startup: the layer is built, the stores run in memory, then go back to Redis", () =>
      Effect.gen(function*() {
        const server = yield* RedisServer.make()
        const redis = yield* server.client
        yield* server.stop
        const logs = Logs.make()
        const keyPrefix = Stores.uniquePrefix()
        yield* logs.capture(Effect.gen(function*() {
          const stores = yield* RedisStores.make({ url: server.url, keyPrefix, timeout: "200 millis" })
          const [leased, admitted, held] = yield* oneOfEach(stores, "local")
          assert.isTrue(leased)
          assert.deepStrictEqual(admitted, { _tag: "Admitted", id: -1 }, "memory's ids are negative")
          assert.deepStrictEqual(held, { _tag: "Held", id: -1 })
          for (let i = 0; i < 20; i++) yield* oneOfEach(stores, `local-${i}`)
          assert.strictEqual(warnings(logs).length, 1, "one line, not one per call")
          assert.deepInclude(warnings(logs)[0], { level: "WARN" })
          assert.deepInclude(warnings(logs)[0].annotations, { redis: `redis://127.0.0.1:${server.port}` })

          yield* server.start
          yield* back(logs)
          yield* oneOfEach(stores, "on-redis")
          assert.includeMembers(yield* keys(redis, keyPrefix), [`${keyPrefix}concurrency:k`, `${keyPrefix}budget:k`])
          assert.isTrue(
            yield* stores.concurrency.renew({ key: "k", leaseId: "local", leaseMillis }),
            "a lease taken in memory is renewed there"
          )
          yield* stores.concurrency.release({ key: "k", leaseId: "local" })
          yield* stores.rateLimit.settle({ key: "k", id: -1, used: 5, limits: tokens })
          yield* stores.budget.settle({ key: "k", id: -1, used: { usd: 0.3, tokens: 0 }, limits: budget })
          const [status] = yield* stores.budget.status({ key: "k", limits: budget })
          assert.deepInclude(status, { spent: 0.3, reserved: 0.1 }, "spent on Redis, where the budget is now")
          assert.strictEqual(warnings(logs).length, 1)
          assert.strictEqual(recoveries(logs).length, 1)
        }))
      }))

    it.scopedLive("a server that goes away mid-way: one warning, every operation answered, then Redis again", () =>
      Effect.gen(function*() {
        const server = yield* RedisServer.make()
        const logs = Logs.make()
        yield* logs.capture(Effect.gen(function*() {
          const stores = yield* RedisStores.make({ url: server.url, timeout: "200 millis" })
          const [, onRedis] = yield* oneOfEach(stores, "before")
          assert.deepStrictEqual(onRedis, { _tag: "Admitted", id: 1 })
          yield* server.stop
          for (let i = 0; i < 20; i++) {
            const [leased] = yield* oneOfEach(stores, `during-${i}`)
            assert.isTrue(leased)
          }
          assert.strictEqual(warnings(logs).length, 1)
          assert.isTrue(
            yield* stores.concurrency.renew({ key: "k", leaseId: "before", leaseMillis }),
            "a lease on Redis is not known to be lost while Redis is away"
          )
          yield* server.start
          yield* back(logs)
          const [, again] = yield* oneOfEach(stores, "after")
          assert.strictEqual(again._tag, "Admitted")
          if (again._tag === "Admitted") assert.isAbove(again.id, 0, "on Redis again")
        }))
      }))

    it.scopedLive("a server that answers nothing: an operation runs in memory after the timeout", () =>
      Effect.gen(function*() {
        const server = yield* RedisServer.make()
        const logs = Logs.make()
        yield* logs.capture(Effect.gen(function*() {
          const stores = yield* RedisStores.make({ url: server.url, timeout: "200 millis" })
          yield* server.pause
          const first = yield* timed(stores.concurrency.tryAcquire({ key: "k", leaseId: "a", limit: 1, leaseMillis }))
          assert.deepStrictEqual(first.exit, Exit.succeed(true))
          assert.isAtLeast(first.millis, 150)
          assert.isBelow(first.millis, 1000)
          const next = yield* timed(stores.concurrency.held("k"))
          assert.deepStrictEqual(next.exit, Exit.succeed(1))
          assert.isBelow(next.millis, 50, "once Redis is known to be away, memory answers at once")
          yield* server.resume
          yield* back(logs)
        }))
      }))
  })

  describe("when Redis cannot answer, \"fail\"", () => {
    it.scopedLive("each store fails with its own error, naming Redis and the failure, and rejecting the call; the layer was built", () =>
      Effect.gen(function*() {
        const server = yield* RedisServer.make()
        yield* server.stop
        const logs = Logs.make()
        yield* logs.capture(Effect.gen(function*() {
          const stores = yield* RedisStores.make({ url: server.url, onUnavailable: "fail", timeout: "200 millis" })
          const errors = [
            yield* Effect.flip(stores.concurrency.tryAcquire({ key: "k", leaseId: "a", limit: 1, leaseMillis })),
            yield* Effect.flip(stores.rateLimit.admit({ key: "k", tokens: 1, limits: tokens })),
            yield* Effect.flip(stores.budget.status({ key: "k", limits: budget })),
            yield* Effect.flip(stores.circuitBreaker.compareAndSet("k", 0, breaker))
          ]
          assert.deepStrictEqual(errors.map((error) => error._tag), [
            "ConcurrencyStoreError",
            "RateLimitStoreError",
            "BudgetStoreError",
            "CircuitBreakerStoreError"
          ])
          // The calls that needed these answers fail too (CoordinationError), rather than go on without Redis.
          assert.deepStrictEqual(errors.map((error) => error.rejectCall), [true, true, true, true])
          assert.match(errors[0].message, /^Redis could not answer: .+ \(tryAcquire on "k"\)$/)
          assert.match(errors[3].message, /\(compareAndSet on "k"\)$/)
          assert.strictEqual(warnings(logs).length, 1)
          assert.include(warnings(logs)[0].message, "store operations fail")

          yield* server.start
          yield* back(logs)
          assert.isTrue(yield* stores.concurrency.tryAcquire({ key: "k", leaseId: "a", limit: 1, leaseMillis }))
        }))
      }))

    it.scopedLive("no operation waits longer than the timeout on a server that answers nothing", () =>
      Effect.gen(function*() {
        const server = yield* RedisServer.make()
        const stores = yield* RedisStores.make({ url: server.url, onUnavailable: "fail", timeout: "200 millis" })
        yield* server.pause
        const operations: ReadonlyArray<Effect.Effect<unknown, { readonly message: string }>> = [
          stores.concurrency.renew({ key: "k", leaseId: "a", leaseMillis }),
          stores.rateLimit.settle({ key: "k", id: 1, used: 1, limits: tokens }),
          stores.budget.settle({ key: "k", id: 1, used: { usd: 1, tokens: 0 }, limits: budget }),
          stores.circuitBreaker.get("k")
        ]
        for (const operation of operations) {
          const { exit, millis } = yield* timed(operation)
          assert.isTrue(Exit.isFailure(exit))
          assert.isBelow(millis, 1000)
          if (Exit.isFailure(exit)) {
            const error = Option.getOrThrow(Cause.failureOption(exit.cause))
            assert.include(error.message, "Redis could not answer")
          }
        }
        yield* server.resume
      }))
  })

  describe("the password", () => {
    const password = "s3cr3t/p@ss:word"

    it.scopedLive("never reaches a log line or an error message", () =>
      Effect.gen(function*() {
        const server = yield* RedisServer.make({ password })
        assert.include(server.url, encodeURIComponent(password))
        const logs = Logs.make()
        const messages: Array<string> = []
        yield* logs.capture(Effect.gen(function*() {
          const stores = yield* RedisStores.make({
            url: Redacted.make(server.url),
            onUnavailable: "fail",
            timeout: "200 millis"
          })
          assert.isTrue(yield* stores.concurrency.tryAcquire({ key: "k", leaseId: "a", limit: 1, leaseMillis }))
          yield* server.stop
          const error = yield* Effect.flip(stores.budget.status({ key: "k", limits: budget }))
          messages.push(error.message, String(error))
          yield* server.start
          yield* back(logs)
          // A password Redis refuses.
          const wrong = server.url.replace(encodeURIComponent(password), "wr0ng-secret")
          const refused = yield* RedisStores.make({ url: wrong, onUnavailable: "fail", timeout: "200 millis" })
          const refusal = yield* Effect.flip(refused.rateLimit.admit({ key: "k", tokens: 1, limits: tokens }))
          messages.push(refusal.message, String(refusal))
        }))
        const everything = [...messages, logs.dump()].join("\n")
        assert.isAbove(logs.lines.length, 1)
        for (const secret of [password, encodeURIComponent(password), "s3cr3t", "wr0ng-secret"]) {
          assert.notInclude(everything, secret)
        }
      }))
  })
})
