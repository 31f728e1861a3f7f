/**
 * The rate limiter's rule as plain data: no runtime, no clock, no fibers. The
 * properties replay random calls against a model of the rule written from its
 * definition (what was charged in the last interval, plus what is reserved,
 * plus the call, is at most the limit), so the core must agree with it at
 * every step, not only keep to the limit.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as FastCheck from "effect/FastCheck"
import * as HashMap from "effect/HashMap"
import * as core from "../../src/internal/rateLimitCore.js"
import type * as RateLimitStore from "../../src/RateLimitStore.js"

const tokensOnly = (limit: number, intervalMillis: number): RateLimitStore.Limits => ({
  requests: undefined,
  tokens: { limit, intervalMillis }
})

/** Admits at `now`: the new state, the decision without its id, and the id (-1 if not admitted). */
const admit = (state: core.State, tokens: number, now: number, limits: RateLimitStore.Limits) => {
  const [next, decision] = core.admit(state, tokens, now, limits)
  return decision._tag === "Admitted"
    ? { state: next, decision: { _tag: "Admitted" } as const, id: decision.id }
    : { state: next, decision, id: -1 }
}

/** Admits at `now`, asserting that the call goes through, and settles it at `at` with `used`. */
const admitAndSettle = (
  state: core.State,
  tokens: number,
  now: number,
  used: number,
  at: number,
  limits: RateLimitStore.Limits
) => {
  const admitted = admit(state, tokens, now, limits)
  assert.deepStrictEqual(admitted.decision, { _tag: "Admitted" })
  return core.settle(admitted.state, admitted.id, used, at, limits)
}

const charges = (window: core.Window) => Chunk.toReadonlyArray(window.log)

describe("rateLimitCore", () => {
  describe("admit", () => {
    it("lets a call through while reservations and recent charges leave room, else says why it waits", () => {
      const limits = tokensOnly(100, 10_000)
      const a = admit(core.initial, 60, 0, limits)
      assert.deepStrictEqual(a.decision, { _tag: "Admitted" })
      assert.strictEqual(a.state.tokens.reserved, 60)
      const b = admit(a.state, 50, 0, limits)
      assert.deepStrictEqual(b.decision, { _tag: "WaitForSettlement" }, "only a reservation stands in the way")
      assert.strictEqual(b.state, a.state, "a refused call changes nothing")
      // Used 90 of 60: the reservation is given back and 90 charged for one interval from 1 s.
      const settled = core.settle(b.state, a.id, 90, 1000, limits)
      assert.deepStrictEqual(settled.tokens, { log: settled.tokens.log, charged: 90, reserved: 0 })
      assert.deepStrictEqual(admit(settled, 20, 2000, limits).decision, { _tag: "Wait", millis: 9000 })
      assert.deepStrictEqual(admit(settled, 20, 10_999, limits).decision, { _tag: "Wait", millis: 1 })
      assert.deepStrictEqual(admit(settled, 20, 11_000, limits).decision, { _tag: "Admitted" })
      assert.deepStrictEqual(admit(settled, 10, 2000, limits).decision, { _tag: "Admitted" }, "90 + 10 fits")
    })

    it("counts every admission as one request, and waits for the oldest request in the way", () => {
      const limits: RateLimitStore.Limits = { requests: { limit: 2, intervalMillis: 1000 }, tokens: undefined }
      let state = core.initial
      for (const now of [0, 400]) {
        const step = admit(state, 1e6, now, limits)
        assert.deepStrictEqual(step.decision, { _tag: "Admitted" })
        state = step.state
      }
      assert.deepStrictEqual(admit(state, 0, 500, limits).decision, { _tag: "Wait", millis: 500 })
      const third = admit(state, 0, 1000, limits)
      assert.deepStrictEqual(third.decision, { _tag: "Admitted" })
      assert.deepStrictEqual(charges(third.state.requests), [{ at: 400, amount: 1 }, { at: 1000, amount: 1 }])
      assert.deepStrictEqual(third.state.tokens, core.emptyWindow, "a window without a limit stays empty")
      assert.isTrue(HashMap.isEmpty(third.state.holds), "and holds nothing")
    })

    it("adds up charges made at one instant in one entry, and drops them together", () => {
      const limits: RateLimitStore.Limits = { requests: { limit: 5000, intervalMillis: 1000 }, tokens: undefined }
      let state = core.initial
      for (let i = 0; i < 3000; i++) state = admit(state, 0, 0, limits).state
      state = admit(state, 0, 500, limits).state
      assert.deepStrictEqual(charges(state.requests), [{ at: 0, amount: 3000 }, { at: 500, amount: 1 }])
      state = admit(state, 0, 1000, limits).state
      assert.deepStrictEqual(charges(state.requests), [{ at: 500, amount: 1 }, { at: 1000, amount: 1 }])
      assert.strictEqual(state.requests.charged, 2)
    })

    it("a call reserving the whole limit goes alone, once the window is empty", () => {
      const limits = tokensOnly(100, 10_000)
      const settled = admitAndSettle(core.initial, 10, 0, 10, 0, limits)
      assert.deepStrictEqual(admit(settled, 100, 5000, limits).decision, { _tag: "Wait", millis: 5000 })
      const big = admit(settled, 100, 10_000, limits)
      assert.deepStrictEqual(big.decision, { _tag: "Admitted" })
      assert.deepStrictEqual(admit(big.state, 0, 10_000, limits).decision, { _tag: "Admitted" }, "0 always fits")
      assert.deepStrictEqual(admit(big.state, 1, 10_000, limits).decision, { _tag: "WaitForSettlement" })
    })
  })

  describe("settle", () => {
    it("gives the reservation back and charges what was used from now, for one interval", () => {
      const limits = tokensOnly(100, 10_000)
      const admitted = admit(core.initial, 80, 0, limits)
      const refunded = core.settle(admitted.state, admitted.id, 0, 1000, limits)
      assert.deepStrictEqual(refunded.tokens, core.emptyWindow, "0 used gives it all back")
      const charged = core.settle(admitted.state, admitted.id, 21, 1000, limits)
      assert.deepStrictEqual(charges(charged.tokens), [{ at: 1000, amount: 21 }])
      assert.deepStrictEqual(admit(charged, 80, 1000, limits).decision, { _tag: "Wait", millis: 10_000 })
    })

    it("a charge above the limit counts as the whole limit, for one interval and no more", () => {
      const limits = tokensOnly(1000, 60_000)
      for (const used of [999_999_999, 1e308, Infinity]) {
        const settled = admitAndSettle(core.initial, 10, 0, used, 0, limits)
        assert.deepStrictEqual(charges(settled.tokens), [{ at: 0, amount: 1000 }], String(used))
        assert.deepStrictEqual(admit(settled, 1000, 60_000, limits).decision, { _tag: "Admitted" }, String(used))
      }
    })

    it("an amount that is not a number above 0 counts as nothing", () => {
      const limits = tokensOnly(1000, 60_000)
      for (const used of [Number.NaN, -5, -Infinity, 0]) {
        const settled = admitAndSettle(core.initial, 400, 0, used, 0, limits)
        assert.deepStrictEqual(settled.tokens, core.emptyWindow, String(used))
      }
    })

    it("a settlement counts once: an id settled already, or never admitted, changes nothing", () => {
      const limits = tokensOnly(1000, 60_000)
      const first = admit(core.initial, 400, 0, limits)
      const second = admit(first.state, 300, 0, limits)
      const once = core.settle(second.state, first.id, 100, 10, limits)
      assert.deepStrictEqual([once.tokens.reserved, once.tokens.charged], [300, 100])
      assert.strictEqual(core.settle(once, first.id, 100, 20, limits), once, "a retried settlement")
      assert.strictEqual(core.settle(once, 999, 100, 20, limits), once, "an id never admitted")
    })

    it("a time before the newest charge counts as the newest charge's time", () => {
      const limits = tokensOnly(100, 1000)
      const first = admitAndSettle(core.initial, 10, 500, 10, 500, limits)
      const stepped = admitAndSettle(first, 10, 200, 10, 200, limits)
      assert.deepStrictEqual(charges(stepped.tokens), [{ at: 500, amount: 20 }])
      assert.strictEqual(stepped.tokens.reserved, 0)
    })

    it("does nothing without a token limit", () => {
      const limits: RateLimitStore.Limits = { requests: { limit: 1, intervalMillis: 1000 }, tokens: undefined }
      const admitted = admit(core.initial, 50, 0, limits)
      assert.strictEqual(core.settle(admitted.state, admitted.id, 70, 0, limits), admitted.state)
    })
  })

  describe("reservation", () => {
    it("rounds an estimate up and clamps it to the token limit; refuses one that is not a finite number >= 0", () => {
      const limits = tokensOnly(100, 1000)
      assert.strictEqual(core.reservation(9.2, limits), 10)
      assert.strictEqual(core.reservation(250, limits), 100)
      assert.strictEqual(core.reservation(1e6, { requests: undefined, tokens: undefined }), 1e6)
      for (const bad of [-1, Number.NaN, Infinity]) assert.isUndefined(core.reservation(bad, limits), String(bad))
    })
  })

  describe("properties", () => {
    type Op =
      | { readonly _tag: "admit"; readonly tokens: number }
      | { readonly _tag: "settle"; readonly pick: number; readonly used: number }
      | { readonly _tag: "advance"; readonly millis: number }

    const ops = (amount: FastCheck.Arbitrary<number>): FastCheck.Arbitrary<ReadonlyArray<Op>> =>
      FastCheck.array(
        FastCheck.oneof(
          FastCheck.record({ _tag: FastCheck.constant("admit" as const), tokens: amount }),
          FastCheck.record({ _tag: FastCheck.constant("settle" as const), pick: FastCheck.nat(), used: amount }),
          FastCheck.record({
            _tag: FastCheck.constant("advance" as const),
            millis: FastCheck.integer({ min: 0, max: 700 })
          })
        ),
        { maxLength: 120 }
      )

    const limitsArbitrary = FastCheck.record({
      requests: FastCheck.option(
        FastCheck.record({
          limit: FastCheck.integer({ min: 1, max: 8 }),
          intervalMillis: FastCheck.integer({ min: 1, max: 2000 })
        }),
        { nil: undefined }
      ),
      tokens: FastCheck.option(
        FastCheck.record({
          limit: FastCheck.integer({ min: 1, max: 500 }),
          intervalMillis: FastCheck.integer({ min: 1, max: 2000 })
        }),
        { nil: undefined }
      )
    })

    /**
     * The rule from its definition: a log of every charge (each at most the
     * limit), the reservations in flight, and the load at a time.
     */
    class Model {
      readonly requests: Array<number> = []
      readonly tokens: Array<{ readonly at: number; readonly amount: number }> = []
      constructor(readonly limits: RateLimitStore.Limits) {}
      requestLoad(now: number): number {
        const limit = this.limits.requests
        return limit === undefined ? 0 : this.requests.filter((at) => at + limit.intervalMillis > now).length
      }
      tokenLoad(now: number, reserved: ReadonlyArray<number>): number {
        const limit = this.limits.tokens
        if (limit === undefined) return 0
        return this.tokens.filter((c) => c.at + limit.intervalMillis > now).reduce((sum, c) => sum + c.amount, 0) +
          reserved.reduce((sum, n) => sum + n, 0)
      }
      fits(now: number, tokens: number, reserved: ReadonlyArray<number>): boolean {
        const { requests, tokens: tokenLimit } = this.limits
        return (requests === undefined || this.requestLoad(now) + 1 <= requests.limit) &&
          (tokenLimit === undefined || this.tokenLoad(now, reserved) + tokens <= tokenLimit.limit)
      }
    }

    it("admits exactly the calls that fit, and a wait ends exactly when the call would fit", () => {
      FastCheck.assert(
        FastCheck.property(limitsArbitrary, ops(FastCheck.integer({ min: 0, max: 600 })), (limits, steps) => {
          const model = new Model(limits)
          let state = core.initial
          let now = 0
          const inFlight: Array<{ readonly id: number; readonly tokens: number }> = []
          const reserved = () => inFlight.map((call) => call.tokens)
          for (const step of steps) {
            if (step._tag === "advance") {
              now += step.millis
            } else if (step._tag === "settle") {
              if (inFlight.length === 0) continue
              const [call] = inFlight.splice(step.pick % inFlight.length, 1)
              state = core.settle(state, call.id, step.used, now, limits)
              if (limits.tokens !== undefined && step.used > 0) {
                model.tokens.push({ at: now, amount: Math.min(step.used, limits.tokens.limit) })
              }
            } else {
              const tokens = core.reservation(step.tokens, limits)!
              const [next, decision] = core.admit(state, tokens, now, limits)
              const fits = model.fits(now, tokens, reserved())
              assert.strictEqual(decision._tag === "Admitted", fits, `admit ${tokens} at ${now}`)
              if (decision._tag === "Admitted") {
                assert.isFalse(inFlight.some((call) => call.id === decision.id), "a new id")
                inFlight.push({ id: decision.id, tokens })
                if (limits.requests !== undefined) model.requests.push(now)
                // The limit holds at every admission.
                if (limits.tokens !== undefined) {
                  assert.isAtMost(model.tokenLoad(now, reserved()), limits.tokens.limit)
                }
              } else if (decision._tag === "Wait") {
                assert.isAbove(decision.millis, 0)
                assert.isTrue(model.fits(now + decision.millis, tokens, reserved()), "fits when the wait ends")
                assert.isFalse(model.fits(now + decision.millis - 1, tokens, reserved()), "and not a moment before")
              } else {
                assert.isFalse(model.fits(now + 1e9, tokens, reserved()), "only a settlement can make room")
              }
              state = next
            }
          }
        }),
        { numRuns: 300 }
      )
    })

    it("a settlement of nothing gives back exactly the reservation", () => {
      FastCheck.assert(
        FastCheck.property(
          FastCheck.array(FastCheck.integer({ min: 0, max: 100 }), { maxLength: 10 }),
          FastCheck.integer({ min: 0, max: 100 }),
          (before, tokens) => {
            const limits = tokensOnly(2000, 1000)
            let state = core.initial
            for (const n of before) state = core.admit(state, n, 0, limits)[0]
            const [admitted, decision] = core.admit(state, tokens, 0, limits)
            assert.strictEqual(decision._tag, "Admitted")
            const settled = core.settle(admitted, decision._tag === "Admitted" ? decision.id : -1, 0, 0, limits)
            assert.strictEqual(settled.tokens.reserved, state.tokens.reserved)
            assert.strictEqual(settled.tokens.charged, state.tokens.charged)
          }
        )
      )
    })

    it("no amount, however broken, keeps a window full for longer than one interval", () => {
      const anyNumber = FastCheck.oneof(
        FastCheck.double(),
        FastCheck.constantFrom(Number.NaN, Infinity, -Infinity, 1e308, -0, Number.MAX_VALUE),
        FastCheck.integer({ min: 0, max: 1000 })
      )
      FastCheck.assert(
        FastCheck.property(limitsArbitrary, ops(anyNumber), (limits, steps) => {
          let state = core.initial
          let now = 0
          const inFlight: Array<number> = []
          for (const step of steps) {
            if (step._tag === "advance") now += step.millis
            else if (step._tag === "settle") {
              // Ids picked at random: some settled already, some never admitted.
              state = core.settle(state, step.pick % (state.nextId + 1), step.used, now, limits)
            } else {
              // The store's caller sends reservations; the core takes whatever comes.
              const [next, decision] = core.admit(state, step.tokens, now, limits)
              if (decision._tag === "Admitted") inFlight.push(decision.id)
              state = next
            }
            for (const window of [state.requests, state.tokens]) {
              for (const n of [window.charged, window.reserved]) assert.isTrue(Number.isFinite(n) && n >= 0, String(n))
            }
          }
          for (const id of inFlight) state = core.settle(state, id, Infinity, now, limits)
          const interval = Math.max(limits.requests?.intervalMillis ?? 0, limits.tokens?.intervalMillis ?? 0)
          const whole = limits.tokens?.limit ?? 0
          assert.strictEqual(core.admit(state, whole, now + interval, limits)[1]._tag, "Admitted")
        }),
        { numRuns: 300 }
      )
    })
  })
})
