/**
 * The rate limiter's decisions as pure functions: a state, the time and the
 * limits in, a new state and a decision out. Nothing here runs an effect, reads
 * a clock or changes a value it was given, so every decision can be tested as
 * plain data, and a store applies one of these functions atomically, whether it
 * keeps the state in memory or on a server shared by several processes.
 *
 * Each limit is a log of charges over a sliding window: a call fits if what was
 * charged in the last `interval`, with what calls in flight have reserved,
 * leaves room for it. (Why not a fixed window or a token bucket: see
 * `RateLimit.ts`.) Reservations do not expire, as a call in flight may still be
 * using its tokens; a settlement turns a reservation into a charge that counts
 * for one interval.
 *
 * No input can put a window into a state it cannot leave: an amount that is not
 * a number above 0 counts as nothing, and one above the limit as the whole
 * limit, so every sum stays a finite number and every charge expires after one
 * interval.
 */
import * as Chunk from "effect/Chunk"
import * as HashMap from "effect/HashMap"
import type * as RateLimitStore from "../RateLimitStore.js"

/**
 * Charges made at one instant: they count until `at + interval` (excluded).
 *
 * @internal
 */
export interface Charge {
  /** Milliseconds since the epoch. */
  readonly at: number
  readonly amount: number
}

/**
 * One limit's log.
 *
 * @internal
 */
export interface Window {
  /**
   * Charges oldest first, one entry per instant: charges made at the same
   * instant expire together, so they are added up in one entry, and a busy
   * window holds one entry per instant instead of one per call. A `Chunk`, as
   * every step makes a new version: appending to it and dropping from its
   * front cost O(log n) without copying the log.
   */
  readonly log: Chunk.Chunk<Charge>
  /** The sum of the log. */
  readonly charged: number
  /** Held by calls in flight: for the tokens window, the sum of the state's `holds`. */
  readonly reserved: number
}

/**
 * A limiter's two windows, and the reservations of the calls in flight; a
 * window without a limit stays empty.
 *
 * @internal
 */
export interface State {
  readonly requests: Window
  readonly tokens: Window
  /**
   * The tokens each call in flight reserved, by reservation id. A settlement
   * names its reservation rather than an amount, so a settlement made twice (a
   * retry after a lost answer) gives back once, and a store can end the
   * reservations of a process that died one by one.
   */
  readonly holds: HashMap.HashMap<number, number>
  readonly nextId: number
}

/** @internal */
export const emptyWindow: Window = { log: Chunk.empty(), charged: 0, reserved: 0 }

/** @internal */
export const initial: State = { requests: emptyWindow, tokens: emptyWindow, holds: HashMap.empty(), nextId: 1 }

/**
 * An amount a window can hold: nothing for `NaN` or less than nothing, and at
 * most the whole limit. More would keep the window full no longer (a charge
 * expires after one interval either way) and only make the sums lose their
 * last bits, or become `Infinity` or `NaN` and refuse every call for good.
 */
const bounded = (amount: number, limit: number): number => amount > 0 ? Math.min(amount, limit) : 0

/**
 * The window without the charges that expired by `now`. An empty log has
 * nothing charged: whatever the sum left behind in its last bits goes with it.
 *
 * @internal
 */
export const expire = (window: Window, now: number, limit: RateLimitStore.Window): Window => {
  const log = window.log
  let start = 0
  let charged = window.charged
  while (start < log.length && Chunk.unsafeGet(log, start).at + limit.intervalMillis <= now) {
    charged -= Chunk.unsafeGet(log, start).amount
    start++
  }
  if (start === 0) return window
  return start === log.length
    ? { log: Chunk.empty(), charged: 0, reserved: window.reserved }
    : { log: Chunk.drop(log, start), charged, reserved: window.reserved }
}

/**
 * The earliest time, from `now` on, at which `amount` more fits in a window
 * whose expired charges are gone: `now` if it fits already, when enough of the
 * oldest charges will have expired otherwise, and `Infinity` if only
 * reservations stand in the way (a settlement has to free them first).
 *
 * @internal
 */
export const fitsAt = (window: Window, now: number, amount: number, limit: RateLimitStore.Window): number => {
  let used = window.reserved + window.charged
  if (used + amount <= limit.limit) return now
  for (let i = 0; i < window.log.length; i++) {
    const charge = Chunk.unsafeGet(window.log, i)
    used -= charge.amount
    if (used + amount <= limit.limit) return charge.at + limit.intervalMillis
  }
  return Infinity
}

/**
 * Charges `amount` (bounded) from `now`. A time before the newest charge (a
 * clock that stepped back, or another process's clock behind this one) counts
 * as the newest charge's time, so the log stays in order and the charge counts
 * a little longer rather than being lost.
 *
 * @internal
 */
export const charge = (window: Window, now: number, amount: number, limit: RateLimitStore.Window): Window => {
  const charged = bounded(amount, limit.limit)
  if (charged === 0) return window
  const last = window.log.length === 0 ? undefined : Chunk.unsafeLast(window.log)
  const log = last !== undefined && last.at >= now
    ? Chunk.append(Chunk.dropRight(window.log, 1), { at: last.at, amount: last.amount + charged })
    : Chunk.append(window.log, { at: now, amount: charged })
  return { log, charged: window.charged + charged, reserved: window.reserved }
}

/**
 * The tokens a call reserves for an estimate: the estimate rounded up, at most
 * the token limit (a larger estimate waits for an empty window and goes alone);
 * `undefined` for an estimate that is not a finite number >= 0.
 *
 * @internal
 */
export const reservation = (estimatedTokens: number, limits: RateLimitStore.Limits): number | undefined =>
  Number.isFinite(estimatedTokens) && estimatedTokens >= 0
    ? Math.min(Math.ceil(estimatedTokens), limits.tokens === undefined ? Infinity : limits.tokens.limit)
    : undefined

const WAIT_FOR_SETTLEMENT: RateLimitStore.Admission = { _tag: "WaitForSettlement" }

/**
 * Lets a call of `tokens` tokens through if one more request and its tokens
 * fit: it is then charged one request and its tokens are reserved, under the
 * id the decision carries. Otherwise nothing is taken, and the decision says
 * how long until they may fit, or that only a settlement can make room.
 *
 * @internal
 */
export const admit = (
  state: State,
  tokens: number,
  now: number,
  limits: RateLimitStore.Limits
): readonly [State, RateLimitStore.Admission] => {
  const requests = limits.requests === undefined ? state.requests : expire(state.requests, now, limits.requests)
  const held = limits.tokens === undefined ? state.tokens : expire(state.tokens, now, limits.tokens)
  const amount = limits.tokens === undefined ? 0 : bounded(tokens, limits.tokens.limit)
  const at = Math.max(
    limits.requests === undefined ? now : fitsAt(requests, now, 1, limits.requests),
    limits.tokens === undefined ? now : fitsAt(held, now, amount, limits.tokens)
  )
  if (at <= now) {
    const id = state.nextId
    return [
      {
        requests: limits.requests === undefined ? requests : charge(requests, now, 1, limits.requests),
        tokens: { log: held.log, charged: held.charged, reserved: held.reserved + amount },
        holds: limits.tokens === undefined ? state.holds : HashMap.set(state.holds, id, amount),
        nextId: id + 1
      },
      { _tag: "Admitted", id }
    ]
  }
  const expired = requests === state.requests && held === state.tokens
    ? state
    : { requests, tokens: held, holds: state.holds, nextId: state.nextId }
  return [expired, at === Infinity ? WAIT_FOR_SETTLEMENT : { _tag: "Wait", millis: at - now }]
}

/**
 * Settles the call admitted under `id`: gives its reservation back and charges
 * `used` from `now` for one interval (`0` charges nothing; the caller decides
 * what a call whose usage is unknown is charged). An id not held (settled
 * already, or never admitted here) changes nothing, so a settlement counts
 * once however often it is made.
 *
 * @internal
 */
export const settle = (
  state: State,
  id: number,
  used: number,
  now: number,
  limits: RateLimitStore.Limits
): State => {
  if (limits.tokens === undefined) return state
  const hold = HashMap.get(state.holds, id)
  if (hold._tag === "None") return state
  const holds = HashMap.remove(state.holds, id)
  const window = expire(state.tokens, now, limits.tokens)
  const left = window.reserved - hold.value
  // With nothing in flight nothing is reserved. (`!(left > 0)` is also true of NaN.)
  const reserved = HashMap.isEmpty(holds) || !(left > 0) ? 0 : left
  return {
    requests: state.requests,
    tokens: charge({ log: window.log, charged: window.charged, reserved }, now, used, limits.tokens),
    holds,
    nextId: state.nextId
  }
}
