import { assert, describe, expectTypeOf, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import { ChatCompletion, ChatCompletionRequest, isFunctionToolCall } from "../src/ChatCompletion.js"
import type { ChatCompletionRequestInput, Message } from "../src/ChatCompletion.js"
import * as validate from "../src/internal/validate.js"
import { hello, MODEL, withClient } from "./utils/Client.js"
import * as Fake from "./utils/FakeTransport.js"

/** A request the types would refuse, to see what the runtime check says about it. */
const unchecked = (request: unknown): ChatCompletionRequestInput => request as ChatCompletionRequestInput

/** Sends `request` to a fake that would answer with a completion; returns the error and what was sent. */
const rejected = (request: ChatCompletionRequestInput) =>
  Effect.gen(function*() {
    const fake = Fake.make([Fake.completion()])
    const error = yield* Effect.flip(withClient(fake, (client) => client.chatCompletion(request)))
    return { error, sent: fake.requests.length }
  })

/** Sends `request` and returns the body the server received. */
const sent = (request: ChatCompletionRequestInput) =>
  Effect.gen(function*() {
    const fake = Fake.make([Fake.completion()])
    yield* withClient(fake, (client) => client.chatCompletion(request))
    assert.strictEqual(fake.requests.length, 1)
    return fake.requests[0].body
  })

/** Answers `hello` with `body` and returns the decoded completion. */
const received = (body: unknown) =>
  withClient(Fake.make([Fake.json(200, body)]), (client) => client.chatCompletion(hello))

const toolCall = {
  id: "call_1",
  type: "function" as const,
  function: { name: "get_weather", arguments: "{\"city\":\"Paris\"}" }
}

describe("ChatCompletion", () => {
  describe("request types", () => {
    it("a conversation held in an Array<Message> is a valid messages field", () => {
      const history: Array<Message> = [{ role: "user", content: "Hi" }]
      const request = { model: MODEL, messages: history }
      expectTypeOf(request).toMatchTypeOf<ChatCompletionRequestInput>()
      assert.strictEqual(request.messages.length, 1)
    })
  })

  describe("request validation", () => {
    const invalid: ReadonlyArray<{
      readonly name: string
      readonly request: ChatCompletionRequestInput
      readonly path: string
      /** A piece of the issue text that tells the caller what is wrong. */
      readonly issue: string | undefined
    }> = [
      {
        name: "a missing model",
        request: unchecked({ messages: hello.messages }),
        path: "model",
        issue: "is missing"
      },
      { name: "an empty model", request: { ...hello, model: "" }, path: "model", issue: "non empty" },
      {
        name: "a model with surrounding spaces",
        request: { ...hello, model: ` ${MODEL} ` },
        path: "model",
        issue: "whitespace"
      },
      // The schema is a non-empty tuple, so the issue is reported at the missing first element.
      {
        name: "an empty messages array",
        request: { ...hello, messages: [] },
        path: "messages",
        issue: "at least one message"
      },
      {
        name: "an unknown role",
        request: unchecked({ ...hello, messages: [{ role: "robot", content: "beep" }] }),
        path: "messages[0].role",
        issue: "\"robot\""
      },
      {
        name: "an unknown role after a valid message",
        request: unchecked({ ...hello, messages: [...hello.messages, { role: "narrator", content: "then" }] }),
        path: "messages[1].role",
        issue: "\"narrator\""
      },
      { name: "temperature 3", request: { ...hello, temperature: 3 }, path: "temperature", issue: "between 0 and 2" },
      { name: "top_p 1.5", request: { ...hello, top_p: 1.5 }, path: "top_p", issue: "between 0 and 1" },
      { name: "max_tokens 0", request: { ...hello, max_tokens: 0 }, path: "max_tokens", issue: "positive" },
      { name: "a fractional seed", request: { ...hello, seed: 1.5 }, path: "seed", issue: "integer" },
      {
        name: "five stop sequences",
        request: { ...hello, stop: ["a", "b", "c", "d", "e"] },
        path: "stop",
        // every member of the union says what it wanted, the bound that failed among them
        issue: "at most 4"
      },
      {
        name: "an assistant message with neither content nor tool calls",
        request: { ...hello, messages: [{ role: "user", content: "Hi" }, { role: "assistant", content: null }] },
        path: "messages[1]",
        issue: "needs content or tool_calls"
      },
      {
        name: "a misspelt field (max_token)",
        request: unchecked({ ...hello, max_token: 100 }),
        path: "max_token",
        issue: "is unexpected"
      },
      {
        name: "a misspelt field (cache_slat)",
        request: unchecked({ ...hello, cache_slat: "tenant-1" }),
        path: "cache_slat",
        issue: "is unexpected"
      },
      { name: "an empty cache_salt", request: { ...hello, cache_salt: "" }, path: "cache_salt", issue: "non empty" },
      {
        name: "chat_template_kwargs that is not an object",
        request: unchecked({ ...hello, chat_template_kwargs: "enable_thinking" }),
        path: "chat_template_kwargs",
        issue: "Expected { readonly [x: string]: unknown }"
      },
      {
        name: "an assistant message sending back a tool call that is not a function call",
        request: unchecked({
          ...hello,
          messages: [...hello.messages, {
            role: "assistant",
            tool_calls: [{ id: "c", type: "custom", function: { name: "grep", arguments: "{}" } }]
          }]
        }),
        path: "messages[1].tool_calls[0].type",
        issue: "\"function\""
      },
      {
        name: "stream, which the client sets itself",
        request: unchecked({ ...hello, stream: true }),
        path: "stream",
        issue: "is unexpected"
      },
      {
        name: "an unknown field in a message",
        request: unchecked({ ...hello, messages: [{ role: "user", content: "hi", contents: "hi" }] }),
        path: "messages[0].contents",
        issue: "is unexpected"
      },
      {
        name: "a user message without content",
        request: unchecked({ ...hello, messages: [{ role: "user" }] }),
        path: "messages[0].content",
        issue: "is missing"
      },
      {
        name: "an image part without a url",
        request: unchecked({ ...hello, messages: [{ role: "user", content: [{ type: "image_url", image_url: {} }] }] }),
        path: "messages[0].content[0].image_url.url",
        issue: "is missing"
      },
      {
        name: "a tool message without tool_call_id",
        request: unchecked({ ...hello, messages: [{ role: "tool", content: "18 C" }] }),
        path: "messages[0].tool_call_id",
        issue: "is missing"
      },
      {
        name: "a tool name with a space",
        request: { ...hello, tools: [{ type: "function", function: { name: "get weather" } }] },
        path: "tools[0].function.name",
        issue: "a tool name is 1 to 64 letters"
      },
      {
        name: "an unknown tool_choice",
        request: unchecked({ ...hello, tool_choice: "sometimes" }),
        path: "tool_choice",
        issue: "\"sometimes\""
      },
      {
        name: "a json_schema response_format without a name",
        request: unchecked({ ...hello, response_format: { type: "json_schema", json_schema: { schema: {} } } }),
        path: "response_format.json_schema.name",
        issue: "is missing"
      },
      {
        name: "a request that is not an object",
        request: unchecked("Hello"),
        path: "(request)",
        issue: "ChatCompletionRequest"
      }
    ]

    for (const row of invalid) {
      it.effect(`${row.name} fails with InvalidRequestError at ${row.path} and sends nothing`, () =>
        Effect.gen(function*() {
          const { error, sent } = yield* rejected(row.request)
          assert.strictEqual(error._tag, "InvalidRequestError")
          if (error._tag === "InvalidRequestError") {
            assert.strictEqual(error.path, row.path)
            if (row.issue !== undefined) assert.include(error.issue, row.issue)
            assert.include(error.message, `Invalid request at ${row.path}: `)
          }
          assert.strictEqual(error.attempts, 0)
          assert.strictEqual(sent, 0)
        }))
    }

    it.effect("a misspelt field's issue lists the field names that are allowed", () =>
      Effect.gen(function*() {
        const { error } = yield* rejected(unchecked({ ...hello, max_token: 100 }))
        assert.strictEqual(error._tag, "InvalidRequestError")
        if (error._tag === "InvalidRequestError") assert.include(error.issue, "\"max_tokens\"")
        const salt = yield* rejected(unchecked({ ...hello, cache_slat: "tenant-1" }))
        if (salt.error._tag === "InvalidRequestError") assert.include(salt.error.issue, "\"cache_salt\"")
      }))
  })

  describe("messages a person can act on", () => {
    it.effect("messages that are not an array: a short message naming the field, the full detail kept on issue", () =>
      Effect.gen(function*() {
        const { error } = yield* rejected(unchecked({ ...hello, messages: "hi" }))
        assert.strictEqual(error._tag, "InvalidRequestError")
        if (error._tag === "InvalidRequestError") {
          assert.strictEqual(error.path, "messages")
          assert.strictEqual(
            error.message,
            "Invalid request at messages: Expected an array, actual \"hi\". Fix the field; nothing was sent"
          )
          assert.isAbove(error.issue.length, 500, "the issue keeps the whole expected type")
        }
      }))

    it.effect("stream: true in chatCompletion says to call streamChatCompletion", () =>
      Effect.gen(function*() {
        const { error, sent } = yield* rejected(unchecked({ ...hello, stream: true }))
        assert.strictEqual(error._tag, "InvalidRequestError")
        if (error._tag === "InvalidRequestError") {
          assert.strictEqual(error.path, "stream")
          assert.include(error.message, "call streamChatCompletion")
        }
        assert.strictEqual(sent, 0)
      }))

    it.effect("a misspelt field is answered with the field it most likely meant", () =>
      Effect.gen(function*() {
        const { error } = yield* rejected(unchecked({ ...hello, max_token: 100 }))
        assert.include(error.message, "did you mean \"max_tokens\"?")
        assert.isBelow(error.message.length, 320)
      }))

    it.effect("several mistakes are reported together, a line each, each with its path", () =>
      Effect.gen(function*() {
        const { error } = yield* rejected(unchecked({ ...hello, temperature: 5, max_tokens: 0, top_p: 2, seed: "x" }))
        assert.strictEqual(error._tag, "InvalidRequestError")
        if (error._tag === "InvalidRequestError") {
          const paths = [error.path, ...(error.moreIssues ?? []).map((i) => i.path)]
          assert.sameMembers(paths, ["temperature", "max_tokens", "top_p", "seed"])
          const lines = error.message.split("\n")
          assert.strictEqual(lines.length, 5, error.message)
          assert.include(lines[3], "and 1 more")
        }
      }))
  })

  describe("calls never throw", () => {
    // A caller's code that throws (JSON.parse of a non-JSON text throws a SyntaxError, as a getter of theirs might).
    const boom = (): never => JSON.parse("getter exploded") as never
    const hostile: ReadonlyArray<readonly [string, () => unknown]> = [
      ["a throwing getter", () => Object.defineProperty({ ...hello }, "temperature", { get: boom, enumerable: true })],
      ["a Proxy that throws on every read", () => new Proxy({}, { get: boom, ownKeys: boom, has: boom })],
      ["a message with a throwing getter", () => ({
        ...hello,
        messages: [Object.defineProperty({ role: "user" }, "content", { get: boom, enumerable: true })]
      })],
      ["tool parameters whose toJSON throws", () => ({
        ...hello,
        tools: [{ type: "function", function: { name: "f", parameters: { toJSON: boom } } }]
      })],
      ["template arguments holding a BigInt", () => ({ ...hello, chat_template_kwargs: { n: 1n } })],
      ["a JSON schema with a cycle", () => {
        const schema: Record<string, unknown> = { type: "object" }
        schema.self = schema
        return { ...hello, response_format: { type: "json_schema", json_schema: { name: "x", schema } } }
      }]
    ]
    for (const [name, make] of hostile) {
      it.effect(`a request with ${name} is an InvalidRequestError, from calls and streams, and nothing is sent`, () =>
        Effect.gen(function*() {
          const fake = Fake.make(() => Fake.completion())
          const errors = yield* withClient(fake, (client) =>
            Effect.all([
              Effect.flip(Effect.suspend(() => client.chatCompletion(unchecked(make())))),
              Effect.flip(Stream.runCollect(Stream.suspend(() => client.streamChatCompletion(unchecked(make())))))
            ]))
          assert.deepStrictEqual(errors.map((e) => e._tag), ["InvalidRequestError", "InvalidRequestError"])
          assert.strictEqual(fake.requests.length, 0)
        }))
    }

    it.effect("call options that throw when read are an InvalidRequestError too", () =>
      Effect.gen(function*() {
        const fake = Fake.make(() => Fake.completion())
        const options = Object.defineProperty({}, "cache", { get: boom, enumerable: true })
        const proxyExtra = new Proxy({}, { ownKeys: boom, get: boom })
        const errors = yield* withClient(fake, (client) =>
          Effect.all([
            Effect.flip(client.chatCompletion(hello, options)),
            Effect.flip(client.chatCompletion(hello, { extraBody: proxyExtra })),
            Effect.flip(Stream.runCollect(client.streamChatCompletion(hello, { extraBody: proxyExtra })))
          ]))
        assert.deepStrictEqual(errors.map((e) => e._tag), Array(3).fill("InvalidRequestError"))
        assert.strictEqual(fake.requests.length, 0)
      }))
  })

  describe("extraBody", () => {
    const refused = (extra: unknown) => {
      const result = validate.extraBody(extra)
      assert.isTrue(Either.isLeft(result), `${JSON.stringify(extra)} should be refused`)
      return Either.isLeft(result) ? result.left : undefined
    }

    it("an object of extra fields is kept as it is, and no extraBody is no extra fields", () => {
      const extra = { chat_template_kwargs: { enable_thinking: false }, guided_choice: ["a", "b"], temperature: 0 }
      assert.deepStrictEqual(validate.extraBody(extra), Either.right(extra))
      assert.deepStrictEqual(validate.extraBody({}), Either.right({}))
      assert.deepStrictEqual(validate.extraBody(undefined), Either.right(undefined))
    })

    for (
      const [name, extra, kind] of [
        ["null", null, "null"],
        ["an array", [{ top_k: 5 }], "an array"],
        ["a string", "top_k=5", "string"],
        ["a number", 5, "number"],
        ["a function", () => 5, "function"]
      ] as const
    ) {
      it(`${name} is refused at extraBody, naming what it got`, () => {
        const error = refused(extra)
        assert.strictEqual(error?.path, "extraBody")
        assert.include(error?.issue, `must be an object of extra body fields, got ${kind}`)
        assert.include(error?.message, "Invalid request at extraBody: ")
      })
    }

    for (
      const [field, hint] of [["model", "field of the request"], ["messages", "field of the request"], [
        "stream",
        "streamChatCompletion"
      ]] as const
    ) {
      it(`setting ${field} is refused at extraBody.${field}, saying where it belongs`, () => {
        const error = refused({ top_k: 5, [field]: field === "stream" ? true : "x" })
        assert.strictEqual(error?._tag, "InvalidRequestError")
        assert.strictEqual(error?.path, `extraBody.${field}`)
        assert.include(error?.issue, `extraBody cannot set ${field}`)
        assert.include(error?.issue, hint)
      })
    }
  })

  describe("valid requests", () => {
    const messages: ReadonlyArray<[string, Message]> = [
      ["a system message", { role: "system", content: "You are terse." }],
      ["a system message with text parts", { role: "system", content: [{ type: "text", text: "You are terse." }] }],
      ["a developer message", { role: "developer", content: "Answer in French.", name: "ops" }],
      ["a user message with text", { role: "user", content: "What is in this picture?", name: "alice" }],
      [
        "a user message with text and image parts",
        {
          role: "user",
          content: [
            { type: "text", text: "What is in this picture?" },
            { type: "image_url", image_url: { url: "https://example.com/cat.png", detail: "low" } },
            { type: "image_url", image_url: { url: "data:image/png;base64,iVBORw0KGgo=" } }
          ]
        }
      ],
      ["an assistant message with text", { role: "assistant", content: "It is a cat." }],
      ["an assistant message with tool_calls and null content", {
        role: "assistant",
        content: null,
        tool_calls: [toolCall]
      }],
      ["an assistant message with tool_calls and no content", { role: "assistant", tool_calls: [toolCall] }],
      ["an assistant message with a null refusal", { role: "assistant", content: "ok", refusal: null }],
      ["a tool message", { role: "tool", content: "{\"temp\":18}", tool_call_id: "call_1" }]
    ]

    for (const [name, message] of messages) {
      it.effect(`${name} is sent as given`, () =>
        Effect.gen(function*() {
          const request: ChatCompletionRequestInput = { model: MODEL, messages: [...hello.messages, message] }
          const body = yield* sent(request)
          assert.deepStrictEqual(body, { ...request, stream: false })
        }))
    }

    it.effect("a whole tool-use conversation with every role is sent as given", () =>
      Effect.gen(function*() {
        const request: ChatCompletionRequestInput = {
          model: MODEL,
          messages: [hello.messages[0], ...messages.map(([, message]) => message)]
        }
        assert.deepStrictEqual(yield* sent(request), { ...request, stream: false })
      }))

    it.effect("tools, each tool_choice and a json_schema response_format are sent as given", () =>
      Effect.gen(function*() {
        const tools: ChatCompletionRequestInput["tools"] = [{
          type: "function",
          function: {
            name: "get_weather",
            description: "Current weather in a city",
            parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
            strict: true
          }
        }]
        const choices: ReadonlyArray<ChatCompletionRequestInput["tool_choice"]> = [
          "auto",
          "none",
          "required",
          { type: "function", function: { name: "get_weather" } }
        ]
        for (const tool_choice of choices) {
          const request: ChatCompletionRequestInput = {
            ...hello,
            tools,
            tool_choice,
            parallel_tool_calls: false,
            response_format: {
              type: "json_schema",
              json_schema: {
                name: "weather",
                description: "A weather report",
                schema: { type: "object", properties: { temp: { type: "number" } } },
                strict: null
              }
            }
          }
          assert.deepStrictEqual(yield* sent(request), { ...request, stream: false })
        }
      }))

    it.effect("text and json_object response formats and every sampling option at its bounds pass", () =>
      Effect.gen(function*() {
        const requests: ReadonlyArray<ChatCompletionRequestInput> = [
          { ...hello, response_format: { type: "text" } },
          { ...hello, response_format: { type: "json_object" } },
          {
            ...hello,
            temperature: 2,
            top_p: 0,
            top_k: 40,
            min_p: 1,
            max_tokens: 1,
            max_completion_tokens: 4096,
            stop: ["a", "b", "c", "d"],
            seed: -7,
            n: 1,
            presence_penalty: -2,
            frequency_penalty: 2,
            repetition_penalty: 1.1,
            logit_bias: { "50256": -100 },
            logprobs: true,
            top_logprobs: 20,
            reasoning_effort: "high",
            user: "user-1"
          },
          { ...hello, stop: "\n\n", temperature: 0 },
          { ...hello, chat_template_kwargs: { enable_thinking: false, thinking_budget: 512 }, cache_salt: "tenant-1" }
        ]
        for (const request of requests) {
          assert.deepStrictEqual(yield* sent(request), { ...request, stream: false })
        }
      }))

    it.effect("the request schema decodes the same requests directly", () =>
      Effect.gen(function*() {
        const decoded = yield* Schema.decodeUnknown(ChatCompletionRequest, { onExcessProperty: "error" })({
          ...hello,
          temperature: 0.5
        })
        assert.strictEqual(decoded.model, MODEL)
        assert.strictEqual(decoded.temperature, 0.5)
      }))
  })

  describe("response decoding is lenient", () => {
    const decode = Schema.decodeUnknown(ChatCompletion)
    const base = Fake.completionBody("Hi there")

    it.effect("nulls stand for missing optional fields", () =>
      Effect.gen(function*() {
        const completion = yield* received({
          ...base,
          usage: null,
          system_fingerprint: null,
          choices: [{
            index: 0,
            message: { role: null, content: "Hi", tool_calls: null, refusal: null, reasoning_content: null },
            finish_reason: null,
            logprobs: null
          }]
        })
        const choice = completion.choices[0]
        assert.strictEqual(choice.message.role, "assistant")
        assert.strictEqual(choice.message.content, "Hi")
        assert.isUndefined(choice.message.tool_calls)
        assert.isUndefined(choice.message.refusal)
        assert.isUndefined(choice.message.reasoning_content)
        assert.isNull(choice.finish_reason)
        assert.isUndefined(choice.logprobs)
        assert.isUndefined(completion.usage)
        assert.isUndefined(completion.system_fingerprint)
      }))

    it.effect("null usage details stand for missing ones", () =>
      Effect.gen(function*() {
        const completion = yield* decode({
          ...base,
          usage: {
            prompt_tokens: 5,
            completion_tokens: 2,
            total_tokens: 7,
            prompt_tokens_details: null,
            completion_tokens_details: { reasoning_tokens: null }
          }
        })
        assert.strictEqual(completion.usage?.total_tokens, 7)
        assert.isUndefined(completion.usage?.prompt_tokens_details)
        assert.isUndefined(completion.usage?.completion_tokens_details?.reasoning_tokens)
      }))

    it.effect("unknown fields at every level are ignored", () =>
      Effect.gen(function*() {
        const completion = yield* received({
          ...base,
          service_tier: "default",
          prompt_logprobs: null,
          kv_transfer_params: { x: 1 },
          choices: [{
            index: 0,
            message: { role: "assistant", content: "Hi", audio: null, function_call: null, annotations: [] },
            finish_reason: "stop",
            stop_reason: 128009,
            logprobs: null
          }],
          usage: { prompt_tokens: 5, completion_tokens: 2, total_tokens: 7, prompt_tokens_details: { audio_tokens: 0 } }
        })
        assert.strictEqual(completion.choices[0].message.content, "Hi")
        assert.strictEqual(completion.choices[0].finish_reason, "stop")
        assert.strictEqual(completion.usage?.total_tokens, 7)
        assert.notProperty(completion, "service_tier")
        assert.notProperty(completion.choices[0], "stop_reason")
      }))

    it.effect("a null object defaults to chat.completion", () =>
      Effect.gen(function*() {
        const completion = yield* received({ ...base, object: null })
        assert.strictEqual(completion.object, "chat.completion")
      }))

    it.effect("a missing object defaults to chat.completion", () =>
      Effect.gen(function*() {
        const { object: _, ...withoutObject } = base
        const completion = yield* received(withoutObject)
        assert.strictEqual(completion.object, "chat.completion")
        assert.strictEqual(completion.id, base.id)
      }))

    it.effect("content null with tool_calls decodes to the tool calls", () =>
      Effect.gen(function*() {
        const completion = yield* received({
          ...base,
          choices: [{
            index: 0,
            message: { role: "assistant", content: null, tool_calls: [toolCall] },
            finish_reason: "tool_calls"
          }]
        })
        const message = completion.choices[0].message
        assert.isNull(message.content)
        assert.deepStrictEqual(message.tool_calls, [toolCall])
        assert.strictEqual(completion.choices[0].finish_reason, "tool_calls")
        assert.isUndefined(completion.choices[0].logprobs)
      }))

    it.effect("missing optional fields take their defaults", () =>
      Effect.gen(function*() {
        const completion = yield* decode({
          id: "chatcmpl-2",
          created: 1,
          model: MODEL,
          choices: [{ index: 0, message: {} }]
        })
        assert.strictEqual(completion.object, "chat.completion")
        assert.strictEqual(completion.choices[0].message.role, "assistant")
        assert.isNull(completion.choices[0].message.content)
        assert.isNull(completion.choices[0].finish_reason)
        assert.isUndefined(completion.usage)
      }))

    it.effect("reasoning_content and a server's own finish_reason are kept", () =>
      Effect.gen(function*() {
        const completion = yield* decode({
          ...base,
          choices: [{
            index: 0,
            message: { role: "assistant", content: "42", reasoning_content: "6 times 7" },
            finish_reason: "abort"
          }]
        })
        assert.strictEqual(completion.choices[0].message.reasoning_content, "6 times 7")
        assert.strictEqual(completion.choices[0].finish_reason, "abort")
      }))

    it.effect("reasoning is read from reasoning or reasoning_content and held under both names", () =>
      Effect.gen(function*() {
        const answer = (message: Record<string, unknown>) =>
          decode({ ...base, choices: [{ index: 0, message: { role: "assistant", content: "42", ...message } }] })
        const current = yield* answer({ reasoning: "6 times 7", reasoning_content: null })
        assert.strictEqual(current.choices[0].message.reasoning, "6 times 7")
        assert.strictEqual(current.choices[0].message.reasoning_content, "6 times 7")
        const older = yield* answer({ reasoning_content: "6 times 7" })
        assert.strictEqual(older.choices[0].message.reasoning, "6 times 7")
        // Through the client (the direct decoder), the same.
        const received_ = yield* received({
          ...base,
          choices: [{ index: 0, message: { role: "assistant", content: "42", reasoning: "6 times 7" } }]
        })
        assert.deepInclude(received_.choices[0].message, { reasoning: "6 times 7", reasoning_content: "6 times 7" })
        const plain = yield* answer({ reasoning: null })
        assert.isUndefined(plain.choices[0].message.reasoning)
        assert.notProperty(plain.choices[0].message, "reasoning")
      }))

    it.effect("a tool call of an unknown type is kept as it came, and the rest of the answer decodes", () =>
      Effect.gen(function*() {
        const custom = { id: "call_2", type: "custom", custom: { name: "grep", input: "needle" } }
        const body = {
          ...base,
          choices: [{
            index: 0,
            message: { role: "assistant", content: "Searching.", tool_calls: [toolCall, custom] },
            finish_reason: "tool_calls"
          }],
          usage: { prompt_tokens: 5, completion_tokens: 2, total_tokens: 7 }
        }
        for (const completion of [yield* received(body), yield* decode(body)]) {
          const message = completion.choices[0].message
          assert.strictEqual(message.content, "Searching.")
          assert.deepStrictEqual(message.tool_calls, [toolCall, { type: "custom", id: "call_2", raw: custom }])
          assert.deepStrictEqual(message.tool_calls?.filter(isFunctionToolCall), [toolCall])
          assert.strictEqual(completion.usage?.total_tokens, 7)
        }
        // Encoded, it is the call as it came.
        const encoded = yield* Schema.encode(ChatCompletion)(yield* decode(body))
        assert.deepStrictEqual(encoded.choices[0].message.tool_calls?.[1], custom)
      }))

    it.effect("a function call that is malformed still fails the answer", () =>
      Effect.gen(function*() {
        const error = yield* Effect.flip(decode({
          ...base,
          choices: [{ index: 0, message: { tool_calls: [{ type: "function", function: { name: "f" } }] } }]
        }))
        assert.include(error.message, "arguments")
      }))

    it.effect("a body missing a required field is still a ResponseDecodeError", () =>
      Effect.gen(function*() {
        const { choices: _, ...withoutChoices } = base
        const error = yield* Effect.flip(received(withoutChoices))
        assert.strictEqual(error._tag, "ResponseDecodeError")
        if (error._tag === "ResponseDecodeError") assert.include(error.description, "choices")
      }))
  })
})
