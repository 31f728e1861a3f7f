/**
 * The budget's decisions as pure functions: a state, the time and the limits
 * in, a new state and a decision out. Nothing here runs an effect, reads a
 * clock or changes a value it was given, so every decision can be tested as
 * plain data, and a store applies one of these functions atomically, whether it
 * keeps the state in memory or on a server shared by several processes.
 *
 * A call holds the upper estimate of its cost (`reserve`) before it is sent, so
 * calls in flight at the same time cannot spend past the limit together, and
 * replaces the hold with what it used when it ends (`settle`). Each hold has an
 * id, and only the first settlement of an id gives its hold back. A budget with
 * a period starts again at each period's start (`roll`): spending goes back to
 * 0 and the thresholds are armed again, while the holds of calls in flight
 * stay.
 *
 * No input can put a budget into a state it cannot leave by the next period:
 * an amount that is not a number above 0 is spent as nothing and spending is
 * clamped below `Infinity`, so it stays a finite number that a roll sets back
 * to 0; a requested amount that is not a finite number >= 0 is refused.
 */
import * as HashMap from "effect/HashMap"
import * as Option from "effect/Option"
import type * as BudgetStore from "../BudgetStore.js"
import type { BudgetDimension } from "../InferenceError.js"
import type * as UsageTracker from "../UsageTracker.js"

/**
 * One dimension of a budget in the current period.
 *
 * @internal
 */
export interface Account {
  /** Settled spending in the current period. */
  readonly spent: number
  /** Held by calls in flight. */
  readonly reserved: number
  /** Thresholds already crossed in the current period, each alerted once. */
  readonly fired: ReadonlyArray<number>
}

/**
 * A budget: both dimensions are kept, whichever have limits.
 *
 * @internal
 */
export interface State {
  /**
   * When the first period started, in milliseconds since the epoch: set when
   * the state is made and kept, so that a process that joins (or restarts)
   * counts periods from the same start.
   */
  readonly origin: number
  /** The index of the current period, counted from `origin`. */
  readonly period: number
  readonly usd: Account
  readonly tokens: Account
  /** The amounts held by calls in flight, by hold id. */
  readonly holds: HashMap.HashMap<number, BudgetStore.Amount>
  readonly nextId: number
}

const DIMENSIONS: ReadonlyArray<BudgetDimension> = ["usd", "tokens"]

/** Sums of dollar amounts drift in the last bits: a budget of exactly ten calls' cost still holds ten. */
const EPSILON = 1e-9

const EMPTY: Account = { spent: 0, reserved: 0, fired: [] }

/**
 * A budget with nothing spent or held, whose periods count from `origin`.
 *
 * @internal
 */
export const initial = (origin: number): State => ({
  origin,
  period: 0,
  usd: EMPTY,
  tokens: EMPTY,
  holds: HashMap.empty(),
  nextId: 1
})

/**
 * An amount that may be added to spending: nothing for `NaN` or less than
 * nothing, the largest number for more than a number holds (a price of 1e300
 * per million tokens). Spending that became `NaN` or `Infinity` would refuse
 * every call for good, a new period included.
 */
const addable = (amount: number): number => amount > 0 ? Math.min(amount, Number.MAX_VALUE) : 0

/** The dimensions with a limit, in the order their statuses are listed. */
const limited = (limits: BudgetStore.Limits): ReadonlyArray<readonly [BudgetDimension, number]> =>
  DIMENSIONS.flatMap((dimension) => {
    const limit = limits[dimension]
    return limit === undefined ? [] : [[dimension, limit] as const]
  })

const withAccount = (state: State, dimension: BudgetDimension, account: Account): State =>
  dimension === "usd" ? { ...state, usd: account } : { ...state, tokens: account }

/**
 * When the current period started: `origin` without a period.
 *
 * @internal
 */
export const periodStart = (state: State, limits: BudgetStore.Limits): number =>
  limits.periodMillis === undefined ? state.origin : state.origin + state.period * limits.periodMillis

/**
 * When the current period ends; `undefined` without a period.
 *
 * @internal
 */
export const periodEnd = (state: State, limits: BudgetStore.Limits): number | undefined =>
  limits.periodMillis === undefined ? undefined : periodStart(state, limits) + limits.periodMillis

/**
 * Starts the period `now` falls in, if it is a later one than the state's:
 * spending starts again from 0 and the thresholds are armed again; holds of
 * calls in flight stay, as those calls may still spend. A period never goes
 * back: a clock that steps back (or a process whose clock is behind the
 * others') does not start the budget again.
 *
 * @internal
 */
export const roll = (state: State, now: number, limits: BudgetStore.Limits): State => {
  if (limits.periodMillis === undefined) return state
  const period = Math.floor((now - state.origin) / limits.periodMillis)
  // Written so that a NaN rolls nothing.
  if (!(period > state.period)) return state
  return {
    ...state,
    period,
    usd: { spent: 0, reserved: state.usd.reserved, fired: [] },
    tokens: { spent: 0, reserved: state.tokens.reserved, fired: [] }
  }
}

/**
 * Holds `amount` if, in every dimension with a limit, it fits beside what is
 * spent in the current period and what is held; the decision carries the new
 * hold's id. Otherwise nothing is held and the decision names the first
 * dimension it did not fit in, with the figures and the time until the period
 * ends.
 *
 * @internal
 */
export const reserve = (
  state: State,
  amount: BudgetStore.Amount,
  now: number,
  limits: BudgetStore.Limits
): readonly [State, BudgetStore.Reserve] => {
  const rolled = roll(state, now, limits)
  const dimensions = limited(limits)
  for (const [dimension, limit] of dimensions) {
    const account = rolled[dimension]
    const requested = amount[dimension]
    // Written so that a NaN anywhere refuses the call rather than holds it.
    if (!(requested >= 0 && account.spent + account.reserved + requested <= limit * (1 + EPSILON))) {
      const end = periodEnd(rolled, limits)
      return [rolled, {
        _tag: "Exceeded",
        dimension,
        limit,
        spent: account.spent,
        reserved: account.reserved,
        requested,
        resetsInMillis: end === undefined ? undefined : end - now
      }]
    }
  }
  let held: State = { ...rolled, holds: HashMap.set(rolled.holds, rolled.nextId, amount), nextId: rolled.nextId + 1 }
  for (const [dimension] of dimensions) {
    const account = held[dimension]
    held = withAccount(held, dimension, { ...account, reserved: account.reserved + amount[dimension] })
  }
  return [held, { _tag: "Held", id: rolled.nextId }]
}

/**
 * Settles a call: gives back the hold `id` (only the first time: an id that is
 * not held, or `undefined`, gives back nothing), spends `used` in every
 * dimension with a limit, and returns the thresholds the spending crossed for
 * the first time in the period.
 *
 * @internal
 */
export const settle = (
  state: State,
  id: number | undefined,
  used: BudgetStore.Amount,
  now: number,
  limits: BudgetStore.Limits
): readonly [State, ReadonlyArray<BudgetStore.ThresholdCrossed>] => {
  const rolled = roll(state, now, limits)
  const hold = id === undefined ? Option.none() : HashMap.get(rolled.holds, id)
  const holds = id !== undefined && Option.isSome(hold) ? HashMap.remove(rolled.holds, id) : rolled.holds
  const start = periodStart(rolled, limits)
  const crossed: Array<BudgetStore.ThresholdCrossed> = []
  let settled: State = { ...rolled, holds }
  for (const [dimension, limit] of limited(limits)) {
    const account = settled[dimension]
    let reserved = account.reserved
    if (Option.isSome(hold)) {
      // With nothing in flight nothing is reserved: no rounding residue is left to hold. (`!(left > 0)` is also
      // true of NaN.)
      const left = reserved - hold.value[dimension]
      reserved = HashMap.isEmpty(holds) || !(left > 0) ? 0 : left
    }
    // Clamped, so that no single report can push the spending out of the numbers: a new period always starts it
    // again from 0.
    const spent = Math.min(account.spent + addable(used[dimension]), Number.MAX_VALUE)
    let fired = account.fired
    for (const threshold of limits.thresholds) {
      if (spent >= threshold * limit * (1 - EPSILON) && !fired.includes(threshold)) {
        fired = [...fired, threshold]
        crossed.push({ dimension, threshold, spent, limit, periodStart: start })
      }
    }
    settled = withAccount(settled, dimension, { spent, reserved, fired })
  }
  return [settled, crossed]
}

/**
 * Where each dimension with a limit stands at `now`, with the state rolled to
 * `now`'s period.
 *
 * @internal
 */
export const status = (
  state: State,
  now: number,
  limits: BudgetStore.Limits
): readonly [State, ReadonlyArray<UsageTracker.BudgetStatus>] => {
  const rolled = roll(state, now, limits)
  const start = periodStart(rolled, limits)
  const end = periodEnd(rolled, limits)
  return [
    rolled,
    limited(limits).map(([dimension, limit]): UsageTracker.BudgetStatus => {
      const { reserved, spent } = rolled[dimension]
      return {
        dimension,
        limit,
        spent,
        reserved,
        remaining: Math.max(0, limit - spent - reserved),
        periodStart: start,
        periodEnd: end
      }
    })
  ]
}
