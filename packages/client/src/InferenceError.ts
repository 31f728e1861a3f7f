/**
 * Every way an inference call can fail, one tagged error per case.
 *
 * The classes are `Schema.TaggedError`s, so they serialise (for example to send
 * them across a worker or RPC boundary) and can be caught one by one with
 * `Effect.catchTag`. Their `message` is computed from their fields and ends with
 * a hint on what to do.
 *
 * @since 0.1.0
 */
import * as Duration from "effect/Duration"
import * as Option from "effect/Option"
import * as Predicate from "effect/Predicate"
import * as Schema from "effect/Schema"

/**
 * @since 0.1.0
 * @category type ids
 */
export const TypeId: unique symbol = Symbol.for("@effect-inference/client/InferenceError")

/**
 * @since 0.1.0
 * @category type ids
 */
export type TypeId = typeof TypeId

const optionalDuration = Schema.Option(Schema.Duration).pipe(
  Schema.propertySignature,
  Schema.withConstructorDefault(() => Option.none<Duration.Duration>())
)

const attempts = Schema.Int.pipe(
  Schema.propertySignature,
  Schema.withConstructorDefault(() => 1)
)

/**
 * The fields every error that comes from an HTTP exchange carries, where known.
 *
 * - `status`: the HTTP status.
 * - `requestId`: the server's `x-request-id` (or `request-id`), to quote to
 *   support; kept only if it is at most 128 characters of visible ASCII with
 *   no part of the API key in it, otherwise left out.
 * - `code`, `type`, `param`: from the error body (`{"error": {...}}`).
 * - `serverMessage`: the server's own text, with any echo of the API key
 *   replaced by `<redacted>`.
 * - `retryAfter`: how long the server asked us to wait (`Retry-After`, `retry-after-ms`).
 * - `attempts`: how many HTTP attempts the call made, this one included.
 * - `model`: the model the call was for.
 * - `chunksDelivered`: for a stream that failed after it had started, how many
 *   chunks the consumer had already received (such a failure is never retried).
 *
 * @since 0.1.0
 * @category fields
 */
export const ResponseFields = {
  status: Schema.optional(Schema.Int),
  requestId: Schema.optional(Schema.String),
  code: Schema.optional(Schema.String),
  type: Schema.optional(Schema.String),
  param: Schema.optional(Schema.String),
  serverMessage: Schema.optional(Schema.String),
  model: Schema.optional(Schema.String),
  chunksDelivered: Schema.optional(Schema.Int),
  retryAfter: optionalDuration,
  attempts
}

const describe = (
  self: {
    readonly status?: number | undefined
    readonly requestId?: string | undefined
    readonly model?: string | undefined
    readonly serverMessage?: string | undefined
    readonly retryAfter: Option.Option<Duration.Duration>
    readonly attempts: number
    readonly chunksDelivered?: number | undefined
  },
  summary: string,
  hint?: string
): string => {
  let out = self.status === undefined ? summary : `${summary} (HTTP ${self.status})`
  if (self.model !== undefined) out += ` for model "${self.model}"`
  if (self.serverMessage !== undefined && self.serverMessage !== "") out += `: ${self.serverMessage}`
  if (hint !== undefined) out += `. ${hint}`
  const notes: Array<string> = []
  if (Option.isSome(self.retryAfter)) notes.push(`retry after ${Duration.format(self.retryAfter.value)}`)
  if (self.attempts !== 1) notes.push(`${self.attempts} attempts`)
  if (self.chunksDelivered !== undefined) notes.push(`after ${self.chunksDelivered} streamed chunks`)
  if (self.requestId !== undefined) notes.push(`request id ${self.requestId}`)
  return notes.length === 0 ? out : `${out} [${notes.join(", ")}]`
}

/**
 * The request failed its schema, so nothing was sent. `path` names the field.
 *
 * @since 0.1.0
 * @category errors
 */
export class InvalidRequestError extends Schema.TaggedError<InvalidRequestError>(
  "@effect-inference/client/InvalidRequestError"
)("InvalidRequestError", {
  path: Schema.String,
  issue: Schema.String,
  /**
   * Other fields that failed the check, each with its path and issue, when the
   * request had more than one problem.
   *
   * @since 0.2.0
   */
  moreIssues: Schema.optional(Schema.Array(Schema.Struct({ path: Schema.String, issue: Schema.String }))),
  attempts: Schema.Int.pipe(Schema.propertySignature, Schema.withConstructorDefault(() => 0))
}) {
  /**
   * @since 0.1.0
   */
  readonly [TypeId]: TypeId = TypeId
  /**
   * The first few issues, each with its path and in a line a person can read
   * (a schema's full expected type can run to thousands of characters: `issue`
   * keeps it whole).
   *
   * @since 0.1.0
   */
  override get message(): string {
    const first = `Invalid request at ${this.path}: ${readableIssue(this.issue)}`
    const more = this.moreIssues ?? []
    if (more.length === 0) return `${first}. Fix the field; nothing was sent`
    const lines = more.slice(0, 2).map((other) => `\n  also at ${other.path}: ${readableIssue(other.issue)}`)
    if (more.length > 2) lines.push(`\n  and ${more.length - 2} more (see moreIssues)`)
    return `${first}${lines.join("")}\nFix the fields; nothing was sent`
  }
}

const MAX_ISSUE = 200

/**
 * An issue as a person reads it: a long expected type becomes the kind of
 * value wanted, a long list of allowed field names is cut, and the rest is
 * clipped.
 */
const readableIssue = (issue: string): string => {
  const expected = /^Expected (.+), actual ([\s\S]*)$/.exec(issue)
  let out = issue
  if (expected !== null && expected[1].length > 80) {
    const type = expected[1]
    const kind = /^(ReadonlyArray|readonly \[)/.test(type)
      ? "an array"
      : type.startsWith("{")
      ? "an object"
      : /^"[^"]*"( \| "[^"]*")*$/.test(type)
      ? `one of ${type.split(" | ").slice(0, 6).join(", ")}${type.split(" | ").length > 6 ? ", …" : ""}`
      : "a value of another shape"
    out = `Expected ${kind}, actual ${expected[2]}`
  }
  return out.length > MAX_ISSUE ? `${out.slice(0, MAX_ISSUE)}…` : out
}

/**
 * 400: the server rejected the request; its own message says why.
 *
 * @since 0.1.0
 * @category errors
 */
export class BadRequestError extends Schema.TaggedError<BadRequestError>(
  "@effect-inference/client/BadRequestError"
)("BadRequestError", ResponseFields) {
  /**
   * @since 0.1.0
   */
  readonly [TypeId]: TypeId = TypeId
  /**
   * @since 0.1.0
   */
  override get message(): string {
    return describe(this, "Bad request", "The request was rejected as sent; change it before trying again")
  }
}

/**
 * 401: the API key was refused, or the team/project is wrong.
 *
 * @since 0.1.0
 * @category errors
 */
export class AuthenticationError extends Schema.TaggedError<AuthenticationError>(
  "@effect-inference/client/AuthenticationError"
)("AuthenticationError", ResponseFields) {
  /**
   * @since 0.1.0
   */
  readonly [TypeId]: TypeId = TypeId
  /**
   * @since 0.1.0
   */
  override get message(): string {
    return describe(
      this,
      "Authentication failed",
      "Check the API key (WANDB_API_KEY) and the team/project setting (WANDB_PROJECT)"
    )
  }
}

/**
 * 402, or a 429 that says quota, credits or billing: the account is out of credits
 * or has reached its spending cap. Retrying does not help.
 *
 * @since 0.1.0
 * @category errors
 */
export class QuotaExceededError extends Schema.TaggedError<QuotaExceededError>(
  "@effect-inference/client/QuotaExceededError"
)("QuotaExceededError", ResponseFields) {
  /**
   * @since 0.1.0
   */
  readonly [TypeId]: TypeId = TypeId
  /**
   * @since 0.1.0
   */
  override get message(): string {
    return describe(
      this,
      "Quota exceeded",
      "Credits or spending cap exhausted: check billing for the W&B account"
    )
  }
}

/**
 * Why a request was refused with 403 (or 429 for a personal account).
 *
 * @since 0.1.0
 * @category models
 */
export const PermissionDeniedReason = Schema.Literal(
  "RegionNotSupported",
  "InferenceNotEnabled",
  "PersonalAccount",
  "Other"
)

/**
 * @since 0.1.0
 * @category models
 */
export type PermissionDeniedReason = typeof PermissionDeniedReason.Type

const permissionHints: Record<PermissionDeniedReason, string> = {
  RegionNotSupported: "W&B Inference is not offered in this country, region or territory",
  InferenceNotEnabled: "The inference gateway is not enabled for the organization: ask its admin to enable it",
  PersonalAccount: "W&B Inference is not available for personal accounts: use a team entity",
  Other: "The key is not allowed to do this: check the team/project and its permissions"
}

/**
 * 403: the account may not use the service; `reason` says why.
 *
 * @since 0.1.0
 * @category errors
 */
export class PermissionDeniedError extends Schema.TaggedError<PermissionDeniedError>(
  "@effect-inference/client/PermissionDeniedError"
)("PermissionDeniedError", { ...ResponseFields, reason: PermissionDeniedReason }) {
  /**
   * @since 0.1.0
   */
  readonly [TypeId]: TypeId = TypeId
  /**
   * @since 0.1.0
   */
  override get message(): string {
    return describe(this, "Permission denied", permissionHints[this.reason])
  }
}

/**
 * What a 404 says was not found, as far as its body tells:
 *
 * - `"model"`: the body names the call's model or speaks of a model
 *   (OpenAI's `model_not_found`, vLLM's "The model `x` does not exist").
 * - `"path"`: the body is plainly not from the inference API (empty, a bare
 *   "Not Found" page in text or HTML, FastAPI's routing `{"detail": "Not Found"}`):
 *   the URL is wrong, so the base URL is.
 * - `"unknown"`: the API's own words do not say which, as W&B's generic "The
 *   requested resource was not found", which it answers for a retired model id
 *   and for a wrong path alike (for a call without a model, `listModels`, it
 *   can only be the path).
 *
 * @since 0.2.0
 * @category models
 */
export const NotFoundResource = Schema.Literal("model", "path", "unknown")

/**
 * @since 0.2.0
 * @category models
 */
export type NotFoundResource = typeof NotFoundResource.Type

// Written out rather than imported from InferenceClient, which imports this module.
const WANDB_BASE_URL = "https://api.inference.wandb.ai/v1"

const checkBaseUrl = (baseUrl: string | undefined): string =>
  baseUrl === undefined
    ? `check baseUrl (W&B Inference's is ${WANDB_BASE_URL})`
    : `check baseUrl: it was "${baseUrl}", W&B Inference's is ${WANDB_BASE_URL}`

const notFoundHints: Record<NotFoundResource, (baseUrl: string | undefined) => string> = {
  model: () => "The model id is wrong or retired: call listModels() for the current ones",
  path: (baseUrl) => `The URL does not exist on this server: ${checkBaseUrl(baseUrl)}`,
  unknown: (baseUrl) =>
    `The model id may be wrong or retired (call listModels() for the current ones), or the URL wrong (${
      checkBaseUrl(baseUrl)
    })`
}

/**
 * 404: the model id is wrong or retired, or the path does not exist; `resource`
 * says which when the body tells, and `baseUrl` is the base URL the call used.
 * Not retried.
 *
 * @since 0.1.0
 * @category errors
 */
export class NotFoundError extends Schema.TaggedError<NotFoundError>(
  "@effect-inference/client/NotFoundError"
)("NotFoundError", {
  ...ResponseFields,
  /**
   * What was not found. Defaults to `"unknown"` when constructed or decoded without it.
   *
   * @since 0.2.0
   */
  resource: Schema.optionalWith(NotFoundResource, { default: () => "unknown" as const }),
  /**
   * The base URL the call was sent to (it holds no secret), quoted in the hint.
   *
   * @since 0.2.0
   */
  baseUrl: Schema.optional(Schema.String)
}) {
  /**
   * @since 0.1.0
   */
  readonly [TypeId]: TypeId = TypeId
  /**
   * @since 0.1.0
   */
  override get message(): string {
    return describe(this, "Not found", notFoundHints[this.resource](this.baseUrl))
  }
}

/**
 * 409: the request conflicted with another one. Retried.
 *
 * @since 0.1.0
 * @category errors
 */
export class ConflictError extends Schema.TaggedError<ConflictError>(
  "@effect-inference/client/ConflictError"
)("ConflictError", ResponseFields) {
  /**
   * @since 0.1.0
   */
  readonly [TypeId]: TypeId = TypeId
  /**
   * @since 0.1.0
   */
  override get message(): string {
    return describe(this, "Conflict", "The request conflicted with another one; it is safe to try again")
  }
}

/**
 * 422: the request was well formed but its values cannot be processed.
 *
 * @since 0.1.0
 * @category errors
 */
export class UnprocessableEntityError extends Schema.TaggedError<UnprocessableEntityError>(
  "@effect-inference/client/UnprocessableEntityError"
)("UnprocessableEntityError", ResponseFields) {
  /**
   * @since 0.1.0
   */
  readonly [TypeId]: TypeId = TypeId
  /**
   * @since 0.1.0
   */
  override get message(): string {
    return describe(this, "Unprocessable request", "A parameter value is not supported by this model")
  }
}

/**
 * Whose concurrency limit a 429 reports, as its message says:
 *
 * - `"project"`: the W&B project's limit. W&B's gateway words it
 *   "concurrency limit reached for requests: zai-org/GLM-5.2-project limit reached"
 *   (observed): the limit named `<model>-project`, that is the project's limit for
 *   that model, so `limitedModel` is `zai-org/GLM-5.2`.
 * - `"user"`: the user's limit, shared by all of the user's projects
 *   (`<model>-user limit reached`).
 * - `"model"`: the model's own limit, shared by all its callers
 *   (`<model>-model limit reached`).
 * - `"unknown"`: the message does not say, as W&B's documented "Concurrency limit
 *   reached for requests".
 *
 * @since 0.2.0
 * @category models
 */
export const RateLimitScope = Schema.Literal("model", "project", "user", "unknown")

/**
 * @since 0.2.0
 * @category models
 */
export type RateLimitScope = typeof RateLimitScope.Type

const rateLimitHint = (self: {
  readonly scope: RateLimitScope
  readonly limitedModel?: string | undefined
  readonly model?: string | undefined
}): string => {
  const on = self.limitedModel === undefined
    ? ""
    : self.limitedModel === self.model
    ? " on this model"
    : ` on model "${self.limitedModel}"`
  // Retrying waits for a slot, but only fewer calls in flight stop the next 429s.
  switch (self.scope) {
    case "project":
      return `Concurrency limit reached for the project${on}: lower maxConcurrency or spread calls over more projects`
    case "user":
      return `Concurrency limit reached for the user${on}, shared by all of the user's projects: lower maxConcurrency`
    case "model":
      return `Concurrency limit reached for the model${
        self.limitedModel === undefined || self.limitedModel === self.model ? "" : ` "${self.limitedModel}"`
      }, shared by all its callers: lower maxConcurrency or fall back to another model`
    case "unknown":
      return `Concurrency limit reached${on}: lower maxConcurrency`
  }
}

/**
 * 429 (other than quota or account type): too many requests in flight. `scope`
 * says whose limit was reached and `limitedModel` for which model, when the
 * message says so. Retried, after `retryAfter` when the server sent one. Not a
 * circuit breaker failure: the service is busy, not broken.
 *
 * @since 0.1.0
 * @category errors
 */
export class RateLimitError extends Schema.TaggedError<RateLimitError>(
  "@effect-inference/client/RateLimitError"
)("RateLimitError", {
  ...ResponseFields,
  /**
   * Whose limit was reached. Defaults to `"unknown"` when constructed or decoded without it.
   *
   * @since 0.2.0
   */
  scope: Schema.optionalWith(RateLimitScope, { default: () => "unknown" as const }),
  /**
   * The model whose limit was reached, as the server's message names it (W&B keys
   * its limits per model); it is usually the call's `model`.
   *
   * @since 0.2.0
   */
  limitedModel: Schema.optional(Schema.String)
}) {
  /**
   * @since 0.1.0
   */
  readonly [TypeId]: TypeId = TypeId
  /**
   * @since 0.1.0
   */
  override get message(): string {
    return describe(this, "Rate limited", rateLimitHint(this))
  }
}

/**
 * 500, 502, 504 and any other 5xx but 503: a server fault. Retried.
 *
 * @since 0.1.0
 * @category errors
 */
export class InternalServerError extends Schema.TaggedError<InternalServerError>(
  "@effect-inference/client/InternalServerError"
)("InternalServerError", ResponseFields) {
  /**
   * @since 0.1.0
   */
  readonly [TypeId]: TypeId = TypeId
  /**
   * @since 0.1.0
   */
  override get message(): string {
    return describe(this, "Server error", "A fault on the server side; W&B suggests waiting 30-60 s before retrying")
  }
}

/**
 * 503: the engine is overloaded. Retried.
 *
 * @since 0.1.0
 * @category errors
 */
export class ServiceUnavailableError extends Schema.TaggedError<ServiceUnavailableError>(
  "@effect-inference/client/ServiceUnavailableError"
)("ServiceUnavailableError", ResponseFields) {
  /**
   * @since 0.1.0
   */
  readonly [TypeId]: TypeId = TypeId
  /**
   * @since 0.1.0
   */
  override get message(): string {
    return describe(this, "Service unavailable", "The engine is overloaded; W&B suggests waiting 60-120 s")
  }
}

/**
 * Any status with no class of its own (408 among them; only 408 is retried).
 *
 * @since 0.1.0
 * @category errors
 */
export class UnexpectedStatusError extends Schema.TaggedError<UnexpectedStatusError>(
  "@effect-inference/client/UnexpectedStatusError"
)("UnexpectedStatusError", ResponseFields) {
  /**
   * @since 0.1.0
   */
  readonly [TypeId]: TypeId = TypeId
  /**
   * @since 0.1.0
   */
  override get message(): string {
    return describe(
      this,
      "Unexpected status",
      this.status === 408
        ? "The server timed out reading the request"
        : "The server answered with a status this client does not expect"
    )
  }
}

/**
 * The request never got a whole response: connection refused or reset, DNS or
 * TLS failure, or the body was cut while being read. `sent` says whether the
 * request may have reached the server. Retried.
 *
 * @since 0.1.0
 * @category errors
 */
export class ConnectionError extends Schema.TaggedError<ConnectionError>(
  "@effect-inference/client/ConnectionError"
)("ConnectionError", {
  ...ResponseFields,
  /** What went wrong, from the transport (for example `ECONNREFUSED`). */
  description: Schema.String,
  /**
   * `false` when the request was certainly not written: the connection was
   * refused, the host not found, the TLS handshake failed, the URL was invalid
   * or the body could not be encoded. `true` when it may have reached the server
   * (a reset mid-request, a body cut while read, a truncated stream), and so may
   * have been processed and billed.
   *
   * @since 0.2.0
   */
  sent: Schema.Boolean
}) {
  /**
   * @since 0.1.0
   */
  readonly [TypeId]: TypeId = TypeId
  /**
   * @since 0.1.0
   */
  override get message(): string {
    return describe(
      { ...this, serverMessage: this.description },
      "Connection failed",
      this.sent ? "Check the network and the base URL" : "Nothing was sent: check the network and the base URL"
    )
  }
}

/**
 * Which bound a call outlived: one attempt (`"attempt"`), the wait of a stream
 * for its first content (`"firstChunk"`), the gap between two chunks of a stream
 * (`"idle"`), or the whole call with its retries (`"total"`, not retried).
 *
 * @since 0.1.0
 * @category models
 */
export const TimeoutPhase = Schema.Literal("attempt", "firstChunk", "idle", "total")

/**
 * @since 0.1.0
 * @category models
 */
export type TimeoutPhase = typeof TimeoutPhase.Type

const timeoutSummaries: Record<TimeoutPhase, (timeout: string) => string> = {
  attempt: (t) => `An attempt did not finish within its timeout of ${t}`,
  firstChunk: (t) => `The stream sent no content within its firstChunkTimeout of ${t}`,
  idle: (t) => `The stream stalled: no chunk within its idleTimeout of ${t}`,
  total: (t) => `The call did not finish within its total timeout of ${t}`
}

const timeoutHints: Record<TimeoutPhase, string> = {
  attempt: "Raise timeout for long generations, or use streaming",
  firstChunk: "The model may be queued or thinking long: raise firstChunkTimeout",
  idle: "The server stopped sending mid-answer; raise idleTimeout if the model pauses that long",
  total: "Raise totalTimeout, or use streaming for long generations"
}

/**
 * A call outlived one of its time bounds; `phase` says which and `timeout` how long it was.
 *
 * @since 0.1.0
 * @category errors
 */
export class TimeoutError extends Schema.TaggedError<TimeoutError>(
  "@effect-inference/client/TimeoutError"
)("TimeoutError", {
  ...ResponseFields,
  phase: TimeoutPhase,
  timeout: Schema.Duration
}) {
  /**
   * @since 0.1.0
   */
  readonly [TypeId]: TypeId = TypeId
  /**
   * @since 0.1.0
   */
  override get message(): string {
    return describe(this, timeoutSummaries[this.phase](Duration.format(this.timeout)), timeoutHints[this.phase])
  }
}

/**
 * A successful (2xx) response whose body is not JSON or not the expected shape.
 *
 * @since 0.1.0
 * @category errors
 */
export class ResponseDecodeError extends Schema.TaggedError<ResponseDecodeError>(
  "@effect-inference/client/ResponseDecodeError"
)("ResponseDecodeError", {
  ...ResponseFields,
  /** What did not match, without the body itself. */
  description: Schema.String
}) {
  /**
   * @since 0.1.0
   */
  readonly [TypeId]: TypeId = TypeId
  /**
   * @since 0.1.0
   */
  override get message(): string {
    return describe(
      { ...this, serverMessage: this.description },
      "Could not decode the response",
      this.chunksDelivered === undefined
        ? "The server answered with a body this client does not understand; check the base URL"
        : "The stream broke off: the answer received so far is incomplete"
    )
  }
}

/**
 * The circuit breaker in front of this endpoint and model is open (or half-open
 * with its probes taken): the call failed at once and nothing was sent.
 * `retryAfter` is the time until the breaker lets a probe through. Not retried
 * against the same breaker; a fallback model may take the call.
 *
 * @since 0.1.0
 * @category errors
 */
export class CircuitOpenError extends Schema.TaggedError<CircuitOpenError>(
  "@effect-inference/client/CircuitOpenError"
)("CircuitOpenError", {
  model: Schema.optional(Schema.String),
  /** The breaker's key: base URL and model. */
  breaker: Schema.String,
  state: Schema.Literal("open", "half-open"),
  retryAfter: optionalDuration,
  attempts: Schema.Int.pipe(Schema.propertySignature, Schema.withConstructorDefault(() => 0))
}) {
  /**
   * @since 0.1.0
   */
  readonly [TypeId]: TypeId = TypeId
  /**
   * @since 0.1.0
   */
  override get message(): string {
    const wait = Option.match(this.retryAfter, {
      onNone: () => "",
      onSome: (d) => ` for another ${Duration.format(d)}`
    })
    return this.state === "open"
      ? `Circuit open for ${this.breaker}: calls fail fast${wait} after repeated failures. Nothing was sent; try a fallback model or wait`
      : `Circuit half-open for ${this.breaker}: its probe calls are in flight. Nothing was sent; try again shortly`
  }
}

/**
 * What a budget limits: money (`usd`, priced from the usage tracker's price
 * table) or tokens.
 *
 * @since 0.1.0
 * @category models
 */
export const BudgetDimension = Schema.Literal("usd", "tokens")

/**
 * @since 0.1.0
 * @category models
 */
export type BudgetDimension = typeof BudgetDimension.Type

const formatAmount = (dimension: BudgetDimension, amount: number): string =>
  dimension === "usd"
    ? `$${amount.toFixed(amount !== 0 && Math.abs(amount) < 0.01 ? 6 : 2)}`
    : `${Math.round(amount).toLocaleString("en-US")} tokens`

/**
 * The call would take the usage tracker's budget past its limit, counting what
 * calls in flight have reserved: it failed at once and nothing was sent.
 * `requested` is the call's upper estimate (its prompt, plus `max_tokens` or
 * the default completion budget, times `n`); `resetsIn` is the time left in
 * the budget's period, if it has one. Not retried, and no fallback model takes
 * the call: every model spends from the same budget.
 *
 * @since 0.1.0
 * @category errors
 */
export class BudgetExceededError extends Schema.TaggedError<BudgetExceededError>(
  "@effect-inference/client/BudgetExceededError"
)("BudgetExceededError", {
  model: Schema.optional(Schema.String),
  dimension: BudgetDimension,
  limit: Schema.Number,
  spent: Schema.Number,
  reserved: Schema.Number,
  requested: Schema.Number,
  resetsIn: optionalDuration,
  attempts: Schema.Int.pipe(Schema.propertySignature, Schema.withConstructorDefault(() => 0))
}) {
  /**
   * @since 0.1.0
   */
  readonly [TypeId]: TypeId = TypeId
  /**
   * @since 0.1.0
   */
  override get message(): string {
    const amount = (n: number) => formatAmount(this.dimension, n)
    const left = Math.max(0, this.limit - this.spent - this.reserved)
    const period = Option.match(this.resetsIn, {
      onNone: () => "",
      onSome: (d) => ` (the period resets in ${Duration.format(Duration.millis(Math.ceil(Duration.toMillis(d))))})`
    })
    const hint = Option.isSome(this.resetsIn)
      ? "raise the budget, lower max_tokens, or wait for the next period"
      : "raise the budget or lower max_tokens"
    return `Budget exceeded: the call needs up to ${amount(this.requested)}, but ${amount(this.spent)} spent and ${
      amount(this.reserved)
    } reserved leave ${amount(left)} of ${amount(this.limit)}${period}. Nothing was sent; ${hint}`
  }
}

/**
 * Which store could not answer: the one of the concurrency slots, the rate
 * limits, the budget or the circuit breaker.
 *
 * @since 0.2.0
 * @category models
 */
export const CoordinationStore = Schema.Literal("concurrency", "rate-limit", "budget", "circuit-breaker")

/**
 * @since 0.2.0
 * @category models
 */
export type CoordinationStore = typeof CoordinationStore.Type

/**
 * A store that a limit, a budget or a breaker keeps its state in (see
 * docs/stores.md) could not answer when the call needed it: Redis out of
 * reach with `onUnavailable: "fail"`, or a store of your own that failed. The
 * call failed before sending; `store` says which, `reason` what the store
 * said. Not retried by the client, and not counted by a circuit breaker: the
 * service was never asked.
 *
 * @since 0.2.0
 * @category errors
 */
export class CoordinationError extends Schema.TaggedError<CoordinationError>(
  "@effect-inference/client/CoordinationError"
)("CoordinationError", {
  model: Schema.optional(Schema.String),
  store: CoordinationStore,
  reason: Schema.String,
  attempts: Schema.Int.pipe(Schema.propertySignature, Schema.withConstructorDefault(() => 0))
}) {
  /**
   * @since 0.2.0
   */
  readonly [TypeId]: TypeId = TypeId
  /**
   * @since 0.2.0
   */
  override get message(): string {
    return `Coordination failed: the ${this.store} store could not answer (${this.reason}). Nothing was sent; ` +
      `check the store's server, or let calls go on without it (RedisStores: onUnavailable "local")`
  }
}

/**
 * Every error an inference call can fail with.
 *
 * @example
 * ```ts
 * import { InferenceClient } from "@effect-inference/client"
 * import { Effect } from "effect"
 *
 * const answer = Effect.flatMap(InferenceClient.InferenceClient, (client) =>
 *   client.chatCompletion({
 *     model: "meta-llama/Llama-3.1-8B-Instruct",
 *     messages: [{ role: "user", content: "Hello" }]
 *   })).pipe(
 *     Effect.map((completion) => completion.choices[0].message.content ?? ""),
 *     // Handle the cases you mean to; the others stay in the error channel.
 *     Effect.catchTags({
 *       QuotaExceededError: () => Effect.succeed("Out of credits: check billing"),
 *       CircuitOpenError: () => Effect.succeed("The model is down; try again later")
 *     })
 *   )
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type InferenceError =
  | InvalidRequestError
  | BadRequestError
  | AuthenticationError
  | QuotaExceededError
  | PermissionDeniedError
  | NotFoundError
  | ConflictError
  | UnprocessableEntityError
  | RateLimitError
  | InternalServerError
  | ServiceUnavailableError
  | UnexpectedStatusError
  | ConnectionError
  | TimeoutError
  | ResponseDecodeError
  | CircuitOpenError
  | BudgetExceededError
  | CoordinationError

/**
 * The schema of the union, to decode an error that was sent across a boundary.
 *
 * @since 0.1.0
 * @category schemas
 */
export const InferenceError: Schema.Union<[
  typeof InvalidRequestError,
  typeof BadRequestError,
  typeof AuthenticationError,
  typeof QuotaExceededError,
  typeof PermissionDeniedError,
  typeof NotFoundError,
  typeof ConflictError,
  typeof UnprocessableEntityError,
  typeof RateLimitError,
  typeof InternalServerError,
  typeof ServiceUnavailableError,
  typeof UnexpectedStatusError,
  typeof ConnectionError,
  typeof TimeoutError,
  typeof ResponseDecodeError,
  typeof CircuitOpenError,
  typeof BudgetExceededError,
  typeof CoordinationError
]> = Schema.Union(
  InvalidRequestError,
  BadRequestError,
  AuthenticationError,
  QuotaExceededError,
  PermissionDeniedError,
  NotFoundError,
  ConflictError,
  UnprocessableEntityError,
  RateLimitError,
  InternalServerError,
  ServiceUnavailableError,
  UnexpectedStatusError,
  ConnectionError,
  TimeoutError,
  ResponseDecodeError,
  CircuitOpenError,
  BudgetExceededError,
  CoordinationError
)

/**
 * Tells whether a value is one of this module's errors.
 *
 * @since 0.1.0
 * @category guards
 */
export const isInferenceError = (u: unknown): u is InferenceError => Predicate.hasProperty(u, TypeId)

/**
 * Tells whether a failed call is worth trying again: rate limits, server faults,
 * 409, 408, connection failures and timeouts of one attempt (`attempt`,
 * `firstChunk`, `idle`). Client errors, quota, decoding failures and the total
 * timeout are not. A stream that has delivered chunks is never retried, whatever
 * this says.
 *
 * @example
 * ```ts
 * import { InferenceError } from "@effect-inference/client"
 * import { Effect } from "effect"
 *
 * // Try a failed call again later, on your own terms, only if the client would have retried it.
 * const once = <A>(call: Effect.Effect<A, InferenceError.InferenceError>) =>
 *   Effect.retry(call, { while: InferenceError.isRetryable, times: 1 })
 * ```
 *
 * @since 0.1.0
 * @category predicates
 */
export const isRetryable = (error: InferenceError): boolean => {
  switch (error._tag) {
    case "RateLimitError":
    case "InternalServerError":
    case "ServiceUnavailableError":
    case "ConflictError":
    case "ConnectionError":
      return true
    case "TimeoutError":
      return error.phase !== "total"
    case "UnexpectedStatusError":
      return error.status === 408
    default:
      return false
  }
}

/**
 * Tells whether the request of the attempt that failed with this error may have
 * reached the server (and so may have been processed and billed). It is `false`
 * only when nothing was certainly sent: an `InvalidRequestError`,
 * `CircuitOpenError`, `BudgetExceededError` or `CoordinationError` (the call
 * failed before sending),
 * or a `ConnectionError` with `sent: false`. Earlier attempts of a retried call
 * (`attempts > 1`) may have been sent whatever this says.
 *
 * @example
 * ```ts
 * import { InferenceError } from "@effect-inference/client"
 * import { Effect } from "effect"
 *
 * // A failed attempt may still have run (and been billed) unless nothing was sent.
 * const noteSpend = (error: InferenceError.InferenceError) =>
 *   InferenceError.wasSent(error) ? Effect.logInfo("the failed attempt may have been billed") : Effect.void
 * ```
 *
 * @since 0.2.0
 * @category predicates
 */
export const wasSent = (error: InferenceError): boolean => {
  switch (error._tag) {
    case "InvalidRequestError":
    case "CircuitOpenError":
    case "BudgetExceededError":
    case "CoordinationError":
      return false
    case "ConnectionError":
      return error.sent
    default:
      return true
  }
}
