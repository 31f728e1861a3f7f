/**
 * Where a status, a transport failure or a bad body becomes an `InferenceError`.
 * Every method of the client maps its failures here, and nowhere else.
 *
 * It is long because it is the one table of the error model: every status,
 * every body shape W&B and vLLM are seen to send, every SSE error frame and
 * every transport failure, each with its retry facts and hint. Split, the rules
 * that read the same body (status, then code, then type, then message) would
 * be read in several places.
 */
import type * as HttpClientError from "@effect/platform/HttpClientError"
import type * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import * as Duration from "effect/Duration"
import * as Option from "effect/Option"
import type * as ParseResult from "effect/ParseResult"
import * as Predicate from "effect/Predicate"
import * as AST from "effect/SchemaAST"
import * as InferenceError from "../InferenceError.js"
import * as Scrub from "./scrub.js"

/**
 * What the classifier knows about the call besides the response.
 *
 * @internal
 */
export interface CallContext {
  readonly model: string | undefined
  readonly attempt: number
  /**
   * Cut out, with its encodings and any run of 8 of its characters, of any text a server sent that ends up in
   * an error (a server that echoes the key must not leak it): see `scrub.ts`.
   */
  readonly secret: string
  /** For a stream that has started: the chunks the consumer has received so far. */
  chunksDelivered?: number | undefined
  /** The base URL the call was sent to, quoted (scrubbed) in a `NotFoundError`'s hint. */
  readonly baseUrl?: string | undefined
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

const asText = (u: unknown): string | undefined =>
  typeof u === "string" ? u : typeof u === "number" || typeof u === "boolean" ? String(u) : undefined

/**
 * Reads OpenAI's `{"error": {message, type, param, code}}`, the `{"detail": ...}`
 * of other layers (a string, or FastAPI's list of `{msg}`), `{"error": "text"}`,
 * older vLLM's top-level `{"object": "error", message, type, param, code}` (or any
 * `{"message": ...}`), or plain text. A numeric `code` is read as its text.
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
    if (typeof json.message === "string" || json.object === "error") {
      return {
        message: asText(json.message),
        code: asText(json.code),
        type: asText(json.type),
        param: asText(json.param)
      }
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

/**
 * Text a server sent, as it may be kept: every echo of the key (in any case, URL-encoded, HTML-escaped, or
 * any run of 8 of its characters) replaced by `<redacted>`, then clipped to 1000 characters. The one
 * function for body text, SSE frame text and header values quoted in a message.
 *
 * @internal
 */
export const scrub = (text: string, secret: string): string => Scrub.forSecret(secret).message(text)

/**
 * The request id of a response: the first of `x-request-id` and `request-id` that is at most 128
 * characters of visible ASCII and holds no echo of the key. A value that fails is dropped, not repaired:
 * a request id with `<redacted>` in it would name no request.
 *
 * @internal
 */
export const requestIdOf = (
  headers: Readonly<Record<string, string | undefined>>,
  secret: string
): string | undefined => {
  const scrubber = Scrub.forSecret(secret)
  return scrubber.requestId(headers["x-request-id"]) ?? scrubber.requestId(headers["request-id"])
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

// OpenAI's rate-limit code and type, and the types of its per-request and per-token limits.
const RATE_LIMIT_CODES = new Set(["rate_limit_error", "rate_limit_exceeded", "requests", "tokens"])
const REGION_CODES = new Set(["unsupported_country_region_territory"])

/** The body's `code`, then its `type`: the order in which they decide, lower-cased. */
const names = (body: ErrorBody): ReadonlyArray<string> =>
  [body.code, body.type].flatMap((name) => (name === undefined || name === "" ? [] : [name.toLowerCase()]))

/**
 * What a 429 is: the first of `code` and `type` that names a quota or a rate
 * limit settles it, whatever the message adds (OpenAI's rate-limit messages
 * mention billing); only without either do the message's words decide, quota
 * before account type.
 */
const tooManyRequests = (body: ErrorBody): "quota" | "personalAccount" | "rateLimit" => {
  for (const name of names(body)) {
    if (QUOTA_CODES.has(name)) return "quota"
    if (RATE_LIMIT_CODES.has(name)) return "rateLimit"
  }
  const message = body.message ?? ""
  if (QUOTA_WORDS.test(message)) return "quota"
  // W&B answers 429 to personal accounts; no amount of waiting changes the account type.
  if (PERSONAL_ACCOUNT.test(message)) return "personalAccount"
  return "rateLimit"
}

// "concurrency limit reached for requests: zai-org/GLM-5.2-project limit reached": W&B names the limit
// `<model>-<scope>`. The model part is greedy, so a hyphen inside the model id stays in it.
const SCOPED_MODEL_LIMIT = /(?:^|\s)(\S+)-(model|project|user) limit\b/i
const SCOPED_LIMIT = /\b(model|project|user)(?:'s)?[- ](?:concurrency |rate )?limit\b/i

/**
 * Whose limit a 429's message says was reached, and for which model.
 *
 * @internal
 */
export const rateLimitScope = (
  message: string | undefined
): { readonly scope: InferenceError.RateLimitScope; readonly limitedModel: string | undefined } => {
  if (message !== undefined) {
    const named = SCOPED_MODEL_LIMIT.exec(message)
    // "per-user limit" is English, not a model called "per".
    if (named !== null && named[1].toLowerCase() !== "per") {
      const model = named[1].replace(/^[`'"]+|[`'":,]+$/g, "")
      return {
        scope: named[2].toLowerCase() as InferenceError.RateLimitScope,
        limitedModel: model === "" ? undefined : model
      }
    }
    const scoped = SCOPED_LIMIT.exec(message)
    if (scoped !== null) {
      return { scope: scoped[1].toLowerCase() as InferenceError.RateLimitScope, limitedModel: undefined }
    }
  }
  return { scope: "unknown", limitedModel: undefined }
}

const permissionReason = (body: ErrorBody): InferenceError.PermissionDeniedReason => {
  if (names(body).some((name) => REGION_CODES.has(name))) return "RegionNotSupported"
  const message = body.message ?? ""
  if (/country|region|territor/i.test(message)) return "RegionNotSupported"
  if (/not enabled/i.test(message)) return "InferenceNotEnabled"
  if (PERSONAL_ACCOUNT.test(message)) return "PersonalAccount"
  return "Other"
}

/**
 * A page that a web server or framework answers for a path it does not route
 * (nginx's, Go's, Express's, FastAPI's `{"detail": "Not Found"}`): not the API's own words.
 */
const NOT_FOUND_PAGE =
  /^(?:\d{3}\s*[:-]?\s*)?(?:page\s+)?not\s+found[.!]?$|^cannot (?:get|post|put|patch|delete) \/|^</i

/**
 * What a 404 says was not found: a model when the body names the call's model
 * or speaks of one; the path when the body is plainly not from the API (nothing,
 * or a bare "Not Found" page, with no code or type); otherwise it cannot tell
 * (W&B's "The requested resource was not found" answers a retired model and a
 * wrong path alike). A call for no model (`listModels`) can only miss its path.
 *
 * @internal
 */
export const notFoundResource = (body: ErrorBody, model: string | undefined): InferenceError.NotFoundResource => {
  if (names(body).some((name) => name.includes("model"))) return "model"
  const message = (body.message ?? "").trim()
  if (model !== undefined && model !== "" && message.includes(model)) return "model"
  if (/\bmodels?\b/i.test(message)) return "model"
  // A call for no model (listModels) has only its path to miss.
  if (model === undefined) return "path"
  // A code or a type is the API's error envelope speaking: whatever its words, it cannot tell which.
  if (names(body).length > 0) return "unknown"
  return message === "" || NOT_FOUND_PAGE.test(message) ? "path" : "unknown"
}

/**
 * Status first; then, where the status leaves it open (403, 404, 429), the
 * body's `code`, then its `type`, then its message, case-insensitively, as W&B
 * documents its errors.
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
  const serverMessage = scrubOptional(body.message, context.secret)
  const fields = {
    status,
    requestId: requestIdOf(headers, context.secret),
    code: scrubOptional(body.code, context.secret),
    type: scrubOptional(body.type, context.secret),
    param: scrubOptional(body.param, context.secret),
    serverMessage,
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
      return new InferenceError.NotFoundError({
        ...fields,
        resource: notFoundResource(body, context.model),
        baseUrl: scrubOptional(context.baseUrl, context.secret)
      })
    case 409:
      return new InferenceError.ConflictError(fields)
    case 422:
      return new InferenceError.UnprocessableEntityError(fields)
    case 429: {
      const kind = tooManyRequests(body)
      return kind === "quota"
        ? new InferenceError.QuotaExceededError(fields)
        : kind === "personalAccount"
        ? new InferenceError.PermissionDeniedError({ ...fields, reason: "PersonalAccount" })
        // Read from the scrubbed text, so that the model id kept cannot carry the key.
        : new InferenceError.RateLimitError({ ...fields, ...rateLimitScope(serverMessage) })
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

// What a transport failure before the request was written looks like in Node's cause chains (fetch wraps it in
// `TypeError: fetch failed`; undici and node:http reject with it directly): a refused connection or a connect
// timeout, no such host, a TLS certificate or handshake refused, an invalid URL. A reset or a socket closed by the
// other side (`ECONNRESET`, undici's `UND_ERR_SOCKET`) may come after the request went out: it counts as sent.
const UNSENT_CODES = new Set([
  "ECONNREFUSED",
  "ENOTFOUND",
  "EAI_AGAIN",
  "EAI_FAIL",
  "EAI_NODATA",
  "EAI_NONAME",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "EADDRNOTAVAIL",
  "UND_ERR_CONNECT_TIMEOUT",
  "UND_ERR_PRX_TLS",
  "ERR_INVALID_URL",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "HOSTNAME_MISMATCH",
  "INVALID_CA",
  "INVALID_PURPOSE",
  "PATH_LENGTH_EXCEEDED"
])
/** OpenSSL's certificate verification codes and Node's TLS and SSL errors. */
const UNSENT_PREFIX = /^(?:CERT_|CRL_|UNABLE_TO_|ERROR_IN_C|ERR_TLS_|ERR_SSL_)/
/** Node's system errors name the call that failed: a failed connect or DNS lookup never wrote a byte. */
const UNSENT_SYSCALLS = new Set(["connect", "getaddrinfo"])

const isUnsentLink = (link: { readonly code?: unknown; readonly syscall?: unknown }): boolean =>
  (typeof link.code === "string" && (UNSENT_CODES.has(link.code) || UNSENT_PREFIX.test(link.code))) ||
  (typeof link.syscall === "string" && UNSENT_SYSCALLS.has(link.syscall))

/**
 * Whether a transport failure's cause chain says nothing was written. An
 * `AggregateError` (Node trying each address of a host in turn) says so when
 * each of its errors does.
 */
const causeSaysUnsent = (cause: unknown, depth = 0): boolean => {
  if (depth > 8 || !(Predicate.isRecord(cause) || cause instanceof Error)) return false
  const link = cause as { readonly code?: unknown; readonly syscall?: unknown; readonly cause?: unknown }
  if (isUnsentLink(link)) return true
  if (cause instanceof AggregateError && cause.errors.length > 0) {
    if (cause.errors.every((error) => causeSaysUnsent(error, depth + 1))) return true
  }
  return causeSaysUnsent(link.cause, depth + 1)
}

/**
 * Whether the request of a failed exchange may have been written: not for an
 * invalid URL, a body that could not be encoded or a transport failure before
 * sending; always once there is a response.
 */
const mayHaveBeenSent = (error: HttpClientError.HttpClientError): boolean =>
  error._tag === "ResponseError"
    ? true
    : error.reason === "InvalidUrl" || error.reason === "Encode"
    ? false
    : !causeSaysUnsent(error.cause)

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
    const fields = {
      ...base,
      status: error.response.status,
      requestId: requestIdOf(error.response.headers, context.secret)
    }
    return error.reason === "EmptyBody"
      ? new InferenceError.ResponseDecodeError({ ...fields, description: "empty body" })
      : new InferenceError.ConnectionError({ ...fields, description: scrub(cause, context.secret), sent: true })
  }
  return new InferenceError.ConnectionError({
    ...base,
    description: scrub(cause, context.secret),
    sent: mayHaveBeenSent(error)
  })
}

// How much of a received value a description quotes: enough to recognise it. Effect's formatters print the whole
// value, recursively: a body whose `id` nests an array 3,000 deep overflows the stack there, and a field holding
// megabytes would be copied whole into the message before `scrub` clipped it.
const QUOTE_DEPTH = 2
const QUOTE_ITEMS = 3
const QUOTE_CHARS = 60
/** Path segments and schema names kept: a record key comes from the body and can be of any length. */
const NAME_CHARS = 80
const SHOWN_ISSUES = 3
/** Nodes of the issue tree visited. Decoding stops at the first error, so this only bounds a tree of no known shape. */
const MAX_ISSUE_NODES = 200

const clip = (text: string, max: number): string => text.length > max ? `${text.slice(0, max)}…` : text

/** Text from the body, shortened: the key is cut out first, or a key straddling the cut would leave its start behind. */
const excerpt = (text: string, max: number, secret: string): string => clip(scrub(text, secret), max)

/**
 * A received value, cut to a few items, a small depth and short strings; never
 * walked further than it prints.
 */
const quote = (value: unknown, secret: string, depth = 0): string => {
  if (typeof value === "string") return JSON.stringify(excerpt(value, QUOTE_CHARS, secret))
  if (typeof value === "bigint") return `${value}n`
  if (typeof value !== "object" || value === null) return String(value)
  if (Array.isArray(value)) {
    if (value.length === 0) return "[]"
    if (depth >= QUOTE_DEPTH) return "[…]"
    const shown = value.slice(0, QUOTE_ITEMS).map((item: unknown) => quote(item, secret, depth + 1))
    return `[${shown.join(",")}${value.length > QUOTE_ITEMS ? `,…(${value.length} items)` : ""}]`
  }
  const parts: Array<string> = []
  for (const key in value) {
    if (!Object.hasOwn(value, key)) continue
    if (depth >= QUOTE_DEPTH || parts.length === QUOTE_ITEMS) {
      parts.push("…")
      break
    }
    const item = quote((value as Record<string, unknown>)[key], secret, depth + 1)
    parts.push(`${JSON.stringify(excerpt(key, QUOTE_CHARS, secret))}:${item}`)
  }
  return `{${parts.join(",")}}`
}

/** What a schema expected, named as Effect's formatters name it (a refinement by its description). */
const expected = (ast: AST.AST): string =>
  clip(
    AST.isRefinement(ast)
      ? AST.getDescriptionAnnotation(ast).pipe(
        Option.orElse(() => AST.getTitleAnnotation(ast)),
        Option.orElse(() => AST.getIdentifierAnnotation(ast)),
        Option.getOrElse(() => String(ast.from))
      )
      : String(ast),
    NAME_CHARS * 2
  )

/** The words of one mismatch: Effect's default messages, with the received value quoted short. */
const leafMessage = (
  issue: ParseResult.Type | ParseResult.Missing | ParseResult.Unexpected | ParseResult.Forbidden,
  secret: string
): string => {
  if (issue.message !== undefined) return excerpt(issue.message, NAME_CHARS * 2, secret)
  switch (issue._tag) {
    case "Type":
      return `Expected ${expected(issue.ast)}, actual ${quote(issue.actual, secret)}`
    case "Missing":
      return "is missing"
    case "Unexpected":
      return "is unexpected"
    case "Forbidden":
      return "is forbidden"
  }
}

/**
 * The first few mismatches as `path: issue`, not the whole tree (which can be
 * long and repeats the body). The tree is walked with a stack of its own and a
 * budget, and the received value is quoted short (see `quote`): whatever the
 * body, describing it cannot throw.
 *
 * @internal
 */
export const describeParseError = (error: ParseResult.ParseError, secret: string): string => {
  const shown: Array<string> = []
  let found = 0
  let visited = 0
  const stack: Array<readonly [ParseResult.ParseIssue, ReadonlyArray<PropertyKey>]> = [[error.issue, []]]
  while (stack.length > 0 && visited < MAX_ISSUE_NODES) {
    visited++
    const [issue, path] = stack.pop()!
    switch (issue._tag) {
      case "Pointer":
        stack.push([issue.issue, path.concat(issue.path)])
        break
      case "Refinement":
      case "Transformation":
        stack.push([issue.issue, path])
        break
      case "Composite": {
        const issues = Array.isArray(issue.issues) ? issue.issues : [issue.issues]
        // In reverse, so that the first issue is described first.
        for (let i = Math.min(issues.length, MAX_ISSUE_NODES) - 1; i >= 0; i--) stack.push([issues[i], path])
        break
      }
      default: {
        found++
        if (shown.length < SHOWN_ISSUES) {
          const at = path.length === 0 ? "body" : path.map((key) => excerpt(String(key), NAME_CHARS, secret)).join(".")
          shown.push(`${at}: ${leafMessage(issue, secret)}`)
        }
      }
    }
  }
  const more = found - shown.length
  const rest = stack.length > 0 ? "; and more" : more > 0 ? `; and ${more} more` : ""
  return shown.length === 0 ? "the body does not have the expected shape" : `${shown.join("; ")}${rest}`
}

/** @internal */
export const decodeFailure = (
  response: HttpClientResponse.HttpClientResponse,
  description: string | ParseResult.ParseError,
  context: CallContext
): InferenceError.ResponseDecodeError =>
  new InferenceError.ResponseDecodeError({
    status: response.status,
    requestId: requestIdOf(response.headers, context.secret),
    model: context.model,
    attempts: context.attempt,
    chunksDelivered: context.chunksDelivered,
    description: scrub(
      typeof description === "string" ? description : describeParseError(description, context.secret),
      context.secret
    )
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
      requestId: requestIdOf(response.headers, context.secret),
      description: "the stream ended before its first content",
      // The server answered: the request was sent, and may have been processed.
      sent: true
    })
    : decodeFailure(response, "the stream ended before [DONE] or a finish_reason (truncated)", context)

// A name that settles the status whatever else a frame says: OpenAI's specific codes (`invalid_api_key`,
// `model_not_found`, ...) and specific types. The quota and rate-limit names are the ones a 429 is
// classified by, so a frame and a status agree.
const SPECIFIC_NAMES: Readonly<Record<string, number>> = {
  invalid_api_key: 401,
  authentication_error: 401,
  authenticationerror: 401,
  ...Object.fromEntries([...QUOTA_CODES].map((code) => [code, 402])),
  permission_error: 403,
  permissiondeniederror: 403,
  ...Object.fromEntries([...REGION_CODES].map((code) => [code, 403])),
  not_found_error: 404,
  notfounderror: 404,
  model_not_found: 404,
  ...Object.fromEntries([...RATE_LIMIT_CODES].map((code) => [code, 429])),
  ratelimiterror: 429,
  overloaded_error: 503,
  engine_overloaded: 503,
  service_unavailable: 503,
  serviceunavailableerror: 503
}

// Types that only say which side erred. OpenAI types its 401 and 404 as `invalid_request_error` too: read
// after the specific names, or its bad-key and unknown-model frames would be 400s.
const CLIENT_TYPES: Readonly<Record<string, number>> = {
  invalid_request_error: 400,
  badrequesterror: 400
}

/** W&B's documented messages, for a frame whose code and type say nothing. */
const MESSAGE_STATUSES: ReadonlyArray<readonly [RegExp, number]> = [
  [/concurrency limit|rate limit|too many requests/i, 429],
  [QUOTA_WORDS, 402],
  [/personal account|country|region|territor|not enabled/i, 403],
  [/authenticat|api key/i, 401],
  [/does not exist|not found/i, 404],
  [/overloaded|unavailable/i, 503]
]

/**
 * The status an SSE error frame stands for. The stream itself was a 200, so the
 * frame is all there is to go on: its `code` when that is an HTTP status (vLLM
 * sends one, as a number or a string), else a specific `code` or `type` by name
 * (`invalid_api_key`, `model_not_found`, `insufficient_quota`, ...), else a
 * generic client `type` (`invalid_request_error`), else its message, else 500
 * (a `server_error` type among them).
 *
 * @internal
 */
export const frameStatus = (body: ErrorBody): number => {
  const code = body.code !== undefined && /^\s*\d{3}\s*$/.test(body.code) ? Number(body.code) : Number.NaN
  if (code >= 400 && code <= 599) return code
  const given = names(body)
  for (const name of given) {
    const status = SPECIFIC_NAMES[name]
    if (status !== undefined) return status
  }
  for (const name of given) {
    const status = CLIENT_TYPES[name]
    if (status !== undefined) return status
  }
  const message = body.message ?? ""
  for (const [words, status] of MESSAGE_STATUSES) if (words.test(message)) return status
  // A server type (`server_error`, `api_error`) comes last on purpose: its message may tell an overload (503)
  // from a plain fault, and a fault is what anything else is.
  return 500
}

/**
 * Tells whether a decoded SSE payload is an error event rather than a chunk:
 * `{"error": {...}}` (or `{"error": "text"}`) without `choices`, as OpenAI and
 * vLLM send, or older vLLM's top-level `{"object": "error", ...}`. An event
 * named `error` is one whatever its payload.
 *
 * @internal
 */
export const isErrorEvent = (json: unknown): boolean =>
  Predicate.isRecord(json) &&
  (json.object === "error" || (json.error !== undefined && json.error !== null && !("choices" in json)))

/**
 * An SSE error frame in the middle of a stream (`{"error": {...}}` or
 * `{"object": "error", ...}` data), classified into the same errors as an HTTP
 * status, with the same reading of its body once its status is known.
 *
 * @internal
 */
export const fromErrorFrame = (data: string, now: number, context: CallContext): InferenceError.InferenceError => {
  const body = parseErrorBody(data)
  return fromStatus(frameStatus(body), {}, body, now, context)
}
