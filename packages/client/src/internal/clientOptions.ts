/**
 * Where the client's options are checked and resolved: once, when the layer is
 * built, into the values every call runs with. Each option is checked by a
 * Schema (its type and range, unknown keys refused) and every refusal names
 * the option's path; what a type cannot say (a URL, a key a header can carry)
 * is checked after it.
 */
import type * as HttpClient from "@effect/platform/HttpClient"
import * as Config from "effect/Config"
import * as ConfigError from "effect/ConfigError"
import * as Duration from "effect/Duration"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as Predicate from "effect/Predicate"
import * as Redacted from "effect/Redacted"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import type { Options as CircuitBreakerOptions } from "../CircuitBreaker.js"
import type * as InferenceClient from "../InferenceClient.js"
import * as InferenceError from "../InferenceError.js"
import type * as RateLimit from "../RateLimit.js"
import type { Options as RetryOptions } from "../RetryPolicy.js"
import type * as UsageTracker from "../UsageTracker.js"
import * as AdaptiveCore from "./adaptiveCore.js"
import * as BoundedBody from "./boundedBody.js"
import * as CircuitBreakerInternal from "./circuitBreaker.js"
import * as checks from "./options.js"
import * as RateLimitInternal from "./rateLimit.js"
import * as RetryPolicy from "./retryPolicy.js"
import * as UsageTrackerInternal from "./usageTracker.js"

/** @internal */
export const DEFAULT_BASE_URL = "https://api.inference.wandb.ai/v1"

const DEFAULT_TIMEOUT = Duration.seconds(60)
const DEFAULT_FIRST_CHUNK_TIMEOUT = Duration.seconds(60)
const DEFAULT_IDLE_TIMEOUT = Duration.seconds(30)
const DEFAULT_MAX_CONCURRENCY = 64
const PROJECT = /^[^/\s]+\/[^/\s]+$/

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
  /** The `adaptiveConcurrency` option, checked: `undefined` when it is off. */
  readonly adaptiveConcurrency: AdaptiveCore.Options | undefined
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
  adaptiveConcurrency: Schema.optional(
    checks.check(
      (u): u is false | InferenceClient.AdaptiveConcurrency => u === false || isRecord(u),
      "false or options"
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

/** The options of adaptive concurrency, each checked; `adaptiveConcurrency.` prefixes each path in a message. */
const AdaptiveOptions = Schema.Struct({
  adaptiveConcurrency: Schema.Struct({
    initial: Schema.optional(checks.wholeNumber(1)),
    min: Schema.optional(checks.wholeNumber(1)),
    max: Schema.optional(checks.wholeNumber(1))
  })
})

const decodeAdaptiveOptions = checks.decoder(AdaptiveOptions)

/** The most a limit grows to when `maxConcurrency` is `Infinity` and `adaptiveConcurrency.max` is not given. */
const DEFAULT_ADAPTIVE_MAX = 1024

/** Adaptive concurrency's options, within `maxConcurrency`; `undefined` when it is off. */
const resolveAdaptive = (
  option: InferenceClient.AdaptiveConcurrency | false | undefined,
  maxConcurrency: number
): Either.Either<AdaptiveCore.Options | undefined, string> =>
  option === false ? Either.right(undefined) : Either.gen(function*() {
    const given = checks.defined(
      (yield* decodeAdaptiveOptions({ adaptiveConcurrency: option ?? {} })).adaptiveConcurrency
    )
    const max = given.max ?? (maxConcurrency === Infinity ? DEFAULT_ADAPTIVE_MAX : maxConcurrency)
    if (max > maxConcurrency) {
      return yield* Either.left(
        `adaptiveConcurrency.max (${max}) must be at most maxConcurrency (${maxConcurrency}): the limit never goes above it`
      )
    }
    const min = given.min ?? 1
    if (min > max) return yield* Either.left(`adaptiveConcurrency.min (${min}) must be at most its max (${max})`)
    const initial = given.initial ?? Math.min(max, Math.max(min, AdaptiveCore.DEFAULT_INITIAL))
    if (initial < min || initial > max) {
      return yield* Either.left(
        `adaptiveConcurrency.initial (${initial}) must be between its min (${min}) and max (${max})`
      )
    }
    return { initial, min, max }
  })

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
    const adaptiveConcurrency = yield* resolveAdaptive(options.adaptiveConcurrency, maxConcurrency)
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
      adaptiveConcurrency,
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
