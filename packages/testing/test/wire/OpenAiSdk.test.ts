/**
 * The official `openai` SDK as a client of the simulator, over loopback HTTP: it
 * must decode every kind of answer the simulator gives (plain, streamed, tool
 * calls, JSON, reasoning) and see each fault with its status, as it would W&B
 * Inference's. A failure here is a place where the simulator is not the service
 * that SDK users call.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import OpenAI from "openai"
import * as Fault from "../../src/Fault.js"
import * as InferenceSimulator from "../../src/InferenceSimulator.js"
import {
  CATALOGUE,
  drain,
  faultName,
  JSON_OBJECT_FORMAT,
  JSON_SCHEMA_FORMAT,
  MESSAGES,
  openAiSdk,
  parseJson,
  PLAIN_MODEL,
  postChat,
  promise,
  REASONING_MODELS,
  reasoningOf,
  schemaErrors,
  script,
  sseEvents,
  STATUS_FAULTS,
  WEATHER_SCHEMA,
  WEATHER_TOOL,
  withSimulator
} from "./utils/Wire.js"

type Chunk = OpenAI.Chat.Completions.ChatCompletionChunk

/** The SDK's error class for a status, as `APIError.generate` picks it. */
const errorClassOf = (status: number): { readonly name: string } => {
  switch (status) {
    case 400:
      return OpenAI.BadRequestError
    case 401:
      return OpenAI.AuthenticationError
    case 403:
      return OpenAI.PermissionDeniedError
    case 404:
      return OpenAI.NotFoundError
    case 422:
      return OpenAI.UnprocessableEntityError
    case 429:
      return OpenAI.RateLimitError
    default:
      return status >= 500 ? OpenAI.InternalServerError : OpenAI.APIError
  }
}

/** The answer text of a stream's chunks, choice 0. */
const streamedContent = (chunks: ReadonlyArray<Chunk>): string =>
  chunks.map((chunk) => chunk.choices[0]?.delta.content ?? "").join("")

const chatLog = Effect.map(
  Effect.flatMap(InferenceSimulator.InferenceSimulator, (simulator) => simulator.log),
  (log) => log.filter((entry) => entry.path === "/v1/chat/completions")
)

describe("openai SDK against the simulator", () => {
  describe("plain answers", () => {
    it.live("decodes a plain answer: one assistant choice with text, null refusal and logprobs, usage", () =>
      withSimulator(Effect.gen(function*() {
        const sdk = yield* openAiSdk
        const completion = yield* Effect.promise(() =>
          sdk.chat.completions.create({ model: PLAIN_MODEL, messages: MESSAGES })
        )
        assert.strictEqual(completion.object, "chat.completion")
        assert.match(completion.id, /^chatcmpl-/)
        assert.strictEqual(completion.model, PLAIN_MODEL)
        assert.isTrue(Number.isInteger(completion.created))
        // a string at OpenAI, null at vLLM-based servers; present either way
        assert.property(completion, "system_fingerprint")
        assert.include(["string", "object"], typeof completion.system_fingerprint, "system_fingerprint: string or null")
        assert.strictEqual(completion.choices.length, 1)
        const choice = completion.choices[0]
        assert.strictEqual(choice.index, 0)
        assert.strictEqual(choice.finish_reason, "stop")
        assert.strictEqual(choice.logprobs, null, "choices[0].logprobs")
        assert.strictEqual(choice.message.role, "assistant")
        assert.strictEqual(choice.message.refusal, null, "message.refusal")
        assert.isString(choice.message.content)
        assert.isAbove(choice.message.content!.length, 0)
        assert.isUndefined(choice.message.tool_calls ?? undefined, "no tool calls without tools")
        assert.isUndefined(reasoningOf(choice.message) ?? undefined, "a model that does not reason has no reasoning")
        const usage = completion.usage!
        assert.isAbove(usage.prompt_tokens, 0)
        assert.isAbove(usage.completion_tokens, 0)
        assert.strictEqual(usage.total_tokens, usage.prompt_tokens + usage.completion_tokens)
      })))

    it.live("decodes n = 2 as two choices, indexed 0 and 1", () =>
      withSimulator(Effect.gen(function*() {
        const sdk = yield* openAiSdk
        const completion = yield* Effect.promise(() =>
          sdk.chat.completions.create({ model: PLAIN_MODEL, messages: MESSAGES, n: 2 })
        )
        assert.deepStrictEqual(completion.choices.map((choice) => choice.index), [0, 1])
        for (const choice of completion.choices) assert.isAbove((choice.message.content ?? "").length, 0)
      })))

    it.live("streams the same answer: role first, content deltas, finish_reason stop, then usage with no choices", () =>
      withSimulator(Effect.gen(function*() {
        const sdk = yield* openAiSdk
        const whole = yield* Effect.promise(() =>
          sdk.chat.completions.create({ model: PLAIN_MODEL, messages: MESSAGES })
        )
        const { error, items: chunks } = yield* drain(() =>
          sdk.chat.completions.create({
            model: PLAIN_MODEL,
            messages: MESSAGES,
            stream: true,
            stream_options: { include_usage: true }
          })
        )
        assert.isUndefined(error)
        assert.isAbove(chunks.length, 3)
        for (const chunk of chunks) {
          assert.strictEqual(chunk.object, "chat.completion.chunk")
          assert.strictEqual(chunk.id, chunks[0].id, "one id for the whole stream")
          assert.strictEqual(chunk.model, PLAIN_MODEL)
        }
        assert.strictEqual(chunks[0].choices[0].delta.role, "assistant")
        assert.strictEqual(streamedContent(chunks), whole.choices[0].message.content)
        const last = chunks[chunks.length - 1]
        assert.deepStrictEqual(last.choices, [], "the usage chunk has no choices")
        assert.deepStrictEqual(last.usage, whole.usage)
        const withChoices = chunks.filter((chunk) => chunk.choices.length > 0)
        assert.strictEqual(withChoices[withChoices.length - 1].choices[0].finish_reason, "stop")
        assert.isTrue(
          withChoices.slice(0, -1).every((chunk) => chunk.choices[0].finish_reason === null),
          "finish_reason is null until the last chunk"
        )
      })))

    it.live("folds the stream with the SDK's stream helper into the same completion", () =>
      withSimulator(Effect.gen(function*() {
        const sdk = yield* openAiSdk
        const whole = yield* Effect.promise(() =>
          sdk.chat.completions.create({ model: PLAIN_MODEL, messages: MESSAGES })
        )
        const folded = yield* Effect.promise(() =>
          sdk.chat.completions.stream({ model: PLAIN_MODEL, messages: MESSAGES }).finalChatCompletion()
        )
        assert.strictEqual(folded.choices[0].message.content, whole.choices[0].message.content)
        assert.strictEqual(folded.choices[0].finish_reason, "stop")
      })))

    it.live("lists W&B's catalogue through models.list()", () =>
      withSimulator(Effect.gen(function*() {
        const sdk = yield* openAiSdk
        const page = yield* Effect.promise(() => sdk.models.list())
        const ids = page.data.map((model) => model.id)
        assert.deepStrictEqual(CATALOGUE.filter((id) => !ids.includes(id)), [], "catalogue ids missing from the list")
        for (const model of page.data) {
          assert.strictEqual(model.object, "model")
          assert.isTrue(Number.isInteger(model.created))
          assert.isString(model.owned_by)
        }
      })))
  })

  describe("tool calls", () => {
    it.live("answers a request with tools with a call of that tool whose arguments satisfy its parameters", () =>
      withSimulator(Effect.gen(function*() {
        const sdk = yield* openAiSdk
        const completion = yield* Effect.promise(() =>
          sdk.chat.completions.create({ model: PLAIN_MODEL, messages: MESSAGES, tools: [WEATHER_TOOL] })
        )
        const choice = completion.choices[0]
        assert.strictEqual(choice.finish_reason, "tool_calls")
        assert.strictEqual(choice.message.role, "assistant")
        const calls = choice.message.tool_calls ?? []
        assert.isAbove(calls.length, 0, "tool_calls")
        for (const call of calls) {
          assert.strictEqual(call.type, "function")
          if (call.type !== "function") continue
          assert.isString(call.id)
          assert.isAbove(call.id.length, 0)
          assert.strictEqual(call.function.name, "get_weather")
          const args = parseJson(call.function.arguments)
          assert.isObject(args, `arguments are a JSON object: ${call.function.arguments}`)
          assert.strictEqual(schemaErrors(WEATHER_TOOL.function.parameters, args), "")
        }
      })))

    it.live("streams the tool call in deltas that the SDK's stream helper folds into the same call", () =>
      withSimulator(Effect.gen(function*() {
        const sdk = yield* openAiSdk
        const request = { model: PLAIN_MODEL, messages: MESSAGES, tools: [WEATHER_TOOL] }
        const whole = yield* Effect.promise(() => sdk.chat.completions.create(request))
        const { error, items: chunks } = yield* drain(() => sdk.chat.completions.create({ ...request, stream: true }))
        assert.isUndefined(error)
        const deltas = chunks.flatMap((chunk) => chunk.choices[0]?.delta.tool_calls ?? [])
        assert.isAbove(deltas.length, 0, "tool_calls deltas")
        assert.strictEqual(deltas[0].index, 0)
        assert.isString(deltas[0].id)
        assert.strictEqual(deltas[0].type, "function")
        assert.strictEqual(deltas[0].function?.name, "get_weather")
        const finish = chunks.flatMap((chunk) => chunk.choices.map((choice) => choice.finish_reason))
        assert.strictEqual(finish.filter((reason) => reason !== null).join(), "tool_calls")

        const folded = yield* Effect.promise(() => sdk.chat.completions.stream(request).finalChatCompletion())
        const expected = (whole.choices[0].message.tool_calls ?? []).map((call) =>
          call.type === "function" ? [call.function.name, parseJson(call.function.arguments)] : [call.type]
        )
        const actual = (folded.choices[0].message.tool_calls ?? []).map((call) =>
          call.type === "function" ? [call.function.name, parseJson(call.function.arguments)] : [call.type]
        )
        assert.deepStrictEqual(actual, expected)
        assert.strictEqual(folded.choices[0].finish_reason, "tool_calls")
      })))
  })

  describe("JSON answers", () => {
    it.live("answers response_format json_schema with content that satisfies the schema", () =>
      withSimulator(Effect.gen(function*() {
        const sdk = yield* openAiSdk
        const completion = yield* Effect.promise(() =>
          sdk.chat.completions.create({ model: PLAIN_MODEL, messages: MESSAGES, response_format: JSON_SCHEMA_FORMAT })
        )
        const content = completion.choices[0].message.content
        const json = parseJson(content)
        assert.isDefined(json, `content is JSON: ${content}`)
        assert.strictEqual(schemaErrors(WEATHER_SCHEMA, json), "")
        assert.strictEqual(completion.choices[0].finish_reason, "stop")
      })))

    it.live("streams the json_schema answer as deltas that join into the same JSON", () =>
      withSimulator(Effect.gen(function*() {
        const sdk = yield* openAiSdk
        const request = { model: PLAIN_MODEL, messages: MESSAGES, response_format: JSON_SCHEMA_FORMAT }
        const whole = yield* Effect.promise(() => sdk.chat.completions.create(request))
        const { error, items } = yield* drain(() => sdk.chat.completions.create({ ...request, stream: true }))
        assert.isUndefined(error)
        const json = parseJson(streamedContent(items))
        assert.strictEqual(schemaErrors(WEATHER_SCHEMA, json), "")
        assert.deepStrictEqual(json, parseJson(whole.choices[0].message.content))
      })))

    it.live("answers response_format json_object with a JSON object", () =>
      withSimulator(Effect.gen(function*() {
        const sdk = yield* openAiSdk
        const completion = yield* Effect.promise(() =>
          sdk.chat.completions.create({ model: PLAIN_MODEL, messages: MESSAGES, response_format: JSON_OBJECT_FORMAT })
        )
        const content = completion.choices[0].message.content
        const json = parseJson(content)
        assert.isObject(json, `content is a JSON object: ${content}`)
        assert.isFalse(Array.isArray(json))
      })))
  })

  describe("reasoning", () => {
    for (const model of REASONING_MODELS) {
      it.live(`reads the reasoning of ${model} from the raw message, beside the answer`, () =>
        withSimulator(Effect.gen(function*() {
          const sdk = yield* openAiSdk
          const completion = yield* Effect.promise(() => sdk.chat.completions.create({ model, messages: MESSAGES }))
          const message = completion.choices[0].message
          const reasoning = reasoningOf(message)
          assert.isString(reasoning, "message.reasoning")
          assert.isAbove((reasoning as string).length, 0)
          assert.isAbove((message.content ?? "").length, 0, "the answer beside the reasoning")
          assert.notStrictEqual(reasoning, message.content)
        })))

      it.live(`streams the reasoning of ${model} in reasoning deltas before the content deltas`, () =>
        withSimulator(Effect.gen(function*() {
          const sdk = yield* openAiSdk
          const whole = yield* Effect.promise(() => sdk.chat.completions.create({ model, messages: MESSAGES }))
          const { error, items: chunks } = yield* drain(() =>
            sdk.chat.completions.create({ model, messages: MESSAGES, stream: true })
          )
          assert.isUndefined(error)
          const deltas = chunks.flatMap((chunk) => chunk.choices.map((choice) => choice.delta))
          const thinking = deltas.map((delta) => reasoningOf(delta)).filter((r): r is string => typeof r === "string")
          assert.strictEqual(thinking.join(""), reasoningOf(whole.choices[0].message))
          assert.strictEqual(deltas.map((delta) => delta.content ?? "").join(""), whole.choices[0].message.content)
          const thinks = deltas.map((delta) => typeof reasoningOf(delta) === "string" && reasoningOf(delta) !== "")
          const lastThinking = thinks.lastIndexOf(true)
          const firstContent = deltas.findIndex((delta) => (delta.content ?? "") !== "")
          assert.isAbove(firstContent, lastThinking, "the answer starts after the thinking")
        })))
    }
  })

  describe("faults", () => {
    for (const [fault, status] of STATUS_FAULTS) {
      const errorClass = errorClassOf(status)
      it.live(`sees ${faultName(fault)} as ${errorClass.name} with status ${status}, in one request`, () =>
        withSimulator(Effect.gen(function*() {
          const sdk = yield* openAiSdk
          yield* script(fault)
          const error = yield* Effect.flip(
            promise(() => sdk.chat.completions.create({ model: PLAIN_MODEL, messages: MESSAGES }))
          )
          assert.instanceOf(error, OpenAI.APIError)
          assert.strictEqual(error.constructor, errorClass)
          assert.strictEqual(error.status, status)
          assert.strictEqual((yield* chatLog).length, 1, "requests sent: retries are off")
        })))

      it.live(`sees ${faultName(fault)} of a streaming request as status ${status} before any chunk`, () =>
        withSimulator(Effect.gen(function*() {
          const sdk = yield* openAiSdk
          yield* script(fault)
          const { error, items } = yield* drain(() =>
            sdk.chat.completions.create({ model: PLAIN_MODEL, messages: MESSAGES, stream: true })
          )
          assert.deepStrictEqual(items, [])
          assert.instanceOf(error, OpenAI.APIError)
          assert.strictEqual(error.constructor, errorClass)
          assert.strictEqual(error.status, status)
        })))
    }

    it.live("reads the OpenAI-shaped error body of a 429 into error, code and type", () =>
      withSimulator(Effect.gen(function*() {
        const sdk = yield* openAiSdk
        yield* script(Fault.quotaExceeded429)
        const error = yield* Effect.flip(
          promise(() => sdk.chat.completions.create({ model: PLAIN_MODEL, messages: MESSAGES }))
        )
        assert.instanceOf(error, OpenAI.RateLimitError)
        assert.strictEqual(error.code, "insufficient_quota")
        assert.strictEqual(error.type, "insufficient_quota")
        assert.include(error.message, "You exceeded your current quota")
      })))

    it.live("drops the detail of W&B's FastAPI-shaped 422: no error object, a message that says no body", () =>
      withSimulator(Effect.gen(function*() {
        const sdk = yield* openAiSdk
        yield* script(Fault.unprocessable)
        const error = yield* Effect.flip(
          promise(() => sdk.chat.completions.create({ model: PLAIN_MODEL, messages: MESSAGES }))
        )
        assert.instanceOf(error, OpenAI.UnprocessableEntityError)
        // the SDK reads only `error` of a JSON body; `{"detail": [...]}` is lost (our client reads both)
        assert.isUndefined(error.error)
        assert.strictEqual(error.message, "422 status code (no body)")
      })))

    it.live("reads Retry-After of a 429 from the error's headers", () =>
      withSimulator(Effect.gen(function*() {
        const sdk = yield* openAiSdk
        yield* script(Fault.rateLimited({ seconds: 7 }))
        const error = yield* Effect.flip(
          promise(() => sdk.chat.completions.create({ model: PLAIN_MODEL, messages: MESSAGES }))
        )
        assert.instanceOf(error, OpenAI.RateLimitError)
        assert.strictEqual(error.headers?.get("retry-after"), "7")
      })))
  })

  describe("in-stream errors", () => {
    it.live("ends the stream at an in-stream error frame with an APIError carrying its message and numeric code", () =>
      withSimulator(Effect.gen(function*() {
        const sdk = yield* openAiSdk
        yield* script(Fault.sseErrorFrame({ afterChunks: 2, status: 500, message: "engine crashed" }))
        const { error, items } = yield* drain(() =>
          sdk.chat.completions.create({ model: PLAIN_MODEL, messages: MESSAGES, stream: true })
        )
        const contentChunks = items.filter((chunk) => (chunk.choices[0]?.delta.content ?? "") !== "")
        assert.strictEqual(contentChunks.length, 2, "content chunks before the error")
        assert.instanceOf(error, OpenAI.APIError)
        // the SDK gives an in-stream error no status (it is not retried either)
        assert.isUndefined(error.status)
        assert.include(error.message, "engine crashed")
        assert.strictEqual(error.code as unknown, 500, "vLLM's code is the status, a number")
      })))

    it.live("sends an in-stream error as vLLM does: a data-only event with the error, then data: [DONE]", () =>
      withSimulator(Effect.gen(function*() {
        yield* script(Fault.sseErrorFrame({ afterChunks: 1, status: 400, message: "bad token" }))
        const { text } = yield* postChat({ model: PLAIN_MODEL, messages: MESSAGES, stream: true })
        const events = sseEvents(text)
        const errorAt = events.findIndex((event) => event.includes("\"error\""))
        assert.isAtLeast(errorAt, 0, "an error event")
        const [errorEvent, after, ...rest] = events.slice(errorAt)
        assert.isTrue(errorEvent.startsWith("data: "), `a data-only event, no 'event:' line: ${errorEvent}`)
        const payload = parseJson(errorEvent.slice("data: ".length)) as { error?: Record<string, unknown> }
        assert.strictEqual(payload.error?.message, "bad token")
        assert.strictEqual(payload.error?.code, 400)
        assert.isString(payload.error?.type)
        assert.strictEqual(after, "data: [DONE]")
        assert.deepStrictEqual(rest, [])
      })))
  })
})
