/**
 * Where the tokens of a request are estimated before it is sent, and where the
 * client decides what a failed call cost. The rate limiter and the usage
 * tracker both reserve from these estimates, so they agree on every call.
 */
import * as Cause from "effect/Cause"
import * as Chunk from "effect/Chunk"
import type { ChatCompletionRequestInput } from "../ChatCompletion.js"
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
