import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientError from "@effect/platform/HttpClientError"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import { assert, describe, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as http from "node:http"
import type { AddressInfo } from "node:net"
import * as net from "node:net"
import type * as InferenceError from "../../src/InferenceError.js"
import * as classify from "../../src/internal/classify.js"
import * as UndiciHttpClient from "../../src/UndiciHttpClient.js"
import { MODEL, SECRET } from "../utils/Client.js"

const NOW = Date.parse("Wed, 21 Oct 2015 07:28:00 GMT")

/** The parsed delay in milliseconds, or undefined for none. */
const retryAfterMillis = (headers: Readonly<Record<string, string>>, now = NOW): number | undefined =>
  Option.getOrUndefined(Option.map(classify.parseRetryAfter(headers, now), Duration.toMillis))

const context: classify.CallContext = { model: MODEL, attempt: 2, secret: SECRET }

const body = (fields: Partial<classify.ErrorBody>): classify.ErrorBody => ({
  message: undefined,
  code: undefined,
  type: undefined,
  param: undefined,
  ...fields
})

describe("classify", () => {
  describe("parseRetryAfter", () => {
    it.effect("reads retry-after-ms as milliseconds", () =>
      Effect.sync(() => {
        assert.strictEqual(retryAfterMillis({ "retry-after-ms": "2500" }), 2500)
        assert.strictEqual(retryAfterMillis({ "retry-after-ms": "0" }), 0)
      }))

    it.effect("retry-after-ms wins over retry-after", () =>
      Effect.sync(() => {
        assert.strictEqual(retryAfterMillis({ "retry-after-ms": "1500", "retry-after": "9" }), 1500)
      }))

    it.effect("reads retry-after as whole seconds", () =>
      Effect.sync(() => {
        assert.strictEqual(retryAfterMillis({ "retry-after": "7" }), 7000)
        assert.strictEqual(retryAfterMillis({ "retry-after": "0" }), 0)
        assert.strictEqual(retryAfterMillis({ "retry-after": " 120 " }), 120_000)
      }))

    it.effect("reads retry-after as fractional seconds", () =>
      Effect.sync(() => {
        assert.strictEqual(retryAfterMillis({ "retry-after": "1.5" }), 1500)
        assert.strictEqual(retryAfterMillis({ "retry-after": "0.25" }), 250)
      }))

    it.effect("reads retry-after as an HTTP date, relative to now", () =>
      Effect.sync(() => {
        assert.strictEqual(retryAfterMillis({ "retry-after": "Wed, 21 Oct 2015 07:28:30 GMT" }), 30_000)
        assert.strictEqual(retryAfterMillis({ "retry-after": new Date(NOW + 90_000).toUTCString() }), 90_000)
        assert.strictEqual(
          retryAfterMillis({ "retry-after": "Wed, 21 Oct 2015 07:28:30 GMT" }, NOW + 10_000),
          20_000,
          "the same date later is a shorter wait"
        )
      }))

    it.effect("an HTTP date in the past means no wait at all", () =>
      Effect.sync(() => {
        assert.strictEqual(retryAfterMillis({ "retry-after": "Wed, 21 Oct 2015 07:27:00 GMT" }), 0)
        assert.strictEqual(retryAfterMillis({ "retry-after": new Date(NOW).toUTCString() }), 0)
      }))

    it.effect("garbage gives none", () =>
      Effect.sync(() => {
        for (
          const value of ["soon", "", "   ", "5s", "1e3", "0x10", "Infinity", "in a minute", "-1", "+5", "1,5", "1."]
        ) {
          assert.isUndefined(retryAfterMillis({ "retry-after": value }), JSON.stringify(value))
        }
      }))

    it.effect("no header gives none, and other headers are not read", () =>
      Effect.sync(() => {
        assert.isUndefined(retryAfterMillis({}))
        assert.isUndefined(retryAfterMillis({ "x-ratelimit-reset-requests": "7s", "x-request-id": "1" }))
      }))

    it.effect("a negative or unreadable retry-after-ms is ignored in favour of retry-after", () =>
      Effect.sync(() => {
        assert.isUndefined(retryAfterMillis({ "retry-after-ms": "-5" }))
        assert.strictEqual(retryAfterMillis({ "retry-after-ms": "-5", "retry-after": "3" }), 3000)
        assert.strictEqual(retryAfterMillis({ "retry-after-ms": "soon", "retry-after": "3" }), 3000)
        assert.strictEqual(retryAfterMillis({ "retry-after-ms": "", "retry-after": "3" }), 3000)
      }))
  })

  describe("parseErrorBody", () => {
    it.effect("reads OpenAI's {error: {message, type, param, code}}", () =>
      Effect.sync(() => {
        const parsed = classify.parseErrorBody(JSON.stringify({
          error: {
            message: "max_tokens is too large",
            type: "invalid_request_error",
            param: "max_tokens",
            code: "context_length_exceeded"
          }
        }))
        assert.deepStrictEqual(parsed, {
          message: "max_tokens is too large",
          type: "invalid_request_error",
          param: "max_tokens",
          code: "context_length_exceeded"
        })
      }))

    it.effect("keeps the text of a JSON string or number body", () =>
      Effect.sync(() => {
        assert.strictEqual(classify.parseErrorBody(JSON.stringify("Internal error")).message, "Internal error")
        assert.strictEqual(classify.parseErrorBody("502").message, "502")
      }))

    it.effect("reads null fields of the OpenAI shape as missing and a numeric code as text", () =>
      Effect.sync(() => {
        const parsed = classify.parseErrorBody(
          JSON.stringify({ error: { message: "Too many requests", type: null, param: null, code: 429 } })
        )
        assert.deepStrictEqual(parsed, body({ message: "Too many requests", code: "429" }))
      }))

    it.effect("reads {detail: string}", () =>
      Effect.sync(() => {
        assert.deepStrictEqual(
          classify.parseErrorBody("{\"detail\":\"Not authenticated\"}"),
          body({ message: "Not authenticated" })
        )
      }))

    it.effect("reads FastAPI's {detail: [{msg}]}, joining the messages", () =>
      Effect.sync(() => {
        const parsed = classify.parseErrorBody(JSON.stringify({
          detail: [
            { loc: ["body", "n"], msg: "n must be 1", type: "value_error" },
            { loc: ["body", "top_k"], msg: "top_k must be positive", type: "value_error" },
            { loc: ["body"], type: "no_message" }
          ]
        }))
        assert.deepStrictEqual(parsed, body({ message: "n must be 1; top_k must be positive" }))
      }))

    it.effect("a FastAPI detail list without any msg gives no message", () =>
      Effect.sync(() => {
        assert.deepStrictEqual(classify.parseErrorBody("{\"detail\":[{\"loc\":[\"body\"]}]}"), body({}))
      }))

    it.effect("reads {error: \"text\"}", () =>
      Effect.sync(() => {
        assert.deepStrictEqual(
          classify.parseErrorBody("{\"error\":\"Upstream timed out\"}"),
          body({ message: "Upstream timed out" })
        )
      }))

    it.effect("reads {message, code, type}", () =>
      Effect.sync(() => {
        assert.deepStrictEqual(
          classify.parseErrorBody(
            "{\"message\":\"Out of credits\",\"code\":\"insufficient_quota\",\"type\":\"billing\"}"
          ),
          body({ message: "Out of credits", code: "insufficient_quota", type: "billing" })
        )
      }))

    it.effect("reads plain text, trimmed", () =>
      Effect.sync(() => {
        assert.deepStrictEqual(
          classify.parseErrorBody("  <html><body>502 Bad Gateway</body></html>\n"),
          body({ message: "<html><body>502 Bad Gateway</body></html>" })
        )
      }))

    it.effect("an empty or blank body gives no message", () =>
      Effect.sync(() => {
        assert.deepStrictEqual(classify.parseErrorBody(""), body({}))
        assert.deepStrictEqual(classify.parseErrorBody(" \n "), body({}))
      }))

    it.effect("reads older vLLM's top-level {object: \"error\", message, type, param, code}", () =>
      Effect.sync(() => {
        const parsed = classify.parseErrorBody(JSON.stringify({
          object: "error",
          message: "The model `nope` does not exist.",
          type: "NotFoundError",
          param: "model",
          code: 404
        }))
        assert.deepStrictEqual(
          parsed,
          body({ message: "The model `nope` does not exist.", type: "NotFoundError", param: "model", code: "404" })
        )
      }))

    it.effect("JSON of another shape gives no message", () =>
      Effect.sync(() => {
        assert.deepStrictEqual(classify.parseErrorBody("{}"), body({}))
        assert.deepStrictEqual(classify.parseErrorBody("{\"status\":\"error\"}"), body({}))
        assert.deepStrictEqual(classify.parseErrorBody("[1,2]"), body({}))
      }))
  })

  describe("scrub", () => {
    it.effect("replaces every copy of the secret", () =>
      Effect.sync(() => {
        assert.strictEqual(
          classify.scrub(`Invalid key ${SECRET}; the key ${SECRET} was refused`, SECRET),
          "Invalid key <redacted>; the key <redacted> was refused"
        )
      }))

    it.effect("leaves text without the secret as it is", () =>
      Effect.sync(() => {
        assert.strictEqual(classify.scrub("Concurrency limit reached", SECRET), "Concurrency limit reached")
      }))

    it.effect("clips text longer than 1000 characters and marks the cut", () =>
      Effect.sync(() => {
        const long = "a".repeat(1500)
        const scrubbed = classify.scrub(long, SECRET)
        assert.strictEqual(scrubbed, `${"a".repeat(1000)}…`)
        assert.strictEqual(classify.scrub("b".repeat(1000), SECRET), "b".repeat(1000), "1000 characters are kept whole")
      }))

    it.effect("clips long text and still removes the secret within it", () =>
      Effect.sync(() => {
        const straddling = classify.scrub("x".repeat(995) + SECRET + " more", SECRET)
        assert.notInclude(straddling, SECRET.slice(0, 5), "no start of a key cut by the clip")
        const scrubbed = classify.scrub(`key ${SECRET} ${"z".repeat(2000)}`, SECRET)
        assert.notInclude(scrubbed, SECRET)
        assert.isTrue(scrubbed.startsWith("key <redacted> zzz"))
        assert.isTrue(scrubbed.endsWith("…"))
      }))
  })

  describe("fromStatus", () => {
    const fromStatus = (
      status: number,
      errorBody: Partial<classify.ErrorBody>,
      headers: Readonly<Record<string, string>> = {}
    ) => classify.fromStatus(status, headers, body(errorBody), NOW, context)

    it.effect("429 with a quota code or type is QuotaExceededError", () =>
      Effect.sync(() => {
        for (
          const code of ["insufficient_quota", "quota_exceeded", "billing_hard_limit_reached", "billing_not_active"]
        ) {
          assert.strictEqual(fromStatus(429, { message: "Too many requests", code })._tag, "QuotaExceededError", code)
          assert.strictEqual(
            fromStatus(429, { message: "Too many requests", type: code })._tag,
            "QuotaExceededError",
            code
          )
        }
      }))

    it.effect("429 worded as quota, credits, billing, a spending cap or payment is QuotaExceededError", () =>
      Effect.sync(() => {
        for (
          const message of [
            "You exceeded your current quota, please check your plan and billing details",
            "Out of credits",
            "Billing is not set up for this team",
            "Your spending cap has been reached",
            "Monthly spending limit reached",
            "Payment required"
          ]
        ) {
          assert.strictEqual(fromStatus(429, { message })._tag, "QuotaExceededError", message)
        }
      }))

    it.effect("429 for a personal account is PermissionDeniedError PersonalAccount", () =>
      Effect.sync(() => {
        const error = fromStatus(429, { message: "W&B Inference isn't available for personal accounts" })
        assert.strictEqual(error._tag, "PermissionDeniedError")
        if (error._tag === "PermissionDeniedError") assert.strictEqual(error.reason, "PersonalAccount")
      }))

    it.effect("a 429 that is both quota and personal account is quota", () =>
      Effect.sync(() => {
        const error = fromStatus(429, { message: "Personal account out of credits" })
        assert.strictEqual(error._tag, "QuotaExceededError")
      }))

    it.effect("any other 429 is RateLimitError carrying Retry-After, request id, model and attempt", () =>
      Effect.sync(() => {
        const error = fromStatus(429, { message: "Concurrency limit reached for requests" }, {
          "retry-after": "7",
          "x-request-id": "req-429"
        })
        assert.strictEqual(error._tag, "RateLimitError")
        if (error._tag === "RateLimitError") {
          assert.strictEqual(error.status, 429)
          assert.strictEqual(error.requestId, "req-429")
          assert.strictEqual(error.model, MODEL)
          assert.strictEqual(error.attempts, 2)
          assert.strictEqual(error.serverMessage, "Concurrency limit reached for requests")
          assert.strictEqual(Duration.toMillis(Option.getOrThrow(error.retryAfter)), 7000)
        }
      }))

    it.effect("a 429 without body or Retry-After is RateLimitError with retryAfter none", () =>
      Effect.sync(() => {
        const error = fromStatus(429, {})
        assert.strictEqual(error._tag, "RateLimitError")
        if (error._tag === "RateLimitError") {
          assert.isTrue(Option.isNone(error.retryAfter))
          assert.isUndefined(error.serverMessage)
        }
      }))

    it.effect("a 429 HTTP-date Retry-After is measured from now", () =>
      Effect.sync(() => {
        const error = fromStatus(429, {}, { "retry-after": new Date(NOW + 12_000).toUTCString() })
        if (error._tag === "RateLimitError") {
          assert.strictEqual(Duration.toMillis(Option.getOrThrow(error.retryAfter)), 12_000)
        } else {
          assert.fail(`expected RateLimitError, got ${error._tag}`)
        }
      }))

    it.effect("the request id falls back to the request-id header", () =>
      Effect.sync(() => {
        const requestId = (headers: Readonly<Record<string, string>>) => {
          const error = fromStatus(429, {}, headers)
          return "requestId" in error ? error.requestId : undefined
        }
        assert.strictEqual(requestId({ "request-id": "req-alt" }), "req-alt")
        assert.strictEqual(requestId({ "request-id": "req-alt", "x-request-id": "req-main" }), "req-main")
      }))

    it.effect("a 429 whose code or type names a rate limit stays a RateLimitError, whatever its message says", () =>
      Effect.sync(() => {
        const message = "Rate limit reached for requests. Add a payment method at /account/billing to raise it"
        assert.strictEqual(
          fromStatus(429, { message, type: "rate_limit_error", code: "rate_limit_exceeded" })._tag,
          "RateLimitError"
        )
        assert.strictEqual(fromStatus(429, { message })._tag, "QuotaExceededError", "without a code the words decide")
        assert.strictEqual(
          fromStatus(429, { message: "slow down", code: "insufficient_quota" })._tag,
          "QuotaExceededError"
        )
      }))

    it.effect("the secret is scrubbed from code, type and param too", () =>
      Effect.sync(() => {
        const error = fromStatus(400, { code: `bad_${SECRET}`, type: SECRET, param: `key=${SECRET}`, message: "no" })
        assert.notInclude(JSON.stringify(error), SECRET)
        assert.strictEqual("param" in error ? error.param : undefined, "key=<redacted>")
      }))

    it.effect("the secret is scrubbed from the server's message", () =>
      Effect.sync(() => {
        const error = fromStatus(429, { message: `Concurrency limit reached for key ${SECRET}` })
        assert.strictEqual(error._tag, "RateLimitError")
        assert.notInclude(error.message, SECRET)
        assert.include(error.message, "for key <redacted>")
      }))
  })
  /** A value of the expected tag, or a failed assertion naming what came instead. */
  const expectTag = <T extends InferenceError.InferenceError["_tag"]>(
    error: InferenceError.InferenceError,
    tag: T
  ): Extract<InferenceError.InferenceError, { readonly _tag: T }> => {
    assert.strictEqual(error._tag, tag)
    return error as Extract<InferenceError.InferenceError, { readonly _tag: T }>
  }

  describe("429s: status, then code, then type, then message, case-insensitively", () => {
    const fromBody = (json: unknown, status = 429) =>
      classify.fromStatus(status, {}, classify.parseErrorBody(JSON.stringify(json)), NOW, context)

    it.effect("W&B's observed body is a RateLimitError of the project's limit for that model", () =>
      Effect.sync(() => {
        const error = expectTag(
          fromBody({
            error: {
              message: "concurrency limit reached for requests: zai-org/GLM-5.2-project limit reached",
              type: "rate_limit_error",
              param: null,
              code: "rate_limit_exceeded"
            }
          }),
          "RateLimitError"
        )
        assert.strictEqual(error.scope, "project")
        assert.strictEqual(error.limitedModel, "zai-org/GLM-5.2")
        assert.strictEqual(error.code, "rate_limit_exceeded")
        assert.include(error.message, "Concurrency limit reached for the project on model \"zai-org/GLM-5.2\"")
        assert.include(error.message, "lower maxConcurrency")
      }))

    it.effect("the documented sentence says no scope", () =>
      Effect.sync(() => {
        const error = expectTag(
          fromBody({ error: { message: "Concurrency limit reached for requests" } }),
          "RateLimitError"
        )
        assert.strictEqual(error.scope, "unknown")
        assert.isUndefined(error.limitedModel)
      }))

    it.effect("the limit's suffix gives the scope and what comes before it the model, hyphens and all", () =>
      Effect.sync(() => {
        const cases: ReadonlyArray<readonly [string, InferenceError.RateLimitScope, string | undefined]> = [
          [`concurrency limit reached for requests: ${MODEL}-user limit reached`, "user", MODEL],
          [`concurrency limit reached for requests: ${MODEL}-model limit reached`, "model", MODEL],
          [
            "Concurrency limit reached for requests: deepseek-ai/DeepSeek-V4-Pro-0813-PROJECT limit reached",
            "project",
            "deepseek-ai/DeepSeek-V4-Pro-0813"
          ],
          [
            "concurrency limit reached for requests: wandb-artifact:///team/project/lora:v3-project limit reached",
            "project",
            "wandb-artifact:///team/project/lora:v3"
          ],
          ["concurrency limit reached for requests: project limit reached", "project", undefined],
          ["Project concurrency limit reached", "project", undefined],
          ["per-user limit reached, try again later", "user", undefined],
          ["Too many requests", "unknown", undefined]
        ]
        for (const [message, scope, limitedModel] of cases) {
          const error = expectTag(fromBody({ error: { message, code: "rate_limit_exceeded" } }), "RateLimitError")
          assert.strictEqual(error.scope, scope, message)
          assert.strictEqual(error.limitedModel, limitedModel, message)
        }
      }))

    it.effect("a model id read from the message is scrubbed like the message", () =>
      Effect.sync(() => {
        const error = expectTag(
          fromBody({ error: { message: `concurrency limit reached for requests: ${SECRET}-user limit reached` } }),
          "RateLimitError"
        )
        assert.strictEqual(error.limitedModel, "<redacted>")
        assert.notInclude(JSON.stringify(error), SECRET)
        assert.notInclude(error.message, SECRET)
      }))

    it.effect("codes and types are read case-insensitively", () =>
      Effect.sync(() => {
        const quotaWorded = "Rate limit reached. Add a payment method at /account/billing to raise it"
        assert.strictEqual(
          fromBody({ error: { message: quotaWorded, code: "RATE_LIMIT_EXCEEDED" } })._tag,
          "RateLimitError"
        )
        assert.strictEqual(
          fromBody({ error: { message: quotaWorded, type: "Rate_Limit_Error" } })._tag,
          "RateLimitError"
        )
        assert.strictEqual(
          fromBody({ error: { message: "slow down", code: "Insufficient_Quota" } })._tag,
          "QuotaExceededError"
        )
      }))

    it.effect("the code decides before the type", () =>
      Effect.sync(() => {
        assert.strictEqual(
          fromBody({ error: { message: "x", code: "rate_limit_exceeded", type: "insufficient_quota" } })._tag,
          "RateLimitError"
        )
        assert.strictEqual(
          fromBody({ error: { message: "x", code: "insufficient_quota", type: "requests" } })._tag,
          "QuotaExceededError"
        )
      }))

    it.effect("the quota 429 from before 402 (OpenAI's body) stays a QuotaExceededError, not retried", () =>
      Effect.sync(() => {
        const body = {
          error: {
            message: "You exceeded your current quota, please check your plan and billing details",
            type: "insufficient_quota",
            param: null,
            code: "insufficient_quota"
          }
        }
        expectTag(fromBody(body), "QuotaExceededError")
        // the same words without a code or type still say quota
        expectTag(fromBody({ error: { message: body.error.message } }), "QuotaExceededError")
        // and 402, the quota status now, is quota whatever the body
        expectTag(fromBody({ error: { message: "Payment Required" } }, 402), "QuotaExceededError")
      }))

    it.effect("the personal-account 429 stays a PermissionDeniedError PersonalAccount, whatever the case", () =>
      Effect.sync(() => {
        for (
          const message of [
            "W&B Inference isn't available for personal accounts",
            "NOT AVAILABLE FOR PERSONAL ACCOUNTS"
          ]
        ) {
          const error = expectTag(
            fromBody({ error: { message, type: "error", param: null, code: null } }),
            "PermissionDeniedError"
          )
          assert.strictEqual(error.reason, "PersonalAccount")
        }
      }))

    it.effect("403: a region code decides before the message, in any case and as a type too", () =>
      Effect.sync(() => {
        for (
          const fields of [
            { code: "UNSUPPORTED_COUNTRY_REGION_TERRITORY" },
            { type: "unsupported_country_region_territory" }
          ]
        ) {
          const error = expectTag(
            fromBody({ error: { message: "Forbidden", ...fields } }, 403),
            "PermissionDeniedError"
          )
          assert.strictEqual(error.reason, "RegionNotSupported", JSON.stringify(fields))
        }
        const gateway = expectTag(
          fromBody({ error: { message: "The inference gateway is NOT ENABLED for your organization" } }, 403),
          "PermissionDeniedError"
        )
        assert.strictEqual(gateway.reason, "InferenceNotEnabled")
      }))
  })

  describe("404s: what was not found", () => {
    const BASE_URL = "http://localhost:8000/v1"
    const notFound = (text: string, ctx: Partial<classify.CallContext> = {}) =>
      expectTag(
        classify.fromStatus(404, {}, classify.parseErrorBody(text), NOW, { ...context, baseUrl: BASE_URL, ...ctx }),
        "NotFoundError"
      )

    it.effect("a model: OpenAI's model_not_found, vLLM's 'does not exist', or a body naming the call's model", () =>
      Effect.sync(() => {
        const bodies = [
          JSON.stringify({
            error: {
              message: "The model `gpt-9` does not exist or you do not have access to it.",
              type: "invalid_request_error",
              param: null,
              code: "model_not_found"
            }
          }),
          JSON.stringify({ error: { message: "nope", code: "MODEL_NOT_FOUND" } }),
          JSON.stringify({
            object: "error",
            message: "The model `x` does not exist.",
            type: "NotFoundError",
            code: 404
          }),
          JSON.stringify({ error: { message: `${MODEL} is retired` } }),
          JSON.stringify({ detail: "Model not found" })
        ]
        for (const text of bodies) {
          const error = notFound(text)
          assert.strictEqual(error.resource, "model", text)
          assert.include(error.message, "listModels()", text)
          assert.notInclude(error.message, BASE_URL, text)
        }
      }))

    it.effect("a path: an empty body or a bare Not Found page from a proxy or a router", () =>
      Effect.sync(() => {
        for (
          const text of [
            "",
            "Not Found",
            "404 page not found",
            "404: Not Found",
            "<html><head><title>404 Not Found</title></head><body><center><h1>404 Not Found</h1></center></body></html>",
            "Cannot POST /v2/chat/completions",
            "{\"detail\":\"Not Found\"}",
            "{}"
          ]
        ) {
          const error = notFound(text)
          assert.strictEqual(error.resource, "path", JSON.stringify(text))
          assert.strictEqual(error.baseUrl, BASE_URL)
          assert.include(error.message, `it was "${BASE_URL}"`)
          assert.include(error.message, "https://api.inference.wandb.ai/v1")
        }
      }))

    it.effect("W&B's generic sentence could be either: unknown, and the hint names both", () =>
      Effect.sync(() => {
        const error = notFound(JSON.stringify({ error: { message: "The requested resource was not found" } }))
        assert.strictEqual(error.resource, "unknown")
        assert.include(error.message, "listModels()")
        assert.include(error.message, BASE_URL)
        assert.strictEqual(notFound(JSON.stringify({ error: { code: "not_found" } })).resource, "unknown")
        // the API's envelope, with a type, is not a router's page whatever its words
        assert.strictEqual(
          notFound(JSON.stringify({ error: { message: "Not Found", type: "invalid_request_error" } })).resource,
          "unknown"
        )
      }))

    it.effect("for a call without a model (listModels) W&B's generic sentence means the path", () =>
      Effect.sync(() => {
        const error = notFound(JSON.stringify({ error: { message: "The requested resource was not found" } }), {
          model: undefined
        })
        assert.strictEqual(error.resource, "path")
        assert.include(error.message, `it was "${BASE_URL}"`)
      }))

    it.effect("the base URL is scrubbed before it is kept", () =>
      Effect.sync(() => {
        const error = notFound("Not Found", { baseUrl: `http://proxy.test/${SECRET}/v1` })
        assert.strictEqual(error.baseUrl, "http://proxy.test/<redacted>/v1")
        assert.notInclude(error.message, SECRET)
      }))

    it.effect("without a base URL in the context the hint still names the option", () =>
      Effect.sync(() => {
        const error = expectTag(classify.fromStatus(404, {}, body({}), NOW, context), "NotFoundError")
        assert.isUndefined(error.baseUrl)
        assert.include(error.message, "check baseUrl (W&B Inference's is https://api.inference.wandb.ai/v1)")
      }))
  })

  describe("SSE error frames", () => {
    const frame = (json: unknown) => classify.fromErrorFrame(JSON.stringify(json), NOW, context)

    it.effect("OpenAI's 401 frame (invalid_request_error, invalid_api_key) is an AuthenticationError", () =>
      Effect.sync(() => {
        const error = frame({
          error: {
            message:
              "Incorrect API key provided: sk-abc***xyz. You can find your API key at https://platform.openai.com/account/api-keys.",
            type: "invalid_request_error",
            param: null,
            code: "invalid_api_key"
          }
        })
        expectTag(error, "AuthenticationError")
      }))

    it.effect("OpenAI's 404 frame (invalid_request_error, model_not_found) is a NotFoundError of the model", () =>
      Effect.sync(() => {
        const error = expectTag(
          frame({
            error: {
              message: "The model `gpt-9` does not exist or you do not have access to it.",
              type: "invalid_request_error",
              param: null,
              code: "model_not_found"
            }
          }),
          "NotFoundError"
        )
        assert.strictEqual(error.resource, "model")
      }))

    it.effect("OpenAI's other frames: rate limit, quota, server error, overload, plain bad request", () =>
      Effect.sync(() => {
        expectTag(
          frame({
            error: {
              message:
                "Rate limit reached for gpt-4o in organization org-x on tokens per min (TPM): Limit 30000, Used 30000, Requested 100. Please try again in 200ms.",
              type: "tokens",
              param: null,
              code: "rate_limit_exceeded"
            }
          }),
          "RateLimitError"
        )
        expectTag(
          frame({
            error: {
              message: "You exceeded your current quota, please check your plan and billing details.",
              type: "insufficient_quota",
              param: null,
              code: "insufficient_quota"
            }
          }),
          "QuotaExceededError"
        )
        expectTag(
          frame({
            error: {
              message: "The server had an error while processing your request. Sorry about that!",
              type: "server_error",
              param: null,
              code: null
            }
          }),
          "InternalServerError"
        )
        expectTag(
          frame({
            error: {
              message: "That model is currently overloaded with other requests. You can retry your request.",
              type: "server_error",
              param: null,
              code: null
            }
          }),
          "ServiceUnavailableError"
        )
        expectTag(
          frame({
            error: {
              message: "This model's maximum context length is 8192 tokens.",
              type: "invalid_request_error",
              param: "messages",
              code: "context_length_exceeded"
            }
          }),
          "BadRequestError"
        )
      }))

    it.effect("vLLM's data-only frames: the numeric code (a number or a string) is the status", () =>
      Effect.sync(() => {
        const cases: ReadonlyArray<readonly [unknown, InferenceError.InferenceError["_tag"]]> = [
          [400, "BadRequestError"],
          [404, "NotFoundError"],
          ["429", "RateLimitError"],
          [" 503 ", "ServiceUnavailableError"],
          [500, "InternalServerError"]
        ]
        for (const [code, tag] of cases) {
          const error = frame({ error: { message: "Something went wrong", type: "BadRequestError", code } })
          assert.strictEqual(error._tag, tag, String(code))
          assert.strictEqual((error as { readonly status?: number }).status, Number(code))
        }
      }))

    it.effect("a numeric code settles it before any name, and an out-of-range one is read as a name", () =>
      Effect.sync(() => {
        expectTag(
          frame({ error: { message: "x", type: "invalid_request_error", code: 503 } }),
          "ServiceUnavailableError"
        )
        expectTag(frame({ error: { message: "x", type: "invalid_request_error", code: 200 } }), "BadRequestError")
      }))

    it.effect("older vLLM's top-level {object: \"error\"} frame is classified like the others", () =>
      Effect.sync(() => {
        const error = expectTag(
          classify.fromErrorFrame(
            JSON.stringify({
              object: "error",
              message: "The model `x` does not exist.",
              type: "NotFoundError",
              param: null,
              code: 404
            }),
            NOW,
            context
          ),
          "NotFoundError"
        )
        assert.strictEqual(error.resource, "model")
        assert.strictEqual(error.serverMessage, "The model `x` does not exist.")
      }))

    it.effect("names are read case-insensitively, specific codes before generic types", () =>
      Effect.sync(() => {
        expectTag(
          frame({ error: { message: "x", type: "Invalid_Request_Error", code: "Invalid_API_Key" } }),
          "AuthenticationError"
        )
        expectTag(frame({ error: { message: "x", type: "INVALID_REQUEST_ERROR" } }), "BadRequestError")
      }))

    it.effect("without a code or type the message decides, with the same rules as a status", () =>
      Effect.sync(() => {
        const limited = expectTag(
          frame({
            error: { message: "concurrency limit reached for requests: zai-org/GLM-5.2-project limit reached" }
          }),
          "RateLimitError"
        )
        assert.strictEqual(limited.scope, "project")
        expectTag(frame({ error: { message: "You exceeded your current quota" } }), "QuotaExceededError")
        const personal = expectTag(
          frame({ error: { message: "W&B Inference isn't available for personal accounts" } }),
          "PermissionDeniedError"
        )
        assert.strictEqual(personal.reason, "PersonalAccount")
        expectTag(frame({ error: { message: "Authentication failed" } }), "AuthenticationError")
        expectTag(
          frame({ error: { message: "The engine is currently overloaded, please try again later" } }),
          "ServiceUnavailableError"
        )
        expectTag(frame({ error: { message: "something broke" } }), "InternalServerError")
      }))

    it.effect("isErrorEvent tells error payloads from chunks", () =>
      Effect.sync(() => {
        const errors = [
          { error: { message: "boom", type: "BadRequestError", code: 400 } },
          { error: "Upstream timed out" },
          { object: "error", message: "boom", type: "BadRequestError", code: 400 }
        ]
        for (const json of errors) assert.isTrue(classify.isErrorEvent(json), JSON.stringify(json))
        const others: ReadonlyArray<unknown> = [
          { object: "chat.completion.chunk", choices: [{ index: 0, delta: { content: "hi" }, finish_reason: null }] },
          { object: "chat.completion.chunk", choices: [], usage: { prompt_tokens: 1 } },
          { choices: [], error: { message: "a field some servers add to chunks" } },
          { object: "chat.completion.chunk", choices: [], error: null },
          { error: null },
          [],
          "error",
          null
        ]
        for (const json of others) assert.isFalse(classify.isErrorEvent(json), JSON.stringify(json))
      }))
  })

  describe("fromHttpClientError: was the request sent?", () => {
    const request = HttpClientRequest.post("http://inference.test/v1/chat/completions")
    const transport = (cause: unknown) => new HttpClientError.RequestError({ request, reason: "Transport", cause })
    /** Node's system errors carry a code and the call that failed. */
    const systemError = (message: string, code: string, syscall?: string) =>
      Object.assign(new Error(message), syscall === undefined ? { code } : { code, syscall })
    /** fetch wraps every transport failure in `TypeError: fetch failed`. */
    const viaFetch = (cause: unknown) => new TypeError("fetch failed", { cause })
    const connectionError = (error: HttpClientError.HttpClientError) =>
      expectTag(classify.fromHttpClientError(error, context), "ConnectionError")

    it.effect("nothing was sent when the connection was refused or the host not found, directly or via fetch", () =>
      Effect.sync(() => {
        const causes = [
          systemError("connect ECONNREFUSED 127.0.0.1:1", "ECONNREFUSED", "connect"),
          systemError("getaddrinfo ENOTFOUND api.inference.wandb.ai", "ENOTFOUND", "getaddrinfo"),
          systemError("getaddrinfo EAI_AGAIN api.inference.wandb.ai", "EAI_AGAIN", "getaddrinfo"),
          systemError("connect ETIMEDOUT 10.0.0.1:443", "ETIMEDOUT", "connect"),
          systemError("Connect Timeout Error", "UND_ERR_CONNECT_TIMEOUT")
        ]
        for (const cause of causes) {
          for (const wrapped of [cause, viaFetch(cause)]) {
            const error = connectionError(transport(wrapped))
            assert.isFalse(error.sent, cause.message)
            assert.include(error.message, "Nothing was sent")
            assert.include(error.description, cause.code)
          }
        }
      }))

    it.effect("nothing was sent when the TLS handshake failed", () =>
      Effect.sync(() => {
        for (
          const code of [
            "DEPTH_ZERO_SELF_SIGNED_CERT",
            "SELF_SIGNED_CERT_IN_CHAIN",
            "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
            "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
            "CERT_HAS_EXPIRED",
            "ERR_TLS_CERT_ALTNAME_INVALID",
            "ERR_SSL_WRONG_VERSION_NUMBER"
          ]
        ) {
          assert.isFalse(connectionError(transport(viaFetch(systemError("tls", code)))).sent, code)
        }
      }))

    it.effect("nothing was sent when every address of the host refused (an AggregateError)", () =>
      Effect.sync(() => {
        const refused = (address: string) => systemError(`connect ECONNREFUSED ${address}`, "ECONNREFUSED", "connect")
        const all = new AggregateError([refused("127.0.0.1:1"), refused("[::1]:1")], "")
        assert.isFalse(connectionError(transport(viaFetch(all))).sent)
        const mixed = new AggregateError([refused("127.0.0.1:1"), systemError("read ECONNRESET", "ECONNRESET", "read")])
        assert.isTrue(connectionError(transport(mixed)).sent)
      }))

    it.effect("nothing was sent for an invalid URL or a body that could not be encoded", () =>
      Effect.sync(() => {
        for (const reason of ["InvalidUrl", "Encode"] as const) {
          const error = connectionError(new HttpClientError.RequestError({ request, reason, cause: new Error("bad") }))
          assert.isFalse(error.sent, reason)
        }
        const fetchUrl = viaFetch(Object.assign(new TypeError("Invalid URL"), { code: "ERR_INVALID_URL" }))
        assert.isFalse(connectionError(transport(fetchUrl)).sent)
      }))

    it.effect("the request may have been sent when the socket broke after connecting", () =>
      Effect.sync(() => {
        const causes = [
          systemError("read ECONNRESET", "ECONNRESET", "read"),
          systemError("socket hang up", "ECONNRESET"),
          systemError("other side closed", "UND_ERR_SOCKET"),
          new Error("aborted"),
          "something odd"
        ]
        for (const cause of causes) {
          const error = connectionError(transport(viaFetch(cause)))
          assert.isTrue(error.sent, String(cause))
          assert.notInclude(error.message, "Nothing was sent")
        }
      }))

    it.effect("a body cut while read was sent: there was a response", () =>
      Effect.sync(() => {
        const response = HttpClientResponse.fromWeb(request, new Response("partial", { status: 200 }))
        const error = connectionError(
          new HttpClientError.ResponseError({
            request,
            response,
            reason: "Decode",
            cause: new TypeError("terminated", { cause: systemError("other side closed", "UND_ERR_SOCKET") })
          })
        )
        assert.isTrue(error.sent)
        assert.strictEqual(error.status, 200)
      }))

    it.effect("a stream that ended before its first content was sent", () =>
      Effect.sync(() => {
        const response = HttpClientResponse.fromWeb(request, new Response("", { status: 200 }))
        assert.isTrue(expectTag(classify.truncated(response, context), "ConnectionError").sent)
      }))
  })

  describe("fromHttpClientError against real transports on loopback", () => {
    /** A port nothing listens on: taken, then given back. */
    const closedPort = Effect.promise(() =>
      new Promise<number>((resolve) => {
        const server = net.createServer()
        server.listen(0, "127.0.0.1", () => {
          const { port } = server.address() as AddressInfo
          server.close(() => resolve(port))
        })
      })
    )
    /** A server that resets every connection once the request has arrived. */
    const resetting = Effect.acquireRelease(
      Effect.promise(() =>
        new Promise<http.Server>((resolve) => {
          const server = http.createServer((req) => req.socket.resetAndDestroy())
          server.listen(0, "127.0.0.1", () => resolve(server))
        })
      ),
      (server) => Effect.promise(() => new Promise<void>((resolve) => server.close(() => resolve())))
    )
    const transports = [
      ["fetch", FetchHttpClient.layer],
      ["UndiciHttpClient", UndiciHttpClient.layer]
    ] as const
    const attempt = (url: string) =>
      Effect.flatMap(HttpClient.HttpClient, (client) => client.post(url, { body: undefined })).pipe(
        Effect.flatMap((response) => response.text),
        Effect.flip,
        Effect.map((error) => expectTag(classify.fromHttpClientError(error, context), "ConnectionError"))
      )

    for (const [name, layer] of transports) {
      it.live(`${name}: a refused connection is a ConnectionError with sent false`, () =>
        Effect.gen(function*() {
          const port = yield* closedPort
          const error = yield* attempt(`http://127.0.0.1:${port}/v1/chat/completions`)
          assert.isFalse(error.sent)
          assert.include(error.description, "ECONNREFUSED")
        }).pipe(Effect.provide(layer)))

      it.live(`${name}: a connection reset after the request arrived is a ConnectionError with sent true`, () =>
        Effect.gen(function*() {
          const server = yield* resetting
          const { port } = server.address() as AddressInfo
          const error = yield* attempt(`http://127.0.0.1:${port}/v1/chat/completions`)
          assert.isTrue(error.sent)
        }).pipe(Effect.scoped, Effect.provide(layer)))
    }
  })
})
