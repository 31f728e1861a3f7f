/**
 * The client's methods: what a successful call sends and returns, the error of each status, and the types.
 */
import { assert, describe, expectTypeOf, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type { ChatCompletion } from "../src/ChatCompletion.js"
import type * as InferenceClient from "../src/InferenceClient.js"
import type * as InferenceError from "../src/InferenceError.js"
import { callHello as call, failureOf, hello, MODEL, SECRET, withClient } from "./utils/Client.js"
import { everyError } from "./utils/Errors.js"
import * as Fake from "./utils/FakeTransport.js"

describe("InferenceClient", () => {
  describe("a successful call", () => {
    it.effect("returns the decoded completion", () =>
      Effect.gen(function*() {
        const { exit, fake } = yield* call([Fake.completion("Hi there")])
        assert.isTrue(Exit.isSuccess(exit))
        if (Exit.isSuccess(exit)) assert.strictEqual(exit.value.choices[0].message.content, "Hi there")
        assert.strictEqual(fake.requests.length, 1)
      }))

    it.effect("posts to <baseUrl>/chat/completions with the bearer token, project and a non-streaming body", () =>
      Effect.gen(function*() {
        const { fake } = yield* call([Fake.completion()])
        const request = fake.requests[0]
        assert.strictEqual(request.method, "POST")
        assert.strictEqual(request.url, "http://inference.test/v1/chat/completions")
        assert.strictEqual(request.headers["authorization"], `Bearer ${SECRET}`)
        assert.strictEqual(request.headers["openai-project"], "team/project")
        assert.deepStrictEqual(request.body, { ...hello, stream: false })
      }))

    it.effect("sends no OpenAI-Project header when no project is set", () =>
      Effect.gen(function*() {
        const { fake } = yield* call([Fake.completion()], { project: undefined })
        assert.isUndefined(fake.requests[0].headers["openai-project"])
      }))

    it.effect("lists models from GET /models", () =>
      Effect.gen(function*() {
        const fake = Fake.make([Fake.json(200, {
          object: "list",
          data: [
            { id: MODEL, object: "model", created: 1, owned_by: "meta" },
            { id: "deepseek-ai/DeepSeek-V3.1", object: "model", created: 2, owned_by: "deepseek" }
          ]
        })])
        const models = yield* withClient(fake, (client) => client.listModels())
        assert.deepStrictEqual(models.map((m) => m.id), [MODEL, "deepseek-ai/DeepSeek-V3.1"])
        assert.strictEqual(fake.requests[0].method, "GET")
        assert.strictEqual(fake.requests[0].url, "http://inference.test/v1/models")
      }))

    it.effect("succeeds after retryable failures and reports nothing of them to the caller", () =>
      Effect.gen(function*() {
        const { exit, fake } = yield* call([
          Fake.json(503, Fake.errorBody("The engine is currently overloaded, please try again later")),
          Fake.json(500, Fake.errorBody("The server had an error while processing your request")),
          Fake.completion("finally")
        ])
        assert.isTrue(Exit.isSuccess(exit))
        assert.strictEqual(fake.requests.length, 3)
      }))
  })

  describe("one error per row of the table", () => {
    // [name, status, body, expected tag, retried, extra check]
    const rows: ReadonlyArray<{
      readonly name: string
      readonly reply: () => Fake.Reply
      readonly tag: InferenceError.InferenceError["_tag"]
      readonly retried: boolean
      readonly check?: (error: InferenceError.InferenceError) => void
    }> = [
      {
        name: "400 is BadRequestError with the server's message",
        reply: () => Fake.json(400, Fake.errorBody("max_tokens is too large", { param: "max_tokens" })),
        tag: "BadRequestError",
        retried: false,
        check: (e) => {
          assert.include(e.message, "max_tokens is too large")
          assert.strictEqual("param" in e ? e.param : undefined, "max_tokens")
        }
      },
      {
        name: "401 is AuthenticationError pointing at the key and project",
        reply: () => Fake.json(401, Fake.errorBody("Authentication failed")),
        tag: "AuthenticationError",
        retried: false,
        check: (e) => assert.include(e.message, "API key")
      },
      {
        name: "402 is QuotaExceededError",
        reply: () =>
          Fake.json(402, Fake.errorBody("You exceeded your current quota, please check your plan and billing details")),
        tag: "QuotaExceededError",
        retried: false,
        check: (e) => assert.include(e.message, "billing")
      },
      {
        name: "429 with code insufficient_quota is QuotaExceededError",
        reply: () => Fake.json(429, Fake.errorBody("Out of credits", { code: "insufficient_quota" })),
        tag: "QuotaExceededError",
        retried: false
      },
      {
        name: "429 worded as quota is QuotaExceededError",
        reply: () =>
          Fake.json(429, Fake.errorBody("You exceeded your current quota, please check your plan and billing details")),
        tag: "QuotaExceededError",
        retried: false
      },
      {
        name: "403 region is PermissionDeniedError RegionNotSupported",
        reply: () => Fake.json(403, Fake.errorBody("Country, region, or territory not supported")),
        tag: "PermissionDeniedError",
        retried: false,
        check: (e) => assert.strictEqual("reason" in e ? e.reason : undefined, "RegionNotSupported")
      },
      {
        name: "403 gateway not enabled is PermissionDeniedError InferenceNotEnabled",
        reply: () => Fake.json(403, Fake.errorBody("The inference gateway is not enabled for your organization")),
        tag: "PermissionDeniedError",
        retried: false,
        check: (e) => assert.strictEqual("reason" in e ? e.reason : undefined, "InferenceNotEnabled")
      },
      {
        name: "403 otherwise is PermissionDeniedError Other",
        reply: () => Fake.json(403, { detail: "Forbidden" }),
        tag: "PermissionDeniedError",
        retried: false,
        check: (e) => assert.strictEqual("reason" in e ? e.reason : undefined, "Other")
      },
      {
        name: "429 for a personal account is PermissionDeniedError PersonalAccount, not retried",
        reply: () => Fake.json(429, Fake.errorBody("W&B Inference isn't available for personal accounts")),
        tag: "PermissionDeniedError",
        retried: false,
        check: (e) => assert.strictEqual("reason" in e ? e.reason : undefined, "PersonalAccount")
      },
      {
        name: "404 is NotFoundError pointing at listModels",
        reply: () => Fake.json(404, Fake.errorBody("The requested resource was not found")),
        tag: "NotFoundError",
        retried: false,
        check: (e) => {
          assert.include(e.message, "listModels")
          assert.include(e.message, MODEL)
        }
      },
      {
        name: "409 is ConflictError, retried",
        reply: () => Fake.json(409, Fake.errorBody("Conflict")),
        tag: "ConflictError",
        retried: true
      },
      {
        name: "422 is UnprocessableEntityError",
        reply: () => Fake.json(422, { detail: [{ loc: ["body", "n"], msg: "n must be 1", type: "value_error" }] }),
        tag: "UnprocessableEntityError",
        retried: false,
        check: (e) => assert.include(e.message, "n must be 1")
      },
      {
        name: "429 concurrency is RateLimitError, retried",
        reply: () => Fake.json(429, Fake.errorBody("Concurrency limit reached for requests")),
        tag: "RateLimitError",
        retried: true,
        check: (e) => assert.include(e.message, "Concurrency limit")
      },
      {
        name: "500 is InternalServerError, retried",
        reply: () => Fake.json(500, Fake.errorBody("The server had an error while processing your request")),
        tag: "InternalServerError",
        retried: true
      },
      {
        name: "502 is InternalServerError, retried",
        reply: () => Fake.text(502, "<html>Bad Gateway</html>"),
        tag: "InternalServerError",
        retried: true
      },
      {
        name: "504 is InternalServerError, retried",
        reply: () => Fake.text(504, ""),
        tag: "InternalServerError",
        retried: true
      },
      {
        name: "599 is InternalServerError, retried",
        reply: () => Fake.text(599, ""),
        tag: "InternalServerError",
        retried: true
      },
      {
        name: "503 is ServiceUnavailableError, retried",
        reply: () => Fake.json(503, Fake.errorBody("The engine is currently overloaded, please try again later")),
        tag: "ServiceUnavailableError",
        retried: true,
        check: (e) => assert.include(e.message, "overloaded")
      },
      {
        name: "408 is UnexpectedStatusError, retried",
        reply: () => Fake.text(408, "Request Timeout"),
        tag: "UnexpectedStatusError",
        retried: true
      },
      {
        name: "418 is UnexpectedStatusError, not retried",
        reply: () => Fake.text(418, "I'm a teapot"),
        tag: "UnexpectedStatusError",
        retried: false
      },
      {
        name: "a connection reset is ConnectionError, retried",
        reply: () => Fake.reset,
        tag: "ConnectionError",
        retried: true,
        check: (e) => assert.include(e.message, "ECONNRESET")
      },
      {
        name: "a 2xx body that is not JSON is ResponseDecodeError",
        reply: () => Fake.text(200, "<html>not json</html>"),
        tag: "ResponseDecodeError",
        retried: false
      },
      {
        name: "a 2xx JSON body of the wrong shape is ResponseDecodeError",
        reply: () => Fake.json(200, { id: "x", choices: "none" }),
        tag: "ResponseDecodeError",
        retried: false,
        check: (e) => {
          // names the fields that did not match, briefly
          assert.include(e.message, "created: is missing")
          assert.notInclude(e.message, "Encoded side")
        }
      }
    ]

    for (const row of rows) {
      it.effect(row.name, () =>
        Effect.gen(function*() {
          const { exit, fake } = yield* call([row.reply()])
          const error = failureOf(exit)
          assert.strictEqual(error._tag, row.tag)
          const expected = row.retried ? 4 : 1
          assert.strictEqual(fake.requests.length, expected, "HTTP attempts")
          assert.strictEqual(error.attempts, expected, "attempts on the error")
          row.check?.(error)
        }))
    }

    it.effect("an attempt that outlives timeout is TimeoutError (attempt), retried, and aborts the request", () =>
      Effect.gen(function*() {
        const { exit, fake } = yield* call([Fake.hang], { timeout: "5 seconds" })
        const error = failureOf(exit)
        assert.strictEqual(error._tag, "TimeoutError")
        if (error._tag === "TimeoutError") assert.strictEqual(error.phase, "attempt")
        assert.strictEqual(fake.requests.length, 4)
        assert.isTrue(fake.requests.every((r) => r.signal.aborted), "every timed-out request was aborted")
      }))

    it.effect("totalTimeout ends the call with TimeoutError (total), not retried further", () =>
      Effect.gen(function*() {
        const { exit, fake } = yield* call([Fake.hang], { timeout: "10 seconds", totalTimeout: "15 seconds" })
        const error = failureOf(exit)
        assert.strictEqual(error._tag, "TimeoutError")
        if (error._tag === "TimeoutError") {
          assert.strictEqual(error.phase, "total")
          assert.strictEqual(error.attempts, 2)
          assert.isTrue(Duration.equals(error.timeout, Duration.seconds(15)))
        }
        // attempt 1 at 0 s, times out at 10 s, waits 1 s, attempt 2 at 11 s, cut at 15 s
        assert.deepStrictEqual(fake.requests.map((r) => r.at), [0, 11_000])
        assert.isTrue(fake.requests[1].signal.aborted)
      }))

    it.effect("a request that fails its schema is InvalidRequestError and sends nothing", () =>
      Effect.gen(function*() {
        const fake = Fake.make([Fake.completion()])
        const exit = yield* withClient(fake, (client) => client.chatCompletion({ ...hello, temperature: 3 })).pipe(
          Effect.exit
        )
        const error = failureOf(exit)
        assert.strictEqual(error._tag, "InvalidRequestError")
        if (error._tag === "InvalidRequestError") assert.strictEqual(error.path, "temperature")
        assert.strictEqual(error.attempts, 0)
        assert.strictEqual(fake.requests.length, 0)
      }))
  })

  describe("types", () => {
    it("the error channel of every method is exactly InferenceError", () => {
      expectTypeOf<Effect.Effect.Error<ReturnType<InferenceClient.InferenceClient.Service["chatCompletion"]>>>()
        .toEqualTypeOf<InferenceError.InferenceError>()
      expectTypeOf<Effect.Effect.Error<ReturnType<InferenceClient.InferenceClient.Service["listModels"]>>>()
        .toEqualTypeOf<InferenceError.InferenceError>()
      expectTypeOf<Effect.Effect.Success<ReturnType<InferenceClient.InferenceClient.Service["chatCompletion"]>>>()
        .toEqualTypeOf<ChatCompletion>()
      // everyError is keyed by every tag of the union: a dropped or added tag fails to compile there
      assert.deepStrictEqual(Object.values(everyError).map((e) => e._tag), Object.keys(everyError))
    })
  })
})
