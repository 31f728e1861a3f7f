/**
 * Where a request is built, sent, timed and retried.
 */
import * as Headers from "@effect/platform/Headers"
import * as HttpClient from "@effect/platform/HttpClient"
import type * as HttpClientError from "@effect/platform/HttpClientError"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import type * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import * as Cause from "effect/Cause"
import * as Chunk from "effect/Chunk"
import * as Clock from "effect/Clock"
import * as Config from "effect/Config"
import * as ConfigError from "effect/ConfigError"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as ExecutionStrategy from "effect/ExecutionStrategy"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as FiberRef from "effect/FiberRef"
import * as Option from "effect/Option"
import type * as ParseResult from "effect/ParseResult"
import * as Predicate from "effect/Predicate"
import * as Queue from "effect/Queue"
import * as Redacted from "effect/Redacted"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import type { ChatCompletion, ChatCompletionRequest, ChatCompletionRequestInput } from "../ChatCompletion.js"
import type { ChatCompletionChunk } from "../ChatCompletionChunk.js"
import type { Options as CircuitBreakerOptions } from "../CircuitBreaker.js"
import * as CircuitBreaker from "../CircuitBreaker.js"
import type * as InferenceClient from "../InferenceClient.js"
import * as InferenceError from "../InferenceError.js"
import type { Model } from "../Model.js"
import { ModelList } from "../Model.js"
import * as RateLimit from "../RateLimit.js"
import * as ResponseCache from "../ResponseCache.js"
import type { Options as RetryOptions } from "../RetryPolicy.js"
import * as UsageTracker from "../UsageTracker.js"
import * as BoundedBody from "./boundedBody.js"
import * as ChunkInternal from "./chunks.js"
import * as CircuitBreakerInternal from "./circuitBreaker.js"
import * as classify from "./classify.js"
import { decodeChunk, decodeCompletion } from "./decode.js"
import * as checks from "./options.js"
import * as RateLimitInternal from "./rateLimit.js"
import * as ResponseCacheInternal from "./responseCache.js"
import * as RetryPolicy from "./retryPolicy.js"
import * as Slots from "./slots.js"
import * as sse from "./sse.js"
import * as timeout from "./timeout.js"
import * as tokens from "./tokens.js"
import * as UsageTrackerInternal from "./usageTracker.js"
import * as validate from "./validate.js"

/** Effect's own tracer, in place unless the application installs another. */
const builtInTracer = Effect.runSync(Effect.tracer)

/**
 * The headers whose values a span may show. @effect/platform's `HttpClient` puts every request and response
 * header on its span (`http.request.header.<name>`, `http.response.header.<name>`) unless its name is
 * redacted, and a server can echo the key in any header it likes (`x-request-id: Bearer ...`, and
 * `content-type` too): so every other name is redacted, whatever it is called. `content-length` is safe
 * because the HTTP parser refuses a response whose length is not a number.
 */
const SPAN_HEADERS: ReadonlyArray<string> = ["content-length"]

/** Matches every header name not in `SPAN_HEADERS`. */
const UNLISTED_HEADER = new RegExp(`^(?!(?:${SPAN_HEADERS.join("|")})$)`, "i")

/**
 * Runs `effect` with the header names @effect/platform redacts extended: with a
 * tracer, to every header not on the allow-list (`SPAN_HEADERS`), the only
 * place response headers go; without one, to `Authorization`, where an
 * application has taken it out of the default list.
 */
const redactingHeaders = <A, E, R>(effect: Effect.Effect<A, E, R>, tracing: boolean): Effect.Effect<A, E, R> =>
  FiberRef.getWith(Headers.currentRedactedNames, (names) => {
    const name = tracing ? UNLISTED_HEADER : "authorization"
    return names.includes(name) ? effect : Effect.locally(effect, Headers.currentRedactedNames, [...names, name])
  })

/** @internal */
export const DEFAULT_BASE_URL = "https://api.inference.wandb.ai/v1"

const DEFAULT_TIMEOUT = Duration.seconds(60)
const DEFAULT_FIRST_CHUNK_TIMEOUT = Duration.seconds(60)
const DEFAULT_IDLE_TIMEOUT = Duration.seconds(30)
const DEFAULT_MAX_CONCURRENCY = 64
const PROJECT = /^[^/\s]+\/[^/\s]+$/

// ---------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------

/** @internal */
export interface Resolved {
  readonly apiKey: Redacted.Redacted<string>
  readonly baseUrl: string
  readonly project: string | undefined
  readonly timeout: Duration.Duration
  readonly firstChunkTimeout: Duration.Duration
  readonly idleTimeout: Duration.Duration
  readonly totalTimeout: Duration.Duration | undefined
  readonly retry: Schedule.Schedule<unknown, InferenceError.InferenceError> | undefined
  readonly maxConcurrency: number
  readonly transformClient: ((client: HttpClient.HttpClient) => HttpClient.HttpClient) | undefined
  readonly circuitBreaker: CircuitBreakerOptions | undefined
  readonly fallback: ReadonlyArray<string>
  readonly fallbackOn: (error: InferenceError.InferenceError) => boolean
  /** The `rateLimit` option, checked. */
  readonly rateLimit: RateLimitInternal.Resolved | undefined
  /** The `usage` option, checked: `false` for none, `undefined` for the tracker in context or a default one. */
  readonly usage: UsageTrackerInternal.Resolved | false | undefined
  readonly maxResponseBytes: number
  readonly maxErrorBodyBytes: number
  readonly maxBytesBeforeFirstOutput: number
}

/** @internal */
export const DEFAULT_FALLBACK_ON: ReadonlyArray<"retryable" | InferenceError.InferenceError["_tag"]> = [
  "retryable",
  "CircuitOpenError"
]

/** Every tag of the error union, to check a `fallbackOn` list against. */
const ERROR_TAGS: ReadonlySet<string> = new Set(
  InferenceError.InferenceError.members.map((member) => member._tag)
)

/** A `fallbackOn` option as one predicate, built once. */
const resolveFallbackOn = (
  option: InferenceClient.FallbackOn
): Either.Either<(error: InferenceError.InferenceError) => boolean, string> => {
  if (typeof option === "function") return Either.right(option)
  if (!Array.isArray(option)) return Either.left("fallbackOn must be a list of error tags or a function")
  const unknown = option.find((tag) => tag !== "retryable" && !ERROR_TAGS.has(tag))
  if (unknown !== undefined) {
    return Either.left(`fallbackOn lists "${String(unknown)}", which is neither "retryable" nor an InferenceError tag`)
  }
  const tags = new Set<string>(option)
  const retryable = tags.has("retryable")
  return Either.right((error) => tags.has(error._tag) || (retryable && InferenceError.isRetryable(error)))
}

const isRecord = (u: unknown): u is Readonly<Record<string, unknown>> => Predicate.isRecord(u)

/**
 * The client's options, every one checked for its type and range, and a key no
 * option has refused. The options of the parts (`retry`, `circuitBreaker`,
 * `rateLimit`, `usage`) are checked by their own schemas, with their paths
 * under the option's name.
 */
const ClientOptions = Schema.Struct({
  apiKey: Schema.declare((u): u is Redacted.Redacted<string> => Redacted.isRedacted(u), {
    // Never the value: a plain string here is the key itself.
    message: () =>
      "must be Redacted: pass Redacted.make(key), or read it with Config.redacted (InferenceClient.layerConfig does)"
  }),
  baseUrl: Schema.optional(checks.check(Predicate.isString, "an http(s) URL")),
  project: Schema.optional(checks.check(Predicate.isString, "\"team/project\"")),
  timeout: Schema.optional(checks.duration()),
  firstChunkTimeout: Schema.optional(checks.duration()),
  idleTimeout: Schema.optional(checks.duration()),
  totalTimeout: Schema.optional(checks.duration()),
  retry: Schema.optional(
    checks.check(
      (u): u is false | Schedule.Schedule<unknown, InferenceError.InferenceError> | Partial<RetryOptions> =>
        u === false || Schedule.isSchedule(u) || isRecord(u),
      "false, a Schedule or retry options"
    )
  ),
  maxConcurrency: Schema.optional(
    checks.check(
      (u): u is number => u === Infinity || (Number.isInteger(u) && (u as number) >= 1),
      "a whole number >= 1 or Infinity"
    )
  ),
  maxResponseBytes: Schema.optional(checks.wholeNumber(1)),
  maxErrorBodyBytes: Schema.optional(checks.wholeNumber(1)),
  maxBytesBeforeFirstOutput: Schema.optional(checks.wholeNumber(1)),
  circuitBreaker: Schema.optional(
    checks.check((u): u is false | CircuitBreakerOptions => u === false || isRecord(u), "false or breaker options")
  ),
  rateLimit: Schema.optional(checks.check((u): u is RateLimit.Options => isRecord(u), "rate limit options")),
  fallback: Schema.optional(
    checks.check(
      (u): u is ReadonlyArray<string> =>
        Array.isArray(u) && u.every((model) => typeof model === "string" && model.trim() !== ""),
      "a list of model ids"
    )
  ),
  fallbackOn: Schema.optional(
    checks.check(
      (u): u is InferenceClient.FallbackOn => Array.isArray(u) || typeof u === "function",
      "a list of error tags or a function"
    )
  ),
  usage: Schema.optional(
    checks.check((u): u is false | UsageTracker.Options => u === false || isRecord(u), "false or usage options")
  ),
  transformClient: Schema.optional(checks.func)
})

const decodeClientOptions = checks.decoder(ClientOptions)

/** A header carries visible ASCII only; a key with anything else would fail every request as a "connection" error. */
const HEADER_SAFE = /^[\x21-\x7e]+$/

/** Where a key has a character a header cannot carry, and what kind, without the key itself. */
const keyProblem = (key: string): string | undefined => {
  if (key.trim() === "") return "apiKey is empty: set WANDB_API_KEY or pass apiKey"
  if (HEADER_SAFE.test(key)) return undefined
  const at = [...key].findIndex((c) => !HEADER_SAFE.test(c))
  const c = [...key][at] ?? ""
  const kind = c === " " || c === "\t"
    ? "a space"
    : c === "\n" || c === "\r"
    ? "a line break"
    : c.charCodeAt(0) < 0x20 || c.charCodeAt(0) === 0x7f
    ? "a control character"
    : "a character outside ASCII"
  return `apiKey has ${kind} at position ${at + 1} of ${[...key].length}: an HTTP header carries only visible ASCII (${
    at === 0 || at === [...key].length - 1 ? "trim the key" : "copy the key again"
  })`
}

/**
 * Checks the options once, when the layer is built.
 *
 * @internal
 */
export const resolveOptions = (options: InferenceClient.Options): Either.Either<Resolved, string> =>
  Either.gen(function*() {
    // The schema checks each option's type and range (and refuses unknown keys); what follows turns them into the
    // values the client runs with, and checks what a type cannot say (a URL, a key a header can carry).
    yield* decodeClientOptions(options)
    const key = Redacted.value(options.apiKey)
    const problem = typeof key === "string" ? keyProblem(key) : "apiKey must hold a string"
    if (problem !== undefined) return yield* Either.left(problem)
    const baseUrl = (options.baseUrl ?? DEFAULT_BASE_URL).replace(/\/+$/, "")
    if (!URL.canParse(baseUrl) || !/^https?:$/.test(new URL(baseUrl).protocol)) {
      return yield* Either.left(`baseUrl must be an http(s) URL, got "${baseUrl}"`)
    }
    if (options.project !== undefined && !PROJECT.test(options.project)) {
      return yield* Either.left(`project must look like "team/project", got "${options.project}"`)
    }
    const timeout = Duration.decode(options.timeout ?? DEFAULT_TIMEOUT)
    const firstChunkTimeout = Duration.decode(options.firstChunkTimeout ?? DEFAULT_FIRST_CHUNK_TIMEOUT)
    const idleTimeout = Duration.decode(options.idleTimeout ?? DEFAULT_IDLE_TIMEOUT)
    const totalTimeout = options.totalTimeout === undefined ? undefined : Duration.decode(options.totalTimeout)
    const maxConcurrency = options.maxConcurrency ?? DEFAULT_MAX_CONCURRENCY
    const maxResponseBytes = options.maxResponseBytes ?? BoundedBody.DEFAULT_MAX_RESPONSE_BYTES
    const maxErrorBodyBytes = options.maxErrorBodyBytes ?? BoundedBody.DEFAULT_MAX_ERROR_BODY_BYTES
    const maxBytesBeforeFirstOutput = options.maxBytesBeforeFirstOutput ??
      BoundedBody.DEFAULT_MAX_BYTES_BEFORE_FIRST_OUTPUT
    const retry = options.retry === false
      ? undefined
      : Schedule.isSchedule(options.retry)
      ? options.retry
      : RetryPolicy.make(yield* RetryPolicy.validate(options.retry ?? {}))
    // Checked here, once, so that a message names the option (`rateLimit.requests.limit`); built from the result.
    const rateLimit = options.rateLimit === undefined
      ? undefined
      : yield* Either.mapLeft(RateLimitInternal.resolveOptions(options.rateLimit), (message) => `rateLimit.${message}`)
    const usage = options.usage === undefined || options.usage === false
      ? options.usage
      : yield* Either.mapLeft(UsageTrackerInternal.resolveOptions(options.usage), (message) => `usage.${message}`)
    const circuitBreaker = options.circuitBreaker === false
      ? undefined
      : yield* CircuitBreakerInternal.validate(options.circuitBreaker ?? {})
    const fallback = options.fallback ?? []
    const fallbackOn = yield* resolveFallbackOn(options.fallbackOn ?? DEFAULT_FALLBACK_ON)
    return {
      rateLimit,
      usage,
      fallback,
      fallbackOn,
      circuitBreaker,
      apiKey: options.apiKey,
      baseUrl,
      project: options.project,
      timeout,
      firstChunkTimeout,
      idleTimeout,
      totalTimeout,
      retry,
      maxConcurrency,
      maxResponseBytes,
      maxErrorBodyBytes,
      maxBytesBeforeFirstOutput,
      transformClient: options.transformClient
    }
  })

/** @internal */
export const config = Config.all({
  // A missing key says so in words (Config's own "Missing data at WANDB_API_KEY: <redacted>" reads as if a value
  // had been found), and so does an empty one.
  apiKey: Config.option(Config.redacted("WANDB_API_KEY")).pipe(
    Config.mapOrFail(Option.match({
      onNone: () =>
        Either.left(
          ConfigError.MissingData(
            ["WANDB_API_KEY"],
            "WANDB_API_KEY is not set: set it to your W&B API key (https://wandb.ai/authorize), or pass apiKey"
          )
        ),
      onSome: (key) =>
        Redacted.value(key).trim() === ""
          ? Either.left(
            ConfigError.InvalidData(["WANDB_API_KEY"], "WANDB_API_KEY is empty: set it to your W&B API key")
          )
          : Either.right(key)
    }))
  ),
  project: Config.string("WANDB_PROJECT").pipe(
    Config.validate({ message: "WANDB_PROJECT must look like \"team/project\"", validation: (p) => PROJECT.test(p) }),
    Config.option,
    Config.map(Option.getOrUndefined)
  ),
  baseUrl: Config.string("WANDB_INFERENCE_BASE_URL").pipe(
    Config.validate({
      message: "WANDB_INFERENCE_BASE_URL must be an http(s) URL",
      validation: (u) => URL.canParse(u) && /^https?:$/.test(new URL(u).protocol)
    }),
    Config.option,
    Config.map(Option.getOrUndefined)
  )
})

// ---------------------------------------------------------------------------
// Requests and responses
// ---------------------------------------------------------------------------

const decodeModelList = Schema.decodeUnknownEither(ModelList)

/** A successful body over `maxResponseBytes`: the same request would get it again, so it is not retried. */
const tooLarge = (
  response: HttpClientResponse.HttpClientResponse,
  context: classify.CallContext,
  max: number,
  stated: number | undefined
): InferenceError.ResponseDecodeError =>
  classify.decodeFailure(
    response,
    stated === undefined
      ? `the body is too large: over maxResponseBytes (${max} bytes), and the rest was not read`
      : `the body is too large: its Content-Length, ${stated} bytes, is over maxResponseBytes (${max} bytes)`,
    context
  )

const decodeWith = <A>(decode: (u: unknown) => Either.Either<A, ParseResult.ParseError>) =>
(
  response: HttpClientResponse.HttpClientResponse,
  context: classify.CallContext,
  limits: BoundedBody.Limits
): Effect.Effect<A, InferenceError.InferenceError> => {
  const max = limits.maxResponseBytes
  const stated = BoundedBody.contentLength(response)
  // A body said to be over the bound is refused before a byte of it is read.
  if (stated !== undefined && stated > max) {
    return Effect.zipRight(BoundedBody.discard(response), Effect.fail(tooLarge(response, context, max, stated)))
  }
  return Effect.flatMap(
    Effect.mapError(BoundedBody.read(response, max), (error) => classify.fromHttpClientError(error, context)),
    ({ text, truncated }) => {
      if (truncated) return Effect.fail(tooLarge(response, context, max, undefined))
      let json: unknown
      try {
        json = JSON.parse(text)
      } catch {
        return Effect.fail(classify.decodeFailure(response, `the body is not JSON (${text.length} bytes)`, context))
      }
      return Either.match(decode(json), {
        onLeft: (error) => Effect.fail(classify.decodeFailure(response, error, context)),
        onRight: Effect.succeed
      })
    }
  )
}

const decodeCompletionResponse = decodeWith(decodeCompletion)

// Requests of each kind, built once: a call adds only its body.
const completionPost = HttpClientRequest.post("/chat/completions").pipe(HttpClientRequest.acceptJson)
const streamPost = HttpClientRequest.post("/chat/completions").pipe(HttpClientRequest.accept("text/event-stream"))
const listModelsRequest = HttpClientRequest.get("/models").pipe(HttpClientRequest.acceptJson)
const decodeModels = decodeWith(decodeModelList)

/** The fields of a call's `extraBody`, checked, if it has any. */
type Extra = Readonly<Record<string, unknown>> | undefined

/** Whether a response says it is Server-Sent Events. */
const isEventStream = (response: HttpClientResponse.HttpClientResponse): boolean =>
  response.headers["content-type"]?.toLowerCase().includes("text/event-stream") === true

/**
 * The answer to a stream request that is not an event stream (a server that
 * honours `accept: application/json`, or ignores `stream: true`): a whole
 * completion, delivered as the chunks a stream of it would have had. Any other
 * body is a `ResponseDecodeError`: not retried (the same request would get the
 * same answer) and not counted by the breaker (the service answered).
 */
const completionAsStream = (
  response: HttpClientResponse.HttpClientResponse,
  context: classify.CallContext,
  includeUsage: boolean,
  limits: BoundedBody.Limits
): Effect.Effect<
  Effect.Effect<Chunk.Chunk<ChatCompletionChunk>, Option.Option<InferenceError.InferenceError>>,
  InferenceError.InferenceError
> =>
  Effect.map(
    Effect.mapError(
      decodeCompletionResponse(response, context, limits),
      (error) =>
        error._tag === "ResponseDecodeError"
          ? new InferenceError.ResponseDecodeError({
            ...error,
            description: `a stream request was answered with ${
              classify.scrub(response.headers["content-type"] ?? "no content-type", context.secret)
            }, not text/event-stream, and the body is not a chat completion (${error.description})`
          })
          : error
    ),
    (completion) => {
      let chunks: Chunk.Chunk<ChatCompletionChunk> | undefined = Chunk.unsafeFromArray(
        ChunkInternal.fromCompletion(completion, { includeUsage })
      )
      return Effect.suspend(() => {
        if (chunks === undefined) return Effect.fail(Option.none())
        const all = chunks
        chunks = undefined
        return Effect.succeed(all)
      })
    }
  )

/** Jittered delays carry nanoseconds; a log line only needs milliseconds. */
const roundMillis = (duration: Duration.Duration): Duration.Duration =>
  Duration.millis(Math.round(Duration.toMillis(duration)))

const failFromResponse = (
  response: HttpClientResponse.HttpClientResponse,
  context: classify.CallContext,
  limits: BoundedBody.Limits
): Effect.Effect<never, InferenceError.InferenceError> =>
  Effect.flatMap(
    // An error body that cannot be read is still an error of this status: classify it without a body. Its message is
    // at its start: the first maxErrorBodyBytes are read, the rest is not, and the request is aborted, not drained.
    Effect.orElseSucceed(
      Effect.map(BoundedBody.read(response, limits.maxErrorBodyBytes), (read) => read.text),
      () => ""
    ),
    (text) =>
      Effect.flatMap(
        Clock.currentTimeMillis,
        (now) => Effect.fail(classify.fromErrorResponse(response, text, now, context))
      )
  )

// ---------------------------------------------------------------------------
// The client
// ---------------------------------------------------------------------------

/** @internal */
export const make = (
  options: InferenceClient.Options
): Effect.Effect<InferenceClient.InferenceClient.Service, never, HttpClient.HttpClient> =>
  Effect.gen(function*() {
    const resolved = yield* validate.optionsOrDie("InferenceClient", resolveOptions(options))
    const secret = Redacted.value(resolved.apiKey)
    const project = resolved.project
    // The same headers on every request: built once, not per request. `accept` is the request's own (JSON, or
    // SSE for a stream: a server that honours `accept` would otherwise answer a stream request with JSON).
    const fixedHeaders: Record<string, string> = {
      authorization: `Bearer ${secret}`,
      ...(project === undefined ? {} : { "openai-project": project })
    }
    const base = (yield* HttpClient.HttpClient).pipe(
      HttpClient.mapRequest((request) =>
        HttpClientRequest.setHeaders(HttpClientRequest.prependUrl(request, resolved.baseUrl), fixedHeaders)
      )
    )
    // Spans are for a tracer to export. Effect's built-in tracer exports nothing, and a span (the client's and
    // @effect/platform's per request) costs more than the rest of a call's bookkeeping, so without another tracer
    // there are none: install one (@effect/opentelemetry's layer) before the client is built to get them.
    const tracing = (yield* Effect.tracer) !== builtInTracer
    const httpClient = resolved.transformClient === undefined ? base : resolved.transformClient(base)
    /**
     * Runs a call's requests with the `Authorization` header (with a tracer, every
     * header not on an allow-list) redacted and, without a tracer that exports,
     * with tracing off: @effect/platform's `HttpClient` then makes no span and
     * sends no trace headers. One `FiberRef` change per call, not per attempt.
     */
    const inCall = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
      redactingHeaders(tracing ? effect : Effect.locally(effect, FiberRef.currentTracerEnabled, false), tracing)
    const breakers = resolved.circuitBreaker === undefined
      ? undefined
      : yield* Effect.flatMap(
        Effect.serviceOption(CircuitBreaker.Breakers),
        Option.match({
          onNone: () => CircuitBreaker.makeRegistry(resolved.circuitBreaker),
          onSome: Effect.succeed
        })
      )
    /** Runs `effect` through the breaker of this endpoint and model (retry outside, breaker inside). */
    const guarded = <A>(
      model: string | undefined,
      effect: Effect.Effect<A, InferenceError.InferenceError>
    ): Effect.Effect<A, InferenceError.InferenceError> =>
      breakers === undefined ? effect : Effect.flatMap(
        breakers.get(CircuitBreaker.key(resolved.baseUrl, model ?? "(models)")),
        (breaker) =>
          Effect.mapError(breaker.withBreaker(effect), (error) =>
            error._tag === "CircuitOpenError" && model !== undefined
              ? new InferenceError.CircuitOpenError({ ...error, model })
              : error)
      )
    const provided = yield* Effect.serviceOption(RateLimit.Limiter)
    const limiter = Option.isSome(provided)
      ? provided.value
      : resolved.rateLimit === undefined
      ? undefined
      : yield* RateLimitInternal.makeResolved(resolved.rateLimit)
    // A FIFO queue, not Effect's Semaphore: one release of that resumes every waiter (see slots.ts).
    const slots = resolved.maxConcurrency === Infinity
      ? undefined
      : yield* Slots.make(resolved.maxConcurrency)
    // Explicit options make the client a tracker of its own (a budget given here must never be ignored);
    // otherwise the tracker in context, if any, so that the application can read it.
    const providedTracker = yield* Effect.serviceOption(UsageTracker.UsageTracker)
    const tracker = resolved.usage === false
      ? undefined
      : resolved.usage === undefined && Option.isSome(providedTracker)
      ? providedTracker.value
      : resolved.usage === undefined
      ? yield* UsageTracker.make()
      : yield* UsageTrackerInternal.makeResolved(resolved.usage)
    const cache = Option.getOrUndefined(yield* Effect.serviceOption(ResponseCache.ResponseCache))

    const logFailure = (
      error: InferenceError.InferenceError,
      attempt: number,
      next: Option.Option<Duration.Duration>
    ): Effect.Effect<void> =>
      Effect.logWarning(
        Option.isSome(next) ? "Inference attempt failed; retrying" : "Inference attempt failed; not retrying"
      ).pipe(
        Effect.annotateLogs({
          attempt,
          tag: error._tag,
          status: "status" in error && error.status !== undefined ? error.status : "none",
          requestId: "requestId" in error && error.requestId !== undefined ? error.requestId : "none",
          retryIn: Option.match(next, { onNone: () => "none", onSome: (d) => Duration.format(roundMillis(d)) }),
          error: error.message
        })
      )

    /** How far a call got, for the error of its total timeout. */
    interface Progress {
      attempts: number
      model: string | undefined
      /** The request id of the last response, if it is one that can be kept (`classify.requestIdOf`). */
      requestId: string | undefined
    }

    /**
     * A chat completion request with `body` as JSON. The schema lets any value into
     * tool parameters and JSON schemas; one that JSON cannot hold (a BigInt, a
     * cycle) is the caller's mistake, reported before anything is sent.
     */
    const jsonBody = (
      body: { readonly stream: boolean }
    ): Effect.Effect<HttpClientRequest.HttpClientRequest, InferenceError.InvalidRequestError> =>
      Effect.mapError(
        HttpClientRequest.bodyJson(body.stream ? streamPost : completionPost, body),
        (error) =>
          new InferenceError.InvalidRequestError({
            path: "(request)",
            issue: `cannot be sent as JSON: ${
              error.reason._tag === "JsonError" ? String(error.reason.error) : error.reason._tag
            }`
          })
      )

    /** Attempts retried by the policy, every failure logged. */
    const retried = <A, R>(
      attempt: (n: number) => Effect.Effect<A, InferenceError.InferenceError, R>
    ): Effect.Effect<A, InferenceError.InferenceError, R> =>
      resolved.retry === undefined
        ? Effect.tapError(attempt(1), (error) => logFailure(error, 1, Option.none()))
        : RetryPolicy.retrying(attempt, resolved.retry, logFailure)

    /**
     * Bounds a whole call (every model it falls back to, every attempt and wait)
     * by the total timeout; `progress` says how far it got.
     */
    const withinTotal = <A, R>(
      effect: Effect.Effect<A, InferenceError.InferenceError, R>,
      progress: Progress
    ): Effect.Effect<A, InferenceError.InferenceError, R> => {
      const total = resolved.totalTimeout
      return total === undefined ? effect : timeout.timeoutFail(effect, {
        duration: total,
        onTimeout: () =>
          new InferenceError.TimeoutError({
            phase: "total",
            timeout: total,
            model: progress.model,
            attempts: Math.max(progress.attempts, 1)
          })
      })
    }

    /**
     * One call: attempts under the per-attempt timeout and the concurrency limit,
     * retried by the policy, bounded by the total timeout, in a span.
     */
    const call = <A>(
      spanName: string,
      model: string | undefined,
      request: HttpClientRequest.HttpClientRequest,
      onSuccess: (
        response: HttpClientResponse.HttpClientResponse,
        context: classify.CallContext,
        limits: BoundedBody.Limits
      ) => Effect.Effect<A, InferenceError.InferenceError>,
      progress: Progress,
      cost: RateLimit.Cost<A, InferenceError.InferenceError> = { estimatedTokens: 0 }
    ): Effect.Effect<A, InferenceError.InferenceError> =>
      Effect.suspend(() => {
        let attempts = 0
        const attempt = (n: number): Effect.Effect<A, InferenceError.InferenceError> => {
          attempts = n
          progress.attempts++
          progress.model = model
          const context: classify.CallContext = { model, attempt: n, secret, baseUrl: resolved.baseUrl }
          // An interruption after the response came (a timeout, the caller) lets go of it before the slot is freed.
          const exchange = BoundedBody.withResponse(
            Effect.mapError(httpClient.execute(request), (error) => classify.fromHttpClientError(error, context)),
            (response) => {
              progress.requestId = classify.requestIdOf(response.headers, secret)
              return response.status >= 200 && response.status < 300
                ? onSuccess(response, context, resolved)
                : failFromResponse(response, context, resolved)
            }
          )
          const timed = timeout.timeoutFail(exchange, {
            duration: resolved.timeout,
            onTimeout: () =>
              new InferenceError.TimeoutError({ phase: "attempt", timeout: resolved.timeout, model, attempts: n })
          })
          // Inside the slot (charged when really sent), outside the attempt's timeout (a wait for quota is not the server's fault).
          const limited = limiter === undefined ? timed : limiter.withLimit(timed, cost)
          // The breaker inside the slot: a half-open probe does not sit in the queue for a slot while it holds a probe place.
          return slots === undefined ? guarded(model, limited) : slots.withPermit(guarded(model, limited))
        }
        const retriedAttempts = retried(attempt)
        return inCall(
          tracing
            ? retriedAttempts.pipe(
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
            : retriedAttempts
        )
      })

    /**
     * Runs `run` for the request's model, then for each fallback model in turn while
     * the last one failed with an error that `fallbackOn` accepts (by default a
     * retryable error, after its own retries, or an open breaker). The last
     * model's error is the call's.
     */
    const withFallback = <A, R>(
      primary: string,
      run: (model: string) => Effect.Effect<A, InferenceError.InferenceError, R>
    ): Effect.Effect<A, InferenceError.InferenceError, R> => {
      if (resolved.fallback.length === 0) return run(primary)
      const models = modelsOf(primary)
      const from = (i: number): Effect.Effect<A, InferenceError.InferenceError, R> =>
        i === models.length - 1 ? run(models[i]!) : Effect.catchIf(
          run(models[i]!),
          resolved.fallbackOn,
          (error) =>
            Effect.logWarning("Inference model failed; falling back").pipe(
              Effect.annotateLogs({ model: models[i], fallback: models[i + 1], tag: error._tag }),
              Effect.zipRight(from(i + 1))
            )
        )
      return from(0)
    }

    /** The models a call for `primary` may go to, in order. */
    const modelsOf = (primary: string): ReadonlyArray<string> =>
      resolved.fallback.length === 0 ? [primary] : [primary, ...resolved.fallback.filter((model) => model !== primary)]

    // -------------------------------------------------------------------------
    // Usage and the response cache
    // -------------------------------------------------------------------------

    /** How one call ended, for its usage record. */
    const endingOf = (exit: Exit.Exit<unknown, InferenceError.InferenceError>) =>
      Exit.isSuccess(exit) ? {} : Option.match(Cause.failureOption(exit.cause), {
        onSome: (error) => ({ error }),
        onNone: () => Cause.isInterruptedOnly(exit.cause) ? { interrupted: true } : { defect: true }
      })

    /** Records a finished call of `request`, begun at `start`, as far as `progress` got. */
    const recordCall = (
      tracker: UsageTracker.UsageTracker.Service,
      request: ChatCompletionRequest,
      progress: Progress,
      start: number,
      ending: Omit<UsageTracker.CallRecord, "model" | "latency" | "attempts" | "requestId" | "messages">
    ): Effect.Effect<UsageTracker.UsageEvent> =>
      Effect.flatMap(Clock.currentTimeMillis, (end) =>
        tracker.record({
          model: progress.model ?? request.model,
          latency: Duration.millis(end - start),
          attempts: progress.attempts,
          requestId: progress.requestId,
          messages: request.messages,
          ...ending
        }))

    const reported = (usage: ChatCompletion["usage"]) => usage === undefined ? undefined : UsageTracker.callUsage(usage)

    /**
     * Runs `run` holding its place in the budget (a call that does not fit fails
     * with `BudgetExceededError` and sends nothing), and records its usage
     * however it ends.
     */
    const tracked = (
      tracker: UsageTracker.UsageTracker.Service,
      request: ChatCompletionRequest,
      progress: Progress,
      run: Effect.Effect<ChatCompletion, InferenceError.InferenceError>
    ): Effect.Effect<ChatCompletion, InferenceError.InferenceError> =>
      Effect.flatMap(Clock.currentTimeMillis, (start) =>
        Effect.uninterruptibleMask((restore) =>
          Effect.flatMap(
            Effect.tapErrorCause(
              tracker.reserve(request, modelsOf(request.model)),
              (cause) => recordCall(tracker, request, progress, start, endingOf(Exit.failCause(cause)))
            ),
            (reservation) =>
              Effect.onExit(restore(run), (exit) =>
                recordCall(tracker, request, progress, start, {
                  reservation,
                  usage: Exit.isSuccess(exit) ? reported(exit.value.usage) : undefined,
                  ...endingOf(exit)
                }))
          )
        ))

    const recordHit = (model: string, stream: boolean, start: number): Effect.Effect<void> =>
      tracker === undefined ? Effect.void : Effect.flatMap(
        Clock.currentTimeMillis,
        (end) => tracker.record({ model, stream, cached: true, latency: Duration.millis(end - start), attempts: 0 })
      )

    /** How one call uses the cache; `undefined` leaves it alone. */
    interface CacheUse {
      readonly cache: ResponseCache.ResponseCache.Service
      readonly read: boolean
      readonly ttl: Duration.Duration
    }

    const cacheUse = (
      request: ChatCompletionRequest,
      directive: ResponseCache.Directive | undefined
    ): Either.Either<CacheUse | undefined, InferenceError.InvalidRequestError> => {
      let ttl: Duration.Duration | undefined
      if (Predicate.isRecord(directive)) {
        const checked = validate.positiveDuration(directive.ttl, true)
        if (Either.isLeft(checked)) {
          return Either.left(new InferenceError.InvalidRequestError({ path: "cache.ttl", issue: checked.left }))
        }
        ttl = checked.right
      } else if (directive !== undefined && directive !== "no-cache" && directive !== "no-store") {
        return Either.left(
          new InferenceError.InvalidRequestError({
            path: "cache",
            issue: `must be "no-cache", "no-store" or { ttl }, got ${String(directive)}`
          })
        )
      }
      if (cache === undefined || directive === "no-store") return Either.right(undefined)
      if (ttl !== undefined) return Either.right({ cache, read: true, ttl })
      const deterministic = request.temperature === 0 || request.seed !== undefined
      return Either.right(
        cache.policy === "all" || deterministic ? { cache, read: directive !== "no-cache", ttl: cache.ttl } : undefined
      )
    }

    const cacheKey = (request: unknown): string => ResponseCache.key({ baseUrl: resolved.baseUrl, project, request })

    /**
     * A call's request, its `extraBody` and its use of the cache, all checked
     * before anything is sent. It never throws: a getter, a `Proxy` or a `toJSON`
     * of the caller's that throws while they are read is an `InvalidRequestError`.
     */
    const checked = (
      input: ChatCompletionRequestInput,
      callOptions: InferenceClient.CallOptions | undefined
    ): Either.Either<
      { readonly request: ChatCompletionRequest; readonly extra: Extra; readonly use: CacheUse | undefined },
      InferenceError.InvalidRequestError
    > => {
      try {
        return Either.flatMap(validate.validateRequest(input), (request) =>
          Either.flatMap(
            callOptions?.extraBody === undefined ? Either.right(undefined) : validate.extraBody(callOptions.extraBody),
            (extra) => Either.map(cacheUse(request, callOptions?.cache), (use) => ({ request, extra, use }))
          ))
      } catch (error) {
        return Either.left(validate.unreadable("(call options)", error))
      }
    }

    // -------------------------------------------------------------------------
    // Calls
    // -------------------------------------------------------------------------

    /** The body of a plain request to `model`, with the call's `extraBody` fields. */
    const completionBody = (request: ChatCompletionRequest, model: string, extra: Extra) => ({
      ...request,
      model,
      stream: false,
      ...extra
    })

    const completionCall = (
      request: ChatCompletionRequest,
      extra: Extra
    ): Effect.Effect<ChatCompletion, InferenceError.InferenceError> =>
      Effect.suspend(() => {
        const progress: Progress = { attempts: 0, model: request.model, requestId: undefined }
        const cost = limiter === undefined ? undefined : {
          estimatedTokens: RateLimit.estimateTokens(request),
          actualTokens: Exit.match({
            onSuccess: (completion: ChatCompletion) => tokens.reportedTotal(completion.usage),
            onFailure: RateLimit.tokensOfFailure
          })
        }
        const run = withinTotal(
          withFallback(request.model, (model) =>
            Effect.flatMap(
              jsonBody(completionBody(request, model, extra)),
              (httpRequest) =>
                call(
                  "InferenceClient.chatCompletion",
                  model,
                  httpRequest,
                  decodeCompletionResponse,
                  progress,
                  cost
                )
            )),
          progress
        )
        return tracker === undefined ? run : tracked(tracker, request, progress, run)
      })

    const cachedCompletion = (
      request: ChatCompletionRequest,
      extra: Extra,
      use: CacheUse
    ): Effect.Effect<ChatCompletion, InferenceError.InferenceError> =>
      Effect.flatMap(Clock.currentTimeMillis, (start) => {
        const key = cacheKey(completionBody(request, request.model, extra))
        return use.read
          ? Effect.flatMap(
            use.cache.getOrCompute(
              key,
              Effect.map(
                completionCall(request, extra),
                (completion) => new ResponseCache.CachedCompletion({ completion })
              ),
              use.ttl
            ),
            ({ entry, hit }) => {
              const completion = entry._tag === "CachedCompletion"
                ? entry.completion
                : ChunkInternal.toCompletion(entry.chunks)
              return Effect.as(
                Effect.zipRight(
                  ResponseCacheInternal.countLookup(hit),
                  hit ? recordHit(request.model, false, start) : Effect.void
                ),
                completion
              )
            }
          )
          : Effect.tap(
            completionCall(request, extra),
            (completion) => use.cache.set(key, new ResponseCache.CachedCompletion({ completion }), use.ttl)
          )
      })

    const chatCompletion = (
      input: ChatCompletionRequestInput,
      callOptions?: InferenceClient.CallOptions
    ): Effect.Effect<ChatCompletion, InferenceError.InferenceError> =>
      Either.match(checked(input, callOptions), {
        onLeft: Effect.fail,
        // stream_options is refused by OpenAI-compatible servers unless stream is true
        onRight: ({ extra, request: { stream_options: _, ...request }, use }) =>
          use === undefined ? completionCall(request, extra) : cachedCompletion(request, extra, use)
      })

    const listModels = (): Effect.Effect<ReadonlyArray<Model>, InferenceError.InferenceError> =>
      Effect.suspend(() => {
        const progress: Progress = { attempts: 0, model: undefined, requestId: undefined }
        return withinTotal(
          call(
            "InferenceClient.listModels",
            undefined,
            listModelsRequest,
            (response, context, limits) => Effect.map(decodeModels(response, context, limits), (list) => list.data),
            progress
          ),
          progress
        )
      })

    // -------------------------------------------------------------------------
    // Streaming
    // -------------------------------------------------------------------------

    type Pull = Effect.Effect<Chunk.Chunk<ChatCompletionChunk>, Option.Option<InferenceError.InferenceError>>

    /**
     * Opens one streaming attempt: sends the request, classifies a non-2xx answer,
     * and returns a pull of decoded chunks. The pull skips batches with no event
     * (keep-alive comments), ends at `[DONE]` (or at the end of a body that gave
     * a choice its finish reason) and fails on a truncated body, an error frame,
     * a broken socket or an undecodable event.
     */
    const openStream = (
      request: HttpClientRequest.HttpClientRequest,
      context: classify.CallContext,
      progress: Progress,
      includeUsage: boolean,
      choices: number
    ): Effect.Effect<Pull, InferenceError.InferenceError, Scope.Scope> =>
      Effect.gen(function*() {
        // Let go of when the attempt's scope closes (the stream ends, fails or is left early): the scope, which holds
        // the slot, does not finish before the request is gone.
        const response = yield* BoundedBody.scoped(Effect.mapError(
          httpClient.execute(request),
          (error) => classify.fromHttpClientError(error, context)
        ))
        progress.requestId = classify.requestIdOf(response.headers, secret)
        if (response.status < 200 || response.status >= 300) return yield* failFromResponse(response, context, resolved)
        if (!isEventStream(response)) return yield* completionAsStream(response, context, includeUsage, resolved)
        const raw = yield* Stream.toPull(response.stream)
        const parser = sse.makeParser()
        let done = false
        // Every requested choice must finish: with n > 1, one finished choice does not complete the others, and a
        // server that sends fewer choices than were asked for has not answered in full.
        const finished = new Set<number>()
        const complete = () => finished.size === choices
        let out: Array<ChatCompletionChunk> = []
        const flush = (): Pull => {
          const batch = Chunk.unsafeFromArray(out)
          out = []
          return Effect.succeed(batch)
        }
        // An error that arrived in the same read as chunks before it: those chunks go out first.
        // It is built when it is raised, so that its chunksDelivered counts those chunks.
        let pending: (() => InferenceError.InferenceError) | undefined
        const fail = (error: () => InferenceError.InferenceError): Pull => {
          if (out.length === 0) return Effect.fail(Option.some(error()))
          pending = error
          return flush()
        }
        // Reading ended: every chunk of the last read has been flushed already.
        const failNow = (error: InferenceError.InferenceError) => Effect.fail(Option.some(error))
        // Until the first output every byte read counts, so that a flood of empty or role-only chunks (or comments)
        // is cut off; after it, each event is bounded by the parser and each gap by the idle timeout.
        let outputSeen = false
        let bytesBeforeOutput = 0
        const onEnd = (cause: Option.Option<HttpClientError.ResponseError>) =>
          Option.match(cause, {
            // A body that ends after a finish reason is complete even without [DONE].
            onNone: () => complete() ? Effect.fail(Option.none()) : failNow(classify.truncated(response, context)),
            onSome: (error) => failNow(classify.fromHttpClientError(error, context))
          })
        const decodeBytes = (reads: Chunk.Chunk<Uint8Array>): Pull => {
          for (const bytes of reads) {
            const events = parser.feed(bytes)
            if (events instanceof sse.Overflow) {
              const size = events.size
              return fail(() =>
                classify.decodeFailure(
                  response,
                  `an SSE line is too large: it exceeded ${size} bytes with no end of line`,
                  context
                )
              )
            }
            const failed = decodeEvents(events)
            if (failed !== undefined) return failed
            if (done) break
            if (!outputSeen) {
              bytesBeforeOutput += bytes.length
              if (bytesBeforeOutput > resolved.maxBytesBeforeFirstOutput) {
                const read = bytesBeforeOutput
                return fail(() =>
                  classify.decodeFailure(
                    response,
                    `the stream is too large before its first output: ${read} bytes with no content, over ` +
                      `maxBytesBeforeFirstOutput (${resolved.maxBytesBeforeFirstOutput} bytes)`,
                    context
                  )
                )
              }
            }
          }
          if (out.length > 0) return flush()
          return done ? Effect.fail(Option.none()) : pull
        }
        /** Decodes the events of one read into `out`; a pull that fails, if one does. */
        const decodeEvents = (events: ReadonlyArray<sse.Event>): Pull | undefined => {
          for (const event of events) {
            if (event.data === "[DONE]") {
              if (!complete()) return fail(() => classify.truncated(response, context))
              done = true
              break
            }
            let json: unknown
            try {
              json = JSON.parse(event.data)
            } catch {
              return fail(() => classify.decodeFailure(response, "an SSE event is not JSON", context))
            }
            if (event.event === "error" || classify.isErrorEvent(json)) {
              return Effect.flatMap(
                Clock.currentTimeMillis,
                (now) => fail(() => classify.fromErrorFrame(event.data, now, context))
              )
            }
            const decoded = decodeChunk(json)
            if (Either.isLeft(decoded)) {
              return fail(() => classify.decodeFailure(response, decoded.left, context))
            }
            for (const choice of decoded.right.choices) {
              if (
                choice.finish_reason !== null && Number.isInteger(choice.index) && choice.index >= 0 &&
                choice.index < choices
              ) {
                finished.add(choice.index)
              }
            }
            if (!outputSeen) outputSeen = ChunkInternal.hasContent(decoded.right)
            out.push(decoded.right)
          }
          return undefined
        }
        const pull: Pull = Effect.suspend(() => {
          if (pending !== undefined) return Effect.fail(Option.some(pending()))
          return done ? Effect.fail(Option.none()) : Effect.flatMap(Effect.catchAll(raw, onEnd), decodeBytes)
        })
        return pull
      })

    /**
     * The rest of a stream, failed with `idle()` when the server sends nothing for
     * `idleTimeout`. A race per pull (`Effect.timeout`) forks two fibers for every
     * read, which in a stream paced token by token cost more than the read; so one
     * fiber reads ahead by a batch into a queue, and one watchdog, waking once per
     * `idleTimeout`, stops the reader (aborting the request) when its current read
     * has waited too long. Time the reader spends waiting for the consumer does
     * not count: a slow consumer is not a stalled server.
     */
    const idleGuarded = (
      pull: Pull,
      idle: () => Option.Option<InferenceError.InferenceError>
    ): Effect.Effect<Pull, never, Scope.Scope> =>
      Effect.gen(function*() {
        type Item = Exit.Exit<Chunk.Chunk<ChatCompletionChunk>, Option.Option<InferenceError.InferenceError>> | "idle"
        const queue = yield* Queue.bounded<Item>(1)
        const clock = yield* Effect.clock
        const idleMillis = Duration.toMillis(resolved.idleTimeout)
        /** When the reader's current read began; `undefined` while it waits for the consumer. */
        let readingSince: number | undefined = clock.unsafeCurrentTimeMillis()
        const read: Effect.Effect<void> = Effect.flatMap(
          Effect.exit(Effect.suspend(() => {
            readingSince = clock.unsafeCurrentTimeMillis()
            return pull
          })),
          (exit) => {
            readingSince = undefined
            return Effect.zipRight(Queue.offer(queue, exit), Exit.isSuccess(exit) ? read : Effect.void)
          }
        )
        const reader = yield* Effect.forkScoped(read)
        const watch: Effect.Effect<void> = Effect.suspend(() => {
          const since = readingSince
          const now = clock.unsafeCurrentTimeMillis()
          if (since !== undefined && now - since >= idleMillis) {
            return Effect.zipRight(Fiber.interrupt(reader), Queue.offer(queue, "idle"))
          }
          return Effect.zipRight(Effect.sleep(since === undefined ? idleMillis : since + idleMillis - now), watch)
        })
        yield* Effect.forkScoped(watch)
        // The idle error is built when it is taken, so that its chunksDelivered counts every chunk before it.
        return Effect.flatMap(Queue.take(queue), (item) => item === "idle" ? Effect.fail(idle()) : item)
      })

    interface Started {
      readonly prefix: ReadonlyArray<ChatCompletionChunk>
      readonly pull: Pull
      readonly ended: boolean
      readonly context: classify.CallContext
      /** The attempt's place in the rate limits, settled from the usage in the last chunk. */
      readonly permit: RateLimit.Permit | undefined
    }

    /** The body of a streaming request to `model`: usage is asked for unless the caller said not to. */
    const streamBody = (request: ChatCompletionRequest, model: string, extra: Extra) => ({
      ...request,
      model,
      stream: true,
      stream_options: { include_usage: true, ...request.stream_options },
      ...extra
    })

    const liveStream = (
      request: ChatCompletionRequest,
      extra: Extra
    ): Stream.Stream<ChatCompletionChunk, InferenceError.InferenceError> => {
      const estimatedTokens = limiter === undefined ? 0 : RateLimit.estimateTokens(request)
      const includeUsage = request.stream_options?.include_usage !== false
      const choices = request.n ?? 1
      /** The stream of one model, up to its first content, retried by the policy. */
      const startFor = (model: string, progress: Progress) =>
        Effect.gen(function*() {
          const httpRequest = yield* jsonBody(streamBody(request, model, extra))
          const firstChunkTimeout = (n: number) =>
            new InferenceError.TimeoutError({
              phase: "firstChunk",
              timeout: resolved.firstChunkTimeout,
              model,
              attempts: n
            })
          const outer = yield* Effect.scope
          /**
           * One attempt, in a scope of its own that is closed (aborting the request and
           * freeing the slot) if the attempt fails, and kept open for the rest of the
           * stream if it succeeds. It succeeds once content arrives: until then nothing
           * has reached the consumer, so any failure can be retried from scratch.
           */
          const attempt = (n: number): Effect.Effect<Started, InferenceError.InferenceError> =>
            Effect.flatMap(Scope.fork(outer, ExecutionStrategy.sequential), (scope) => {
              progress.attempts++
              progress.model = model
              const context: classify.CallContext = {
                model,
                attempt: n,
                secret,
                baseUrl: resolved.baseUrl,
                chunksDelivered: undefined
              }
              const start = Effect.gen(function*() {
                const pull = yield* openStream(httpRequest, context, progress, includeUsage, choices)
                const prefix: Array<ChatCompletionChunk> = []
                while (true) {
                  const batch = yield* Effect.either(pull)
                  if (Either.isLeft(batch)) {
                    if (Option.isSome(batch.left)) return yield* Effect.fail(batch.left.value)
                    return { prefix, pull, ended: true, context }
                  }
                  prefix.push(...batch.right)
                  if (Chunk.some(batch.right, ChunkInternal.hasContent)) {
                    return { prefix, pull, ended: false, context }
                  }
                }
              }).pipe((effect) =>
                timeout.timeoutFail(effect, {
                  duration: resolved.firstChunkTimeout,
                  onTimeout: () => firstChunkTimeout(n)
                })
              )
              let permit: RateLimit.Permit | undefined
              // Waiting for a slot stays interruptible (acquireRelease would not be); once taken, it is released with the scope.
              const slot = slots === undefined ? Effect.void : slots.takeScoped
              const permitted = Effect.gen(function*() {
                // After the slot and before the first-chunk timer: a wait for quota is not the server's fault.
                if (limiter !== undefined) permit = yield* limiter.acquire(estimatedTokens)
                return { ...(yield* start), permit }
              })
              // The breaker inside the slot, as for calls.
              return Effect.zipRight(Scope.extend(slot, scope), guarded(model, Scope.extend(permitted, scope)))
                .pipe(
                  Effect.onError((cause) =>
                    Effect.zipRight(
                      // A refused or unsent attempt gives its tokens back; the scope would charge the estimate.
                      permit === undefined ? Effect.void : permit.settle(RateLimit.tokensOfFailure(cause)),
                      Scope.close(scope, Exit.void)
                    )
                  )
                )
            })
          return yield* inCall(retried(attempt))
        })
      const live = Stream.unwrapScoped(Effect.gen(function*() {
        const progress: Progress = { attempts: 0, model: request.model, requestId: undefined }
        // What the usage record needs, filled in as the stream goes.
        let failure: InferenceError.InferenceError | undefined
        let ended = false
        let usage: ChatCompletionChunk["usage"]
        let generatedChars = 0
        let reservation: UsageTracker.Reservation | undefined
        if (tracker !== undefined) {
          const start = yield* Clock.currentTimeMillis
          // Recorded when the stream's scope closes, however it ends.
          yield* Effect.addFinalizer((exit) =>
            recordCall(tracker, request, progress, start, {
              stream: true,
              reservation,
              usage: usage !== undefined
                ? reported(usage)
                : generatedChars > 0
                // Left early, or broke off, before the usage chunk: what was seen of it.
                ? {
                  promptTokens: reservation?.promptTokens ?? tokens.estimatePromptTokens(request),
                  completionTokens: Math.ceil(generatedChars / tokens.CHARS_PER_TOKEN),
                  estimated: true
                }
                : undefined,
              ...(failure !== undefined
                ? { error: failure }
                : ended
                ? {}
                : Exit.isFailure(exit) && !Cause.isInterruptedOnly(exit.cause)
                ? { defect: true }
                : { interrupted: true })
            })
          )
          reservation = yield* Effect.tapError(tracker.reserve(request, modelsOf(request.model)), (error) =>
            Effect.sync(() => {
              failure = error
            }))
        }
        const started = yield* withinTotal(
          withFallback(request.model, (model) =>
            startFor(model, progress)),
          progress
        ).pipe(Effect.tapError((error) =>
          Effect.sync(() => {
            failure = error
          })
        ))
        const { context } = started
        const idle = (): Option.Option<InferenceError.InferenceError> =>
          Option.some(
            new InferenceError.TimeoutError({
              phase: "idle",
              timeout: resolved.idleTimeout,
              model: context.model,
              attempts: context.attempt,
              chunksDelivered: context.chunksDelivered
            })
          )
        const rest: Pull = started.ended ? Effect.fail(Option.none()) : yield* idleGuarded(started.pull, idle)
        let prefix = started.prefix.length > 0 ? Chunk.unsafeFromArray(started.prefix) : undefined
        // Counted as chunks leave for the consumer: a later failure is not retried and says how far it got; the
        // usage chunk settles the rate-limit permit.
        const deliver = (chunks: Chunk.Chunk<ChatCompletionChunk>): Pull => {
          context.chunksDelivered = (context.chunksDelivered ?? 0) + chunks.length
          let settle: Effect.Effect<void> | undefined
          for (const chunk of chunks) {
            if (tracker !== undefined) {
              generatedChars += ChunkInternal.contentLength(chunk)
            }
            if (chunk.usage !== undefined) {
              usage = chunk.usage
              if (started.permit !== undefined) {
                settle = started.permit.settle(tokens.reportedTotal(chunk.usage))
              }
            }
          }
          return settle === undefined ? Effect.succeed(chunks) : Effect.as(settle, chunks)
        }
        const stop = (cause: Option.Option<InferenceError.InferenceError>): Pull => {
          if (Option.isNone(cause)) {
            ended = true
            return tracing
              ? Effect.zipRight(Effect.annotateCurrentSpan("inference.outcome", "success"), Effect.fail(cause))
              : Effect.fail(cause)
          }
          const error = cause.value
          failure = error
          const logged = logFailure(error, context.attempt, Option.none())
          return Effect.zipRight(
            tracing ? Effect.zipRight(logged, Effect.annotateCurrentSpan("inference.outcome", error._tag)) : logged,
            Effect.fail(cause)
          )
        }
        // One pull for the consumer, doing in one place what stream stages would do per read (each stage costs a
        // few µs, and a stream paced token by token has a read per chunk).
        const next: Pull = Effect.suspend(() => {
          if (prefix !== undefined) {
            const first = prefix
            prefix = undefined
            return deliver(first)
          }
          return Effect.matchEffect(rest, { onSuccess: deliver, onFailure: stop })
        })
        const chunks = Stream.repeatEffectChunkOption(next)
        return tracing
          ? Stream.concat(Stream.execute(Effect.annotateCurrentSpan("inference.attempts", context.attempt)), chunks)
          : chunks
      }))
      return tracing
        ? live.pipe(
          Stream.withSpan("InferenceClient.streamChatCompletion", {
            kind: "client",
            attributes: { "inference.model": request.model }
          })
        )
        : live
    }

    /**
     * A stream through the cache: a fresh entry is replayed chunk by chunk;
     * otherwise the live stream is stored once it has been read to its end.
     */
    const cachedStream = (
      request: ChatCompletionRequest,
      extra: Extra,
      use: CacheUse
    ): Stream.Stream<ChatCompletionChunk, InferenceError.InferenceError> =>
      Stream.unwrap(Effect.gen(function*() {
        const start = yield* Clock.currentTimeMillis
        const key = cacheKey(streamBody(request, request.model, extra))
        if (use.read) {
          const found = yield* use.cache.get(key)
          yield* ResponseCacheInternal.countLookup(Option.isSome(found))
          if (Option.isSome(found)) {
            yield* recordHit(request.model, true, start)
            const entry = found.value
            return Stream.fromIterable(
              entry._tag === "CachedStream" ? entry.chunks : ChunkInternal.fromCompletion(entry.completion)
            )
          }
        }
        return Stream.suspend(() => {
          const chunks: Array<ChatCompletionChunk> = []
          return liveStream(request, extra).pipe(
            Stream.mapChunks((batch) => {
              for (const chunk of batch) {
                chunks.push(chunk)
              }
              return batch
            }),
            Stream.onEnd(Effect.suspend(() =>
              use.cache.set(key, new ResponseCache.CachedStream({ chunks }), use.ttl)
            ))
          )
        })
      }))

    const streamChatCompletion = (
      input: ChatCompletionRequestInput,
      callOptions?: InferenceClient.CallOptions
    ): Stream.Stream<ChatCompletionChunk, InferenceError.InferenceError> =>
      Either.match(checked(input, callOptions), {
        onLeft: (error) => Stream.fail(error),
        onRight: ({ extra, request, use }) =>
          use === undefined ? liveStream(request, extra) : cachedStream(request, extra, use)
      })

    return { chatCompletion, streamChatCompletion, listModels }
  })
