/**
 * The pieces of a streamed chat completion (`chat.completion.chunk` events), and
 * the fold that puts them back together into one `ChatCompletion`.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import type * as Stream from "effect/Stream"
import type { ChatCompletion } from "./ChatCompletion.js"
import { Usage } from "./ChatCompletion.js"
// internal/chunks.js builds these classes, so the functions below call into it lazily (no import cycle at load).
import * as internal from "./internal/chunks.js"
import * as reasoning from "./internal/reasoning.js"

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

/**
 * A piece of a tool call. Pieces with the same `index` belong to the same call:
 * the first carries `id` and `function.name`, the rest more of `function.arguments`.
 * A piece of a call of another `type` than `"function"` keeps what it carries
 * in `raw`, so the call is kept whole (see `ChatCompletion.UnknownToolCall`).
 *
 * @since 0.1.0
 * @category schemas
 */
export const ToolCallDelta = Schema.transform(JsonObject, ToolCallDeltaFields, {
  strict: false,
  decode: (piece) => Object.keys(piece).some((key) => !KNOWN_PIECE_FIELDS.has(key)) ? { ...piece, raw: piece } : piece,
  encode: (delta) => delta.raw ?? delta
})

/**
 * @since 0.1.0
 * @category models
 */
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

/**
 * What one chunk adds to a choice. A piece of reasoning is held under both
 * `reasoning` and `reasoning_content`, whichever name the server used
 * (`reasoning` wins if both are given).
 *
 * @since 0.1.0
 * @category schemas
 */
export class Delta extends Schema.Class<Delta>("@effect-inference/client/Delta")(deltaFields) {
  constructor(
    props: void | Schema.Simplify<Schema.Struct.Constructor<typeof deltaFields>>,
    options?: Schema.MakeOptions
  ) {
    super(reasoning.mirror(props ?? {}), options)
  }
}

/**
 * @since 0.1.0
 * @category schemas
 */
export class ChunkChoice extends Schema.Class<ChunkChoice>("@effect-inference/client/ChunkChoice")({
  index: Schema.Number,
  delta: Schema.optionalWith(Delta, { nullable: true, default: () => new Delta({}) }),
  finish_reason: Schema.optionalWith(Schema.NullOr(Schema.String), { default: () => null }),
  logprobs: nullable(Schema.Unknown)
}) {}

/**
 * One `chat.completion.chunk` event. The last one of a stream may have no
 * choices and carry the `usage` of the whole call.
 *
 * @since 0.1.0
 * @category schemas
 */
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

/**
 * Whether a chunk carries anything a consumer would show or act on (text,
 * reasoning, a refusal, a tool call, a finish reason or usage), as opposed to the
 * opening `{"role": "assistant", "content": ""}` chunk.
 *
 * @since 0.1.0
 * @category predicates
 */
export const hasContent = (chunk: ChatCompletionChunk): boolean => internal.hasContent(chunk)

/**
 * Puts the chunks of one stream back together: text, reasoning and refusals
 * concatenated per choice, tool-call pieces merged by `index`, the last finish
 * reason and the usage. Reasoning is read under either name and given back as
 * `message.reasoning` (and its alias `reasoning_content`). The pieces of a tool
 * call whose `type` is not `"function"` become an `UnknownToolCall` whose `raw`
 * merges their fields (text concatenated, objects merged key by key, anything
 * else replaced). The result equals what the same request returns without
 * streaming (but for `id` and `created`, which the server gives each call).
 *
 * @example
 * ```ts
 * import { ChatCompletionChunk } from "@effect-inference/client"
 *
 * // Chunks kept as they arrived (say, to show them live) become the whole answer at the end.
 * const answer = (chunks: ReadonlyArray<ChatCompletionChunk.ChatCompletionChunk>) =>
 *   ChatCompletionChunk.toCompletion(chunks).choices[0].message.content
 * ```
 *
 * @since 0.1.0
 * @category folding
 */
export const toCompletion = (chunks: Iterable<ChatCompletionChunk>): ChatCompletion => internal.toCompletion(chunks)

/**
 * The chunks a server would stream for a completion (the inverse of
 * {@link toCompletion}): per choice an opening role chunk, the text a word at a
 * time, each tool call and the finish reason, then the usage unless
 * `includeUsage` is `false`. For fakes, caches and replays.
 *
 * @example
 * ```ts
 * import { ChatCompletion, ChatCompletionChunk } from "@effect-inference/client"
 * import { deepStrictEqual } from "node:assert"
 *
 * const completion = new ChatCompletion.ChatCompletion({
 *   id: "chatcmpl-1",
 *   created: 0,
 *   model: "meta-llama/Llama-3.1-8B-Instruct",
 *   choices: [new ChatCompletion.Choice({ index: 0, message: new ChatCompletion.ResponseMessage({ content: "Hello there" }), finish_reason: "stop" })]
 * })
 *
 * // A fake server or a replay streams the completion; the fold gives it back.
 * const chunks = ChatCompletionChunk.fromCompletion(completion)
 * deepStrictEqual(ChatCompletionChunk.toCompletion(chunks).choices[0].message.content, "Hello there")
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const fromCompletion = (
  completion: ChatCompletion,
  options?: { readonly includeUsage?: boolean | undefined }
): Array<ChatCompletionChunk> => internal.fromCompletion(completion, options)

/**
 * Runs a chunk stream to its end and folds it into one `ChatCompletion` (see
 * {@link toCompletion}), in constant memory per choice.
 *
 * @example
 * ```ts
 * import { ChatCompletionChunk, InferenceClient } from "@effect-inference/client"
 * import { Effect, Stream } from "effect"
 *
 * // Show the answer as it arrives, and keep the whole completion (with its usage) at the end.
 * const program = Effect.gen(function*() {
 *   const client = yield* InferenceClient.InferenceClient
 *   const stream = client.streamChatCompletion({
 *     model: "meta-llama/Llama-3.1-8B-Instruct",
 *     messages: [{ role: "user", content: "Tell me a story" }]
 *   })
 *   const completion = yield* ChatCompletionChunk.collect(
 *     Stream.tap(stream, (chunk) => Effect.sync(() => process.stdout.write(chunk.choices[0]?.delta.content ?? "")))
 *   )
 *   return completion.usage
 * })
 * ```
 *
 * @since 0.1.0
 * @category folding
 */
export const collect = <E, R>(stream: Stream.Stream<ChatCompletionChunk, E, R>): Effect.Effect<ChatCompletion, E, R> =>
  Effect.map(internal.runFold(stream), internal.finish)
