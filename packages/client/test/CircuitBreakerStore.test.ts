import { assert, describe, it } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Chunk from "effect/Chunk"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Schema from "effect/Schema"
import * as TestClock from "effect/TestClock"
import * as CircuitBreaker from "../src/CircuitBreaker.js"
import * as CircuitBreakerStore from "../src/CircuitBreakerStore.js"
import * as InferenceError from "../src/InferenceError.js"

const overloaded = new InferenceError.ServiceUnavailableError({ status: 503 })
const failing = Effect.fail(overloaded)

/**
 * The same store seen only through its interface, as a store on a server is:
 * the breaker cannot take the memory store's synchronous path, and every step
 * goes through `get` and `compareAndSet`. A read lets other fibers run before
 * it answers (as a round trip would), so that concurrent steps read the same
 * version and race to write. It counts the writes and the writes refused.
 */
const remote = (store: CircuitBreakerStore.CircuitBreakerStore.Service) => {
  let writes = 0
  let refused = 0
  const service: CircuitBreakerStore.CircuitBreakerStore.Service = {
    get: (key) => Effect.zipLeft(store.get(key), Effect.yieldNow()),
    compareAndSet: (key, expectedVersion, state) =>
      Effect.tap(store.compareAndSet(key, expectedVersion, state), (written) =>
        Effect.sync(() => {
          if (written) writes++
          else refused++
        }))
  }
  return { service, writes: () => writes, refused: () => refused }
}

const stateOf = (store: CircuitBreakerStore.CircuitBreakerStore.Service, key: string) =>
  Effect.map(store.get(key), Option.map((entry) => entry.state))

describe("CircuitBreakerStore", () => {
  describe("the memory store meets the contract", () => {
    const state = (overrides: Partial<CircuitBreakerStore.BreakerState> = {}): CircuitBreakerStore.BreakerState => ({
      state: "closed",
      consecutiveFailures: 0,
      window: [],
      trips: 0,
      openUntil: null,
      openedAt: null,
      isolated: false,
      probes: 0,
      probesSucceeded: 0,
      generation: 0,
      ...overrides
    })

    it.effect("a key never written reads as None, at version 0", () =>
      Effect.gen(function*() {
        const store = yield* CircuitBreakerStore.makeMemory
        assert.isTrue(Option.isNone(yield* store.get("k")))
        assert.isFalse(yield* store.compareAndSet("k", 1, state()), "version 1 was never written")
        assert.isTrue(Option.isNone(yield* store.get("k")))
      }))

    it.effect("compareAndSet writes at the next version only from the version expected", () =>
      Effect.gen(function*() {
        const store = yield* CircuitBreakerStore.makeMemory
        assert.isTrue(yield* store.compareAndSet("k", 0, state({ consecutiveFailures: 1 })))
        assert.isTrue(yield* store.compareAndSet("k", 1, state({ consecutiveFailures: 2 })))
        assert.isFalse(yield* store.compareAndSet("k", 1, state({ consecutiveFailures: 9 })), "a stale writer loses")
        assert.isFalse(yield* store.compareAndSet("k", 0, state({ consecutiveFailures: 9 })))
        const entry = Option.getOrThrow(yield* store.get("k"))
        assert.strictEqual(entry.version, 2)
        assert.strictEqual(entry.state.consecutiveFailures, 2)
        assert.isTrue(Option.isNone(yield* store.get("other")), "keys are apart")
      }))

    it.effect("an entry survives JSON through its Schema", () =>
      Effect.gen(function*() {
        const entry: CircuitBreakerStore.Entry = {
          version: 7,
          state: state({ state: "open", window: [true, false], trips: 2, openUntil: 30_000, openedAt: 10_000 })
        }
        const json = JSON.stringify(yield* Schema.encode(CircuitBreakerStore.Entry)(entry))
        assert.deepStrictEqual(yield* Schema.decode(CircuitBreakerStore.Entry)(JSON.parse(json)), entry)
      }))
  })

  describe("breakers over one store are one breaker", () => {
    it.effect("a trip through one breaker is seen through another of the same key", () =>
      Effect.gen(function*() {
        const a = yield* CircuitBreaker.make("k", { consecutiveFailures: 2, failureRate: false })
        const b = yield* CircuitBreaker.make("k", { consecutiveFailures: 2, failureRate: false })
        const other = yield* CircuitBreaker.make("other", { consecutiveFailures: 2, failureRate: false })
        yield* Effect.either(a.withBreaker(failing))
        yield* Effect.either(b.withBreaker(failing))
        assert.strictEqual(yield* a.state, "open", "the failures of both counted together")
        const error = yield* Effect.flip(b.withBreaker(Effect.succeed("ran")))
        assert.strictEqual(error._tag, "CircuitOpenError")
        assert.strictEqual(yield* other.state, "closed")
      }).pipe(Effect.provide(CircuitBreakerStore.layerMemory)))

    it.effect("without a store in context, each breaker keeps its own state", () =>
      Effect.gen(function*() {
        const a = yield* CircuitBreaker.make("k", { consecutiveFailures: 1, failureRate: false })
        const b = yield* CircuitBreaker.make("k", { consecutiveFailures: 1, failureRate: false })
        yield* Effect.either(a.withBreaker(failing))
        assert.strictEqual(yield* a.state, "open")
        assert.strictEqual(yield* b.state, "closed")
      }))

    it.effect("only halfOpenProbes probes go through in all", () =>
      Effect.gen(function*() {
        const store = remote(yield* CircuitBreakerStore.makeMemory)
        const { service } = store
        const options = { consecutiveFailures: 1, failureRate: false, halfOpenProbes: 2 } as const
        const breakers = yield* Effect.forEach(
          [1, 2, 3],
          () =>
            CircuitBreaker.make("k", options).pipe(
              Effect.provideService(CircuitBreakerStore.CircuitBreakerStore, service)
            )
        )
        yield* Effect.either(breakers[0]!.withBreaker(failing))
        yield* TestClock.adjust("10 seconds")
        const probes = yield* Effect.forEach(
          breakers,
          (breaker) => Effect.fork(breaker.withBreaker(Effect.as(Effect.sleep("1 second"), "probe"))),
          { concurrency: "unbounded" }
        )
        yield* Effect.yieldNow()
        yield* TestClock.adjust("1 second")
        const exits = yield* Effect.forEach(probes, Fiber.await)
        assert.deepStrictEqual(exits.map(Exit.isSuccess), [true, true, false], "the third was refused")
        assert.isAbove(store.refused(), 0, "the breakers raced for the probes")
        assert.strictEqual(yield* breakers[2]!.state, "closed", "two probes succeeded, through two breakers")
      }))

    it.effect("a registry keeps its breakers' state in the store in context", () =>
      Effect.gen(function*() {
        const store = yield* CircuitBreakerStore.makeMemory
        const registry = yield* CircuitBreaker.makeRegistry({ consecutiveFailures: 1, failureRate: false }).pipe(
          Effect.provideService(CircuitBreakerStore.CircuitBreakerStore, store)
        )
        const breaker = yield* registry.get("k")
        yield* Effect.either(breaker.withBreaker(failing))
        const stored = Option.getOrThrow(yield* stateOf(store, "k"))
        assert.strictEqual(stored.state, "open")
        assert.strictEqual(stored.openUntil, 10_000)
      }))
  })

  describe("through a store's interface only (as on a server)", () => {
    const make = (options: CircuitBreaker.Options, key = "k") =>
      Effect.gen(function*() {
        const memory = yield* CircuitBreakerStore.makeMemory
        const store = remote(memory)
        const breaker = yield* CircuitBreaker.make(key, options).pipe(
          Effect.provideService(CircuitBreakerStore.CircuitBreakerStore, store.service)
        )
        return { breaker, memory, store }
      })

    it.effect("trips, refuses, probes and closes as in memory, and announces in order", () =>
      Effect.gen(function*() {
        const { breaker } = yield* make({ consecutiveFailures: 2, failureRate: false, halfOpenProbes: 1 })
        const queue = yield* breaker.subscribe
        yield* Effect.yieldNow()
        yield* Effect.either(breaker.withBreaker(failing))
        assert.strictEqual(yield* breaker.state, "closed")
        yield* Effect.either(breaker.withBreaker(failing))
        const refused = yield* Effect.flip(breaker.withBreaker(Effect.succeed("ran")))
        assert.strictEqual(refused._tag, "CircuitOpenError")
        if (refused._tag === "CircuitOpenError") {
          assert.isTrue(Duration.equals(Option.getOrThrow(refused.retryAfter), Duration.seconds(10)))
        }
        yield* TestClock.adjust("10 seconds")
        assert.strictEqual(yield* breaker.withBreaker(Effect.succeed("probe")), "probe")
        assert.strictEqual(yield* breaker.state, "closed")
        const events = Chunk.toReadonlyArray(yield* Queue.takeAll(queue))
        assert.deepStrictEqual(events.map((e) => [e.from, e.to, e.at]), [
          ["closed", "open", 0],
          ["open", "half-open", 10_000],
          ["half-open", "closed", 10_000]
        ])
      }).pipe(Effect.scoped))

    it.effect("a call through a closed breaker reads the store and its outcome writes once", () =>
      Effect.gen(function*() {
        const { breaker, store } = yield* make({})
        yield* breaker.withBreaker(Effect.void)
        assert.strictEqual(store.writes(), 1)
        assert.strictEqual(yield* breaker.state, "closed")
        assert.strictEqual(store.writes(), 1, "a read writes nothing")
      }))

    it.effect("concurrent failures trip it once", () =>
      Effect.gen(function*() {
        const { breaker } = yield* make({ consecutiveFailures: 5, failureRate: false })
        const slow = breaker.withBreaker(Effect.zipRight(Effect.yieldNow(), failing))
        yield* Effect.forEach(Array.from({ length: 20 }), () => Effect.either(slow), { concurrency: "unbounded" })
        const snapshot = yield* breaker.snapshot
        assert.strictEqual(snapshot.state, "open")
        assert.strictEqual(snapshot.trips, 1)
      }))

    /**
     * A breaker whose store lets another process write `foreign` (from the
     * state it finds) just before this process's first write.
     */
    const racedBy = (foreign: (state: CircuitBreakerStore.BreakerState) => CircuitBreakerStore.BreakerState) =>
      Effect.gen(function*() {
        const memory = yield* CircuitBreakerStore.makeMemory
        let raced = false
        const service: CircuitBreakerStore.CircuitBreakerStore.Service = {
          get: memory.get,
          compareAndSet: (key, expectedVersion, state) =>
            Effect.flatMap(
              raced ? Effect.void : Effect.flatMap(memory.get(key), (entry) => {
                raced = true
                return Option.match(entry, {
                  onNone: () => memory.compareAndSet(key, 0, foreign(state)),
                  onSome: (e) => memory.compareAndSet(key, e.version, foreign(e.state))
                })
              }),
              () => memory.compareAndSet(key, expectedVersion, state)
            )
        }
        return yield* CircuitBreaker.make("k", { consecutiveFailures: 2, failureRate: false }).pipe(
          Effect.provideService(CircuitBreakerStore.CircuitBreakerStore, service)
        )
      })

    it.effect("a step that loses a race decides again from what the other wrote: both outcomes count", () =>
      Effect.gen(function*() {
        // Another process counts a failure in between: with this one's, that is two in a row.
        const breaker = yield* racedBy((state) => ({ ...state, consecutiveFailures: 1 }))
        yield* Effect.either(breaker.withBreaker(failing))
        const snapshot = yield* breaker.snapshot
        assert.strictEqual(snapshot.state, "open")
        assert.strictEqual(snapshot.consecutiveFailures, 2)
      }))

    it.effect("an outcome that lost its race to a trip does not count after the trip", () =>
      Effect.gen(function*() {
        // Another process trips the breaker (for 60 s) in between.
        const breaker = yield* racedBy((state) => ({
          ...state,
          state: "open",
          consecutiveFailures: 2,
          trips: 1,
          openUntil: 60_000,
          openedAt: 0,
          generation: state.generation + 1
        }))
        yield* Effect.either(breaker.withBreaker(failing))
        const snapshot = yield* breaker.snapshot
        assert.strictEqual(snapshot.state, "open", "the other process's trip stands")
        assert.strictEqual(snapshot.consecutiveFailures, 2, "this outcome was not counted on top")
        assert.strictEqual(snapshot.openUntil, 60_000)
        assert.strictEqual((yield* Effect.flip(breaker.withBreaker(Effect.void)))._tag, "CircuitOpenError")
      }))

    it.effect("a trip after trips written elsewhere takes the schedule's next break", () =>
      Effect.gen(function*() {
        const { breaker, memory } = yield* make({ consecutiveFailures: 1, failureRate: false, halfOpenProbes: 1 })
        // Another process tripped it twice (10 s, then 20 s): it is half-open after the second break.
        assert.isTrue(
          yield* memory.compareAndSet("k", 0, {
            state: "half-open",
            consecutiveFailures: 0,
            window: [],
            trips: 2,
            openUntil: 20_000,
            openedAt: 0,
            isolated: false,
            probes: 0,
            probesSucceeded: 0,
            generation: 4
          })
        )
        yield* TestClock.adjust("20 seconds")
        yield* Effect.either(breaker.withBreaker(failing)) // the probe fails: the third break
        const refused = yield* Effect.flip(breaker.withBreaker(Effect.void))
        if (refused._tag !== "CircuitOpenError") return assert.fail("expected a CircuitOpenError")
        assert.isTrue(Duration.equals(Option.getOrThrow(refused.retryAfter), Duration.seconds(40)))
      }))
  })

  describe("a store that cannot answer", () => {
    const down: CircuitBreakerStore.CircuitBreakerStore.Service = {
      get: () => Effect.fail(new CircuitBreakerStore.CircuitBreakerStoreError({ message: "connection refused" })),
      compareAndSet: () =>
        Effect.fail(new CircuitBreakerStore.CircuitBreakerStoreError({ message: "connection refused" }))
    }

    it.effect("lets calls through, uncounted (the breaker fails open)", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make("k", { consecutiveFailures: 1, failureRate: false })
        let ran = 0
        const call = breaker.withBreaker(Effect.suspend(() => {
          ran++
          return failing
        }))
        for (let i = 0; i < 3; i++) assert.strictEqual((yield* Effect.flip(call))._tag, "ServiceUnavailableError")
        assert.strictEqual(ran, 3)
      }).pipe(Effect.provideService(CircuitBreakerStore.CircuitBreakerStore, down)))

    it.effect("is a defect in state, snapshot, isolate, reset and restore", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make("k")
        const saved = new CircuitBreaker.Snapshot({
          key: "k",
          state: "closed",
          consecutiveFailures: 0,
          window: [],
          trips: 0,
          openUntil: null,
          isolated: false,
          probes: 0,
          probesSucceeded: 0
        })
        for (
          const operation of [breaker.state, breaker.snapshot, breaker.isolate, breaker.reset, breaker.restore(saved)]
        ) {
          const exit = yield* Effect.exit(operation)
          assert.isTrue(Exit.isFailure(exit) && Cause.isDie(exit.cause))
          if (Exit.isFailure(exit)) assert.include(Cause.pretty(exit.cause), "connection refused")
        }
      }).pipe(Effect.provideService(CircuitBreakerStore.CircuitBreakerStore, down)))
  })
})
