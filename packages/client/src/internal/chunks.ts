/**
 * Where a chunk's schema is defined and where streamed chunks are folded back
 * into one completion.
 *
 * The schemas live here rather than in the public module, which re-exports
 * them: `fromCompletion` builds chunks, so this module needs the classes as
 * values, and the public module needs this one's functions. Defined on one side
 * only, neither module waits on the other to load. Schemas and fold together
 * pass 400 lines; split, the fold would import the schemas from a module of
 * their own for no gain to a reader, who looks for both here.
 */
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import { ChatCompletion, Choice, isFunctionToolCall, ResponseMessage, Usage } from "../ChatCompletion.js"
import type { ResponseToolCall } from "../ChatCompletion.js"
import * as reasoning from "./reasoning.js"

// ---------------------------------------------------------------------------
// Schemas (documented where the public module re-exports them)
// ---------------------------------------------------------------------------

const nullable = <S extends Schema.Schema.Any>(schema: S) => Schema.optionalWith(schema, { nullable: true })

const JsonObject = Schema.Record({ key: Schema.String, value: Schema.Unknown })

const ToolCallDeltaFields = Schema.Struct({
  index: Schema.Number,
  id: nullable(Schema.String),
  type: nullable(Schema.String),
  function: nullable(Schema.Struct({
    name: nullable(Schema.String),
    arguments: nullable(Schema.String)
  })),
  /**
   * The piece as the server sent it, kept only when it has fields besides
   * `index`, `id`, `type` and `function`: the pieces of a tool call of a type
   * other than `"function"`, which the fold merges into an
   * `UnknownToolCall`'s `raw`.
   *
   * @since 0.2.0
   */
  raw: Schema.optional(JsonObject)
})

const KNOWN_PIECE_FIELDS = new Set(["index", "id", "type", "function"])

export const ToolCallDelta = Schema.transform(JsonObject, ToolCallDeltaFields, {
  strict: false,
  decode: (piece) => Object.keys(piece).some((key) => !KNOWN_PIECE_FIELDS.has(key)) ? { ...piece, raw: piece } : piece,
  encode: (delta) => delta.raw ?? delta
})

export type ToolCallDelta = typeof ToolCallDelta.Type

const deltaFields = {
  role: nullable(Schema.String),
  content: nullable(Schema.String),
  tool_calls: nullable(Schema.Array(ToolCallDelta)),
  refusal: nullable(Schema.String),
  /**
   * A piece of the model's thinking, read from the wire's `reasoning` or, failing
   * that, `reasoning_content`. It is output: a chunk that carries it has content.
   *
   * @since 0.2.0
   */
  reasoning: nullable(Schema.String),
  /** The same text as `reasoning`: an alias kept for compatibility. Prefer `reasoning`. */
  reasoning_content: nullable(Schema.String)
}

export class Delta extends Schema.Class<Delta>("@effect-inference/client/Delta")(deltaFields) {
  constructor(
    props: void | Schema.Simplify<Schema.Struct.Constructor<typeof deltaFields>>,
    options?: Schema.MakeOptions
  ) {
    super(reasoning.mirror(props ?? {}), options)
  }
}

export class ChunkChoice extends Schema.Class<ChunkChoice>("@effect-inference/client/ChunkChoice")({
  index: Schema.Number,
  delta: Schema.optionalWith(Delta, { nullable: true, default: () => new Delta({}) }),
  finish_reason: Schema.optionalWith(Schema.NullOr(Schema.String), { default: () => null }),
  logprobs: nullable(Schema.Unknown)
}) {}

export class ChatCompletionChunk extends Schema.Class<ChatCompletionChunk>(
  "@effect-inference/client/ChatCompletionChunk"
)({
  id: Schema.String,
  object: Schema.optionalWith(Schema.String, { nullable: true, default: () => "chat.completion.chunk" }),
  created: Schema.Number,
  model: Schema.String,
  choices: Schema.optionalWith(Schema.Array(ChunkChoice), { nullable: true, default: () => [] }),
  usage: nullable(Usage),
  system_fingerprint: nullable(Schema.String)
}) {}

// ---------------------------------------------------------------------------
// Folding
// ---------------------------------------------------------------------------

/**
 * Characters of generated text in a chunk, to estimate the completion tokens of
 * a stream that ended before its usage arrived.
 *
 * @internal
 */
export const contentLength = (chunk: ChatCompletionChunk): number => {
  let length = 0
  for (const choice of chunk.choices) {
    const delta = choice.delta
    // `reasoning_content` is an alias of `reasoning`: counted once.
    length += (delta.content?.length ?? 0) + (reasoningOf(delta)?.length ?? 0) + (delta.refusal?.length ?? 0)
    for (const call of delta.tool_calls ?? []) length += call.function?.arguments?.length ?? 0
  }
  return length
}

/** The reasoning of a delta under either name (a delta built by the class holds it under both). */
const reasoningOf = (delta: ChatCompletionChunk["choices"][number]["delta"]): string | undefined =>
  delta.reasoning ?? delta.reasoning_content

/**
 * Whether a chunk carries output. A piece of reasoning is output: a reasoning
 * model can think for minutes before its first piece of text, and the client's
 * `firstChunkTimeout` and its "retry only before the first output" rule must
 * see that thinking as the answer having started.
 *
 * @internal
 */
export const hasContent = (chunk: ChatCompletionChunk): boolean => {
  if (chunk.usage !== undefined) return true
  for (const choice of chunk.choices) {
    if (choice.finish_reason !== null) return true
    const delta = choice.delta
    if (
      (delta.content !== undefined && delta.content !== "") ||
      (reasoningOf(delta) ?? "") !== "" ||
      (delta.refusal !== undefined && delta.refusal !== "") ||
      (delta.tool_calls !== undefined && delta.tool_calls.length > 0)
    ) return true
  }
  return false
}

interface ToolCallState {
  id: string
  name: string
  arguments: Array<string>
  /** The last non-empty `type` of its pieces; a call whose type is not "function" is folded from `raw`. */
  type: string | undefined
  /** The merged fields of its pieces, kept once its type is known not to be "function" or a piece has `raw`. */
  raw: Record<string, unknown> | undefined
}

interface ChoiceState {
  role: string
  content: Array<string> | undefined
  reasoning: Array<string> | undefined
  refusal: Array<string> | undefined
  toolCalls: Map<number, ToolCallState>
  finishReason: string | null
}

/**
 * The fold's state: text is kept as arrays of pieces and joined once at the end,
 * so a long answer costs linear time.
 *
 * @internal
 */
export interface Accumulator {
  id: string
  created: number
  model: string
  systemFingerprint: string | undefined
  usage: Usage | undefined
  choices: Map<number, ChoiceState>
}

/** @internal */
export const empty = (): Accumulator => ({
  id: "",
  created: 0,
  model: "",
  systemFingerprint: undefined,
  usage: undefined,
  choices: new Map()
})

const push = (pieces: Array<string> | undefined, piece: string | undefined): Array<string> | undefined => {
  if (piece === undefined || piece === "") return pieces
  if (pieces === undefined) return [piece]
  pieces.push(piece)
  return pieces
}

/** @internal */
export const step = (acc: Accumulator, chunk: ChatCompletionChunk): Accumulator => {
  if (acc.id === "") {
    acc.id = chunk.id
    acc.created = chunk.created
  }
  if (acc.model === "") acc.model = chunk.model
  if (chunk.system_fingerprint !== undefined) acc.systemFingerprint = chunk.system_fingerprint
  if (chunk.usage !== undefined) acc.usage = chunk.usage
  for (const choice of chunk.choices) {
    let state = acc.choices.get(choice.index)
    if (state === undefined) {
      state = {
        role: "assistant",
        content: undefined,
        reasoning: undefined,
        refusal: undefined,
        toolCalls: new Map(),
        finishReason: null
      }
      acc.choices.set(choice.index, state)
    }
    const delta = choice.delta
    if (delta.role !== undefined && delta.role !== "") state.role = delta.role
    state.content = push(state.content, delta.content)
    if (delta.content === "" && state.content === undefined) state.content = []
    state.reasoning = push(state.reasoning, reasoningOf(delta))
    state.refusal = push(state.refusal, delta.refusal)
    for (const call of delta.tool_calls ?? []) {
      let tool = state.toolCalls.get(call.index)
      if (tool === undefined) {
        tool = { id: "", name: "", arguments: [], type: undefined, raw: undefined }
        state.toolCalls.set(call.index, tool)
      }
      if (call.id !== undefined && call.id !== "") tool.id = call.id
      if (call.type !== undefined && call.type !== "") tool.type = call.type
      if (call.raw !== undefined || tool.raw !== undefined || (tool.type !== undefined && tool.type !== "function")) {
        tool.raw = merge(tool.raw ?? {}, call.raw ?? wireOf(call))
      }
      // The name comes whole in the first piece; servers that repeat it must not double it.
      if (call.function?.name !== undefined && call.function.name !== "" && tool.name === "") {
        tool.name = call.function.name
      }
      if (call.function?.arguments !== undefined) tool.arguments.push(call.function.arguments)
    }
    if (choice.finish_reason !== null) state.finishReason = choice.finish_reason
  }
  return acc
}

/** A piece without `raw` as the server sent it. */
const wireOf = (call: ToolCallDelta): Record<string, unknown> => ({
  index: call.index,
  ...(call.id === undefined ? {} : { id: call.id }),
  ...(call.type === undefined ? {} : { type: call.type }),
  ...(call.function === undefined ? {} : { function: call.function })
})

const isObject = (u: unknown): u is Record<string, unknown> => typeof u === "object" && u !== null && !Array.isArray(u)

/** Sets an own property, so that a key named `__proto__` in a body is data, not the object's prototype. */
const setOwn = (into: Record<string, unknown>, key: string, value: unknown): void => {
  Object.defineProperty(into, key, { value, writable: true, enumerable: true, configurable: true })
}

/**
 * Merges a piece of a tool call of an unknown type into what came before, as
 * OpenAI's SDKs accumulate deltas: text is concatenated, objects are merged key
 * by key, and anything else (numbers, arrays, and `index`, `id` and `type`,
 * which name the call rather than add to it) is replaced. `into` is the fold's
 * own object; the piece's objects are copied, not changed.
 *
 * The pieces come from the server: the walk keeps its own stack (a piece nesting
 * objects thousands deep would overflow the call stack), and reads and writes
 * own properties only (`"__proto__": {...}` in a piece would otherwise be merged
 * into `Object.prototype`).
 */
const merge = (into: Record<string, unknown>, piece: Record<string, unknown>): Record<string, unknown> => {
  const pending: Array<readonly [Record<string, unknown>, Record<string, unknown>]> = [[into, piece]]
  for (let next = pending.pop(); next !== undefined; next = pending.pop()) {
    const [target, source] = next
    for (const [key, value] of Object.entries(source)) {
      const before = Object.hasOwn(target, key) ? target[key] : undefined
      if (
        key !== "index" && key !== "id" && key !== "type" && typeof before === "string" && typeof value === "string"
      ) {
        setOwn(target, key, before + value)
      } else if (isObject(value)) {
        const merged = isObject(before) ? before : {}
        setOwn(target, key, merged)
        pending.push([merged, value])
      } else {
        setOwn(target, key, value)
      }
    }
  }
  return into
}

const toolCallOf = (tool: ToolCallState): ResponseToolCall => {
  if (tool.type === undefined || tool.type === "function") {
    return { id: tool.id, type: "function", function: { name: tool.name, arguments: tool.arguments.join("") } }
  }
  const { index: _, ...raw } = tool.raw ?? {}
  return { type: tool.type, ...(tool.id === "" ? {} : { id: tool.id }), raw }
}

const contentOf = (pieces: Array<string> | undefined, hasToolCalls: boolean): string | null => {
  const text = pieces === undefined ? "" : pieces.join("")
  return text === "" && hasToolCalls ? null : text
}

/** @internal */
export const finish = (acc: Accumulator): ChatCompletion =>
  new ChatCompletion({
    id: acc.id,
    object: "chat.completion",
    created: acc.created,
    model: acc.model,
    choices: [...acc.choices.entries()].sort(([a], [b]) => a - b).map(([index, state]) => {
      const toolCalls: Array<ResponseToolCall> = [...state.toolCalls.entries()].sort(([a], [b]) => a - b).map((
        [, tool]
      ) => toolCallOf(tool))
      return new Choice({
        index,
        message: new ResponseMessage({
          role: state.role,
          // As without streaming: null when the model only called tools (servers open such streams with
          // content "" too), "" for an empty answer.
          content: contentOf(state.content, toolCalls.length > 0),
          ...(toolCalls.length > 0 ? { tool_calls: toolCalls } : {}),
          ...(state.refusal !== undefined ? { refusal: state.refusal.join("") } : {}),
          // The constructor fills reasoning_content, its alias, with the same text.
          ...(state.reasoning !== undefined ? { reasoning: state.reasoning.join("") } : {})
        }),
        finish_reason: state.finishReason
      })
    }),
    ...(acc.usage !== undefined ? { usage: acc.usage } : {}),
    ...(acc.systemFingerprint !== undefined ? { system_fingerprint: acc.systemFingerprint } : {})
  })

/** @internal */
export const toCompletion = (chunks: Iterable<ChatCompletionChunk>): ChatCompletion => {
  const acc = empty()
  for (const chunk of chunks) step(acc, chunk)
  return finish(acc)
}

/** @internal */
export const runFold = <E, R>(stream: Stream.Stream<ChatCompletionChunk, E, R>): Effect.Effect<Accumulator, E, R> =>
  Effect.suspend(() => Stream.runFold(stream, empty(), step))

/**
 * The chunks a server would stream for a completion: per choice, an opening role
 * chunk, the text a word at a time, each tool call, and the finish reason; then
 * the usage, if asked for and known.
 *
 * @internal
 */
export const fromCompletion = (
  completion: ChatCompletion,
  options: { readonly includeUsage?: boolean | undefined } = {}
): Array<ChatCompletionChunk> => {
  const chunks: Array<ChatCompletionChunk> = []
  const make = (choices: ReadonlyArray<ChunkChoice>, usage?: Usage) =>
    new ChatCompletionChunk({
      id: completion.id,
      object: "chat.completion.chunk",
      created: completion.created,
      model: completion.model,
      choices,
      ...(usage === undefined ? {} : { usage })
    })
  const choice = (index: number, delta: ConstructorParameters<typeof Delta>[0], finish: string | null = null) =>
    new ChunkChoice({ index, delta: new Delta(delta), finish_reason: finish })
  for (const c of completion.choices) {
    chunks.push(make([choice(c.index, { role: c.message.role, content: "" })]))
    const thinking = c.message.reasoning ?? c.message.reasoning_content
    if (thinking !== undefined) chunks.push(make([choice(c.index, { reasoning: thinking })]))
    for (const piece of c.message.content?.match(/\s*\S+\s*?/g) ?? []) {
      chunks.push(make([choice(c.index, { content: piece })]))
    }
    if (c.message.refusal !== undefined) chunks.push(make([choice(c.index, { refusal: c.message.refusal })]))
    ;(c.message.tool_calls ?? []).forEach((call, i) =>
      chunks.push(make([choice(c.index, {
        tool_calls: [
          isFunctionToolCall(call)
            ? { index: i, id: call.id, type: call.type, function: call.function }
            : {
              index: i,
              type: call.type,
              ...(call.id === undefined ? {} : { id: call.id }),
              raw: { ...call.raw, index: i }
            }
        ]
      })]))
    )
    chunks.push(make([choice(c.index, {}, c.finish_reason)]))
  }
  if (options.includeUsage !== false && completion.usage !== undefined) chunks.push(make([], completion.usage))
  return chunks
}
