/**
 * Where a concurrency limit keeps its slots, when several processes share one
 * limit (a provider's limit on requests in flight, for one API key). A slot
 * is a lease: it is held until it expires, and its holder renews it while its
 * call runs, so the slots of a process that crashed come back after the lease
 * time instead of staying taken for ever.
 *
 * Without a store a client limits its own calls with a line of its own, in
 * memory: no leases (in one process a holder cannot vanish without giving its
 * slot back) and no store to ask, the cheapest there is. The memory store
 * below is the contract's reference implementation, and lets several lines of
 * one process share a limit.
 *
 * ## The contract
 *
 * A store holds, under each key, a set of leases: a lease id and when it
 * expires. Every implementation must guarantee:
 *
 * - **Each operation is atomic.** It first drops the key's expired leases (an
 *   expiry at or before now), then acts, as one step: no other operation on
 *   the key, from any process, comes in between. On Redis that is one Lua
 *   script per operation over a sorted set (score: the expiry): for
 *   `tryAcquire`, `ZREMRANGEBYSCORE` up to now, then `ZSCORE` for the id, then
 *   `ZCARD` against the limit and `ZADD`.
 * - **`tryAcquire` takes at most `limit`.** If the lease id already holds a
 *   slot it keeps it, renewed, and the answer is `true` (so asking again after
 *   a lost answer never takes a second slot); otherwise, if fewer than `limit`
 *   leases are live, it adds this one, expiring `leaseMillis` from now, and
 *   answers `true`; otherwise it takes nothing and answers `false`.
 * - **`renew` extends a live lease only.** A lease that expired is not brought
 *   back (its slot may be someone else's by now): the answer `false` tells the
 *   holder it lost its slot.
 * - **`release` is idempotent.** Releasing a lease that is gone (released,
 *   expired) changes nothing and is no error.
 * - **The store reads the time.** Leases are measured on the store's clock:
 *   the memory store reads Effect's `Clock` (so `TestClock` drives it), and a
 *   store shared by several processes reads one clock for all (the server's,
 *   Redis `TIME`), so that they agree on when a lease expires.
 * - **A failure means the server could not answer.** Retry transient errors
 *   inside the store; fail with `ConcurrencyStoreError` when there is no
 *   answer to give. A line then lets a call through unleased when it holds
 *   fewer than `limit` slots itself (each process keeps to the limit on its
 *   own) rather than stop every call while the store is down.
 *
 * The limit comes with each `tryAcquire`, not with the key, so a limit changed
 * on restart applies at once. Lease ids must be unique across processes: a
 * line makes them from a random id of its own and a count.
 *
 * ## Waking
 *
 * A store cannot wake a waiter in another process. So each line keeps its
 * waiters in a FIFO queue in front of the store, and only the first in line
 * asks it: when the store answers `false` while other processes hold the
 * slots, it asks again after a short poll, or at once when a call of its own
 * line ends. Within a process, calls go in the order they came; between
 * processes, a freed slot goes to whichever line asks first.
 *
 * @since 0.2.0
 */
import type * as Effect from "effect/Effect"
import type * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import * as internal from "./internal/concurrencyStore.js"

/**
 * A store that could not answer.
 *
 * @since 0.2.0
 * @category errors
 */
export class ConcurrencyStoreError extends Schema.TaggedError<ConcurrencyStoreError>(
  "@effect-inference/client/ConcurrencyStore/ConcurrencyStoreError"
)("ConcurrencyStoreError", {
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
 * The store service: one tag, and its interface in `ConcurrencyStore.Service`.
 *
 * @example
 * ```ts
 * import * as ConcurrencyStore from "@effect-inference/client/ConcurrencyStore"
 * import { Effect } from "effect"
 * import { deepStrictEqual } from "node:assert"
 *
 * // Two slots under one key: a third lease is refused until one is released.
 * const program = Effect.gen(function*() {
 *   const store = yield* ConcurrencyStore.ConcurrencyStore
 *   const take = (leaseId: string) => store.tryAcquire({ key: "my-api-key", leaseId, limit: 2, leaseMillis: 30_000 })
 *   const taken = [yield* take("a"), yield* take("b"), yield* take("c")]
 *   yield* store.release({ key: "my-api-key", leaseId: "a" })
 *   return [...taken, yield* take("c")]
 * }).pipe(Effect.provide(ConcurrencyStore.layerMemory))
 *
 * deepStrictEqual(Effect.runSync(program), [true, true, false, true])
 * ```
 *
 * @since 0.2.0
 * @category tags
 */
export const ConcurrencyStore: typeof internal.ConcurrencyStore = internal.ConcurrencyStore

/**
 * @since 0.2.0
 * @category tags
 */
export type ConcurrencyStore = internal.ConcurrencyStore

/**
 * @since 0.2.0
 */
export declare namespace ConcurrencyStore {
  /**
   * What a store does: take, renew and give back a slot, and count the slots
   * taken, each atomic (see the contract above).
   *
   * @since 0.2.0
   * @category models
   */
  export interface Service {
    /**
     * Takes a slot for `leaseId` until `leaseMillis` from now if fewer than
     * `limit` are taken (or keeps the one it holds, renewed), and says whether
     * it holds one.
     */
    readonly tryAcquire: (options: {
      readonly key: string
      readonly leaseId: string
      /** A whole number >= 1. */
      readonly limit: number
      /** A whole number of milliseconds >= 1. */
      readonly leaseMillis: number
    }) => Effect.Effect<boolean, ConcurrencyStoreError>
    /** Extends a live lease to `leaseMillis` from now; `false`: the lease had expired, and its slot is lost. */
    readonly renew: (options: {
      readonly key: string
      readonly leaseId: string
      readonly leaseMillis: number
    }) => Effect.Effect<boolean, ConcurrencyStoreError>
    /** Gives the slot back, if the lease still holds one. */
    readonly release: (options: {
      readonly key: string
      readonly leaseId: string
    }) => Effect.Effect<void, ConcurrencyStoreError>
    /** How many slots are taken now (leases not expired). */
    readonly held: (key: string) => Effect.Effect<number, ConcurrencyStoreError>
  }
}

/**
 * Makes a store in memory, for the lines of one process.
 *
 * @since 0.2.0
 * @category constructors
 */
export const makeMemory: Effect.Effect<ConcurrencyStore.Service> = internal.makeMemory

/**
 * A store in memory as a `Layer`.
 *
 * @since 0.2.0
 * @category layers
 */
export const layerMemory: Layer.Layer<ConcurrencyStore> = internal.layerMemory
