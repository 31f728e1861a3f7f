/**
 * Where a call waits for room in the rate limits, and where its tokens are
 * reserved, charged and given back.
 *
 * Each limit is a log of charges over a sliding window: a call fits if what was
 * charged in the last `interval`, with what calls in flight have reserved,
 * leaves room for it. (Why not Effect's `RateLimiter`: see `RateLimit.ts`.)
 * Every decision is one synchronous step over the logs and the clock's `now`,
 * so no other fiber sees a half-made change; a caller that finds no room sleeps
 * in its own fiber until the oldest charge in the way expires, or until a
 * settlement may have made room, whichever comes first. Nothing runs between
 * calls.
 */
import * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import type * as Exit from "effect/Exit"
import { dual } from "effect/Function"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import type * as RateLimit from "../RateLimit.js"
import * as checks from "./options.js"
import * as Slots from "./slots.js"
import * as tokenCounts from "./tokens.js"
import * as validate from "./validate.js"

// ---------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------

/** @internal */
export interface ResolvedLimit {
  readonly limit: number
  readonly intervalMillis: number
}

/** @internal */
export interface Resolved {
  readonly requests: ResolvedLimit | undefined
  readonly tokens: ResolvedLimit | undefined
}

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
// One limit
// ---------------------------------------------------------------------------

interface Charge {
  /** Epoch milliseconds; the charge counts until `at + interval` (excluded). */
  readonly at: number
  readonly amount: number
}

/**
 * One limit's log. It is changed only inside a synchronous step of an Effect,
 * so each change is atomic.
 */
class Window {
  /**
   * Charges oldest first, appended at the clock's time (which only moves
   * forward); those before `start` have expired. Dropped in bulk rather than
   * one `shift` at a time, as a busy window holds thousands.
   */
  private log: Array<Charge> = []
  private start = 0
  /** The sum of the charges still counting. */
  private charged = 0
  /** Held by calls in flight; it does not expire, as the call may still be using it. */
  private reserved = 0

  constructor(readonly limit: number, readonly intervalMillis: number) {}

  private expire(now: number): void {
    while (this.start < this.log.length && this.log[this.start].at + this.intervalMillis <= now) {
      this.charged -= this.log[this.start].amount
      this.start++
    }
    // An empty log has nothing charged: whatever the sums left behind in the last bits goes with it.
    if (this.start === this.log.length) this.charged = 0
    if (this.start > 1024 && this.start * 2 > this.log.length) {
      this.log = this.log.slice(this.start)
      this.start = 0
    }
  }

  /**
   * The earliest time, from `now` on, at which `amount` more fits as far as the
   * log can tell: `now` if it fits already, when enough of the oldest charges
   * will have expired otherwise, and `Infinity` if only reservations stand in
   * the way (a settlement has to free them first).
   */
  fitsAt(now: number, amount: number): number {
    this.expire(now)
    let used = this.reserved + this.charged
    if (used + amount <= this.limit) return now
    for (let i = this.start; i < this.log.length; i++) {
      used -= this.log[i].amount
      if (used + amount <= this.limit) return this.log[i].at + this.intervalMillis
    }
    return Infinity
  }

  /**
   * Charges at most the whole limit: more would keep the window full no longer (the charge expires after one
   * interval either way), and only makes the sums lose their last bits.
   */
  charge(now: number, amount: number): void {
    if (amount > 0) {
      const charged = Math.min(amount, this.limit)
      this.log.push({ at: now, amount: charged })
      this.charged += charged
    }
  }

  reserve(amount: number): void {
    this.reserved += amount
  }

  release(amount: number): void {
    this.reserved = Math.max(0, this.reserved - amount)
  }
}

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

const fromResolved = (
  resolved: Resolved,
  gate: Slots.Slots,
  firstChange: Deferred.Deferred<void>
): RateLimit.RateLimit => {
  const requests = resolved.requests === undefined
    ? undefined
    : new Window(resolved.requests.limit, resolved.requests.intervalMillis)
  const tokens = resolved.tokens === undefined
    ? undefined
    : new Window(resolved.tokens.limit, resolved.tokens.intervalMillis)
  /**
   * Completed, and replaced by a fresh one, whenever a settlement may have made
   * room. A waiter takes the current one in the same step in which it finds no
   * room, so a settlement cannot slip between its check and its wait.
   */
  let changed = firstChange

  const permit = (reservedTokens: number): RateLimit.Permit => {
    let settled = false
    return {
      tokens: reservedTokens,
      settle: (actualTokens) =>
        Effect.flatMap(
          Effect.zip(Deferred.make<void>(), Clock.currentTimeMillis),
          ([next, now]) =>
            Effect.suspend(() => {
              if (settled || tokens === undefined) return Effect.void
              settled = true
              tokens.release(reservedTokens)
              tokens.charge(now, tokensOf(actualTokens, reservedTokens))
              const woken = changed
              changed = next
              return Deferred.succeed(woken, undefined)
            })
        )
    }
  }

  /**
   * Waits for room and takes it. Only the waits are interruptible (`restore`);
   * the check and the charge are one step, so an interrupted caller has taken
   * nothing and a caller that got through holds its permit. The gate lets one
   * caller at a time wait for room, in the order they came, so that a large
   * call is not passed over forever by small ones. (A FIFO queue rather than
   * Effect's Semaphore, whose every release resumes all the callers queued at
   * the gate: see slots.ts.)
   */
  const admit = (reservedTokens: number, restore: Restore): Effect.Effect<RateLimit.Permit> => {
    const attempt: Effect.Effect<RateLimit.Permit> = Effect.flatMap(Clock.currentTimeMillis, (now) => {
      const at = Math.max(
        requests === undefined ? now : requests.fitsAt(now, 1),
        tokens === undefined ? now : tokens.fitsAt(now, reservedTokens)
      )
      if (at <= now) {
        requests?.charge(now, 1)
        tokens?.reserve(reservedTokens)
        return Effect.succeed(permit(reservedTokens))
      }
      const wake = Deferred.await(changed)
      return Effect.zipRight(
        restore(at === Infinity ? wake : Effect.race(Effect.sleep(Duration.millis(at - now)), wake)),
        attempt
      )
    })
    return Effect.zipRight(gate.take(restore), Effect.ensuring(attempt, gate.release))
  }

  const reservation = (estimatedTokens: number): Effect.Effect<number> =>
    Number.isFinite(estimatedTokens) && estimatedTokens >= 0
      ? Effect.succeed(Math.min(Math.ceil(estimatedTokens), tokens === undefined ? Infinity : tokens.limit))
      : Effect.dieMessage(`RateLimit: estimatedTokens must be a finite number >= 0, got ${estimatedTokens}`)

  const acquire = (estimatedTokens: number): Effect.Effect<RateLimit.Permit, never, Scope.Scope> =>
    Effect.flatMap(
      reservation(estimatedTokens),
      (reserved) =>
        Effect.uninterruptibleMask((restore) =>
          Effect.tap(admit(reserved, restore), (taken) => Effect.addFinalizer(() => taken.settle(undefined)))
        )
    )

  const withLimit: RateLimit.RateLimit["withLimit"] = dual(
    2,
    <A, E, R>(self: Effect.Effect<A, E, R>, cost: RateLimit.Cost<A, E>): Effect.Effect<A, E, R> =>
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
  Effect.flatMap(validate.optionsOrDie("RateLimit", resolveOptions(options)), makeResolved)

/**
 * A limiter of options checked already (by `resolveOptions`, as the client
 * checks its own `rateLimit` option with the rest of its options).
 *
 * @internal
 */
export const makeResolved = (resolved: Resolved): Effect.Effect<RateLimit.RateLimit> =>
  Effect.map(
    Effect.zip(Slots.make(1), Deferred.make<void>()),
    ([gate, firstChange]) => fromResolved(resolved, gate, firstChange)
  )
