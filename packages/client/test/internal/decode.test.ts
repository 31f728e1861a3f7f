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

const message = record({
  role: maybe(fc.constantFrom("assistant", "")),
  content: maybe(fc.string()),
  refusal: maybe(fc.string()),
  reasoning_content: maybe(fc.string()),
  tool_calls: fc.oneof(
    fc.constant(undefined),
    fc.constant(null),
    fc.constant([{ id: "call_1", type: "function", function: { name: "f", arguments: "{}" } }])
  ),
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

const usage = record({
  prompt_tokens: maybe(fc.nat(), 30),
  completion_tokens: maybe(fc.nat(), 30),
  total_tokens: maybe(fc.nat(), 30),
  prompt_tokens_details: fc.oneof(fc.constant(undefined), fc.constant(null), fc.constant({ cached_tokens: 1 })),
  completion_tokens_details: fc.oneof(fc.constant(undefined), fc.constant(null), fc.constant({ reasoning_tokens: 1 }))
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

  it("a plain answer takes the fast path; tool calls and token details go to the Schema", () => {
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
          tool_calls: [{ id: "t", type: "function", function: { name: "f", arguments: "{}" } }]
        },
        finish_reason: "tool_calls"
      }]
    }
    const withDetails = { ...plain, usage: { ...plain.usage, prompt_tokens_details: { cached_tokens: 1 } } }
    assert.isDefined(fastCompletion(plain))
    assert.isUndefined(fastCompletion(withTools))
    assert.isUndefined(fastCompletion(withDetails))
    for (const json of [plain, withTools, withDetails]) {
      assert.deepStrictEqual(decodeCompletion(json), completionBySchema(json))
    }
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

  it("a plain text chunk takes the fast path; tool calls and usage go to the Schema", () => {
    const text = {
      id: "c",
      object: "chat.completion.chunk",
      created: 1,
      model: "m",
      choices: [{ index: 0, delta: { content: "Hi" }, finish_reason: null }]
    }
    assert.isDefined(fastChunk(text))
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
