/**
 * Where the policies of a call are put in their order, once, for plain calls
 * and streams alike. From the outside in:
 *
 * 1. **Response cache** (`withCache` in completion.ts, `cachedStream` in
 *    stream.ts): outside everything else, so that a hit takes no budget, no
 *    slot, no rate-limit permit and does not touch a breaker.
 * 2. **Budget** (`withUsage`, usage.ts): around fallback, so that one
 *    reservation covers whichever model answers (priced at the dearest), and
 *    `BudgetExceededError` never moves a call to another model; the usage record
 *    is written however the call ends.
 * 3. **Total timeout** (`withTotalTimeout`, timeout.ts): around fallback and
 *    retries, so that it bounds every model, attempt and wait.
 * 4. **Fallback** (`withFallback`, fallback.ts): outside retries, so that each
 *    model has its own retries first, and its own breaker.
 * 5. **Retry** (`withRetry`, retryPolicy.ts), in a span per model: outside the
 *    slot, so that a call waiting out its backoff holds no slot.
 * 6. **Adaptive concurrency** (`withAdaptiveLimit`, adaptiveConcurrency.ts): per
 *    attempt, the model's own limit, outside the client's slot, so that a call
 *    waiting for a model whose limit is full holds no slot that calls to other
 *    models could use; it sees how each attempt ends (a 429 lowers the limit).
 *    Then the **concurrency slot** (`withSlot`): outside the breaker, so that a
 *    half-open probe never waits in the queue while it holds a probe place.
 * 7. **Circuit breaker** (`withBreaker`): inside the retry, so that every attempt
 *    is counted and `CircuitOpenError` is not retried.
 * 8. **Rate limit** (`withRateLimit`): inside the slot and the breaker, so that a
 *    request is charged when it is really sent; outside the attempt timeout, as
 *    waiting for quota is not the server's fault.
 * 9. **Attempt timeout** (`withAttemptTimeout`, timeout.ts): around the HTTP
 *    exchange only: `timeout` for a plain call, `firstChunkTimeout` for a stream
 *    until its first content.
 *
 * The policies of an attempt (6 to 9) are the same for both; what they take
 * (the slot, the permit) a plain call holds while its attempt runs, and a
 * stream holds in its attempt's scope, kept open past its first content, so
 * that the slot and the permit live exactly as long as the stream (`Hold`).
 */
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import { dual } from "effect/Function"
import * as Option from "effect/Option"
import * as Scope from "effect/Scope"
import * as CircuitBreaker from "../CircuitBreaker.js"
import * as InferenceError from "../InferenceError.js"
import type * as RateLimit from "../RateLimit.js"
import type * as AdaptiveConcurrency from "./adaptiveConcurrency.js"
import type * as classify from "./classify.js"
import type { CallState, Environment } from "./environment.js"
import { attemptContext } from "./environment.js"
import * as fallback from "./fallback.js"
import * as request from "./request.js"
import * as retryPolicy from "./retryPolicy.js"
import type * as Slots from "./slots.js"
import * as timeout from "./timeout.js"

/**
 * How long what an attempt takes (its slot, its rate-limit permit) is held:
 * while the attempt runs (a plain call: given back when its effect ends), or
 * until `scope` closes (a stream: the attempt's scope, kept open past its first
 * content for as long as the stream).
 *
 * A plain call does not get a scope of its own for this: `Effect.scoped` costs
 * about 4 µs of CPU per use, and `Effect.retry`'s driver as much again (a loop
 * of `Effect.forEach(…, { concurrency: 64 })` over each, against a bare
 * `Effect.succeed`), which together were a tenth of a call's own cost
 * (`pnpm --filter @effect-inference/benchmarks overhead`).
 *
 * @internal
 */
export type Hold = Scope.Scope | "attempt"

/**
 * Holds a concurrency slot for `self`. Waiting for one stays interruptible;
 * once taken, it is given back when `self` ends, or when `hold` (a scope) closes.
 * A store that cannot answer fails the attempt with `CoordinationError`.
 *
 * @internal
 */
export const withSlot: {
  (
    slots: Slots.Permits | undefined,
    hold: Hold
  ): <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E | InferenceError.CoordinationError, R>
  <A, E, R>(
    self: Effect.Effect<A, E, R>,
    slots: Slots.Permits | undefined,
    hold: Hold
  ): Effect.Effect<A, E | InferenceError.CoordinationError, R>
} = dual(
  3,
  <A, E, R>(
    self: Effect.Effect<A, E, R>,
    slots: Slots.Permits | undefined,
    hold: Hold
  ): Effect.Effect<A, E | InferenceError.CoordinationError, R> =>
    slots === undefined
      ? self
      : hold === "attempt"
      ? slots.withPermit(self)
      : Effect.zipRight(slots.takeIn(hold), self)
)

/**
 * Holds one of `model`'s adaptive permits for `self`, as `withSlot` holds a
 * slot; how `self` ends adapts the model's limit. The model list (no model)
 * has no adaptive limit.
 *
 * @internal
 */
export const withAdaptiveLimit: {
  (
    adaptive: AdaptiveConcurrency.AdaptiveLimits | undefined,
    model: string | undefined,
    hold: Hold
  ): <A, R>(
    self: Effect.Effect<A, InferenceError.InferenceError, R>
  ) => Effect.Effect<A, InferenceError.InferenceError, R>
  <A, R>(
    self: Effect.Effect<A, InferenceError.InferenceError, R>,
    adaptive: AdaptiveConcurrency.AdaptiveLimits | undefined,
    model: string | undefined,
    hold: Hold
  ): Effect.Effect<A, InferenceError.InferenceError, R>
} = dual(4, <A, R>(
  self: Effect.Effect<A, InferenceError.InferenceError, R>,
  adaptive: AdaptiveConcurrency.AdaptiveLimits | undefined,
  model: string | undefined,
  hold: Hold
): Effect.Effect<A, InferenceError.InferenceError, R> =>
  adaptive === undefined || model === undefined ? self : adaptive.withPermit(self, model, hold))

/**
 * Runs `self` through the breaker of this endpoint and model (`"(models)"` for
 * the model list): an open breaker fails at once with `CircuitOpenError`, named
 * after the model.
 *
 * @internal
 */
export const withBreaker: {
  (
    breakers: CircuitBreaker.Registry | undefined,
    baseUrl: string,
    model: string | undefined
  ): <A, R>(
    self: Effect.Effect<A, InferenceError.InferenceError, R>
  ) => Effect.Effect<A, InferenceError.InferenceError, R>
  <A, R>(
    self: Effect.Effect<A, InferenceError.InferenceError, R>,
    breakers: CircuitBreaker.Registry | undefined,
    baseUrl: string,
    model: string | undefined
  ): Effect.Effect<A, InferenceError.InferenceError, R>
} = dual(4, <A, R>(
  self: Effect.Effect<A, InferenceError.InferenceError, R>,
  breakers: CircuitBreaker.Registry | undefined,
  baseUrl: string,
  model: string | undefined
): Effect.Effect<A, InferenceError.InferenceError, R> =>
  breakers === undefined ? self : Effect.flatMap(
    breakers.get(CircuitBreaker.key(baseUrl, model ?? "(models)")),
    (breaker) =>
      Effect.mapError(breaker.withBreaker(self), (error) =>
        error._tag === "CircuitOpenError" && model !== undefined
          ? new InferenceError.CircuitOpenError({ ...error, model })
          : error)
  ))

/**
 * What an attempt is charged in the rate limits.
 *
 * @internal
 */
export interface Charge<A> {
  readonly limiter: RateLimit.RateLimit | undefined
  /** The tokens reserved before the request is sent. */
  readonly estimatedTokens: number
  /** The tokens it used, from how it ended (`undefined`: the estimate). */
  readonly actualTokens: (exit: Exit.Exit<A, InferenceError.InferenceError>) => number | undefined
  /**
   * A stream's: given the permit, and a success leaves it open, to be settled
   * from the usage chunk (or with its reservation when the stream's scope closes).
   */
  readonly keep?: ((permit: RateLimit.Permit) => void) | undefined
}

/**
 * Waits for room in the rate limits, then runs `self` holding its permit,
 * settled when `self` ends (or, for a stream's success, left open in `hold`).
 *
 * @internal
 */
export const withRateLimit: {
  <A>(
    charge: Charge<A>,
    hold: Hold
  ): <R>(
    self: Effect.Effect<A, InferenceError.InferenceError, R>
  ) => Effect.Effect<A, InferenceError.InferenceError, R>
  <A, R>(
    self: Effect.Effect<A, InferenceError.InferenceError, R>,
    charge: Charge<A>,
    hold: Hold
  ): Effect.Effect<A, InferenceError.InferenceError, R>
} = dual(3, <A, R>(
  self: Effect.Effect<A, InferenceError.InferenceError, R>,
  { actualTokens, estimatedTokens, keep, limiter }: Charge<A>,
  hold: Hold
): Effect.Effect<A, InferenceError.InferenceError, R> =>
  limiter === undefined
    ? self
    : hold === "attempt"
    ? limiter.withLimit(self, { estimatedTokens, actualTokens })
    : Effect.flatMap(Scope.extend(limiter.acquire(estimatedTokens), hold), (permit) => {
      keep?.(permit)
      return Effect.onExit(
        self,
        (exit) => keep !== undefined && Exit.isSuccess(exit) ? Effect.void : permit.settle(actualTokens(exit))
      )
    }))

/**
 * The policies of one attempt, in their order: the adaptive limit, the slot, the breaker, the rate
 * limit, the attempt timeout, around `self` (the exchange); what it takes is
 * held as `hold` says.
 *
 * @internal
 */
export const attempt = <A, R>(
  self: Effect.Effect<A, InferenceError.InferenceError, R>,
  env: Environment,
  context: classify.CallContext,
  bound: Pick<timeout.AttemptBound, "duration" | "phase">,
  charge: Omit<Charge<A>, "limiter">,
  hold: Hold
): Effect.Effect<A, InferenceError.InferenceError, R> =>
  self.pipe(
    timeout.withAttemptTimeout({ ...bound, model: context.model, attempt: context.attempt, deadline: env.deadline }),
    withRateLimit({ ...charge, limiter: env.limiter }, hold),
    withBreaker(env.breakers, env.options.baseUrl, context.model),
    withSlot(env.slots, hold),
    withAdaptiveLimit(env.adaptive, context.model, hold)
  )

/**
 * One model's attempts, retried by the policy, with the header redaction of a
 * call and, with a tracer and a `spanName`, in a span with the model, the
 * attempts and the outcome (a stream has one span around all of it instead).
 * `run` is given each attempt's context.
 *
 * @internal
 */
export const retried = <A, R>(
  env: Environment,
  call: CallState,
  spanName: string | undefined,
  model: string | undefined,
  run: (context: classify.CallContext) => Effect.Effect<A, InferenceError.InferenceError, R>
): Effect.Effect<A, InferenceError.InferenceError, R> =>
  Effect.suspend(() => {
    let attempts = 0
    const attempts$ = retryPolicy.withRetry(
      Effect.suspend(() => run(attemptContext(env, call, model, ++attempts))),
      env.retry
    )
    return request.inCall(
      env.tracing && spanName !== undefined
        ? attempts$.pipe(
          Effect.onExit((exit) =>
            Effect.annotateCurrentSpan({
              "inference.attempts": attempts,
              "inference.outcome": exit._tag === "Success"
                ? "success"
                : Option.match(Cause.failureOption(exit.cause), {
                  onNone: () => "interrupted",
                  onSome: (e) => e._tag
                })
            })
          ),
          Effect.withSpan(spanName, {
            kind: "client",
            attributes: model === undefined ? {} : { "inference.model": model }
          })
        )
        : attempts$,
      env.tracing,
      !env.deadline
    )
  })

/**
 * A whole call: each of its models in turn (`retried` by `perModel`), bounded by
 * the total timeout.
 *
 * @internal
 */
export const call = <A, R>(
  env: Environment,
  call: CallState,
  primary: string,
  perModel: (model: string) => Effect.Effect<A, InferenceError.InferenceError, R>
): Effect.Effect<A, InferenceError.InferenceError, R> =>
  timeout.withTotalTimeout(
    fallback.withFallback(perModel, {
      models: fallback.modelsOf(primary, env.options.fallback),
      fallbackOn: env.options.fallbackOn
    }),
    env.options.totalTimeout,
    call
  )
