/**
 * The failures the simulator can play, each with W&B Inference's real status and
 * body (see its documented errors), plus the transport faults a real network
 * adds: hangs, stalls, resets and broken bodies.
 *
 * @since 0.1.0
 */

/**
 * When a 429 tells the client to wait, and how it says so.
 *
 * @since 0.1.0
 * @category models
 */
export interface RetryAfter {
  /** `Retry-After: <seconds>`. */
  readonly seconds?: number
  /** `retry-after-ms: <milliseconds>`. */
  readonly millis?: number
  /** `Retry-After: <HTTP date>`, this many seconds ahead. */
  readonly httpDateIn?: number
}

/**
 * One fault. Status faults answer with W&B's status and body; the others break
 * the exchange itself.
 *
 * @since 0.1.0
 * @category models
 */
export type Fault =
  | { readonly _tag: "BadRequest" }
  | { readonly _tag: "Unauthorized" }
  | { readonly _tag: "QuotaExceeded" }
  | { readonly _tag: "RegionNotSupported" }
  | { readonly _tag: "GatewayNotEnabled" }
  | { readonly _tag: "ModelNotFound" }
  | { readonly _tag: "Unprocessable" }
  | {
    readonly _tag: "RateLimited"
    readonly retryAfter?: RetryAfter | undefined
    /** Whose limit the body names; without one, the docs' sentence. See {@link rateLimited}. */
    readonly scope?: "model" | "project" | undefined
  }
  | { readonly _tag: "QuotaExceeded429" }
  | { readonly _tag: "PersonalAccount" }
  | { readonly _tag: "InternalError" }
  | { readonly _tag: "BadGateway" }
  | { readonly _tag: "Overloaded" }
  | { readonly _tag: "GatewayTimeout" }
  | { readonly _tag: "Hang" }
  | { readonly _tag: "StallMidBody"; readonly afterChunks: number; readonly keepAliveEveryMillis?: number | undefined }
  | { readonly _tag: "ConnectionReset"; readonly midBody: boolean }
  | { readonly _tag: "NonJsonBody" }
  | { readonly _tag: "WrongShapeBody" }
  | {
    readonly _tag: "SseErrorFrame"
    readonly afterChunks: number
    readonly status: number
    readonly message: string
    readonly code?: string | undefined
    readonly format?: SseErrorFormat | undefined
  }
  | { readonly _tag: "SseCutBeforeDone"; readonly afterChunks: number }

/**
 * @since 0.1.0
 * @category models
 */
export type Tag = Fault["_tag"]

/**
 * How an in-stream error is framed. `"vllm"` (the default, what W&B's vLLM engines
 * send): a data-only event `data: {"error": {message, type, param, code}}` with the
 * status as a numeric `code`, then `data: [DONE]`. `"vllm-legacy"`: older vLLM's
 * top-level `{"object": "error", message, type, param, code}`, then `data: [DONE]`.
 * `"openai"`: OpenAI's `event: error` line before the data (with a string `code`,
 * or null) and no `[DONE]`.
 *
 * @since 0.2.0
 * @category models
 */
export type SseErrorFormat = "vllm" | "vllm-legacy" | "openai"

/**
 * The message W&B Inference sends with a status, as its documentation and
 * observed answers word it; what a fault for that status says unless told otherwise.
 *
 * @since 0.2.0
 * @category constants
 */
export const messageOfStatus = (status: number): string => {
  switch (status) {
    case 400:
      return "Invalid request"
    case 401:
      return "Authentication failed"
    case 402:
      return "You exceeded your current quota, please check your plan and billing details"
    case 403:
      return "The inference gateway is not enabled for your organization"
    case 404:
      return "The requested resource was not found"
    case 429:
      return "Concurrency limit reached for requests"
    case 503:
      return "The engine is currently overloaded, please try again later"
    default:
      return "The server had an error while processing your request"
  }
}

/**
 * 400 with the server's own text.
 *
 * @since 0.1.0
 * @category constructors
 */
export const badRequest: Fault = { _tag: "BadRequest" }
/**
 * 401 "Authentication failed".
 *
 * @since 0.1.0
 * @category constructors
 */
export const unauthorized: Fault = { _tag: "Unauthorized" }
/**
 * 402 quota exceeded.
 *
 * @since 0.1.0
 * @category constructors
 */
export const quotaExceeded: Fault = { _tag: "QuotaExceeded" }
/**
 * 403 "Country, region, or territory not supported".
 *
 * @since 0.1.0
 * @category constructors
 */
export const regionNotSupported: Fault = { _tag: "RegionNotSupported" }
/**
 * 403 "The inference gateway is not enabled for your organization".
 *
 * @since 0.1.0
 * @category constructors
 */
export const gatewayNotEnabled: Fault = { _tag: "GatewayNotEnabled" }
/**
 * 404 "The requested resource was not found".
 *
 * @since 0.1.0
 * @category constructors
 */
export const modelNotFound: Fault = { _tag: "ModelNotFound" }
/**
 * 422 with a FastAPI-style `detail` list.
 *
 * @since 0.1.0
 * @category constructors
 */
export const unprocessable: Fault = { _tag: "Unprocessable" }
/**
 * 429 quota, worded as W&B's older pages and with OpenAI's `insufficient_quota` code.
 *
 * @since 0.1.0
 * @category constructors
 */
export const quotaExceeded429: Fault = { _tag: "QuotaExceeded429" }
/**
 * 429 "W&B Inference isn't available for personal accounts".
 *
 * @since 0.1.0
 * @category constructors
 */
export const personalAccount: Fault = { _tag: "PersonalAccount" }
/**
 * 500 "The server had an error while processing your request".
 *
 * @since 0.1.0
 * @category constructors
 */
export const internalError: Fault = { _tag: "InternalError" }
/**
 * 502 with a proxy's HTML page.
 *
 * @since 0.1.0
 * @category constructors
 */
export const badGateway: Fault = { _tag: "BadGateway" }
/**
 * 503 "The engine is currently overloaded, please try again later".
 *
 * @since 0.1.0
 * @category constructors
 */
export const overloaded: Fault = { _tag: "Overloaded" }
/**
 * 504 with a proxy's HTML page.
 *
 * @since 0.1.0
 * @category constructors
 */
export const gatewayTimeout: Fault = { _tag: "GatewayTimeout" }
/**
 * Reads the request and never answers (no headers).
 *
 * @since 0.1.0
 * @category constructors
 */
export const hang: Fault = { _tag: "Hang" }
/**
 * A 200 body that is not JSON.
 *
 * @since 0.1.0
 * @category constructors
 */
export const nonJsonBody: Fault = { _tag: "NonJsonBody" }
/**
 * A 200 JSON body that is not a completion.
 *
 * @since 0.1.0
 * @category constructors
 */
export const wrongShapeBody: Fault = { _tag: "WrongShapeBody" }

/**
 * A 429 for too many requests in flight, with or without a wait. Its body:
 *
 * - no `scope`: the sentence of W&B's documentation, "Concurrency limit reached for requests";
 * - `scope: "model"`: the answer observed from the real service, lower-case and naming the
 *   request's model, `concurrency limit reached for requests: <model>-project limit reached`
 *   with `code: "rate_limit_exceeded"` (what the simulator's own per-model limit sends);
 * - `scope: "project"`: the same shape for the project's limit,
 *   `concurrency limit reached for requests: project limit reached`.
 *
 * W&B documents no `Retry-After` or `retry-after-ms` header; `retryAfter` adds one,
 * as proxies and other OpenAI-compatible servers do.
 *
 * @example
 * ```ts
 * import { Fault, InferenceSimulator } from "@effect-inference/testing"
 * import { Effect } from "effect"
 *
 * // The next call gets a 429 with Retry-After: 2, the one after it a 503; later calls succeed.
 * const scripted = Effect.flatMap(InferenceSimulator.InferenceSimulator, (simulator) =>
 *   simulator.script(Fault.rateLimited({ seconds: 2 }), Fault.overloaded))
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const rateLimited = (
  retryAfter?: RetryAfter & { readonly scope?: "model" | "project" | undefined }
): Fault => {
  const { scope, ...wait } = retryAfter ?? {}
  return {
    _tag: "RateLimited",
    retryAfter: Object.keys(wait).length === 0 ? undefined : wait,
    ...(scope === undefined ? {} : { scope })
  }
}

/**
 * Sends the headers and part of the body (`afterChunks` stream chunks, or half a
 * JSON body), then nothing more; with `keepAliveEveryMillis`, an SSE comment now
 * and then, as a live but stalled stream does.
 *
 * @example
 * ```ts
 * import { Fault, InferenceSimulator } from "@effect-inference/testing"
 *
 * // A tenth of the calls stall after two chunks, kept alive by comments: only idleTimeout ends them.
 * const SimulatorLive = InferenceSimulator.layer({
 *   faultRate: 0.1,
 *   faults: [Fault.stallMidBody({ afterChunks: 2, keepAliveEveryMillis: 500 })]
 * })
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const stallMidBody = (
  options: { readonly afterChunks?: number; readonly keepAliveEveryMillis?: number } = {}
): Fault => ({
  _tag: "StallMidBody",
  afterChunks: options.afterChunks ?? 2,
  keepAliveEveryMillis: options.keepAliveEveryMillis
})

/**
 * Destroys the connection: before any response, or with `midBody` after the
 * headers and part of the body.
 *
 * @example
 * ```ts
 * import { Fault, InferenceSimulator } from "@effect-inference/testing"
 *
 * // Connections dropped before the answer and in the middle of it.
 * const SimulatorLive = InferenceSimulator.layer({
 *   faultRate: 0.2,
 *   faults: [Fault.connectionReset(), Fault.connectionReset({ midBody: true })]
 * })
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const connectionReset = (options: { readonly midBody?: boolean } = {}): Fault => ({
  _tag: "ConnectionReset",
  midBody: options.midBody ?? false
})

/**
 * For a streaming request: after `afterChunks` token chunks, an error frame in
 * vLLM's format (`data: {"error": {"message", "type", "param", "code": 500}}`, then
 * `data: [DONE]`; see {@link SseErrorFormat} for the others). The message is W&B's
 * for the status unless given, so `sseErrorFrame({ status: 503 })` says what the
 * HTTP 503 says. A non-streaming request gets the same error as its status instead.
 *
 * @example
 * ```ts
 * import { Fault } from "@effect-inference/testing"
 *
 * // An overloaded engine reporting inside a stream that has already sent three chunks, as OpenAI frames it.
 * const midStream503 = Fault.sseErrorFrame({ afterChunks: 3, status: 503, format: "openai" })
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const sseErrorFrame = (
  options: {
    readonly afterChunks?: number
    readonly status?: number
    readonly message?: string
    /** A string `code` for the `"openai"` format and for the status answer of a non-streaming request. */
    readonly code?: string
    readonly format?: SseErrorFormat
  } = {}
): Fault => ({
  _tag: "SseErrorFrame",
  afterChunks: options.afterChunks ?? 2,
  status: options.status ?? 500,
  message: options.message ?? messageOfStatus(options.status ?? 500),
  code: options.code,
  format: options.format ?? "vllm"
})

/**
 * For a streaming request: after `afterChunks` content chunks the stream ends
 * cleanly, with no `finish_reason` and no `[DONE]`. A non-streaming request
 * gets half of its JSON body.
 *
 * @example
 * ```ts
 * import { Fault, InferenceSimulator } from "@effect-inference/testing"
 * import { Effect } from "effect"
 *
 * // A stream that ends cleanly after one chunk, unfinished: the client must not take it for a short answer.
 * const cut = Effect.flatMap(InferenceSimulator.InferenceSimulator, (simulator) =>
 *   simulator.script(Fault.sseCutBeforeDone({ afterChunks: 1 })))
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const sseCutBeforeDone = (options: { readonly afterChunks?: number } = {}): Fault => ({
  _tag: "SseCutBeforeDone",
  afterChunks: options.afterChunks ?? 2
})

/**
 * Every kind of fault once, with default parameters: the mix for chaos runs.
 *
 * @since 0.1.0
 * @category constants
 */
export const all: ReadonlyArray<Fault> = [
  badRequest,
  unauthorized,
  quotaExceeded,
  regionNotSupported,
  gatewayNotEnabled,
  modelNotFound,
  unprocessable,
  rateLimited(),
  rateLimited({ scope: "model" }),
  rateLimited({ scope: "project" }),
  rateLimited({ seconds: 1 }),
  rateLimited({ millis: 50 }),
  quotaExceeded429,
  personalAccount,
  internalError,
  badGateway,
  overloaded,
  gatewayTimeout,
  hang,
  stallMidBody(),
  connectionReset(),
  connectionReset({ midBody: true }),
  nonJsonBody,
  wrongShapeBody,
  sseErrorFrame(),
  sseErrorFrame({ status: 503 }),
  sseErrorFrame({ format: "openai" }),
  sseCutBeforeDone()
]

/**
 * The faults a healthy but busy service shows (overload, concurrency limits in
 * the real service's words, server errors, resets): the default mix for
 * `faultRate`. No fault in it sends a `Retry-After` or `retry-after-ms` header,
 * as W&B documents none; add `rateLimited({ millis })` to a mix to test one.
 *
 * @since 0.1.0
 * @category constants
 */
export const transient: ReadonlyArray<Fault> = [
  rateLimited({ scope: "model" }),
  rateLimited({ scope: "project" }),
  internalError,
  badGateway,
  overloaded,
  gatewayTimeout,
  connectionReset()
]

/**
 * Reads a fault from its tag (`"Overloaded"`) or a tag with its first
 * parameter (`"RateLimited:2"` for `Retry-After: 2`, `"RateLimited:model"` for the
 * real service's per-model body, `"RateLimited:project"` for its per-project one), as the command line takes them.
 *
 * @example
 * ```ts
 * import { Fault } from "@effect-inference/testing"
 * import { deepStrictEqual } from "node:assert"
 *
 * deepStrictEqual(Fault.fromString("RateLimited:2"), Fault.rateLimited({ seconds: 2 }))
 * deepStrictEqual(Fault.fromString("Overloaded"), Fault.overloaded)
 * deepStrictEqual(Fault.fromString("Nonsense"), undefined)
 * ```
 *
 * @since 0.1.0
 * @category parsing
 */
export const fromString = (text: string): Fault | undefined => {
  const parts = text.trim().split(":")
  if (parts.length > 2) return undefined
  const [tag, arg] = parts
  if (tag === "RateLimited" && (arg === "model" || arg === "project")) return rateLimited({ scope: arg })
  if (tag === "ConnectionReset") {
    return arg === undefined || arg === "midBody"
      ? connectionReset({ midBody: arg === "midBody" })
      : undefined
  }
  const n = arg === undefined || arg === "" ? undefined : Number(arg)
  const count = n !== undefined && Number.isInteger(n) && n >= 0 ? n : undefined
  if (arg !== undefined && count === undefined) return undefined
  switch (tag) {
    case "RateLimited":
      return rateLimited(count === undefined ? undefined : { seconds: count })
    case "StallMidBody":
      return stallMidBody(count === undefined ? {} : { afterChunks: count })
    case "SseErrorFrame":
      return sseErrorFrame(count === undefined ? {} : { afterChunks: count })
    case "SseCutBeforeDone":
      return sseCutBeforeDone(count === undefined ? {} : { afterChunks: count })
    default:
      return arg === undefined ? all.find((f) => f._tag === tag) : undefined
  }
}
