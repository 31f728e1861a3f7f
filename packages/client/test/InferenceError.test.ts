import { assert, describe, it } from "@effect/vitest"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Equal from "effect/Equal"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as InferenceError from "../src/InferenceError.js"
import { MODEL } from "./utils/Client.js"
import { everyError, everyErrorList, fullFields, REQUEST_ID } from "./utils/Errors.js"

type Fields = typeof fullFields
type Tag = InferenceError.InferenceError["_tag"]

/** Builds each class that carries the response fields, adding what else it needs. */
const responseErrors: ReadonlyArray<{
  readonly tag: Tag
  readonly make: (fields: Partial<Fields>) => InferenceError.InferenceError
  /** Words of the actionable hint that must appear in the message. */
  readonly hints: ReadonlyArray<string>
}> = [
  {
    tag: "BadRequestError",
    make: (f) => new InferenceError.BadRequestError(f),
    hints: ["Bad request", "change it before trying again"]
  },
  {
    tag: "AuthenticationError",
    make: (f) => new InferenceError.AuthenticationError(f),
    hints: ["Authentication failed", "API key", "WANDB_API_KEY", "WANDB_PROJECT"]
  },
  {
    tag: "QuotaExceededError",
    make: (f) => new InferenceError.QuotaExceededError(f),
    hints: ["Quota exceeded", "billing"]
  },
  {
    tag: "PermissionDeniedError",
    make: (f) => new InferenceError.PermissionDeniedError({ ...f, reason: "Other" }),
    hints: ["Permission denied", "permissions"]
  },
  {
    tag: "NotFoundError",
    make: (f) => new InferenceError.NotFoundError(f),
    hints: ["Not found", "listModels()"]
  },
  {
    tag: "ConflictError",
    make: (f) => new InferenceError.ConflictError(f),
    hints: ["Conflict", "safe to try again"]
  },
  {
    tag: "UnprocessableEntityError",
    make: (f) => new InferenceError.UnprocessableEntityError(f),
    hints: ["Unprocessable request", "not supported by this model"]
  },
  {
    tag: "RateLimitError",
    make: (f) => new InferenceError.RateLimitError(f),
    hints: ["Rate limited", "maxConcurrency"]
  },
  {
    tag: "InternalServerError",
    make: (f) => new InferenceError.InternalServerError(f),
    hints: ["Server error", "30-60 s"]
  },
  {
    tag: "ServiceUnavailableError",
    make: (f) => new InferenceError.ServiceUnavailableError(f),
    hints: ["Service unavailable", "overloaded", "60-120 s"]
  },
  {
    tag: "UnexpectedStatusError",
    make: (f) => new InferenceError.UnexpectedStatusError(f),
    hints: ["Unexpected status"]
  },
  {
    tag: "ConnectionError",
    make: (f) => new InferenceError.ConnectionError({ ...f, description: "ECONNREFUSED", sent: false }),
    hints: ["Connection failed", "ECONNREFUSED", "network", "base URL"]
  },
  {
    tag: "TimeoutError",
    make: (f) => new InferenceError.TimeoutError({ ...f, phase: "attempt", timeout: Duration.seconds(5) }),
    hints: ["did not finish within its timeout of 5s", "Raise timeout"]
  },
  {
    tag: "ResponseDecodeError",
    make: (f) => new InferenceError.ResponseDecodeError({ ...f, description: "choices: expected array" }),
    hints: ["Could not decode the response", "choices: expected array", "base URL"]
  }
]

describe("InferenceError", () => {
  describe("message", () => {
    for (const row of responseErrors) {
      it.effect(`${row.tag} has a message with its summary and hint`, () =>
        Effect.sync(() => {
          const error = row.make({})
          assert.strictEqual(error._tag, row.tag)
          for (const hint of row.hints) assert.include(error.message, hint)
        }))

      it.effect(`${row.tag} puts status, model, server message, retryAfter, attempts and request id in its message`, () =>
        Effect.sync(() => {
          const error = row.make({ ...fullFields, status: 499 })
          assert.include(error.message, "(HTTP 499)")
          assert.include(error.message, `for model "${MODEL}"`)
          assert.include(error.message, "retry after 7s")
          assert.include(error.message, "3 attempts")
          assert.include(error.message, `request id ${REQUEST_ID}`)
          for (const hint of row.hints) assert.include(error.message, hint)
        }))

      it.effect(`${row.tag} leaves unset fields out of its message`, () =>
        Effect.sync(() => {
          const message = row.make({}).message
          assert.notInclude(message, "HTTP")
          assert.notInclude(message, "for model")
          assert.notInclude(message, "retry after")
          assert.notInclude(message, "attempts")
          assert.notInclude(message, "request id")
          assert.notInclude(message, "[")
        }))
    }

    it.effect("the full message reads summary, status, model, server text, hint, then notes", () =>
      Effect.sync(() => {
        const error = new InferenceError.RateLimitError({
          status: 429,
          model: MODEL,
          scope: "project",
          serverMessage: "Concurrency limit reached",
          retryAfter: Option.some(Duration.millis(1500)),
          attempts: 2,
          requestId: "req-1"
        })
        assert.strictEqual(
          error.message,
          `Rate limited (HTTP 429) for model "${MODEL}": Concurrency limit reached. ` +
            "Concurrency limit reached for the project: lower maxConcurrency or spread calls over more projects " +
            "[retry after 1s 500ms, 2 attempts, request id req-1]"
        )
      }))

    describe("RateLimitError names whose limit was reached and advises lowering maxConcurrency", () => {
      const message = (fields: ConstructorParameters<typeof InferenceError.RateLimitError>[0]) =>
        new InferenceError.RateLimitError({ status: 429, model: MODEL, ...fields }).message

      it.effect("a project's limit for the call's own model", () =>
        Effect.sync(() => {
          assert.include(
            message({ scope: "project", limitedModel: MODEL }),
            "Concurrency limit reached for the project on this model: lower maxConcurrency"
          )
        }))

      it.effect("a project's limit for another model names that model", () =>
        Effect.sync(() => {
          assert.include(
            message({ scope: "project", limitedModel: "zai-org/GLM-5.2" }),
            "Concurrency limit reached for the project on model \"zai-org/GLM-5.2\": lower maxConcurrency"
          )
        }))

      it.effect("a user's limit says all of the user's projects share it", () =>
        Effect.sync(() => {
          const text = message({ scope: "user", limitedModel: MODEL })
          assert.include(text, "Concurrency limit reached for the user on this model")
          assert.include(text, "shared by all of the user's projects")
          assert.include(text, "lower maxConcurrency")
        }))

      it.effect("a model's limit suggests another model", () =>
        Effect.sync(() => {
          const text = message({ scope: "model", limitedModel: "zai-org/GLM-5.2" })
          assert.include(text, "Concurrency limit reached for the model \"zai-org/GLM-5.2\", shared by all its callers")
          assert.include(text, "fall back to another model")
          assert.include(text, "lower maxConcurrency")
        }))

      it.effect("an unknown scope claims no project, user or model", () =>
        Effect.sync(() => {
          const text = message({})
          assert.include(text, "Concurrency limit reached: lower maxConcurrency")
          assert.notInclude(text, "for the project")
          assert.notInclude(text, "for the user")
        }))

      it.effect("scope defaults to unknown, and an encoded error without one (0.1.0) decodes to unknown", () =>
        Effect.gen(function*() {
          assert.strictEqual(new InferenceError.RateLimitError({ status: 429 }).scope, "unknown")
          const encoded = yield* Schema.encode(InferenceError.InferenceError)(
            new InferenceError.RateLimitError({ status: 429 })
          )
          const old = Object.fromEntries(Object.entries(encoded).filter(([key]) => key !== "scope"))
          const decoded = yield* Schema.decodeUnknown(InferenceError.InferenceError)(old)
          assert.strictEqual(decoded._tag, "RateLimitError")
          if (decoded._tag === "RateLimitError") assert.strictEqual(decoded.scope, "unknown")
        }))

      it.effect("RateLimitScope is a schema of the four scopes", () =>
        Effect.sync(() => {
          for (const scope of ["model", "project", "user", "unknown"]) {
            assert.isTrue(Schema.is(InferenceError.RateLimitScope)(scope), scope)
          }
          assert.isFalse(Schema.is(InferenceError.RateLimitScope)("organization"))
        }))
    })

    describe("NotFoundError says what was not found and what to check", () => {
      const BASE_URL = "http://localhost:8000/v1"

      it.effect("a model: listModels(), and nothing about the URL", () =>
        Effect.sync(() => {
          const text = new InferenceError.NotFoundError({ status: 404, resource: "model", baseUrl: BASE_URL }).message
          assert.include(text, "The model id is wrong or retired: call listModels() for the current ones")
          assert.notInclude(text, "baseUrl")
          assert.notInclude(text, BASE_URL)
        }))

      it.effect("a path: the baseUrl used and the expected one, and nothing about models", () =>
        Effect.sync(() => {
          const text = new InferenceError.NotFoundError({ status: 404, resource: "path", baseUrl: BASE_URL }).message
          assert.include(
            text,
            `check baseUrl: it was "${BASE_URL}", W&B Inference's is https://api.inference.wandb.ai/v1`
          )
          assert.notInclude(text, "listModels()")
        }))

      it.effect("a path without a known baseUrl still names the option and the expected form", () =>
        Effect.sync(() => {
          const text = new InferenceError.NotFoundError({ status: 404, resource: "path" }).message
          assert.include(text, "check baseUrl (W&B Inference's is https://api.inference.wandb.ai/v1)")
        }))

      it.effect("unknown: both the model and the URL", () =>
        Effect.sync(() => {
          const error = new InferenceError.NotFoundError({ status: 404, baseUrl: BASE_URL })
          assert.strictEqual(error.resource, "unknown", "the default")
          assert.include(error.message, "listModels()")
          assert.include(error.message, `it was "${BASE_URL}"`)
          assert.include(error.message, "https://api.inference.wandb.ai/v1")
        }))

      it.effect("a NotFoundError of any resource is not retryable", () =>
        Effect.sync(() => {
          for (const resource of ["model", "path", "unknown"] as const) {
            assert.isFalse(InferenceError.isRetryable(new InferenceError.NotFoundError({ status: 404, resource })))
          }
        }))
    })

    it.effect("ConnectionError says nothing was sent only when nothing was", () =>
      Effect.sync(() => {
        const refused = new InferenceError.ConnectionError({ description: "ECONNREFUSED", sent: false }).message
        const reset = new InferenceError.ConnectionError({ description: "ECONNRESET", sent: true }).message
        assert.include(refused, "Nothing was sent: check the network and the base URL")
        assert.notInclude(reset, "Nothing was sent")
        assert.include(reset, "Check the network and the base URL")
      }))

    it.effect("the server's message is quoted, an empty one is left out", () =>
      Effect.sync(() => {
        assert.include(
          new InferenceError.BadRequestError({ serverMessage: "max_tokens is too large" }).message,
          ": max_tokens is too large."
        )
        assert.strictEqual(
          new InferenceError.BadRequestError({ serverMessage: "" }).message,
          new InferenceError.BadRequestError({}).message
        )
      }))

    it.effect("InvalidRequestError names the path and the issue, and says nothing was sent", () =>
      Effect.sync(() => {
        const error = new InferenceError.InvalidRequestError({ path: "temperature", issue: "Expected <= 2, actual 3" })
        assert.strictEqual(
          error.message,
          "Invalid request at temperature: Expected <= 2, actual 3. Fix the field; nothing was sent"
        )
        assert.strictEqual(error.attempts, 0)
      }))

    const reasons: ReadonlyArray<[InferenceError.PermissionDeniedReason, ReadonlyArray<string>]> = [
      ["RegionNotSupported", ["country, region or territory"]],
      ["InferenceNotEnabled", ["not enabled for the organization", "admin"]],
      ["PersonalAccount", ["personal accounts", "team entity"]],
      ["Other", ["team/project", "permissions"]]
    ]
    for (const [reason, hints] of reasons) {
      it.effect(`PermissionDeniedError with reason ${reason} gives that reason's hint`, () =>
        Effect.sync(() => {
          const message = new InferenceError.PermissionDeniedError({ status: 403, reason }).message
          assert.include(message, "Permission denied (HTTP 403)")
          for (const hint of hints) assert.include(message, hint)
          for (const [other, otherHints] of reasons) {
            if (other !== reason) assert.notInclude(message, otherHints[0])
          }
        }))
    }

    it.effect("UnexpectedStatusError explains 408 as a server-side read timeout, other statuses as unexpected", () =>
      Effect.sync(() => {
        const timedOut = new InferenceError.UnexpectedStatusError({ status: 408 }).message
        const teapot = new InferenceError.UnexpectedStatusError({ status: 418 }).message
        assert.include(timedOut, "(HTTP 408)")
        assert.include(timedOut, "timed out reading the request")
        assert.include(teapot, "(HTTP 418)")
        assert.include(teapot, "status this client does not expect")
        assert.notInclude(teapot, "timed out")
      }))

    it.effect("TimeoutError says which bound was hit, how long it was, and which option to raise", () =>
      Effect.sync(() => {
        const attempt = new InferenceError.TimeoutError({ phase: "attempt", timeout: Duration.seconds(5) }).message
        const total = new InferenceError.TimeoutError({
          phase: "total",
          timeout: Duration.seconds(30),
          attempts: 2
        }).message
        assert.include(attempt, "An attempt did not finish within its timeout of 5s")
        assert.include(attempt, "Raise timeout")
        assert.notInclude(attempt, "totalTimeout")
        assert.include(total, "The call did not finish within its total timeout of 30s")
        assert.include(total, "Raise totalTimeout")
        assert.include(total, "[2 attempts]")
      }))
  })

  describe("Schema round trip", () => {
    const encode = Schema.encode(InferenceError.InferenceError)
    const decode = Schema.decodeUnknown(InferenceError.InferenceError)
    /** Encodes, goes through JSON text as across a process boundary, and decodes. */
    const roundTrip = (error: InferenceError.InferenceError) =>
      Effect.flatMap(encode(error), (encoded) => decode(JSON.parse(JSON.stringify(encoded))))

    for (const error of everyErrorList) {
      it.effect(`${error._tag} survives encode, JSON and decode unchanged`, () =>
        Effect.gen(function*() {
          const decoded = yield* roundTrip(error)
          assert.strictEqual(decoded._tag, error._tag)
          assert.strictEqual(decoded.constructor, error.constructor, "the same class")
          assert.isTrue(Equal.equals(decoded, error), `${String(decoded)} equals ${String(error)}`)
          assert.strictEqual(decoded.message, error.message)
          assert.isTrue(InferenceError.isInferenceError(decoded))
        }))
    }

    it.effect("retryAfter Some(duration) survives the trip as the same duration", () =>
      Effect.gen(function*() {
        const error = new InferenceError.RateLimitError({ status: 429, retryAfter: Option.some(Duration.millis(2500)) })
        const decoded = yield* roundTrip(error)
        assert.strictEqual(decoded._tag, "RateLimitError")
        if (decoded._tag === "RateLimitError") {
          assert.isTrue(Option.isSome(decoded.retryAfter))
          assert.strictEqual(Duration.toMillis(Option.getOrThrow(decoded.retryAfter)), 2500)
        }
      }))

    it.effect("retryAfter None survives the trip as None", () =>
      Effect.gen(function*() {
        const error = new InferenceError.ServiceUnavailableError({ status: 503 })
        const decoded = yield* roundTrip(error)
        assert.isTrue(Equal.equals(decoded, error))
        if (decoded._tag === "ServiceUnavailableError") assert.isTrue(Option.isNone(decoded.retryAfter))
      }))

    it.effect("equality used above tells errors apart by any field", () =>
      Effect.sync(() => {
        const a = new InferenceError.RateLimitError({ retryAfter: Option.some(Duration.seconds(7)) })
        assert.isTrue(
          Equal.equals(a, new InferenceError.RateLimitError({ retryAfter: Option.some(Duration.seconds(7)) }))
        )
        assert.isFalse(
          Equal.equals(a, new InferenceError.RateLimitError({ retryAfter: Option.some(Duration.seconds(8)) }))
        )
        assert.isFalse(Equal.equals(a, new InferenceError.RateLimitError({})))
        assert.isFalse(
          Equal.equals(a, new InferenceError.ConflictError({ retryAfter: Option.some(Duration.seconds(7)) }))
        )
      }))

    it.effect("a value with an unknown tag does not decode", () =>
      Effect.gen(function*() {
        const exit = yield* Effect.exit(decode({ _tag: "MadeUpError", retryAfter: { _tag: "None" }, attempts: 1 }))
        assert.isTrue(Exit.isFailure(exit))
      }))
  })

  describe("isInferenceError", () => {
    for (const error of everyErrorList) {
      it.effect(`is true for ${error._tag}`, () =>
        Effect.sync(() => {
          assert.isTrue(InferenceError.isInferenceError(error))
        }))
    }

    class LookAlike extends Data.TaggedError("RateLimitError")<{ readonly status: number }> {}
    const others: ReadonlyArray<[string, unknown]> = [
      ["a plain Error", new Error("Rate limited")],
      ["an Effect tagged error with one of our tags", new LookAlike({ status: 429 })],
      ["a plain object with one of our tags", { _tag: "RateLimitError", status: 429, message: "Rate limited" }],
      [
        "an encoded error, before decoding",
        Schema.encodeSync(InferenceError.InferenceError)(everyError.RateLimitError)
      ],
      ["an empty object", {}],
      ["null", null],
      ["undefined", undefined],
      ["a string", "RateLimitError"]
    ]
    for (const [name, value] of others) {
      it.effect(`is false for ${name}`, () =>
        Effect.sync(() => {
          assert.isFalse(InferenceError.isInferenceError(value))
        }))
    }
  })

  describe("isRetryable", () => {
    const expected: { readonly [T in Tag]: boolean } = {
      InvalidRequestError: false,
      BadRequestError: false,
      AuthenticationError: false,
      QuotaExceededError: false,
      PermissionDeniedError: false,
      NotFoundError: false,
      ConflictError: true,
      UnprocessableEntityError: false,
      RateLimitError: true,
      InternalServerError: true,
      ServiceUnavailableError: true,
      // the sample is a 408
      UnexpectedStatusError: true,
      ConnectionError: true,
      // the sample is an attempt timeout
      TimeoutError: true,
      ResponseDecodeError: false,
      CircuitOpenError: false,
      BudgetExceededError: false,
      CoordinationError: false
    }
    for (const error of everyErrorList) {
      it.effect(`${error._tag} is ${expected[error._tag] ? "" : "not "}retryable`, () =>
        Effect.sync(() => {
          assert.strictEqual(InferenceError.isRetryable(error), expected[error._tag])
        }))
    }

    it.effect("a TimeoutError is retryable for one attempt, not for the whole call", () =>
      Effect.sync(() => {
        const timeout = Duration.seconds(10)
        assert.isTrue(InferenceError.isRetryable(new InferenceError.TimeoutError({ phase: "attempt", timeout })))
        assert.isFalse(InferenceError.isRetryable(new InferenceError.TimeoutError({ phase: "total", timeout })))
      }))

    it.effect("an UnexpectedStatusError is retryable for 408 only", () =>
      Effect.sync(() => {
        assert.isTrue(InferenceError.isRetryable(new InferenceError.UnexpectedStatusError({ status: 408 })))
        for (const status of [418, 407, 409, 451, undefined]) {
          assert.isFalse(
            InferenceError.isRetryable(new InferenceError.UnexpectedStatusError({ status })),
            `status ${status}`
          )
        }
      }))

    it.effect("a retryAfter does not make a non-retryable error retryable", () =>
      Effect.sync(() => {
        const retryAfter = Option.some(Duration.seconds(1))
        assert.isFalse(InferenceError.isRetryable(new InferenceError.QuotaExceededError({ status: 429, retryAfter })))
        assert.isFalse(InferenceError.isRetryable(new InferenceError.AuthenticationError({ status: 401, retryAfter })))
      }))
  })
  describe("wasSent", () => {
    const expected: { readonly [T in Tag]: boolean } = {
      InvalidRequestError: false,
      BadRequestError: true,
      AuthenticationError: true,
      QuotaExceededError: true,
      PermissionDeniedError: true,
      NotFoundError: true,
      ConflictError: true,
      UnprocessableEntityError: true,
      RateLimitError: true,
      InternalServerError: true,
      ServiceUnavailableError: true,
      UnexpectedStatusError: true,
      // the sample's socket was reset: the request may have gone out
      ConnectionError: true,
      TimeoutError: true,
      ResponseDecodeError: true,
      CircuitOpenError: false,
      BudgetExceededError: false,
      CoordinationError: false
    }
    for (const error of everyErrorList) {
      it.effect(`${error._tag} was ${expected[error._tag] ? "" : "not "}sent`, () =>
        Effect.sync(() => {
          assert.strictEqual(InferenceError.wasSent(error), expected[error._tag])
        }))
    }

    it.effect("a ConnectionError was sent as its sent field says", () =>
      Effect.sync(() => {
        assert.isFalse(InferenceError.wasSent(new InferenceError.ConnectionError({ description: "x", sent: false })))
        assert.isTrue(InferenceError.wasSent(new InferenceError.ConnectionError({ description: "x", sent: true })))
      }))

    it.effect("sent survives encode and decode", () =>
      Effect.gen(function*() {
        const error = new InferenceError.ConnectionError({ description: "ECONNREFUSED", sent: false })
        const encoded = yield* Schema.encode(InferenceError.InferenceError)(error)
        const decoded = yield* Schema.decodeUnknown(InferenceError.InferenceError)(JSON.parse(JSON.stringify(encoded)))
        assert.isTrue(decoded._tag === "ConnectionError" && decoded.sent === false)
      }))
  })
})
