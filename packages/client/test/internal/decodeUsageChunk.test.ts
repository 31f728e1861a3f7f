import { assert, describe, it } from "@effect/vitest"
import * as Either from "effect/Either"
import * as Schema from "effect/Schema"
import { ChatCompletionChunk } from "../../src/ChatCompletionChunk.js"
import { decodeChunk, fastChunk } from "../../src/internal/decode.js"

const bySchema = Schema.decodeUnknownEither(ChatCompletionChunk)

/** The last chunk of a stream as OpenAI-compatible servers send it: no choices, and the usage of the call. */
const last = (usage: unknown, extra: Record<string, unknown> = {}) => ({
  id: "chatcmpl-1",
  object: "chat.completion.chunk",
  created: 1,
  model: "m",
  system_fingerprint: null,
  choices: [],
  usage,
  ...extra
})

describe("decodeChunk of a stream's usage chunk", () => {
  it("builds what the Schema decodes, with or without token details", () => {
    const usages = [
      { prompt_tokens: 12, completion_tokens: 10, total_tokens: 22 },
      {
        prompt_tokens: 12,
        completion_tokens: 10,
        total_tokens: 22,
        prompt_tokens_details: { cached_tokens: 4 },
        completion_tokens_details: { reasoning_tokens: 3 }
      },
      {
        prompt_tokens: 12,
        completion_tokens: 10,
        total_tokens: 22,
        prompt_tokens_details: null,
        completion_tokens_details: { reasoning_tokens: null }
      }
    ]
    for (const usage of usages) {
      for (
        const json of [last(usage), last(usage, { choices: undefined }), last(usage, { system_fingerprint: "fp" })]
      ) {
        const direct = fastChunk(json)
        assert.isDefined(direct, JSON.stringify(json))
        assert.deepStrictEqual(Either.right(direct!), bySchema(json))
        assert.deepStrictEqual(decodeChunk(json), bySchema(json))
      }
    }
  })

  it("leaves to the Schema a usage it does not know, and a usage beside choices", () => {
    assert.isUndefined(fastChunk(last({ prompt_tokens: "12", completion_tokens: 10, total_tokens: 22 })))
    assert.isUndefined(fastChunk(last({ prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 }, {
      choices: [{ index: 0, delta: { content: "Hi" }, finish_reason: null }]
    })))
    const refused = decodeChunk(last({ prompt_tokens: "12", completion_tokens: 10, total_tokens: 22 }))
    assert.isTrue(Either.isLeft(refused))
  })
})
