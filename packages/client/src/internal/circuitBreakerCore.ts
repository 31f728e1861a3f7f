/**
 * Where a breaker decides: its whole state as plain data, and one pure step
 * `step(state, event, now, options) → [state, decisions]` for everything that
 * happens to it (a call asks to go through, a call ends, the state is read, an
 * operator isolates, resets or restores it).
 *
 * Nothing here runs an effect or reads a clock: the caller passes `now`, and
 * the step says what to do (admit or refuse the call, announce a change of
 * state). That is what lets one process decide from a state another process
 * wrote (the state lives in a `CircuitBreakerStore`), and what lets the tests
 * check every rule without a runtime.
 *
 * The one input the step cannot compute is the length of a new break: it is
 * the next step of the user's break `Schedule`, an effect whose own state is
 * not data. So a step that would trip the breaker, given no break, changes
 * nothing and asks for one (`NeedsBreak`); the caller steps the schedule and
 * takes the same step again with the break.
 */

/**
 * The kinds of state.
 *
 * @internal
 */
export const kinds = ["closed", "open", "half-open"] as const

/** @internal */
export type Kind = typeof kinds[number]

/**
 * The whole state of one breaker: plain data (numbers, booleans, strings, an
 * array, `null`), so that a store can keep it anywhere.
 *
 * @internal
 */
export interface BreakerState {
  readonly state: Kind
  /** Counted failures in a row. */
  readonly consecutiveFailures: number
  /** The outcomes of the last calls, oldest first (`true` for a counted failure), as long as the rate's window. */
  readonly window: ReadonlyArray<boolean>
  /** Trips since the breaker last closed: how far the break schedule has stepped. */
  readonly trips: number
  /** While open: when the break ends, in epoch milliseconds (`null` while isolated). */
  readonly openUntil: number | null
  /** When it last opened, to repeat that break once the schedule has finished. */
  readonly openedAt: number | null
  /** Held open until a reset. */
  readonly isolated: boolean
  /** While half-open: probes let through (and not given back), and probes that succeeded. */
  readonly probes: number
  readonly probesSucceeded: number
  /**
   * Grows by one at each change of state: a call carries the generation that
   * admitted it, and its outcome counts only in that same generation.
   */
  readonly generation: number
}

/**
 * A closed breaker with no history.
 *
 * @internal
 */
export const initial: BreakerState = {
  state: "closed",
  consecutiveFailures: 0,
  window: [],
  trips: 0,
  openUntil: null,
  openedAt: null,
  isolated: false,
  probes: 0,
  probesSucceeded: 0,
  generation: 0
}

/**
 * The rules, checked and with their defaults applied.
 *
 * @internal
 */
export interface Options {
  /** Trip after this many counted failures in a row (`Infinity`: never). */
  readonly consecutiveFailures: number
  /** Trip when the share of counted failures among the last `window` calls reaches `threshold`. */
  readonly rate: { readonly threshold: number; readonly window: number; readonly minimumCalls: number } | undefined
  readonly halfOpenProbes: number
}

/**
 * How a call ended, as far as the breaker is concerned: an ignored outcome (an
 * interruption, or a failure that does not count) changes no count.
 *
 * @internal
 */
export type Outcome = "success" | "failure" | "ignored"

/**
 * The length of a new break: the next step of the break schedule in
 * milliseconds, or `"repeat"` once the schedule has finished (the last break
 * is repeated).
 *
 * @internal
 */
export type Break = number | "repeat"

/**
 * A saved state, as a `Snapshot` holds it.
 *
 * @internal
 */
export interface Saved {
  readonly state: Kind
  readonly consecutiveFailures: number
  readonly window: ReadonlyArray<boolean>
  readonly trips: number
  readonly openUntil: number | null
  readonly isolated: boolean
  readonly probes: number
  readonly probesSucceeded: number
}

/** @internal */
export type Event =
  /** A call asks to go through. */
  | { readonly _tag: "Call" }
  /** A call admitted in `generation` ended; `nextBreak` is the break to open for, should this outcome trip it. */
  | {
    readonly _tag: "Outcome"
    readonly generation: number
    readonly outcome: Outcome
    readonly nextBreak?: Break | undefined
  }
  /** The state is read (an open breaker whose break is over turns half-open). */
  | { readonly _tag: "Read" }
  | { readonly _tag: "Isolate" }
  | { readonly _tag: "Reset" }
  | { readonly _tag: "Restore"; readonly saved: Saved }

/** @internal */
export type Decision =
  /** Let the call through; its outcome is to be reported with this generation. */
  | { readonly _tag: "Admit"; readonly generation: number; readonly probe: boolean }
  /** Fail the call at once; `retryAfter` (milliseconds) is how long the break still lasts, when it is known. */
  | { readonly _tag: "Refuse"; readonly state: "open" | "half-open"; readonly retryAfter: number | undefined }
  /** The state's kind changed: announce it. */
  | { readonly _tag: "Transition"; readonly from: Kind; readonly to: Kind; readonly reason: string }
  /** The step would trip the breaker: take it again with the next break (the state was left as it was). */
  | { readonly _tag: "NeedsBreak" }

/** @internal */
export type Step = readonly [BreakerState, ReadonlyArray<Decision>]

const none: ReadonlyArray<Decision> = []

/**
 * Whether a breaker in this state lets every call through with no change of
 * state (closed): the one check a caller may make without a step.
 *
 * @internal
 */
export const admitsAll = (state: BreakerState): boolean => state.state === "closed"

/**
 * Whether a step's decisions change nothing anyone must hear of: no
 * announcement, and no break to compute.
 *
 * @internal
 */
export const isQuiet = (decisions: ReadonlyArray<Decision>): boolean =>
  decisions.every((decision) => decision._tag === "Admit" || decision._tag === "Refuse")

/**
 * The breaker after one event at `now`.
 *
 * @internal
 */
export const step = (state: BreakerState, event: Event, now: number, options: Options): Step => {
  switch (event._tag) {
    case "Call":
      return call(state, now, options)
    case "Outcome":
      return outcome(state, event.generation, event.outcome, event.nextBreak, now, options)
    case "Read":
      return advance(state, now)
    case "Isolate":
      return [
        { ...state, state: "open", isolated: true, openUntil: null, generation: state.generation + 1 },
        state.state === "open" ? none : [transition(state.state, "open", "isolated")]
      ]
    case "Reset":
      return [
        { ...initial, generation: state.generation + 1 },
        state.state === "closed" ? none : [transition(state.state, "closed", "reset")]
      ]
    case "Restore":
      return restore(state, event.saved, now)
  }
}

const transition = (from: Kind, to: Kind, reason: string): Decision => ({ _tag: "Transition", from, to, reason })

/** An open breaker whose break is over is half-open: time is read lazily, at the next step. */
const advance = (state: BreakerState, now: number): Step =>
  state.state === "open" && !state.isolated && state.openUntil !== null && now >= state.openUntil
    ? [
      { ...state, state: "half-open", probes: 0, probesSucceeded: 0, generation: state.generation + 1 },
      [transition("open", "half-open", "break over")]
    ]
    : [state, none]

const call = (before: BreakerState, now: number, options: Options): Step => {
  const [state, announced] = advance(before, now)
  if (state.state === "closed") {
    return [state, [...announced, { _tag: "Admit", generation: state.generation, probe: false }]]
  }
  if (state.state === "open") {
    const retryAfter = state.openUntil === null ? undefined : Math.max(0, state.openUntil - now)
    return [state, [...announced, { _tag: "Refuse", state: "open", retryAfter }]]
  }
  if (state.probes < options.halfOpenProbes) {
    return [
      { ...state, probes: state.probes + 1 },
      [...announced, { _tag: "Admit", generation: state.generation, probe: true }]
    ]
  }
  return [state, [...announced, { _tag: "Refuse", state: "half-open", retryAfter: undefined }]]
}

/**
 * A closed breaker after one more counted outcome, and why it trips, if it
 * does. The failure rate is checked on a failure only: a success never trips.
 *
 * @internal
 */
export const counted = (
  state: BreakerState,
  outcome: Exclude<Outcome, "ignored">,
  options: Options
): readonly [BreakerState, string | undefined] => {
  const failed = outcome === "failure"
  const consecutiveFailures = failed ? state.consecutiveFailures + 1 : 0
  const size = options.rate?.window ?? 0
  // A full window that only loses an outcome like the one it gains is the same window: then the state is the same
  // object, so that a store writes nothing (a closed breaker through which every call succeeds is only read, and
  // breakers shared by many processes do not contend for every success).
  const unchanged = consecutiveFailures === state.consecutiveFailures &&
    (size === 0 || (state.window.length === size && state.window.every((f) => f === failed)))
  if (unchanged) return [state, undefined]
  const window = size === 0 ? state.window : [...state.window, failed].slice(-size)
  const next = { ...state, consecutiveFailures, window }
  if (consecutiveFailures >= options.consecutiveFailures) return [next, `${consecutiveFailures} failures in a row`]
  if (options.rate !== undefined && failed && window.length >= options.rate.minimumCalls) {
    const failures = window.filter(Boolean).length
    if (failures / window.length >= options.rate.threshold) {
      return [next, `${failures} of the last ${window.length} calls failed`]
    }
  }
  return [next, undefined]
}

/** Open (again) for `nextBreak`; a finished schedule repeats the last break. */
const trip = (state: BreakerState, now: number, nextBreak: Break, reason: string): Step => {
  const previous = state.openUntil !== null && state.openedAt !== null ? state.openUntil - state.openedAt : 0
  const delay = nextBreak === "repeat" ? previous : nextBreak
  return [{
    ...state,
    state: "open",
    openUntil: now + delay,
    openedAt: now,
    trips: state.trips + 1,
    probes: 0,
    probesSucceeded: 0,
    generation: state.generation + 1
  }, [transition(state.state, "open", reason)]]
}

const outcome = (
  before: BreakerState,
  generation: number,
  outcome: Outcome,
  nextBreak: Break | undefined,
  now: number,
  options: Options
): Step => {
  const [state, announced] = advance(before, now)
  // A call admitted before the last change of state says nothing about the new one.
  if (state.generation !== generation) return [state, announced]
  const tripping = (tripped: BreakerState, reason: string): Step => {
    if (nextBreak === undefined) return [before, [{ _tag: "NeedsBreak" }]]
    const [next, decisions] = trip(tripped, now, nextBreak, reason)
    return [next, [...announced, ...decisions]]
  }
  if (state.state === "half-open") {
    if (outcome === "ignored") return [{ ...state, probes: Math.max(0, state.probes - 1) }, announced]
    if (outcome === "failure") return tripping(state, "a probe failed")
    const succeeded = state.probesSucceeded + 1
    if (succeeded < options.halfOpenProbes) return [{ ...state, probesSucceeded: succeeded }, announced]
    return [
      { ...initial, generation: state.generation + 1 },
      [...announced, transition("half-open", "closed", `${succeeded} probes succeeded`)]
    ]
  }
  if (state.state !== "closed" || outcome === "ignored") return [state, announced]
  const [next, reason] = counted(state, outcome, options)
  return reason === undefined ? [next, announced] : tripping(next, reason)
}

/** A saved state, in a new generation; an open one starts its break over from now. */
const restore = (state: BreakerState, saved: Saved, now: number): Step => [
  {
    state: saved.state,
    consecutiveFailures: saved.consecutiveFailures,
    window: saved.window,
    trips: saved.trips,
    openUntil: saved.openUntil,
    openedAt: saved.state === "open" ? now : null,
    isolated: saved.isolated,
    probes: saved.probes,
    probesSucceeded: saved.probesSucceeded,
    generation: state.generation + 1
  },
  state.state === saved.state ? none : [transition(state.state, saved.state, "restored")]
]
