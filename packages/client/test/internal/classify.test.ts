import { assert, describe, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as classify from "../../src/internal/classify.js"
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
})
