/**
 * The four stores over one connection, and what happens when Redis cannot
 * answer.
 *
 * Every operation goes through `route`: it runs the store's script, and when
 * Redis is unavailable (no connection, no answer within the timeout, a server
 * loading or failing over) either runs the same operation on a memory store
 * of this process (`onUnavailable: "local"`) or fails with the store's own
 * error (`"fail"`). An answer that is an error (a key of another type, a
 * script error) fails with the store's error in both modes: it would not be
 * cured by waiting.
 *
 * The first unavailability is logged once (a warning), and so is the return
 * (an info line): not one line per call. While Redis is away, "local" sends
 * nothing to it: a probe (`PING`, every `PROBE_INTERVAL`) tells when it is
 * back, and from then on the stores are on Redis again. The ioredis client
 * reconnects by itself meanwhile.
 *
 * What a memory store took while Redis was away stays there: a lease or a
 * reservation taken in memory is renewed, released or settled in memory even
 * after Redis is back (rate-limit reservation and budget hold ids from memory
 * are negative, so they cannot be mistaken for Redis's), and a budget's
 * spending settled after Redis is back is spent on Redis. An operation on a
 * lease or hold that lives on Redis while Redis is away cannot reach it: a
 * renewal answers `true` (the lease is not known to be lost), a release or a
 * settlement leaves it to expire, and a budget settlement spends in memory.
 */
import * as BudgetStore from "@effect-inference/client/BudgetStore"
import * as CircuitBreakerStore from "@effect-inference/client/CircuitBreakerStore"
import * as ConcurrencyStore from "@effect-inference/client/ConcurrencyStore"
import * as RateLimitStore from "@effect-inference/client/RateLimitStore"
import * as Config from "effect/Config"
import * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import type * as Api from "../RedisStores.js"
import * as RedisBudget from "./budgetStore.js"
import * as RedisBreakers from "./circuitBreakerStore.js"
import * as RedisConcurrency from "./concurrencyStore.js"
import * as Connection from "./connection.js"
import * as RedisRateLimit from "./rateLimitStore.js"

/** @internal */
export const DEFAULT_KEY_PREFIX = "effect-inference:"

const DEFAULT_TIMEOUT = Duration.seconds(1)
const DEFAULT_RESERVATION_TTL = Duration.hours(1)
/** How long a breaker's entry lives unread and unwritten. */
const BREAKER_ENTRY_TTL = Duration.days(7)
/** How soon a rate limiter asks again while reservations of calls in flight stand in its way. */
const POLL_INTERVAL = Duration.millis(100)
/** How often an unavailable Redis is asked whether it is back. */
const PROBE_INTERVAL = Duration.millis(500)

// ---------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------

/** The options checked, with their defaults. */
interface Resolved {
  readonly url: Redacted.Redacted<string>
  readonly keyPrefix: string
  readonly onUnavailable: "local" | "fail"
  readonly timeout: Duration.Duration
  readonly reservationTtl: Duration.Duration
}

const isRedisUrl = (url: string): boolean => URL.canParse(url) && /^rediss?:$/.test(new URL(url).protocol)

const positiveDuration = (input: Duration.DurationInput | undefined, fallback: Duration.Duration) => {
  if (input === undefined) return Either.right(fallback)
  return Option.match(Duration.decodeUnknown(input), {
    onNone: () => Either.left(undefined),
    onSome: (duration) =>
      Duration.isFinite(duration) && Duration.greaterThan(duration, Duration.zero)
        ? Either.right(duration)
        : Either.left(undefined)
  })
}

/**
 * The options checked: a wrong one is a programming error, and stops the
 * program with a message naming it (never the URL, which may hold a
 * password).
 */
const resolve = (options: Api.Options): Effect.Effect<Resolved> => {
  const url = Redacted.isRedacted(options.url) ? options.url : Redacted.make(options.url)
  if (typeof Redacted.value(url) !== "string" || !isRedisUrl(Redacted.value(url))) {
    return Effect.dieMessage("RedisStores: url must be a redis:// or rediss:// URL")
  }
  const keyPrefix = options.keyPrefix ?? DEFAULT_KEY_PREFIX
  if (typeof keyPrefix !== "string") return Effect.dieMessage("RedisStores: keyPrefix must be a string")
  const onUnavailable = options.onUnavailable ?? "local"
  if (onUnavailable !== "local" && onUnavailable !== "fail") {
    return Effect.dieMessage("RedisStores: onUnavailable must be \"local\" or \"fail\"")
  }
  const timeout = positiveDuration(options.timeout, DEFAULT_TIMEOUT)
  if (Either.isLeft(timeout)) return Effect.dieMessage("RedisStores: timeout must be a finite duration above 0")
  const reservationTtl = positiveDuration(options.reservationTtl, DEFAULT_RESERVATION_TTL)
  if (Either.isLeft(reservationTtl)) {
    return Effect.dieMessage("RedisStores: reservationTtl must be a finite duration above 0")
  }
  return Effect.succeed({ url, keyPrefix, onUnavailable, timeout: timeout.right, reservationTtl: reservationTtl.right })
}

/** @internal */
export const config: Config.Config<Pick<Api.Options, "url" | "keyPrefix">> = Config.all({
  // A missing URL says so in words, and names the variable.
  url: Config.option(Config.redacted("REDIS_URL")).pipe(
    Config.mapOrFail(Option.match({
      onNone: () =>
        Either.left(
          ConfigError.MissingData(
            ["REDIS_URL"],
            "REDIS_URL is not set: set it to the Redis server's URL (redis://host:6379), or pass url"
          )
        ),
      onSome: (url) =>
        isRedisUrl(Redacted.value(url))
          ? Either.right(url)
          : Either.left(
            ConfigError.InvalidData(["REDIS_URL"], "REDIS_URL must be a redis:// or rediss:// URL")
          )
    }))
  ),
  keyPrefix: Config.string("REDIS_KEY_PREFIX").pipe(Config.option, Config.map(Option.getOrUndefined))
})

// ---------------------------------------------------------------------------
// Availability: one line when Redis goes, one when it is back
// ---------------------------------------------------------------------------

class Availability {
  private isDown = false

  constructor(readonly server: string, readonly onUnavailable: "local" | "fail") {}

  get down(): boolean {
    return this.isDown
  }

  /** Notes that Redis could not answer; logs it if it could until now. */
  wentDown(error: Connection.RedisError): Effect.Effect<void> {
    return Effect.suspend(() => {
      if (this.isDown) return Effect.void
      this.isDown = true
      return Effect.logWarning(
        this.onUnavailable === "local"
          ? "Redis is unavailable: the stores keep their state in this process's memory until it answers again"
          : "Redis is unavailable: store operations fail until it answers again"
      ).pipe(Effect.annotateLogs({ redis: this.server, error: error.detail }))
    })
  }

  /** Notes that Redis answered; logs it if it could not until now. */
  readonly cameBack: Effect.Effect<void> = Effect.suspend(() => {
    if (!this.isDown) return Effect.void
    this.isDown = false
    return Effect.logInfo(
      this.onUnavailable === "local"
        ? "Redis answers again: the stores are back on Redis"
        : "Redis answers again"
    ).pipe(Effect.annotateLogs({ redis: this.server }))
  })
}

/**
 * An operation on Redis, or, when Redis is unavailable, on memory ("local")
 * or failed with the store's error ("fail"); an error Redis answered fails
 * with the store's error in both modes. The one place a `RedisError` becomes
 * a store's error.
 */
const route = <A, E>(
  availability: Availability,
  onRedis: Effect.Effect<A, Connection.RedisError>,
  onMemory: Effect.Effect<A, E>,
  fail: (error: Connection.RedisError, rejectCall: boolean) => E
): Effect.Effect<A, E> =>
  Effect.suspend(() => {
    if (availability.onUnavailable === "local") {
      if (availability.down) return onMemory
      return Effect.catchAll(onRedis, (error) =>
        error.reason === "unavailable"
          ? Effect.zipRight(availability.wentDown(error), onMemory)
          : Effect.fail(fail(error, false)))
    }
    // "fail": the call that needed the answer fails too (`rejectCall`), rather than go on without the shared state.
    return Effect.matchEffect(onRedis, {
      onFailure: (error) =>
        Effect.zipRight(
          error.reason === "unavailable" ? availability.wentDown(error) : Effect.void,
          Effect.fail(fail(error, true))
        ),
      onSuccess: (a) => Effect.as(availability.cameBack, a)
    })
  })

/** What a store's error is made of. */
interface ErrorProps {
  readonly message: string
  readonly rejectCall: boolean
}

/** A store's error for `operation` on `key`, from what Redis said (which holds no password). */
const failWith =
  <E>(make: (props: ErrorProps) => E, operation: string, key: string) =>
  (error: Connection.RedisError, rejectCall: boolean): E =>
    make({ message: `${error.message} (${operation} on "${key}")`, rejectCall })

const concurrencyError = (props: ErrorProps) => new ConcurrencyStore.ConcurrencyStoreError(props)
const rateLimitError = (props: ErrorProps) => new RateLimitStore.RateLimitStoreError(props)
const budgetError = (props: ErrorProps) => new BudgetStore.BudgetStoreError(props)
const breakerError = (props: ErrorProps) => new CircuitBreakerStore.CircuitBreakerStoreError(props)

// ---------------------------------------------------------------------------
// The stores, each Redis first and memory when it is away
// ---------------------------------------------------------------------------

const concurrencyStore = (
  availability: Availability,
  redis: RedisConcurrency.RedisConcurrencyStore,
  memory: ConcurrencyStore.ConcurrencyStore.Service
): ConcurrencyStore.ConcurrencyStore.Service => {
  /** The leases memory granted, by key and lease id: they are renewed and released there. */
  const local = new Set<string>()
  const leaseOf = (key: string, leaseId: string) => JSON.stringify([key, leaseId])
  const acquireLocally = (options: Parameters<ConcurrencyStore.ConcurrencyStore.Service["tryAcquire"]>[0]) =>
    Effect.tap(memory.tryAcquire(options), (granted) => {
      if (granted) local.add(leaseOf(options.key, options.leaseId))
    })
  return {
    tryAcquire: (options) =>
      route(
        availability,
        redis.tryAcquire(options),
        acquireLocally(options),
        failWith(concurrencyError, "tryAcquire", options.key)
      ),
    renew: (options) => {
      const lease = leaseOf(options.key, options.leaseId)
      if (local.has(lease)) {
        return Effect.tap(memory.renew(options), (renewed) => {
          if (!renewed) local.delete(lease)
        })
      }
      return route(
        availability,
        redis.renew(options),
        Effect.succeed(true),
        failWith(concurrencyError, "renew", options.key)
      )
    },
    release: (options) => {
      const lease = leaseOf(options.key, options.leaseId)
      if (local.delete(lease)) return memory.release(options)
      return route(
        availability,
        redis.release(options),
        Effect.void,
        failWith(concurrencyError, "release", options.key)
      )
    },
    held: (key) => route(availability, redis.held(key), memory.held(key), failWith(concurrencyError, "held", key))
  }
}

const rateLimitStore = (
  availability: Availability,
  redis: RedisRateLimit.RedisRateLimitStore,
  memory: RateLimitStore.RateLimitStore.Service
): RateLimitStore.RateLimitStore.Service => ({
  admit: (options) =>
    route(
      availability,
      redis.admit(options),
      // Memory's ids, negated: a settlement names the store that holds its reservation.
      Effect.map(memory.admit(options), (admission) =>
        admission._tag === "Admitted" ? { _tag: "Admitted", id: -admission.id } : admission),
      failWith(rateLimitError, "admit", options.key)
    ),
  settle: (options) =>
    options.id < 0
      ? memory.settle({ ...options, id: -options.id })
      : route(availability, redis.settle(options), Effect.void, failWith(rateLimitError, "settle", options.key))
})

const budgetStore = (
  availability: Availability,
  redis: RedisBudget.RedisBudgetStore,
  memory: BudgetStore.BudgetStore.Service
): BudgetStore.BudgetStore.Service => {
  const nothing: BudgetStore.Amount = { usd: 0, tokens: 0 }
  const settle: BudgetStore.BudgetStore.Service["settle"] = (options) => {
    const spend = (id: number | undefined) =>
      route(
        availability,
        redis.settle({ ...options, id }),
        // The hold, if any, is on Redis, out of reach: it ends after `reservationTtl`. The spending counts here.
        memory.settle({ ...options, id: undefined }),
        failWith(budgetError, "settle", options.key)
      )
    if (options.id === undefined || options.id > 0) return spend(options.id)
    // A hold memory made: given back there; the spending goes where the budget is now.
    const id = -options.id
    return Effect.suspend(() =>
      availability.down && availability.onUnavailable === "local"
        ? memory.settle({ ...options, id })
        : Effect.zipRight(memory.settle({ ...options, id, used: nothing }), spend(undefined))
    )
  }
  return {
    reserve: (options) =>
      route(
        availability,
        redis.reserve(options),
        Effect.map(memory.reserve(options), (decision) =>
          decision._tag === "Held" ? { _tag: "Held", id: -decision.id } : decision),
        failWith(budgetError, "reserve", options.key)
      ),
    settle,
    status: (options) =>
      route(availability, redis.status(options), memory.status(options), failWith(budgetError, "status", options.key))
  }
}

const circuitBreakerStore = (
  availability: Availability,
  redis: RedisBreakers.RedisCircuitBreakerStore,
  memory: CircuitBreakerStore.CircuitBreakerStore.Service
): CircuitBreakerStore.CircuitBreakerStore.Service => ({
  get: (key) => route(availability, redis.get(key), memory.get(key), failWith(breakerError, "get", key)),
  compareAndSet: (key, expectedVersion, state) =>
    route(
      availability,
      redis.compareAndSet(key, expectedVersion, state),
      memory.compareAndSet(key, expectedVersion, state),
      failWith(breakerError, "compareAndSet", key)
    )
})

// ---------------------------------------------------------------------------
// Constructors
// ---------------------------------------------------------------------------

/** @internal */
export const make = (options: Api.Options): Effect.Effect<Api.RedisStores, never, Scope.Scope> =>
  Effect.gen(function*() {
    const resolved = yield* resolve(options)
    const connection = yield* Connection.make({
      url: resolved.url,
      keyPrefix: resolved.keyPrefix,
      timeout: resolved.timeout
    })
    const availability = new Availability(connection.server, resolved.onUnavailable)
    // A server down at startup is no error: the stores start in memory (or failing), and the probe finds it later.
    yield* Effect.catchAll(connection.ready, (error) => availability.wentDown(error))
    yield* Effect.forkScoped(
      Effect.repeat(
        Effect.suspend(() =>
          availability.down ? Effect.ignore(Effect.zipRight(connection.ping, availability.cameBack)) : Effect.void
        ),
        Schedule.spaced(PROBE_INTERVAL)
      )
    )
    // The server's time, always: only the tests give the scripts one.
    const now = Effect.succeed("")
    const holdMillis = Duration.toMillis(resolved.reservationTtl)
    return {
      concurrency: concurrencyStore(
        availability,
        RedisConcurrency.make(connection, now),
        yield* ConcurrencyStore.makeMemory
      ),
      rateLimit: rateLimitStore(
        availability,
        RedisRateLimit.make(connection, now, { holdMillis, pollMillis: Duration.toMillis(POLL_INTERVAL) }),
        yield* RateLimitStore.makeMemory
      ),
      budget: budgetStore(
        availability,
        RedisBudget.make(connection, now, { holdMillis }),
        yield* BudgetStore.makeMemory
      ),
      circuitBreaker: circuitBreakerStore(
        availability,
        RedisBreakers.make(connection, { entryMillis: Duration.toMillis(BREAKER_ENTRY_TTL) }),
        yield* CircuitBreakerStore.makeMemory
      )
    }
  })

/** The four stores as the services of their tags. */
const toContext = (stores: Api.RedisStores) =>
  Context.make(ConcurrencyStore.ConcurrencyStore, stores.concurrency).pipe(
    Context.add(RateLimitStore.RateLimitStore, stores.rateLimit),
    Context.add(BudgetStore.BudgetStore, stores.budget),
    Context.add(CircuitBreakerStore.CircuitBreakerStore, stores.circuitBreaker)
  )

/** @internal */
export const layer = (options: Api.Options): Layer.Layer<Api.Stores> =>
  Layer.scopedContext(Effect.map(make(options), toContext))

/** @internal */
export const layerConfig = (
  options?: Omit<Api.Options, "url" | "keyPrefix">
): Layer.Layer<Api.Stores, ConfigError.ConfigError> =>
  Layer.scopedContext(Effect.flatMap(config, (fromEnv) => Effect.map(make({ ...options, ...fromEnv }), toContext)))
