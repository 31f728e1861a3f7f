/**
 * Every request body `@effect-inference/client` builds, for a table of request
 * shapes, sent as a plain call and as a stream, is what the caller asked for and
 * validates against OpenAI's published `CreateChatCompletionRequest` schema,
 * extended with exactly W&B Inference's documented extra parameters.
 */
import type { ChatCompletion } from "@effect-inference/client"
import { InferenceClient } from "@effect-inference/client"
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import * as Stream from "effect/Stream"
import * as CaptureTransport from "./utils/CaptureTransport.js"
import { openAi, openAiFields, openAiWithWandbExtras, problems, source, WANDB_EXTRAS } from "./utils/OpenAiSchema.js"
import { JSON_OBJECT_FORMAT, JSON_SCHEMA_FORMAT, PLAIN_MODEL, REASONING_MODELS, WEATHER_TOOL } from "./utils/Wire.js"

const BASE_URL = "http://wire.test/v1"

interface Row {
  readonly name: string
  readonly request: ChatCompletion.ChatCompletionRequestInput
  readonly options?: InferenceClient.CallOptions
}

const user = (content: string) => ({ role: "user" as const, content })
const base = { model: PLAIN_MODEL, messages: [user("What is the weather in Paris?")] }

const rows: ReadonlyArray<Row> = [
  { name: "a plain request", request: base },
  {
    name: "system, developer and user messages, user content as text parts",
    request: {
      model: PLAIN_MODEL,
      messages: [
        { role: "system", content: "Be brief." },
        { role: "developer", content: "Answer in English." },
        { role: "user", content: [{ type: "text", text: "Hello" }, { type: "text", text: "there" }], name: "ada" }
      ]
    }
  },
  { name: "tools with tool_choice auto", request: { ...base, tools: [WEATHER_TOOL], tool_choice: "auto" } },
  {
    name: "a named tool_choice",
    request: { ...base, tools: [WEATHER_TOOL], tool_choice: { type: "function", function: { name: "get_weather" } } }
  },
  { name: "tool_choice required", request: { ...base, tools: [WEATHER_TOOL], tool_choice: "required" } },
  { name: "parallel_tool_calls off", request: { ...base, tools: [WEATHER_TOOL], parallel_tool_calls: false } },
  {
    name: "an assistant message with tool_calls, and the tool messages answering them",
    request: {
      model: PLAIN_MODEL,
      tools: [WEATHER_TOOL],
      messages: [
        user("Weather in Paris and Oslo?"),
        {
          role: "assistant",
          content: null,
          tool_calls: [
            { id: "call_1", type: "function", function: { name: "get_weather", arguments: "{\"city\":\"Paris\"}" } },
            { id: "call_2", type: "function", function: { name: "get_weather", arguments: "{\"city\":\"Oslo\"}" } }
          ]
        },
        { role: "tool", tool_call_id: "call_1", content: "{\"temperature_c\":21}" },
        { role: "tool", tool_call_id: "call_2", content: [{ type: "text", text: "{\"temperature_c\":9}" }] },
        { role: "assistant", content: "Paris 21 °C, Oslo 9 °C." },
        user("Thanks")
      ]
    }
  },
  { name: "response_format json_schema", request: { ...base, response_format: JSON_SCHEMA_FORMAT } },
  { name: "response_format json_object", request: { ...base, response_format: JSON_OBJECT_FORMAT } },
  { name: "response_format text", request: { ...base, response_format: { type: "text" } } },
  { name: "stop as a string", request: { ...base, stop: "END" } },
  { name: "stop as an array of four", request: { ...base, stop: ["\n\n", "END", "###", "Observation:"] } },
  { name: "n > 1 with a seed", request: { ...base, n: 3, seed: 1234 } },
  { name: "logprobs with top_logprobs", request: { ...base, logprobs: true, top_logprobs: 5 } },
  { name: "user", request: { ...base, user: "user-1234" } },
  { name: "frequency and presence penalties", request: { ...base, frequency_penalty: 0.5, presence_penalty: -1.5 } },
  {
    name: "temperature, top_p, max_tokens and max_completion_tokens",
    request: { ...base, temperature: 0.2, top_p: 0.9, max_tokens: 256, max_completion_tokens: 200 }
  },
  { name: "logit_bias", request: { ...base, logit_bias: { "50256": -100, "13": 5 } } },
  { name: "reasoning_effort", request: { ...base, model: REASONING_MODELS[1], reasoning_effort: "low" } },
  {
    name: "W&B's sampling extras top_k, min_p and repetition_penalty",
    request: { ...base, top_k: 40, min_p: 0.05, repetition_penalty: 1.1 }
  },
  {
    name: "W&B's chat_template_kwargs turning thinking off",
    request: { ...base, model: REASONING_MODELS[0], chat_template_kwargs: { enable_thinking: false } }
  },
  { name: "W&B's cache_salt", request: { ...base, cache_salt: "tenant-42" } },
  {
    name: "chat_template_kwargs sent through extraBody, as the Python SDK's extra_body sends it",
    request: { ...base, model: REASONING_MODELS[0] },
    options: { extraBody: { chat_template_kwargs: { enable_thinking: true } } }
  },
  { name: "stream_options asking for usage", request: { ...base, stream_options: { include_usage: true } } },
  { name: "stream_options declining usage", request: { ...base, stream_options: { include_usage: false } } },
  {
    name: "everything at once",
    request: {
      ...base,
      tools: [WEATHER_TOOL],
      tool_choice: "auto",
      parallel_tool_calls: true,
      response_format: JSON_SCHEMA_FORMAT,
      stop: ["END"],
      n: 2,
      seed: 7,
      logprobs: true,
      top_logprobs: 2,
      user: "u-1",
      frequency_penalty: 0.1,
      presence_penalty: 0.1,
      top_k: 20,
      min_p: 0.1,
      repetition_penalty: 1.05,
      chat_template_kwargs: { enable_thinking: false },
      cache_salt: "s"
    }
  }
]

/** What the client must send for `row`: the request and the call's extra fields, with the client's own stream fields. */
const expectedBody = (row: Row, stream: boolean): Record<string, unknown> => {
  const { stream_options, ...request } = row.request
  return stream
    ? {
      ...request,
      ...row.options?.extraBody,
      stream: true,
      // usage is asked for unless the caller declined it
      stream_options: { include_usage: true, ...stream_options }
    }
    // stream_options is refused by OpenAI-compatible servers unless stream is true, so a plain call drops it
    : { ...request, ...row.options?.extraBody, stream: false }
}

/** The body of the one request the client sent for `row`. */
const sentBody = (row: Row, stream: boolean) =>
  Effect.gen(function*() {
    const capture = CaptureTransport.make()
    yield* Effect.flatMap(InferenceClient.InferenceClient, (client) =>
      stream
        ? Stream.runDrain(client.streamChatCompletion(row.request, row.options))
        : client.chatCompletion(row.request, row.options)).pipe(
        Effect.provide(InferenceClient.layer({
          apiKey: Redacted.make("wire-key"),
          baseUrl: BASE_URL,
          retry: false,
          circuitBreaker: false,
          usage: false
        })),
        Effect.provide(capture.layer)
      )
    assert.strictEqual(capture.requests.length, 1, "requests sent")
    const [sent] = capture.requests
    assert.strictEqual(sent.method, "POST")
    assert.strictEqual(sent.url, `${BASE_URL}/chat/completions`)
    return sent.body as Record<string, unknown>
  })

describe("request bodies the client builds", () => {
  for (const row of rows) {
    it.effect(`${row.name}: sent as asked, valid for OpenAI's schema and W&B's extras`, () =>
      Effect.gen(function*() {
        const body = yield* sentBody(row, false)
        assert.deepStrictEqual(body, expectedBody(row, false))
        assert.strictEqual(body.stream, false)
        assert.notProperty(body, "stream_options")
        assert.strictEqual(problems(openAi, body), "", "OpenAI's CreateChatCompletionRequest")
        assert.strictEqual(problems(openAiWithWandbExtras, body), "", "OpenAI's schema with W&B's extras, closed")
      }))

    it.effect(`${row.name}, streamed: stream true and stream_options.include_usage, valid for both schemas`, () =>
      Effect.gen(function*() {
        const body = yield* sentBody(row, true)
        assert.deepStrictEqual(body, expectedBody(row, true))
        assert.strictEqual(body.stream, true)
        assert.deepStrictEqual(body.stream_options, {
          include_usage: row.request.stream_options?.include_usage ?? true
        })
        assert.strictEqual(problems(openAi, body), "", "OpenAI's CreateChatCompletionRequest")
        assert.strictEqual(problems(openAiWithWandbExtras, body), "", "OpenAI's schema with W&B's extras, closed")
      }))
  }
})

describe("the schemas the bodies are checked against", () => {
  it("is OpenAI's published CreateChatCompletionRequest, from a named commit of openai/openai-openapi", () => {
    assert.strictEqual(source.repository, "https://github.com/openai/openai-openapi")
    assert.strictEqual(source.file, "openapi.json")
    assert.include(source.schemas, "#/components/schemas/CreateChatCompletionRequest")
    assert.match(source.commit, /^[0-9a-f]{40}$/)
    assert.match(source.version, /^\d+\.\d+\.\d+$/)
    const fields = openAiFields()
    for (const field of ["model", "messages", "tools", "response_format", "stream", "stream_options", "seed", "n"]) {
      assert.include(fields, field)
    }
  })

  it("leaves the request's fields open, so W&B's extras, which it does not define, pass it as they are", () => {
    const fields = openAiFields()
    assert.deepStrictEqual(Object.keys(WANDB_EXTRAS).filter((extra) => fields.includes(extra)), [])
    const body = { ...base, top_k: 40, min_p: 0.05, repetition_penalty: 1.1, chat_template_kwargs: {}, cache_salt: "s" }
    assert.strictEqual(problems(openAi, body), "")
  })

  it("refuses, closed, a field that neither OpenAI nor W&B defines, which the published schema lets through", () => {
    const misspelt = { ...base, max_token: 5 }
    assert.strictEqual(problems(openAi, misspelt), "")
    assert.include(problems(openAiWithWandbExtras, misspelt), "must NOT have unevaluated properties")
  })

  it("refuses W&B's extras of the wrong type: an empty cache_salt, min_p above 1, a fractional top_k", () => {
    assert.include(problems(openAiWithWandbExtras, { ...base, cache_salt: "" }), "/cache_salt")
    assert.include(problems(openAiWithWandbExtras, { ...base, min_p: 1.5 }), "/min_p")
    assert.include(problems(openAiWithWandbExtras, { ...base, top_k: 2.5 }), "/top_k")
  })

  it("refuses what OpenAI's schema refuses: five stop sequences, a tool message without its call id, no messages", () => {
    assert.include(problems(openAi, { ...base, stop: ["a", "b", "c", "d", "e"] }), "/stop")
    assert.include(problems(openAi, { ...base, messages: [{ role: "tool", content: "x" }] }), "/messages/0")
    assert.include(problems(openAi, { model: PLAIN_MODEL, messages: [] }), "/messages")
  })
})
