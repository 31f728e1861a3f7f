/**
 * The adaptive limit's decisions, without any runtime: slow start, the drop on
 * a 429 to what the service showed it allows, the ceiling and its probes, and
 * a closed-loop model of a service with a fixed limit, where the rule must keep
 * the service nearly full with few 429s.
 */
import { assert, describe, it } from "@effect/vitest"
import { FastCheck } from "effect"
import * as Core from "../../src/internal/adaptiveCore.js"

const options: Core.Options = { initial: 16, min: 1, max: 64 }

const accepted = (inFlight: number, atLimit = true, sentAt = Infinity): Core.Event => ({
  _tag: "Accepted",
  inFlight,
  atLimit,
  sentAt
})
const refused = (inFlight: number, sentAt: number): Core.Event => ({ _tag: "Refused", inFlight, sentAt })

/** The state after `events`, each at time `at` (its index, unless given). */
const run = (
  events: ReadonlyArray<Core.Event>,
  from: Core.State = Core.initial(options),
  at = 0,
  within: Core.Options = options
): Core.State => events.reduce((state, event, i) => Core.step(state, event, at + i, within), from)

describe("adaptiveCore", () => {
  it("starts at initial, within min and max", () => {
    assert.strictEqual(Core.permits(Core.initial(options)), 16)
    assert.strictEqual(Core.permits(Core.initial({ ...options, initial: 100 })), 64)
    assert.strictEqual(Core.permits(Core.initial({ ...options, initial: 0, min: 2 })), 2)
  })

  it("slow start: one more per success while the limit is reached, up to max", () => {
    const state = run(Array.from({ length: 10 }, (_, i) => accepted(16 + i)))
    assert.strictEqual(Core.permits(state), 26)
    assert.strictEqual(Core.permits(run(Array.from({ length: 100 }, (_, i) => accepted(16 + i)))), 64)
  })

  it("a success sent with fewer in flight than the limit allowed does not raise it", () => {
    assert.strictEqual(Core.permits(run(Array.from({ length: 50 }, () => accepted(3, false)))), 16)
  })

  it("a 429 drops the limit at once to what the service showed it allows, and remembers the ceiling", () => {
    // Refused with 9 in flight: at most 8 are allowed.
    const state = run([refused(9, 0)])
    assert.strictEqual(Core.permits(state), 8)
    assert.strictEqual(state.ceiling, 9)
    assert.isFalse(state.slowStart)
    assert.strictEqual(Core.permits(run([refused(16, 0)])), 15)
  })

  it("refused again and again: each time down to what it showed, never lower", () => {
    const once = Core.step(Core.initial(options), refused(16, 0), 1, options)
    const twice = Core.step(once, refused(12, 2), 3, options)
    assert.strictEqual(Core.permits(twice), 11)
    const again = Core.step(twice, refused(11, 4), 5, options)
    assert.strictEqual(Core.permits(again), 10)
  })

  it("a 429 for a request sent before the last decrease: one less, and what it shows still holds", () => {
    const once = Core.step(Core.initial(options), refused(12, 100), 100, options)
    assert.strictEqual(Core.permits(once), 11)
    // Sent before the decrease, refused with 5 in flight: at most 4 are allowed, whatever the order of the answers.
    const stale = Core.step(once, refused(5, 99), 101, options)
    assert.strictEqual(Core.permits(stale), 4)
    assert.strictEqual(stale.ceiling, 5)
    assert.strictEqual(stale.decreasedAt, once.decreasedAt, "not a new round: the next fresh 429 still counts")
    // One with more in flight than the limit: one more refused in this round trip, one less.
    const more = Core.step(stale, refused(7, 99), 102, options)
    assert.strictEqual(Core.permits(more), 3)
    assert.strictEqual(more.ceiling, 5)
  })

  it("never below min, never above max", () => {
    const bounded = { ...options, min: 3 }
    const low = run(Array.from({ length: 20 }, (_, i) => refused(1, i)), Core.initial(bounded), 0, bounded)
    assert.strictEqual(Core.permits(low), 3)
  })

  it("below the ceiling it grows by about one per limit's worth of successes, up to ceiling - 1", () => {
    let state = Core.step(Core.initial(options), refused(9, 0), 0, options) // 8, ceiling 9
    state = { ...state, limit: 4 }
    // About 4 + 5 + 6 + 7 successes to reach 8; never 9 without a probe.
    let successes = 0
    while (Core.permits(state) < 8) {
      state = Core.step(state, accepted(Core.permits(state)), 1, options)
      successes++
    }
    assert.isAtLeast(successes, 18)
    assert.isAtMost(successes, 26)
    assert.strictEqual(state.limit, 8)
  })

  it("at the ceiling's edge it probes one above after probeEvery successes; a refused probe doubles the wait", () => {
    let state = Core.step(Core.initial(options), refused(9, 0), 0, options) // 8, ceiling 9, probe every 8
    assert.strictEqual(state.probeEvery, 8)
    const atEdge = (s: Core.State, n: number) => run(Array.from({ length: n }, () => accepted(8)), s, 1)
    state = atEdge(state, 7)
    assert.strictEqual(Core.permits(state), 8, "not yet")
    state = atEdge(state, 1)
    assert.strictEqual(Core.permits(state), 9, "the probe")
    // The probe is refused at the ceiling: back to 8, and the next probe waits twice as long.
    state = Core.step(state, refused(9, 20), 20, options)
    assert.strictEqual(Core.permits(state), 8)
    assert.strictEqual(state.ceiling, 9)
    assert.strictEqual(state.probeEvery, 16)
    let probes = 0
    for (let i = 0; i < 30; i++) {
      state = Core.step(state, accepted(8), 30 + i, options)
      if (Core.permits(state) === 9) {
        probes++
        state = Core.step(state, refused(9, 30 + i), 30 + i, options)
      }
    }
    assert.strictEqual(probes, 1)
    assert.strictEqual(state.probeEvery, 32)
  })

  it("the wait between probes stops doubling at MAX_PROBE_EVERY", () => {
    let state = Core.step(Core.initial(options), refused(3, 0), 0, options)
    for (let i = 0; i < 30; i++) state = Core.step(state, refused(3, i + 1), i + 1, options)
    assert.strictEqual(state.probeEvery, Core.MAX_PROBE_EVERY)
  })

  it("CONFIRM successes with as many in flight as the ceiling raise it by one; one alone does not", () => {
    let state = Core.step(Core.initial(options), refused(9, 0), 0, options) // 8, ceiling 9, probe every 8
    state = { ...state, limit: 9 }
    state = Core.step(state, accepted(9, true, 1), 1, options)
    assert.strictEqual(state.ceiling, 9, "one may be a slot the service freed a moment early")
    for (let i = 1; i < Core.CONFIRM; i++) state = Core.step(state, accepted(9, true, 1 + i), 1 + i, options)
    assert.strictEqual(state.ceiling, 10)
    // A limit that rose is found: each level confirmed raises the ceiling again.
    for (let i = 0; i < 200; i++) state = Core.step(state, accepted(Core.permits(state), true, 10 + i), 10 + i, options)
    assert.isAbove(Core.permits(state), 12)
  })

  it("refused again at the same wall: the wait between probes doubles, even after the ceiling moved", () => {
    let state = Core.step(Core.initial(options), refused(7, 0), 0, options) // 6, ceiling 7, wall 7, probe every 6
    state = { ...state, ceiling: 8 } // as if the service had let 7 through a few times
    state = Core.step(state, refused(7, 1), 1, options)
    assert.strictEqual(Core.permits(state), 6)
    assert.strictEqual(state.probeEvery, 12)
    // Below the wall (the service's limit fell): the wait is kept, not doubled.
    const fell = Core.step(state, refused(5, 2), 2, options)
    assert.strictEqual(fell.probeEvery, 12)
    assert.strictEqual(fell.wall, 5)
  })

  it("an answer to a request sent before the last decrease changes nothing", () => {
    const cut = Core.step(Core.initial(options), refused(20, 5), 5, options) // 19, ceiling 20, at 5
    // Sent at 4 with 30 in flight, answered after the cut: the service's limit may have fallen since.
    assert.deepStrictEqual(Core.step(cut, accepted(30, true, 4), 6, options), cut)
    assert.notDeepEqual(Core.step(cut, accepted(19, true, 5), 6, options), cut)
  })

  /**
   * A discrete-event model of the benchmark: callers always waiting (each freed
   * permit is taken at once), a service that allows `allowed(time)` in flight,
   * answers in about one unit of time (jittered, so that answers come back in
   * any order) and refuses over its limit at once. Runs until `calls` are
   * answered: the time it took, the requests sent and refused.
   */
  const simulate = (allowed: (time: number) => number, calls: number, seed: number) => {
    let x = seed
    const random = () => {
      x = (x * 1103515245 + 12345) % 2 ** 31
      return x / 2 ** 31
    }
    let state = Core.initial(options)
    let inFlight = 0
    let serving = 0
    let time = 0
    let answered = 0
    let sent = 0
    let refusedCount = 0
    const pending: Array<{ readonly at: number; readonly event: Core.Event }> = []
    /** When the service frees each slot: a little before the client sees the answer (its last bytes in transit). */
    const frees: Array<number> = []
    const send = () => {
      while (inFlight < Core.permits(state)) {
        const k = ++inFlight
        sent++
        while (frees.length > 0 && frees[0]! <= time) {
          frees.shift()
          serving--
        }
        if (serving < allowed(time)) {
          serving++
          const at = time + 0.9 + 0.2 * random()
          frees.push(at - 0.02 * random())
          frees.sort((a, b) => a - b)
          pending.push({ at, event: accepted(k, k >= Core.permits(state), time) })
        } else {
          refusedCount++
          pending.push({ at: time + 0.01 * random(), event: refused(k, time) })
        }
      }
    }
    send()
    while (answered < calls) {
      pending.sort((a, b) => a.at - b.at)
      const next = pending.shift()!
      time = next.at
      inFlight--
      if (next.event._tag === "Accepted") answered++
      state = Core.step(state, next.event, time, options)
      assert.isAtLeast(Core.permits(state), options.min)
      assert.isAtMost(Core.permits(state), options.max)
      send()
    }
    return { time, refused: refusedCount / sent, state }
  }

  it("against a fixed limit the client is not told: at least 90% of the ideal goodput, at most 3% refused", () => {
    FastCheck.assert(
      FastCheck.property(
        FastCheck.integer({ min: 1, max: 64 }),
        FastCheck.integer({ min: 0, max: 10_000 }),
        (L, seed) => {
          // The benchmark's load: 2,000 calls; the ideal takes 2000 / L units of time.
          const { refused, time } = simulate(() => L, 2000, seed)
          return 2000 / L / time >= 0.9 && refused <= 0.03
        }
      ),
      { numRuns: 100 }
    )
  })

  it("against a limit that drops from 32 to 8 halfway, the new limit is found", () => {
    // The ideal: 1,000 calls at 32, then 1,000 at 8.
    const ideal = 1000 / 32 + 1000 / 8
    const { refused, state, time } = simulate((t) => (t < 1000 / 32 ? 32 : 8), 2000, 7)
    assert.isAtLeast(ideal / time, 0.9)
    assert.isAtMost(refused, 0.03)
    assert.isAtMost(Core.permits(state), 9)
  })
})
