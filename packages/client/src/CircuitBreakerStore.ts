/**
 * Where circuit breakers keep their state. A breaker decides everything
 * itself, from the state it reads; the store only keeps that state and makes
 * each read-decide-write atomic. The store in memory is the default; provide
 * one on a server several processes share, and breakers of the same key in
 * all of them are one breaker: a trip in one process stops calls in every
 * one, and only `halfOpenProbes` probes go through in all.
 *
 * ## The contract
 *
 * A store holds, under each breaker's key, one entry: the breaker's whole
 * state (`BreakerState`, plain data with a `Schema` to encode it) and a
 * version. Every implementation must guarantee:
 *
 * - **`get` reads.** It returns the entry as last written, or `None` for a key
 *   never written (a closed breaker with no history, at version 0), and
 *   changes nothing.
 * - **`compareAndSet` is atomic.** If the key is at `expectedVersion` (0 for a
 *   key never written), it writes the state at version `expectedVersion + 1`
 *   and returns `true`; otherwise it writes nothing and returns `false`. No
 *   write to the key, from any process, comes between the comparison and the
 *   write: on a key-value server that is one script (on Redis a Lua script
 *   that reads the version, compares and sets), or a transaction that fails
 *   when the key changed (`WATCH`/`MULTI`/`EXEC`).
 * - **Versions only grow.** A version is never given to two different states
 *   of a key. A store that forgets a key (eviction, expiry) hands out versions
 *   from 0 again, which a process still holding an old entry could mistake for
 *   its own: keep entries as long as their breakers are in use.
 * - **A failure means the server could not answer.** Retry transient errors
 *   inside the store; fail with `CircuitBreakerStoreError` when there is no
 *   answer to give. The breaker then lets the call through without counting
 *   it (an outage of the store does not become an outage of inference), drops
 *   an outcome it could not write, and dies in `state`, `snapshot`,
 *   `isolate`, `reset` and `restore`, whose types have no error channel.
 *
 * Times in a state (when a break ends) are epoch milliseconds from the `Clock`
 * of the process that wrote them: processes that share a store need clocks
 * that agree (NTP) to within the accuracy a break needs.
 *
 * ## Why compare-and-set, and not one operation per event
 *
 * Every rule of a breaker (counting failures, tripping, the half-open
 * probes, closing) is one pure function over this state, run in the process
 * that reads it. Operations such as `tryAcquireProbe` or `recordOutcome` would
 * rewrite those rules in the store's own language (a second copy to keep in
 * step), and one rule could not move at all: the length of the next break is a
 * step of the user's break `Schedule`, an effect that only the process can
 * run. With compare-and-set, a process that loses a race reads again and
 * decides again. The half-open probe count is part of the state, so a probe is
 * taken by a successful `compareAndSet`, and a trip written by one process is
 * what every other reads next.
 *
 * What it costs: with a remote store, a call through a closed breaker is one
 * `get`, and its outcome a `get` and a `compareAndSet`. A step that announces a
 * change of state also takes a lock in its process, so that each process's
 * `events` come in order; a change made by another process is seen in the
 * state (and by the next call) but announced, and counted in the metrics, only
 * by the process that made it.
 *
 * A probe let through by a process that then dies never reports: its
 * half-open breaker keeps that probe counted until a `reset`.
 *
 * @since 0.2.0
 */
import type * as Effect from "effect/Effect"
import type * as Layer from "effect/Layer"
import type * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as internal from "./internal/circuitBreakerStore.js"

/**
 * The whole state of one breaker, as a store keeps it: plain data, encoded
 * with this `Schema` for a store that holds text (JSON).
 *
 * @since 0.2.0
 * @category models
 */
export const BreakerState = Schema.Struct({
  state: Schema.Literal("closed", "open", "half-open"),
  /** Counted failures in a row. */
  consecutiveFailures: Schema.Int,
  /** The outcomes of the last calls, oldest first (`true` for a counted failure). */
  window: Schema.Array(Schema.Boolean),
  /** Trips since the breaker last closed: how far the break schedule has stepped. */
  trips: Schema.Int,
  /** While open: when the break ends, in epoch milliseconds (`null` while isolated). */
  openUntil: Schema.NullOr(Schema.Number),
  /** When it last opened, in epoch milliseconds. */
  openedAt: Schema.NullOr(Schema.Number),
  /** Held open until a reset. */
  isolated: Schema.Boolean,
  /** While half-open: probes let through, and probes that succeeded. */
  probes: Schema.Int,
  probesSucceeded: Schema.Int,
  /** Grows at each change of state: an outcome counts only in the generation that let its call through. */
  generation: Schema.Int
})

/**
 * @since 0.2.0
 * @category models
 */
export type BreakerState = typeof BreakerState.Type

/**
 * A key's state and its version (how many times the key has been written).
 *
 * @since 0.2.0
 * @category models
 */
export const Entry = Schema.Struct({
  version: Schema.Int,
  state: BreakerState
})

/**
 * @since 0.2.0
 * @category models
 */
export type Entry = typeof Entry.Type

/**
 * A store that could not answer.
 *
 * @since 0.2.0
 * @category errors
 */
export class CircuitBreakerStoreError extends Schema.TaggedError<CircuitBreakerStoreError>(
  "@effect-inference/client/CircuitBreakerStore/CircuitBreakerStoreError"
)("CircuitBreakerStoreError", {
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
 * The store service: one tag, and its interface in
 * `CircuitBreakerStore.Service`. Breakers made where one is provided keep their
 * state there; without one, each breaker (or registry) keeps it in a memory
 * store of its own.
 *
 * @example
 * ```ts
 * import { CircuitBreaker, InferenceError } from "@effect-inference/client"
 * import * as CircuitBreakerStore from "@effect-inference/client/CircuitBreakerStore"
 * import { Effect } from "effect"
 * import { strictEqual } from "node:assert"
 *
 * // Two breakers of one key over one store are one breaker: a trip through one is seen through the other.
 * const program = Effect.gen(function*() {
 *   const a = yield* CircuitBreaker.make("my-endpoint", { consecutiveFailures: 1 })
 *   const b = yield* CircuitBreaker.make("my-endpoint", { consecutiveFailures: 1 })
 *   yield* Effect.either(a.withBreaker(Effect.fail(new InferenceError.ServiceUnavailableError({ status: 503 }))))
 *   return yield* b.state
 * }).pipe(Effect.provide(CircuitBreakerStore.layerMemory))
 *
 * strictEqual(Effect.runSync(program), "open")
 * ```
 *
 * @since 0.2.0
 * @category tags
 */
export const CircuitBreakerStore: typeof internal.CircuitBreakerStore = internal.CircuitBreakerStore

/**
 * @since 0.2.0
 * @category tags
 */
export type CircuitBreakerStore = internal.CircuitBreakerStore

/**
 * @since 0.2.0
 */
export declare namespace CircuitBreakerStore {
  /**
   * What a store does: a read, and an atomic compare-and-set (see the
   * contract above).
   *
   * @since 0.2.0
   * @category models
   */
  export interface Service {
    /** The key's entry as last written, or `None` if it never was (version 0, a closed breaker). */
    readonly get: (key: string) => Effect.Effect<Option.Option<Entry>, CircuitBreakerStoreError>
    /**
     * Writes `state` at version `expectedVersion + 1` if the key is still at
     * `expectedVersion` (0: never written), as one atomic step, and says
     * whether it did.
     */
    readonly compareAndSet: (
      key: string,
      expectedVersion: number,
      state: BreakerState
    ) => Effect.Effect<boolean, CircuitBreakerStoreError>
  }
}

/**
 * Makes a store in memory, for the breakers of one process.
 *
 * @since 0.2.0
 * @category constructors
 */
export const makeMemory: Effect.Effect<CircuitBreakerStore.Service> = internal.makeMemory

/**
 * A store in memory as a `Layer`: every breaker made where it is provided
 * keeps its state there, so breakers of the same key share it.
 *
 * @since 0.2.0
 * @category layers
 */
export const layerMemory: Layer.Layer<CircuitBreakerStore> = internal.layerMemory
