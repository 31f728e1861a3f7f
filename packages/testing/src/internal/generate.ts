/**
 * The simulator's fake model: deterministic answers and token counts.
 *
 * An answer depends only on the seed and the request (model, messages, sampling
 * parameters), never on call order, so a streamed and a non-streamed call of the
 * same request produce the same text.
 */

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

/** One generated choice: its tokens (each a piece of text) and why it stopped. */
export interface Generated {
  readonly tokens: ReadonlyArray<string>
  readonly finishReason: "stop" | "length"
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

/** The answer of choice `index` for a request, from the simulator's seed. */
export const generate = (
  request: GenerateRequest,
  seed: number,
  index: number,
  lengths: readonly [min: number, max: number] = [8, 40]
): Generated => {
  const key = JSON.stringify([
    request.model,
    request.messages,
    request.temperature ?? null,
    request.seed ?? null,
    index
  ])
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

/** Completion tokens of a generated choice: one per generated word, which is also what countTokens gives for its text. */
export const completionTokens = (generated: Generated): number => generated.tokens.length
