import { assert, describe, it } from "@effect/vitest"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as Scope from "effect/Scope"
import * as TestClock from "effect/TestClock"
import * as RateLimitInternal from "../src/internal/rateLimit.js"
import * as RateLimit from "../src/RateLimit.js"
import * as RateLimitStore from "../src/RateLimitStore.js"
import * as Capture from "./utils/Capture.js"

const resolved = (options: RateLimit.Options): RateLimitInternal.Resolved =>
  Either.getOrThrow(RateLimitInternal.resolveOptions(options))

type Operation =
  | { readonly op: "admit"; readonly key: string; readonly tokens: number; readonly at: number }
  | { readonly op: "settle"; readonly key: string; readonly id: number; readonly used: number }

/**
 * A store that notes every operation when it runs, answers `admit` from `answers` while
 * there are any, and otherwise passes on to a memory store.
 */
const recording = (answers: Array<RateLimitStore.Admission> = []) =>
  Effect.map(RateLimitStore.makeMemory, (memory) => {
    const operations: Array<Operation> = []
    const store: RateLimitStore.RateLimitStore.Service = {
      admit: (options) =>
        Effect.flatMap(Clock.currentTimeMillis, (at) => {
          operations.push({ op: "admit", key: options.key, tokens: options.tokens, at })
          const answer = answers.shift()
          return answer === undefined ? memory.admit(options) : Effect.succeed(answer)
        }),
      settle: (options) =>
        Effect.suspend(() => {
          operations.push({ op: "settle", key: options.key, id: options.id, used: options.used })
          return memory.settle(options)
        })
    }
    return { store, operations }
  })

const at = <A, E>(effect: Effect.Effect<A, E>) => Effect.fork(Effect.zipRight(effect, Clock.currentTimeMillis))

describe("RateLimitStore", () => {
  it.effect("limiters made where a store is provided keep one quota; without one, each keeps its own", () =>
    Effect.gen(function*() {
      const limits = { requests: { limit: 2, interval: "1 second" } } as const
      const three = Effect.gen(function*() {
        const a = yield* RateLimit.make(limits)
        const b = yield* RateLimit.make(limits)
        return yield* Effect.all(
          [a, b, a].map((limiter) => limiter.withLimit(Clock.currentTimeMillis, { estimatedTokens: 0 })),
          { concurrency: "unbounded" }
        )
      })
      const shared = yield* Effect.fork(Effect.provide(three, RateLimitStore.layerMemory))
      const separate = yield* Effect.fork(three)
      yield* TestClock.adjust("1 second")
      assert.deepStrictEqual([...(yield* Fiber.join(shared))].sort(), [0, 0, 1000])
      assert.deepStrictEqual(yield* Fiber.join(separate), [0, 0, 0])
    }))

  it.effect("a store given explicitly is used under the key given: one admit per try, one settle per call", () =>
    Effect.gen(function*() {
      const { operations, store } = yield* recording()
      const limiter = yield* RateLimitInternal.makeResolved(
        resolved({ tokens: { limit: 100, interval: "10 seconds" } }),
        { store, key: "project-a" }
      )
      yield* limiter.withLimit(Effect.void, { estimatedTokens: 60.5, actualTokens: () => 40 })
      yield* limiter.withLimit(Effect.void, { estimatedTokens: 10, actualTokens: () => Number.NaN })
      assert.deepStrictEqual(operations, [
        { op: "admit", key: "project-a", tokens: 61, at: 0 },
        { op: "settle", key: "project-a", id: 1, used: 40 },
        { op: "admit", key: "project-a", tokens: 10, at: 0 },
        // A count that is not a token count is charged as the reservation.
        { op: "settle", key: "project-a", id: 2, used: 10 }
      ])
    }))

  it.effect("a limiter waits as long as its store says, then asks again", () =>
    Effect.gen(function*() {
      const { operations, store } = yield* recording([{ _tag: "Wait", millis: 500 }, { _tag: "Wait", millis: 250 }])
      const limiter = yield* RateLimitInternal.makeResolved(
        resolved({ requests: { limit: 10, interval: "1 second" } }),
        { store }
      )
      const call = yield* at(limiter.withLimit(Effect.void, { estimatedTokens: 0 }))
      yield* TestClock.adjust("749 millis")
      assert.isTrue(Option.isNone(yield* Fiber.poll(call)))
      yield* TestClock.adjust("1 millis")
      assert.strictEqual(yield* Fiber.join(call), 750)
      assert.deepStrictEqual(operations.map((o) => o.op === "admit" ? [o.key, o.at] : []), [
        ["rate-limit", 0],
        ["rate-limit", 500],
        ["rate-limit", 750]
      ])
    }))

  it.effect("a limiter told to wait for a settlement is woken by one of its own calls settling", () =>
    Effect.gen(function*() {
      const { store } = yield* recording()
      const limiter = yield* RateLimitInternal.makeResolved(
        resolved({ tokens: { limit: 100, interval: "10 seconds" } }),
        { store }
      )
      const scope = yield* Scope.make()
      const permit = yield* Scope.extend(limiter.acquire(100), scope)
      const next = yield* at(limiter.withLimit(Effect.void, { estimatedTokens: 50 }))
      yield* TestClock.adjust("1 hour")
      assert.isTrue(Option.isNone(yield* Fiber.poll(next)), "no timer: only a settlement can make room")
      yield* permit.settle(50)
      assert.strictEqual(yield* Fiber.join(next), 3_600_000)
      yield* Scope.close(scope, Exit.void)
    }))

  it.effect("the memory store keeps each key apart, and reads the time from the Clock", () =>
    Effect.gen(function*() {
      const store = yield* RateLimitStore.makeMemory
      const limits: RateLimitStore.Limits = { requests: { limit: 1, intervalMillis: 1000 }, tokens: undefined }
      assert.deepStrictEqual(yield* store.admit({ key: "a", tokens: 0, limits }), { _tag: "Admitted", id: 1 })
      assert.deepStrictEqual(yield* store.admit({ key: "b", tokens: 0, limits }), { _tag: "Admitted", id: 1 })
      yield* TestClock.adjust("400 millis")
      assert.deepStrictEqual(yield* store.admit({ key: "a", tokens: 0, limits }), { _tag: "Wait", millis: 600 })
      yield* TestClock.adjust("600 millis")
      assert.deepStrictEqual(yield* store.admit({ key: "a", tokens: 0, limits }), { _tag: "Admitted", id: 2 })
    }))

  it.effect("a limiter without limits never asks its store", () =>
    Effect.gen(function*() {
      const { operations, store } = yield* recording()
      const limiter = yield* RateLimitInternal.makeResolved(resolved({}), { store })
      yield* limiter.withLimit(Effect.void, { estimatedTokens: 1e6 })
      yield* Effect.scoped(limiter.acquire(5))
      assert.deepStrictEqual(operations, [])
    }))

  it.effect("a store that cannot answer lets calls through uncounted, with a warning, and settles nothing", () =>
    Effect.gen(function*() {
      const capture = Capture.make()
      const settlements: Array<number> = []
      const down: RateLimitStore.RateLimitStore.Service = {
        admit: () => Effect.fail(new RateLimitStore.RateLimitStoreError({ message: "connection refused" })),
        settle: (options) => Effect.sync(() => settlements.push(options.used))
      }
      const times = yield* Capture.withCapture(
        capture,
        Effect.gen(function*() {
          const limiter = yield* RateLimitInternal.makeResolved(
            resolved({ requests: { limit: 1, interval: "1 minute" }, tokens: { limit: 10, interval: "1 minute" } }),
            { store: down }
          )
          return yield* Effect.forEach(
            [1, 2, 3],
            () => limiter.withLimit(Clock.currentTimeMillis, { estimatedTokens: 10, actualTokens: () => 10 })
          )
        })
      )
      assert.deepStrictEqual(times, [0, 0, 0], "no call waits for a store that cannot answer")
      assert.deepStrictEqual(settlements, [], "nothing was reserved, so nothing is given back")
      const warnings = capture.logs.filter((log) => log.message.includes("Rate limit store failed"))
      assert.strictEqual(warnings.length, 3)
      assert.deepInclude(warnings[0]!.annotations, { key: "rate-limit", error: "connection refused" })
      assert.strictEqual(warnings[0]!.level, "WARN")
    }))

  it.effect("a settlement the store cannot make is logged, and still wakes the next caller", () =>
    Effect.gen(function*() {
      const capture = Capture.make()
      const memory = yield* RateLimitStore.makeMemory
      let asked = 0
      const flaky: RateLimitStore.RateLimitStore.Service = {
        admit: (options) => Effect.zipRight(Effect.sync(() => asked++), memory.admit(options)),
        settle: () => Effect.fail(new RateLimitStore.RateLimitStoreError({ message: "timed out" }))
      }
      yield* Capture.withCapture(
        capture,
        Effect.gen(function*() {
          const limiter = yield* RateLimitInternal.makeResolved(
            resolved({ tokens: { limit: 100, interval: "10 seconds" } }),
            { store: flaky }
          )
          const scope = yield* Scope.make()
          const permit = yield* Scope.extend(limiter.acquire(100), scope)
          const next = yield* at(limiter.withLimit(Effect.void, { estimatedTokens: 10 }))
          yield* TestClock.adjust(0)
          assert.strictEqual(asked, 2)
          yield* permit.settle(0)
          yield* TestClock.adjust("1 hour")
          // The reservation stays held in the store: the woken caller asks again, and waits on.
          assert.strictEqual(asked, 3)
          assert.isTrue(Option.isNone(yield* Fiber.poll(next)))
          yield* Fiber.interrupt(next)
          yield* Scope.close(scope, Exit.void)
        })
      )
      const warnings = capture.logs.filter((log) => log.message.includes("Rate limit store failed"))
      assert.strictEqual(warnings.length, 1)
      assert.include(warnings[0]!.message, "the reservation stays held in the store")
    }))
})
