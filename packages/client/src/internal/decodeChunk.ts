/**
 * Where a streamed chunk is decoded. A stream is hundreds of chunks of one plain
 * shape (a choice whose delta holds a piece of text), and Schema's general
 * decoder costs more per chunk than reading the bytes and parsing the JSON
 * together. Chunks of that shape are built here directly, with the same result
 * the Schema gives (a test compares the two on generated chunks); any other
 * chunk (tool calls, usage, an unexpected field type) goes to the Schema, which
 * also words the error of a chunk that does not fit.
 */
import * as Either from "effect/Either"
import type * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import { ChatCompletionChunk, ChunkChoice, Delta } from "../ChatCompletionChunk.js"

const bySchema = Schema.decodeUnknownEither(ChatCompletionChunk)

type Json = Record<string, unknown>

const isRecord = (u: unknown): u is Json => typeof u === "object" && u !== null && !Array.isArray(u)

/** `undefined` and `null` mean absent, as `Schema.optionalWith(..., { nullable: true })` reads them. */
const absent = (u: unknown): u is undefined | null => u === undefined || u === null

const optionalString = (u: unknown): boolean => absent(u) || typeof u === "string"

const TEXT_FIELDS = ["role", "content", "refusal", "reasoning_content"] as const

const fastDelta = (delta: unknown): Delta | undefined => {
  if (absent(delta)) return new Delta({}, true)
  if (!isRecord(delta) || !absent(delta.tool_calls)) return undefined
  const fields: { -readonly [K in typeof TEXT_FIELDS[number]]?: string } = {}
  for (const field of TEXT_FIELDS) {
    const value = delta[field]
    if (!optionalString(value)) return undefined
    if (typeof value === "string") fields[field] = value
  }
  return new Delta(fields, true)
}

const fastChoice = (choice: unknown): ChunkChoice | undefined => {
  if (!isRecord(choice) || typeof choice.index !== "number") return undefined
  const finish = choice.finish_reason
  if (!optionalString(finish)) return undefined
  const delta = fastDelta(choice.delta)
  if (delta === undefined) return undefined
  return new ChunkChoice({
    index: choice.index,
    delta,
    finish_reason: typeof finish === "string" ? finish : null,
    ...(absent(choice.logprobs) ? {} : { logprobs: choice.logprobs })
  }, true)
}

/** The chunk, if it has the plain shape; `undefined` sends it to the Schema. */
export const fast = (json: unknown): ChatCompletionChunk | undefined => {
  if (!isRecord(json)) return undefined
  const { choices, created, id, model, object, system_fingerprint, usage } = json
  if (typeof id !== "string" || typeof created !== "number" || typeof model !== "string") return undefined
  if (!optionalString(object) || !optionalString(system_fingerprint) || !absent(usage)) return undefined
  if (!absent(choices) && !Array.isArray(choices)) return undefined
  const decoded: Array<ChunkChoice> = []
  for (const choice of choices ?? []) {
    const built = fastChoice(choice)
    if (built === undefined) return undefined
    decoded.push(built)
  }
  return new ChatCompletionChunk({
    id,
    object: typeof object === "string" ? object : "chat.completion.chunk",
    created,
    model,
    choices: decoded,
    ...(typeof system_fingerprint === "string" ? { system_fingerprint } : {})
  }, true)
}

/** @internal */
export const decodeChunk = (json: unknown): Either.Either<ChatCompletionChunk, ParseResult.ParseError> => {
  const built = fast(json)
  return built === undefined ? bySchema(json) : Either.right(built)
}
