import { assert, describe, it } from "@effect/vitest"
import * as Either from "effect/Either"
import * as fc from "effect/FastCheck"
import * as Schema from "effect/Schema"
import { ChatCompletionChunk } from "../../src/ChatCompletionChunk.js"
import { decodeChunk, fast } from "../../src/internal/decodeChunk.js"

const bySchema = Schema.decodeUnknownEither(ChatCompletionChunk)

/** A value a field may hold: right, absent, null, or of a wrong type. */
const maybe = <A>(right: fc.Arbitrary<A>) =>
  fc.oneof(
    { weight: 6, arbitrary: right },
    { weight: 1, arbitrary: fc.constant(undefined) },
    { weight: 1, arbitrary: fc.constant(null) },
    { weight: 1, arbitrary: fc.oneof(fc.integer(), fc.boolean(), fc.constant({}), fc.constant([])) }
  )

const record = (fields: Record<string, fc.Arbitrary<unknown>>) =>
  fc.record(fields, { requiredKeys: [] }).map((r) =>
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

describe("decodeChunk", () => {
  it("builds exactly what the Schema decodes, and leaves to the Schema what it does not build", () => {
    let built = 0
    fc.assert(
      fc.property(chunk, (json) => {
        const direct = fast(json)
        const schema = bySchema(json)
        if (direct === undefined) return true
        built++
        assert.isTrue(Either.isRight(schema), "the fast path took a chunk the Schema refuses")
        if (Either.isRight(schema)) assert.deepStrictEqual(direct, schema.right)
        return true
      }),
      { numRuns: 3000, seed: 42 }
    )
    // The generator must reach the fast path often, or the comparison says nothing.
    assert.isAbove(built, 100)
  })

  it("a plain text chunk takes the fast path; tool calls and usage go to the Schema", () => {
    const text = {
      id: "c",
      object: "chat.completion.chunk",
      created: 1,
      model: "m",
      choices: [{ index: 0, delta: { content: "Hi" }, finish_reason: null }]
    }
    assert.isDefined(fast(text))
    assert.isUndefined(fast({ ...text, usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 } }))
    assert.isUndefined(
      fast({ ...text, choices: [{ index: 0, delta: { tool_calls: [{ index: 0 }] }, finish_reason: null }] })
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
