/**
 * Where an adaptive concurrency limit decides: how many requests to one model
 * may be in flight, from what the service answered. Pure functions over a
 * state; the caller passes `now`.
 *
 * **Why this rule.** W&B publishes no concurrency limits, answers a request
 * over the limit at once with a 429, and serves the requests within it at the
 * model's usual speed: the 429 is an exact, cheap signal, and latency says
 * nothing until the limit is reached (nothing queues on the server). So the
 * limit follows 429s, as TCP's congestion window follows losses (AIMD), rather
 * than latency, as Netflix's `concurrency-limits` Vegas and Gradient do (they
 * infer a queue from rising round-trip times, which this service never shows).
 *
 * Plain AIMD would lose too much here. Its sawtooth between the limit and half
 * of it costs a 429 per cycle of about 3L²/8 requests (one in three at a limit
 * of 1, one in 24 at 8) and leaves a quarter of the capacity unused. Two
 * observations make it cheaper:
 *
 * - A 429 for a request sent while `k` requests of this client were in flight
 *   (itself included) means the service allows at most `k - 1`. The limit
 *   drops to that at once, a multiplicative cut by the factor `(k - 1) / limit`
 *   that the 429 itself shows rather than a fixed one (TCP's half, CUBIC's
 *   0.7): after slow start overshoots a limit of 52 to 56, a fixed 0.7 drops to
 *   39 and takes 13 round trips to climb back (in the closed-loop model of the
 *   tests, 0.887 of the ideal goodput against 0.943). When others take room
 *   (another client of the project), each refusal lowers the limit to the
 *   requests in flight at the time. `k` is remembered as the **ceiling**. A
 *   success with `k` in flight means at least `k` are allowed: `CONFIRM`
 *   successes at or above the ceiling raise it to `k + 1`.
 * - Below the ceiling the limit grows by one per limit's worth of successes
 *   (one per round trip, as TCP's congestion avoidance), up to `ceiling - 1`.
 *   There it stays, and only **probes** one above after `probeEvery`
 *   successes; each probe refused again at the same ceiling goes back to
 *   `ceiling - 1` and doubles `probeEvery` (up to `MAX_PROBE_EVERY`), so a
 *   stable limit costs a 429 ever more rarely, and a limit that rose is found
 *   by the next probe.
 *
 * Until the first 429 the limit grows by one per success (doubling per round
 * trip, TCP's slow start), from `initial`. A 429 for a request sent before
 * the last decrease starts no new round (its ceiling and probes stay), but it
 * is one more refusal of this round trip: one less. When the service lowers
 * its limit while many requests are in flight, each of them that ends lets
 * one of ours in, to be refused; one less for each brings the limit down as
 * fast as the refusals come (a limit falling from 32 to 8: 34 requests refused
 * in 834, against 221 with one decrease per round trip). An answer to a
 * request sent before the last decrease says nothing of the limit now, and
 * changes nothing.
 */

/**
 * What a limit adapts within, and how fast.
 *
 * @internal
 */
export interface Options {
  /** The limit before anything was learnt. */
  readonly initial: number
  /** The limit never goes below this (a whole number >= 1). */
  readonly min: number
  /** The limit never goes above this (a whole number >= min). */
  readonly max: number
}

/**
 * The limit before anything was learnt. Started at 16, the climb to a limit of
 * 64 took long enough to cost the benchmark's 2,000 calls at 200 ms a tenth of
 * their throughput (88.6% of the ideal, against 91.7% from 32); a model that
 * allows 1 costs 31 refusals at the start (`pnpm --filter
 * @effect-inference/benchmarks goodput`).
 *
 * @internal
 */
export const DEFAULT_INITIAL = 32

/**
 * The most successes between two probes above a ceiling that keeps holding.
 *
 * @internal
 */
export const MAX_PROBE_EVERY = 1024

/**
 * Answers at or above the ceiling that raise it. One is not enough: a service
 * frees a slot a moment before the client sees the answer, so a request sent
 * in that moment is let through although the limit did not move.
 *
 * @internal
 */
export const CONFIRM = 3

/**
 * What a limit knows.
 *
 * @internal
 */
export interface State {
  /** The limit, fractional while it grows by fractions; requests in flight may be `Math.floor(limit)`. */
  readonly limit: number
  /** No 429 yet: the limit grows by one per success. */
  readonly slowStart: boolean
  /** The fewest requests in flight that were refused since the limit was last found to be higher, if any. */
  readonly ceiling: number | undefined
  /** Successes at `ceiling - 1` before a probe at `ceiling`. */
  readonly probeEvery: number
  /** Successes at `ceiling - 1` since the last probe or change. */
  readonly successes: number
  /** When the limit last went down (epoch milliseconds), or `-Infinity`. */
  readonly decreasedAt: number
  /**
   * The fewest in flight a fresh 429 came at, kept when the ceiling rises: a
   * 429 at or above it again is the same wall, hit again, and doubles the wait
   * between probes.
   */
  readonly wall: number | undefined
  /** Answers at or above the ceiling since the last 429: `CONFIRM` of them raise it. */
  readonly above: number
}

/**
 * The state before anything was learnt.
 *
 * @internal
 */
export const initial = (options: Options): State => ({
  limit: clamp(options.initial, options),
  slowStart: true,
  ceiling: undefined,
  probeEvery: 0,
  successes: 0,
  decreasedAt: -Infinity,
  wall: undefined,
  above: 0
})

/**
 * What the service answered one request.
 *
 * @internal
 */
export type Event =
  /**
   * Answered: sent at `sentAt` with `inFlight` requests (this one included) in
   * flight, and `atLimit` says whether that filled the limit of the time (if
   * not, the callers set the pace, not the limit).
   */
  | { readonly _tag: "Accepted"; readonly inFlight: number; readonly atLimit: boolean; readonly sentAt: number }
  /** Refused with a concurrency 429, sent at `sentAt` with `inFlight` in flight (this one included). */
  | { readonly _tag: "Refused"; readonly inFlight: number; readonly sentAt: number }

/**
 * How many requests may be in flight under `state`.
 *
 * @internal
 */
export const permits = (state: State): number => Math.max(1, Math.floor(state.limit))

const clamp = (limit: number, options: Options): number => Math.min(options.max, Math.max(options.min, limit))

/**
 * The state after `event`, at `now`.
 *
 * @internal
 */
export const step = (previous: State, event: Event, now: number, options: Options): State => {
  let state = previous
  if (event._tag === "Refused") {
    const allowed = Math.max(event.inFlight - 1, options.min)
    if (event.sentAt < state.decreasedAt) {
      // Sent before the last decrease: what it shows still holds, and it is one more request the service refused
      // in this round trip: one less. While the service sheds a fall in its limit, the requests already in
      // flight end one by one and each lets one more of ours in, to be refused: one less for each brings the
      // limit down as fast as they come back, rather than once per round trip.
      return {
        ...state,
        limit: clamp(Math.min(state.limit - 1, allowed), options),
        ceiling: Math.min(state.ceiling ?? Infinity, event.inFlight)
      }
    }
    const wall = Math.min(state.wall ?? Infinity, event.inFlight)
    if (state.ceiling !== undefined && event.inFlight >= state.ceiling) {
      // A probe at (or above) the ceiling, refused again: back below it, and probe half as often.
      return {
        ...state,
        limit: clamp(Math.min(state.limit, state.ceiling - 1), options),
        slowStart: false,
        probeEvery: Math.min(MAX_PROBE_EVERY, Math.max(1, state.probeEvery) * 2),
        successes: 0,
        decreasedAt: now,
        wall,
        above: 0
      }
    }
    // The service allows fewer than was thought: down at once, to what it showed. At or above the wall again
    // (a service whose count lags lets a probe through now and then, and refuses the next one), probe half as
    // often; below it (the service's limit fell), keep the wait between probes it had.
    const again = state.wall !== undefined && event.inFlight >= state.wall
    const limit = clamp(Math.min(state.limit, allowed), options)
    return {
      limit,
      slowStart: false,
      ceiling: event.inFlight,
      probeEvery: again
        ? Math.min(MAX_PROBE_EVERY, Math.max(1, state.probeEvery) * 2)
        : Math.max(state.probeEvery, permits({ ...state, limit })),
      successes: 0,
      decreasedAt: now,
      wall,
      above: 0
    }
  }
  // Sent before the last decrease: an answer to the limit that was, which says nothing about the one that is.
  if (event.sentAt < state.decreasedAt) return state
  let ceiling = state.ceiling
  const probeEvery = state.probeEvery
  let above = state.above
  if (ceiling !== undefined && event.inFlight >= ceiling) {
    // As many were accepted as were refused before: the service allows that many now, once it has done so
    // `CONFIRM` times (one may be the moment between the service freeing a slot and the client seeing it).
    above++
    if (above >= CONFIRM) {
      ceiling = event.inFlight + 1
      above = 0
    }
    state = { ...state, ceiling, above }
  }
  // Sent with fewer in flight than the limit allowed: the callers, not the limit, set the pace, and this says
  // nothing about a higher limit (TCP's congestion window validation). Growing here would let a quiet spell
  // raise the limit far above what the service allows, to be paid for in 429s at the next burst.
  if (!event.atLimit) return state
  if (state.slowStart) {
    return { ...state, ceiling, probeEvery, limit: clamp(state.limit + 1, options) }
  }
  if (ceiling === undefined) {
    return { ...state, ceiling, probeEvery, successes: 0, limit: clamp(state.limit + 1 / state.limit, options) }
  }
  const below = ceiling - 1
  if (state.limit < below) {
    return {
      ...state,
      ceiling,
      probeEvery,
      successes: 0,
      limit: clamp(Math.min(below, state.limit + 1 / state.limit), options)
    }
  }
  // At the ceiling's edge: probe one above it once in a while.
  const successes = state.successes + 1
  if (successes < probeEvery) return { ...state, ceiling, probeEvery, successes }
  return { ...state, ceiling, probeEvery, successes: 0, limit: clamp(ceiling, options) }
}
