/**
 * The client for W&B Inference: each call is an `Effect` that fails only with an
 * `InferenceError`, retried on transient failures and bounded in time.
 *
 * @since 0.1.0
 */
import type * as HttpClient from "@effect/platform/HttpClient"
import type * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import type * as Metric from "effect/Metric"
import type * as Redacted from "effect/Redacted"
import type * as Schedule from "effect/Schedule"
import type * as Stream from "effect/Stream"
import type { ChatCompletion, ChatCompletionRequest, ChatCompletionRequestInput } from "./ChatCompletion.js"
import type { ChatCompletionChunk } from "./ChatCompletionChunk.js"
import type * as CircuitBreaker from "./CircuitBreaker.js"
import type * as InferenceError from "./InferenceError.js"
import * as adaptive from "./internal/adaptiveConcurrency.js"
import * as internal from "./internal/inferenceClient.js"
import * as validate from "./internal/validate.js"
import type { Model } from "./Model.js"
import type * as RateLimit from "./RateLimit.js"
import type * as ResponseCache from "./ResponseCache.js"
import type * as RetryPolicy from "./RetryPolicy.js"
import type * as UsageTracker from "./UsageTracker.js"

/**
 * The W&B Inference endpoint used when no `baseUrl` is given.
 *
 * @since 0.1.0
 * @category constants
 */
export const DEFAULT_BASE_URL: string = internal.DEFAULT_BASE_URL

/**
 * The client's service tag. Get the client with `yield* InferenceClient.InferenceClient`.
 *
 * @example
 * ```ts
 * import { InferenceClient } from "@effect-inference/client"
 * import { FetchHttpClient } from "@effect/platform"
 * import { Effect, Redacted } from "effect"
 *
 * const program = Effect.gen(function*() {
 *   const client = yield* InferenceClient.InferenceClient
 *   const completion = yield* client.chatCompletion({
 *     model: "meta-llama/Llama-3.1-8B-Instruct",
 *     messages: [{ role: "user", content: "Hello" }]
 *   })
 *   return completion.choices[0].message.content
 * }).pipe(
 *   Effect.provide(InferenceClient.layer({ apiKey: Redacted.make("my-key") })),
 *   Effect.provide(FetchHttpClient.layer)
 * )
 * ```
 *
 * @since 0.1.0
 * @category tags
 */
export class InferenceClient extends Context.Tag("@effect-inference/client/InferenceClient")<
  InferenceClient,
  InferenceClient.Service
>() {}

/**
 * @since 0.1.0
 */
export declare namespace InferenceClient {
  /**
   * What the client can do. Every method fails only with an `InferenceError`.
   *
   * @since 0.1.0
   * @category models
   */
  export interface Service {
    /**
     * Sends a chat completion request and returns the decoded completion. The
     * request is checked first; a request that does not satisfy the schema fails
     * with `InvalidRequestError` and sends nothing; so does a call the budget
     * cannot hold, with `BudgetExceededError`. With a `ResponseCache` in context,
     * a cacheable request may be answered from it (see `CallOptions`).
     */
    readonly chatCompletion: (
      request: ChatCompletionRequestInput,
      options?: CallOptions
    ) => Effect.Effect<ChatCompletion, InferenceError.InferenceError>
    /**
     * Streams a chat completion as its chunks arrive. Failures before the first
     * content are classified and retried like `chatCompletion`'s; a failure after
     * content has been delivered ends the stream with the classified error (its
     * `chunksDelivered` set) and is not retried. `firstChunkTimeout` and
     * `idleTimeout` bound the waits; interrupting the consumer aborts the request.
     * Usage arrives in the last chunk unless `stream_options.include_usage` is false.
     * A cached stream is replayed chunk by chunk; a stream is stored only once
     * it has been read to its end.
     */
    readonly streamChatCompletion: (
      request: ChatCompletionRequestInput,
      options?: CallOptions
    ) => Stream.Stream<ChatCompletionChunk, InferenceError.InferenceError>
    /** Lists the models the service offers. */
    readonly listModels: () => Effect.Effect<ReadonlyArray<Model>, InferenceError.InferenceError>
  }
}

/**
 * The bounds of adaptive concurrency (the `adaptiveConcurrency` option).
 *
 * @since 0.2.0
 * @category models
 */
export interface AdaptiveConcurrency {
  /** The limit of a model before anything was learnt. Default 32 (within `min` and `max`). */
  readonly initial?: number | undefined
  /** The limit never goes below this. Default 1. */
  readonly min?: number | undefined
  /** The limit never goes above this, nor above `maxConcurrency`. Default `maxConcurrency` (1024 if `Infinity`). */
  readonly max?: number | undefined
}

/**
 * How the client is set up. Only `apiKey` is required.
 *
 * The optional services (circuit breakers, the rate limiter, the usage
 * tracker, the response cache, and the stores that keep their state) follow
 * one rule: `false` turns one off; options given here build the client's own;
 * left out, the service in context is used, if there is one (a
 * `CircuitBreaker.layer`, `RateLimit.layer`, `UsageTracker.layer`,
 * `ResponseCache.layer...`, a store layer), so that several clients share it
 * and the application can read it; otherwise a default: breakers and a usage
 * tracker with their default options, no rate limit, no cache, and stores in
 * memory.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** The W&B API key, kept `Redacted` end to end. */
  readonly apiKey: Redacted.Redacted<string>
  /** Default `https://api.inference.wandb.ai/v1`. */
  readonly baseUrl?: string | undefined
  /** `team/project` the usage is attributed to, sent as `OpenAI-Project`. */
  readonly project?: string | undefined
  /**
   * Bound of one HTTP attempt, body included. Default 60 seconds. Streams are
   * bounded by `firstChunkTimeout` and `idleTimeout` instead, as a long answer
   * that keeps flowing is not a fault.
   */
  readonly timeout?: Duration.DurationInput | undefined
  /** Streaming: bound of the wait for the first content, from the request's start. Default 60 seconds. */
  readonly firstChunkTimeout?: Duration.DurationInput | undefined
  /** Streaming: bound of the gap between two chunks (keep-alive comments do not count). Default 30 seconds. */
  readonly idleTimeout?: Duration.DurationInput | undefined
  /**
   * Bound of a whole call, retries, their waits and fallback models included
   * (for a stream: until its first content). Default none.
   */
  readonly totalTimeout?: Duration.DurationInput | undefined
  /**
   * `false` for no retries; options of the default policy (see `RetryPolicy`);
   * or a `Schedule` of your own, fed with each failed attempt's error.
   */
  readonly retry?:
    | false
    | Partial<RetryPolicy.Options>
    | Schedule.Schedule<unknown, InferenceError.InferenceError>
    | undefined
  /**
   * Most HTTP requests this client has in flight at once; further attempts wait
   * for a slot. W&B limits concurrency per project, so set it at or below the
   * project's limit. Default 64; `Infinity` for no limit. A slot is given back
   * once the request is gone: answered in full, or aborted and its connection
   * closed (over `UndiciHttpClient`, once undici has closed it).
   */
  readonly maxConcurrency?: number | undefined
  /**
   * Finds each model's concurrency limit by itself. W&B limits the requests in
   * flight per project and per model and publishes no numbers; a request over
   * the limit gets a 429 (`RateLimitError`). With this on (the default), each
   * model has its own limit of requests in flight, which a 429 lowers at once
   * and successes raise slowly, between `min` and `max` (at most
   * `maxConcurrency`, which still bounds all models together). Calls over the
   * limit wait in line, as for `maxConcurrency`. `false` turns it off: only
   * `maxConcurrency` applies. The limit of each model is the gauge
   * `inference_concurrency_limit{model}`, and each change is a debug log line.
   * See docs/fallback-and-limits.md.
   *
   * @since 0.2.0
   */
  readonly adaptiveConcurrency?: false | AdaptiveConcurrency | undefined
  /**
   * Most bytes of a successful (2xx) response body the client reads. A longer
   * body (an endless one, a `Content-Length` over the bound) ends the call with
   * a `ResponseDecodeError` that says "too large" (not retried: the same request
   * would get the same answer); the rest is not read, and the request is aborted.
   * Default 32 MiB.
   *
   * @since 0.2.0
   */
  readonly maxResponseBytes?: number | undefined
  /**
   * Most bytes of an error (non-2xx) response body the client reads for the
   * error's message. The error is classified by its status and these first
   * bytes; the rest is not read, and the request is aborted rather than drained.
   * Default 64 KiB.
   *
   * @since 0.2.0
   */
  readonly maxErrorBodyBytes?: number | undefined
  /**
   * Streaming: most bytes the client reads before the first output (content,
   * reasoning, a tool call, a finish reason or usage). A server flooding empty or
   * role-only chunks, or comments, ends the stream with a `ResponseDecodeError`
   * that says "too large". Once output has come the stream is bounded per event
   * (8 MiB) and by `idleTimeout` instead: a long answer is not a fault. Default
   * 4 MiB.
   *
   * @since 0.2.0
   */
  readonly maxBytesBeforeFirstOutput?: number | undefined
  /**
   * The circuit breaker in front of each model of this endpoint (see
   * `CircuitBreaker`): `false` to turn it off, or its options. Default on: 5
   * failures in a row or half of the last 20 calls trip it; breaks of 10 s
   * doubling to 2 minutes; 2 probes. Left out, a `CircuitBreaker.layer` in
   * context, if any, supplies the breakers; options given here make the
   * client's own.
   */
  readonly circuitBreaker?: false | CircuitBreaker.Options | undefined
  /**
   * Client-side limits: at most so many requests and tokens per interval (see
   * `RateLimit`), so that a batch stays under a known quota without 429s. Default
   * none. Left out, a `RateLimit.layer` in context, if any, is used, so that
   * several clients of one project share a quota; options given here make the
   * client's own.
   */
  readonly rateLimit?: RateLimit.Options | undefined
  /**
   * Models to fall back to, in order, when a call's model fails with a retryable
   * error after its retries, or its circuit breaker is open. Each model has its own
   * breaker and retries; `completion.model` says which one answered. Default none.
   */
  readonly fallback?: ReadonlyArray<string> | undefined
  /**
   * Which failures of a model move a call on to the next `fallback` model: a
   * list of error tags, where `"retryable"` stands for every error that
   * `InferenceError.isRetryable` accepts, or a predicate of your own. Default
   * `["retryable", "CircuitOpenError"]`. Add `"NotFoundError"` to move on from a
   * retired model (a 404); it is not in the default because a 404 from a wrong
   * `baseUrl` or a misspelt model id would then be answered by another model.
   *
   * @since 0.2.0
   */
  readonly fallbackOn?: FallbackOn | undefined
  /**
   * Usage tracking (see `UsageTracker`). Left out, the client records into the
   * `UsageTracker.layer` in context, if any (so that the application can read
   * its totals, events and alerts, and several clients share one budget), or
   * else into a tracker of its own with default options: no budget, a usage log
   * line per call at Debug. Options here (prices, a budget, the log line) always
   * make the client a tracker of its own, so that a budget given here is never
   * overridden. `false` turns tracking off.
   */
  readonly usage?: false | UsageTracker.Options | undefined
  /** A last change to the configured `HttpClient` (extra headers, a proxy, tracing settings). */
  readonly transformClient?: ((client: HttpClient.HttpClient) => HttpClient.HttpClient) | undefined
}

/**
 * Options of one call, beside its request.
 *
 * - `cache`: what this call asks of the `ResponseCache` in context, if any (see
 *   `ResponseCache.Directive`): `"no-cache"`, `"no-store"` or `{ ttl }`.
 *   Default: the cache's policy decides.
 * - `extraBody`: fields sent in the body beside the checked request, for
 *   parameters the schema does not know.
 *
 * @example
 * ```ts
 * import { InferenceClient } from "@effect-inference/client"
 * import { Effect } from "effect"
 *
 * // A server's own parameter, sent as it is; model, messages and stream cannot be overridden.
 * export const program = Effect.flatMap(InferenceClient.InferenceClient, (client) =>
 *   client.chatCompletion(
 *     { model: "Qwen/Qwen3.6-35B-A3B", messages: [{ role: "user", content: "Hi" }] },
 *     { extraBody: { guided_choice: ["yes", "no"] } }
 *   ))
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface CallOptions {
  readonly cache?: ResponseCache.Directive | undefined
  /**
   * Fields added to the JSON body after the request has been checked: parameters
   * the request schema does not know (a server's own extensions). It may not set
   * `model`, `messages` or `stream` (an `InvalidRequestError` says so, and
   * nothing is sent). The fields are part of the cache key.
   *
   * @since 0.2.0
   */
  readonly extraBody?: Readonly<Record<string, unknown>> | undefined
}

/**
 * The failures that move a call on to its next fallback model (see
 * `Options.fallbackOn`): error tags, with `"retryable"` for every error that
 * `InferenceError.isRetryable` accepts, or a predicate.
 *
 * @since 0.2.0
 * @category models
 */
export type FallbackOn =
  | ReadonlyArray<"retryable" | InferenceError.InferenceError["_tag"]>
  | ((error: InferenceError.InferenceError) => boolean)

/**
 * The failures that move a call on to its next fallback model unless
 * `fallbackOn` says otherwise: retryable errors (after their retries) and open
 * breakers.
 *
 * @since 0.2.0
 * @category constants
 */
export const DEFAULT_FALLBACK_ON: ReadonlyArray<"retryable" | InferenceError.InferenceError["_tag"]> = internal
  .DEFAULT_FALLBACK_ON

/**
 * Checks a request the way `chatCompletion` does before sending it: a request
 * that does not satisfy `ChatCompletionRequest` (a misspelt field, a value out of
 * range) fails with `InvalidRequestError` naming the field. Useful for fakes of
 * the client and for checking user input early.
 *
 * @example
 * ```ts
 * import { InferenceClient } from "@effect-inference/client"
 * import { Effect } from "effect"
 *
 * // Check user input before it joins a batch; the error names the field (temperature is 0..2).
 * const checked = InferenceClient.validateRequest({
 *   model: "meta-llama/Llama-3.1-8B-Instruct",
 *   messages: [{ role: "user", content: "Hi" }],
 *   temperature: 5
 * }).pipe(Effect.catchTag("InvalidRequestError", (error) => Effect.logWarning(error.message)))
 * ```
 *
 * @since 0.1.0
 * @category validation
 */
export const validateRequest = (
  request: unknown
): Effect.Effect<ChatCompletionRequest, InferenceError.InvalidRequestError> =>
  Either.match(validate.validateRequest(request), { onLeft: Effect.fail, onRight: Effect.succeed })

/**
 * Builds the client from the `HttpClient` in context. Invalid options (an empty
 * key, a malformed URL or project, a negative timeout) stop the program at once
 * with a message naming the option, as they are a programming error.
 *
 * @example
 * ```ts
 * import { InferenceClient } from "@effect-inference/client"
 * import * as UndiciHttpClient from "@effect-inference/client/UndiciHttpClient"
 * import { Effect, Redacted } from "effect"
 *
 * // The client as a value, for code that builds its own services.
 * const program = Effect.gen(function*() {
 *   const client = yield* InferenceClient.make({ apiKey: Redacted.make("my-key"), timeout: "30 seconds" })
 *   return yield* client.listModels()
 * }).pipe(Effect.provide(UndiciHttpClient.layer))
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: (options: Options) => Effect.Effect<InferenceClient.Service, never, HttpClient.HttpClient> =
  internal.make

/**
 * The client as a `Layer`; the application supplies the `HttpClient`
 * (`FetchHttpClient.layer`, `NodeHttpClient.layerUndici`, or a fake in tests).
 *
 * @example
 * ```ts
 * import { InferenceClient } from "@effect-inference/client"
 * import * as UndiciHttpClient from "@effect-inference/client/UndiciHttpClient"
 * import { Layer, Redacted } from "effect"
 *
 * const InferenceLive = InferenceClient.layer({
 *   apiKey: Redacted.make("my-key"),
 *   project: "my-team/my-project",
 *   totalTimeout: "2 minutes",
 *   fallback: ["Qwen/Qwen3.6-35B-A3B"]
 * }).pipe(Layer.provide(UndiciHttpClient.layer))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options): Layer.Layer<InferenceClient, never, HttpClient.HttpClient> =>
  Layer.effect(InferenceClient, make(options))

/**
 * The settings read from `Config`: `WANDB_API_KEY` (required, redacted),
 * `WANDB_PROJECT` (optional `team/project`) and `WANDB_INFERENCE_BASE_URL` (optional).
 *
 * @since 0.1.0
 * @category config
 */
export const config: Config.Config<Pick<Options, "apiKey" | "project" | "baseUrl">> = internal.config

/**
 * The client as a `Layer` configured from the environment (see {@link config});
 * the other options are given here.
 *
 * @example
 * ```ts
 * import { InferenceClient } from "@effect-inference/client"
 * import * as UndiciHttpClient from "@effect-inference/client/UndiciHttpClient"
 * import { Layer } from "effect"
 *
 * // WANDB_API_KEY (and WANDB_PROJECT, WANDB_INFERENCE_BASE_URL if set) from the environment.
 * const InferenceLive = InferenceClient.layerConfig({ maxConcurrency: 8, retry: { maxRetries: 5 } }).pipe(
 *   Layer.provide(UndiciHttpClient.layer)
 * )
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig = (
  options?: Omit<Options, "apiKey" | "project" | "baseUrl">
): Layer.Layer<InferenceClient, ConfigError.ConfigError, HttpClient.HttpClient> =>
  Layer.effect(InferenceClient, Effect.flatMap(config, (fromEnv) => make({ ...options, ...fromEnv })))

/**
 * The gauge `inference_concurrency_limit`, tagged `model`: each model's limit of
 * requests in flight as adaptive concurrency has found it (see
 * `Options.adaptiveConcurrency`). Read one model's with
 * `Metric.value(Metric.tagged(InferenceClient.concurrencyLimit, "model", id))`.
 *
 * @since 0.2.0
 * @category metrics
 */
export const concurrencyLimit: Metric.Metric.Gauge<number> = adaptive.limitGauge
