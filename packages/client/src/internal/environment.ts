/**
 * What a client is built from, once, when its layer is built: the checked
 * options, the shaped `HttpClient`, and the optional services every call uses
 * (breakers, rate limiter, concurrency slots, usage tracker, response cache).
 *
 * Every optional service follows one rule of precedence: `false` turns it off;
 * options given to the client build the client's own; left out, the service
 * in context is used, if there is one; otherwise a default (a breaker registry
 * and a usage tracker with default options; no rate limiter and no cache,
 * which need options or a layer to mean anything). The stores that keep the
 * services' state come from context, or are in memory.
 */
import * as HttpClient from "@effect/platform/HttpClient"
import type * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import type * as Schedule from "effect/Schedule"
import * as CircuitBreaker from "../CircuitBreaker.js"
import type * as InferenceClient from "../InferenceClient.js"
import type * as InferenceError from "../InferenceError.js"
import * as RateLimit from "../RateLimit.js"
import * as ResponseCache from "../ResponseCache.js"
import * as UsageTracker from "../UsageTracker.js"
import * as AdaptiveConcurrency from "./adaptiveConcurrency.js"
import type * as classify from "./classify.js"
import * as ClientOptions from "./clientOptions.js"
import * as ConcurrencyStoreInternal from "./concurrencyStore.js"
import * as RateLimitInternal from "./rateLimit.js"
import * as request from "./request.js"
import * as RetryPolicy from "./retryPolicy.js"
import * as Slots from "./slots.js"
import * as UndiciHttpClientInternal from "./undiciHttpClient.js"
import * as UsageTrackerInternal from "./usageTracker.js"
import * as validate from "./validate.js"

/**
 * A client's environment: what every call of it runs with.
 *
 * @internal
 */
export interface Environment {
  readonly options: ClientOptions.Resolved
  /** The key, to cut out of anything a server sends. */
  readonly secret: string
  readonly http: HttpClient.HttpClient
  /**
   * Whether `http` is `UndiciHttpClient`, not wrapped by `transformClient` (which might run a request elsewhere,
   * or make spans): it stops a request at the deadline an attempt's timeout sets, so that the timeout needs no
   * fiber (timeout.ts), and it makes no spans, so that a call need not turn tracing off for it (request.ts).
   */
  readonly deadline: boolean
  /**
   * When `deadline` holds: the transport's own send, and the shaping `http` does to a request before it (see
   * `streamFast.ts`, which sends a stream's request this way).
   */
  readonly direct: Direct | undefined
  /** Whether a tracer that exports is installed (see `request.tracing`). */
  readonly tracing: boolean
  /** The retry policy with its log line, or none. */
  readonly retry: Schedule.Schedule<unknown, InferenceError.InferenceError> | undefined
  readonly breakers: CircuitBreaker.Registry | undefined
  readonly limiter: RateLimit.RateLimit | undefined
  readonly slots: Slots.Permits | undefined
  /** Each model's adaptive concurrency limit, unless `adaptiveConcurrency` is off. */
  readonly adaptive: AdaptiveConcurrency.AdaptiveLimits | undefined
  readonly tracker: UsageTracker.UsageTracker.Service | undefined
  readonly cache: ResponseCache.ResponseCache.Service | undefined
}

/**
 * A request sent past `HttpClient.execute`: shaped as `http` shapes it, then sent by `UndiciHttpClient` with the
 * deadline given.
 *
 * @internal
 */
export interface Direct {
  readonly shape: (request: HttpClientRequest.HttpClientRequest) => HttpClientRequest.HttpClientRequest
  readonly send: UndiciHttpClientInternal.Send
}

/**
 * How far a call has got: attempts begun over every model, the model of the
 * last one, the request id of the last response. Written by the attempts,
 * read by the total timeout's error and the usage record.
 *
 * @internal
 */
export interface CallState {
  attempts: number
  model: string | undefined
  requestId: string | undefined
}

/** @internal */
export const callState = (model: string | undefined): CallState => ({ attempts: 0, model, requestId: undefined })

/**
 * The context of one attempt (its model and number, the key to scrub), counted
 * in `call`.
 *
 * @internal
 */
export const attemptContext = (
  env: Environment,
  call: CallState,
  model: string | undefined,
  attempt: number
): classify.CallContext => {
  call.attempts++
  call.model = model
  return { model, attempt, secret: env.secret, baseUrl: env.options.baseUrl }
}

/**
 * Builds a client's environment from its options and the `HttpClient` (and
 * optional services) in context. Invalid options are a defect, with a message
 * naming the option.
 *
 * @internal
 */
export const make = (
  options: InferenceClient.Options
): Effect.Effect<Environment, never, HttpClient.HttpClient> =>
  Effect.gen(function*() {
    const resolved = yield* validate.optionsOrDie("InferenceClient", ClientOptions.resolveOptions(options))
    const base = yield* HttpClient.HttpClient
    const http = request.transport(resolved, base)
    const tracing = yield* request.tracing
    const breakers = resolved.circuitBreaker === undefined
      ? undefined
      : options.circuitBreaker === undefined
      ? Option.getOrUndefined(yield* Effect.serviceOption(CircuitBreaker.Breakers)) ??
        (yield* CircuitBreaker.makeRegistry(resolved.circuitBreaker))
      : yield* CircuitBreaker.makeRegistry(resolved.circuitBreaker)
    // The client's own limiter and tracker keep their state under keys of this endpoint and project, so that
    // clients of different projects sharing a store do not share a quota or a budget.
    const scope = `${resolved.baseUrl} ${resolved.project ?? "(default project)"}`
    const limiter = resolved.rateLimit === undefined
      ? Option.getOrUndefined(yield* Effect.serviceOption(RateLimit.Limiter))
      : yield* RateLimitInternal.makeResolved(resolved.rateLimit, { key: `rate-limit ${scope}` })
    // A FIFO queue, not Effect's Semaphore: one release of that resumes every waiter (see slots.ts). With a
    // ConcurrencyStore in context, the slots are leases in it, shared by every client of the same endpoint and
    // project (the provider's limit is per project), in front of which this client keeps its own FIFO line.
    const store = yield* Effect.serviceOption(ConcurrencyStoreInternal.ConcurrencyStore)
    const slots: Slots.Permits | undefined = resolved.maxConcurrency === Infinity
      ? undefined
      : Option.isNone(store)
      ? yield* Slots.make(resolved.maxConcurrency)
      : yield* Slots.makeWithStore({
        limit: resolved.maxConcurrency,
        key: `concurrency ${scope}`,
        store: store.value
      })
    const usage = resolved.usage
    const tracker = usage === false
      ? undefined
      : usage === undefined
      ? Option.getOrUndefined(yield* Effect.serviceOption(UsageTracker.UsageTracker)) ?? (yield* UsageTracker.make())
      : yield* UsageTrackerInternal.makeResolved(usage, { key: `budget ${scope}` })
    const cache = Option.getOrUndefined(yield* Effect.serviceOption(ResponseCache.ResponseCache))
    const retry = resolved.retry === undefined ? undefined : RetryPolicy.logged(resolved.retry)
    const send = resolved.transformClient === undefined ? UndiciHttpClientInternal.direct(base) : undefined
    return {
      options: resolved,
      secret: Redacted.value(resolved.apiKey),
      http,
      deadline: send !== undefined,
      direct: send === undefined ? undefined : { shape: request.shape(resolved), send },
      tracing,
      retry,
      breakers,
      limiter,
      slots,
      adaptive: resolved.adaptiveConcurrency === undefined
        ? undefined
        : AdaptiveConcurrency.make(
          resolved.adaptiveConcurrency,
          yield* Effect.clock,
          Option.isSome(store) ? { store: store.value, scope } : undefined
        ),
      tracker,
      cache
    }
  })
