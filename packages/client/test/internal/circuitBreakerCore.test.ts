import { assert, describe, it } from "@effect/vitest"
import * as FastCheck from "effect/FastCheck"
import * as Core from "../../src/internal/circuitBreakerCore.js"

const options = (overrides: Partial<Core.Options> = {}): Core.Options => ({
  consecutiveFailures: 5,
  rate: undefined,
  halfOpenProbes: 2,
  ...overrides
})

const call: Core.Event = { _tag: "Call" }
const read: Core.Event = { _tag: "Read" }

/** An outcome of a call admitted in the state's generation. */
const outcome = (state: Core.BreakerState, result: Core.Outcome, nextBreak?: Core.Break): Core.Event => ({
  _tag: "Outcome",
  generation: state.generation,
  outcome: result,
  nextBreak
})

const tags = (decisions: ReadonlyArray<Core.Decision>) => decisions.map((decision) => decision._tag)

/** The state after counted outcomes, each given a 10 s break should it trip the breaker. */
const feed = (
  state: Core.BreakerState,
  outcomes: ReadonlyArray<Core.Outcome>,
  o: Core.Options,
  now = 0
): Core.BreakerState => outcomes.reduce((s, result) => Core.step(s, outcome(s, result, 10_000), now, o)[0], state)

/** An open breaker: tripped at `now` for `breakMillis`. */
const opened = (o: Core.Options, breakMillis: number, now = 0): Core.BreakerState =>
  Core.step(Core.initial, outcome(Core.initial, "failure", breakMillis), now, { ...o, consecutiveFailures: 1 })[0]

describe("circuitBreakerCore", () => {
  describe("closed", () => {
    it("admits every call, in its generation, without changing the state", () => {
      const [state, decisions] = Core.step(Core.initial, call, 0, options())
      assert.strictEqual(state, Core.initial)
      assert.deepStrictEqual(decisions, [{ _tag: "Admit", generation: 0, probe: false }])
      assert.isTrue(Core.admitsAll(state))
    })

    it("a success that changes nothing (a full window of successes) leaves the very same state: a store writes nothing", () => {
      const o = options({ rate: { threshold: 0.5, window: 4, minimumCalls: 2 } })
      const full = feed(Core.initial, ["success", "success", "success", "success"], o)
      assert.deepStrictEqual(full.window, [false, false, false, false])
      const [after] = Core.step(full, outcome(full, "success"), 1, o)
      assert.strictEqual(after, full)
      // Not yet full, or with a failure in it: the window moves, and the state is new.
      const partial = feed(Core.initial, ["success", "success"], o)
      assert.notStrictEqual(Core.step(partial, outcome(partial, "success"), 1, o)[0], partial)
      const mixed = feed(Core.initial, ["failure", "success", "success", "success"], o)
      const [moved] = Core.step(mixed, outcome(mixed, "success"), 1, o)
      assert.deepStrictEqual(moved.window, [false, false, false, false])
      // No window at all: a success after a success is the same state.
      const plain = feed(Core.initial, ["success"], options())
      assert.strictEqual(Core.step(plain, outcome(plain, "success"), 1, options())[0], plain)
    })

    it("trips exactly at the threshold of consecutive failures", () =>
      FastCheck.assert(
        FastCheck.property(FastCheck.integer({ min: 1, max: 30 }), (threshold) => {
          const o = options({ consecutiveFailures: threshold })
          const before = feed(Core.initial, Array(threshold - 1).fill("failure"), o)
          assert.strictEqual(before.state, "closed")
          assert.strictEqual(before.consecutiveFailures, threshold - 1)
          const [after, decisions] = Core.step(before, outcome(before, "failure", 10_000), 5, o)
          assert.strictEqual(after.state, "open")
          assert.strictEqual(after.openUntil, 10_005)
          assert.strictEqual(after.trips, 1)
          assert.deepStrictEqual(decisions, [{
            _tag: "Transition",
            from: "closed",
            to: "open",
            reason: `${threshold} failures in a row`
          }])
        })
      ))

    it("trips at the first run of `threshold` failures, ignored outcomes neither adding to a run nor breaking it", () =>
      FastCheck.assert(
        FastCheck.property(
          FastCheck.integer({ min: 1, max: 6 }),
          FastCheck.array(FastCheck.constantFrom<Core.Outcome>("success", "failure", "ignored"), { maxLength: 60 }),
          (threshold, outcomes) => {
            const o = options({ consecutiveFailures: threshold })
            let state = Core.initial
            let run = 0
            for (const result of outcomes) {
              if (result === "failure") run++
              else if (result === "success") run = 0
              state = Core.step(state, outcome(state, result, 10_000), 0, o)[0]
              assert.strictEqual(state.state, run >= threshold ? "open" : "closed")
              if (state.state === "open") return
              assert.strictEqual(state.consecutiveFailures, run)
            }
          }
        )
      ))

    it("a step that would trip asks for a break and changes nothing until it has one", () => {
      const o = options({ consecutiveFailures: 1 })
      const [state, decisions] = Core.step(Core.initial, outcome(Core.initial, "failure"), 0, o)
      assert.strictEqual(state, Core.initial)
      assert.deepStrictEqual(tags(decisions), ["NeedsBreak"])
      assert.isFalse(Core.isQuiet(decisions))
    })

    it("a finished schedule repeats the last break", () => {
      const o = options({ consecutiveFailures: 1, halfOpenProbes: 1 })
      const first = opened(o, 30_000)
      const half = Core.step(first, read, 30_000, o)[0]
      assert.strictEqual(half.state, "half-open")
      const [again] = Core.step(half, outcome(half, "failure", "repeat"), 30_000, o)
      assert.strictEqual(again.openUntil, 60_000, "30 s again")
      assert.strictEqual(again.trips, 2)
    })

    it("by failure rate: checked on a failure, once `minimumCalls` are in the window, over the last `window` only", () =>
      FastCheck.assert(
        FastCheck.property(
          FastCheck.record({
            threshold: FastCheck.double({ min: 0.05, max: 1, noNaN: true }),
            window: FastCheck.integer({ min: 1, max: 12 }),
            minimumFraction: FastCheck.double({ min: 0, max: 1, noNaN: true })
          }),
          FastCheck.array(FastCheck.boolean(), { maxLength: 40 }),
          ({ minimumFraction, threshold, window }, failures) => {
            const minimumCalls = Math.max(1, Math.round(minimumFraction * window))
            const o = options({ consecutiveFailures: Infinity, rate: { threshold, window, minimumCalls } })
            let state = Core.initial
            const seen: Array<boolean> = []
            for (const failed of failures) {
              seen.push(failed)
              const last = seen.slice(-window)
              const trips = failed && last.length >= minimumCalls &&
                last.filter(Boolean).length / last.length >= threshold
              state = Core.step(state, outcome(state, failed ? "failure" : "success", 10_000), 0, o)[0]
              assert.strictEqual(state.state, trips ? "open" : "closed")
              if (trips) return
              assert.deepStrictEqual(state.window, last)
            }
          }
        )
      ))
  })

  describe("open", () => {
    it("admits nothing until its break ends, and says how long is left", () =>
      FastCheck.assert(
        FastCheck.property(
          FastCheck.integer({ min: 1, max: 600_000 }),
          FastCheck.integer({ min: 0, max: 1_000_000 }),
          FastCheck.double({ min: 0, max: 1, noNaN: true, maxExcluded: true }),
          (breakMillis, at, fraction) => {
            const o = options()
            const state = opened(o, breakMillis, at)
            const now = at + Math.floor(fraction * breakMillis)
            const [after, decisions] = Core.step(state, call, now, o)
            assert.strictEqual(after, state, "nothing changes")
            assert.deepStrictEqual(decisions, [{ _tag: "Refuse", state: "open", retryAfter: at + breakMillis - now }])
            const [ended, next] = Core.step(state, call, at + breakMillis, o)
            assert.strictEqual(ended.state, "half-open")
            assert.deepStrictEqual(tags(next), ["Transition", "Admit"])
          }
        )
      ))

    it("an outcome of a call admitted before the trip does not count after it", () => {
      const o = options({ consecutiveFailures: 1, halfOpenProbes: 1 })
      const before = Core.initial
      const open = opened(o, 10_000)
      const half = Core.step(open, read, 10_000, o)[0]
      // A success from the closed generation, arriving when half-open: no verdict.
      const [after, decisions] = Core.step(half, outcome(before, "success"), 10_000, o)
      assert.strictEqual(after, half)
      assert.deepStrictEqual(decisions, [])
    })

    it("isolated, it stays open past any time, until a reset", () => {
      const o = options()
      const [isolated, announced] = Core.step(Core.initial, { _tag: "Isolate" }, 0, o)
      assert.deepStrictEqual(announced, [{ _tag: "Transition", from: "closed", to: "open", reason: "isolated" }])
      const [, decisions] = Core.step(isolated, call, Number.MAX_SAFE_INTEGER, o)
      assert.deepStrictEqual(decisions, [{ _tag: "Refuse", state: "open", retryAfter: undefined }])
      assert.deepStrictEqual(Core.step(isolated, { _tag: "Isolate" }, 0, o)[1], [], "no change, no announcement")
      const [reset, closing] = Core.step(isolated, { _tag: "Reset" }, 0, o)
      assert.deepStrictEqual({ ...reset, generation: 0 }, Core.initial)
      assert.isAbove(reset.generation, isolated.generation)
      assert.deepStrictEqual(tags(closing), ["Transition"])
    })
  })

  describe("half-open", () => {
    it("lets at most `halfOpenProbes` probes through, and a probe given back frees its place", () =>
      FastCheck.assert(
        FastCheck.property(
          FastCheck.integer({ min: 1, max: 5 }),
          // A call asks to go through, or a probe in flight is given back (an ignored outcome).
          FastCheck.array(FastCheck.constantFrom("call", "give back"), { maxLength: 40 }),
          (halfOpenProbes, steps) => {
            const o = options({ halfOpenProbes })
            let state = Core.step(opened(o, 1_000), read, 1_000, o)[0]
            let inFlight = 0
            for (const next of steps) {
              if (next === "give back") {
                if (inFlight === 0) continue
                inFlight--
                state = Core.step(state, outcome(state, "ignored"), 1_000, o)[0]
              } else {
                const [after, decisions] = Core.step(state, call, 1_000, o)
                const verdict = decisions[decisions.length - 1]!
                assert.strictEqual(verdict._tag, inFlight < halfOpenProbes ? "Admit" : "Refuse")
                if (verdict._tag === "Admit") inFlight++
                state = after
              }
              assert.strictEqual(state.state, "half-open")
              assert.strictEqual(state.probes, inFlight)
              assert.isAtMost(state.probes, halfOpenProbes)
            }
          }
        )
      ))

    it("closes when all its probes succeed, and reopens for the next break when one fails", () => {
      const o = options({ halfOpenProbes: 2 })
      let state = Core.step(opened(o, 1_000), read, 1_000, o)[0]
      state = Core.step(state, call, 1_000, o)[0]
      state = Core.step(state, call, 1_000, o)[0]
      const [one, first] = Core.step(state, outcome(state, "success"), 1_000, o)
      assert.strictEqual(one.state, "half-open")
      assert.deepStrictEqual(first, [])
      const [closed, second] = Core.step(one, outcome(one, "success"), 1_000, o)
      assert.strictEqual(closed.state, "closed")
      assert.strictEqual(closed.trips, 0, "the break schedule starts over")
      assert.deepStrictEqual(second, [{
        _tag: "Transition",
        from: "half-open",
        to: "closed",
        reason: "2 probes succeeded"
      }])
      assert.deepStrictEqual(tags(Core.step(one, outcome(one, "failure"), 1_000, o)[1]), ["NeedsBreak"])
      const [reopened, decisions] = Core.step(one, outcome(one, "failure", 2_000), 1_000, o)
      assert.strictEqual(reopened.state, "open")
      assert.strictEqual(reopened.openUntil, 3_000)
      assert.strictEqual(reopened.trips, 2)
      assert.deepStrictEqual(decisions, [{
        _tag: "Transition",
        from: "half-open",
        to: "open",
        reason: "a probe failed"
      }])
    })
  })

  it("every change of kind is announced once, from the kind it was, and the generation grows with it", () =>
    FastCheck.assert(
      FastCheck.property(
        FastCheck.array(
          FastCheck.oneof(
            FastCheck.constant<Core.Event>(call),
            FastCheck.constant<Core.Event>(read),
            FastCheck.constant<Core.Event>({ _tag: "Isolate" }),
            FastCheck.constant<Core.Event>({ _tag: "Reset" }),
            FastCheck.record({
              result: FastCheck.constantFrom<Core.Outcome>("success", "failure", "ignored"),
              stale: FastCheck.boolean()
            }),
            FastCheck.integer({ min: 1, max: 20_000 })
          ),
          { maxLength: 80 }
        ),
        (events) => {
          const o = options({ consecutiveFailures: 2, halfOpenProbes: 2 })
          let state = Core.initial
          let now = 0
          for (const next of events) {
            if (typeof next === "number") {
              now += next
              continue
            }
            const event: Core.Event = "result" in next
              ? {
                _tag: "Outcome",
                generation: next.stale ? state.generation - 1 : state.generation,
                outcome: next.result,
                nextBreak: 10_000
              }
              : next
            const [after, decisions] = Core.step(state, event, now, o)
            const transitions = decisions.filter((decision) => decision._tag === "Transition")
            let kind = state.state
            for (const transition of transitions) {
              assert.strictEqual(transition.from, kind)
              assert.notStrictEqual(transition.to, kind)
              kind = transition.to
            }
            assert.strictEqual(after.state, kind, "the state is where the announcements lead")
            if (transitions.length > 0) assert.isAbove(after.generation, state.generation)
            else assert.isAtLeast(after.generation, state.generation)
            assert.isAtMost(after.probes, o.halfOpenProbes)
            assert.isFalse(tags(decisions).includes("NeedsBreak"), "a break was given")
            state = after
          }
        }
      )
    ))

  it("a restored state starts a new generation; an open one starts its break's clock from now", () => {
    const o = options()
    const saved: Core.Saved = {
      state: "open",
      consecutiveFailures: 0,
      window: [true, false],
      trips: 2,
      openUntil: 50_000,
      isolated: false,
      probes: 0,
      probesSucceeded: 0
    }
    const [state, decisions] = Core.step(Core.initial, { _tag: "Restore", saved }, 7_000, o)
    assert.deepStrictEqual(state, { ...saved, openedAt: 7_000, generation: 1 })
    assert.deepStrictEqual(decisions, [{ _tag: "Transition", from: "closed", to: "open", reason: "restored" }])
    assert.deepStrictEqual(Core.step(state, { _tag: "Restore", saved }, 7_000, o)[1], [], "same kind: no announcement")
  })
})
