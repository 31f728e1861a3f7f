/**
 * The pieces of a streamed chat completion (`chat.completion.chunk` events), and
 * the fold that puts them back together into one `ChatCompletion`.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import type * as Schema from "effect/Schema"
import type * as Stream from "effect/Stream"
import type { ChatCompletion } from "./ChatCompletion.js"
import * as internal from "./internal/chunks.js"

/**
 * A piece of a tool call. Pieces with the same `index` belong to the same call:
 * the first carries `id` and `function.name`, the rest more of `function.arguments`.
 * A piece of a call of another `type` than `"function"` keeps what it carries
 * in `raw`, so the call is kept whole (see `ChatCompletion.UnknownToolCall`).
 *
 * @since 0.1.0
 * @category schemas
 */
export const ToolCallDelta: typeof internal.ToolCallDelta = internal.ToolCallDelta

/**
 * @since 0.1.0
 * @category models
 */
export type ToolCallDelta = Schema.Schema.Type<typeof ToolCallDelta>

/**
 * What one chunk adds to a choice. A piece of reasoning is held under both
 * `reasoning` and `reasoning_content`, whichever name the server used
 * (`reasoning` wins if both are given).
 *
 * @since 0.1.0
 * @category schemas
 */
export const Delta: typeof internal.Delta = internal.Delta

/**
 * An instance of the {@link Delta} schema class, named for use in types.
 *
 * @since 0.1.0
 * @category models
 */
export type Delta = internal.Delta

/**
 * One choice of a chunk: its `index`, what the chunk adds to it (`delta`) and,
 * in its last chunk, why it ended (`finish_reason`).
 *
 * @since 0.1.0
 * @category schemas
 */
export const ChunkChoice: typeof internal.ChunkChoice = internal.ChunkChoice

/**
 * An instance of the {@link ChunkChoice} schema class, named for use in types.
 *
 * @since 0.1.0
 * @category models
 */
export type ChunkChoice = internal.ChunkChoice

/**
 * One `chat.completion.chunk` event. The last one of a stream may have no
 * choices and carry the `usage` of the whole call.
 *
 * @since 0.1.0
 * @category schemas
 */
export const ChatCompletionChunk: typeof internal.ChatCompletionChunk = internal.ChatCompletionChunk

/**
 * An instance of the {@link ChatCompletionChunk} schema class, named for use in types.
 *
 * @since 0.1.0
 * @category models
 */
export type ChatCompletionChunk = internal.ChatCompletionChunk

/**
 * Whether a chunk carries anything a consumer would show or act on (text,
 * reasoning, a refusal, a tool call, a finish reason or usage), as opposed to the
 * opening `{"role": "assistant", "content": ""}` chunk.
 *
 * @since 0.1.0
 * @category predicates
 */
export const hasContent: (chunk: ChatCompletionChunk) => boolean = internal.hasContent

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
export const toCompletion: (chunks: Iterable<ChatCompletionChunk>) => ChatCompletion = internal.toCompletion

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
export const fromCompletion: (
  completion: ChatCompletion,
  options?: { readonly includeUsage?: boolean | undefined }
) => Array<ChatCompletionChunk> = internal.fromCompletion

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
