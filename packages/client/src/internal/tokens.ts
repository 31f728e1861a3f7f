/**
 * Where the tokens of a request are estimated before it is sent, where the
 * client decides what a failed call cost, and where a count a server reported
 * is judged usable. The rate limiter and the usage tracker both reserve from
 * these estimates and read reported counts through `isTokenCount`, so they
 * agree on every call.
 */
import * as Cause from "effect/Cause"
import * as Chunk from "effect/Chunk"
import type { ChatCompletionRequestInput, Usage } from "../ChatCompletion.js"
import type { InferenceError } from "../InferenceError.js"

/** @internal */
export const DEFAULT_COMPLETION_TOKENS = 1024

/** @internal */
export const CHARS_PER_TOKEN = 4
const TOKENS_PER_MESSAGE = 4
const TOKENS_PER_IMAGE = 1000
/** The tokens that start the model's reply. */
const REPLY_PRIMING = 3

type Message = ChatCompletionRequestInput["messages"][number]

const messageTokens = (message: Message): number => {
  let chars = 0
  let images = 0
  const content = message.content
  if (typeof content === "string") {
    chars += content.length
  } else if (content !== undefined && content !== null) {
    for (const part of content) {
      if (part.type === "text") chars += part.text.length
      else images++
    }
  }
  if ("name" in message && message.name !== undefined) chars += message.name.length
  if (message.role === "assistant") {
    if (message.tool_calls !== undefined) chars += jsonLength(message.tool_calls)
    if (message.refusal !== undefined && message.refusal !== null) chars += message.refusal.length
  }
  if (message.role === "tool") chars += message.tool_call_id.length
  return TOKENS_PER_MESSAGE + Math.ceil(chars / CHARS_PER_TOKEN) + images * TOKENS_PER_IMAGE
}

/** JSON that cannot be written (a BigInt, a cycle) counts as nothing here; sending it fails as an invalid request. */
const jsonLength = (value: unknown): number => {
  try {
    return JSON.stringify(value)?.length ?? 0
  } catch {
    return 0
  }
}

const jsonTokens = (value: unknown): number => Math.ceil(jsonLength(value) / CHARS_PER_TOKEN)

/** @internal */
export const estimatePromptTokens = (request: ChatCompletionRequestInput): number => {
  let prompt = REPLY_PRIMING
  for (const message of request.messages) prompt += messageTokens(message)
  if (request.tools !== undefined && request.tools.length > 0) prompt += jsonTokens(request.tools)
  if (request.response_format !== undefined && request.response_format.type === "json_schema") {
    prompt += jsonTokens(request.response_format.json_schema)
  }
  return prompt
}

/** @internal */
export const estimateCompletionTokens = (request: ChatCompletionRequestInput): number =>
  (request.max_completion_tokens ?? request.max_tokens ?? DEFAULT_COMPLETION_TOKENS) * (request.n ?? 1)

/** @internal */
export const estimateTokens = (request: ChatCompletionRequestInput): number =>
  estimatePromptTokens(request) + estimateCompletionTokens(request)

// ---------------------------------------------------------------------------
// What a failure costs
// ---------------------------------------------------------------------------

/**
 * Whether the error shows that the server generated nothing for the request.
 * This one rule decides what a failed call costs, both in the usage tracker's
 * budget and in the rate limiter's token window.
 *
 * @internal
 */
export const generatedNothing = (error: InferenceError): boolean => {
  switch (error._tag) {
    // Refused, DNS, TLS, an invalid URL: nothing was written, so nothing was processed or billed. A
    // connection lost after sending may have been processed.
    case "ConnectionError":
      return !error.sent
    // The request may have been processed: the bound gave out first, or a 2xx body could not be read.
    case "TimeoutError":
    case "ResponseDecodeError":
      return false
    // Never sent.
    case "InvalidRequestError":
    case "CircuitOpenError":
    case "BudgetExceededError":
    case "CoordinationError":
      return true
    // Refused with an error status, unless the stream had delivered content before the error frame.
    default:
      return error.chunksDelivered === undefined
  }
}

/** @internal */
export const tokensOfFailure = (cause: Cause.Cause<InferenceError>): 0 | undefined => {
  if (Cause.isInterrupted(cause) || Cause.isDie(cause)) return undefined
  const failures = Cause.failures(cause)
  return Chunk.isNonEmpty(failures) && Chunk.every(failures, generatedNothing) ? 0 : undefined
}

// ---------------------------------------------------------------------------
// What a server reports
// ---------------------------------------------------------------------------

/**
 * A count of tokens for one call is below this. No model reads or writes a
 * billion tokens in one call; a count this large is a server's mistake (or
 * `1e400`, which JSON reads as `Infinity`), and believed it would spend a
 * budget or fill a rate window with one answer.
 *
 * @internal
 */
export const MAX_TOKEN_COUNT = 1_000_000_000

/**
 * Whether `n` can be a count of tokens used by one call: a whole number from 0
 * below {@link MAX_TOKEN_COUNT}. Not `NaN`, not `Infinity`, not `1.5`, not `-5`.
 * The one check of every count a server reports, in the usage tracker and in
 * the rate limiter alike.
 *
 * @internal
 */
export const isTokenCount = (n: unknown): n is number =>
  typeof n === "number" && Number.isInteger(n) && n >= 0 && n < MAX_TOKEN_COUNT

/**
 * The first count of a reported `usage` that is not a token count, by its name
 * in `usage` (`prompt_tokens`, `total_tokens`,
 * `prompt_tokens_details.cached_tokens`, ...); `undefined` if every count is
 * one (details left out or `null` are fine). A usage with such a count is not
 * believed at all: its other counts came from the same broken report.
 *
 * @internal
 */
export const usageProblem = (usage: Usage): string | undefined => {
  if (!isTokenCount(usage.prompt_tokens)) return "prompt_tokens"
  if (!isTokenCount(usage.completion_tokens)) return "completion_tokens"
  if (!isTokenCount(usage.total_tokens)) return "total_tokens"
  const cached = usage.prompt_tokens_details?.cached_tokens
  if (cached !== undefined && !isTokenCount(cached)) return "prompt_tokens_details.cached_tokens"
  const reasoning = usage.completion_tokens_details?.reasoning_tokens
  if (reasoning !== undefined && !isTokenCount(reasoning)) return "completion_tokens_details.reasoning_tokens"
  return undefined
}

/**
 * The tokens a rate limiter settles a call with: the reported total, or
 * `undefined` (the estimate stays charged) when any count of the report is not
 * to be believed.
 *
 * @internal
 */
export const reportedTotal = (usage: Usage | undefined): number | undefined =>
  usage === undefined || usageProblem(usage) !== undefined ? undefined : usage.total_tokens
