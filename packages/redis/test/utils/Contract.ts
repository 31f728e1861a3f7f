/**
 * The cases of the stores' contracts (the client's `ConcurrencyStore`,
 * `RateLimitStore`, `BudgetStore` and `CircuitBreakerStore`), as suites that
 * run against any implementation: the client's memory stores, the reference,
 * and the Redis stores. They run on the live clock, as a store on a server
 * reads the server's, so their waits are real and short.
 *
 * Each suite takes the tester to declare its tests with (`it.scopedLive` at
 * the top level, or `it.scoped` under a `layer` without test services) and an
 * effect that makes a fresh store for each test.
 */
import type * as BudgetStore from "@effect-inference/client/BudgetStore"
import type * as CircuitBreakerStore from "@effect-inference/client/CircuitBreakerStore"
import type * as ConcurrencyStore from "@effect-inference/client/ConcurrencyStore"
import type * as RateLimitStore from "@effect-inference/client/RateLimitStore"
import type { Vitest } from "@effect/vitest"
import { assert } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import { breakerState } from "./Stores.js"

type Tester<R> = Vitest.Test<Scope.Scope | R>

/** Sleeps a little longer than `millis`: a timer may fire a fraction of a millisecond before the clock says so. */
const after = (millis: number) => Effect.sleep(millis + 5)

export const concurrency = <R>(
  it: Tester<R>,
  make: Effect.Effect<ConcurrencyStore.ConcurrencyStore.Service, never, Scope.Scope | R>
) => {
  const key = "api-key"
  const leaseMillis = 300
  const take = (store: ConcurrencyStore.ConcurrencyStore.Service, leaseId: string, limit = 2) =>
    store.tryAcquire({ key, leaseId, limit, leaseMillis })

  it("takes at most `limit` slots per key", () =>
    Effect.gen(function*() {
      const store = yield* make
      assert.deepStrictEqual([yield* take(store, "a"), yield* take(store, "b"), yield* take(store, "c")], [
        true,
        true,
        false
      ])
      assert.strictEqual(yield* store.held(key), 2, "the refused one took nothing")
      assert.isTrue(yield* store.tryAcquire({ key: "other", leaseId: "c", limit: 2, leaseMillis }), "keys are apart")
      assert.isTrue(yield* take(store, "c", 3), "the limit comes with each request")
    }))

  it("a lease id asking again keeps its one slot", () =>
    Effect.gen(function*() {
      const store = yield* make
      assert.isTrue(yield* take(store, "a", 1))
      assert.isTrue(yield* take(store, "a", 1))
      assert.strictEqual(yield* store.held(key), 1)
    }))

  it("a slot not renewed comes back after the lease time", () =>
    Effect.gen(function*() {
      const store = yield* make
      assert.isTrue(yield* take(store, "crashed", 1))
      yield* Effect.sleep(100)
      assert.isFalse(yield* take(store, "next", 1))
      yield* after(leaseMillis)
      assert.strictEqual(yield* store.held(key), 0)
      assert.isTrue(yield* take(store, "next", 1))
    }))

  it("renewing keeps the slot; a lease that expired is lost for good", () =>
    Effect.gen(function*() {
      const store = yield* make
      assert.isTrue(yield* take(store, "a", 1))
      for (let i = 0; i < 4; i++) {
        yield* Effect.sleep(leaseMillis / 2)
        assert.isTrue(yield* store.renew({ key, leaseId: "a", leaseMillis }))
      }
      assert.isFalse(yield* take(store, "b", 1), "held twice its lease time after it was taken")
      yield* after(leaseMillis)
      assert.isFalse(yield* store.renew({ key, leaseId: "a", leaseMillis }))
      assert.isTrue(yield* take(store, "b", 1))
    }))

  it("release gives the slot back, and releasing again changes nothing", () =>
    Effect.gen(function*() {
      const store = yield* make
      yield* take(store, "a", 1)
      yield* store.release({ key, leaseId: "a" })
      yield* store.release({ key, leaseId: "a" })
      yield* store.release({ key, leaseId: "never" })
      assert.strictEqual(yield* store.held(key), 0)
      assert.isTrue(yield* take(store, "b", 1))
      assert.isFalse(yield* take(store, "c", 1))
    }))
}

/**
 * `shared`: the store is shared by several processes, so it answers a wait
 * for a settlement with a short poll (`Wait` of 100 ms at most), as the
 * contract asks.
 */
export const rateLimit = <R>(
  it: Tester<R>,
  make: Effect.Effect<RateLimitStore.RateLimitStore.Service, never, Scope.Scope | R>,
  shared: boolean
) => {
  const interval = 400
  const requests: RateLimitStore.Limits = { requests: { limit: 1, intervalMillis: interval }, tokens: undefined }
  const tokens: RateLimitStore.Limits = { requests: undefined, tokens: { limit: 100, intervalMillis: interval } }

  const admitted = (admission: RateLimitStore.Admission): number => {
    assert.strictEqual(admission._tag, "Admitted")
    return admission._tag === "Admitted" ? admission.id : NaN
  }
  /** The decision of a call that only a settlement (or, shared, a poll) can let through. */
  const waitsForSettlement = (admission: RateLimitStore.Admission) => {
    if (shared) {
      assert.strictEqual(admission._tag, "Wait")
      if (admission._tag === "Wait") assert.isAtMost(admission.millis, 100)
    } else {
      assert.strictEqual(admission._tag, "WaitForSettlement")
    }
  }
  /** The wait a call is told, asserted to be one of a charge expiring: above 0, at most an interval. */
  const waits = (admission: RateLimitStore.Admission): number => {
    assert.strictEqual(admission._tag, "Wait")
    const millis = admission._tag === "Wait" ? admission.millis : NaN
    assert.isAbove(millis, 0)
    assert.isAtMost(millis, interval)
    return millis
  }

  /**
   * Asks until the call is admitted, waiting as told each time (as a limiter
   * does: a shared store may tell it to poll), and returns how long that took.
   */
  const admitEventually = (
    store: RateLimitStore.RateLimitStore.Service,
    options: Parameters<RateLimitStore.RateLimitStore.Service["admit"]>[0]
  ) =>
    Effect.gen(function*() {
      const start = Date.now()
      for (;;) {
        const admission = yield* store.admit(options)
        if (admission._tag === "Admitted") return Date.now() - start
        assert.strictEqual(admission._tag, "Wait", "only a settlement frees a reservation")
        if (admission._tag === "Wait") yield* after(admission.millis)
      }
    })

  it("keeps each key apart, and slides each window on the store's clock", () =>
    Effect.gen(function*() {
      const store = yield* make
      admitted(yield* store.admit({ key: "a", tokens: 0, limits: requests }))
      admitted(yield* store.admit({ key: "b", tokens: 0, limits: requests }))
      yield* Effect.sleep(100)
      const millis = waits(yield* store.admit({ key: "a", tokens: 0, limits: requests }))
      assert.isAtMost(millis, interval - 90, "the charge made 100 ms ago expires that much sooner")
      yield* after(millis)
      admitted(yield* store.admit({ key: "a", tokens: 0, limits: requests }))
    }))

  it("a reservation counts until it is settled, and is given back once", () =>
    Effect.gen(function*() {
      const store = yield* make
      const first = admitted(yield* store.admit({ key: "k", tokens: 60, limits: tokens }))
      waitsForSettlement(yield* store.admit({ key: "k", tokens: 50, limits: tokens }))
      yield* store.settle({ key: "k", id: first, used: 0, limits: tokens })
      const second = admitted(yield* store.admit({ key: "k", tokens: 50, limits: tokens }))
      assert.notStrictEqual(second, first, "each reservation has an id of its own")
      yield* store.settle({ key: "k", id: first, used: 0, limits: tokens })
      waitsForSettlement(yield* store.admit({ key: "k", tokens: 60, limits: tokens }))
    }))

  it("a settlement charges the tokens used for one interval", () =>
    Effect.gen(function*() {
      const store = yield* make
      const id = admitted(yield* store.admit({ key: "k", tokens: 10, limits: tokens }))
      yield* store.settle({ key: "k", id, used: 90, limits: tokens })
      admitted(yield* store.admit({ key: "k", tokens: 10, limits: tokens }))
      waits(yield* store.admit({ key: "k", tokens: 20, limits: tokens }))
      const waited = yield* admitEventually(store, { key: "k", tokens: 20, limits: tokens })
      assert.isAtLeast(waited, interval - 100, "until the 90 tokens charged expire")
      assert.isAtMost(waited, interval + 100)
    }))

  it("an amount that is not a number above 0 counts as nothing, one above the limit as the whole limit", () =>
    Effect.gen(function*() {
      const store = yield* make
      admitted(yield* store.admit({ key: "k", tokens: -5, limits: tokens }))
      const whole = admitted(yield* store.admit({ key: "k", tokens: 1e9, limits: tokens }))
      waitsForSettlement(yield* store.admit({ key: "k", tokens: 1, limits: tokens }))
      yield* store.settle({ key: "k", id: whole, used: NaN, limits: tokens })
      const next = admitted(yield* store.admit({ key: "k", tokens: 1, limits: tokens }))
      yield* store.settle({ key: "k", id: next, used: Infinity, limits: tokens })
      waits(yield* store.admit({ key: "k", tokens: 1, limits: tokens }))
      const waited = yield* admitEventually(store, { key: "k", tokens: 1, limits: tokens })
      assert.isAtLeast(waited, interval - 100, "until the whole limit charged expires")
    }))
}

export const budget = <R>(
  it: Tester<R>,
  make: Effect.Effect<BudgetStore.BudgetStore.Service, never, Scope.Scope | R>
) => {
  const limits = (overrides: Partial<BudgetStore.Limits> = {}): BudgetStore.Limits => ({
    usd: 1,
    tokens: 1000,
    periodMillis: undefined,
    origin: Date.now(),
    thresholds: [],
    ...overrides
  })
  const held = (decision: BudgetStore.Reserve): number => {
    assert.strictEqual(decision._tag, "Held")
    return decision._tag === "Held" ? decision.id : NaN
  }
  const status = (statuses: ReadonlyArray<{ readonly spent: number; readonly reserved: number }>) =>
    statuses.map(({ reserved, spent }) => ({ spent, reserved }))

  it("holds what fits beside what is spent and held, and refuses the rest with the figures", () =>
    Effect.gen(function*() {
      const store = yield* make
      const terms = limits()
      held(yield* store.reserve({ key: "k", amount: { usd: 0.4, tokens: 100 }, limits: terms }))
      const refused = yield* store.reserve({ key: "k", amount: { usd: 0.7, tokens: 100 }, limits: terms })
      assert.deepStrictEqual(refused, {
        _tag: "Exceeded",
        dimension: "usd",
        limit: 1,
        spent: 0,
        reserved: 0.4,
        requested: 0.7,
        resetsInMillis: undefined
      })
      held(yield* store.reserve({ key: "k", amount: { usd: 0.6, tokens: 900 }, limits: terms }))
      held(yield* store.reserve({ key: "other", amount: { usd: 1, tokens: 1000 }, limits: terms }))
    }))

  it("a settlement gives its hold back once, and spends what was used each time", () =>
    Effect.gen(function*() {
      const store = yield* make
      const terms = limits()
      const id = held(yield* store.reserve({ key: "k", amount: { usd: 0.5, tokens: 10 }, limits: terms }))
      yield* store.settle({ key: "k", id, used: { usd: 0.2, tokens: 5 }, limits: terms })
      assert.deepStrictEqual(status(yield* store.status({ key: "k", limits: terms })), [
        { spent: 0.2, reserved: 0 },
        { spent: 5, reserved: 0 }
      ])
      yield* store.settle({ key: "k", id, used: { usd: 0.1, tokens: 5 }, limits: terms })
      assert.deepStrictEqual(status(yield* store.status({ key: "k", limits: terms })), [
        { spent: 0.30000000000000004, reserved: 0 },
        { spent: 10, reserved: 0 }
      ])
      assert.strictEqual(
        (yield* store.reserve({ key: "k", amount: { usd: 0.8, tokens: 0 }, limits: terms }))._tag,
        "Exceeded"
      )
    }))

  it("an amount that is not a finite number >= 0 does not fit; spending only grows by amounts above 0", () =>
    Effect.gen(function*() {
      const store = yield* make
      const terms = limits()
      for (const usd of [NaN, Infinity, -1]) {
        const refused = yield* store.reserve({ key: "k", amount: { usd, tokens: 0 }, limits: terms })
        assert.deepInclude(refused, { _tag: "Exceeded", dimension: "usd", requested: usd })
      }
      yield* store.settle({ key: "k", id: undefined, used: { usd: NaN, tokens: -5 }, limits: terms })
      yield* store.settle({ key: "k", id: undefined, used: { usd: Infinity, tokens: 0 }, limits: terms })
      const [usd] = yield* store.status({ key: "k", limits: terms })
      assert.strictEqual(usd.spent, Number.MAX_VALUE, "clamped below Infinity")
    }))

  it("thresholds are crossed once per period; a new period starts from 0 and keeps the holds", () =>
    Effect.gen(function*() {
      const store = yield* make
      const periodMillis = 600
      const terms = limits({ tokens: undefined, periodMillis, thresholds: [0.5, 0.9] })
      const spend = (usd: number) => store.settle({ key: "k", id: undefined, used: { usd, tokens: 0 }, limits: terms })
      const crossed = (all: ReadonlyArray<BudgetStore.ThresholdCrossed>) => all.map((c) => [c.threshold, c.spent])
      held(yield* store.reserve({ key: "k", amount: { usd: 0.05, tokens: 0 }, limits: terms }))
      assert.deepStrictEqual(crossed(yield* spend(0.6)), [[0.5, 0.6]])
      assert.deepStrictEqual(crossed(yield* spend(0.1)), [])
      assert.deepStrictEqual(crossed(yield* spend(0.25)), [[0.9, 0.95]])
      const [before] = yield* store.status({ key: "k", limits: terms })
      assert.strictEqual(before.periodStart, terms.origin)
      assert.strictEqual(before.periodEnd, terms.origin + periodMillis)
      yield* Effect.sleep(before.periodEnd! - Date.now() + 5)
      const [after] = yield* store.status({ key: "k", limits: { ...terms, origin: Date.now() } })
      assert.deepInclude(after, { spent: 0, reserved: 0.05, periodStart: terms.origin + periodMillis })
      const again = yield* spend(0.6)
      assert.deepStrictEqual(crossed(again), [[0.5, 0.6]])
      assert.strictEqual(again[0].periodStart, terms.origin + periodMillis, "counted from the budget's own origin")
    }))
}

export const circuitBreaker = <R>(
  it: Tester<R>,
  make: Effect.Effect<CircuitBreakerStore.CircuitBreakerStore.Service, never, Scope.Scope | R>
) => {
  const state = breakerState

  it("a key never written reads as None, at version 0", () =>
    Effect.gen(function*() {
      const store = yield* make
      assert.isTrue(Option.isNone(yield* store.get("k")))
      assert.isFalse(yield* store.compareAndSet("k", 1, state()), "version 1 was never written")
      assert.isTrue(Option.isNone(yield* store.get("k")))
    }))

  it("compareAndSet writes at the next version only from the version expected", () =>
    Effect.gen(function*() {
      const store = yield* make
      assert.isTrue(yield* store.compareAndSet("k", 0, state({ consecutiveFailures: 1 })))
      assert.isTrue(yield* store.compareAndSet("k", 1, state({ consecutiveFailures: 2 })))
      assert.isFalse(yield* store.compareAndSet("k", 1, state({ consecutiveFailures: 9 })), "a stale writer loses")
      assert.isFalse(yield* store.compareAndSet("k", 0, state({ consecutiveFailures: 9 })))
      const entry = Option.getOrThrow(yield* store.get("k"))
      assert.strictEqual(entry.version, 2)
      assert.strictEqual(entry.state.consecutiveFailures, 2)
      assert.isTrue(Option.isNone(yield* store.get("other")), "keys are apart")
    }))

  it("a state is read back as it was written", () =>
    Effect.gen(function*() {
      const store = yield* make
      const written = state({
        state: "open",
        window: [true, false, true],
        trips: 2,
        openUntil: 1_733_000_030_000.5,
        openedAt: 1_733_000_010_000,
        isolated: true,
        probes: 1,
        probesSucceeded: 1,
        generation: 7
      })
      assert.isTrue(yield* store.compareAndSet("k", 0, written))
      assert.deepStrictEqual(yield* store.get("k"), Option.some({ version: 1, state: written }))
    }))
}
