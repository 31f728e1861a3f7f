/**
 * Where a completion and a streamed chunk are decoded. Nearly every answer has
 * one of a few plain shapes, and Schema's general decoder costs more than
 * reading the bytes and parsing the JSON together: about 17 µs per completion,
 * and per chunk more than the chunk's read. Answers of those shapes are built
 * here directly, with the same result the Schema gives (tests compare the two
 * on generated answers):
 *
 * - a completion as real OpenAI-compatible servers send it: choices of text,
 *   reasoning (`reasoning` or `reasoning_content`), tool calls of any type,
 *   `null` for the fields they leave empty, and a usage with or without token
 *   details (`cached_tokens`, `reasoning_tokens`, either `null`);
 * - a chunk whose deltas hold a piece of text or of reasoning, without usage;
 *   and the last chunk of a stream, with no choices and the usage, in the
 *   shapes a completion's usage has.
 *
 * Anything else (a chunk with tool calls, or with usage and choices, an unexpected field type)
 * goes to the Schema, which also words the error of an answer that does not fit.
 * `fastCompletion` and `fastChunk` return `undefined` when they leave a value
 * to the Schema, which is how tests see which path an answer takes.
 */
import * as Either from "effect/Either"
import type * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import { ChatCompletion, Choice, ResponseMessage, Usage } from "../ChatCompletion.js"
import type { ResponseToolCall } from "../ChatCompletion.js"
import { ChatCompletionChunk, ChunkChoice, Delta } from "../ChatCompletionChunk.js"

const chunkBySchema = Schema.decodeUnknownEither(ChatCompletionChunk)
const completionBySchema = Schema.decodeUnknownEither(ChatCompletion)

type Json = Record<string, unknown>

const isRecord = (u: unknown): u is Json => typeof u === "object" && u !== null && !Array.isArray(u)

/** `undefined` and `null` mean absent, as `Schema.optionalWith(..., { nullable: true })` reads them. */
const absent = (u: unknown): u is undefined | null => u === undefined || u === null

const optionalString = (u: unknown): boolean => absent(u) || typeof u === "string"

/** The fields of a class instance being built, writable until it is returned. */
type Building<A> = { -readonly [K in keyof A]: A[K] }

/**
 * A chunk's instances are built as their constructors build them with
 * validation off (`new Delta(props, true)`): an object of the class's
 * prototype given the fields, in the same order, with every field that has a
 * default given (Data's constructor copies the fields onto the instance; the
 * Schema's fills in the defaults first; `Delta`'s mirrors the reasoning, as
 * below). `fastChunk` of a text chunk took 4 µs through the constructors and
 * takes 0.05 this way (a loop of 300,000, Node 20), and
 * `pnpm --filter @effect-inference/benchmarks bench --scenario stream --only client --rounds 1`
 * (median of 3 interleaved runs) measured 18.5 µs of CPU per chunk paced and 8.7
 * in bursts through the constructors, 15.0 and 6.7 this way. The tests compare
 * both paths on generated chunks.
 */
const building = <A>(prototype: A): Building<A> => Object.create(prototype as object) as Building<A>

const fastDelta = (delta: unknown): Delta | undefined => {
  if (absent(delta)) return building(Delta.prototype)
  if (!isRecord(delta) || !absent(delta.tool_calls)) return undefined
  const { content, reasoning, reasoning_content, refusal, role } = delta
  if (!optionalString(role) || !optionalString(content) || !optionalString(refusal)) return undefined
  if (!optionalString(reasoning) || !optionalString(reasoning_content)) return undefined
  const built = building(Delta.prototype)
  if (typeof role === "string") built.role = role
  if (typeof content === "string") built.content = content
  if (typeof refusal === "string") built.refusal = refusal
  // One text under both names, `reasoning` first, as the constructor's `reasoning.mirror` gives them.
  if (typeof reasoning === "string") {
    built.reasoning = reasoning
    built.reasoning_content = reasoning
  } else if (typeof reasoning_content === "string") {
    built.reasoning_content = reasoning_content
    built.reasoning = reasoning_content
  }
  return built
}

/** Every item built, or `undefined` if one cannot be. */
const each = <A>(items: ReadonlyArray<unknown>, build: (item: unknown) => A | undefined): Array<A> | undefined => {
  const built: Array<A> = []
  for (const item of items) {
    const one = build(item)
    if (one === undefined) return undefined
    built.push(one)
  }
  return built
}

/** What a choice of a chunk and of a completion have alike, if it is plain: the choice and those fields. */
const plainChoice = (choice: unknown):
  | readonly [Json, {
    readonly index: number
    readonly finish_reason: string | null
    readonly logprobs?: unknown
  }]
  | undefined =>
{
  if (!isRecord(choice) || typeof choice.index !== "number") return undefined
  const finish = choice.finish_reason
  if (!optionalString(finish)) return undefined
  return [choice, {
    index: choice.index,
    finish_reason: typeof finish === "string" ? finish : null,
    ...(absent(choice.logprobs) ? {} : { logprobs: choice.logprobs })
  }]
}

const fastChoice = (choice: unknown): ChunkChoice | undefined => {
  if (!isRecord(choice) || typeof choice.index !== "number") return undefined
  const finish = choice.finish_reason
  if (!optionalString(finish)) return undefined
  const delta = fastDelta(choice.delta)
  if (delta === undefined) return undefined
  const built = building(ChunkChoice.prototype)
  built.index = choice.index
  built.finish_reason = typeof finish === "string" ? finish : null
  if (!absent(choice.logprobs)) built.logprobs = choice.logprobs
  built.delta = delta
  return built
}

/** The chunk, if it has the plain shape; `undefined` sends it to the Schema. */
export const fastChunk = (json: unknown): ChatCompletionChunk | undefined => {
  if (!isRecord(json)) return undefined
  const { choices, created, id, model, object, system_fingerprint, usage } = json
  if (typeof id !== "string" || typeof created !== "number" || typeof model !== "string") return undefined
  if (!optionalString(object) || !optionalString(system_fingerprint)) return undefined
  if (!absent(choices) && !Array.isArray(choices)) return undefined
  // Usage comes in the last chunk, which has no choices (a Schema decode of it costs 4 µs, once per stream).
  const reported = absent(usage) ? null : absent(choices) || choices.length === 0 ? fastUsage(usage) : undefined
  if (reported === undefined) return undefined
  const decoded: Array<ChunkChoice> = []
  if (choices !== undefined && choices !== null) {
    for (const item of choices) {
      const choice = fastChoice(item)
      if (choice === undefined) return undefined
      decoded.push(choice)
    }
  }
  const built = building(ChatCompletionChunk.prototype)
  built.id = id
  built.object = typeof object === "string" ? object : "chat.completion.chunk"
  built.created = created
  built.model = model
  built.choices = decoded
  if (reported !== null) built.usage = reported
  if (typeof system_fingerprint === "string") built.system_fingerprint = system_fingerprint
  return built
}

/** @internal */
export const decodeChunk = (json: unknown): Either.Either<ChatCompletionChunk, ParseResult.ParseError> => {
  const built = fastChunk(json)
  return built === undefined ? chunkBySchema(json) : Either.right(built)
}

/** A function call, or a call of another type kept whole, as `ChatCompletion.ResponseToolCall` decodes them. */
const fastToolCall = (call: unknown): ResponseToolCall | undefined => {
  if (!isRecord(call) || typeof call.type !== "string") return undefined
  if (call.type !== "function") {
    return { type: call.type, ...(typeof call.id === "string" ? { id: call.id } : {}), raw: { ...call } }
  }
  const fn = call.function
  if (typeof call.id !== "string" || !isRecord(fn) || typeof fn.name !== "string") return undefined
  if (typeof fn.arguments !== "string") return undefined
  return { id: call.id, type: "function", function: { name: fn.name, arguments: fn.arguments } }
}

const fastMessage = (message: unknown): ResponseMessage | undefined => {
  if (!isRecord(message)) return undefined
  const { content, reasoning, reasoning_content, refusal, role, tool_calls } = message
  if (!optionalString(role) || !optionalString(refusal)) return undefined
  if (!optionalString(reasoning) || !optionalString(reasoning_content)) return undefined
  if (!(content === undefined || content === null || typeof content === "string")) return undefined
  let calls: Array<ResponseToolCall> | undefined
  if (!absent(tool_calls)) {
    if (!Array.isArray(tool_calls)) return undefined
    calls = each(tool_calls, fastToolCall)
    if (calls === undefined) return undefined
  }
  // The constructor makes reasoning and reasoning_content one text, as it does for the Schema.
  return new ResponseMessage({
    role: typeof role === "string" ? role : "assistant",
    content: typeof content === "string" ? content : null,
    ...(calls === undefined ? {} : { tool_calls: calls }),
    ...(typeof refusal === "string" ? { refusal } : {}),
    ...(typeof reasoning === "string" ? { reasoning } : {}),
    ...(typeof reasoning_content === "string" ? { reasoning_content } : {})
  }, true)
}

const fastCompletionChoice = (input: unknown): Choice | undefined => {
  const plain = plainChoice(input)
  const message = plain === undefined ? undefined : fastMessage(plain[0].message)
  return message === undefined ? undefined : new Choice({ ...plain![1], message }, true)
}

/**
 * Token details with one count (`cached_tokens`, `reasoning_tokens`): absent for
 * `null` or nothing, `{}` for a `null` count, `false` for a shape the Schema has
 * to judge. Other counts in the details (`audio_tokens`) are left out, as the
 * Schema leaves them.
 */
const fastDetails = <K extends string>(
  details: unknown,
  key: K
): { readonly [k in K]?: number } | undefined | false => {
  if (absent(details)) return undefined
  if (!isRecord(details)) return false
  const count = details[key]
  if (absent(count)) return {}
  return typeof count === "number" ? { [key]: count } as { readonly [k in K]?: number } : false
}

/** Usage; `null` for an answer without usage; `undefined` sends it to the Schema. */
const fastUsage = (usage: unknown): Usage | null | undefined => {
  if (absent(usage)) return null
  if (!isRecord(usage)) return undefined
  const { completion_tokens, prompt_tokens, total_tokens } = usage
  if (typeof prompt_tokens !== "number" || typeof completion_tokens !== "number") return undefined
  if (typeof total_tokens !== "number") return undefined
  const prompt = fastDetails(usage.prompt_tokens_details, "cached_tokens")
  const completion = fastDetails(usage.completion_tokens_details, "reasoning_tokens")
  if (prompt === false || completion === false) return undefined
  return new Usage({
    prompt_tokens,
    completion_tokens,
    total_tokens,
    ...(prompt === undefined ? {} : { prompt_tokens_details: prompt }),
    ...(completion === undefined ? {} : { completion_tokens_details: completion })
  }, true)
}

/** The completion, if it has the plain shape; `undefined` sends it to the Schema. */
export const fastCompletion = (json: unknown): ChatCompletion | undefined => {
  if (!isRecord(json)) return undefined
  const { choices, created, id, model, object, system_fingerprint } = json
  if (typeof id !== "string" || typeof created !== "number" || typeof model !== "string") return undefined
  if (!optionalString(object) || !optionalString(system_fingerprint) || !Array.isArray(choices)) return undefined
  const usage = fastUsage(json.usage)
  if (usage === undefined) return undefined
  const decoded = each(choices, fastCompletionChoice)
  if (decoded === undefined) return undefined
  return new ChatCompletion({
    id,
    object: typeof object === "string" ? object : "chat.completion",
    created,
    model,
    choices: decoded,
    ...(usage === null ? {} : { usage }),
    ...(typeof system_fingerprint === "string" ? { system_fingerprint } : {})
  }, true)
}

/** @internal */
export const decodeCompletion = (json: unknown): Either.Either<ChatCompletion, ParseResult.ParseError> => {
  const built = fastCompletion(json)
  return built === undefined ? completionBySchema(json) : Either.right(built)
}
