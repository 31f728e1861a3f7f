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
import * as Schema from "effect/Schema"

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
    parameters: Schema.optional(Schema.Record({ key: Schema.String, value: Schema.Unknown })),
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
      schema: Schema.optional(Schema.Record({ key: Schema.String, value: Schema.Unknown })),
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
 * The client sends `stream` itself, so it is not a field here.
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
 * Token counts of a call, as the server reports them.
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

/**
 * The message of one choice. `content` is `null` when the model answered only with tool calls.
 *
 * @since 0.1.0
 * @category schemas
 */
export class ResponseMessage extends Schema.Class<ResponseMessage>("@effect-inference/client/ResponseMessage")({
  role: Schema.optionalWith(Schema.String, { nullable: true, default: () => "assistant" }),
  content: Schema.optionalWith(Schema.NullOr(Schema.String), { default: () => null }),
  tool_calls: nullable(Schema.Array(ToolCall)),
  refusal: nullable(Schema.String),
  reasoning_content: nullable(Schema.String)
}) {}

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
