import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as TestClock from "effect/TestClock"
import * as BudgetStore from "../src/BudgetStore.js"
import type { ChatCompletionRequestInput } from "../src/ChatCompletion.js"
import * as UsageTrackerInternal from "../src/internal/usageTracker.js"
import * as UsageTracker from "../src/UsageTracker.js"
import * as Capture from "./utils/Capture.js"

const PRICED = "test/priced"
const prices = { [PRICED]: { input: 1, output: 2 } }
const quiet = { logLevel: "None" } as const

/** 3 + (4 + 1) prompt tokens, `maxTokens` completion tokens. */
const request = (maxTokens: number): ChatCompletionRequestInput => ({
  model: PRICED,
  messages: [{ role: "user", content: "hi" }],
  max_tokens: maxTokens
})

const used = (prompt: number, completion: number, reservation?: UsageTracker.Reservation): UsageTracker.CallRecord => ({
  model: PRICED,
  latency: 0,
  attempts: 1,
  usage: { promptTokens: prompt, completionTokens: completion },
  reservation
})

type Operation =
  | { readonly op: "reserve"; readonly key: string; readonly amount: BudgetStore.Amount }
  | { readonly op: "settle"; readonly key: string; readonly id: number | undefined; readonly used: BudgetStore.Amount }
  | { readonly op: "status"; readonly key: string }

/** A memory store that notes every operation when it runs. */
const recording = Effect.map(BudgetStore.makeMemory, (memory) => {
  const operations: Array<Operation> = []
  const noting = <A, E>(operation: Operation, effect: Effect.Effect<A, E>) =>
    Effect.zipRight(Effect.sync(() => operations.push(operation)), effect)
  const store: BudgetStore.BudgetStore.Service = {
    reserve: (options) => noting({ op: "reserve", key: options.key, amount: options.amount }, memory.reserve(options)),
    settle: (options) =>
      noting({ op: "settle", key: options.key, id: options.id, used: options.used }, memory.settle(options)),
    status: (options) => noting({ op: "status", key: options.key }, memory.status(options))
  }
  return { store, operations }
})

const resolved = (options: UsageTracker.Options) => Either.getOrThrow(UsageTrackerInternal.resolveOptions(options))

describe("BudgetStore", () => {
  it.effect("trackers made where a store is provided spend one budget; without one, each spends its own", () =>
    Effect.gen(function*() {
      const options = { prices, budget: { tokens: 100 }, ...quiet }
      const spendThenReserve = Effect.gen(function*() {
        const a = yield* UsageTracker.make(options)
        const b = yield* UsageTracker.make(options)
        yield* a.record(used(80, 0))
        return yield* Effect.either(b.reserve(request(30)))
      })
      const shared = yield* Effect.provide(spendThenReserve, BudgetStore.layerMemory)
      assert.isTrue(Either.isLeft(shared) && shared.left._tag === "BudgetExceededError")
      if (Either.isLeft(shared) && shared.left._tag === "BudgetExceededError") {
        assert.deepInclude(shared.left, { spent: 80, requested: 38 })
      }
      assert.isTrue(Either.isRight(yield* spendThenReserve))
    }))

  it.effect("periods count from the start of the budget in the store, not from each tracker's", () =>
    Effect.gen(function*() {
      const options: UsageTracker.Options = { budget: { tokens: 100, period: "1 hour" }, ...quiet }
      const store = yield* BudgetStore.makeMemory
      const first = yield* Effect.provideService(UsageTracker.make(options), BudgetStore.BudgetStore, store)
      yield* first.record(used(70, 0))
      yield* TestClock.adjust("30 minutes")
      // Joins, or restarts, half-way through the period: the budget goes on.
      const second = yield* Effect.provideService(UsageTracker.make(options), BudgetStore.BudgetStore, store)
      assert.deepInclude((yield* second.budget)[0], { spent: 70, periodStart: 0, periodEnd: 3_600_000 })
      yield* TestClock.adjust("30 minutes")
      assert.deepInclude((yield* second.budget)[0], { spent: 0, periodStart: 3_600_000 })
    }))

  it.effect("a tracker holds and settles through the store given it, under its key, a hold given back once", () =>
    Effect.gen(function*() {
      const { operations, store } = yield* recording
      const tracker = yield* UsageTrackerInternal.makeResolved(resolved({ prices, budget: { usd: 1, tokens: 1000 } }), {
        store,
        key: "team-a"
      })
      const reservation = yield* tracker.reserve(request(100))
      yield* tracker.record(used(8, 12, reservation))
      yield* tracker.record(used(8, 12, reservation))
      yield* tracker.budget
      assert.deepStrictEqual(operations, [
        { op: "reserve", key: "team-a", amount: { usd: (8 * 1 + 100 * 2) / 1e6, tokens: 108 } },
        { op: "settle", key: "team-a", id: 1, used: { usd: (8 * 1 + 12 * 2) / 1e6, tokens: 20 } },
        { op: "settle", key: "team-a", id: undefined, used: { usd: (8 * 1 + 12 * 2) / 1e6, tokens: 20 } },
        { op: "status", key: "team-a" }
      ])
    }))

  it.effect("a store given explicitly wins over the one in context", () =>
    Effect.gen(function*() {
      const { operations, store } = yield* recording
      const tracker = yield* UsageTrackerInternal.makeResolved(resolved({ budget: { tokens: 10 }, ...quiet }), {
        store
      }).pipe(Effect.provide(BudgetStore.layerMemory))
      yield* tracker.budget
      assert.deepStrictEqual(operations, [{ op: "status", key: "budget" }])
    }))

  it.effect("a tracker without a budget never asks its store", () =>
    Effect.gen(function*() {
      const { operations, store } = yield* recording
      const tracker = yield* Effect.provideService(
        UsageTracker.make({ prices, ...quiet }),
        BudgetStore.BudgetStore,
        store
      )
      const reservation = yield* tracker.reserve(request(10))
      yield* tracker.record(used(1, 1, reservation))
      assert.deepStrictEqual(yield* tracker.budget, [])
      assert.deepStrictEqual(operations, [])
    }))

  it.effect("a store that cannot answer lets calls go ahead and be counted, with a warning; budget dies", () =>
    Effect.gen(function*() {
      const capture = Capture.make()
      const failure = new BudgetStore.BudgetStoreError({ message: "connection refused" })
      const down: BudgetStore.BudgetStore.Service = {
        reserve: () => Effect.fail(failure),
        settle: () => Effect.fail(failure),
        status: () => Effect.fail(failure)
      }
      const result = yield* Capture.withCapture(
        capture,
        Effect.gen(function*() {
          const tracker = yield* UsageTrackerInternal.makeResolved(
            resolved({ prices, budget: { tokens: 10 }, ...quiet }),
            { store: down }
          )
          const reservation = yield* tracker.reserve(request(1000))
          yield* tracker.record(used(500, 500, reservation))
          return { totals: yield* tracker.totals, budget: yield* Effect.exit(tracker.budget) }
        })
      )
      assert.strictEqual(result.totals.overall.totalTokens, 1000, "counted in the totals")
      assert.isTrue(Exit.isFailure(result.budget) && Exit.causeOption(result.budget)._tag === "Some")
      assert.include(String(result.budget), "connection refused")
      const warnings = capture.logs.filter((log) => log.message.includes("Budget store failed"))
      assert.strictEqual(warnings.length, 2)
      assert.include(warnings[0]!.message, "the call goes ahead without a hold")
      assert.include(warnings[1]!.message, "the call is not counted in the budget")
      assert.deepInclude(warnings[0]!.annotations, { key: "budget", error: "connection refused" })
    }))
})
