import { assert, describe, it } from "@effect/vitest"
import * as Either from "effect/Either"
import * as fc from "effect/FastCheck"
import * as Schema from "effect/Schema"
import { ChatCompletion } from "../../src/ChatCompletion.js"
import { ChatCompletionChunk } from "../../src/ChatCompletionChunk.js"
import { decodeChunk, decodeCompletion, fastChunk, fastCompletion } from "../../src/internal/decode.js"

const bySchema = Schema.decodeUnknownEither(ChatCompletionChunk)
const completionBySchema = Schema.decodeUnknownEither(ChatCompletion)

/** A value a field may hold: right, absent, null, or of a wrong type. */
const maybe = <A>(right: fc.Arbitrary<A>, weight = 6) =>
  fc.oneof(
    { weight, arbitrary: right },
    { weight: 1, arbitrary: fc.constant(undefined) },
    { weight: 1, arbitrary: fc.constant(null) },
    { weight: 1, arbitrary: fc.oneof(fc.integer(), fc.boolean(), fc.constant({}), fc.constant([])) }
  )

const record = (fields: Record<string, fc.Arbitrary<unknown>>, requiredKeys: Array<string> = []) =>
  fc.record(fields, { requiredKeys }).map((r) =>
    Object.fromEntries(Object.entries(r).filter(([, v]) => v !== undefined))
  )

const delta = record({
  role: maybe(fc.constantFrom("assistant", "")),
  content: maybe(fc.string()),
  refusal: maybe(fc.string()),
  reasoning: maybe(fc.string()),
  reasoning_content: maybe(fc.string()),
  tool_calls: fc.oneof(
    fc.constant(undefined),
    fc.constant(null),
    fc.constant([{ index: 0, function: { arguments: "{" } }])
  ),
  extra: maybe(fc.string())
})

const choice = record({
  index: maybe(fc.nat(3)),
  delta: fc.oneof(delta, fc.constant(null), fc.constant(undefined), fc.constant("x")),
  finish_reason: maybe(fc.constantFrom("stop", "length")),
  logprobs: fc.oneof(fc.constant(undefined), fc.constant(null), fc.constant({ content: [] }))
})

const chunk = record({
  id: maybe(fc.constant("chatcmpl-1")),
  object: maybe(fc.constant("chat.completion.chunk")),
  created: maybe(fc.integer({ min: 0 })),
  model: maybe(fc.constant("m")),
  choices: fc.oneof(fc.array(choice, { maxLength: 3 }), fc.constant(null), fc.constant(undefined), fc.constant("x")),
  usage: fc.oneof(
    fc.constant(undefined),
    fc.constant(null),
    fc.constant({ prompt_tokens: 1, completion_tokens: 2, total_tokens: 3 })
  ),
  system_fingerprint: maybe(fc.string())
})

/** A tool call of an answer: a function call (right or not), or a call of another type. */
const toolCall = fc.oneof(
  {
    weight: 4,
    arbitrary: record({
      id: maybe(fc.constantFrom("call_1", "call_2"), 12),
      type: maybe(fc.constant("function"), 12),
      function: fc.oneof(
        { weight: 12, arbitrary: record({ name: maybe(fc.constant("f"), 12), arguments: maybe(fc.string(), 12) }) },
        { weight: 1, arbitrary: maybe(fc.constant("x")) }
      )
    })
  },
  {
    weight: 2,
    arbitrary: record({
      id: maybe(fc.constant("call_c")),
      type: fc.constantFrom("custom", "mcp_call"),
      custom: maybe(record({ name: fc.constant("grep"), input: fc.string() }))
    })
  },
  { weight: 1, arbitrary: fc.constantFrom("x", null, 1) }
)

const message = record({
  role: maybe(fc.constantFrom("assistant", "")),
  content: maybe(fc.string()),
  refusal: maybe(fc.string()),
  reasoning: maybe(fc.string()),
  reasoning_content: maybe(fc.string()),
  tool_calls: fc.oneof(
    fc.constant(undefined),
    fc.constant(null),
    fc.constant("x"),
    fc.array(toolCall, { maxLength: 3 })
  ),
  // Fields vLLM sends that the schema does not know.
  function_call: fc.constant(null),
  extra: maybe(fc.string())
})

// A completion has more required fields than a chunk: they are right more often, so that generated
// completions reach the fast path often enough to compare.
const completionChoice = record({
  index: maybe(fc.nat(3), 30),
  message: fc.oneof({ weight: 12, arbitrary: message }, { weight: 1, arbitrary: maybe(fc.constant("x")) }),
  finish_reason: maybe(fc.constantFrom("stop", "length")),
  logprobs: fc.oneof(fc.constant(undefined), fc.constant(null), fc.constant({ content: [] }))
}, ["index", "message"])

/** Token details as servers send them: a count, a null count, other counts beside it, or a wrong shape. */
const details = (key: string) =>
  fc.oneof(
    { weight: 6, arbitrary: record({ [key]: maybe(fc.nat()), audio_tokens: maybe(fc.nat()) }) },
    { weight: 1, arbitrary: fc.constantFrom(undefined, null, "x", 1, []) }
  )

const usage = record({
  prompt_tokens: maybe(fc.nat(), 30),
  completion_tokens: maybe(fc.nat(), 30),
  total_tokens: maybe(fc.nat(), 30),
  prompt_tokens_details: details("cached_tokens"),
  completion_tokens_details: details("reasoning_tokens")
}, ["prompt_tokens", "completion_tokens", "total_tokens"])

const completion = record({
  id: maybe(fc.constant("chatcmpl-1"), 30),
  object: maybe(fc.constant("chat.completion")),
  created: maybe(fc.integer({ min: 0 }), 30),
  model: maybe(fc.constant("m"), 30),
  choices: fc.oneof(
    { weight: 12, arbitrary: fc.array(completionChoice, { maxLength: 3 }) },
    { weight: 1, arbitrary: fc.oneof(fc.constant(null), fc.constant(undefined), fc.constant("x")) }
  ),
  usage: fc.oneof({ weight: 8, arbitrary: usage }, { weight: 1, arbitrary: maybe(fc.constant("x")) }),
  system_fingerprint: maybe(fc.string())
}, ["id", "created", "model", "choices"])

/**
 * On 3,000 generated values: whatever the direct builder builds, the Schema
 * decodes to the same value. The generator must reach the builder often, or the
 * comparison says nothing.
 */
const sameAsSchema = <A>(
  values: fc.Arbitrary<unknown>,
  fast: (json: unknown) => A | undefined,
  schema: (json: unknown) => Either.Either<A, unknown>
) => {
  let built = 0
  fc.assert(
    fc.property(values, (json) => {
      const direct = fast(json)
      if (direct === undefined) return true
      built++
      const decoded = schema(json)
      assert.isTrue(Either.isRight(decoded), "the direct builder took a value the Schema refuses")
      if (Either.isRight(decoded)) assert.deepStrictEqual(direct, decoded.right)
      return true
    }),
    { numRuns: 3000, seed: 42 }
  )
  assert.isAbove(built, 100)
}

describe("decodeCompletion", () => {
  it("builds exactly what the Schema decodes, and leaves to the Schema what it does not build", () =>
    sameAsSchema(completion, fastCompletion, completionBySchema))

  it("a plain answer, tool calls of any type and token details take the fast path", () => {
    const plain = {
      id: "c",
      object: "chat.completion",
      created: 1,
      model: "m",
      choices: [{ index: 0, message: { role: "assistant", content: "Hi" }, finish_reason: "stop" }],
      usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 }
    }
    const withTools = {
      ...plain,
      choices: [{
        index: 0,
        message: {
          role: "assistant",
          content: null,
          tool_calls: [
            { id: "t", type: "function", function: { name: "f", arguments: "{}" } },
            { id: "u", type: "custom", custom: { name: "grep", input: "x" } }
          ]
        },
        finish_reason: "tool_calls"
      }]
    }
    const withDetails = { ...plain, usage: { ...plain.usage, prompt_tokens_details: { cached_tokens: 1 } } }
    assert.isDefined(fastCompletion(plain))
    assert.isDefined(fastCompletion(withTools))
    assert.isDefined(fastCompletion(withDetails))
    for (const json of [plain, withTools, withDetails]) {
      assert.deepStrictEqual(decodeCompletion(json), completionBySchema(json))
    }
  })

  it("an answer as W&B and vLLM send it, with token details and nulls, takes the fast path", () => {
    // The shape of a real vLLM / W&B answer of a reasoning model: every field present, most of them null.
    const real = {
      id: "chatcmpl-8f3c",
      object: "chat.completion",
      created: 1_766_000_000,
      model: "openai/gpt-oss-20b",
      choices: [{
        index: 0,
        message: {
          role: "assistant",
          content: "42",
          refusal: null,
          annotations: null,
          audio: null,
          function_call: null,
          tool_calls: [],
          reasoning: "6 times 7",
          reasoning_content: null
        },
        logprobs: null,
        finish_reason: "stop",
        stop_reason: null
      }],
      service_tier: null,
      system_fingerprint: null,
      usage: {
        prompt_tokens: 120,
        total_tokens: 140,
        completion_tokens: 20,
        prompt_tokens_details: { cached_tokens: 96, audio_tokens: null },
        completion_tokens_details: { reasoning_tokens: 12 }
      },
      prompt_logprobs: null,
      kv_transfer_params: null
    }
    const fast = fastCompletion(real)
    assert.isDefined(fast)
    assert.deepStrictEqual(completionBySchema(real), Either.right(fast!))
    assert.strictEqual(fast?.usage?.prompt_tokens_details?.cached_tokens, 96)
    assert.strictEqual(fast?.usage?.completion_tokens_details?.reasoning_tokens, 12)
    assert.strictEqual(fast?.choices[0].message.reasoning, "6 times 7")
    assert.strictEqual(fast?.choices[0].message.reasoning_content, "6 times 7")
    const nullDetails = {
      ...real,
      usage: { ...real.usage, prompt_tokens_details: { cached_tokens: null }, completion_tokens_details: null }
    }
    const fastNull = fastCompletion(nullDetails)
    assert.isDefined(fastNull)
    assert.deepStrictEqual(completionBySchema(nullDetails), Either.right(fastNull!))
  })

  it("a tool call of a type the schema does not know is kept whole by both paths", () => {
    const custom = { id: "call_c", type: "custom", custom: { name: "grep", input: "needle" } }
    const json = {
      id: "c",
      created: 1,
      model: "m",
      choices: [{ index: 0, message: { content: null, tool_calls: [custom] }, finish_reason: "tool_calls" }]
    }
    const expected = [{ type: "custom", id: "call_c", raw: custom }]
    assert.deepStrictEqual(fastCompletion(json)?.choices[0].message.tool_calls, expected)
    const bySchema = completionBySchema(json)
    assert.isTrue(Either.isRight(bySchema))
    if (Either.isRight(bySchema)) assert.deepStrictEqual(bySchema.right.choices[0].message.tool_calls, expected)
  })

  it("a completion that fits neither fails with the Schema's error", () => {
    const result = decodeCompletion({ id: "c", created: 1, model: "m", choices: [{ index: 0 }] })
    assert.isTrue(Either.isLeft(result))
    if (Either.isLeft(result)) assert.include(result.left.message, "message")
  })
})

describe("decodeChunk", () => {
  it("builds exactly what the Schema decodes, and leaves to the Schema what it does not build", () =>
    sameAsSchema(chunk, fastChunk, bySchema))

  it("a plain text or reasoning chunk takes the fast path; tool calls and usage go to the Schema", () => {
    const text = {
      id: "c",
      object: "chat.completion.chunk",
      created: 1,
      model: "m",
      choices: [{ index: 0, delta: { content: "Hi" }, finish_reason: null }]
    }
    assert.isDefined(fastChunk(text))
    const thinking = { ...text, choices: [{ index: 0, delta: { reasoning: "Hmm" }, finish_reason: null }] }
    assert.deepInclude(fastChunk(thinking)?.choices[0].delta, { reasoning: "Hmm", reasoning_content: "Hmm" })
    assert.deepStrictEqual(decodeChunk(thinking), bySchema(thinking))
    assert.isUndefined(fastChunk({ ...text, usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 } }))
    assert.isUndefined(
      fastChunk({ ...text, choices: [{ index: 0, delta: { tool_calls: [{ index: 0 }] }, finish_reason: null }] })
    )
    for (const json of [text, { ...text, usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 } }]) {
      assert.deepStrictEqual(decodeChunk(json), bySchema(json))
    }
  })

  it("a chunk that fits neither fails with the Schema's error", () => {
    const result = decodeChunk({ id: 1, created: 1, model: "m" })
    assert.isTrue(Either.isLeft(result))
    if (Either.isLeft(result)) assert.include(result.left.message, "id")
  })
})
