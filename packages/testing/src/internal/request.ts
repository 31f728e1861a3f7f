/**
 * Where a chat request is checked, as W&B's gateway (FastAPI: 422 with a `detail`
 * list) and its vLLM engines (400 in OpenAI's shape) check it, and read into what
 * the answer needs. Fields it does not know are accepted: W&B passes vLLM's extra
 * parameters (`chat_template_kwargs`, `cache_salt`, `top_k`, `min_p`,
 * `repetition_penalty`, ...) through.
 */
import type * as generate from "./generate.js"
import * as replies from "./replies.js"

/** A request that passed the checks. @internal */
export interface ChatRequest extends generate.GenerateRequest {
  readonly stream: boolean
  readonly includeUsage: boolean
  readonly shape: generate.Shape
  /** `chat_template_kwargs.enable_thinking`, when the request sets it. */
  readonly enableThinking: boolean | undefined
  readonly cacheSalt: string | undefined
}

/** @internal */
export type Checked =
  | { readonly _tag: "Valid"; readonly request: ChatRequest }
  | {
    readonly _tag: "Invalid"
    readonly outcome: "invalid-request" | "unknown-model"
    readonly reply: replies.StatusReply
  }

type Body = Readonly<Record<string, unknown>>

const isRecord = (u: unknown): u is Body => typeof u === "object" && u !== null && !Array.isArray(u)

/** The roles OpenAI's schema (and vLLM's) accepts, in the words of pydantic's literal error. */
const ROLES = ["system", "developer", "user", "assistant", "tool", "function"] as const
const ROLES_TEXT = "Input should be 'system', 'developer', 'user', 'assistant', 'tool' or 'function'"

/** A number field's bounds as pydantic words them: `ge`/`le` inclusive, `gt`/`lt` exclusive. */
interface Bounds {
  readonly ge?: number
  readonly gt?: number
  readonly le?: number
  readonly integer?: boolean
}

const NUMBER_FIELDS: ReadonlyArray<readonly [string, Bounds]> = [
  ["temperature", { ge: 0, le: 2 }],
  ["top_p", { gt: 0, le: 1 }],
  ["frequency_penalty", { ge: -2, le: 2 }],
  ["presence_penalty", { ge: -2, le: 2 }],
  ["n", { ge: 1, le: 128, integer: true }],
  ["max_tokens", { integer: true }],
  ["max_completion_tokens", { integer: true }],
  ["seed", { integer: true }]
]

const checkNumber = (name: string, value: unknown, bounds: Bounds): replies.Detail | undefined => {
  const loc = ["body", name]
  if (value === undefined || value === null) return undefined
  if (typeof value !== "number" || !Number.isFinite(value)) {
    return bounds.integer === true
      ? { loc, msg: "Input should be a valid integer", type: "int_type" }
      : { loc, msg: "Input should be a valid number", type: "float_type" }
  }
  if (bounds.integer === true && !Number.isInteger(value)) {
    return { loc, msg: "Input should be a valid integer, got a number with a fractional part", type: "int_from_float" }
  }
  if (bounds.ge !== undefined && value < bounds.ge) {
    return { loc, msg: `Input should be greater than or equal to ${bounds.ge}`, type: "greater_than_equal" }
  }
  if (bounds.gt !== undefined && value <= bounds.gt) {
    return { loc, msg: `Input should be greater than ${bounds.gt}`, type: "greater_than" }
  }
  if (bounds.le !== undefined && value > bounds.le) {
    return { loc, msg: `Input should be less than or equal to ${bounds.le}`, type: "less_than_equal" }
  }
  return undefined
}

/** FastAPI's checks: every field that breaks the request model, in one 422. */
const details = (body: Body): ReadonlyArray<replies.Detail> => {
  const found: Array<replies.Detail> = []
  for (const [name, bounds] of NUMBER_FIELDS) {
    const detail = checkNumber(name, body[name], bounds)
    if (detail !== undefined) found.push(detail)
  }
  const messages = body.messages as ReadonlyArray<unknown>
  messages.forEach((message, i) => {
    if (!isRecord(message)) {
      found.push({ loc: ["body", "messages", i], msg: "Input should be a valid dictionary", type: "dict_type" })
    } else if (!ROLES.some((role) => role === message.role)) {
      found.push({ loc: ["body", "messages", i, "role"], msg: ROLES_TEXT, type: "literal_error" })
    }
  })
  if (body.stream !== undefined && typeof body.stream !== "boolean") {
    found.push({ loc: ["body", "stream"], msg: "Input should be a valid boolean", type: "bool_type" })
  }
  return found
}

const toolsOf = (body: Body): ReadonlyArray<generate.Tool> =>
  Array.isArray(body.tools)
    ? body.tools.flatMap((tool: unknown) =>
      isRecord(tool) && isRecord(tool.function) && typeof tool.function.name === "string"
        ? [{ name: tool.function.name, parameters: tool.function.parameters }]
        : []
    )
    : []

const namedTool = (choice: unknown): string | undefined =>
  isRecord(choice) && isRecord(choice.function) && typeof choice.function.name === "string"
    ? choice.function.name
    : undefined

const lastText = (messages: ReadonlyArray<unknown>): string => {
  const last = messages[messages.length - 1]
  if (!isRecord(last)) return ""
  return typeof last.content === "string" ? last.content : JSON.stringify(last.content ?? "")
}

/**
 * What the answer is: a tool call when tools are offered and `tool_choice` allows
 * one (the named tool; otherwise the first tool whose name the last message
 * mentions, or the first tool; with `"auto"`, text once the last message is a tool
 * result, so an agent loop ends), else JSON for a `response_format` that asks for it, else text.
 */
const shapeOf = (body: Body, tools: ReadonlyArray<generate.Tool>): generate.Shape => {
  const choice = body.tool_choice
  const messages = body.messages as ReadonlyArray<unknown>
  if (tools.length > 0 && choice !== "none") {
    const named = namedTool(choice)
    const last = messages[messages.length - 1]
    const afterToolResult = isRecord(last) && last.role === "tool"
    if (named !== undefined || choice === "required" || !afterToolResult) {
      const text = lastText(messages).toLowerCase()
      const tool = tools.find((t) => t.name === named) ??
        tools.find((t) => text.includes(t.name.toLowerCase())) ?? tools[0]!
      return { _tag: "ToolCall", tool }
    }
  }
  const format = body.response_format
  if (isRecord(format) && format.type === "json_object") return { _tag: "Json", schema: undefined }
  if (isRecord(format) && format.type === "json_schema" && isRecord(format.json_schema)) {
    return { _tag: "Json", schema: format.json_schema.schema ?? { type: "object" } }
  }
  return { _tag: "Text" }
}

/** vLLM's own checks, after the request model's: a 400 naming the parameter. */
const engineCheck = (body: Body, tools: ReadonlyArray<generate.Tool>): replies.StatusReply | undefined => {
  for (const name of ["max_tokens", "max_completion_tokens"]) {
    const value = body[name]
    if (typeof value === "number" && value <= 0) {
      return replies.badRequest(`Invalid value for '${name}': must be a positive integer`, name)
    }
  }
  if (body.stream_options !== undefined && body.stream_options !== null && body.stream !== true) {
    return replies.badRequest("Stream options can only be defined when `stream=True`.", "stream_options")
  }
  if (body.cache_salt !== undefined && (typeof body.cache_salt !== "string" || body.cache_salt === "")) {
    return replies.badRequest("Parameter 'cache_salt' must be a non-empty string if provided.", "cache_salt")
  }
  const choice = body.tool_choice
  if ((choice === "required" || namedTool(choice) !== undefined) && tools.length === 0) {
    return replies.badRequest("When using `tool_choice`, `tools` must be set.", "tool_choice")
  }
  const named = namedTool(choice)
  if (named !== undefined && !tools.some((tool) => tool.name === named)) {
    return replies.badRequest(
      "The tool specified in `tool_choice` does not match any of the specified `tools`",
      "tool_choice"
    )
  }
  const format = body.response_format
  if (isRecord(format)) {
    if (!["text", "json_object", "json_schema"].includes(String(format.type))) {
      return replies.badRequest(
        `Invalid value for 'response_format.type': ${JSON.stringify(format.type)}`,
        "response_format"
      )
    }
    if (format.type === "json_schema" && !isRecord(format.json_schema)) {
      return replies.badRequest(
        "When response_format type is `json_schema`, `json_schema` must be set",
        "response_format"
      )
    }
  }
  return undefined
}

/**
 * Checks a chat request body in the order the real service does: the request's
 * shape (400), the request model (422, every failing field), vLLM's checks (400),
 * then the catalogue (404).
 *
 * @internal
 */
export const check = (body: unknown, parsed: boolean, hasModel: (model: string) => boolean): Checked => {
  if (
    !parsed || !isRecord(body) || typeof body.model !== "string" || !Array.isArray(body.messages) ||
    body.messages.length === 0
  ) {
    return {
      _tag: "Invalid",
      outcome: "invalid-request",
      reply: replies.badRequest("Invalid request: 'model' and a non-empty 'messages' are required", null)
    }
  }
  const found = details(body)
  if (found.length > 0) return { _tag: "Invalid", outcome: "invalid-request", reply: replies.unprocessable(found) }
  const tools = toolsOf(body)
  const refused = engineCheck(body, tools)
  if (refused !== undefined) return { _tag: "Invalid", outcome: "invalid-request", reply: refused }
  if (!hasModel(body.model)) return { _tag: "Invalid", outcome: "unknown-model", reply: replies.modelNotFound }
  const streamOptions = isRecord(body.stream_options) ? body.stream_options : {}
  const kwargs = isRecord(body.chat_template_kwargs) ? body.chat_template_kwargs : {}
  const number = (u: unknown) => typeof u === "number" ? u : undefined
  return {
    _tag: "Valid",
    request: {
      model: body.model,
      messages: body.messages,
      max_tokens: number(body.max_tokens),
      max_completion_tokens: number(body.max_completion_tokens),
      temperature: number(body.temperature),
      seed: number(body.seed),
      n: number(body.n),
      stream: body.stream === true,
      includeUsage: streamOptions.include_usage === true,
      shape: shapeOf(body, tools),
      enableThinking: typeof kwargs.enable_thinking === "boolean" ? kwargs.enable_thinking : undefined,
      cacheSalt: typeof body.cache_salt === "string" ? body.cache_salt : undefined
    }
  }
}
