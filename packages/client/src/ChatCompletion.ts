/**
 * The bodies of `POST /chat/completions`: the request a caller builds and the
 * completion the server returns, as `Schema`s.
 *
 * Requests are checked strictly (an unknown or misspelt field is an
 * `InvalidRequestError` before anything is sent); responses are read leniently
 * (unknown fields are ignored and `null` stands for a missing optional field), as
 * OpenAI-compatible servers add fields of their own.
 *
 * @since 0.1.0
 */
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import * as reasoning from "./internal/reasoning.js"

// ---------------------------------------------------------------------------
// Message content
// ---------------------------------------------------------------------------

/**
 * @since 0.1.0
 * @category schemas
 */
export const TextPart = Schema.Struct({
  type: Schema.Literal("text"),
  text: Schema.String
})

/**
 * @since 0.1.0
 * @category schemas
 */
export const ImagePart = Schema.Struct({
  type: Schema.Literal("image_url"),
  image_url: Schema.Struct({
    url: Schema.String,
    detail: Schema.optional(Schema.Literal("auto", "low", "high"))
  })
})

/**
 * @since 0.1.0
 * @category schemas
 */
export const ContentPart = Schema.Union(TextPart, ImagePart)

/**
 * A call of a tool by the model. `arguments` is the JSON text the model wrote;
 * parse it yourself, as models can write invalid JSON.
 *
 * @since 0.1.0
 * @category schemas
 */
export const ToolCall = Schema.Struct({
  id: Schema.String,
  type: Schema.Literal("function"),
  function: Schema.Struct({
    name: Schema.String,
    arguments: Schema.String
  })
})

/**
 * @since 0.1.0
 * @category models
 */
export type ToolCall = typeof ToolCall.Type

const JsonObject = Schema.Record({ key: Schema.String, value: Schema.Unknown })

/**
 * A JSON object of the caller's inside a request (tool parameters, a JSON
 * schema, template arguments), taken as a plain copy when the request is
 * checked: a getter, a `Proxy` or a `toJSON` that throws fails the check
 * there, and what is checked is what is priced, cached and sent. A value JSON
 * cannot hold (a BigInt, a cycle) fails it too.
 */
const CallerJsonObject = Schema.transformOrFail(JsonObject, JsonObject, {
  strict: true,
  decode: (input, _, ast) => {
    try {
      return ParseResult.succeed(JSON.parse(JSON.stringify(input)) as Record<string, unknown>)
    } catch (error) {
      return ParseResult.fail(
        new ParseResult.Type(
          ast,
          input,
          `cannot be sent as JSON: ${error instanceof Error ? error.message : String(error)}`
        )
      )
    }
  },
  encode: ParseResult.succeed
})

/**
 * A tool call of a type other than `"function"` (OpenAI's `"custom"` tools,
 * say), as an answer may hold one. W&B supports function tools only, but a
 * server that sends another kind should not make the whole answer unreadable:
 * such a call is kept as `{ type, id, raw }` instead, where `raw` is the call
 * exactly as the server sent it and `id` its `id` when that is a string (what a
 * tool message answers with). Function calls keep the {@link ToolCall} shape;
 * tell the two apart with {@link isFunctionToolCall}.
 *
 * The schema decodes the wire object (any object whose `type` is a string other
 * than `"function"`) and encodes back to `raw`.
 *
 * @since 0.2.0
 * @category schemas
 */
export const UnknownToolCall = Schema.transform(
  JsonObject.pipe(
    Schema.filter((call) =>
      (typeof call.type === "string" && call.type !== "function") || "a tool call of a type other than \"function\""
    )
  ),
  Schema.Struct({ type: Schema.String, id: Schema.optional(Schema.String), raw: JsonObject }),
  {
    strict: true,
    decode: (raw) => ({
      type: typeof raw.type === "string" ? raw.type : "",
      ...(typeof raw.id === "string" ? { id: raw.id } : {}),
      raw
    }),
    encode: (call) => ({ ...call.raw, type: call.type, ...(call.id === undefined ? {} : { id: call.id }) })
  }
)

/**
 * @since 0.2.0
 * @category models
 */
export type UnknownToolCall = typeof UnknownToolCall.Type

/**
 * A tool call in an answer: a function call, or a call of another type kept as
 * it came (see {@link UnknownToolCall}).
 *
 * @since 0.2.0
 * @category schemas
 */
export const ResponseToolCall = Schema.Union(ToolCall, UnknownToolCall)

/**
 * @since 0.2.0
 * @category models
 */
export type ResponseToolCall = typeof ResponseToolCall.Type

/**
 * Whether a tool call of an answer is a function call (the only kind W&B
 * supports, and the only kind a request's assistant message can send back).
 *
 * @example
 * ```ts
 * import { ChatCompletion } from "@effect-inference/client"
 *
 * // The functions a model asked to call; tool calls of other types are skipped.
 * const functionNames = (message: ChatCompletion.ResponseMessage) =>
 *   (message.tool_calls ?? []).filter(ChatCompletion.isFunctionToolCall).map((call) => call.function.name)
 * ```
 *
 * @since 0.2.0
 * @category predicates
 */
export const isFunctionToolCall = (call: ResponseToolCall): call is ToolCall =>
  call.type === "function" && "function" in call

// ---------------------------------------------------------------------------
// Messages
// ---------------------------------------------------------------------------

const TextContent = Schema.Union(Schema.String, Schema.NonEmptyArray(TextPart))

/**
 * @since 0.1.0
 * @category schemas
 */
export const SystemMessage = Schema.Struct({
  role: Schema.Literal("system"),
  content: TextContent,
  name: Schema.optional(Schema.String)
})

/**
 * @since 0.1.0
 * @category schemas
 */
export const DeveloperMessage = Schema.Struct({
  role: Schema.Literal("developer"),
  content: TextContent,
  name: Schema.optional(Schema.String)
})

/**
 * @since 0.1.0
 * @category schemas
 */
export const UserMessage = Schema.Struct({
  role: Schema.Literal("user"),
  content: Schema.Union(Schema.String, Schema.NonEmptyArray(ContentPart)),
  name: Schema.optional(Schema.String)
})

/**
 * An earlier answer of the model, sent back as context. It has text, tool calls or both.
 * Its tool calls are function calls only, the only kind W&B supports (an answer's
 * {@link UnknownToolCall}s cannot be sent back).
 *
 * @since 0.1.0
 * @category schemas
 */
export const AssistantMessage = Schema.Struct({
  role: Schema.Literal("assistant"),
  content: Schema.optional(Schema.NullOr(TextContent)),
  name: Schema.optional(Schema.String),
  tool_calls: Schema.optional(Schema.Array(ToolCall)),
  refusal: Schema.optional(Schema.NullOr(Schema.String))
}).pipe(
  Schema.filter((m) =>
    (m.content !== undefined && m.content !== null) || (m.tool_calls !== undefined && m.tool_calls.length > 0) ||
    "an assistant message needs content or tool_calls"
  )
)

/**
 * The result of a tool call, answering the call with the same `tool_call_id`.
 *
 * @since 0.1.0
 * @category schemas
 */
export const ToolMessage = Schema.Struct({
  role: Schema.Literal("tool"),
  content: TextContent,
  tool_call_id: Schema.String
})

/**
 * A message of any role.
 *
 * @since 0.1.0
 * @category schemas
 */
export const Message = Schema.Union(SystemMessage, DeveloperMessage, UserMessage, AssistantMessage, ToolMessage)

/**
 * @since 0.1.0
 * @category models
 */
export type Message = typeof Message.Type

// ---------------------------------------------------------------------------
// Tools and response formats
// ---------------------------------------------------------------------------

/**
 * A function the model may call. `parameters` is a JSON Schema object.
 *
 * @since 0.1.0
 * @category schemas
 */
export const Tool = Schema.Struct({
  type: Schema.Literal("function"),
  function: Schema.Struct({
    name: Schema.String.pipe(Schema.pattern(/^[a-zA-Z0-9_-]{1,64}$/, {
      message: () => "a tool name is 1 to 64 letters, digits, '_' or '-'"
    })),
    description: Schema.optional(Schema.String),
    parameters: Schema.optional(CallerJsonObject),
    strict: Schema.optional(Schema.NullOr(Schema.Boolean))
  })
})

/**
 * @since 0.1.0
 * @category schemas
 */
export const ToolChoice = Schema.Union(
  Schema.Literal("none", "auto", "required"),
  Schema.Struct({
    type: Schema.Literal("function"),
    function: Schema.Struct({ name: Schema.String })
  })
)

/**
 * @since 0.1.0
 * @category schemas
 */
export const ResponseFormat = Schema.Union(
  Schema.Struct({ type: Schema.Literal("text") }),
  Schema.Struct({ type: Schema.Literal("json_object") }),
  Schema.Struct({
    type: Schema.Literal("json_schema"),
    json_schema: Schema.Struct({
      name: Schema.String,
      description: Schema.optional(Schema.String),
      schema: Schema.optional(CallerJsonObject),
      strict: Schema.optional(Schema.NullOr(Schema.Boolean))
    })
  })
)

// ---------------------------------------------------------------------------
// Request
// ---------------------------------------------------------------------------

const unit = (min: number, max: number) => Schema.Number.pipe(Schema.between(min, max))

/**
 * The body of a chat completion request, in the wire's snake_case names.
 *
 * The client sends `stream` itself, so it is not a field here. Besides OpenAI's
 * fields it knows the ones W&B and vLLM document: `top_k`, `min_p`,
 * `repetition_penalty`, `chat_template_kwargs` and `cache_salt`. Any other field
 * is refused before sending, so a misspelt one is caught rather than ignored by
 * the server.
 *
 * @since 0.1.0
 * @category schemas
 */
export class ChatCompletionRequest extends Schema.Class<ChatCompletionRequest>(
  "@effect-inference/client/ChatCompletionRequest"
)({
  model: Schema.NonEmptyTrimmedString,
  // A plain array type (not a non-empty tuple) so that a conversation built at run time type-checks.
  messages: Schema.Array(Message).pipe(
    Schema.minItems(1, { message: () => "messages must hold at least one message" })
  ),
  temperature: Schema.optional(unit(0, 2)),
  top_p: Schema.optional(unit(0, 1)),
  top_k: Schema.optional(Schema.Int),
  min_p: Schema.optional(unit(0, 1)),
  max_tokens: Schema.optional(Schema.Int.pipe(Schema.positive())),
  max_completion_tokens: Schema.optional(Schema.Int.pipe(Schema.positive())),
  stop: Schema.optional(Schema.Union(Schema.String, Schema.Array(Schema.String).pipe(Schema.maxItems(4)))),
  seed: Schema.optional(Schema.Int),
  n: Schema.optional(Schema.Int.pipe(Schema.positive())),
  presence_penalty: Schema.optional(unit(-2, 2)),
  frequency_penalty: Schema.optional(unit(-2, 2)),
  repetition_penalty: Schema.optional(Schema.Number.pipe(Schema.positive())),
  logit_bias: Schema.optional(Schema.Record({ key: Schema.String, value: unit(-100, 100) })),
  logprobs: Schema.optional(Schema.Boolean),
  top_logprobs: Schema.optional(Schema.Int.pipe(Schema.between(0, 20))),
  tools: Schema.optional(Schema.Array(Tool)),
  tool_choice: Schema.optional(ToolChoice),
  parallel_tool_calls: Schema.optional(Schema.Boolean),
  response_format: Schema.optional(ResponseFormat),
  reasoning_effort: Schema.optional(Schema.Literal("low", "medium", "high")),
  /**
   * Arguments for the model's chat template (vLLM and W&B): most often
   * `{ enable_thinking: false }` to switch a reasoning model's thinking off, or
   * `true` to switch it on. Which keys a model reads depends on the model.
   *
   * @since 0.2.0
   */
  chat_template_kwargs: Schema.optional(CallerJsonObject),
  /**
   * Isolates the server's automatic prefix cache: only requests with the same
   * salt share cached prompt prefixes (`usage.prompt_tokens_details.cached_tokens`).
   * A non-empty string, for example one per tenant.
   *
   * @since 0.2.0
   */
  cache_salt: Schema.optional(Schema.NonEmptyString),
  /** Streaming only; `streamChatCompletion` asks for usage unless told `include_usage: false`. */
  stream_options: Schema.optional(Schema.Struct({ include_usage: Schema.optional(Schema.Boolean) })),
  user: Schema.optional(Schema.String)
}) {}

/**
 * What a caller passes to `chatCompletion`: a plain object with the request's fields.
 *
 * @since 0.1.0
 * @category models
 */
export type ChatCompletionRequestInput = typeof ChatCompletionRequest.Encoded

// ---------------------------------------------------------------------------
// Response
// ---------------------------------------------------------------------------

const nullable = <S extends Schema.Schema.Any>(schema: S) => Schema.optionalWith(schema, { nullable: true })

/**
 * Token counts of a call, as the server reports them. OpenAI-compatible
 * servers add details on most answers: `prompt_tokens_details.cached_tokens`,
 * the part of the prompt read from the server's prefix cache (billed at the
 * cached-input rate), and `completion_tokens_details.reasoning_tokens`, the
 * part of the completion spent thinking. A `null` detail reads as absent.
 *
 * @since 0.1.0
 * @category schemas
 */
export class Usage extends Schema.Class<Usage>("@effect-inference/client/Usage")({
  prompt_tokens: Schema.Number,
  completion_tokens: Schema.Number,
  total_tokens: Schema.Number,
  prompt_tokens_details: nullable(Schema.Struct({ cached_tokens: nullable(Schema.Number) })),
  completion_tokens_details: nullable(Schema.Struct({ reasoning_tokens: nullable(Schema.Number) }))
}) {}

const responseMessageFields = {
  role: Schema.optionalWith(Schema.String, { nullable: true, default: () => "assistant" }),
  content: Schema.optionalWith(Schema.NullOr(Schema.String), { default: () => null }),
  tool_calls: nullable(Schema.Array(ResponseToolCall)),
  refusal: nullable(Schema.String),
  /**
   * The model's thinking, for reasoning models; absent for the others. Read
   * from the wire's `reasoning` (W&B, vLLM since late 2025) or, failing that,
   * `reasoning_content` (older servers).
   *
   * @since 0.2.0
   */
  reasoning: nullable(Schema.String),
  /**
   * The same text as `reasoning`, under the name servers used before: an alias
   * kept for compatibility, so code written against it keeps working. Prefer
   * `reasoning`.
   */
  reasoning_content: nullable(Schema.String)
}

/**
 * The message of one choice. `content` is `null` when the model answered only with tool calls.
 *
 * Reasoning is held under both `reasoning` and `reasoning_content`, whichever
 * name the server used (and whichever a caller gives to the constructor):
 * `reasoning` wins if both are given.
 *
 * @since 0.1.0
 * @category schemas
 */
export class ResponseMessage extends Schema.Class<ResponseMessage>("@effect-inference/client/ResponseMessage")(
  responseMessageFields
) {
  constructor(
    props: void | Schema.Simplify<Schema.Struct.Constructor<typeof responseMessageFields>>,
    options?: Schema.MakeOptions
  ) {
    super(reasoning.mirror(props ?? {}), options)
  }
}

/**
 * Why generation stopped: `"stop"`, `"length"`, `"tool_calls"`, `"content_filter"`,
 * or a server's own value.
 *
 * @since 0.1.0
 * @category models
 */
export type FinishReason = "stop" | "length" | "tool_calls" | "content_filter" | (string & {})

/**
 * @since 0.1.0
 * @category schemas
 */
export class Choice extends Schema.Class<Choice>("@effect-inference/client/Choice")({
  index: Schema.Number,
  message: ResponseMessage,
  finish_reason: Schema.optionalWith(Schema.NullOr(Schema.String), { default: () => null }),
  logprobs: nullable(Schema.Unknown)
}) {}

/**
 * A chat completion as the server returns it.
 *
 * @since 0.1.0
 * @category schemas
 */
export class ChatCompletion extends Schema.Class<ChatCompletion>("@effect-inference/client/ChatCompletion")({
  id: Schema.String,
  object: Schema.optionalWith(Schema.String, { nullable: true, default: () => "chat.completion" }),
  created: Schema.Number,
  model: Schema.String,
  choices: Schema.Array(Choice),
  usage: nullable(Usage),
  system_fingerprint: nullable(Schema.String)
}) {}
