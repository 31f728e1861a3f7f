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
  | { readonly _tag: "RateLimited"; readonly retryAfter?: RetryAfter | undefined }
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
  }
  | { readonly _tag: "SseCutBeforeDone"; readonly afterChunks: number }

/**
 * @since 0.1.0
 * @category models
 */
export type Tag = Fault["_tag"]

/** 400 with the server's own text. @since 0.1.0 @category constructors */
export const badRequest: Fault = { _tag: "BadRequest" }
/** 401 "Authentication failed". @since 0.1.0 @category constructors */
export const unauthorized: Fault = { _tag: "Unauthorized" }
/** 402 quota exceeded. @since 0.1.0 @category constructors */
export const quotaExceeded: Fault = { _tag: "QuotaExceeded" }
/** 403 "Country, region, or territory not supported". @since 0.1.0 @category constructors */
export const regionNotSupported: Fault = { _tag: "RegionNotSupported" }
/** 403 "The inference gateway is not enabled for your organization". @since 0.1.0 @category constructors */
export const gatewayNotEnabled: Fault = { _tag: "GatewayNotEnabled" }
/** 404 "The requested resource was not found". @since 0.1.0 @category constructors */
export const modelNotFound: Fault = { _tag: "ModelNotFound" }
/** 422 with a FastAPI-style `detail` list. @since 0.1.0 @category constructors */
export const unprocessable: Fault = { _tag: "Unprocessable" }
/** 429 quota, worded as W&B's older pages and with OpenAI's `insufficient_quota` code. @since 0.1.0 @category constructors */
export const quotaExceeded429: Fault = { _tag: "QuotaExceeded429" }
/** 429 "W&B Inference isn't available for personal accounts". @since 0.1.0 @category constructors */
export const personalAccount: Fault = { _tag: "PersonalAccount" }
/** 500 "The server had an error while processing your request". @since 0.1.0 @category constructors */
export const internalError: Fault = { _tag: "InternalError" }
/** 502 with a proxy's HTML page. @since 0.1.0 @category constructors */
export const badGateway: Fault = { _tag: "BadGateway" }
/** 503 "The engine is currently overloaded, please try again later". @since 0.1.0 @category constructors */
export const overloaded: Fault = { _tag: "Overloaded" }
/** 504 with a proxy's HTML page. @since 0.1.0 @category constructors */
export const gatewayTimeout: Fault = { _tag: "GatewayTimeout" }
/** Reads the request and never answers (no headers). @since 0.1.0 @category constructors */
export const hang: Fault = { _tag: "Hang" }
/** A 200 body that is not JSON. @since 0.1.0 @category constructors */
export const nonJsonBody: Fault = { _tag: "NonJsonBody" }
/** A 200 JSON body that is not a completion. @since 0.1.0 @category constructors */
export const wrongShapeBody: Fault = { _tag: "WrongShapeBody" }

/**
 * 429 "Concurrency limit reached for requests", with or without a wait.
 *
 * @since 0.1.0
 * @category constructors
 */
export const rateLimited = (retryAfter?: RetryAfter): Fault => ({ _tag: "RateLimited", retryAfter })

/**
 * Sends the headers and part of the body (`afterChunks` stream chunks, or half a
 * JSON body), then nothing more; with `keepAliveEveryMillis`, an SSE comment now
 * and then, as a live but stalled stream does.
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
 * @since 0.1.0
 * @category constructors
 */
export const connectionReset = (options: { readonly midBody?: boolean } = {}): Fault => ({
  _tag: "ConnectionReset",
  midBody: options.midBody ?? false
})

/**
 * For a streaming request: after `afterChunks` content chunks, an SSE `error`
 * event (`event: error` with `{"error": {...}}` data) and the end of the stream.
 * A non-streaming request gets the same error as its status instead.
 *
 * @since 0.1.0
 * @category constructors
 */
export const sseErrorFrame = (
  options: {
    readonly afterChunks?: number
    readonly status?: number
    readonly message?: string
    readonly code?: string
  } = {}
): Fault => ({
  _tag: "SseErrorFrame",
  afterChunks: options.afterChunks ?? 2,
  status: options.status ?? 500,
  message: options.message ?? "The server had an error while processing your request",
  code: options.code
})

/**
 * For a streaming request: after `afterChunks` content chunks the stream ends
 * cleanly, with no `finish_reason` and no `[DONE]`. A non-streaming request
 * gets half of its JSON body.
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
  sseCutBeforeDone()
]

/**
 * The faults a healthy but busy service shows (overload, rate limits, server
 * errors, resets): the default mix for `faultRate`.
 *
 * @since 0.1.0
 * @category constants
 */
export const transient: ReadonlyArray<Fault> = [
  rateLimited(),
  rateLimited({ millis: 50 }),
  internalError,
  badGateway,
  overloaded,
  gatewayTimeout,
  connectionReset()
]

/**
 * Reads a fault from its tag (`"Overloaded"`) or a tag with its first
 * parameter (`"RateLimited:2"` for `Retry-After: 2`), as the command line takes them.
 *
 * @since 0.1.0
 * @category parsing
 */
export const fromString = (text: string): Fault | undefined => {
  const parts = text.trim().split(":")
  if (parts.length > 2) return undefined
  const [tag, arg] = parts
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
