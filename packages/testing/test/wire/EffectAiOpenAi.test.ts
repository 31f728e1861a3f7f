/**
 * `@effect/ai-openai` as a client of the simulator, over loopback HTTP.
 *
 * Its `OpenAiLanguageModel` speaks OpenAI's Responses API (`POST /responses`),
 * which W&B Inference does not serve, so these tests use what it offers for chat
 * completions: the generated client's `createChatCompletion` (which decodes the
 * answer with the strict `CreateChatCompletionResponse` schema generated from
 * OpenAI's spec) and `streamRequest` (its SSE reader, which maps a status to
 * `AiError.HttpResponseError`). `streamRequest` skips any event its schema cannot
 * decode without a word, so each stream test also counts the events on the wire.
 */
import * as Generated from "@effect/ai-openai/Generated"
import * as OpenAiClient from "@effect/ai-openai/OpenAiClient"
import type * as AiError from "@effect/ai/AiError"
import * as HttpBody from "@effect/platform/HttpBody"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import { assert, describe, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import * as Fault from "../../src/Fault.js"
import * as InferenceSimulator from "../../src/InferenceSimulator.js"
import {
  CATALOGUE,
  effectOpenAiLayer,
  faultName,
  JSON_OBJECT_FORMAT,
  JSON_SCHEMA_FORMAT,
  MESSAGES,
  parseJson,
  PLAIN_MODEL,
  postChat,
  REASONING_MODELS,
  schemaErrors,
  script,
  sseJson,
  STATUS_FAULTS,
  WEATHER_SCHEMA,
  WEATHER_TOOL,
  withSimulator
} from "./utils/Wire.js"

type Request = typeof Generated.CreateChatCompletionRequest.Encoded

/** The shared conversation, as the generated type wants it (a non-empty tuple). */
const messages: Request["messages"] = [MESSAGES[0]]

const optional = <S extends Schema.Schema.Any>(schema: S) => Schema.optionalWith(schema, { nullable: true })

/**
 * A chunk of a streamed chat completion as OpenAI's spec describes it
 * (`CreateChatCompletionStreamResponse`, which @effect/ai-openai does not
 * generate), plus W&B's `reasoning`.
 */
const ChatCompletionChunk = Schema.Struct({
  id: Schema.String,
  object: Schema.Literal("chat.completion.chunk"),
  created: Schema.Int,
  model: Schema.String,
  system_fingerprint: optional(Schema.String),
  choices: Schema.Array(Schema.Struct({
    index: Schema.Int,
    delta: Schema.Struct({
      role: optional(Schema.Literal("assistant")),
      content: optional(Schema.String),
      refusal: optional(Schema.String),
      reasoning: optional(Schema.String),
      tool_calls: optional(Schema.Array(Schema.Struct({
        index: Schema.Int,
        id: optional(Schema.String),
        type: optional(Schema.Literal("function")),
        function: optional(Schema.Struct({ name: optional(Schema.String), arguments: optional(Schema.String) }))
      })))
    }),
    finish_reason: Schema.NullOr(Schema.Literal("stop", "length", "tool_calls", "content_filter", "function_call")),
    logprobs: optional(Schema.Unknown)
  })),
  usage: optional(Generated.CompletionUsage)
})
type ChatCompletionChunk = typeof ChatCompletionChunk.Type

/** A completion read with the generated schema's message plus `reasoning`, which the generated schema drops. */
const CompletionWithReasoning = Schema.Struct({
  choices: Schema.Array(Schema.Struct({
    message: Schema.Struct({ ...Generated.ChatCompletionResponseMessage.fields, reasoning: optional(Schema.String) })
  }))
})

const createChatCompletion = (request: Request) =>
  Effect.flatMap(OpenAiClient.OpenAiClient, (openAi) => openAi.client.createChatCompletion(request))

/** `streamRequest` of a chat completion, read to its end; the error that ended it, if any, beside the chunks. */
const streamChatCompletion = (request: Request) =>
  Effect.flatMap(OpenAiClient.OpenAiClient, (openAi) =>
    openAi.streamRequest(
      HttpClientRequest.post("/chat/completions", { body: HttpBody.unsafeJson({ ...request, stream: true }) }),
      ChatCompletionChunk
    ).pipe(
      Stream.either,
      Stream.runCollect,
      Effect.map((items) => {
        const chunks: Array<ChatCompletionChunk> = []
        let error: AiError.AiError | undefined = undefined
        for (const item of Chunk.toReadonlyArray(items)) {
          if (item._tag === "Right") chunks.push(item.right)
          else error = item.left
        }
        return { chunks, error }
      })
    ))

/** How many JSON events the raw SSE answer to `request` has (not `[DONE]`), to count what `streamRequest` skipped. */
const rawEvents = (request: Request) =>
  Effect.map(postChat({ ...request, stream: true }), (answer) => sseJson(answer.text).length)

const streamedContent = (chunks: ReadonlyArray<ChatCompletionChunk>): string =>
  chunks.map((chunk) => chunk.choices[0]?.delta.content ?? "").join("")

const run = <A, E>(effect: Effect.Effect<A, E, OpenAiClient.OpenAiClient | InferenceSimulator.InferenceSimulator>) =>
  withSimulator(Effect.provide(effect, effectOpenAiLayer))

const chatLog = Effect.map(
  Effect.flatMap(InferenceSimulator.InferenceSimulator, (simulator) => simulator.log),
  (log) => log.filter((entry) => entry.path === "/v1/chat/completions")
)

describe("@effect/ai-openai against the simulator", () => {
  describe("plain answers", () => {
    it.live("decodes a plain answer with the generated CreateChatCompletionResponse schema", () =>
      run(Effect.gen(function*() {
        const completion = yield* createChatCompletion({ model: PLAIN_MODEL, messages })
        assert.strictEqual(completion.object, "chat.completion")
        assert.strictEqual(completion.model, PLAIN_MODEL)
        assert.include(["string", "undefined"], typeof completion.system_fingerprint, "decoded from a string or null")
        assert.strictEqual(completion.choices.length, 1)
        const choice = completion.choices[0]
        assert.strictEqual(choice.index, 0)
        assert.strictEqual(choice.finish_reason, "stop")
        assert.strictEqual(choice.logprobs, null)
        assert.strictEqual(choice.message.role, "assistant")
        assert.strictEqual(choice.message.refusal, null)
        assert.isAbove((choice.message.content ?? "").length, 0)
        const usage = completion.usage!
        assert.isAbove(usage.completion_tokens, 0)
        assert.strictEqual(usage.total_tokens, usage.prompt_tokens + usage.completion_tokens)
      })))

    it.live("reads the streamed answer with streamRequest: every event decoded, the same text, usage last", () =>
      run(Effect.gen(function*() {
        const request: Request = { model: PLAIN_MODEL, messages, stream_options: { include_usage: true } }
        const whole = yield* createChatCompletion({ model: PLAIN_MODEL, messages })
        const { chunks, error } = yield* streamChatCompletion(request)
        assert.isUndefined(error)
        assert.strictEqual(chunks.length, yield* rawEvents(request), "events decoded, none skipped")
        assert.strictEqual(chunks[0].choices[0].delta.role, "assistant")
        assert.strictEqual(streamedContent(chunks), whole.choices[0].message.content)
        const last = chunks[chunks.length - 1]
        assert.deepStrictEqual(last.choices, [])
        assert.strictEqual(last.usage?.total_tokens, whole.usage?.total_tokens)
      })))

    it.live("lists W&B's catalogue with the generated listModels", () =>
      run(Effect.gen(function*() {
        const list = yield* Effect.flatMap(OpenAiClient.OpenAiClient, (openAi) => openAi.client.listModels())
        const ids = list.data.map((model) => model.id)
        assert.deepStrictEqual(CATALOGUE.filter((id) => !ids.includes(id)), [], "catalogue ids missing from the list")
      })))
  })

  describe("tool calls", () => {
    it.live("decodes a call of the requested tool, with JSON arguments that satisfy its parameters", () =>
      run(Effect.gen(function*() {
        const completion = yield* createChatCompletion({
          model: PLAIN_MODEL,
          messages,
          tools: [WEATHER_TOOL]
        })
        const choice = completion.choices[0]
        assert.strictEqual(choice.finish_reason, "tool_calls")
        const calls = choice.message.tool_calls ?? []
        assert.isAbove(calls.length, 0, "tool_calls")
        for (const call of calls) {
          assert.strictEqual(call.type, "function")
          if (call.type !== "function") continue
          assert.isAbove(call.id.length, 0)
          assert.strictEqual(call.function.name, "get_weather")
          assert.strictEqual(schemaErrors(WEATHER_TOOL.function.parameters, parseJson(call.function.arguments)), "")
        }
      })))

    it.live("reads a streamed tool call: an indexed delta with id, type and name, then argument pieces", () =>
      run(Effect.gen(function*() {
        const request: Request = { model: PLAIN_MODEL, messages, tools: [WEATHER_TOOL] }
        const whole = yield* createChatCompletion(request)
        const { chunks, error } = yield* streamChatCompletion(request)
        assert.isUndefined(error)
        assert.strictEqual(chunks.length, yield* rawEvents(request), "events decoded, none skipped")
        const deltas = chunks.flatMap((chunk) => chunk.choices[0]?.delta.tool_calls ?? [])
        assert.isAbove(deltas.length, 0)
        assert.strictEqual(deltas[0].index, 0)
        assert.isString(deltas[0].id)
        assert.strictEqual(deltas[0].type, "function")
        assert.strictEqual(deltas[0].function?.name, "get_weather")
        const args = deltas.filter((delta) => delta.index === 0).map((delta) => delta.function?.arguments ?? "").join(
          ""
        )
        const call = whole.choices[0].message.tool_calls?.[0]
        assert.deepStrictEqual(
          parseJson(args),
          call?.type === "function" ? parseJson(call.function.arguments) : "a function call"
        )
      })))
  })

  describe("JSON answers", () => {
    it.live("decodes response_format json_schema as content that satisfies the schema", () =>
      run(Effect.gen(function*() {
        const completion = yield* createChatCompletion({
          model: PLAIN_MODEL,
          messages,
          response_format: JSON_SCHEMA_FORMAT
        })
        const content = completion.choices[0].message.content
        assert.strictEqual(schemaErrors(WEATHER_SCHEMA, parseJson(content)), "", `content: ${content}`)
      })))

    it.live("decodes response_format json_object as a JSON object", () =>
      run(Effect.gen(function*() {
        const completion = yield* createChatCompletion({
          model: PLAIN_MODEL,
          messages,
          response_format: JSON_OBJECT_FORMAT
        })
        const json = parseJson(completion.choices[0].message.content)
        assert.isObject(json)
        assert.isFalse(Array.isArray(json))
      })))
  })

  describe("reasoning", () => {
    for (const model of REASONING_MODELS) {
      it.live(`decodes an answer of ${model}, whose reasoning the generated schema drops and an extension reads`, () =>
        run(Effect.gen(function*() {
          const openAi = yield* OpenAiClient.OpenAiClient
          const request: Request = { model, messages }
          const completion = yield* createChatCompletion(request)
          assert.isAbove((completion.choices[0].message.content ?? "").length, 0)
          assert.notProperty(completion.choices[0].message, "reasoning", "the generated schema drops it")
          const withReasoning = yield* openAi.client.httpClient.execute(
            HttpClientRequest.post("/chat/completions", { body: HttpBody.unsafeJson(request) })
          ).pipe(Effect.flatMap(HttpClientResponse.schemaBodyJson(CompletionWithReasoning)))
          const reasoning = withReasoning.choices[0].message.reasoning
          assert.isString(reasoning, "message.reasoning")
          assert.isAbove(reasoning!.length, 0)
        })))

      it.live(`reads the streamed reasoning of ${model} from reasoning deltas`, () =>
        run(Effect.gen(function*() {
          const request: Request = { model, messages }
          const { chunks, error } = yield* streamChatCompletion(request)
          assert.isUndefined(error)
          assert.strictEqual(chunks.length, yield* rawEvents(request), "events decoded, none skipped")
          const reasoning = chunks.map((chunk) => chunk.choices[0]?.delta.reasoning ?? "").join("")
          assert.isAbove(reasoning.length, 0)
          assert.isAbove(streamedContent(chunks).length, 0)
        })))
    }
  })

  describe("faults", () => {
    for (const [fault, status] of STATUS_FAULTS) {
      it.live(`sees ${faultName(fault)} as a ResponseError with status ${status}, in one request`, () =>
        run(Effect.gen(function*() {
          yield* script(fault)
          const error = yield* Effect.flip(createChatCompletion({ model: PLAIN_MODEL, messages }))
          assert.strictEqual(error._tag, "ResponseError")
          if (error._tag !== "ResponseError") return
          assert.strictEqual(error.reason, "StatusCode")
          assert.strictEqual(error.response.status, status)
          assert.strictEqual((yield* chatLog).length, 1, "requests sent: it retries nothing")
        })))

      it.live(`sees ${faultName(fault)} of a stream as AiError.HttpResponseError with status ${status}`, () =>
        run(Effect.gen(function*() {
          yield* script(fault)
          const { chunks, error } = yield* streamChatCompletion({ model: PLAIN_MODEL, messages })
          assert.deepStrictEqual(chunks, [])
          assert.strictEqual(error?._tag, "HttpResponseError")
          if (error?._tag !== "HttpResponseError") return
          assert.strictEqual(error.reason, "StatusCode")
          assert.strictEqual(error.response.status, status)
        })))
    }

    it.live("keeps the OpenAI-shaped body of a 503 in the error's description", () =>
      run(Effect.gen(function*() {
        yield* script(Fault.overloaded)
        const error = yield* Effect.flip(createChatCompletion({ model: PLAIN_MODEL, messages }))
        assert.strictEqual(error._tag, "ResponseError")
        if (error._tag !== "ResponseError") return
        const body = parseJson(error.description) as { error?: { message?: string } } | undefined
        assert.strictEqual(body?.error?.message, "The engine is currently overloaded, please try again later")
      })))

    it.live("ends a stream at an in-stream error frame without failing: streamRequest skips what it cannot decode", () =>
      run(Effect.gen(function*() {
        yield* script(Fault.sseErrorFrame({ afterChunks: 2, status: 500 }))
        const { chunks, error } = yield* streamChatCompletion({ model: PLAIN_MODEL, messages })
        // @effect/ai-openai's known gap: the error frame is dropped and the stream looks complete
        assert.isUndefined(error)
        assert.strictEqual(chunks.filter((chunk) => (chunk.choices[0]?.delta.content ?? "") !== "").length, 2)
        assert.isTrue(chunks.every((chunk) => chunk.choices.every((choice) => choice.finish_reason === null)))
      })))
  })
})
