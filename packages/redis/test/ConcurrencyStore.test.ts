import * as ConcurrencyStore from "@effect-inference/client/ConcurrencyStore"
import { assert, describe, it, layer } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as FastCheck from "effect/FastCheck"
import * as Contract from "./utils/Contract.js"
import * as Differential from "./utils/Differential.js"
import * as RedisServer from "./utils/RedisServer.js"
import * as Stores from "./utils/Stores.js"

const redisStore = Effect.map(Stores.make(), (stores) => stores.concurrency)

const key = FastCheck.constantFrom("a", "b")
const leaseId = FastCheck.constantFrom("l0", "l1", "l2", "l3", "l4")
// Lease times and waits that meet exactly as often as not: an expiry at the very instant of an operation is the case
// a script gets wrong most easily. (Above a few seconds, so that no key expires on the server's own clock meanwhile.)
const leaseMillis = FastCheck.constantFrom(5_000, 7_500, 10_000)
const millis = FastCheck.oneof(
  FastCheck.constantFrom(0, 2_500, 5_000, 7_500),
  FastCheck.integer({ min: 0, max: 25_000 })
)
const Step = FastCheck.oneof(
  FastCheck.record({
    op: FastCheck.constant("tryAcquire" as const),
    key,
    leaseId,
    limit: FastCheck.integer({ min: 1, max: 4 }),
    leaseMillis
  }),
  FastCheck.record({ op: FastCheck.constant("renew" as const), key, leaseId, leaseMillis }),
  FastCheck.record({ op: FastCheck.constant("release" as const), key, leaseId }),
  FastCheck.record({ op: FastCheck.constant("held" as const), key }),
  FastCheck.record({ op: FastCheck.constant("wait" as const), millis })
)

describe("ConcurrencyStore", () => {
  describe("the memory store meets the contract", () => {
    Contract.concurrency(it.scopedLive, ConcurrencyStore.makeMemory)
  })

  layer(RedisServer.layer(), { excludeTestServices: true })("the Redis store", (it) => {
    describe("meets the contract", () => {
      Contract.concurrency(it.scoped, redisStore)
    })

    it.scoped("takes exactly `limit` slots of 200 asked for at once over several connections", () =>
      Effect.gen(function*() {
        const prefix = Stores.uniquePrefix()
        const stores = yield* Effect.all(Array.from({ length: 4 }, () => Stores.make({ keyPrefix: prefix })))
        const granted = yield* Effect.all(
          Array.from({ length: 200 }, (_, i) =>
            stores[i % stores.length].concurrency.tryAcquire({
              key: "k",
              leaseId: `lease-${i}`,
              limit: 16,
              leaseMillis: 30_000
            })),
          { concurrency: "unbounded" }
        )
        assert.strictEqual(granted.filter(Boolean).length, 16)
        assert.strictEqual(yield* stores[0].concurrency.held("k"), 16)
      }))

    it.scoped("keeps the leases in a sorted set under the prefix, that expires after the last lease", () =>
      Effect.gen(function*() {
        const server = yield* RedisServer.Server
        const redis = yield* server.client
        const keyPrefix = Stores.uniquePrefix()
        const { concurrency } = yield* Stores.make({ keyPrefix })
        yield* concurrency.tryAcquire({ key: "concurrency http://x team/p", leaseId: "a", limit: 2, leaseMillis: 300 })
        const name = `${keyPrefix}concurrency:concurrency http://x team/p`
        assert.deepStrictEqual(yield* Effect.promise(() => redis.keys(`${keyPrefix}*`)), [name])
        assert.strictEqual(yield* Effect.promise(() => redis.type(name)), "zset")
        const score = Number(yield* Effect.promise(() => redis.zscore(name, "a")))
        const [seconds, micros] = yield* Effect.promise(() => redis.time())
        const now = Number(seconds) * 1000 + Math.floor(Number(micros) / 1000)
        assert.isAtMost(Math.abs(score - (now + 300)), 50, "scored by its expiry on the server's clock")
        const ttl = yield* Effect.promise(() => redis.pttl(name))
        assert.isAbove(ttl, 60_000)
        assert.isAtMost(ttl, 60_300, "as long as the lease, and a minute")
      }))
  })

  layer(Differential.layer, { excludeTestServices: true })("the Redis store decides as the memory store", (it) => {
    it.scoped.prop(
      "step for step, in random operations at random times",
      { steps: FastCheck.array(Step, { maxLength: 40 }) },
      ({ steps }) => {
        const time = Differential.fakeTime()
        return Effect.gen(function*() {
          const redis = (yield* Differential.OnClock).concurrency
          const memory = yield* ConcurrencyStore.makeMemory
          const keyOf = Differential.runKeys()
          for (const [i, step] of steps.entries()) {
            const label = `step ${i}: ${JSON.stringify(step)}`
            switch (step.op) {
              case "tryAcquire": {
                const options = { ...step, key: keyOf(step.key) }
                yield* Differential.same(label, redis.tryAcquire(options), memory.tryAcquire(options))
                break
              }
              case "renew": {
                const options = { ...step, key: keyOf(step.key) }
                yield* Differential.same(label, redis.renew(options), memory.renew(options))
                break
              }
              case "release": {
                const options = { ...step, key: keyOf(step.key) }
                yield* Differential.same(label, redis.release(options), memory.release(options))
                break
              }
              case "held":
                yield* Differential.same(label, redis.held(keyOf(step.key)), memory.held(keyOf(step.key)))
                break
              case "wait":
                time.now += step.millis
            }
          }
        }).pipe(Effect.withClock(time.clock))
      },
      { fastCheck: { numRuns: 200 } }
    )
  })
})
