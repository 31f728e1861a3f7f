import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import { ChatCompletion } from "../src/ChatCompletion.js"
import * as ChatCompletionChunk from "../src/ChatCompletionChunk.js"
import { contentLength } from "../src/internal/chunks.js"
import * as Fake from "./utils/FakeTransport.js"

const decode = Schema.decodeUnknownSync(ChatCompletionChunk.ChatCompletionChunk)
const chunk = (delta: Record<string, unknown>, finish: string | null = null, index = 0) =>
  decode({ ...Fake.chunkBody(delta, finish), choices: [{ index, delta, finish_reason: finish }] })

describe("ChatCompletionChunk", () => {
  it.effect("tool-call pieces are merged by index, even interleaved, and the name is not doubled", () =>
    Effect.sync(() => {
      const completion = ChatCompletionChunk.toCompletion([
        chunk({ role: "assistant", content: null }),
        chunk({
          tool_calls: [{ index: 0, id: "call_a", type: "function", function: { name: "weather", arguments: "" } }]
        }),
        chunk({
          tool_calls: [{ index: 1, id: "call_b", type: "function", function: { name: "time", arguments: "{\"tz\":" } }]
        }),
        chunk({ tool_calls: [{ index: 0, function: { name: "weather", arguments: "{\"city\":" } }] }),
        chunk({ tool_calls: [{ index: 0, function: { arguments: "\"Paris\"}" } }] }),
        chunk({ tool_calls: [{ index: 1, function: { arguments: "\"UTC\"}" } }] }),
        chunk({}, "tool_calls")
      ])
      const message = completion.choices[0].message
      assert.isNull(message.content, "content is null when the model only called tools")
      assert.deepStrictEqual(message.tool_calls, [
        { id: "call_a", type: "function", function: { name: "weather", arguments: "{\"city\":\"Paris\"}" } },
        { id: "call_b", type: "function", function: { name: "time", arguments: "{\"tz\":\"UTC\"}" } }
      ])
      assert.strictEqual(completion.choices[0].finish_reason, "tool_calls")
    }))

  it.effect("text, reasoning and choices are kept apart and in order; usage comes from the last chunk", () =>
    Effect.sync(() => {
      const completion = ChatCompletionChunk.toCompletion([
        chunk({ role: "assistant", content: "" }, null, 1),
        chunk({ role: "assistant", content: "" }, null, 0),
        chunk({ reasoning_content: "think " }, null, 0),
        chunk({ reasoning_content: "hard" }, null, 0),
        chunk({ content: "B" }, null, 1),
        chunk({ content: "A" }, null, 0),
        chunk({}, "stop", 0),
        chunk({}, "length", 1),
        decode({
          ...Fake.chunkBody({}),
          choices: [],
          usage: { prompt_tokens: 1, completion_tokens: 2, total_tokens: 3 }
        })
      ])
      assert.deepStrictEqual(completion.choices.map((c) => [c.index, c.message.content, c.finish_reason]), [
        [0, "A", "stop"],
        [1, "B", "length"]
      ])
      assert.strictEqual(completion.choices[0].message.reasoning_content, "think hard")
      assert.strictEqual(completion.usage?.total_tokens, 3)
      assert.strictEqual(completion.object, "chat.completion")
    }))

  it.effect("an empty answer folds to empty text, not null", () =>
    Effect.sync(() => {
      const completion = ChatCompletionChunk.toCompletion([
        chunk({ role: "assistant", content: "" }),
        chunk({}, "stop")
      ])
      assert.strictEqual(completion.choices[0].message.content, "")
    }))

  it.effect("fromCompletion and toCompletion are inverses, and collect folds a stream the same way", () =>
    Effect.gen(function*() {
      const original = ChatCompletionChunk.toCompletion([
        chunk({ role: "assistant", content: "" }),
        chunk({ content: "Hello" }),
        chunk({ content: " there, friend." }),
        chunk({ tool_calls: [{ index: 0, id: "c1", type: "function", function: { name: "f", arguments: "{}" } }] }),
        chunk({}, "stop"),
        decode({
          ...Fake.chunkBody({}),
          choices: [],
          usage: { prompt_tokens: 1, completion_tokens: 4, total_tokens: 5 }
        })
      ])
      const chunks = ChatCompletionChunk.fromCompletion(original)
      assert.isAbove(chunks.length, 4, "text is split into pieces")
      assert.deepStrictEqual(ChatCompletionChunk.toCompletion(chunks), original)
      assert.deepStrictEqual(yield* ChatCompletionChunk.collect(Stream.fromIterable(chunks)), original)
      const withoutUsage = ChatCompletionChunk.fromCompletion(original, { includeUsage: false })
      assert.isUndefined(ChatCompletionChunk.toCompletion(withoutUsage).usage)
    }))

  it.effect("the chunks fromCompletion builds are the exported classes, and survive encoding and decoding", () =>
    Effect.sync(() => {
      const completion = ChatCompletionChunk.toCompletion([
        chunk({ role: "assistant", content: "Hi" }),
        chunk({}, "stop")
      ])
      const chunks = ChatCompletionChunk.fromCompletion(completion)
      for (const built of chunks) {
        assert.instanceOf(built, ChatCompletionChunk.ChatCompletionChunk)
        for (const choice of built.choices) {
          assert.instanceOf(choice, ChatCompletionChunk.ChunkChoice)
          assert.instanceOf(choice.delta, ChatCompletionChunk.Delta)
        }
      }
      const encoded = Schema.encodeSync(Schema.Array(ChatCompletionChunk.ChatCompletionChunk))(chunks)
      assert.deepStrictEqual(
        Schema.decodeUnknownSync(Schema.Array(ChatCompletionChunk.ChatCompletionChunk))(encoded),
        chunks
      )
    }))

  it.effect("hasContent is false only for chunks with nothing to show", () =>
    Effect.sync(() => {
      assert.isFalse(ChatCompletionChunk.hasContent(chunk({ role: "assistant", content: "" })))
      assert.isFalse(ChatCompletionChunk.hasContent(chunk({})))
      assert.isTrue(ChatCompletionChunk.hasContent(chunk({ content: "x" })))
      assert.isTrue(ChatCompletionChunk.hasContent(chunk({ reasoning_content: "x" })))
      assert.isTrue(ChatCompletionChunk.hasContent(chunk({ tool_calls: [{ index: 0, id: "c" }] })))
      assert.isTrue(ChatCompletionChunk.hasContent(chunk({}, "stop")))
    }))

  it.effect("reasoning pieces under either name fold into message.reasoning and its alias reasoning_content", () =>
    Effect.gen(function*() {
      const chunks = [
        chunk({ role: "assistant", content: "" }),
        chunk({ reasoning: "think ", reasoning_content: null }),
        chunk({ reasoning_content: "hard" }),
        chunk({ content: "42" }),
        chunk({}, "stop")
      ]
      assert.deepInclude(chunks[1].choices[0].delta, { reasoning: "think ", reasoning_content: "think " })
      const completion = yield* ChatCompletionChunk.collect(Stream.fromIterable(chunks))
      assert.deepInclude(completion.choices[0].message, {
        content: "42",
        reasoning: "think hard",
        reasoning_content: "think hard"
      })
      // Back to chunks and folded again, the reasoning is the same.
      assert.deepStrictEqual(
        ChatCompletionChunk.toCompletion(ChatCompletionChunk.fromCompletion(completion)),
        completion
      )
    }))

  it.effect("a reasoning piece is content, counted once in a stream's length", () =>
    Effect.sync(() => {
      const thinking = chunk({ reasoning: "Let me see" })
      assert.isTrue(ChatCompletionChunk.hasContent(thinking))
      assert.isFalse(ChatCompletionChunk.hasContent(chunk({ reasoning: "" })))
      assert.strictEqual(contentLength(thinking), "Let me see".length)
      assert.strictEqual(contentLength(chunk({ reasoning_content: "abc", content: "de" })), 5)
    }))

  it.effect("the pieces of a tool call of an unknown type fold into an UnknownToolCall with its fields merged", () =>
    Effect.gen(function*() {
      const completion = ChatCompletionChunk.toCompletion([
        chunk({ role: "assistant", content: null }),
        chunk({ tool_calls: [{ index: 0, id: "call_f", type: "function", function: { name: "f", arguments: "{" } }] }),
        chunk({ tool_calls: [{ index: 1, id: "call_c", type: "custom", custom: { name: "grep", input: "nee" } }] }),
        chunk({ tool_calls: [{ index: 1, custom: { input: "dle" } }] }),
        chunk({ tool_calls: [{ index: 0, function: { arguments: "}" } }] }),
        chunk({}, "tool_calls")
      ])
      const custom = {
        type: "custom",
        id: "call_c",
        raw: { id: "call_c", type: "custom", custom: { name: "grep", input: "needle" } }
      }
      assert.deepStrictEqual(completion.choices[0].message.tool_calls, [
        { id: "call_f", type: "function", function: { name: "f", arguments: "{}" } },
        custom
      ])
      // A custom call streamed by fromCompletion folds back to itself.
      assert.deepStrictEqual(
        ChatCompletionChunk.toCompletion(ChatCompletionChunk.fromCompletion(completion)),
        completion
      )
      // The same answer without streaming decodes to the same calls.
      const whole = yield* Schema.decodeUnknown(ChatCompletion)({
        ...Fake.completionBody(""),
        choices: [{
          index: 0,
          message: {
            content: null,
            tool_calls: [
              { id: "call_f", type: "function", function: { name: "f", arguments: "{}" } },
              { id: "call_c", type: "custom", custom: { name: "grep", input: "needle" } }
            ]
          },
          finish_reason: "tool_calls"
        }]
      })
      assert.deepStrictEqual(whole.choices[0].message.tool_calls, completion.choices[0].message.tool_calls)
    }))

  it.effect("chunks are read leniently: nulls, missing fields and extra fields", () =>
    Effect.sync(() => {
      const decoded = decode({
        id: "x",
        created: 1,
        model: "m",
        object: null,
        choices: [{ index: 0, delta: { content: null, role: null, extra: 1 }, finish_reason: null, logprobs: null }],
        usage: null,
        service_tier: "default"
      })
      assert.strictEqual(decoded.object, "chat.completion.chunk")
      assert.isUndefined(decoded.choices[0].delta.content)
    }))
})
