/**
 * The client's four stores on Redis, so that several processes share one
 * concurrency limit, one rate limit, one budget and one breaker per model:
 * `ConcurrencyStore`, `RateLimitStore`, `BudgetStore` and
 * `CircuitBreakerStore` from `@effect-inference/client`, provided together by
 * one layer over one connection.
 *
 * Each operation is one Lua script, run atomically by the server, that makes
 * the same decision as the client's memory store (the contract's reference):
 * the same rule step for step, on the same numbers. The time is the server's
 * (`TIME`, read inside the script), so the processes agree on when a lease, a
 * charge or a period ends whatever their own clocks say. (A breaker's state
 * carries times from the clock of the process that wrote it, as the
 * `CircuitBreakerStore` contract says.)
 *
 * ## Keys
 *
 * Every key is `keyPrefix` (default `effect-inference:`), the store's name
 * and the key the client gives (which names the endpoint and the project, and
 * the model for a breaker):
 *
 * | key | type | what |
 * |---|---|---|
 * | `concurrency:<key>` | sorted set | the leases: lease id, scored by its expiry |
 * | `rate-limit:<key>` | hash | the windows' sums, the reservations, the next id |
 * | `rate-limit-requests:<key>`, `rate-limit-tokens:<key>` | list | each window's charges, oldest first |
 * | `rate-limit-holds:<key>` | sorted set | each reservation, scored by when it is given back if never settled |
 * | `budget:<key>` | hash | the period, what is spent and held, the thresholds fired, the holds |
 * | `budget-holds:<key>` | sorted set | each hold, scored by when it is given back if never settled |
 * | `circuit-breaker:<key>` | hash | the breaker's state (JSON) and its version |
 *
 * ## How long keys live
 *
 * Nothing lives for ever but a budget without a period. A lease set lives
 * until its latest lease expires; a rate limit's keys as long as their latest
 * charge counts or reservation is held, and at least one interval; a budget
 * until the end of the period after the current one (the budget persists
 * across restarts, and one idle for less than a period keeps the start of
 * its periods), and as long as a hold lasts; each of these a minute more,
 * as every script drops what expired by the time it runs, and an expiry only
 * collects what nobody uses. A breaker's entry lives 7 days after it was last
 * read or written. A reservation or hold that is never settled (its process
 * died) is given back after `reservationTtl`. A budget without a period has
 * no end to outlive: it is kept until it is deleted, as expiring it would
 * give its whole limit back.
 *
 * ## When Redis cannot answer
 *
 * No operation waits for ever: the client (ioredis) fails a command at once
 * while it is disconnected, never sends one twice, and gives each `timeout`
 * at most; it reconnects in the background. What an operation that got no
 * answer does is `onUnavailable`:
 *
 * - `"local"` (the default): it runs on a memory store of this process
 *   instead, and so does every operation until Redis answers a probe again;
 *   then they are on Redis again. One warning is logged when Redis goes away
 *   and one line when it is back. Meanwhile each process keeps its own
 *   limits, breakers and budgets (a budget in memory starts from nothing
 *   spent), as a process with no store would.
 * - `"fail"`: it fails with the store's own error (`ConcurrencyStoreError`,
 *   `RateLimitStoreError`, `BudgetStoreError`, `CircuitBreakerStoreError`),
 *   whose message names Redis and the failure (never the password), marked
 *   `rejectCall`: the call that needed the answer then fails with
 *   `CoordinationError` before anything is sent (see docs/scale-out.md).
 *
 * An operation that got no answer in time may still have run on the server
 * (its command was sent): what it took ends as if its process had died, a
 * lease when it expires, a reservation or hold after `reservationTtl`, a
 * charge after its interval. Nothing is ever sent twice, so nothing counts
 * twice.
 *
 * In both modes the layer is built whether Redis answers or not: a server
 * that is down at startup (a deployment that starts the application before
 * Redis) is the same outage as one later, not a reason to stop the program;
 * under `"fail"` the operations fail until it answers. An error Redis answers
 * with (a key of another type under the prefix, say) fails with the store's
 * error in both modes.
 *
 * Needs Redis 5 or later (or a server that runs Redis's Lua scripts and
 * `TIME` in them), one server or a primary with replicas; Redis Cluster is
 * not supported, as a rate limit's and a budget's keys are not in one slot.
 *
 * @since 0.2.0
 */
import type * as BudgetStore from "@effect-inference/client/BudgetStore"
import type * as CircuitBreakerStore from "@effect-inference/client/CircuitBreakerStore"
import type * as ConcurrencyStore from "@effect-inference/client/ConcurrencyStore"
import type * as RateLimitStore from "@effect-inference/client/RateLimitStore"
import type * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import type * as Duration from "effect/Duration"
import type * as Effect from "effect/Effect"
import type * as Layer from "effect/Layer"
import type * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import * as internal from "./internal/redisStores.js"

/**
 * Where the stores are, and what they do when Redis cannot answer.
 *
 * @since 0.2.0
 * @category models
 */
export interface Options {
  /**
   * The server: `redis://[[user]:password@]host[:port][/db]`, or `rediss://`
   * for TLS. Redacted or not, it never reaches a log line or an error
   * message.
   */
  readonly url: string | Redacted.Redacted<string>
  /**
   * Put before every key, so that several applications (or environments)
   * can share one server. Default `"effect-inference:"`.
   */
  readonly keyPrefix?: string | undefined
  /**
   * What an operation does when Redis does not answer: run on a memory store
   * of this process (`"local"`, the default) or fail with the store's error
   * (`"fail"`).
   */
  readonly onUnavailable?: "local" | "fail" | undefined
  /** The most a Redis operation may take before it counts as unanswered. Default 1 second. */
  readonly timeout?: Duration.DurationInput | undefined
  /**
   * How long a rate-limit reservation or a budget hold stays when its call is
   * never settled (its process died): far above the longest call. Default 1 hour.
   */
  readonly reservationTtl?: Duration.DurationInput | undefined
}

/**
 * The four store services, as `make` returns them.
 *
 * @since 0.2.0
 * @category models
 */
export interface RedisStores {
  readonly concurrency: ConcurrencyStore.ConcurrencyStore.Service
  readonly rateLimit: RateLimitStore.RateLimitStore.Service
  readonly budget: BudgetStore.BudgetStore.Service
  readonly circuitBreaker: CircuitBreakerStore.CircuitBreakerStore.Service
}

/**
 * The tags `layer` provides.
 *
 * @since 0.2.0
 * @category models
 */
export type Stores =
  | ConcurrencyStore.ConcurrencyStore
  | RateLimitStore.RateLimitStore
  | BudgetStore.BudgetStore
  | CircuitBreakerStore.CircuitBreakerStore

/**
 * Makes the four stores over one connection, closed with the scope. Invalid
 * options (a URL that is not `redis://` or `rediss://`, a timeout that is not
 * above 0) stop the program with a message naming the option, as they are a
 * programming error; a server that does not answer is no error (see "When
 * Redis cannot answer" above).
 *
 * @example
 * ```ts
 * import { RedisStores } from "@effect-inference/redis"
 * import { BudgetStore, UsageTracker } from "@effect-inference/client"
 * import { Effect } from "effect"
 *
 * // Only the budget on Redis, for one tracker: the other stores stay in memory.
 * export const tracker = Effect.gen(function*() {
 *   const stores = yield* RedisStores.make({ url: "redis://localhost:6379" })
 *   return yield* UsageTracker.make({ budget: { usd: 25, period: "30 days" } }).pipe(
 *     Effect.provideService(BudgetStore.BudgetStore, stores.budget)
 *   )
 * })
 * ```
 *
 * @since 0.2.0
 * @category constructors
 */
export const make: (options: Options) => Effect.Effect<RedisStores, never, Scope.Scope> = internal.make

/**
 * The four stores as one `Layer`, over one connection closed with the layer:
 * every client, limiter, tracker and breaker built where it is provided keeps
 * its state on Redis, shared with every process that uses the same server and
 * key prefix.
 *
 * @example
 * ```ts
 * import { RedisStores } from "@effect-inference/redis"
 * import { InferenceClient } from "@effect-inference/client"
 * import { Layer, Redacted } from "effect"
 *
 * // Every replica of the service keeps to one limit of 8 requests in flight and one daily budget of $5.
 * const Client = InferenceClient.layer({
 *   apiKey: Redacted.make("my-key"),
 *   project: "team/project",
 *   maxConcurrency: 8,
 *   usage: { budget: { usd: 5, period: "1 day" } }
 * })
 *
 * export const Live = Client.pipe(
 *   Layer.provide(RedisStores.layer({ url: Redacted.make("redis://:secret@redis.internal:6379") }))
 * )
 * ```
 *
 * @since 0.2.0
 * @category layers
 */
export const layer: (options: Options) => Layer.Layer<Stores> = internal.layer

/**
 * The settings read from `Config`: `REDIS_URL` (required, redacted) and
 * `REDIS_KEY_PREFIX` (optional).
 *
 * @since 0.2.0
 * @category config
 */
export const config: Config.Config<Pick<Options, "url" | "keyPrefix">> = internal.config

/**
 * The stores as a `Layer` configured from the environment (see
 * {@link config}); it fails with a `ConfigError` naming `REDIS_URL` when that
 * is not set. The other options are given here.
 *
 * @example
 * ```ts
 * import { RedisStores } from "@effect-inference/redis"
 *
 * // REDIS_URL (and REDIS_KEY_PREFIX, if set) from the environment; fail rather than run on memory.
 * export const Stores = RedisStores.layerConfig({ onUnavailable: "fail", timeout: "500 millis" })
 * ```
 *
 * @since 0.2.0
 * @category layers
 */
export const layerConfig: (
  options?: Omit<Options, "url" | "keyPrefix">
) => Layer.Layer<Stores, ConfigError.ConfigError> = internal.layerConfig
