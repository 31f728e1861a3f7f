import { assert, describe, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as TestClock from "effect/TestClock"
import { timeoutFail } from "../../src/internal/timeout.js"

class TimedOut {
  readonly _tag = "TimedOut"
}

const bounded = <A, E>(effect: Effect.Effect<A, E>, millis: number) =>
  timeoutFail(effect, { duration: Duration.millis(millis), onTimeout: () => new TimedOut() })

/** An effect that takes `millis` of real time and notes whether its finalizer ran. */
const slow = (millis: number, state: { finalized: boolean }) =>
  Effect.ensuring(
    Effect.as(Effect.promise(() => new Promise((resolve) => setTimeout(resolve, millis))), "done"),
    Effect.sync(() => {
      state.finalized = true
    })
  )

describe("timeoutFail under the default clock (one fiber and a timer)", () => {
  it.live("an effect that ends first gives its value", () =>
    Effect.gen(function*() {
      const state = { finalized: false }
      assert.strictEqual(yield* bounded(slow(5, state), 1_000), "done")
      assert.isTrue(state.finalized)
    }))

  it.live("an effect that fails first gives its error", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(bounded(Effect.fail("boom" as const), 1_000))
      assert.strictEqual(error, "boom")
    }))

  it.live("time up: the effect is interrupted, its finalizers have run, then the timeout error", () =>
    Effect.gen(function*() {
      const state = { finalized: false }
      const started = Date.now()
      const error = yield* Effect.flip(bounded(slow(2_000, state), 30))
      assert.instanceOf(error, TimedOut)
      assert.isTrue(state.finalized, "the effect's finalizers ran before the error")
      assert.isBelow(Date.now() - started, 1_000)
    }))

  it.live("interrupting the caller interrupts the effect", () =>
    Effect.gen(function*() {
      const state = { finalized: false }
      const fiber = yield* Effect.fork(bounded(slow(2_000, state), 1_000))
      yield* Effect.sleep("10 millis")
      const exit = yield* Fiber.interrupt(fiber)
      assert.isTrue(Exit.isInterrupted(exit))
      assert.isTrue(state.finalized)
    }))
})

describe("timeoutFail under TestClock (Effect.timeoutFail)", () => {
  it.effect("bounds by virtual time", () =>
    Effect.gen(function*() {
      const fiber = yield* Effect.fork(bounded(Effect.as(Effect.sleep("10 seconds"), "done"), 5_000))
      yield* TestClock.adjust("5 seconds")
      const error = yield* Effect.flip(Fiber.join(fiber))
      assert.instanceOf(error, TimedOut)
      const quick = yield* Effect.fork(bounded(Effect.as(Effect.sleep("1 second"), "done"), 5_000))
      yield* TestClock.adjust("1 second")
      assert.strictEqual(yield* Fiber.join(quick), "done")
    }))
})
