/**
 * A circuit breaker for inference calls: after repeated failures that say the
 * service is unhealthy, calls fail at once (`CircuitOpenError`) instead of
 * piling onto a failing endpoint, until a break has passed and probe calls show
 * it has recovered.
 *
 * Effect has no circuit breaker, and the well-known Node ones (opossum,
 * cockatiel) move state on timers, allow one probe when half-open and cannot be
 * tested deterministically; this one reads Effect's `Clock` lazily, so
 * `TestClock` tests are exact, and backs off repeated trips with a `Schedule`.
 *
 * A breaker keeps its state in the `CircuitBreakerStore` in context, if there
 * is one (breakers of the same key over one store are one breaker, across
 * processes for a store on a server), and otherwise in memory of its own.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import type * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Metric from "effect/Metric"
import type * as Queue from "effect/Queue"
import type * as Schedule from "effect/Schedule"
import type * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import type * as Stream from "effect/Stream"
import type { CircuitOpenError, CoordinationError, InferenceError } from "./InferenceError.js"
import * as internal from "./internal/circuitBreaker.js"

/**
 * @since 0.1.0
 * @category models
 */
export const State: Schema.Literal<["closed", "open", "half-open"]> = internal.State

/**
 * @since 0.1.0
 * @category models
 */
export type State = typeof State.Type

/**
 * How a breaker trips and recovers. Every field has a default.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** Trip after this many counted failures in a row. Default 5; `false` turns the rule off. */
  readonly consecutiveFailures?: number | false | undefined
  /**
   * Trip when, among the last `window` calls (at least `minimumCalls` of them),
   * the share of counted failures reaches `threshold`. Default: 50% of the last
   * 20 calls, once 10 have been made; `false` turns the rule off.
   */
  readonly failureRate?:
    | { readonly threshold: number; readonly window: number; readonly minimumCalls: number }
    | false
    | undefined
  /**
   * How long the breaker stays open after each trip in a row: a fixed duration,
   * or a `Schedule` stepped once per trip (reset when the breaker closes), so that
   * repeated trips back off. Default: 10 s doubling to at most 2 minutes.
   */
  readonly breakDuration?: Duration.DurationInput | Schedule.Schedule<unknown, unknown> | undefined
  /** Probe calls let through when half-open; all must succeed to close it. Default 2. */
  readonly halfOpenProbes?: number | undefined
  /**
   * Which failures count. Default (`isServiceFailure`): `ConnectionError`,
   * `TimeoutError`, `InternalServerError` and `ServiceUnavailableError`. Client
   * errors (4xx, invalid requests, quota) and rate limits (429: busy, not
   * broken) never trip a breaker. A failure that does not count leaves the
   * counts as they were: it neither adds a failure nor breaks a run of them.
   */
  readonly isFailure?: ((error: InferenceError) => boolean) | undefined
}

/**
 * A change of state, as published on `events` and counted in the metrics.
 *
 * @since 0.1.0
 * @category models
 */
export const StateChange: typeof internal.StateChange = internal.StateChange

/**
 * @since 0.1.0
 * @category models
 */
export type StateChange = internal.StateChange

/**
 * The whole state of a breaker, serialisable with Schema, so that it can be
 * saved and restored or shared.
 *
 * @since 0.1.0
 * @category models
 */
export const Snapshot: typeof internal.Snapshot = internal.Snapshot

/**
 * @since 0.1.0
 * @category models
 */
export type Snapshot = internal.Snapshot

/**
 * One breaker.
 *
 * @since 0.1.0
 * @category models
 */
export interface CircuitBreaker {
  readonly key: string
  /**
   * Runs the effect if the breaker lets it through, and records its outcome;
   * otherwise fails at once with `CircuitOpenError`. A `CircuitBreakerStore`
   * that cannot answer and says `rejectCall` fails it with `CoordinationError`.
   */
  readonly withBreaker: <A, E extends InferenceError, R>(
    effect: Effect.Effect<A, E, R>
  ) => Effect.Effect<A, E | CircuitOpenError | CoordinationError, R>
  /** The state now (an open breaker whose break has passed reads as half-open). */
  readonly state: Effect.Effect<State>
  readonly snapshot: Effect.Effect<Snapshot>
  /** Replaces the state with a saved one (its key is ignored). */
  readonly restore: (snapshot: Snapshot) => Effect.Effect<void>
  /** Holds the breaker open until `reset`. */
  readonly isolate: Effect.Effect<void>
  /** Closes the breaker and forgets its history. */
  readonly reset: Effect.Effect<void>
  /** The state changes from when the stream starts. */
  readonly events: Stream.Stream<StateChange>
  /** A queue of the state changes from now on, for as long as the scope lasts (nothing is missed). */
  readonly subscribe: Effect.Effect<Queue.Dequeue<StateChange>, never, Scope.Scope>
}

/**
 * Makes one breaker, over the `CircuitBreakerStore` in context or else a
 * memory store of its own.
 *
 * @example
 * ```ts
 * import { CircuitBreaker, InferenceError } from "@effect-inference/client"
 * import { Effect } from "effect"
 * import { strictEqual } from "node:assert"
 *
 * const program = Effect.gen(function*() {
 *   // Three counted failures in a row open it for 30 seconds.
 *   const breaker = yield* CircuitBreaker.make("my-endpoint", { consecutiveFailures: 3, breakDuration: "30 seconds" })
 *   const failing = Effect.fail(new InferenceError.ServiceUnavailableError({ status: 503 }))
 *   for (let i = 0; i < 3; i++) yield* Effect.either(breaker.withBreaker(failing))
 *   return yield* breaker.state
 * })
 *
 * strictEqual(Effect.runSync(program), "open")
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (key: string, options?: Options): Effect.Effect<CircuitBreaker> => internal.make(key, options)

/**
 * The breakers of a client, one per key (base URL and model), made on first use
 * with the same options.
 *
 * @since 0.1.0
 * @category models
 */
export interface Registry {
  readonly get: (key: string) => Effect.Effect<CircuitBreaker>
  /** The breakers made so far. */
  readonly all: Effect.Effect<ReadonlyArray<CircuitBreaker>>
  /** The state changes of every breaker of the registry. */
  readonly events: Stream.Stream<StateChange>
  /** A queue of every breaker's state changes from now on, for as long as the scope lasts. */
  readonly subscribe: Effect.Effect<Queue.Dequeue<StateChange>, never, Scope.Scope>
}

/**
 * Makes a registry of breakers sharing `options`, over the
 * `CircuitBreakerStore` in context or else one memory store of its own.
 *
 * @example
 * ```ts
 * import { CircuitBreaker, InferenceClient } from "@effect-inference/client"
 * import { Effect } from "effect"
 *
 * const program = Effect.gen(function*() {
 *   const breakers = yield* CircuitBreaker.makeRegistry({ halfOpenProbes: 1 })
 *   // Made on first use, with the registry's options; the same key gives the same breaker.
 *   const breaker = yield* breakers.get(CircuitBreaker.key(InferenceClient.DEFAULT_BASE_URL, "meta-llama/Llama-3.1-8B-Instruct"))
 *   return yield* breaker.state
 * })
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeRegistry = (options?: Options): Effect.Effect<Registry> => internal.makeRegistry(options)

/**
 * The registry a client uses. Provide `CircuitBreaker.layer(options)` to reach
 * the client's breakers (to read their state, `isolate` or `reset` them, or
 * watch their events); without it, each client makes a registry of its own from
 * its `circuitBreaker` option.
 *
 * @since 0.1.0
 * @category tags
 */
export class Breakers extends Context.Tag("@effect-inference/client/CircuitBreaker/Breakers")<Breakers, Registry>() {}

/**
 * A registry of breakers as a `Layer`, shared by every client built with it.
 *
 * @example
 * ```ts
 * import { CircuitBreaker, InferenceClient } from "@effect-inference/client"
 * import { Effect, Layer, Stream } from "effect"
 *
 * // One registry for the application, so that it can watch (or reset) the client's breakers.
 * const InferenceLive = InferenceClient.layerConfig().pipe(
 *   Layer.provideMerge(CircuitBreaker.layer({ consecutiveFailures: 3 }))
 * )
 *
 * const logChanges = Effect.flatMap(CircuitBreaker.Breakers, (breakers) =>
 *   Stream.runForEach(breakers.events, (change) => Effect.logWarning(`${change.key}: ${change.from} -> ${change.to}`)))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options?: Options): Layer.Layer<Breakers> => Layer.effect(Breakers, makeRegistry(options))

/**
 * The breakers' metrics, each tagged with `breaker` (its key):
 * `inference_circuit_breaker_transitions` (a counter, also tagged `from` and
 * `to`), `inference_circuit_breaker_rejected` (calls failed fast) and
 * `inference_circuit_breaker_state` (a gauge: 0 closed, 1 half-open, 2 open).
 *
 * @since 0.1.0
 * @category metrics
 */
export const metrics: {
  transitions: Metric.Metric.Counter<number>
  rejected: Metric.Metric.Counter<number>
  state: Metric.Metric.Gauge<number>
} = internal.metrics

/**
 * The key of the breaker for a base URL and a model.
 *
 * @since 0.1.0
 * @category constructors
 */
export const key = (baseUrl: string, model: string): string => `${baseUrl} ${model}`

/**
 * The default rule of what counts as a failure: the errors that say the
 * service is unhealthy (`ConnectionError`, `TimeoutError`,
 * `InternalServerError`, `ServiceUnavailableError`). A `RateLimitError` is not
 * one (since 0.2.0): a 429 says the service is busy, not broken.
 *
 * @example
 * ```ts
 * import { CircuitBreaker } from "@effect-inference/client"
 *
 * // Count 429s as well (they are left out by default: busy is not broken).
 * const BreakersLive = CircuitBreaker.layer({
 *   isFailure: (error) => CircuitBreaker.isServiceFailure(error) || error._tag === "RateLimitError"
 * })
 * ```
 *
 * @since 0.1.0
 * @category predicates
 */
export const isServiceFailure = (error: InferenceError): boolean => internal.isServiceFailure(error)
