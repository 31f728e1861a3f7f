/**
 * The budget's rule as plain data: no runtime, no clock, no fibers.
 */
import { assert, describe, it } from "@effect/vitest"
import * as FastCheck from "effect/FastCheck"
import * as HashMap from "effect/HashMap"
import type * as BudgetStore from "../../src/BudgetStore.js"
import * as budget from "../../src/internal/budget.js"

const HOUR = 3_600_000

const terms = (overrides: Partial<BudgetStore.Limits> = {}): BudgetStore.Limits => ({
  usd: undefined,
  tokens: 1000,
  periodMillis: undefined,
  origin: 0,
  thresholds: [0.5, 0.8, 1],
  ...overrides
})

const tokens = (n: number): BudgetStore.Amount => ({ usd: 0, tokens: n })

/** Holds `amount`, asserting that it fits; returns the state and the hold's id. */
const held = (state: budget.State, amount: BudgetStore.Amount, now: number, limits: BudgetStore.Limits) => {
  const [next, decision] = budget.reserve(state, amount, now, limits)
  assert.strictEqual(decision._tag, "Held")
  return { state: next, id: decision._tag === "Held" ? decision.id : -1 }
}

const statusOf = (state: budget.State, now: number, limits: BudgetStore.Limits) => budget.status(state, now, limits)[1]

describe("budget", () => {
  describe("reserve", () => {
    it("holds an amount that fits beside what is spent and held, and refuses one that does not, with figures", () => {
      const limits = terms({ tokens: 250 })
      const first = held(budget.initial(0), tokens(108), 0, limits)
      const second = held(first.state, tokens(108), 0, limits)
      assert.notStrictEqual(first.id, second.id)
      const [after, refused] = budget.reserve(second.state, tokens(108), 0, limits)
      assert.deepStrictEqual(refused, {
        _tag: "Exceeded",
        dimension: "tokens",
        limit: 250,
        spent: 0,
        reserved: 216,
        requested: 108,
        resetsInMillis: undefined
      })
      assert.strictEqual(after, second.state, "a refusal holds nothing")
      assert.deepInclude(statusOf(after, 0, limits)[0], { reserved: 216, remaining: 34 })
    })

    it("checks every dimension with a limit, dollars first, and leaves the others alone", () => {
      const limits = terms({ usd: 1, tokens: 100 })
      const [, overUsd] = budget.reserve(budget.initial(0), { usd: 2, tokens: 1000 }, 0, limits)
      assert.deepInclude(overUsd, { _tag: "Exceeded", dimension: "usd", requested: 2 })
      const [, overTokens] = budget.reserve(budget.initial(0), { usd: 0.5, tokens: 1000 }, 0, limits)
      assert.deepInclude(overTokens, { _tag: "Exceeded", dimension: "tokens", requested: 1000 })
      const tokensOnly = held(budget.initial(0), { usd: 1e6, tokens: 10 }, 0, terms({ tokens: 100 }))
      assert.deepStrictEqual(statusOf(tokensOnly.state, 0, terms({ tokens: 100 })).map((s) => s.dimension), ["tokens"])
    })

    it("a budget of exactly ten calls' cost holds ten, though the sum drifts in its last bits", () => {
      const cost = (9 * 1 + 4 * 2) / 1e6
      const limits = terms({ usd: 10 * cost, tokens: undefined })
      let state = budget.initial(0)
      for (let i = 0; i < 10; i++) state = held(state, { usd: cost, tokens: 13 }, 0, limits).state
      assert.strictEqual(budget.reserve(state, { usd: cost, tokens: 13 }, 0, limits)[1]._tag, "Exceeded")
    })

    it("refuses an amount that is not a finite number >= 0", () => {
      for (const bad of [Number.NaN, Infinity, -1, 1e308]) {
        const [state, decision] = budget.reserve(budget.initial(0), tokens(bad), 0, terms())
        assert.strictEqual(decision._tag, "Exceeded", String(bad))
        assert.strictEqual(state.tokens.reserved, 0, String(bad))
      }
    })

    it("tells how long until the period ends", () => {
      const limits = terms({ tokens: 100, periodMillis: HOUR })
      const spent = budget.settle(budget.initial(0), undefined, tokens(100), 0, limits)[0]
      const [, decision] = budget.reserve(spent, tokens(1), 15 * 60_000, limits)
      assert.deepInclude(decision, { _tag: "Exceeded", resetsInMillis: 45 * 60_000 })
    })
  })

  describe("settle", () => {
    it("gives the hold back and spends what was used", () => {
      const limits = terms({ tokens: 250 })
      const first = held(budget.initial(0), tokens(108), 0, limits)
      const second = held(first.state, tokens(108), 0, limits)
      const [settled] = budget.settle(second.state, first.id, tokens(20), 0, limits)
      assert.deepInclude(statusOf(settled, 0, limits)[0], { spent: 20, reserved: 108 })
    })

    it("gives a hold back once: a second settlement of it only spends", () => {
      const limits = terms({ tokens: 250 })
      const first = held(budget.initial(0), tokens(108), 0, limits)
      const second = held(first.state, tokens(108), 0, limits)
      const [once] = budget.settle(second.state, second.id, tokens(0), 0, limits)
      const [twice] = budget.settle(once, second.id, tokens(5), 0, limits)
      assert.deepInclude(statusOf(twice, 0, limits)[0], { spent: 5, reserved: 108 })
      const [unknown] = budget.settle(twice, 999, tokens(0), 0, limits)
      assert.deepInclude(statusOf(unknown, 0, limits)[0], { spent: 5, reserved: 108 }, "an id never held")
    })

    it("with nothing in flight nothing stays reserved, whatever the sums left in their last bits", () => {
      const limits = terms({ usd: 1, tokens: undefined })
      let state = budget.initial(0)
      const ids: Array<number> = []
      for (const usd of [0.1, 0.2, 0.3]) {
        const hold = held(state, { usd, tokens: 0 }, 0, limits)
        state = hold.state
        ids.push(hold.id)
      }
      for (const id of ids) state = budget.settle(state, id, { usd: 0, tokens: 0 }, 0, limits)[0]
      assert.strictEqual(state.usd.reserved, 0)
      assert.isTrue(HashMap.isEmpty(state.holds))
    })

    it("reports each threshold once per period, with the figures, however many a call jumps past", () => {
      const limits = terms({ tokens: 1000, periodMillis: HOUR })
      let state = budget.initial(0)
      const seen: Array<ReadonlyArray<readonly [number, number]>> = []
      for (const used of [300, 300, 300, 100, 50]) {
        const [next, crossed] = budget.settle(state, undefined, tokens(used), 0, limits)
        state = next
        seen.push(crossed.map((c) => [c.threshold, c.spent] as const))
      }
      assert.deepStrictEqual(seen, [[], [[0.5, 600]], [[0.8, 900]], [[1, 1000]], []])
      const [, jump] = budget.settle(budget.initial(0), undefined, tokens(850), 0, limits)
      assert.deepStrictEqual(jump.map((c) => [c.dimension, c.threshold, c.limit, c.periodStart]), [
        ["tokens", 0.5, 1000, 0],
        ["tokens", 0.8, 1000, 0]
      ])
      const [, nextPeriod] = budget.settle(state, undefined, tokens(600), HOUR + 1, limits)
      assert.deepStrictEqual(nextPeriod.map((c) => [c.threshold, c.periodStart]), [[0.5, HOUR]], "armed again")
    })

    it("spends an amount that is not a number above 0 as nothing, and a huge one below Infinity", () => {
      const limits = terms({ usd: 1, tokens: 1000 })
      for (const bad of [Number.NaN, -5, -Infinity]) {
        const [state] = budget.settle(budget.initial(0), undefined, { usd: bad, tokens: bad }, 0, limits)
        assert.deepStrictEqual([state.usd.spent, state.tokens.spent], [0, 0], String(bad))
      }
      let state = budget.initial(0)
      for (let i = 0; i < 3; i++) {
        state = budget.settle(state, undefined, { usd: Infinity, tokens: Number.MAX_VALUE }, 0, limits)[0]
      }
      assert.deepStrictEqual([state.usd.spent, state.tokens.spent], [Number.MAX_VALUE, Number.MAX_VALUE])
    })
  })

  describe("roll", () => {
    it("starts each period with nothing spent and the thresholds armed, and keeps the holds", () => {
      const limits = terms({ tokens: 100, periodMillis: HOUR })
      const hold = held(budget.initial(0), tokens(18), 0, limits)
      const [spent] = budget.settle(hold.state, undefined, tokens(82), 0, limits)
      assert.deepInclude(statusOf(spent, HOUR - 1, limits)[0], { spent: 82, reserved: 18, periodEnd: HOUR })
      const rolled = budget.roll(spent, HOUR, limits)
      assert.deepStrictEqual(rolled.tokens, { spent: 0, reserved: 18, fired: [] })
      assert.deepInclude(statusOf(spent, HOUR, limits)[0], { periodStart: HOUR, periodEnd: 2 * HOUR })
      assert.strictEqual(budget.roll(spent, 3 * HOUR + 5, limits).period, 3, "periods skipped while idle")
    })

    it("counts periods from the state's origin, and never goes back", () => {
      const limits = terms({ tokens: 100, periodMillis: HOUR, origin: 123 })
      const state = budget.roll(budget.initial(1000), 2 * HOUR + 999, limits)
      assert.strictEqual(state.period, 1, "from the origin the state was made with, not the one given later")
      const [spent] = budget.settle(state, undefined, tokens(50), 2 * HOUR, limits)
      const back = budget.roll(spent, 10, limits)
      assert.strictEqual(back, spent, "a clock that stepped back starts nothing again")
      assert.strictEqual(budget.roll(spent, Number.NaN, limits), spent)
    })

    it("without a period, the budget covers all time", () => {
      const limits = terms({ tokens: 100 })
      const [spent] = budget.settle(budget.initial(0), undefined, tokens(100), 0, limits)
      assert.strictEqual(budget.roll(spent, 1e15, limits), spent)
      assert.deepInclude(statusOf(spent, 1e15, limits)[0], { spent: 100, periodStart: 0, periodEnd: undefined })
    })
  })

  describe("properties", () => {
    type Op =
      | { readonly _tag: "reserve"; readonly amount: BudgetStore.Amount }
      | { readonly _tag: "settle"; readonly pick: number; readonly used: BudgetStore.Amount }
      | { readonly _tag: "advance"; readonly millis: number }

    const opsOf = (amount: FastCheck.Arbitrary<number>): FastCheck.Arbitrary<ReadonlyArray<Op>> =>
      FastCheck.array(
        FastCheck.oneof(
          FastCheck.record({
            _tag: FastCheck.constant("reserve" as const),
            amount: FastCheck.record({ usd: amount, tokens: amount })
          }),
          FastCheck.record({
            _tag: FastCheck.constant("settle" as const),
            pick: FastCheck.nat(),
            used: FastCheck.record({ usd: amount, tokens: amount })
          }),
          FastCheck.record({
            _tag: FastCheck.constant("advance" as const),
            millis: FastCheck.integer({ min: 0, max: 3 * HOUR })
          })
        ),
        { maxLength: 80 }
      )

    /**
     * Amounts with two decimals: `FastCheck.double` draws from the bit patterns
     * of doubles, most of them vanishingly small next to a limit.
     */
    const cents = (min: number, max: number) => FastCheck.integer({ min, max }).map((n) => n / 100)

    const limitsArbitrary: FastCheck.Arbitrary<BudgetStore.Limits> = FastCheck.record({
      usd: FastCheck.option(cents(1, 10_000), { nil: undefined }),
      tokens: FastCheck.option(FastCheck.integer({ min: 1, max: 500 }), { nil: undefined }),
      periodMillis: FastCheck.option(FastCheck.integer({ min: 1, max: 2 * HOUR }), { nil: undefined }),
      origin: FastCheck.integer({ min: 0, max: 1000 }),
      thresholds: FastCheck.uniqueArray(FastCheck.integer({ min: 1, max: 100 }).map((n) => n / 100), { maxLength: 4 })
        .map((ts) => [...ts].sort((a, b) => a - b))
    })

    interface Held {
      readonly id: number
      readonly amount: BudgetStore.Amount
    }

    /** Runs `ops` from `limits.origin`; `usedOf` decides what a settlement of a hold spends. */
    const run = (
      limits: BudgetStore.Limits,
      ops: ReadonlyArray<Op>,
      usedOf: (hold: Held, used: BudgetStore.Amount) => BudgetStore.Amount,
      check: (state: budget.State, now: number) => void
    ) => {
      let state = budget.initial(limits.origin)
      let now = limits.origin
      const inFlight: Array<Held> = []
      for (const op of ops) {
        if (op._tag === "advance") {
          now += op.millis
        } else if (op._tag === "reserve") {
          const [next, decision] = budget.reserve(state, op.amount, now, limits)
          if (decision._tag === "Held") inFlight.push({ id: decision.id, amount: op.amount })
          state = next
        } else if (inFlight.length > 0) {
          const [hold] = inFlight.splice(op.pick % inFlight.length, 1)
          state = budget.settle(state, hold.id, usedOf(hold, op.used), now, limits)[0]
        }
        check(state, now)
      }
      return { state, now, inFlight }
    }

    const dimensions = ["usd", "tokens"] as const

    it("spending never exceeds the limit when calls spend at most what they held", () => {
      FastCheck.assert(
        FastCheck.property(limitsArbitrary, opsOf(cents(0, 5000)), (limits, ops) => {
          run(
            limits,
            ops,
            // A fraction of the hold, taken from the drawn amount.
            (hold, used) => ({
              usd: hold.amount.usd * Math.min(1, used.usd / 50),
              tokens: hold.amount.tokens * Math.min(1, used.tokens / 50)
            }),
            (state) => {
              for (const dimension of dimensions) {
                const limit = limits[dimension]
                if (limit === undefined) continue
                const { reserved, spent } = state[dimension]
                assert.isAtMost(spent + reserved, limit * (1 + 1e-9), dimension)
              }
            }
          )
        }),
        { numRuns: 300 }
      )
    })

    it("a settlement gives back exactly its hold, and only its hold", () => {
      FastCheck.assert(
        FastCheck.property(
          limitsArbitrary,
          opsOf(cents(0, 5000)),
          FastCheck.record({ usd: cents(0, 100), tokens: FastCheck.integer({ min: 0, max: 100 }) }),
          (limits, ops, amount) => {
            const { inFlight, now, state } = run(limits, ops, (_, used) => used, () => {})
            const [withHold, decision] = budget.reserve(state, amount, now, limits)
            if (decision._tag !== "Held") return
            const [settled] = budget.settle(withHold, decision.id, { usd: 0, tokens: 0 }, now, limits)
            const before = budget.roll(state, now, limits)
            for (const dimension of dimensions) {
              if (limits[dimension] === undefined) continue
              assert.strictEqual(settled[dimension].spent, before[dimension].spent, dimension)
              if (inFlight.length === 0) assert.strictEqual(settled[dimension].reserved, 0, dimension)
              else assert.closeTo(settled[dimension].reserved, before[dimension].reserved, 1e-9, dimension)
            }
            assert.strictEqual(HashMap.size(settled.holds), inFlight.length)
          }
        ),
        { numRuns: 300 }
      )
    })

    it("a new period starts with nothing spent and the thresholds armed, the holds in flight kept", () => {
      FastCheck.assert(
        FastCheck.property(
          limitsArbitrary.filter((l) => l.periodMillis !== undefined),
          opsOf(cents(0, 5000)),
          (limits, ops) => {
            const { now, state } = run(limits, ops, (_, used) => used, () => {})
            const current = budget.roll(state, now, limits)
            const next = budget.periodEnd(current, limits)!
            const [rolled, statuses] = budget.status(state, next, limits)
            assert.strictEqual(rolled.period, current.period + 1)
            for (const status of statuses) {
              assert.strictEqual(status.spent, 0)
              assert.strictEqual(status.reserved, current[status.dimension].reserved)
              assert.strictEqual(status.periodStart, next)
            }
            for (const dimension of dimensions) assert.deepStrictEqual(rolled[dimension].fired, [])
          }
        ),
        { numRuns: 300 }
      )
    })

    it("no amount, however broken, keeps a budget spent past the end of its period", () => {
      const anyNumber = FastCheck.oneof(
        FastCheck.double(),
        FastCheck.constantFrom(Number.NaN, Infinity, -Infinity, 1e308, Number.MAX_VALUE, -0),
        cents(0, 1000)
      )
      FastCheck.assert(
        FastCheck.property(
          limitsArbitrary.filter((l) => l.periodMillis !== undefined),
          opsOf(anyNumber),
          (limits, ops) => {
            const finite = (state: budget.State) => {
              for (const dimension of dimensions) {
                const { reserved, spent } = state[dimension]
                assert.isTrue(Number.isFinite(spent) && spent >= 0, `spent ${spent}`)
                assert.isTrue(Number.isFinite(reserved) && reserved >= 0, `reserved ${reserved}`)
              }
            }
            const ended = run(limits, ops, (_, used) => used, finite)
            let state = ended.state
            for (const hold of ended.inFlight) state = budget.settle(state, hold.id, hold.amount, ended.now, limits)[0]
            const next = budget.periodEnd(budget.roll(state, ended.now, limits), limits)!
            const small = { usd: (limits.usd ?? 1) / 2, tokens: Math.floor((limits.tokens ?? 2) / 2) }
            assert.strictEqual(budget.reserve(state, small, next, limits)[1]._tag, "Held")
          }
        ),
        { numRuns: 300 }
      )
    })
  })
})
