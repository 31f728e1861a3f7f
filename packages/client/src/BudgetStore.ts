/**
 * Where a usage tracker keeps its budget. The tracker decides nothing itself
 * about the budget: it asks its store to hold a call's estimate, to settle it
 * and to say where the budget stands, and the store applies the budget's rule
 * to the state it holds. The store in memory is the default; provide another
 * (one on a server several processes share, which also outlives them) to keep
 * one budget across all of them and across restarts.
 *
 * ## The contract
 *
 * A store holds, under each key, one budget: what was spent in the current
 * period in each dimension (`usd`, `tokens`), the amounts held by calls in
 * flight (each under a hold id), the thresholds already crossed in the period,
 * and when the periods started. Every implementation must guarantee:
 *
 * - **Each operation is atomic.** `reserve` starts a new period if one is due,
 *   checks the amount against every limit and holds it, as one step; `settle`
 *   starts a new period if one is due, gives the hold back, spends what was
 *   used and notes the thresholds crossed, as one step. No other operation on
 *   the same key, from any process, sees or makes a change in between. On a
 *   key-value server that is one script per operation (a Lua script on Redis),
 *   or a compare-and-set retried until it holds, not a read followed by a
 *   write.
 * - **The rule is the budget's.** An amount fits if what is spent, what is
 *   held and the amount are at most the limit (within 10^-9 of it, as sums of
 *   dollar amounts drift in their last bits); an amount that is not a finite
 *   number >= 0 does not fit. Only the first `settle` of a hold id gives the
 *   hold back; with no hold left, nothing stays reserved. Spending grows only
 *   by amounts above 0 and stays below `Infinity`, and a new period sets it
 *   back to 0 and arms the thresholds again while holds stay, so that no input
 *   can keep a budget spent past the end of its period. Periods only move
 *   forward.
 * - **The state is kept.** The periods count from the `origin` of the first
 *   operation on a key, kept with the state: a process that joins or restarts
 *   counts from the same start, and a store that persists its state does not
 *   start a budget again when a process restarts. The limits come with every
 *   operation, not with the key, so a limit raised on restart applies to what
 *   was spent already. A store shared by several processes may drop a hold
 *   older than a bound far above the longest call, so that the holds of a
 *   process that died (or of a settlement that failed) do not shrink the
 *   budget for good; the memory store's holds die with its process.
 * - **The store reads the time.** Periods are measured on the store's clock:
 *   the memory store reads Effect's `Clock` (so `TestClock` drives it), and a
 *   store shared by several processes should read one clock for all of them,
 *   the server's.
 * - **A failure means the server could not answer.** Retry transient errors
 *   inside the store; fail with `BudgetStoreError` when there is no answer to
 *   give. The tracker then logs a warning and lets the call go ahead without a
 *   hold (an outage of the store does not become an outage of inference, at
 *   the price of spending it cannot check), counts a call it could not settle
 *   in its totals but not in the budget, and dies in `budget` and `report`,
 *   whose types have no error channel.
 * - **Keys scope the budgets.** A tracker keeps its budget under one key: the
 *   same for every `UsageTracker.make`/`layer` made where the store is
 *   provided (that is how they share one budget), and one of its endpoint and
 *   project for a client's own tracker (its `usage` option). A store shared by several applications puts its own
 *   prefix before the key.
 *
 * @since 0.2.0
 */
import type * as Effect from "effect/Effect"
import type * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import type { BudgetDimension } from "./InferenceError.js"
import * as internal from "./internal/budgetStore.js"
import type { BudgetStatus } from "./UsageTracker.js"

/**
 * A store that could not answer.
 *
 * @since 0.2.0
 * @category errors
 */
export class BudgetStoreError extends Schema.TaggedError<BudgetStoreError>(
  "@effect-inference/client/BudgetStore/BudgetStoreError"
)("BudgetStoreError", {
  message: Schema.String,
  cause: Schema.optional(Schema.Defect),
  /**
   * Whether the call that needed this answer must fail, with
   * `CoordinationError`, before it is sent, rather than go on without the
   * store (the default). A store shared by several processes sets it when
   * going on alone would break the limit they share (the Redis stores with
   * `onUnavailable: "fail"`).
   *
   * @since 0.2.0
   */
  rejectCall: Schema.optional(Schema.Boolean)
}) {}

/**
 * An amount in both dimensions of a budget: US dollars and tokens.
 *
 * @since 0.2.0
 * @category models
 */
export interface Amount {
  readonly usd: number
  readonly tokens: number
}

/**
 * A budget's terms, given with every operation. A dimension without a limit
 * is neither checked nor spent.
 *
 * @since 0.2.0
 * @category models
 */
export interface Limits {
  /** A positive number of US dollars. */
  readonly usd: number | undefined
  /** A whole number of tokens >= 1. */
  readonly tokens: number | undefined
  /** The length of a period in milliseconds; `undefined` for one period that never ends. */
  readonly periodMillis: number | undefined
  /**
   * When the first period starts, in milliseconds since the epoch; read only
   * when the key holds no budget yet.
   */
  readonly origin: number
  /** Fractions of a limit in (0, 1], in increasing order: a crossing of each is reported once per period. */
  readonly thresholds: ReadonlyArray<number>
}

/**
 * `reserve` held the amount, under `id`: `settle` it with that id.
 *
 * @since 0.2.0
 * @category models
 */
export interface Held {
  readonly _tag: "Held"
  readonly id: number
}

/**
 * `reserve` held nothing: `requested` did not fit in `dimension` beside what
 * is `spent` and `reserved`. `resetsInMillis` is the time until the period
 * ends, `undefined` without a period.
 *
 * @since 0.2.0
 * @category models
 */
export interface Exceeded {
  readonly _tag: "Exceeded"
  readonly dimension: BudgetDimension
  readonly limit: number
  readonly spent: number
  readonly reserved: number
  readonly requested: number
  readonly resetsInMillis: number | undefined
}

/**
 * What `reserve` decided.
 *
 * @since 0.2.0
 * @category models
 */
export type Reserve = Held | Exceeded

/**
 * Spending reached `threshold` of the limit of `dimension` for the first time
 * in the period that started at `periodStart`.
 *
 * @since 0.2.0
 * @category models
 */
export interface ThresholdCrossed {
  readonly dimension: BudgetDimension
  readonly threshold: number
  readonly spent: number
  readonly limit: number
  readonly periodStart: number
}

/**
 * The store service: one tag, and its interface in `BudgetStore.Service`. A
 * tracker made where one is provided keeps its budget there; without one it
 * keeps it in a memory store of its own.
 *
 * @example
 * ```ts
 * import { UsageTracker } from "@effect-inference/client"
 * import * as BudgetStore from "@effect-inference/client/BudgetStore"
 * import { Effect } from "effect"
 *
 * // Two trackers over one store spend one budget.
 * const program = Effect.gen(function*() {
 *   const a = yield* UsageTracker.make({ budget: { usd: 25, period: "30 days" } })
 *   const b = yield* UsageTracker.make({ budget: { usd: 25, period: "30 days" } })
 *   return [a, b]
 * }).pipe(Effect.provide(BudgetStore.layerMemory))
 * ```
 *
 * @since 0.2.0
 * @category tags
 */
export const BudgetStore: typeof internal.BudgetStore = internal.BudgetStore

/**
 * @since 0.2.0
 * @category tags
 */
export type BudgetStore = internal.BudgetStore

/**
 * @since 0.2.0
 */
export declare namespace BudgetStore {
  /**
   * What a store does: the three operations of a budget, each atomic (see the
   * contract above).
   *
   * @since 0.2.0
   * @category models
   */
  export interface Service {
    /**
     * Starts a new period if one is due, and holds `amount` if it fits in every
     * dimension with a limit beside what is spent and held.
     */
    readonly reserve: (options: {
      readonly key: string
      readonly amount: Amount
      readonly limits: Limits
    }) => Effect.Effect<Reserve, BudgetStoreError>
    /**
     * Starts a new period if one is due, gives back the hold `id` if it is
     * still held (`undefined`: a call that held nothing), spends `used`, and
     * returns the thresholds crossed for the first time in the period.
     */
    readonly settle: (options: {
      readonly key: string
      readonly id: number | undefined
      readonly used: Amount
      readonly limits: Limits
    }) => Effect.Effect<ReadonlyArray<ThresholdCrossed>, BudgetStoreError>
    /** Starts a new period if one is due, and says where each dimension with a limit stands. */
    readonly status: (options: {
      readonly key: string
      readonly limits: Limits
    }) => Effect.Effect<ReadonlyArray<BudgetStatus>, BudgetStoreError>
  }
}

/**
 * Makes a store in memory, for the trackers of one process. Its budgets end
 * with the process.
 *
 * @since 0.2.0
 * @category constructors
 */
export const makeMemory: Effect.Effect<BudgetStore.Service> = internal.makeMemory

/**
 * A store in memory as a `Layer`: every tracker made where it is provided
 * spends one budget.
 *
 * @since 0.2.0
 * @category layers
 */
export const layerMemory: Layer.Layer<BudgetStore> = internal.layerMemory
