/**
 * Where a status, a transport failure or a bad body becomes an `InferenceError`.
 * Every method of the client maps its failures here, and nowhere else.
 */
import type * as HttpClientError from "@effect/platform/HttpClientError"
import type * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import * as Duration from "effect/Duration"
import * as Option from "effect/Option"
import * as ParseResult from "effect/ParseResult"
import * as Predicate from "effect/Predicate"
import * as InferenceError from "../InferenceError.js"

/**
 * What the classifier knows about the call besides the response.
 *
 * @internal
 */
export interface CallContext {
  readonly model: string | undefined
  readonly attempt: number
  /** Removed from any text that ends up in an error (a server that echoes the key must not leak it). */
  readonly secret: string
  /** For a stream that has started: the chunks the consumer has received so far. */
  chunksDelivered?: number | undefined
}

/**
 * The parts of an error body that classification looks at.
 *
 * @internal
 */
export interface ErrorBody {
  readonly message: string | undefined
  readonly code: string | undefined
  readonly type: string | undefined
  readonly param: string | undefined
}

const MAX_MESSAGE = 1000

const asText = (u: unknown): string | undefined =>
  typeof u === "string" ? u : typeof u === "number" || typeof u === "boolean" ? String(u) : undefined

/**
 * Reads OpenAI's `{"error": {message, type, param, code}}`, the `{"detail": ...}`
 * of other layers (a string, or FastAPI's list of `{msg}`), `{"error": "text"}`,
 * `{"message": ...}`, or plain text.
 *
 * @internal
 */
export const parseErrorBody = (text: string): ErrorBody => {
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch {
    const trimmed = text.trim()
    return { message: trimmed === "" ? undefined : trimmed, code: undefined, type: undefined, param: undefined }
  }
  if (typeof json === "string" || typeof json === "number") {
    return { message: String(json), code: undefined, type: undefined, param: undefined }
  }
  if (Predicate.isRecord(json)) {
    const error = json.error
    if (Predicate.isRecord(error)) {
      return {
        message: asText(error.message),
        code: asText(error.code),
        type: asText(error.type),
        param: asText(error.param)
      }
    }
    if (typeof error === "string") return { message: error, code: undefined, type: undefined, param: undefined }
    const detail = json.detail
    if (typeof detail === "string") return { message: detail, code: undefined, type: undefined, param: undefined }
    if (Array.isArray(detail)) {
      const parts = detail.flatMap((d) => (Predicate.isRecord(d) && typeof d.msg === "string" ? [d.msg] : []))
      return { message: parts.join("; ") || undefined, code: undefined, type: undefined, param: undefined }
    }
    if (typeof json.message === "string") {
      return { message: json.message, code: asText(json.code), type: asText(json.type), param: undefined }
    }
  }
  return { message: undefined, code: undefined, type: undefined, param: undefined }
}

/**
 * `retry-after-ms` (milliseconds), else `retry-after` as seconds or as an HTTP
 * date relative to `now`. A date in the past means "now".
 *
 * @internal
 */
export const parseRetryAfter = (
  headers: Readonly<Record<string, string | undefined>>,
  now: number
): Option.Option<Duration.Duration> => {
  const ms = headers["retry-after-ms"]
  if (ms !== undefined) {
    const value = Number(ms.trim())
    if (ms.trim() !== "" && Number.isFinite(value) && value >= 0) return Option.some(Duration.millis(value))
  }
  const header = headers["retry-after"]
  if (header === undefined) return Option.none()
  const trimmed = header.trim()
  if (/^\d+(\.\d+)?$/.test(trimmed)) return Option.some(Duration.seconds(Number(trimmed)))
  // An HTTP date names its day or month in letters; Date.parse alone accepts "-1" or "1." as dates.
  if (!/[a-z]{3}/i.test(trimmed)) return Option.none()
  const date = Date.parse(trimmed)
  if (Number.isNaN(date)) return Option.none()
  return Option.some(Duration.millis(Math.max(0, date - now)))
}

/** @internal */
export const scrub = (text: string, secret: string): string => {
  // Cut the secret out before clipping, or a key straddling the cut would leave its start behind.
  const clean = secret.length >= 4 && text.includes(secret) ? text.split(secret).join("<redacted>") : text
  return clean.length > MAX_MESSAGE ? `${clean.slice(0, MAX_MESSAGE)}…` : clean
}

const scrubOptional = (text: string | undefined, secret: string): string | undefined =>
  text === undefined ? undefined : scrub(text, secret)

const QUOTA_CODES = new Set([
  "insufficient_quota",
  "quota_exceeded",
  "billing_hard_limit_reached",
  "billing_not_active"
])
const QUOTA_WORDS = /quota|credit|billing|spending (cap|limit)|payment/i
const PERSONAL_ACCOUNT = /personal account/i

const RATE_LIMIT_CODES = new Set(["rate_limit_error", "rate_limit_exceeded", "requests", "tokens"])

/**
 * A 429 is about quota when its code or type says so; a code or type naming a rate
 * limit settles it the other way, whatever the message adds (OpenAI's rate-limit
 * messages mention billing). Only without either do the message's words decide.
 */
const saysQuota = (body: ErrorBody): boolean => {
  for (const name of [body.code, body.type]) {
    if (name === undefined) continue
    if (QUOTA_CODES.has(name)) return true
    if (RATE_LIMIT_CODES.has(name)) return false
  }
  return body.message !== undefined && QUOTA_WORDS.test(body.message)
}

const permissionReason = (body: ErrorBody): InferenceError.PermissionDeniedReason => {
  const message = body.message ?? ""
  if (/country|region|territor/i.test(message) || body.code === "unsupported_country_region_territory") {
    return "RegionNotSupported"
  }
  if (/not enabled/i.test(message)) return "InferenceNotEnabled"
  if (PERSONAL_ACCOUNT.test(message)) return "PersonalAccount"
  return "Other"
}

/**
 * Status first, then the body's `code`/`type`/`message`, as W&B documents its errors.
 *
 * @internal
 */
export const fromStatus = (
  status: number,
  headers: Readonly<Record<string, string | undefined>>,
  body: ErrorBody,
  now: number,
  context: CallContext
): InferenceError.InferenceError => {
  const fields = {
    status,
    requestId: headers["x-request-id"] ?? headers["request-id"],
    code: scrubOptional(body.code, context.secret),
    type: scrubOptional(body.type, context.secret),
    param: scrubOptional(body.param, context.secret),
    serverMessage: scrubOptional(body.message, context.secret),
    model: context.model,
    retryAfter: parseRetryAfter(headers, now),
    attempts: context.attempt,
    chunksDelivered: context.chunksDelivered
  }
  switch (status) {
    case 400:
      return new InferenceError.BadRequestError(fields)
    case 401:
      return new InferenceError.AuthenticationError(fields)
    case 402:
      return new InferenceError.QuotaExceededError(fields)
    case 403:
      return new InferenceError.PermissionDeniedError({ ...fields, reason: permissionReason(body) })
    case 404:
      return new InferenceError.NotFoundError(fields)
    case 409:
      return new InferenceError.ConflictError(fields)
    case 422:
      return new InferenceError.UnprocessableEntityError(fields)
    case 429: {
      if (saysQuota(body)) return new InferenceError.QuotaExceededError(fields)
      // W&B answers 429 to personal accounts; no amount of waiting changes the account type.
      if (body.message !== undefined && PERSONAL_ACCOUNT.test(body.message)) {
        return new InferenceError.PermissionDeniedError({ ...fields, reason: "PersonalAccount" })
      }
      return new InferenceError.RateLimitError(fields)
    }
    case 503:
      return new InferenceError.ServiceUnavailableError(fields)
    default:
      return status >= 500 && status <= 599
        ? new InferenceError.InternalServerError(fields)
        : new InferenceError.UnexpectedStatusError(fields)
  }
}

/** @internal */
export const fromErrorResponse = (
  response: HttpClientResponse.HttpClientResponse,
  text: string,
  now: number,
  context: CallContext
): InferenceError.InferenceError => fromStatus(response.status, response.headers, parseErrorBody(text), now, context)

const describeCause = (cause: unknown): string => {
  const parts: Array<string> = []
  let current: unknown = cause
  for (let depth = 0; depth < 4 && current !== undefined && current !== null; depth++) {
    if (Predicate.isRecord(current) || current instanceof Error) {
      const record = current as { readonly code?: unknown; readonly message?: unknown; readonly cause?: unknown }
      if (typeof record.code === "string" && !parts.includes(record.code)) parts.push(record.code)
      if (typeof record.message === "string" && record.message !== "" && !parts.includes(record.message)) {
        parts.push(record.message)
      }
      current = record.cause
    } else {
      parts.push(String(current))
      break
    }
  }
  return parts.length === 0 ? "unknown transport failure" : parts.join(": ")
}

/**
 * A failure of the transport. A body that could not be read to its end is a
 * connection failure too (the socket broke), not a decoding one.
 *
 * @internal
 */
export const fromHttpClientError = (
  error: HttpClientError.HttpClientError,
  context: CallContext
): InferenceError.InferenceError => {
  const base = { model: context.model, attempts: context.attempt, chunksDelivered: context.chunksDelivered }
  // A broken transport is described by its cause chain (ECONNRESET: socket hang up); a bad URL or body by itself.
  const cause = error._tag === "ResponseError" || error.reason === "Transport" || error.description === undefined
    ? describeCause(error.cause)
    : error.description
  if (error._tag === "ResponseError") {
    const fields = { ...base, status: error.response.status, requestId: error.response.headers["x-request-id"] }
    return error.reason === "EmptyBody"
      ? new InferenceError.ResponseDecodeError({ ...fields, description: "empty body" })
      : new InferenceError.ConnectionError({ ...fields, description: scrub(cause, context.secret) })
  }
  return new InferenceError.ConnectionError({ ...base, description: scrub(cause, context.secret) })
}

/** The first few mismatches as `path: issue`, not the whole tree (which can be long and repeats the body). */
const describeParseError = (error: ParseResult.ParseError): string => {
  const issues = ParseResult.ArrayFormatter.formatErrorSync(error)
  const shown = issues.slice(0, 3).map((i) => `${i.path.length === 0 ? "body" : i.path.join(".")}: ${i.message}`)
  return issues.length > 3 ? `${shown.join("; ")}; and ${issues.length - 3} more` : shown.join("; ")
}

/** @internal */
export const decodeFailure = (
  response: HttpClientResponse.HttpClientResponse,
  description: string | ParseResult.ParseError,
  context: CallContext
): InferenceError.ResponseDecodeError =>
  new InferenceError.ResponseDecodeError({
    status: response.status,
    requestId: response.headers["x-request-id"],
    model: context.model,
    attempts: context.attempt,
    chunksDelivered: context.chunksDelivered,
    description: scrub(typeof description === "string" ? description : describeParseError(description), context.secret)
  })

/**
 * A stream that ended unfinished. Before any content reached the consumer it is a
 * broken connection (a proxy closing it, say), retried like one; after, the answer
 * the consumer holds is cut short.
 *
 * @internal
 */
export const truncated = (
  response: HttpClientResponse.HttpClientResponse,
  context: CallContext
): InferenceError.InferenceError =>
  context.chunksDelivered === undefined
    ? new InferenceError.ConnectionError({
      model: context.model,
      attempts: context.attempt,
      status: response.status,
      requestId: response.headers["x-request-id"],
      description: "the stream ended before its first content"
    })
    : decodeFailure(response, "the stream ended before [DONE] or a finish_reason (truncated)", context)

// The quota and rate-limit names are the ones a 429 is classified by, so a frame and a status agree.
const FRAME_TYPES: Record<string, number> = {
  invalid_request_error: 400,
  badrequesterror: 400,
  authentication_error: 401,
  invalid_api_key: 401,
  ...Object.fromEntries([...QUOTA_CODES].map((code) => [code, 402])),
  permission_error: 403,
  not_found_error: 404,
  model_not_found: 404,
  ...Object.fromEntries([...RATE_LIMIT_CODES].map((code) => [code, 429])),
  server_error: 500,
  api_error: 500,
  internal_error: 500,
  overloaded_error: 503,
  engine_overloaded: 503,
  service_unavailable: 503
}

/**
 * The status an SSE error frame stands for: its `code` when that is an HTTP
 * status (vLLM sends one), else its `type` or `code` by name, else its message,
 * else 500. The stream itself was a 200, so the frame is all there is to go on.
 *
 * @internal
 */
export const frameStatus = (body: ErrorBody): number => {
  const code = body.code === undefined ? Number.NaN : Number(body.code)
  if (Number.isInteger(code) && code >= 400 && code <= 599) return code
  for (const name of [body.type, body.code]) {
    const status = name === undefined ? undefined : FRAME_TYPES[name.toLowerCase()]
    if (status !== undefined) return status
  }
  const message = body.message ?? ""
  if (/concurrency limit|rate limit|too many requests/i.test(message)) return 429
  if (QUOTA_WORDS.test(message)) return 402
  if (/overloaded|unavailable/i.test(message)) return 503
  return 500
}

/**
 * An SSE `error` frame (`{"error": {...}}` data) in the middle of a stream,
 * classified into the same errors as an HTTP status.
 *
 * @internal
 */
export const fromErrorFrame = (data: string, now: number, context: CallContext): InferenceError.InferenceError => {
  const body = parseErrorBody(data)
  return fromStatus(frameStatus(body), {}, body, now, context)
}
