import * as CircuitBreaker from "@effect-inference/client/CircuitBreaker"
import * as CircuitBreakerStore from "@effect-inference/client/CircuitBreakerStore"
import * as InferenceError from "@effect-inference/client/InferenceError"
import { assert, describe, it, layer } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Contract from "./utils/Contract.js"
import * as RedisServer from "./utils/RedisServer.js"
import * as Stores from "./utils/Stores.js"

const closed: CircuitBreakerStore.BreakerState = Stores.breakerState()

describe("CircuitBreakerStore", () => {
  describe("the memory store meets the contract", () => {
    Contract.circuitBreaker(it.scopedLive, CircuitBreakerStore.makeMemory)
  })

  layer(RedisServer.layer(), { excludeTestServices: true })("the Redis store", (it) => {
    describe("meets the contract", () => {
      Contract.circuitBreaker(it.scoped, Effect.map(Stores.make(), (stores) => stores.circuitBreaker))
    })

    it.scoped("lets exactly one of 50 writers from one version win, over several connections", () =>
      Effect.gen(function*() {
        const prefix = Stores.uniquePrefix()
        const stores = yield* Effect.all(Array.from({ length: 4 }, () => Stores.make({ keyPrefix: prefix })))
        const written = yield* Effect.all(
          Array.from(
            { length: 50 },
            (_, i) =>
              stores[i % stores.length].circuitBreaker.compareAndSet("k", 0, { ...closed, consecutiveFailures: i })
          ),
          { concurrency: "unbounded" }
        )
        assert.strictEqual(written.filter(Boolean).length, 1)
        const entry = Option.getOrThrow(yield* stores[1].circuitBreaker.get("k"))
        assert.strictEqual(entry.version, 1)
        assert.strictEqual(written.indexOf(true), entry.state.consecutiveFailures, "the winner's state is kept")
      }))

    it.scoped("breakers of one key in two processes are one breaker", () =>
      Effect.gen(function*() {
        const prefix = Stores.uniquePrefix()
        const breakerIn = (store: CircuitBreakerStore.CircuitBreakerStore.Service) =>
          CircuitBreaker.make("https://api.example/v1 some/model", { consecutiveFailures: 2, failureRate: false }).pipe(
            Effect.provideService(CircuitBreakerStore.CircuitBreakerStore, store)
          )
        const a = yield* breakerIn((yield* Stores.make({ keyPrefix: prefix })).circuitBreaker)
        const b = yield* breakerIn((yield* Stores.make({ keyPrefix: prefix })).circuitBreaker)
        const failing = Effect.fail(new InferenceError.ServiceUnavailableError({ status: 503 }))
        yield* Effect.either(a.withBreaker(failing))
        yield* Effect.either(b.withBreaker(failing))
        assert.strictEqual(yield* a.state, "open", "the failures of both counted together")
        assert.strictEqual((yield* Effect.flip(b.withBreaker(Effect.succeed("ran"))))._tag, "CircuitOpenError")
      }))

    it.scoped("keeps each entry in a hash that lives 7 days after it was last read or written", () =>
      Effect.gen(function*() {
        const server = yield* RedisServer.Server
        const redis = yield* server.client
        const keyPrefix = Stores.uniquePrefix()
        const { circuitBreaker } = yield* Stores.make({ keyPrefix })
        const name = `${keyPrefix}circuit-breaker:https://api.example/v1 some/model`
        yield* circuitBreaker.compareAndSet("https://api.example/v1 some/model", 0, closed)
        assert.deepStrictEqual(yield* Effect.promise(() => redis.hgetall(name)), {
          version: "1",
          state: JSON.stringify(closed)
        })
        const week = 7 * 86_400_000
        yield* Effect.promise(() => redis.pexpire(name, 1000))
        yield* circuitBreaker.get("https://api.example/v1 some/model")
        assert.isAbove(yield* Effect.promise(() => redis.pttl(name)), week - 60_000, "a read keeps it")
      }))

    it.scoped("an entry that is not a breaker's state is the store's error", () =>
      Effect.gen(function*() {
        const server = yield* RedisServer.Server
        const redis = yield* server.client
        const keyPrefix = Stores.uniquePrefix()
        const { circuitBreaker } = yield* Stores.make({ keyPrefix })
        yield* Effect.promise(() =>
          redis.hset(`${keyPrefix}circuit-breaker:k`, "version", "3", "state", "{\"state\":1}")
        )
        const error = yield* Effect.flip(circuitBreaker.get("k"))
        assert.strictEqual(error._tag, "CircuitBreakerStoreError")
        assert.include(error.message, "the entry under \"k\" is not a breaker's state")
      }))
  })
})
