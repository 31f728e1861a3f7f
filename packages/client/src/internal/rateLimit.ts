/**
 * Where a call waits for room in the rate limits, and where its tokens are
 * reserved, charged and given back.
 *
 * The limiter decides nothing itself: the rule (a log of charges over a
 * sliding window per limit) is the pure core in `rateLimitCore.ts`, and the
 * windows live in a `RateLimitStore`, whose every operation is atomic, so no
 * other fiber (or process, with a shared store) sees a half-made change. (Why
 * not Effect's `RateLimiter`: see `RateLimit.ts`.) What stays here is the
 * waiting: a caller that finds no room sleeps in its own fiber until the store
 * says the oldest charge in the way expires, or until a settlement may have
 * made room, whichever comes first, and callers wait in line, one at a time.
 * Nothing runs between calls.
 */
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import type * as Exit from "effect/Exit"
import { dual } from "effect/Function"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as InferenceError from "../InferenceError.js"
import type * as RateLimit from "../RateLimit.js"
import type * as RateLimitStore from "../RateLimitStore.js"
import * as checks from "./options.js"
import * as core from "./rateLimitCore.js"
import * as store from "./rateLimitStore.js"
import * as Slots from "./slots.js"
import * as tokenCounts from "./tokens.js"
import * as validate from "./validate.js"

// ---------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------

/**
 * One limit, checked: the store's `Window`.
 *
 * @internal
 */
export type ResolvedLimit = RateLimitStore.Window

/**
 * The limits, checked: the store's `Limits`, given with each of its operations.
 *
 * @internal
 */
export type Resolved = RateLimitStore.Limits

const Limit = Schema.Struct({ limit: checks.wholeNumber(1), interval: checks.duration({ finite: true }) })

/** The limits, every field checked; a path in a message names the option (`requests.limit`). */
const decodeOptions = checks.decoder(
  Schema.Struct({ requests: Schema.optional(Limit), tokens: Schema.optional(Limit) }),
  "RateLimit options"
)

const resolveLimit = (limit: RateLimit.Limit | undefined): ResolvedLimit | undefined =>
  limit === undefined
    ? undefined
    : { limit: limit.limit, intervalMillis: Duration.toMillis(Duration.decode(limit.interval)) }

/**
 * Checks the options; the message names the option (for example
 * `requests.limit`), to be prefixed by the caller.
 *
 * @internal
 */
export const resolveOptions = (options: RateLimit.Options): Either.Either<Resolved, string> =>
  Either.map(decodeOptions(options), (checked) => ({
    requests: resolveLimit(checked.requests),
    tokens: resolveLimit(checked.tokens)
  }))

// ---------------------------------------------------------------------------
// The limiter
// ---------------------------------------------------------------------------

type Restore = <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>

/**
 * What a settlement charges: the tokens used if they are a token count (a whole number from 0 below 10^9, the
 * check the usage tracker makes of a reported usage), else the reservation, as for usage unknown.
 */
const tokensOf = (actual: number | undefined, reserved: number): number =>
  tokenCounts.isTokenCount(actual) ? actual : reserved

/**
 * Where a limiter keeps its windows: a store given explicitly, else the one in
 * context, else a memory store of its own.
 *
 * @internal
 */
export interface StoreOptions {
  readonly store?: RateLimitStore.RateLimitStore.Service | undefined
  /** Default `"rate-limit"`. */
  readonly key?: string | undefined
}

const fromResolved = (
  limits: Resolved,
  windows: RateLimitStore.RateLimitStore.Service,
  key: string,
  gate: Slots.Slots,
  firstChange: Deferred.Deferred<void>
): RateLimit.RateLimit => {
  const unlimited = limits.requests === undefined && limits.tokens === undefined
  /**
   * Completed, and replaced by a fresh one, whenever a settlement may have made
   * room. A waiter takes the current one before it asks the store, so a
   * settlement that lands between the store's answer and the wait has
   * completed it already and cannot be missed.
   */
  let changed = firstChange

  /** Wakes the waiter, if any: it asks the store again. */
  const wake = Effect.flatMap(Deferred.make<void>(), (next) =>
    Effect.suspend(() => {
      const woken = changed
      changed = next
      return Deferred.succeed(woken, undefined)
    }))

  /**
   * A store that could not answer is worked around, not passed on: a limiter
   * has no error channel, and an outage of its store must not become an
   * outage of inference (see the store's contract).
   */
  const storeFailed = (error: RateLimitStore.RateLimitStoreError, consequence: string) =>
    Effect.logWarning(`Rate limit store failed: ${consequence}`).pipe(
      Effect.annotateLogs({ key, error: error.message })
    )

  /**
   * `id`: the reservation the store holds for the call; `undefined` for a call
   * let through without one (no token limit, or a store that could not answer).
   */
  const permit = (reservedTokens: number, id: number | undefined): RateLimit.Permit => {
    let settled = id === undefined || limits.tokens === undefined
    return {
      tokens: reservedTokens,
      // Uninterruptible: a settlement marked done but never made would hold its reservation for good.
      settle: (actualTokens) =>
        Effect.uninterruptible(Effect.suspend(() => {
          if (settled || id === undefined) return Effect.void
          settled = true
          return Effect.zipRight(
            Effect.catchAll(
              windows.settle({ key, id, used: tokensOf(actualTokens, reservedTokens), limits }),
              (error) => storeFailed(error, "the reservation stays held in the store")
            ),
            wake
          )
        }))
    }
  }

  /**
   * Waits for room and takes it. Only the waits are interruptible (`restore`);
   * the store's check and charge are one atomic operation, run
   * uninterruptibly, so an interrupted caller has taken nothing and a caller
   * that got through holds its permit. The gate lets one caller at a time wait
   * for room, in the order they came, so that a large call is not passed over
   * forever by small ones. (A FIFO queue rather than Effect's Semaphore, whose
   * every release resumes all the callers queued at the gate: see slots.ts.)
   */
  const admit = (
    reservedTokens: number,
    restore: Restore
  ): Effect.Effect<RateLimit.Permit, InferenceError.CoordinationError> => {
    const attempt: Effect.Effect<RateLimit.Permit, InferenceError.CoordinationError> = Effect.suspend(() => {
      const settlement = Deferred.await(changed)
      return Effect.matchEffect(windows.admit({ key, tokens: reservedTokens, limits }), {
        onFailure: (error) =>
          error.rejectCall === true
            ? Effect.fail(new InferenceError.CoordinationError({ store: "rate-limit", reason: error.message }))
            : Effect.as(storeFailed(error, "the call goes through uncounted"), permit(reservedTokens, undefined)),
        onSuccess: (admission): Effect.Effect<RateLimit.Permit, InferenceError.CoordinationError> => {
          switch (admission._tag) {
            case "Admitted":
              return Effect.succeed(permit(reservedTokens, admission.id))
            case "Wait":
              return Effect.zipRight(
                restore(Effect.race(Effect.sleep(Duration.millis(admission.millis)), settlement)),
                attempt
              )
            case "WaitForSettlement":
              return Effect.zipRight(restore(settlement), attempt)
          }
        }
      })
    })
    return unlimited
      ? Effect.succeed(permit(reservedTokens, undefined))
      : Effect.zipRight(gate.take(restore), Effect.ensuring(attempt, gate.release))
  }

  const reservation = (estimatedTokens: number): Effect.Effect<number> => {
    const reserved = core.reservation(estimatedTokens, limits)
    return reserved === undefined
      ? Effect.dieMessage(`RateLimit: estimatedTokens must be a finite number >= 0, got ${estimatedTokens}`)
      : Effect.succeed(reserved)
  }

  const acquire = (
    estimatedTokens: number
  ): Effect.Effect<RateLimit.Permit, InferenceError.CoordinationError, Scope.Scope> =>
    Effect.flatMap(
      reservation(estimatedTokens),
      (reserved) =>
        Effect.uninterruptibleMask((restore) =>
          Effect.tap(admit(reserved, restore), (taken) => Effect.addFinalizer(() => taken.settle(undefined)))
        )
    )

  const withLimit: RateLimit.RateLimit["withLimit"] = dual(
    2,
    <A, E, R>(
      self: Effect.Effect<A, E, R>,
      cost: RateLimit.Cost<A, E>
    ): Effect.Effect<A, E | InferenceError.CoordinationError, R> =>
      Effect.flatMap(
        reservation(cost.estimatedTokens),
        (reserved) =>
          Effect.uninterruptibleMask((restore) =>
            Effect.flatMap(admit(reserved, restore), (taken) =>
              Effect.onExit(
                restore(self),
                (exit: Exit.Exit<A, E>) =>
                  taken.settle(cost.actualTokens === undefined ? undefined : cost.actualTokens(exit))
              ))
          )
      )
  )

  return { acquire, withLimit }
}

/** @internal */
export const make = (options: RateLimit.Options): Effect.Effect<RateLimit.RateLimit> =>
  Effect.flatMap(validate.optionsOrDie("RateLimit", resolveOptions(options)), (resolved) => makeResolved(resolved))

/**
 * A limiter of options checked already (by `resolveOptions`, as the client
 * checks its own `rateLimit` option with the rest of its options). Its windows
 * live in `options.store`, else in the `RateLimitStore` in context, else in a
 * memory store of its own, under `options.key` (default `"rate-limit"`).
 *
 * @internal
 */
export const makeResolved = (resolved: Resolved, options?: StoreOptions): Effect.Effect<RateLimit.RateLimit> =>
  Effect.gen(function*() {
    const windows = options?.store ?? Option.getOrElse(
      yield* Effect.serviceOption(store.RateLimitStore),
      store.unsafeMakeMemory
    )
    const gate = yield* Slots.make(1)
    const firstChange = yield* Deferred.make<void>()
    return fromResolved(resolved, windows, options?.key ?? store.DEFAULT_KEY, gate, firstChange)
  })
