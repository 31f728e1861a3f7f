/**
 * Every status and body the simulator answers with, in W&B Inference's words:
 * its documented errors, the observed 429, FastAPI's 422 and vLLM's in-stream frames.
 */
import type { Fault } from "../Fault.js"

/** @internal */
export const MESSAGES = {
  unauthorized: "Authentication failed",
  quota: "You exceeded your current quota, please check your plan and billing details",
  region: "Country, region, or territory not supported",
  notEnabled: "The inference gateway is not enabled for your organization",
  notFound: "The requested resource was not found",
  concurrency: "Concurrency limit reached for requests",
  personal: "W&B Inference isn't available for personal accounts",
  internal: "The server had an error while processing your request",
  overloaded: "The engine is currently overloaded, please try again later"
} as const

/** OpenAI's error shape, which W&B's gateway answers with. @internal */
export const errorBody = (message: string, type: string, code: string | null = null, param: string | null = null) => ({
  error: { message, type, param, code }
})

const html = (status: number, title: string) =>
  `<html>\r\n<head><title>${status} ${title}</title></head>\r\n<body>\r\n<center><h1>${status} ${title}</h1></center>\r\n</body>\r\n</html>\r\n`

/** @internal */
export interface StatusReply {
  readonly status: number
  readonly body: string
  readonly contentType: string
  readonly headers?: Record<string, string>
}

/** @internal */
export const json = (status: number, body: unknown, headers?: Record<string, string>): StatusReply => ({
  status,
  body: JSON.stringify(body),
  contentType: "application/json",
  ...(headers === undefined ? {} : { headers })
})

/** One entry of FastAPI's 422 `detail` list. @internal */
export interface Detail {
  readonly loc: ReadonlyArray<string | number>
  readonly msg: string
  readonly type: string
}

/** FastAPI's answer to a body that fails its model: every failing field, each with where, what and which check. @internal */
export const unprocessable = (detail: ReadonlyArray<Detail>): StatusReply => json(422, { detail })

/** A 400 in OpenAI's shape naming the parameter, as vLLM answers a request its checks refuse. @internal */
export const badRequest = (message: string, param: string | null): StatusReply =>
  json(400, errorBody(message, "invalid_request_error", null, param))

/** The 404 for a model the catalogue does not hold (or a retired one). @internal */
export const modelNotFound: StatusReply = json(404, errorBody(MESSAGES.notFound, "not_found_error", "model_not_found"))

/**
 * The 429 of a concurrency limit, as the real service was observed to word it:
 * lower case, naming whose limit (`zai-org/GLM-5.2-project limit reached` for a
 * model's), with OpenAI's `rate_limit_exceeded` code. `null` names the project's
 * own limit, for which no answer has been observed; it follows the same shape.
 *
 * @internal
 */
export const concurrencyLimited = (model: string | null, headers?: Record<string, string>): StatusReply =>
  json(
    429,
    errorBody(
      `concurrency limit reached for requests: ${model === null ? "project" : `${model}-project`} limit reached`,
      "rate_limit_error",
      "rate_limit_exceeded"
    ),
    headers
  )

/** The status and body W&B answers for each status fault; `model` is the request's. @internal */
export const statusReply = (fault: Fault, model: string, now: number): StatusReply | undefined => {
  switch (fault._tag) {
    case "BadRequest":
      return badRequest("Invalid value for 'max_tokens': must be a positive integer", "max_tokens")
    case "Unauthorized":
      return json(401, errorBody(MESSAGES.unauthorized, "authentication_error"))
    case "QuotaExceeded":
      return json(402, errorBody(MESSAGES.quota, "insufficient_quota", "insufficient_quota"))
    case "RegionNotSupported":
      return json(403, errorBody(MESSAGES.region, "permission_error", "unsupported_country_region_territory"))
    case "GatewayNotEnabled":
      return json(403, errorBody(MESSAGES.notEnabled, "permission_error"))
    case "ModelNotFound":
      return modelNotFound
    case "Unprocessable":
      return unprocessable([{
        loc: ["body", "temperature"],
        msg: "Input should be less than or equal to 2",
        type: "less_than_equal"
      }])
    case "RateLimited": {
      const headers: Record<string, string> = {}
      const wait = fault.retryAfter
      if (wait?.seconds !== undefined) headers["retry-after"] = String(wait.seconds)
      if (wait?.millis !== undefined) headers["retry-after-ms"] = String(wait.millis)
      if (wait?.httpDateIn !== undefined) headers["retry-after"] = new Date(now + wait.httpDateIn * 1000).toUTCString()
      return fault.scope === undefined
        ? json(429, errorBody(MESSAGES.concurrency, "rate_limit_error"), headers)
        : concurrencyLimited(fault.scope === "model" ? model : null, headers)
    }
    case "QuotaExceeded429":
      return json(429, errorBody(MESSAGES.quota, "insufficient_quota", "insufficient_quota"))
    case "PersonalAccount":
      return json(429, errorBody(MESSAGES.personal, "permission_error"))
    case "InternalError":
      return json(500, errorBody(MESSAGES.internal, "server_error"))
    case "BadGateway":
      return { status: 502, body: html(502, "Bad Gateway"), contentType: "text/html" }
    case "Overloaded":
      return json(503, errorBody(MESSAGES.overloaded, "server_error", "engine_overloaded"))
    case "GatewayTimeout":
      return { status: 504, body: html(504, "Gateway Time-out"), contentType: "text/html" }
    case "NonJsonBody":
      return { status: 200, body: "<html><body>Service is up</body></html>", contentType: "text/html" }
    case "WrongShapeBody":
      return json(200, { result: "ok", choices: "none" })
    default:
      return undefined
  }
}

/** The OpenAI error `type` for a status: the one its HTTP answer carries, so a frame and a status agree. @internal */
export const typeOfStatus = (status: number): string => {
  switch (status) {
    case 400:
    case 422:
      return "invalid_request_error"
    case 401:
      return "authentication_error"
    case 402:
      return "insufficient_quota"
    case 403:
      return "permission_error"
    case 404:
      return "not_found_error"
    case 429:
      return "rate_limit_error"
    default:
      return "server_error"
  }
}

/**
 * The SSE text of an in-stream error, in the fault's format: vLLM's data-only
 * frame with a numeric code (the default), older vLLM's top-level error object,
 * or OpenAI's `event: error`. The first two are followed by `[DONE]`, as vLLM sends them.
 *
 * @internal
 */
export const errorFrame = (fault: Extract<Fault, { readonly _tag: "SseErrorFrame" }>): string => {
  const type = typeOfStatus(fault.status)
  switch (fault.format ?? "vllm") {
    case "openai":
      return `event: error\ndata: ${JSON.stringify(errorBody(fault.message, type, fault.code ?? null))}\n\n`
    case "vllm-legacy":
      return `data: ${
        JSON.stringify({ object: "error", message: fault.message, type, param: null, code: fault.status })
      }\n\ndata: [DONE]\n\n`
    case "vllm":
      return `data: ${
        JSON.stringify({ error: { message: fault.message, type, param: null, code: fault.status } })
      }\n\ndata: [DONE]\n\n`
  }
}
