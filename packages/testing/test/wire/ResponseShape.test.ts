/**
 * The simulator's answers, read raw off the wire, validate against OpenAI's
 * published schemas of `POST /chat/completions`: `CreateChatCompletionResponse`
 * for an answer, `CreateChatCompletionStreamResponse` for each chunk of a stream,
 * `ErrorResponse` for an error body. The one allowance is written out below
 * (vLLM's `system_fingerprint: null`); the schemas leave objects open, so W&B's
 * own fields (`reasoning`) pass them as they are.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fault from "../../src/Fault.js"
import { openAiChunk, openAiError, openAiResponse, problems } from "./utils/OpenAiSchema.js"
import {
  faultName,
  JSON_OBJECT_FORMAT,
  JSON_SCHEMA_FORMAT,
  MESSAGES,
  PLAIN_MODEL,
  postChat,
  REASONING_MODELS,
  script,
  sseEvents,
  sseJson,
  STATUS_FAULTS,
  WEATHER_TOOL,
  withSimulator
} from "./utils/Wire.js"

const answers: ReadonlyArray<readonly [string, Record<string, unknown>]> = [
  ["a plain answer", { model: PLAIN_MODEL, messages: MESSAGES }],
  ["n = 2 answers", { model: PLAIN_MODEL, messages: MESSAGES, n: 2 }],
  ["an answer cut by max_tokens", { model: PLAIN_MODEL, messages: MESSAGES, max_tokens: 3 }],
  ["a tool call", { model: PLAIN_MODEL, messages: MESSAGES, tools: [WEATHER_TOOL] }],
  ["a json_schema answer", { model: PLAIN_MODEL, messages: MESSAGES, response_format: JSON_SCHEMA_FORMAT }],
  ["a json_object answer", { model: PLAIN_MODEL, messages: MESSAGES, response_format: JSON_OBJECT_FORMAT }],
  ...REASONING_MODELS.map((model) => [`an answer of ${model}, with reasoning`, { model, messages: MESSAGES }] as const)
]

/**
 * The one difference from OpenAI's schema that these tests accept: vLLM, which
 * W&B's OpenAI-compatible servers run, sends `system_fingerprint: null`, where
 * OpenAI's schema has a string (or nothing). Both SDKs read either.
 */
const withVllmAllowance = (body: unknown): unknown => {
  if (typeof body !== "object" || body === null) return body
  const { system_fingerprint, ...rest } = body as Record<string, unknown>
  return system_fingerprint === null ? rest : body
}

describe("the simulator's answers against OpenAI's response schemas", () => {
  for (const [name, request] of answers) {
    it.live(`${name}: a CreateChatCompletionResponse`, () =>
      withSimulator(Effect.gen(function*() {
        const answer = yield* postChat(request)
        assert.strictEqual(answer.status, 200)
        assert.include(answer.contentType, "application/json")
        const body = JSON.parse(answer.text)
        assert.strictEqual(problems(openAiResponse, withVllmAllowance(body)), "")
        assert.property(body, "system_fingerprint")
      })))

    it.live(`${name}, streamed: every chunk a CreateChatCompletionStreamResponse, then data: [DONE]`, () =>
      withSimulator(Effect.gen(function*() {
        const answer = yield* postChat({ ...request, stream: true, stream_options: { include_usage: true } })
        assert.strictEqual(answer.status, 200)
        assert.include(answer.contentType, "text/event-stream")
        const events = sseEvents(answer.text)
        assert.strictEqual(events[events.length - 1], "data: [DONE]")
        const chunks = sseJson(answer.text)
        assert.isAbove(chunks.length, 2)
        chunks.forEach((chunk, i) =>
          assert.strictEqual(
            problems(openAiChunk, withVllmAllowance(chunk)),
            "",
            `chunk ${i}: ${JSON.stringify(chunk)}`
          )
        )
      })))
  }

  for (const [fault, status] of STATUS_FAULTS) {
    const shape = status === 422
      ? "FastAPI's detail list"
      : status === 502 || status === 504
      ? "an HTML page"
      : "an ErrorResponse"
    it.live(`${faultName(fault)} answers ${status} with ${shape}`, () =>
      withSimulator(Effect.gen(function*() {
        yield* script(fault)
        const answer = yield* postChat({ model: PLAIN_MODEL, messages: MESSAGES })
        assert.strictEqual(answer.status, status)
        if (status === 502 || status === 504) {
          assert.include(answer.contentType, "text/html")
          return
        }
        assert.include(answer.contentType, "application/json")
        const body = JSON.parse(answer.text)
        if (status === 422) {
          assert.isArray(body.detail)
          for (const item of body.detail) {
            assert.isArray(item.loc)
            assert.isString(item.msg)
            assert.isString(item.type)
          }
          return
        }
        assert.strictEqual(problems(openAiError, body), "")
      })))
  }

  it.live("the schemas refuse what OpenAI's do not allow: a chunk without choices, an error without message", () =>
    withSimulator(Effect.gen(function*() {
      const answer = yield* postChat({ model: PLAIN_MODEL, messages: MESSAGES, stream: true })
      const [first] = sseJson(answer.text) as ReadonlyArray<Record<string, unknown>>
      const { choices: _, ...withoutChoices } = first
      assert.include(problems(openAiChunk, withoutChoices), "must have required property 'choices'")
      yield* script(Fault.internalError)
      const error = JSON.parse((yield* postChat({ model: PLAIN_MODEL, messages: MESSAGES })).text)
      assert.include(problems(openAiError, { error: { ...error.error, message: undefined } }), "message")
    })))
})
