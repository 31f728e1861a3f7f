import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as TestClock from "effect/TestClock"
import * as ConcurrencyStore from "../src/ConcurrencyStore.js"

const key = "api-key"
const leaseMillis = 30_000

describe("ConcurrencyStore", () => {
  describe("the memory store meets the contract", () => {
    const take = (store: ConcurrencyStore.ConcurrencyStore.Service, leaseId: string, limit = 2) =>
      store.tryAcquire({ key, leaseId, limit, leaseMillis })

    it.effect("takes at most `limit` slots per key", () =>
      Effect.gen(function*() {
        const store = yield* ConcurrencyStore.makeMemory
        assert.deepStrictEqual([yield* take(store, "a"), yield* take(store, "b"), yield* take(store, "c")], [
          true,
          true,
          false
        ])
        assert.strictEqual(yield* store.held(key), 2, "the refused one took nothing")
        assert.isTrue(yield* store.tryAcquire({ key: "other", leaseId: "c", limit: 2, leaseMillis }), "keys are apart")
      }))

    it.effect("a lease id asking again keeps its one slot", () =>
      Effect.gen(function*() {
        const store = yield* ConcurrencyStore.makeMemory
        assert.isTrue(yield* take(store, "a", 1))
        assert.isTrue(yield* take(store, "a", 1))
        assert.strictEqual(yield* store.held(key), 1)
      }))

    it.effect("a slot not renewed comes back after the lease time, on the store's clock", () =>
      Effect.gen(function*() {
        const store = yield* ConcurrencyStore.makeMemory
        assert.isTrue(yield* take(store, "crashed", 1))
        yield* TestClock.adjust(leaseMillis - 1)
        assert.isFalse(yield* take(store, "next", 1))
        yield* TestClock.adjust(1)
        assert.strictEqual(yield* store.held(key), 0)
        assert.isTrue(yield* take(store, "next", 1))
      }))

    it.effect("renewing keeps the slot; a lease that expired is lost for good", () =>
      Effect.gen(function*() {
        const store = yield* ConcurrencyStore.makeMemory
        assert.isTrue(yield* take(store, "a", 1))
        for (let i = 0; i < 4; i++) {
          yield* TestClock.adjust(leaseMillis / 2)
          assert.isTrue(yield* store.renew({ key, leaseId: "a", leaseMillis }))
        }
        assert.isFalse(yield* take(store, "b", 1), "held two leases' time after it was taken")
        yield* TestClock.adjust(leaseMillis)
        assert.isFalse(yield* store.renew({ key, leaseId: "a", leaseMillis }))
        assert.isTrue(yield* take(store, "b", 1))
      }))

    it.effect("release gives the slot back, and releasing again changes nothing", () =>
      Effect.gen(function*() {
        const store = yield* ConcurrencyStore.makeMemory
        yield* take(store, "a", 1)
        yield* store.release({ key, leaseId: "a" })
        yield* store.release({ key, leaseId: "a" })
        yield* store.release({ key, leaseId: "never" })
        assert.strictEqual(yield* store.held(key), 0)
        assert.isTrue(yield* take(store, "b", 1))
        assert.isFalse(yield* take(store, "c", 1))
      }))

    it.effect("layerMemory provides one store to all who ask", () =>
      Effect.gen(function*() {
        const first = yield* ConcurrencyStore.ConcurrencyStore
        yield* first.tryAcquire({ key, leaseId: "a", limit: 1, leaseMillis })
        const second = yield* ConcurrencyStore.ConcurrencyStore
        assert.strictEqual(yield* second.held(key), 1)
      }).pipe(Effect.provide(ConcurrencyStore.layerMemory)))
  })
})
