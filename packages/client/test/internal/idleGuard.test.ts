import { assert, describe, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Scope from "effect/Scope"
import * as TestClock from "effect/TestClock"
import { idleGuard } from "../../src/internal/timeout.js"

/** A guard of `millis` in a scope of its own, counting the aborts it makes. */
const guarded = (millis: number) =>
  Effect.gen(function*() {
    const state = { aborts: 0 }
    const scope = yield* Scope.make()
    const guard = yield* idleGuard(
      () => {
        state.aborts++
      },
      Duration.millis(millis),
      scope
    )
    return { guard, scope, state }
  })

describe("idleGuard under TestClock (a watchdog fiber)", () => {
  it.effect("a read that waits idleTimeout is stopped, and every later check says so", () =>
    Effect.gen(function*() {
      const { guard, scope, state } = yield* guarded(5_000)
      guard.begin()
      yield* TestClock.adjust("4 seconds")
      assert.strictEqual(state.aborts, 0, "not yet")
      assert.isFalse(guard.expired())
      yield* TestClock.adjust("1 second")
      assert.strictEqual(state.aborts, 1)
      assert.isTrue(guard.expired())
      guard.end()
      assert.isTrue(guard.expired(), "a stopped stream stays stopped")
      yield* Scope.close(scope, Exit.void)
    }))

  it.effect("time between reads is the consumer's: it does not count", () =>
    Effect.gen(function*() {
      const { guard, scope, state } = yield* guarded(5_000)
      guard.begin()
      yield* TestClock.adjust("3 seconds")
      guard.end()
      yield* TestClock.adjust("10 minutes")
      assert.strictEqual(state.aborts, 0)
      // Each read has the whole bound from when it began, however long the one before it took.
      guard.begin()
      yield* TestClock.adjust("4 seconds")
      assert.strictEqual(state.aborts, 0)
      yield* TestClock.adjust("1 second")
      assert.strictEqual(state.aborts, 1)
      yield* Scope.close(scope, Exit.void)
    }))

  it.effect("closing the scope stops the watchdog", () =>
    Effect.gen(function*() {
      const { guard, scope, state } = yield* guarded(5_000)
      guard.begin()
      yield* Scope.close(scope, Exit.void)
      yield* TestClock.adjust("1 hour")
      assert.strictEqual(state.aborts, 0)
      assert.isFalse(guard.expired())
    }))
})

describe("idleGuard under the default clock (a timer)", () => {
  it.live("a read that waits idleTimeout is stopped", () =>
    Effect.gen(function*() {
      const { guard, scope, state } = yield* guarded(30)
      guard.begin()
      yield* Effect.sleep("100 millis")
      assert.strictEqual(state.aborts, 1)
      assert.isTrue(guard.expired())
      yield* Scope.close(scope, Exit.void)
    }))

  it.live("a read that ends in time, and the time after it, are not stopped", () =>
    Effect.gen(function*() {
      const { guard, scope, state } = yield* guarded(50)
      guard.begin()
      yield* Effect.sleep("20 millis")
      guard.end()
      yield* Effect.sleep("150 millis")
      assert.strictEqual(state.aborts, 0)
      assert.isFalse(guard.expired())
      yield* Scope.close(scope, Exit.void)
    }))

  it.live("closing the scope clears the timer", () =>
    Effect.gen(function*() {
      const { guard, scope, state } = yield* guarded(30)
      guard.begin()
      yield* Scope.close(scope, Exit.void)
      yield* Effect.sleep("100 millis")
      assert.strictEqual(state.aborts, 0)
    }))
})
