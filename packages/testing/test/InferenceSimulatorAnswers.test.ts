/**
 * What the simulator answers: OpenAI's full schema (so the official SDKs decode
 * it), W&B's catalogue, thinking, tool calls, structured output and prefix caching.
 */
import * as Generated from "@effect/ai-openai/Generated"
import { assert, describe, it } from "@effect/vitest"
import { Ajv2020 } from "ajv/dist/2020.js"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import OpenAI from "openai"
import type * as InferenceSimulator from "../src/InferenceSimulator.js"
import type { Chunk, Completion } from "./utils/Simulator.js"
import { CATALOGUE, chat, chunks, completion, events, MODEL, request, withSimulator } from "./utils/Simulator.js"

/** The models of the catalogue that reason. */
const REASONS = /DeepSeek-V4|Kimi-K2\.|GLM-5\.2|MiniMax-M3|gpt-oss|Qwen3\.6|Nemotron-3/
const THINKER = "zai-org/GLM-5.2"

const WEATHER_TOOL = {
  type: "function",
  function: {
    name: "get_weather",
    description: "The current weather in a city",
    parameters: {
      type: "object",
      properties: {
        city: { type: "string", minLength: 2 },
        unit: { type: "string", enum: ["celsius", "fahrenheit"] },
        days: { type: "integer", minimum: 1, maximum: 7 }
      },
      required: ["city", "unit"],
      additionalProperties: false
    }
  }
}
const TIME_TOOL = {
  type: "function",
  function: { name: "get_time", parameters: { type: "object", properties: { zone: { type: "string" } } } }
}

const ajv = new Ajv2020({ strict: false })
const schemaErrors = (schema: object, value: unknown): string => {
  const validate = ajv.compile(schema)
  return validate(value) ? "" : ajv.errorsText(validate.errors)
}

const decodeCompletion = Schema.decodeUnknownSync(Generated.CreateChatCompletionResponse)

/** The SDK pointed at the simulator, retrying nothing. */
const sdk = (simulator: InferenceSimulator.Service) =>
  new OpenAI({ apiKey: Redacted.value(simulator.apiKey), baseURL: simulator.url, maxRetries: 0 })

/** The chunks of a stream, each with the milliseconds since the request was sent. */
const timedStream = (simulator: InferenceSimulator.Service, body: Record<string, unknown>) =>
  Effect.promise(async () => {
    const start = Date.now()
    const response = await fetch(`${simulator.url}/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${Redacted.value(simulator.apiKey)}`, "content-type": "application/json" },
      body: JSON.stringify({ model: MODEL, messages: [{ role: "user", content: "Hello" }], stream: true, ...body })
    })
    const out: Array<{ readonly at: number; readonly chunk: Chunk }> = []
    const decoder = new TextDecoder()
    let buffer = ""
    const reader = response.body!.getReader()
    for (let read = await reader.read(); !read.done; read = await reader.read()) {
      buffer += decoder.decode(read.value, { stream: true })
      let end: number
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const data = buffer.slice(0, end).replace(/^data: /, "")
        buffer = buffer.slice(end + 2)
        if (data !== "[DONE]") out.push({ at: Date.now() - start, chunk: JSON.parse(data) as Chunk })
      }
    }
    return out
  })

describe("InferenceSimulator answers", () => {
  describe("OpenAI's schema", () => {
    it.live("plain answers carry refusal, logprobs and system_fingerprint, and decode with @effect/ai-openai", () =>
      withSimulator((simulator) =>
        Effect.gen(function*() {
          for (const body of [{}, { model: THINKER }, { tools: [WEATHER_TOOL] }, { n: 2 }]) {
            const raw = JSON.parse((yield* chat(simulator, body)).text) as Record<string, unknown>
            assert.property(raw, "system_fingerprint")
            const answer = raw as unknown as Completion
            for (const choice of answer.choices) {
              assert.strictEqual(choice.message.refusal, null)
              assert.strictEqual(choice.logprobs, null)
            }
            const decoded = decodeCompletion(raw)
            assert.strictEqual(decoded.choices.length, answer.choices.length)
          }
        })
      ))

    it.live("every stream chunk has OpenAI's required fields and logprobs: null on each choice", () =>
      withSimulator((simulator) =>
        Effect.gen(function*() {
          for (const body of [{}, { model: THINKER }, { tools: [WEATHER_TOOL] }]) {
            const reply = yield* chat(simulator, { ...body, stream: true, stream_options: { include_usage: true } })
            const all = chunks(events(reply.text))
            assert.isAbove(all.length, 2)
            for (const c of all as ReadonlyArray<Chunk & Record<string, unknown>>) {
              assert.strictEqual(c.object, "chat.completion.chunk")
              assert.isString(c.id)
              assert.isTrue(Number.isInteger(c.created))
              assert.isString(c.model)
              assert.property(c, "system_fingerprint")
              for (const choice of c.choices as ReadonlyArray<Record<string, unknown>>) {
                assert.strictEqual(choice.logprobs, null)
                assert.property(choice, "finish_reason")
                assert.property(choice, "delta")
              }
            }
          }
        })
      ))

    // The SDK's accumulator keeps only the last piece of a field it does not know (`reasoning`), so the
    // thinking is compared chunk by chunk in "a stream thinks first" below.
    it.live("the openai SDK assembles a streamed answer (text, after thinking, or a tool call) into the plain one", () =>
      withSimulator((simulator) =>
        Effect.gen(function*() {
          const client = sdk(simulator)
          for (const extra of [{}, { model: THINKER }, { tools: [WEATHER_TOOL] }, { model: THINKER, n: 2 }]) {
            const body = { model: MODEL, messages: [{ role: "user" as const, content: "Weather in Paris?" }], ...extra }
            const whole = yield* Effect.promise(() => client.chat.completions.create(body as never))
            const streamed = yield* Effect.promise(() =>
              client.chat.completions.stream(body as never).finalChatCompletion()
            )
            assert.deepStrictEqual(
              streamed.choices.map((c) => [c.message.content, c.message.tool_calls, c.finish_reason]),
              (whole as OpenAI.ChatCompletion).choices.map((
                c
              ) => [c.message.content, c.message.tool_calls, c.finish_reason])
            )
          }
        })
      ))
  })

  describe("catalogue and thinking", () => {
    it.live("GET /v1/models lists W&B's current catalogue, and each model answers", () =>
      withSimulator((simulator) =>
        Effect.gen(function*() {
          const list = JSON.parse((yield* request(simulator, "/models")).text) as { data: Array<{ id: string }> }
          assert.deepStrictEqual(list.data.map((m) => m.id).sort(), [...CATALOGUE].sort())
          for (const model of CATALOGUE) {
            const answer = yield* completion(simulator, { model })
            const reasoning = answer.choices[0]!.message.reasoning
            if (REASONS.test(model)) assert.isAbove((reasoning ?? "").length, 0, `${model} thinks`)
            else assert.strictEqual(reasoning, null, `${model} does not think`)
            assert.strictEqual(
              answer.usage.completion_tokens_details?.reasoning_tokens,
              REASONS.test(model)
                ? answer.usage.completion_tokens - answer.choices[0]!.message.content.split(" ").length
                : 0
            )
          }
        })
      ))

    it.live("a stream thinks first: reasoning deltas, then content deltas; both as in the plain answer", () =>
      withSimulator((simulator) =>
        Effect.gen(function*() {
          const whole = yield* completion(simulator, { model: THINKER })
          const all = chunks(events((yield* chat(simulator, { model: THINKER, stream: true })).text))
          const kinds = all.flatMap((c) =>
            c.choices[0]?.delta.reasoning !== undefined
              ? ["r"]
              : (c.choices[0]?.delta.content ?? "") !== ""
              ? ["c"]
              : []
          ).join("")
          assert.match(kinds, /^r+c+$/)
          assert.strictEqual(
            all.map((c) => c.choices[0]?.delta.reasoning ?? "").join(""),
            whole.choices[0]!.message.reasoning
          )
          assert.strictEqual(
            all.map((c) => c.choices[0]?.delta.content ?? "").join(""),
            whole.choices[0]!.message.content
          )
          assert.strictEqual(whole.usage.completion_tokens_details!.reasoning_tokens, kinds.split("r").length - 1)
        })
      ))

    it.live("thinkingTime holds back the content: the first content delta comes after it, the thinking before", () =>
      withSimulator(
        (simulator) =>
          Effect.gen(function*() {
            const thinking = yield* timedStream(simulator, { model: THINKER })
            const firstReasoning = thinking.find((t) => t.chunk.choices[0]?.delta.reasoning !== undefined)!
            const firstContent = thinking.find((t) => (t.chunk.choices[0]?.delta.content ?? "") !== "")!
            assert.isBelow(firstReasoning.at, 150)
            assert.isAtLeast(firstContent.at, 290)
            const plain = yield* timedStream(simulator, {
              model: THINKER,
              chat_template_kwargs: { enable_thinking: false }
            })
            assert.isBelow(plain.find((t) => (t.chunk.choices[0]?.delta.content ?? "") !== "")!.at, 150)
          }),
        { thinkingTime: "300 millis" }
      ))

    it.live("chat_template_kwargs.enable_thinking switches thinking off and on; \"always\" models keep thinking", () =>
      withSimulator(
        (simulator) =>
          Effect.gen(function*() {
            const reasoning = (model: string, enable?: boolean) =>
              Effect.map(
                completion(simulator, {
                  model,
                  ...(enable === undefined ? {} : { chat_template_kwargs: { enable_thinking: enable } })
                }),
                (
                  c
                ) => [c.choices[0]!.message.reasoning !== null, c.usage.completion_tokens_details!.reasoning_tokens > 0]
              )
            assert.deepStrictEqual(yield* reasoning(THINKER), [true, true])
            assert.deepStrictEqual(yield* reasoning(THINKER, false), [false, false])
            assert.deepStrictEqual(yield* reasoning("acme/hybrid"), [false, false])
            assert.deepStrictEqual(yield* reasoning("acme/hybrid", true), [true, true])
            assert.deepStrictEqual(yield* reasoning("openai/gpt-oss-20b", false), [true, true])
            assert.deepStrictEqual(yield* reasoning(MODEL, true), [false, false])
          }),
        {
          models: [THINKER, "openai/gpt-oss-20b", MODEL, {
            id: "acme/hybrid",
            created: 1,
            owned_by: "acme",
            thinking: "default-off"
          }]
        }
      ))

    it.live("max_tokens bounds thinking and content together; reasoningField plays an older deployment", () =>
      withSimulator(
        (simulator) =>
          Effect.gen(function*() {
            const cut = yield* completion(simulator, { model: THINKER, max_tokens: 5 })
            assert.strictEqual(cut.usage.completion_tokens, 5)
            assert.strictEqual(cut.choices[0]!.finish_reason, "length")
            assert.strictEqual(cut.choices[0]!.message.content, "")
            const message = cut.choices[0]!.message as unknown as Record<string, unknown>
            assert.isString(message.reasoning_content)
            assert.notProperty(message, "reasoning")
          }),
        { reasoningField: "reasoning_content", reasoningTokens: [10, 10] }
      ))
  })

  describe("tool calls", () => {
    it.live("tools → one tool call whose arguments satisfy the tool's schema, content null", () =>
      withSimulator((simulator) =>
        Effect.gen(function*() {
          for (const seed of [1, 2, 3, 4, 5]) {
            const answer = yield* completion(simulator, { tools: [WEATHER_TOOL, TIME_TOOL], seed })
            const choice = answer.choices[0]!
            assert.strictEqual(choice.finish_reason, "tool_calls")
            assert.strictEqual(choice.message.content, null)
            assert.strictEqual(choice.message.tool_calls!.length, 1)
            const call = choice.message.tool_calls![0]!
            assert.match(call.id, /^call_[0-9a-f]{16}$/)
            assert.strictEqual(call.type, "function")
            assert.strictEqual(call.function.name, "get_weather")
            assert.strictEqual(schemaErrors(WEATHER_TOOL.function.parameters, JSON.parse(call.function.arguments)), "")
          }
          const again = yield* completion(simulator, { tools: [WEATHER_TOOL, TIME_TOOL], seed: 1 })
          const first = yield* completion(simulator, { tools: [WEATHER_TOOL, TIME_TOOL], seed: 1 })
          assert.deepStrictEqual(again.choices[0]!.message.tool_calls, first.choices[0]!.message.tool_calls)
        })
      ))

    it.live("tool_choice: \"none\" → text; a named function → that one; a mentioned tool is picked; text after a tool result", () =>
      withSimulator((simulator) =>
        Effect.gen(function*() {
          const tools = [WEATHER_TOOL, TIME_TOOL]
          const none = yield* completion(simulator, { tools, tool_choice: "none" })
          assert.strictEqual(none.choices[0]!.finish_reason, "stop")
          assert.isAbove(none.choices[0]!.message.content.length, 0)
          assert.isUndefined(none.choices[0]!.message.tool_calls)
          const named = yield* completion(simulator, {
            tools,
            tool_choice: { type: "function", function: { name: "get_time" } }
          })
          assert.strictEqual(named.choices[0]!.message.tool_calls![0]!.function.name, "get_time")
          const mentioned = yield* completion(simulator, {
            tools,
            messages: [{ role: "user", content: "Call get_time for Tokyo" }]
          })
          assert.strictEqual(mentioned.choices[0]!.message.tool_calls![0]!.function.name, "get_time")
          const call = named.choices[0]!.message.tool_calls![0]!
          const messages = [
            { role: "user", content: "Time?" },
            { role: "assistant", content: null, tool_calls: [call] },
            { role: "tool", tool_call_id: call.id, content: "12:00" }
          ]
          const afterResult = yield* completion(simulator, { tools, messages })
          assert.strictEqual(afterResult.choices[0]!.finish_reason, "stop", "an agent loop ends")
          const required = yield* completion(simulator, { tools, messages, tool_choice: "required" })
          assert.strictEqual(required.choices[0]!.finish_reason, "tool_calls")
        })
      ))

    it.live("streamed: a header delta (index, id, type, name) then argument pieces that join to the plain arguments", () =>
      withSimulator((simulator) =>
        Effect.gen(function*() {
          const whole = yield* completion(simulator, { tools: [WEATHER_TOOL] })
          const all = chunks(events((yield* chat(simulator, { tools: [WEATHER_TOOL], stream: true })).text))
          const calls = all.flatMap((c) => c.choices[0]?.delta.tool_calls ?? [])
          const [header, ...pieces] = calls
          const expected = whole.choices[0]!.message.tool_calls![0]!
          assert.deepStrictEqual(header, {
            index: 0,
            id: expected.id,
            type: "function",
            function: { name: expected.function.name, arguments: "" }
          })
          assert.isAbove(pieces.length, 1)
          assert.isTrue(pieces.every((p) => p.index === 0 && p.id === undefined && p.function.name === undefined))
          assert.strictEqual(pieces.map((p) => p.function.arguments).join(""), expected.function.arguments)
          assert.strictEqual(all[0]!.choices[0]!.delta.content, null)
          assert.strictEqual(
            all.find((c) => c.choices[0]?.finish_reason != null)?.choices[0]?.finish_reason,
            "tool_calls"
          )
        })
      ))
  })

  describe("structured output", () => {
    const schemas: ReadonlyArray<Record<string, unknown>> = [
      {
        type: "object",
        properties: { city: { type: "string" }, temperature_c: { type: "number" }, sunny: { type: "boolean" } },
        required: ["city", "temperature_c", "sunny"],
        additionalProperties: false
      },
      {
        type: "object",
        properties: {
          name: { type: "string", minLength: 3, maxLength: 12 },
          age: { type: "integer", minimum: 18, maximum: 99 },
          tags: { type: "array", items: { type: "string", enum: ["a", "b", "c"] }, minItems: 2, maxItems: 3 },
          address: {
            type: "object",
            properties: { street: { type: "string" }, zip: { type: "integer", exclusiveMinimum: 999 } },
            required: ["street", "zip"]
          }
        },
        required: ["name", "age", "tags", "address"]
      }
    ]

    it.live("response_format json_schema → content that is JSON satisfying the schema, the same each time", () =>
      withSimulator((simulator) =>
        Effect.gen(function*() {
          for (const schema of schemas) {
            for (const seed of [1, 2, 3]) {
              const body = {
                response_format: { type: "json_schema", json_schema: { name: "x", strict: true, schema } },
                seed
              }
              const answer = yield* completion(simulator, body)
              assert.strictEqual(answer.choices[0]!.finish_reason, "stop")
              const value: unknown = JSON.parse(answer.choices[0]!.message.content)
              assert.strictEqual(schemaErrors(schema, value), "", answer.choices[0]!.message.content)
              assert.strictEqual(
                (yield* completion(simulator, body)).choices[0]!.message.content,
                answer.choices[0]!.message.content
              )
            }
          }
        })
      ))

    it.live("response_format json_object → a JSON object; streamed, the same text", () =>
      withSimulator((simulator) =>
        Effect.gen(function*() {
          const body = { response_format: { type: "json_object" } }
          const text = (yield* completion(simulator, body)).choices[0]!.message.content
          assert.strictEqual(typeof JSON.parse(text), "object")
          const all = chunks(events((yield* chat(simulator, { ...body, stream: true })).text))
          assert.strictEqual(all.map((c) => c.choices[0]?.delta.content ?? "").join(""), text)
        })
      ))
  })

  describe("prefix caching", () => {
    const long = (n: number) => Array.from({ length: n }, (_, i) => `word${i}`).join(" ")
    const conversation = [
      { role: "system", content: long(40) },
      { role: "user", content: "What is the answer?" }
    ]
    const cached = (simulator: InferenceSimulator.Service, body: Record<string, unknown>) =>
      Effect.map(
        completion(simulator, body),
        (c) => [c.usage.prompt_tokens, c.usage.prompt_tokens_details!.cached_tokens]
      )

    it.live("a repeated prompt prefix reports cached_tokens in whole 16-token blocks; cache_salt and model isolate", () =>
      withSimulator((simulator) =>
        Effect.gen(function*() {
          const [prompt, first] = yield* cached(simulator, { messages: conversation })
          assert.strictEqual(first, 0, "a first prompt is not cached")
          assert.strictEqual(prompt, 3 + (3 + 1 + 40) + (3 + 1 + 5))
          // The same prompt again: every whole block before its last token.
          assert.deepStrictEqual(yield* cached(simulator, { messages: conversation }), [prompt, 48])
          // The conversation goes on: its first 54 tokens are the earlier prompt's, 3 whole blocks.
          const longer = [...conversation, { role: "assistant", content: "Forty two." }, {
            role: "user",
            content: "Why?"
          }]
          const [, extended] = yield* cached(simulator, { messages: longer })
          assert.strictEqual(extended, 48)
          assert.deepStrictEqual(yield* cached(simulator, { messages: conversation, cache_salt: "tenant-a" }), [
            prompt,
            0
          ])
          assert.deepStrictEqual(yield* cached(simulator, { messages: conversation, cache_salt: "tenant-a" }), [
            prompt,
            48
          ])
          assert.deepStrictEqual(yield* cached(simulator, { messages: conversation, model: THINKER }), [prompt, 0])
          const stream = yield* chat(simulator, {
            messages: conversation,
            stream: true,
            stream_options: { include_usage: true }
          })
          const usage = chunks(events(stream.text)).at(-1)!.usage as Completion["usage"]
          assert.strictEqual(usage.prompt_tokens_details!.cached_tokens, 48)
        })
      ))
  })
})
