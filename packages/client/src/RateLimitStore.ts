/**
 * Where a rate limiter keeps its windows. A limiter decides nothing itself: it
 * asks its store to admit a call and to settle it, and the store applies the
 * limiter's rule to the windows it holds. The store in memory is the default;
 * provide another (one on a server several processes share) to keep one quota
 * across all of them.
 *
 * ## The contract
 *
 * A store holds, under each key, the two windows of one limiter: for requests
 * and for tokens, each a log of charges over a sliding window of `interval`
 * plus the tokens reserved by calls in flight. Every implementation must
 * guarantee:
 *
 * - **Each operation is atomic.** `admit` expires the old charges, checks both
 *   limits and, if the call fits, charges the request and reserves the tokens,
 *   as one step: no other operation on the same key, from any process, sees or
 *   makes a change in between. On a key-value server that is one script per
 *   operation (a Lua script on Redis), not a read followed by a write.
 * - **The rule is the limiter's.** A call fits if the charges of the last
 *   `interval` and the reservations leave room for one more request and its
 *   tokens; a reservation counts until it is settled, however long that takes;
 *   a settlement names the reservation by the id `admit` gave it, gives it
 *   back once and charges the tokens used from then for one interval. An amount that is not a number above 0 counts as
 *   nothing and one above the limit as the whole limit, so that no input can
 *   fill a window for longer than one interval. A charge is never dated
 *   before the newest one (a clock that stepped back charges at the newest
 *   time), so the log stays in order.
 * - **The store reads the time.** Windows are measured on the store's clock:
 *   the memory store reads Effect's `Clock` (so `TestClock` drives it), and a
 *   store shared by several processes should read one clock for all of them,
 *   the server's, so that they agree on when a charge expires.
 * - **A failure means the server could not answer.** Retry transient errors
 *   inside the store; fail with `RateLimitStoreError` when there is no answer
 *   to give. The limiter then logs a warning and lets the call through
 *   uncounted, rather than stop every call while the store is down (a call it
 *   let through so settles nothing); a settlement that fails leaves its
 *   reservation in the store.
 * - **Reservations of a process that died end.** A store shared by several
 *   processes gives each reservation an expiry far above the longest call, so
 *   that the reservations of a process that crashed (or of a settlement that
 *   failed) do not hold room for good; the memory store's reservations die
 *   with its process.
 * - **Keys scope the windows.** A limiter uses one key for both of its
 *   windows: the same for every `RateLimit.make`/`layer` made where the store
 *   is provided (that is how they share one quota), and one of its endpoint
 *   and project for a client's own limiter (its `rateLimit` option). A store shared by several applications puts
 *   its own prefix before the key. The limits come with each operation, not
 *   with the key, so a limit changed on restart applies to the charges already
 *   made.
 *
 * ## Waking
 *
 * A store cannot wake a waiter in another process. So each limiter keeps its
 * waiters in a FIFO queue in front of the store, and only the first in line
 * asks it: after `Wait` it asks again when the delay is over, or at once when
 * a call of its own limiter settles; after `WaitForSettlement`, only then. A
 * store whose reservations other processes hold and settle would leave that
 * waiter waiting for a settlement it never hears of, so such a store answers
 * `Wait` with a short delay (a poll) instead. Within a process, calls go in
 * the order they came; between processes, room goes to whichever asks first.
 *
 * @since 0.2.0
 */
import type * as Effect from "effect/Effect"
import type * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import * as internal from "./internal/rateLimitStore.js"

/**
 * A store that could not answer.
 *
 * @since 0.2.0
 * @category errors
 */
export class RateLimitStoreError extends Schema.TaggedError<RateLimitStoreError>(
  "@effect-inference/client/RateLimitStore/RateLimitStoreError"
)("RateLimitStoreError", {
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
 * One limit of a window: at most `limit` in any span of `intervalMillis`.
 *
 * @since 0.2.0
 * @category models
 */
export interface Window {
  /** A whole number >= 1. */
  readonly limit: number
  /** A positive, finite number of milliseconds. */
  readonly intervalMillis: number
}

/**
 * The limits of a limiter, given with every operation; a window without a
 * limit is left alone.
 *
 * @since 0.2.0
 * @category models
 */
export interface Limits {
  readonly requests: Window | undefined
  readonly tokens: Window | undefined
}

/**
 * What `admit` decided: the call went through (`Admitted`: one request is
 * charged and its tokens are reserved under `id`, to be named when it is
 * settled), or nothing was taken and the caller
 * may ask again after `millis` (`Wait`: the oldest charges in the way will
 * have expired by then), or only a settlement can make room (`WaitForSettlement`:
 * reservations of calls in flight stand in the way).
 *
 * @since 0.2.0
 * @category models
 */
export type Admission =
  | { readonly _tag: "Admitted"; readonly id: number }
  | { readonly _tag: "Wait"; readonly millis: number }
  | { readonly _tag: "WaitForSettlement" }

/**
 * The store service: one tag, and its interface in `RateLimitStore.Service`.
 * A limiter made where one is provided keeps its windows there; without one
 * it keeps them in a memory store of its own.
 *
 * @example
 * ```ts
 * import { RateLimit } from "@effect-inference/client"
 * import * as RateLimitStore from "@effect-inference/client/RateLimitStore"
 * import { Effect } from "effect"
 *
 * // Two limiters over one store keep one quota between them.
 * const program = Effect.gen(function*() {
 *   const a = yield* RateLimit.make({ requests: { limit: 60, interval: "1 minute" } })
 *   const b = yield* RateLimit.make({ requests: { limit: 60, interval: "1 minute" } })
 *   return [a, b]
 * }).pipe(Effect.provide(RateLimitStore.layerMemory))
 * ```
 *
 * @since 0.2.0
 * @category tags
 */
export const RateLimitStore: typeof internal.RateLimitStore = internal.RateLimitStore

/**
 * @since 0.2.0
 * @category tags
 */
export type RateLimitStore = internal.RateLimitStore

/**
 * @since 0.2.0
 */
export declare namespace RateLimitStore {
  /**
   * What a store does: the two operations of a limiter, each atomic (see the
   * contract above).
   *
   * @since 0.2.0
   * @category models
   */
  export interface Service {
    /**
     * Expires the charges of the last interval and, if one more request and
     * `tokens` fit beside what is left and what is reserved, charges the
     * request and reserves the tokens; otherwise takes nothing and says when
     * to ask again. `tokens` is the call's reservation, a whole number from 0
     * to the token limit.
     */
    readonly admit: (options: {
      readonly key: string
      readonly tokens: number
      readonly limits: Limits
    }) => Effect.Effect<Admission, RateLimitStoreError>
    /**
     * Gives back the reservation `id` of an admitted call and charges `used`
     * tokens from now for one interval (`0` charges nothing). A reservation
     * not held (settled already, or ended by the store) changes nothing, so a
     * settlement retried after a lost answer counts once.
     */
    readonly settle: (options: {
      readonly key: string
      readonly id: number
      readonly used: number
      readonly limits: Limits
    }) => Effect.Effect<void, RateLimitStoreError>
  }
}

/**
 * Makes a store in memory, for the limiters of one process.
 *
 * @since 0.2.0
 * @category constructors
 */
export const makeMemory: Effect.Effect<RateLimitStore.Service> = internal.makeMemory

/**
 * A store in memory as a `Layer`: every limiter made where it is provided
 * shares its windows.
 *
 * @since 0.2.0
 * @category layers
 */
export const layerMemory: Layer.Layer<RateLimitStore> = internal.layerMemory
