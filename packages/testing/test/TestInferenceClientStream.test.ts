/**
 * The scripted client's `streamChatCompletion`: each reply streams as the chunks a
 * server would send for it, so the fold of the stream is what `chatCompletion`
 * answers; and `ChatCompletionChunk.fromCompletion` is undone by `toCompletion`.
 */
import type { ChatCompletionChunk as Chunks } from "@effect-inference/client"
import { ChatCompletion, ChatCompletionChunk, InferenceClient, InferenceError } from "@effect-inference/client"
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import * as TestInferenceClient from "../src/TestInferenceClient.js"
import { runStream } from "./utils/Integration.js"

const MODEL = "deepseek-ai/DeepSeek-V3.1"

const ask = (
  content: string,
  extra: Partial<ChatCompletion.ChatCompletionRequestInput> = {}
): ChatCompletion.ChatCompletionRequestInput => ({
  model: MODEL,
  messages: [{ role: "system", content: "Be brief." }, { role: "user", content }],
  ...extra
})

const chat = (request: ChatCompletion.ChatCompletionRequestInput) =>
  Effect.flatMap(InferenceClient.InferenceClient, (client) => client.chatCompletion(request))

const stream = (request: ChatCompletion.ChatCompletionRequestInput) =>
  Stream.unwrap(Effect.map(InferenceClient.InferenceClient, (client) => client.streamChatCompletion(request)))

/** Runs `self` against a fresh scripted client. */
const run = <A, E>(
  self: Effect.Effect<A, E, InferenceClient.InferenceClient | TestInferenceClient.TestInferenceClient>,
  options?: TestInferenceClient.Options
): Effect.Effect<A, E> => Effect.provide(self, TestInferenceClient.layer(options))

/** Everything but `id`, which carries the call number. */
const withoutId = (completion: ChatCompletion.ChatCompletion) => ({ ...completion, id: undefined })

const contentPieces = (chunks: ReadonlyArray<Chunks.ChatCompletionChunk>) =>
  chunks.flatMap((chunk) =>
    chunk.choices.flatMap((choice) =>
      choice.delta.content === undefined || choice.delta.content === "" ? [] : [choice.delta.content]
    )
  )

/**
 * Two choices: text with reasoning, and two tool calls with a line of text. A tool-only choice (`content:
 * null`) is left out: `fromCompletion` opens every choice with `content: ""`, which the fold reads as an
 * empty text, so it comes back as `""`. That is reported, not settled here.
 */
const toolCompletion = new ChatCompletion.ChatCompletion({
  id: "chatcmpl-tools",
  object: "chat.completion",
  created: 1_700_000_000,
  model: MODEL,
  choices: [
    new ChatCompletion.Choice({
      index: 0,
      message: new ChatCompletion.ResponseMessage({
        role: "assistant",
        content: "It is sunny in Paris and raining in Oslo.",
        reasoning_content: "Both cities were asked about."
      }),
      finish_reason: "stop"
    }),
    new ChatCompletion.Choice({
      index: 1,
      message: new ChatCompletion.ResponseMessage({
        role: "assistant",
        content: "Checking both cities.",
        tool_calls: [
          { id: "call_1", type: "function", function: { name: "get_weather", arguments: "{\"city\":\"Paris\"}" } },
          { id: "call_2", type: "function", function: { name: "get_weather", arguments: "{\"city\":\"Oslo\"}" } }
        ]
      }),
      finish_reason: "tool_calls"
    })
  ],
  usage: new ChatCompletion.Usage({ prompt_tokens: 31, completion_tokens: 42, total_tokens: 73 })
})

describe("TestInferenceClient.streamChatCompletion", () => {
  it.effect("a string reply streams a word at a time, and its fold is chatCompletion's answer to the same reply", () =>
    run(
      Effect.gen(function*() {
        const { chunks, error } = yield* runStream(stream(ask("What is the capital of France?")))
        const answer = yield* chat(ask("What is the capital of France?"))
        assert.isUndefined(error)
        assert.deepStrictEqual(contentPieces(chunks), ["Paris,", " of", " course."])
        const folded = ChatCompletionChunk.toCompletion(chunks)
        assert.deepStrictEqual(withoutId(folded), withoutId(answer))
        assert.strictEqual(folded.choices[0].message.content, "Paris, of course.")
        assert.strictEqual(folded.usage?.total_tokens, 26)
        assert.deepStrictEqual([folded.id, answer.id], ["chatcmpl-test-1", "chatcmpl-test-2"])
      }),
      { replies: ["Paris, of course."] }
    ))

  it.effect("ChatCompletionChunk.collect of the stream gives the same completion", () =>
    run(
      Effect.gen(function*() {
        const collected = yield* ChatCompletionChunk.collect(stream(ask("Hi")))
        const answer = yield* chat(ask("Hi"))
        assert.deepStrictEqual(withoutId(collected), withoutId(answer))
        assert.strictEqual(collected.choices[0].message.content, "Hello there, friend.")
      }),
      { replies: ["Hello there, friend."] }
    ))

  it.effect("a stream uses a reply and is recorded like a call", () =>
    run(
      Effect.gen(function*() {
        const first = yield* ChatCompletionChunk.collect(stream(ask("a")))
        const second = yield* ChatCompletionChunk.collect(stream(ask("b")))
        const test = yield* TestInferenceClient.TestInferenceClient
        assert.deepStrictEqual(
          [first.choices[0].message.content, second.choices[0].message.content],
          ["one", "two"]
        )
        assert.strictEqual(yield* test.calls, 2)
        assert.deepStrictEqual((yield* test.requests).map((r) => r.messages[1].content), ["a", "b"])
      }),
      { replies: ["one", "two"] }
    ))

  it.effect("an error reply fails the stream with that error, before any chunk, caught by its tag", () => {
    const rateLimited = new InferenceError.RateLimitError({ status: 429, model: MODEL })
    return run(
      Effect.gen(function*() {
        const { chunks, error } = yield* runStream(stream(ask("Hi")))
        assert.strictEqual(chunks.length, 0)
        assert.strictEqual(error, rateLimited)
        const caught = yield* stream(ask("Hi")).pipe(
          Stream.runDrain,
          Effect.as("answered"),
          Effect.catchTag("RateLimitError", (e) => Effect.succeed(`rate limited ${e.status}`))
        )
        assert.strictEqual(caught, "rate limited 429")
      }),
      { replies: [rateLimited] }
    )
  })

  it.effect("an invalid request fails the stream with InvalidRequestError and uses no reply", () =>
    run(
      Effect.gen(function*() {
        const { chunks, error } = yield* runStream(stream(ask("Hi", { temperature: 5 })))
        assert.strictEqual(chunks.length, 0)
        assert.strictEqual(error?._tag, "InvalidRequestError")
        const test = yield* TestInferenceClient.TestInferenceClient
        assert.strictEqual(yield* test.calls, 0)
      }),
      { replies: ["unused"] }
    ))

  it.effect("usage arrives in a last chunk of its own by default; include_usage: false sends none", () =>
    run(
      Effect.gen(function*() {
        const withUsage = (yield* runStream(stream(ask("Hi")))).chunks
        const last = withUsage[withUsage.length - 1]!
        assert.deepStrictEqual(last.choices, [])
        assert.deepStrictEqual(
          [last.usage?.prompt_tokens, last.usage?.completion_tokens, last.usage?.total_tokens],
          [15, 3, 18]
        )
        assert.strictEqual(withUsage.filter((chunk) => chunk.usage !== undefined).length, 1)

        const without = (yield* runStream(stream(ask("Hi", { stream_options: { include_usage: false } })))).chunks
        assert.isTrue(without.every((chunk) => chunk.usage === undefined), "a chunk carried usage")
        assert.strictEqual(without.length, withUsage.length - 1, "the same chunks but the usage one")
        const folded = ChatCompletionChunk.toCompletion(without)
        assert.isUndefined(folded.usage)
        assert.strictEqual(folded.choices[0].message.content, "Three words here")
      }),
      { replies: ["Three words here"] }
    ))

  it.effect("a completion reply with tool calls streams back to itself", () =>
    run(
      Effect.gen(function*() {
        const collected = yield* ChatCompletionChunk.collect(stream(ask("Weather in Paris and Oslo?")))
        assert.deepStrictEqual(collected, toolCompletion)
      }),
      { replies: [toolCompletion] }
    ))
})

describe("ChatCompletionChunk.fromCompletion → toCompletion", () => {
  it("gives back content, reasoning, tool calls, finish reasons and usage", () => {
    const chunks = ChatCompletionChunk.fromCompletion(toolCompletion)
    const back = ChatCompletionChunk.toCompletion(chunks)
    assert.deepStrictEqual(back, toolCompletion)
    assert.strictEqual(back.choices[1].message.content, "Checking both cities.")
    assert.deepStrictEqual(
      back.choices[1].message.tool_calls?.filter(ChatCompletion.isFunctionToolCall).map((call) =>
        call.function.arguments
      ),
      [
        "{\"city\":\"Paris\"}",
        "{\"city\":\"Oslo\"}"
      ]
    )
    assert.deepStrictEqual(back.choices.map((choice) => choice.finish_reason), ["stop", "tool_calls"])
    assert.isTrue(chunks.length > 6, "the text came in several chunks")
    assert.isTrue(chunks.every((chunk) => chunk.object === "chat.completion.chunk"))
  })

  it("keeps tool-call pieces apart by index when they arrive split", () => {
    const chunks = ChatCompletionChunk.fromCompletion(toolCompletion)
    // Split each tool call's arguments in two, as a server streams them: the first piece has id and name.
    const split = chunks.flatMap((chunk) => {
      const call = chunk.choices[0]?.delta.tool_calls?.[0]
      if (call === undefined) return [chunk]
      const args = call.function?.arguments ?? ""
      const half = Math.floor(args.length / 2)
      const piece = (delta: Chunks.ToolCallDelta) =>
        new ChatCompletionChunk.ChatCompletionChunk({
          ...chunk,
          choices: [
            new ChatCompletionChunk.ChunkChoice({
              index: chunk.choices[0]!.index,
              delta: new ChatCompletionChunk.Delta({ tool_calls: [delta] }),
              finish_reason: null
            })
          ]
        })
      return [
        piece({ ...call, function: { name: call.function?.name, arguments: args.slice(0, half) } }),
        piece({ index: call.index, function: { arguments: args.slice(half) } })
      ]
    })
    assert.strictEqual(split.length, chunks.length + 2)
    assert.deepStrictEqual(ChatCompletionChunk.toCompletion(split), toolCompletion)
  })

  it("with includeUsage: false, drops the usage and nothing else", () => {
    const back = ChatCompletionChunk.toCompletion(
      ChatCompletionChunk.fromCompletion(toolCompletion, { includeUsage: false })
    )
    const { usage: _, ...withoutUsage } = toolCompletion
    assert.isUndefined(back.usage)
    assert.deepStrictEqual(back, new ChatCompletion.ChatCompletion(withoutUsage))
  })

  it("a string reply's completion round-trips too (TestInferenceClient.completion)", () => {
    const completion = TestInferenceClient.completion("The answer is", { finishReason: "length" })
    assert.deepStrictEqual(ChatCompletionChunk.toCompletion(ChatCompletionChunk.fromCompletion(completion)), completion)
  })
})
