import * as RateLimitStore from "@effect-inference/client/RateLimitStore"
import { assert, describe, it, layer } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as FastCheck from "effect/FastCheck"
import * as Contract from "./utils/Contract.js"
import * as Differential from "./utils/Differential.js"
import * as RedisServer from "./utils/RedisServer.js"
import * as Stores from "./utils/Stores.js"

// Intervals and waits that meet exactly as often as not: a charge expiring at the very instant of an operation is
// the case a script gets wrong most easily. (Above a few seconds, so that no key expires on the server's own clock.)
const interval = FastCheck.constantFrom(5_000, 10_000)
const millis = FastCheck.oneof(
  FastCheck.constantFrom(0, 1, 5_000, 10_000),
  FastCheck.integer({ min: 0, max: 25_000 }),
  // A clock that steps back (a server whose clock was set back).
  FastCheck.integer({ min: -3_000, max: -1 })
)
/** Token counts, and the values the core must count as nothing or as the whole limit. */
const amount = FastCheck.oneof(
  FastCheck.integer({ min: 0, max: 160 }),
  FastCheck.constantFrom(NaN, -1, -0, Infinity, -Infinity, 1e9, 2.5, 0.1)
)
const Limits: FastCheck.Arbitrary<RateLimitStore.Limits> = FastCheck.record({
  requests: FastCheck.option(
    FastCheck.record({ limit: FastCheck.integer({ min: 1, max: 4 }), intervalMillis: interval }),
    { nil: undefined }
  ),
  tokens: FastCheck.option(
    FastCheck.record({ limit: FastCheck.constantFrom(10, 100, 150), intervalMillis: interval }),
    { nil: undefined }
  )
})
const key = FastCheck.constantFrom("a", "b")
/** `limits`: which of the run's two sets of limits (limits change when a process restarts with others). */
const limits = FastCheck.constantFrom(0, 0, 0, 1)
const Step = FastCheck.oneof(
  FastCheck.record({ op: FastCheck.constant("admit" as const), key, tokens: amount, limits }),
  FastCheck.record({
    op: FastCheck.constant("settle" as const),
    key,
    /** Which of the ids admitted so far, or one never admitted. */
    pick: FastCheck.integer({ min: 0, max: 8 }),
    used: amount,
    limits
  }),
  FastCheck.record({ op: FastCheck.constant("wait" as const), millis })
)

describe("RateLimitStore", () => {
  describe("the memory store meets the contract", () => {
    Contract.rateLimit(it.scopedLive, RateLimitStore.makeMemory, false)
  })

  layer(RedisServer.layer(), { excludeTestServices: true })("the Redis store", (it) => {
    describe("meets the contract", () => {
      Contract.rateLimit(it.scoped, Effect.map(Stores.make(), (stores) => stores.rateLimit), true)
    })

    it.scoped("admits exactly `limit` requests of 200 asked for at once over several connections", () =>
      Effect.gen(function*() {
        const prefix = Stores.uniquePrefix()
        const stores = yield* Effect.all(Array.from({ length: 4 }, () => Stores.make({ keyPrefix: prefix })))
        const limits: RateLimitStore.Limits = {
          requests: { limit: 16, intervalMillis: 60_000 },
          tokens: { limit: 1000, intervalMillis: 60_000 }
        }
        const admissions = yield* Effect.all(
          Array.from(
            { length: 200 },
            (_, i) => stores[i % stores.length].rateLimit.admit({ key: "k", tokens: 10, limits })
          ),
          { concurrency: "unbounded" }
        )
        const ids = admissions.flatMap((a) => a._tag === "Admitted" ? [a.id] : [])
        assert.strictEqual(ids.length, 16)
        assert.strictEqual(new Set(ids).size, 16, "each with an id of its own")
      }))

    it.scoped("gives back a reservation never settled after reservationTtl", () =>
      Effect.gen(function*() {
        const { rateLimit } = yield* Stores.make({ reservationTtl: "300 millis" })
        const limits: RateLimitStore.Limits = { requests: undefined, tokens: { limit: 100, intervalMillis: 60_000 } }
        assert.strictEqual((yield* rateLimit.admit({ key: "k", tokens: 100, limits }))._tag, "Admitted")
        assert.deepStrictEqual(yield* rateLimit.admit({ key: "k", tokens: 1, limits }), { _tag: "Wait", millis: 100 })
        yield* Effect.sleep(350)
        assert.strictEqual((yield* rateLimit.admit({ key: "k", tokens: 1, limits }))._tag, "Admitted")
      }))

    it.scoped("keeps its keys under the prefix, each living as long as what it holds counts, and a minute", () =>
      Effect.gen(function*() {
        const server = yield* RedisServer.Server
        const redis = yield* server.client
        const keyPrefix = Stores.uniquePrefix()
        const { rateLimit } = yield* Stores.make({ keyPrefix, reservationTtl: "10 seconds" })
        const limits: RateLimitStore.Limits = {
          requests: { limit: 5, intervalMillis: 1000 },
          tokens: { limit: 100, intervalMillis: 2000 }
        }
        yield* rateLimit.admit({ key: "rate-limit http://x team/p", tokens: 10, limits })
        const keys = (yield* Effect.promise(() => redis.keys(`${keyPrefix}*`))).sort()
        assert.deepStrictEqual(keys, [
          `${keyPrefix}rate-limit-holds:rate-limit http://x team/p`,
          `${keyPrefix}rate-limit-requests:rate-limit http://x team/p`,
          `${keyPrefix}rate-limit:rate-limit http://x team/p`
        ])
        for (const name of keys) {
          const ttl = yield* Effect.promise(() => redis.pttl(name))
          assert.isAbove(ttl, 60_000 + 9_000, `${name} lives as long as the reservation`)
          assert.isAtMost(ttl, 60_000 + 10_000)
        }
      }))
  })

  layer(Differential.layer, { excludeTestServices: true })("the Redis store decides as the memory store", (it) => {
    it.scoped.prop(
      "step for step, in random operations at random times, limits and amounts",
      { limits: FastCheck.tuple(Limits, Limits), steps: FastCheck.array(Step, { maxLength: 40 }) },
      ({ limits, steps }) => {
        const time = Differential.fakeTime()
        return Effect.gen(function*() {
          const redis = (yield* Differential.OnClock).rateLimit
          const memory = yield* RateLimitStore.makeMemory
          const keyOf = Differential.runKeys()
          const admitted: Record<string, Array<number>> = { a: [], b: [] }
          for (const [i, step] of steps.entries()) {
            const label = `step ${i}: ${JSON.stringify(step)}`
            switch (step.op) {
              case "admit": {
                const options = { key: keyOf(step.key), tokens: step.tokens, limits: limits[step.limits] }
                const [admission] = yield* redis.admitExactly(options)
                assert.deepStrictEqual(admission, yield* memory.admit(options), label)
                if (admission._tag === "Admitted") admitted[step.key].push(admission.id)
                break
              }
              case "settle": {
                const ids = admitted[step.key]
                const id = step.pick < ids.length ? ids[step.pick] : 1000 + step.pick
                const options = { key: keyOf(step.key), id, used: step.used, limits: limits[step.limits] }
                yield* Differential.same(label, redis.settle(options), memory.settle(options))
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

    it.scoped("when the clock steps back, a charge counts from the newest charge's time", () => {
      const time = Differential.fakeTime(10_000)
      return Effect.gen(function*() {
        const redis = (yield* Differential.OnClock).rateLimit
        const memory = yield* RateLimitStore.makeMemory
        const key = Differential.runKeys()("k")
        const limits: RateLimitStore.Limits = { requests: undefined, tokens: { limit: 100, intervalMillis: 10_000 } }
        type Store = {
          readonly admit: (
            options: Parameters<RateLimitStore.RateLimitStore.Service["admit"]>[0]
          ) => Effect.Effect<RateLimitStore.Admission, unknown>
          readonly settle: (
            options: Parameters<RateLimitStore.RateLimitStore.Service["settle"]>[0]
          ) => Effect.Effect<void, unknown>
        }
        const exact: Store = {
          admit: (options) => Effect.map(redis.admitExactly(options), ([a]) => a),
          settle: redis.settle
        }
        const both = <A>(f: (store: Store) => Effect.Effect<A, unknown>) =>
          Differential.same(`at ${time.now}`, f(exact), f(memory))
        const chargeFifty = (store: Store) =>
          Effect.flatMap(
            store.admit({ key, tokens: 0, limits }),
            (admission) =>
              admission._tag === "Admitted" ? store.settle({ key, id: admission.id, used: 50, limits }) : Effect.void
          )
        yield* both(chargeFifty)
        time.now = 7_000
        yield* both(chargeFifty)
        time.now = 15_000
        // Both charges count until 20 000, the first one's time plus the interval.
        yield* both((store) => store.admit({ key, tokens: 60, limits }))
        const [admission] = yield* redis.admitExactly({ key, tokens: 60, limits })
        assert.deepStrictEqual(admission, { _tag: "Wait", millis: 5_000 })
      }).pipe(Effect.withClock(time.clock))
    })
  })
})
