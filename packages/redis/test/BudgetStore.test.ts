import * as BudgetStore from "@effect-inference/client/BudgetStore"
import { assert, describe, it, layer } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as FastCheck from "effect/FastCheck"
import * as Contract from "./utils/Contract.js"
import * as Differential from "./utils/Differential.js"
import * as RedisServer from "./utils/RedisServer.js"
import * as Stores from "./utils/Stores.js"

/** Amounts, and the values the core must refuse, spend as nothing or clamp. */
const amount = FastCheck.oneof(
  FastCheck.double({ min: 0, max: 2, noNaN: true }),
  FastCheck.integer({ min: 0, max: 600 }),
  FastCheck.constantFrom(0.1, 0.2, 0.3, 1, NaN, -1, -0, Infinity, -Infinity, 1e300, Number.MAX_VALUE)
)
// Periods and waits that meet exactly as often as not: a period ending at the very instant of an operation is the
// case a script gets wrong most easily. (Above a few seconds, so that no key expires on the server's own clock.)
const period = FastCheck.constantFrom(5_000, 10_000)
const millis = FastCheck.oneof(
  FastCheck.constantFrom(0, 1, 5_000, 10_000),
  FastCheck.integer({ min: 0, max: 25_000 }),
  // A clock that steps back (a server whose clock was set back): periods never go back.
  FastCheck.integer({ min: -12_000, max: -1 })
)
const Limits: FastCheck.Arbitrary<BudgetStore.Limits> = FastCheck.record({
  usd: FastCheck.option(FastCheck.constantFrom(0.5, 1, 2.5), { nil: undefined }),
  tokens: FastCheck.option(FastCheck.constantFrom(100, 1000), { nil: undefined }),
  periodMillis: FastCheck.option(period, { nil: undefined }),
  origin: FastCheck.constantFrom(0, 3_000, -7_000),
  thresholds: FastCheck.subarray([0.25, 0.5, 0.8, 1])
})
const key = FastCheck.constantFrom("a", "b")
/** `limits`: which of the run's two sets of terms (terms change when a process restarts with others). */
const limits = FastCheck.constantFrom(0, 0, 0, 1)
const Step = FastCheck.oneof(
  FastCheck.record({ op: FastCheck.constant("reserve" as const), key, usd: amount, tokens: amount, limits }),
  FastCheck.record({
    op: FastCheck.constant("settle" as const),
    key,
    /** Which of the holds made so far, none, or one never made. */
    pick: FastCheck.integer({ min: -1, max: 8 }),
    usd: amount,
    tokens: amount,
    limits
  }),
  FastCheck.record({ op: FastCheck.constant("status" as const), key, limits }),
  FastCheck.record({ op: FastCheck.constant("wait" as const), millis })
)

const terms = (overrides: Partial<BudgetStore.Limits> = {}): BudgetStore.Limits => ({
  usd: 1,
  tokens: undefined,
  periodMillis: undefined,
  origin: Date.now(),
  thresholds: [],
  ...overrides
})

describe("BudgetStore", () => {
  describe("the memory store meets the contract", () => {
    Contract.budget(it.scopedLive, BudgetStore.makeMemory)
  })

  layer(RedisServer.layer(), { excludeTestServices: true })("the Redis store", (it) => {
    describe("meets the contract", () => {
      Contract.budget(it.scoped, Effect.map(Stores.make(), (stores) => stores.budget))
    })

    it.scoped("holds exactly what fits of 200 reservations made at once over several connections", () =>
      Effect.gen(function*() {
        const prefix = Stores.uniquePrefix()
        const stores = yield* Effect.all(Array.from({ length: 4 }, () => Stores.make({ keyPrefix: prefix })))
        const limits = terms({ usd: undefined, tokens: 16 })
        const decisions = yield* Effect.all(
          Array.from(
            { length: 200 },
            (_, i) => stores[i % stores.length].budget.reserve({ key: "k", amount: { usd: 0, tokens: 1 }, limits })
          ),
          { concurrency: "unbounded" }
        )
        const ids = decisions.flatMap((d) => d._tag === "Held" ? [d.id] : [])
        assert.strictEqual(ids.length, 16)
        assert.strictEqual(new Set(ids).size, 16, "each with an id of its own")
      }))

    it.scoped("outlives the connection: a new one finds the budget spent, and its periods' start", () =>
      Effect.gen(function*() {
        const keyPrefix = Stores.uniquePrefix()
        const limits = terms({ periodMillis: 86_400_000 })
        yield* Effect.scoped(Effect.gen(function*() {
          const { budget } = yield* Stores.make({ keyPrefix })
          yield* budget.settle({ key: "k", id: undefined, used: { usd: 0.7, tokens: 0 }, limits })
        }))
        const { budget } = yield* Stores.make({ keyPrefix })
        const [status] = yield* budget.status({ key: "k", limits: { ...limits, origin: Date.now() + 5_000 } })
        assert.deepInclude(status, { spent: 0.7, periodStart: limits.origin })
        const refused = yield* budget.reserve({ key: "k", amount: { usd: 0.5, tokens: 0 }, limits })
        assert.deepInclude(refused, { _tag: "Exceeded", spent: 0.7 })
      }))

    it.scoped("gives back a hold never settled after reservationTtl", () =>
      Effect.gen(function*() {
        const { budget } = yield* Stores.make({ reservationTtl: "300 millis" })
        const limits = terms()
        assert.strictEqual((yield* budget.reserve({ key: "k", amount: { usd: 1, tokens: 0 }, limits }))._tag, "Held")
        assert.strictEqual(
          (yield* budget.reserve({ key: "k", amount: { usd: 0.1, tokens: 0 }, limits }))._tag,
          "Exceeded"
        )
        yield* Effect.sleep(350)
        assert.strictEqual((yield* budget.reserve({ key: "k", amount: { usd: 0.1, tokens: 0 }, limits }))._tag, "Held")
      }))

    it.scoped("keeps a budget until the end of the period after the current one; one without a period for good", () =>
      Effect.gen(function*() {
        const server = yield* RedisServer.Server
        const redis = yield* server.client
        const keyPrefix = Stores.uniquePrefix()
        const { budget } = yield* Stores.make({ keyPrefix, reservationTtl: "1 minute" })
        const day = 86_400_000
        const origin = Date.now() - day / 2
        yield* budget.reserve({
          key: "daily",
          amount: { usd: 0.1, tokens: 0 },
          limits: terms({ periodMillis: day, origin })
        })
        yield* budget.reserve({ key: "ever", amount: { usd: 0.1, tokens: 0 }, limits: terms() })
        const keys = (yield* Effect.promise(() => redis.keys(`${keyPrefix}*`))).sort()
        assert.deepStrictEqual(keys, [
          `${keyPrefix}budget-holds:daily`,
          `${keyPrefix}budget-holds:ever`,
          `${keyPrefix}budget:daily`,
          `${keyPrefix}budget:ever`
        ])
        const ttl = (name: string) => Effect.promise(() => redis.pttl(`${keyPrefix}${name}`))
        const daily = yield* ttl("budget:daily")
        assert.isAbove(daily, day * 1.5 - 60_000, "half a day left in this period, and the next")
        assert.isAtMost(daily, day * 1.5 + 60_000)
        assert.strictEqual(yield* ttl("budget:ever"), -1, "a budget without a period has no end")
        const holds = yield* ttl("budget-holds:ever")
        assert.isAbove(holds, 110_000, "the holds as long as the latest")
        assert.isAtMost(holds, 120_000)
      }))
  })

  layer(RedisServer.layer({ persistent: true }), { excludeTestServices: true })("on a server that persists", (it) => {
    it.scoped("the budget outlives a restart of the server", () =>
      Effect.gen(function*() {
        const server = yield* RedisServer.Server
        const keyPrefix = Stores.uniquePrefix()
        const limits = terms({ periodMillis: 86_400_000 })
        yield* Effect.scoped(Effect.gen(function*() {
          const { budget } = yield* Stores.make({ keyPrefix })
          yield* budget.settle({ key: "k", id: undefined, used: { usd: 0.7, tokens: 0 }, limits })
        }))
        yield* server.stop
        yield* server.start
        const { budget } = yield* Stores.make({ keyPrefix })
        const [status] = yield* budget.status({ key: "k", limits })
        assert.deepInclude(status, { spent: 0.7, periodStart: limits.origin })
      }))
  })

  layer(Differential.layer, { excludeTestServices: true })("the Redis store decides as the memory store", (it) => {
    it.scoped.prop(
      "step for step, in random operations at random times, terms and amounts",
      { limits: FastCheck.tuple(Limits, Limits), steps: FastCheck.array(Step, { maxLength: 40 }) },
      ({ limits, steps }) => {
        const time = Differential.fakeTime()
        return Effect.gen(function*() {
          const redis = (yield* Differential.OnClock).budget
          const memory = yield* BudgetStore.makeMemory
          const keyOf = Differential.runKeys()
          const held: Record<string, Array<number>> = { a: [], b: [] }
          for (const [i, step] of steps.entries()) {
            const label = `step ${i}: ${JSON.stringify(step)}`
            switch (step.op) {
              case "reserve": {
                const options = {
                  key: keyOf(step.key),
                  amount: { usd: step.usd, tokens: step.tokens },
                  limits: limits[step.limits]
                }
                const decision = yield* redis.reserve(options)
                assert.deepStrictEqual(decision, yield* memory.reserve(options), label)
                if (decision._tag === "Held") held[step.key].push(decision.id)
                break
              }
              case "settle": {
                const ids = held[step.key]
                const id = step.pick < 0 ? undefined : step.pick < ids.length ? ids[step.pick] : 1000 + step.pick
                const options = {
                  key: keyOf(step.key),
                  id,
                  used: { usd: step.usd, tokens: step.tokens },
                  limits: limits[step.limits]
                }
                yield* Differential.same(label, redis.settle(options), memory.settle(options))
                break
              }
              case "status": {
                const options = { key: keyOf(step.key), limits: limits[step.limits] }
                yield* Differential.same(label, redis.status(options), memory.status(options))
                break
              }
              case "wait":
                time.now += step.millis
            }
          }
        }).pipe(Effect.withClock(time.clock))
      },
      { fastCheck: { numRuns: 300 } }
    )

    it.scoped("sums that drift in their last bits, and sums past the largest number, as the memory store", () => {
      const time = Differential.fakeTime()
      return Effect.gen(function*() {
        const redis = (yield* Differential.OnClock).budget
        const memory = yield* BudgetStore.makeMemory
        const keyOf = Differential.runKeys()
        const limits = terms({ origin: 0, thresholds: [0.5, 0.8] })
        let step = 0
        const both = <A>(f: (store: typeof redis | typeof memory) => Effect.Effect<A, unknown>) =>
          Differential.same(`step ${step++}`, f(redis), f(memory))
        const spend = (key: string, usd: number, id?: number) => (store: typeof redis | typeof memory) =>
          store.settle({ key: keyOf(key), id, used: { usd, tokens: 0 }, limits })
        const reserve = (key: string, usd: number) => (store: typeof redis | typeof memory) =>
          store.reserve({ key: keyOf(key), amount: { usd, tokens: 0 }, limits })
        const status = (key: string) => (store: typeof redis | typeof memory) =>
          store.status({ key: keyOf(key), limits })
        // Eight tenths make 0.7999999999999999, which crosses 80%.
        for (let i = 0; i < 8; i++) yield* both(spend("tenths", 0.1))
        // 0.8999999999999999 spent and 0.1 more make 1.0000000000000002, which fits in 1.
        for (const usd of [0.2, 0.4, 0.3]) yield* both(spend("fits", usd))
        yield* both(reserve("fits", 0.1))
        // Holds of 0.1 and 0.2 given back leave 5.551115123125783e-17 held, unless nothing stays held without a hold.
        yield* both(reserve("residue", 0.1))
        yield* both(reserve("residue", 0.2))
        yield* both(spend("residue", 0, 1))
        yield* both(spend("residue", 0, 2))
        yield* both(status("residue"))
        // Spending stays below Infinity.
        yield* both(spend("huge", Number.MAX_VALUE))
        yield* both(spend("huge", Number.MAX_VALUE))
        yield* both(status("huge"))
      }).pipe(Effect.withClock(time.clock))
    })
  })
})
