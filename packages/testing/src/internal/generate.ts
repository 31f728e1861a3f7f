/**
 * The simulator's fake model: deterministic answers and token counts.
 *
 * An answer depends only on the seed and the request (model, messages, sampling
 * parameters), never on call order, so a streamed and a non-streamed call of the
 * same request produce the same text.
 */
import * as jsonSchema from "./jsonSchema.js"

/** A small, fast PRNG (mulberry32): deterministic across platforms, enough for fake text and fault draws. */
export const prng = (seed: number): () => number => {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6D2B79F5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** FNV-1a over a string, folded into a 32-bit seed. */
export const hash = (text: string, seed: number): number => {
  let h = (0x811C9DC5 ^ seed) >>> 0
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i)
    h = Math.imul(h, 0x01000193) >>> 0
  }
  return h
}

const WORDS = [
  "the",
  "model",
  "answers",
  "with",
  "a",
  "short",
  "and",
  "deterministic",
  "reply",
  "that",
  "depends",
  "on",
  "seed",
  "request",
  "only",
  "inference",
  "is",
  "fast",
  "when",
  "engine",
  "not",
  "overloaded",
  "tokens",
  "flow",
  "one",
  "by",
  "through",
  "stream",
  "until",
  "done",
  "every",
  "call",
  "counts",
  "usage",
  "for",
  "project",
  "retry",
  "after",
  "backoff",
  "grows",
  "circuit",
  "breaker",
  "opens",
  "closes",
  "again",
  "cache",
  "hits",
  "miss"
]

/**
 * Counts tokens the same way every time: one per word and one per punctuation
 * mark. Close enough to a real tokenizer for budgets and reports, and exact for tests.
 */
export const countTokens = (text: string): number => text.match(/[\p{L}\p{N}_]+|[^\s\p{L}\p{N}_]/gu)?.length ?? 0

const contentText = (content: unknown): string => {
  if (typeof content === "string") return content
  if (Array.isArray(content)) {
    return content.map((part) =>
      typeof part === "object" && part !== null && "text" in part && typeof part.text === "string" ? part.text : ""
    ).join(" ")
  }
  return ""
}

/** Prompt tokens: each message's content and role, plus 3 per message and 3 for the reply's priming, as OpenAI counts. */
export const promptTokens = (messages: ReadonlyArray<unknown>): number =>
  messages.reduce<number>((sum, message) => {
    const m = typeof message === "object" && message !== null ? message as Record<string, unknown> : {}
    return sum + 3 + countTokens(contentText(m.content)) + countTokens(typeof m.role === "string" ? m.role : "")
  }, 3)

/**
 * The prompt as a sequence of tokens, as many as {@link promptTokens} counts: per
 * message a start mark, its role, a separator, its content and an end mark; then
 * the reply's priming. Prefix caching compares prompts by these.
 */
export const promptSequence = (messages: ReadonlyArray<unknown>): ReadonlyArray<string> => {
  const tokens: Array<string> = []
  const words = (text: string) => text.match(/[\p{L}\p{N}_]+|[^\s\p{L}\p{N}_]/gu) ?? []
  for (const message of messages) {
    const m = typeof message === "object" && message !== null ? message as Record<string, unknown> : {}
    tokens.push("<|start|>", ...words(typeof m.role === "string" ? m.role : ""), "<|sep|>")
    tokens.push(...words(contentText(m.content)), "<|end|>")
  }
  tokens.push("<|start|>", "<|assistant|>", "<|sep|>")
  return tokens
}

/** Text cut into tokens as {@link countTokens} counts them, each with the whitespace before it, so they join back. */
export const pieces = (text: string): ReadonlyArray<string> =>
  text.match(/\s*(?:[\p{L}\p{N}_]+|[^\s\p{L}\p{N}_])/gu) ?? []

/** Generated text: its tokens (each a piece of text) and why it stopped. */
export interface Text {
  readonly tokens: ReadonlyArray<string>
  readonly finishReason: "stop" | "length"
}

/** A tool the request offers, reduced to what an answer needs. */
export interface Tool {
  readonly name: string
  readonly parameters: unknown
}

/** What the request asks the answer to be: text, JSON (with a schema, or any object), or a call of one tool. */
export type Shape =
  | { readonly _tag: "Text" }
  | { readonly _tag: "Json"; readonly schema: unknown }
  | { readonly _tag: "ToolCall"; readonly tool: Tool }

/** One generated choice. */
export interface Generated {
  /** The thinking, token by token; empty for a model that does not think (or was told not to). */
  readonly reasoning: ReadonlyArray<string>
  /** The content, or for a tool call its `arguments`, token by token. */
  readonly tokens: ReadonlyArray<string>
  /** Set when the answer is a tool call. */
  readonly toolCall: { readonly id: string; readonly name: string } | undefined
  readonly finishReason: "stop" | "length" | "tool_calls"
}

export interface GenerateRequest {
  readonly model: string
  readonly messages: ReadonlyArray<unknown>
  readonly max_tokens?: number | undefined
  readonly max_completion_tokens?: number | undefined
  readonly temperature?: number | undefined
  readonly seed?: number | undefined
  readonly n?: number | undefined
}

/** What a choice's answer is drawn from: the same request and choice always get the same answer. */
const choiceKey = (request: GenerateRequest, index: number): string =>
  JSON.stringify([request.model, request.messages, request.temperature ?? null, request.seed ?? null, index])

/** The text answer of choice `index` for a request, from the simulator's seed. */
export const generate = (
  request: GenerateRequest,
  seed: number,
  index: number,
  lengths: readonly [min: number, max: number] = [8, 40]
): Text => {
  const key = choiceKey(request, index)
  const random = prng(hash(key, seed))
  const natural = lengths[0] + Math.floor(random() * (lengths[1] - lengths[0] + 1))
  const limit = request.max_completion_tokens ?? request.max_tokens
  const length = limit === undefined ? natural : Math.min(natural, limit)
  const tokens: Array<string> = []
  for (let i = 0; i < length; i++) {
    const word = WORDS[Math.floor(random() * WORDS.length)]!
    tokens.push(i === 0 ? word[0]!.toUpperCase() + word.slice(1) : ` ${word}`)
  }
  return { tokens, finishReason: length < natural ? "length" : "stop" }
}

/** How a choice is generated beyond the request itself. */
export interface AnswerOptions {
  readonly shape: Shape
  readonly thinks: boolean
  readonly answerTokens: readonly [min: number, max: number]
  readonly reasoningTokens: readonly [min: number, max: number]
}

/**
 * Choice `index` of a request: thinking first (when the model thinks), then text,
 * JSON or a tool call. `max_tokens` bounds all of it together, thinking included,
 * as vLLM counts it: a model that thinks past the limit answers nothing, with
 * `finish_reason: "length"`.
 */
export const answer = (request: GenerateRequest, seed: number, index: number, options: AnswerOptions): Generated => {
  const limit = request.max_completion_tokens ?? request.max_tokens ?? Infinity
  const key = choiceKey(request, index)
  const reasoning = options.thinks ? thinking(key, seed, options.reasoningTokens).slice(0, limit) : []
  const left = limit - reasoning.length
  const shape = options.shape
  if (shape._tag === "Text") {
    const text = generate(
      { ...request, max_completion_tokens: left, max_tokens: undefined },
      seed,
      index,
      options.answerTokens
    )
    return { reasoning, tokens: text.tokens, toolCall: undefined, finishReason: text.finishReason }
  }
  const random = prng(hash(`${key}${shape._tag}`, seed))
  const unbounded = { ...request, max_completion_tokens: undefined, max_tokens: undefined }
  const value = shape._tag === "ToolCall"
    ? jsonSchema.instance(shape.tool.parameters ?? { type: "object", properties: {} }, random, WORDS)
    : shape.schema === undefined
    // json_object names no schema: any object will do, and one with the text answer reads naturally.
    ? { answer: generate(unbounded, seed, index, options.answerTokens).tokens.join("") }
    : jsonSchema.instance(shape.schema, random, WORDS)
  const all = pieces(JSON.stringify(value))
  const tokens = all.slice(0, Math.max(0, left))
  const cut = tokens.length < all.length
  if (shape._tag === "Json") return { reasoning, tokens, toolCall: undefined, finishReason: cut ? "length" : "stop" }
  const id = `call_${hash(key, seed ^ 0x5BD1E995).toString(16).padStart(8, "0")}${
    hash(key, seed ^ 0x27D4EB2F).toString(16).padStart(8, "0")
  }`
  return { reasoning, tokens, toolCall: { id, name: shape.tool.name }, finishReason: cut ? "length" : "tool_calls" }
}

const THOUGHTS = ["Okay,", " the", " user", " asks", " about", " this", ".", " Let", " me", " think", "."]

/** The thinking of a choice: a few set words, then words drawn from the seed. */
const thinking = (key: string, seed: number, lengths: readonly [number, number]): ReadonlyArray<string> => {
  const random = prng(hash(`reasoning${key}`, seed))
  const length = lengths[0] + Math.floor(random() * (lengths[1] - lengths[0] + 1))
  const tokens: Array<string> = THOUGHTS.slice(0, length)
  while (tokens.length < length) tokens.push(` ${WORDS[Math.floor(random() * WORDS.length)]!}`)
  return tokens
}

/** Completion tokens of a generated choice: its thinking and its answer, one token each. */
export const completionTokens = (generated: Generated): number => generated.reasoning.length + generated.tokens.length
