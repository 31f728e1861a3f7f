import * as Headers from "@effect/platform/Headers"
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import { assert, describe, expectTypeOf, it } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Chunk from "effect/Chunk"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Schedule from "effect/Schedule"
import * as Stream from "effect/Stream"
import type { ChatCompletion } from "../src/ChatCompletion.js"
import * as CircuitBreaker from "../src/CircuitBreaker.js"
import * as InferenceClient from "../src/InferenceClient.js"
import type * as InferenceError from "../src/InferenceError.js"
import * as ResponseCache from "../src/ResponseCache.js"
import type * as RetryPolicy from "../src/RetryPolicy.js"
import * as Capture from "./utils/Capture.js"
import { hello, layer, MODEL, SECRET, testOptions, withClient } from "./utils/Client.js"
import { everyError } from "./utils/Errors.js"
import * as Fake from "./utils/FakeTransport.js"
import { refusesEach } from "./utils/Options.js"

const failureOf = <A, E>(exit: Exit.Exit<A, E>): E => {
  const failure = Exit.isFailure(exit) ? Cause.failureOption(exit.cause) : Option.none()
  assert.isTrue(Option.isSome(failure), `expected a typed failure, got ${String(exit)}`)
  return Option.getOrThrow(failure)
}

/** Runs `hello` against a fake playing `script`, on the TestClock; returns the exit and the fake. */
const call = (script: ReadonlyArray<Fake.Reply>, options: Partial<InferenceClient.Options> = {}) =>
  Effect.gen(function*() {
    const fake = Fake.make(script)
    const exit = yield* Fake.runWithClock(withClient(fake, (client) => client.chatCompletion(hello), options))
    return { exit, fake }
  })

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

  describe("bodies JSON cannot hold", () => {
    it.effect("a BigInt in tool parameters fails with InvalidRequestError instead of throwing", () =>
      Effect.gen(function*() {
        const fake = Fake.make([Fake.completion()])
        const request = {
          ...hello,
          tools: [{ type: "function" as const, function: { name: "f", parameters: { limit: 1n } } }]
        }
        const error = yield* withClient(
          fake,
          (client) => Effect.flip(Effect.suspend(() => client.chatCompletion(request)))
        )
        assert.strictEqual(error._tag, "InvalidRequestError")
        assert.include(error.message, "JSON")
        assert.strictEqual(fake.requests.length, 0)
      }))
  })

  describe("validateRequest", () => {
    it.effect("accepts what chatCompletion sends and names the wrong field of what it refuses", () =>
      Effect.gen(function*() {
        const ok = yield* InferenceClient.validateRequest(hello)
        assert.strictEqual(ok.model, MODEL)
        const error = yield* Effect.flip(InferenceClient.validateRequest({ ...hello, max_token: 5 }))
        assert.strictEqual(error._tag, "InvalidRequestError")
        assert.strictEqual(error.path, "max_token")
      }))
  })

  describe("retry counts", () => {
    it.effect("a retryable error makes exactly maxRetries + 1 attempts and fails with the last error", () =>
      Effect.gen(function*() {
        const { exit, fake } = yield* call(
          [
            Fake.json(500, Fake.errorBody("first")),
            Fake.json(500, Fake.errorBody("second")),
            Fake.json(503, Fake.errorBody("last"), { "x-request-id": "req-last" })
          ],
          { retry: { maxRetries: 2, jitter: false } }
        )
        const error = failureOf(exit)
        assert.strictEqual(fake.requests.length, 3)
        assert.strictEqual(error._tag, "ServiceUnavailableError")
        assert.strictEqual(error.attempts, 3)
        assert.strictEqual("requestId" in error ? error.requestId : undefined, "req-last")
      }))

    it.effect("retry: false makes exactly one attempt", () =>
      Effect.gen(function*() {
        const { exit, fake } = yield* call([Fake.json(503, Fake.errorBody("busy"))], { retry: false })
        assert.strictEqual(failureOf(exit)._tag, "ServiceUnavailableError")
        assert.strictEqual(fake.requests.length, 1)
      }))

    it.effect("a Schedule given as retry replaces the policy", () =>
      Effect.gen(function*() {
        const { fake } = yield* call([Fake.json(503, Fake.errorBody("busy"))], {
          retry: Schedule.spaced("2 seconds").pipe(Schedule.intersect(Schedule.recurs(1)))
        })
        assert.deepStrictEqual(fake.requests.map((r) => r.at), [0, 2000])
      }))
  })

  describe("backoff timing (TestClock)", () => {
    it.effect("delays grow exponentially and are capped at maxDelay", () =>
      Effect.gen(function*() {
        const { fake } = yield* call([Fake.json(503, Fake.errorBody("busy"))], {
          retry: { maxRetries: 5, baseDelay: "1 second", factor: 2, maxDelay: "5 seconds", jitter: false },
          // five failures in a row would open the default breaker before the sixth attempt
          circuitBreaker: false
        })
        assert.deepStrictEqual(fake.requests.map((r) => r.at), [0, 1000, 3000, 7000, 12_000, 17_000])
      }))

    it.effect("jitter keeps each delay within 80%-120% of the backoff", () =>
      Effect.gen(function*() {
        const { fake } = yield* call([Fake.json(503, Fake.errorBody("busy"))], {
          retry: { maxRetries: 4, baseDelay: "1 second", factor: 2, jitter: true }
        })
        const times = fake.requests.map((r) => r.at)
        const delays = times.slice(1).map((t, i) => t - times[i])
        assert.strictEqual(delays.length, 4)
        delays.forEach((delay, i) => {
          const nominal = 1000 * 2 ** i
          assert.isAtLeast(delay, nominal * 0.8)
          assert.isAtMost(delay, nominal * 1.2)
        })
        assert.isFalse(delays.every((d, i) => d === 1000 * 2 ** i), "jitter moved at least one delay")
      }))

    it.effect("Retry-After in seconds sets the next delay", () =>
      Effect.gen(function*() {
        const { exit, fake } = yield* call([
          Fake.json(429, Fake.errorBody("Concurrency limit reached for requests"), { "retry-after": "7" }),
          Fake.completion()
        ])
        assert.isTrue(Exit.isSuccess(exit))
        assert.deepStrictEqual(fake.requests.map((r) => r.at), [0, 7000])
      }))

    it.effect("Retry-After as an HTTP date sets the next delay", () =>
      Effect.gen(function*() {
        const { fake } = yield* call([
          Fake.json(503, Fake.errorBody("busy"), { "retry-after": new Date(9000).toUTCString() }),
          Fake.completion()
        ])
        assert.deepStrictEqual(fake.requests.map((r) => r.at), [0, 9000])
      }))

    it.effect("retry-after-ms sets the next delay", () =>
      Effect.gen(function*() {
        const { fake } = yield* call([
          Fake.json(429, Fake.errorBody("Concurrency limit reached for requests"), { "retry-after-ms": "2500" }),
          Fake.completion()
        ])
        assert.deepStrictEqual(fake.requests.map((r) => r.at), [0, 2500])
      }))

    it.effect("a Retry-After shorter than the backoff does not shorten it", () =>
      Effect.gen(function*() {
        const { fake } = yield* call([
          Fake.json(429, Fake.errorBody("Concurrency limit reached for requests"), { "retry-after": "0" }),
          Fake.completion()
        ], { retry: { baseDelay: "3 seconds", jitter: false } })
        assert.deepStrictEqual(fake.requests.map((r) => r.at), [0, 3000])
      }))

    it.effect("a Retry-After above maxRetryAfter fails at once with retryAfter set", () =>
      Effect.gen(function*() {
        const { exit, fake } = yield* call([
          Fake.json(429, Fake.errorBody("Concurrency limit reached for requests"), { "retry-after": "120" }),
          Fake.completion()
        ], { retry: { maxRetryAfter: "60 seconds", jitter: false } })
        const error = failureOf(exit)
        assert.strictEqual(error._tag, "RateLimitError")
        assert.strictEqual(fake.requests.length, 1)
        if (error._tag === "RateLimitError") {
          assert.isTrue(Option.isSome(error.retryAfter))
          assert.isTrue(Duration.equals(Option.getOrThrow(error.retryAfter), Duration.seconds(120)))
        }
      }))
  })

  describe("circuit breaker", () => {
    it.effect("after repeated service failures, calls fail fast with CircuitOpenError and send nothing", () =>
      Effect.gen(function*() {
        const fake = Fake.make([Fake.json(503, Fake.errorBody("The engine is currently overloaded"))])
        const errors = yield* Fake.runWithClock(
          withClient(
            fake,
            (client) => Effect.forEach(Array.from({ length: 4 }), () => Effect.flip(client.chatCompletion(hello))),
            {
              retry: false,
              circuitBreaker: { consecutiveFailures: 3, failureRate: false }
            }
          )
        ).pipe(Effect.flatten)
        assert.deepStrictEqual(errors.map((e) => e._tag), [
          "ServiceUnavailableError",
          "ServiceUnavailableError",
          "ServiceUnavailableError",
          "CircuitOpenError"
        ])
        assert.strictEqual(fake.requests.length, 3)
        const open = errors[3]
        if (open?._tag === "CircuitOpenError") {
          assert.strictEqual(open.model, MODEL)
          assert.strictEqual(open.breaker, `http://inference.test/v1 ${MODEL}`)
        }
      }))

    it.effect("retries stop at an open breaker (retry outside, breaker inside)", () =>
      Effect.gen(function*() {
        const fake = Fake.make([Fake.json(503, Fake.errorBody("busy"))])
        const exit = yield* Fake.runWithClock(
          withClient(fake, (client) => client.chatCompletion(hello), {
            retry: { maxRetries: 5, jitter: false },
            circuitBreaker: { consecutiveFailures: 2, failureRate: false }
          })
        )
        assert.strictEqual(failureOf(exit)._tag, "CircuitOpenError")
        assert.strictEqual(fake.requests.length, 2)
      }))

    it.effect("a CircuitBreaker.layer in context supplies the breakers: isolate one and its calls fail fast", () =>
      Effect.gen(function*() {
        const fake = Fake.make([Fake.completion()])
        const error = yield* Effect.gen(function*() {
          const breakers = yield* CircuitBreaker.Breakers
          const breaker = yield* breakers.get(CircuitBreaker.key("http://inference.test/v1", MODEL))
          yield* breaker.isolate
          const client = yield* InferenceClient.InferenceClient
          return yield* Effect.flip(client.chatCompletion(hello))
        }).pipe(
          Effect.provide(layer(fake)),
          Effect.provide(CircuitBreaker.layer())
        )
        assert.strictEqual(error._tag, "CircuitOpenError")
        assert.strictEqual(fake.requests.length, 0)
      }))
  })

  describe("fallback", () => {
    it.effect("falls back in order when a model fails after its retries; the completion names who answered", () =>
      Effect.gen(function*() {
        const fake = Fake.make((
          n
        ) => (n <= 4 + 4
          ? Fake.json(503, Fake.errorBody("busy"))
          : Fake.json(200, Fake.completionBody("from c", "c/model")))
        )
        const exit = yield* Fake.runWithClock(
          withClient(fake, (client) => client.chatCompletion(hello), {
            fallback: ["b/model", "c/model"],
            retry: { maxRetries: 3, jitter: false },
            circuitBreaker: false
          })
        )
        assert.isTrue(Exit.isSuccess(exit))
        if (Exit.isSuccess(exit)) assert.strictEqual(exit.value.model, "c/model")
        const models = fake.requests.map((r) => (r.body as { model: string }).model)
        assert.deepStrictEqual(models, [...Array(4).fill(MODEL), ...Array(4).fill("b/model"), "c/model"])
      }))

    it.effect("an open breaker sends the call to the fallback at once", () =>
      Effect.gen(function*() {
        const fake = Fake.make((
          n
        ) => (n === 1 ? Fake.json(503, Fake.errorBody("busy")) : Fake.json(200, Fake.completionBody("ok", "b/model"))))
        const models = yield* withClient(fake, (client) =>
          Effect.forEach(Array.from({ length: 3 }), () =>
            Effect.map(client.chatCompletion(hello), (c) => c.model)), {
          fallback: ["b/model"],
          retry: false,
          circuitBreaker: { consecutiveFailures: 1, failureRate: false }
        })
        // call 1: primary 503 (opens its breaker) → b; calls 2 and 3: primary open, straight to b
        assert.deepStrictEqual(models, ["b/model", "b/model", "b/model"])
        assert.deepStrictEqual(
          fake.requests.map((r) =>
            (r.body as { model: string }).model
          ),
          [MODEL, "b/model", "b/model", "b/model"]
        )
      }))

    it.effect("a non-retryable error does not fall back", () =>
      Effect.gen(function*() {
        const fake = Fake.make([Fake.json(401, Fake.errorBody("Authentication failed"))])
        const error = yield* Effect.flip(
          withClient(fake, (client) => client.chatCompletion(hello), { fallback: ["b/model"], retry: false })
        )
        assert.strictEqual(error._tag, "AuthenticationError")
        assert.strictEqual(fake.requests.length, 1)
      }))

    it.effect("totalTimeout bounds the whole call, fallback models included", () =>
      Effect.gen(function*() {
        const fake = Fake.make([Fake.hang])
        const exit = yield* Fake.runWithClock(
          withClient(fake, (client) => client.chatCompletion(hello), {
            fallback: ["b/model", "c/model"],
            retry: false,
            timeout: "10 seconds",
            totalTimeout: "15 seconds"
          })
        )
        const error = failureOf(exit)
        assert.strictEqual(error._tag, "TimeoutError")
        if (error._tag === "TimeoutError") {
          assert.strictEqual(error.phase, "total")
          assert.strictEqual(error.model, "b/model")
          assert.strictEqual(error.attempts, 2)
        }
        assert.deepStrictEqual(fake.requests.map((r) => r.at), [0, 10_000])
      }))

    it.effect("a stream falls back before its first content", () =>
      Effect.gen(function*() {
        const fake = Fake.make([Fake.json(503, Fake.errorBody("busy")), Fake.body(Fake.reads(Fake.sseAnswer([" hi"])))])
        const chunks = yield* withClient(fake, (client) => Stream.runCollect(client.streamChatCompletion(hello)), {
          fallback: ["b/model"],
          retry: false
        })
        assert.isAbove(Chunk.size(chunks), 0)
        assert.deepStrictEqual(fake.requests.map((r) => (r.body as { model: string }).model), [MODEL, "b/model"])
      }))
  })

  describe("fallbackOn", () => {
    const retired = Fake.json(404, Fake.errorBody("The requested resource was not found"))
    const fromB = Fake.json(200, Fake.completionBody("from b", "b/model"))

    it.effect("by default a 404 does not fall back: a retired or misspelt model is reported", () =>
      Effect.gen(function*() {
        const fake = Fake.make([retired, fromB])
        const error = yield* Effect.flip(
          withClient(fake, (client) => client.chatCompletion(hello), { fallback: ["b/model"], retry: false })
        )
        assert.strictEqual(error._tag, "NotFoundError")
        assert.strictEqual(fake.requests.length, 1)
      }))

    it.effect("with NotFoundError listed, a retired model falls back, for calls and streams", () =>
      Effect.gen(function*() {
        const fake = Fake.make((n) => n % 2 === 1 ? retired : n === 2 ? fromB : Fake.sse(Fake.sseAnswer([" b"])))
        const options = {
          fallback: ["b/model"],
          fallbackOn: [...InferenceClient.DEFAULT_FALLBACK_ON, "NotFoundError" as const],
          retry: false as const
        }
        const [completion, chunks] = yield* withClient(
          fake,
          (client) => Effect.all([client.chatCompletion(hello), Stream.runCollect(client.streamChatCompletion(hello))]),
          options
        )
        assert.strictEqual(completion.model, "b/model")
        assert.isAbove(Chunk.size(chunks), 0)
        assert.deepStrictEqual(
          fake.requests.map((r) => (r.body as { model: string }).model),
          [MODEL, "b/model", MODEL, "b/model"]
        )
      }))

    it.effect("a predicate decides which failures fall back", () =>
      Effect.gen(function*() {
        const fake = Fake.make([Fake.json(503, Fake.errorBody("busy")), fromB])
        const error = yield* Effect.flip(
          withClient(fake, (client) => client.chatCompletion(hello), {
            fallback: ["b/model"],
            fallbackOn: (e) => e._tag === "NotFoundError",
            retry: false
          })
        )
        assert.strictEqual(error._tag, "ServiceUnavailableError")
        assert.strictEqual(fake.requests.length, 1)
      }))

    refusesEach(
      (options: Partial<InferenceClient.Options>) =>
        Effect.provide(InferenceClient.make({ ...testOptions, ...options }), Fake.make([]).layer),
      [
        [
          "a fallbackOn tag that is no error",
          { fallbackOn: ["retryable", "NotFound" as "NotFoundError"] },
          "fallbackOn"
        ],
        ["a fallbackOn that is neither a list nor a function", {
          fallbackOn: "retryable" as unknown as InferenceClient.FallbackOn
        }, "fallbackOn"]
      ]
    )
  })

  describe("extraBody", () => {
    it.effect("its fields are sent in the body beside the checked request, for calls and streams", () =>
      Effect.gen(function*() {
        const fake = Fake.make((n) => n === 1 ? Fake.completion() : Fake.sse(Fake.sseAnswer([" a"])))
        const extraBody = { guided_choice: ["yes", "no"], temperature: 0.5 }
        yield* withClient(fake, (client) =>
          Effect.zipRight(
            client.chatCompletion(hello, { extraBody }),
            Stream.runDrain(client.streamChatCompletion(hello, { extraBody }))
          ))
        for (const request of fake.requests) {
          const body = request.body as Record<string, unknown>
          assert.deepStrictEqual(body.guided_choice, ["yes", "no"])
          assert.strictEqual(body.temperature, 0.5)
          assert.strictEqual(body.model, MODEL)
        }
        assert.deepStrictEqual(fake.requests.map((r) => (r.body as { stream: boolean }).stream), [false, true])
      }))

    for (const field of ["model", "messages", "stream"]) {
      it.effect(`it may not set ${field}: InvalidRequestError, nothing sent`, () =>
        Effect.gen(function*() {
          const fake = Fake.make(() => Fake.completion())
          const extraBody = { [field]: "x" }
          const errors = yield* withClient(fake, (client) =>
            Effect.all([
              Effect.flip(client.chatCompletion(hello, { extraBody })),
              Effect.flip(Stream.runCollect(client.streamChatCompletion(hello, { extraBody })))
            ]))
          for (const error of errors) {
            assert.strictEqual(error._tag, "InvalidRequestError")
            if (error._tag === "InvalidRequestError") assert.strictEqual(error.path, `extraBody.${field}`)
          }
          assert.strictEqual(fake.requests.length, 0)
        }))
    }

    it.effect("its fields are part of the cache key", () =>
      Effect.gen(function*() {
        const fake = Fake.make(() => Fake.completion())
        const cache = ResponseCache.layerMemory()
        const deterministic = { ...hello, temperature: 0 }
        yield* Effect.flatMap(InferenceClient.InferenceClient, (client) =>
          Effect.all([
            client.chatCompletion(deterministic, { extraBody: { top_k: 1 } }),
            client.chatCompletion(deterministic, { extraBody: { top_k: 1 } }),
            client.chatCompletion(deterministic, { extraBody: { top_k: 2 } })
          ])).pipe(Effect.provide(layer(fake).pipe(Layer.provide(cache))))
        assert.deepStrictEqual(fake.requests.map((r) => (r.body as { top_k: number }).top_k), [1, 2])
      }))
  })

  describe("rate limits", () => {
    it.effect("requests per interval: calls beyond the limit wait for the window (TestClock)", () =>
      Effect.gen(function*() {
        const fake = Fake.make(() => Fake.completion())
        const exit = yield* Fake.runWithClock(
          withClient(
            fake,
            (client) =>
              Effect.forEach(Array.from({ length: 5 }), () => client.chatCompletion(hello), { concurrency: 5 }),
            {
              rateLimit: { requests: { limit: 2, interval: "1 second" } }
            }
          )
        )
        assert.isTrue(Exit.isSuccess(exit))
        assert.deepStrictEqual(fake.requests.map((r) => r.at), [0, 0, 1000, 1000, 2000])
      }))

    it.effect("tokens per interval: an estimate is held while the call runs, then settled from usage", () =>
      Effect.gen(function*() {
        // each estimate (max_tokens 80 plus a 9-token prompt) is most of the 110-token limit; each answer takes 1 s
        // and reports 7 tokens, so the next call goes as soon as the one before it is settled
        const fake = Fake.make(() => Fake.delayed("1 second", () => Fake.completion()))
        const exit = yield* Fake.runWithClock(
          withClient(
            fake,
            (client) =>
              Effect.forEach(Array.from({ length: 3 }), () => client.chatCompletion({ ...hello, max_tokens: 80 }), {
                concurrency: 3
              }),
            { rateLimit: { tokens: { limit: 110, interval: "1 minute" } } }
          )
        )
        assert.isTrue(Exit.isSuccess(exit))
        assert.deepStrictEqual(fake.requests.map((r) => r.at), [0, 1000, 2000])
      }))
  })

  describe("concurrency", () => {
    it.effect("maxConcurrency bounds the requests in flight", () =>
      Effect.gen(function*() {
        const fake = Fake.make(() => Fake.delayed("1 second", () => Fake.completion()))
        const exit = yield* Fake.runWithClock(
          withClient(
            fake,
            (client) =>
              Effect.forEach(Array.from({ length: 7 }, () => hello), (request) => client.chatCompletion(request), {
                concurrency: 7
              }),
            { maxConcurrency: 2 }
          )
        )
        assert.isTrue(Exit.isSuccess(exit))
        assert.strictEqual(fake.requests.length, 7)
        assert.strictEqual(fake.maxInFlight(), 2)
      }))
  })

  describe("secrets", () => {
    it.effect("the Authorization header stays redacted in spans even where an application emptied the redacted names", () =>
      Effect.gen(function*() {
        const capture = Capture.make()
        const fake = Fake.make([Fake.completion()])
        yield* Capture.withCapture(capture, withClient(fake, (c) => c.chatCompletion(hello))).pipe(
          Effect.locally(Headers.currentRedactedNames, [])
        )
        const http = capture.spans.find((s) => s.name.startsWith("http.client"))
        assert.isDefined(http)
        assert.notInclude(capture.dump(), SECRET)
      }))

    it.effect("the API key appears in no log line, error message, serialised error or span", () =>
      Effect.gen(function*() {
        const capture = Capture.make()
        const fake = Fake.make((n) => {
          switch (n % 5) {
            case 1:
              return Fake.json(401, Fake.errorBody(`Invalid key ${SECRET}`))
            case 2:
              return Fake.json(500, Fake.errorBody(`upstream said ${SECRET}`))
            case 3:
              return Fake.reset
            case 4:
              return Fake.text(200, `not json ${SECRET}`)
            default:
              return Fake.json(429, Fake.errorBody(`Concurrency limit reached for ${SECRET}`))
          }
        })
        const errors: Array<InferenceError.InferenceError> = []
        yield* Fake.runWithClock(
          Capture.withCapture(
            capture,
            withClient(
              fake,
              (client) =>
                Effect.forEach(Array.from({ length: 6 }, () => hello), (request) =>
                  client.chatCompletion(request).pipe(
                    Effect.tapError((e) => Effect.sync(() => errors.push(e))),
                    Effect.ignore
                  ))
            )
          )
        )
        assert.isAtLeast(errors.length, 3)
        assert.isAtLeast(capture.logs.length, 5, "failed attempts were logged")
        assert.isAtLeast(capture.spans.length, 1, "calls were traced")
        const tags = new Set(capture.logs.map((log) => log.annotations["tag"]))
        for (const tag of ["AuthenticationError", "ConnectionError", "ResponseDecodeError"] as const) {
          assert.isTrue(tags.has(tag))
        }
        for (const error of errors) {
          assert.notInclude(error.message, SECRET)
          assert.notInclude(JSON.stringify(error), SECRET)
          assert.notInclude(String(error), SECRET)
        }
        assert.notInclude(capture.dump(), SECRET)
        // the server's echo is kept, with the key cut out
        assert.isTrue(errors.some((e) => e.message.includes("Invalid key <redacted>")))
      }))

    it.effect("each failed attempt is logged at warning level with attempt, tag, status, request id and delay", () =>
      Effect.gen(function*() {
        const capture = Capture.make()
        const fake = Fake.make([
          Fake.json(503, Fake.errorBody("busy"), { "x-request-id": "req-1" }),
          Fake.completion()
        ])
        yield* Fake.runWithClock(Capture.withCapture(capture, withClient(fake, (c) => c.chatCompletion(hello))))
        const warnings = capture.logs.filter((log) => log.level === "WARN")
        assert.strictEqual(warnings.length, 1)
        const log = warnings[0]
        assert.deepInclude(log.annotations, {
          attempt: 1,
          tag: "ServiceUnavailableError",
          status: 503,
          requestId: "req-1",
          retryIn: "1s"
        })
      }))

    it.effect("with Effect's built-in tracer the client makes no spans and sends no trace headers", () =>
      Effect.gen(function*() {
        const fake = Fake.make([Fake.completion()])
        yield* withClient(fake, (c) => c.chatCompletion(hello))
        assert.notProperty(fake.requests[0].headers, "traceparent")
        assert.notProperty(fake.requests[0].headers, "b3")
        const traced = Fake.make([Fake.completion()])
        yield* Capture.withCapture(Capture.make(), withClient(traced, (c) => c.chatCompletion(hello)))
        assert.property(traced.requests[0].headers, "traceparent")
      }))

    it.effect("each call runs in a span with the model, attempts and outcome", () =>
      Effect.gen(function*() {
        const capture = Capture.make()
        const fake = Fake.make([Fake.json(500, Fake.errorBody("oops")), Fake.json(401, Fake.errorBody("no"))])
        yield* Fake.runWithClock(Capture.withCapture(capture, withClient(fake, (c) => c.chatCompletion(hello))))
        const span = capture.spans.find((s) => s.name === "InferenceClient.chatCompletion")
        assert.isDefined(span)
        assert.strictEqual(span?.attributes.get("inference.model"), MODEL)
        assert.strictEqual(span?.attributes.get("inference.attempts"), 2)
        assert.strictEqual(span?.attributes.get("inference.outcome"), "AuthenticationError")
        const http = capture.spans.filter((s) => s.name.startsWith("http.client"))
        assert.strictEqual(http.length, 2)
        for (const s of http) {
          assert.strictEqual(String(s.attributes.get("http.request.header.authorization")), "<redacted>")
        }
      }))
  })

  describe("configuration", () => {
    it.effect("layerConfig reads WANDB_API_KEY, WANDB_PROJECT and WANDB_INFERENCE_BASE_URL", () =>
      Effect.gen(function*() {
        const fake = Fake.make([Fake.completion()])
        const provider = ConfigProvider.fromMap(
          new Map([
            ["WANDB_API_KEY", SECRET],
            ["WANDB_PROJECT", "acme/chat"],
            ["WANDB_INFERENCE_BASE_URL", "http://other.test/v1"]
          ])
        )
        yield* Effect.flatMap(InferenceClient.InferenceClient, (c) => c.chatCompletion(hello)).pipe(
          Effect.provide(InferenceClient.layerConfig({ retry: false }).pipe(Layer.provide(fake.layer))),
          Effect.withConfigProvider(provider)
        )
        assert.strictEqual(fake.requests[0].url, "http://other.test/v1/chat/completions")
        assert.strictEqual(fake.requests[0].headers["openai-project"], "acme/chat")
        assert.strictEqual(fake.requests[0].headers["authorization"], `Bearer ${SECRET}`)
      }))

    it.effect("layerConfig without WANDB_API_KEY fails with a ConfigError naming it", () =>
      Effect.gen(function*() {
        const fake = Fake.make([Fake.completion()])
        const exit = yield* Effect.flatMap(InferenceClient.InferenceClient, (c) => c.chatCompletion(hello)).pipe(
          Effect.provide(InferenceClient.layerConfig().pipe(Layer.provide(fake.layer))),
          Effect.withConfigProvider(ConfigProvider.fromMap(new Map())),
          Effect.exit
        )
        const error = failureOf(exit)
        assert.include(String(error), "WANDB_API_KEY")
      }))

    it.effect("layerConfig rejects a base URL that is not http(s) with a ConfigError", () =>
      Effect.gen(function*() {
        const fake = Fake.make([Fake.completion()])
        const exit = yield* Effect.flatMap(InferenceClient.InferenceClient, (c) => c.chatCompletion(hello)).pipe(
          Effect.provide(InferenceClient.layerConfig().pipe(Layer.provide(fake.layer))),
          Effect.withConfigProvider(
            ConfigProvider.fromMap(
              new Map([["WANDB_API_KEY", SECRET], ["WANDB_INFERENCE_BASE_URL", "ftp://example.com"]])
            )
          ),
          Effect.exit
        )
        assert.include(String(failureOf(exit)), "WANDB_INFERENCE_BASE_URL")
      }))

    it.effect("layerConfig rejects a project that is not team/project", () =>
      Effect.gen(function*() {
        const fake = Fake.make([Fake.completion()])
        const exit = yield* Effect.flatMap(InferenceClient.InferenceClient, (c) => c.chatCompletion(hello)).pipe(
          Effect.provide(InferenceClient.layerConfig().pipe(Layer.provide(fake.layer))),
          Effect.withConfigProvider(
            ConfigProvider.fromMap(new Map([["WANDB_API_KEY", SECRET], ["WANDB_PROJECT", "just-a-project"]]))
          ),
          Effect.exit
        )
        assert.include(String(failureOf(exit)), "team/project")
      }))

    const invalid: ReadonlyArray<[string, Partial<InferenceClient.Options>, string]> = [
      ["an empty key", { apiKey: Redacted.make(" ") }, "apiKey"],
      ["a malformed base URL", { baseUrl: "not a url" }, "baseUrl"],
      ["a project without a team", { project: "project" }, "project"],
      ["a zero timeout", { timeout: 0 }, "timeout"],
      ["maxConcurrency 0", { maxConcurrency: 0 }, "maxConcurrency"],
      ["a negative maxRetries", { retry: { maxRetries: -1 } }, "maxRetries"],
      ["a factor below 1", { retry: { factor: 0.5 } }, "factor"]
    ]
    for (const [name, options, field] of invalid) {
      it.effect(`building the layer with ${name} stops with a message naming ${field}`, () =>
        Effect.gen(function*() {
          const fake = Fake.make([Fake.completion()])
          const exit = yield* withClient(fake, (c) => c.chatCompletion(hello), options).pipe(Effect.exit)
          assert.isTrue(Exit.isFailure(exit) && Cause.isDie(exit.cause))
          if (Exit.isFailure(exit)) assert.include(Cause.pretty(exit.cause), field)
          assert.strictEqual(fake.requests.length, 0)
        }))
    }

    it.effect("layerConfig says in words that WANDB_API_KEY is not set, or empty", () =>
      Effect.gen(function*() {
        const fake = Fake.make([Fake.completion()])
        for (
          const [env, words] of [[[], "WANDB_API_KEY is not set"], [
            [["WANDB_API_KEY", " "]],
            "WANDB_API_KEY is empty"
          ]] as const
        ) {
          const exit = yield* Effect.flatMap(InferenceClient.InferenceClient, (c) => c.chatCompletion(hello)).pipe(
            Effect.provide(InferenceClient.layerConfig().pipe(Layer.provide(fake.layer))),
            Effect.withConfigProvider(ConfigProvider.fromMap(new Map(env))),
            Effect.exit
          )
          assert.include(String(failureOf(exit)), words)
          assert.notInclude(String(failureOf(exit)), "<redacted>")
        }
      }))

    // Every option is checked for its type, range and finiteness, and an unknown key is refused: each message names
    // the option.
    refusesEach(
      (options: Partial<InferenceClient.Options>) =>
        Effect.provide(InferenceClient.make({ ...testOptions, ...options }), Fake.make([]).layer),
      [
        ["a negative retry delay", { retry: { baseDelay: -1 } }, "retry.baseDelay must be a positive, finite duration"],
        ["a NaN retry delay", { retry: { baseDelay: NaN } }, "retry.baseDelay"],
        ["a negative maxDelay", { retry: { maxDelay: "-5 seconds" as "5 seconds" } }, "retry.maxDelay"],
        ["a negative maxRetryAfter", { retry: { maxRetryAfter: -1 } }, "retry.maxRetryAfter"],
        [
          "jitter that is not a boolean",
          { retry: { jitter: "yes" as unknown as boolean } },
          "retry.jitter must be true or false, got yes"
        ],
        [
          "a misspelt retry option",
          { retry: { jiter: true } as Partial<RetryPolicy.Options> },
          "retry.jiter is not an option"
        ],
        ["retry that is neither false, a Schedule nor options", {
          retry: "sometimes" as unknown as false
        }, "retry must be false, a Schedule or retry options, got sometimes"],
        ["a negative breakDuration", { circuitBreaker: { breakDuration: -1 } }, "circuitBreaker.breakDuration"],
        ["a failure rate threshold of 2", {
          circuitBreaker: { failureRate: { threshold: 2, window: 20, minimumCalls: 10 } }
        }, "circuitBreaker.failureRate.threshold"],
        ["an unknown option", { timeOut: "1 second" } as Partial<InferenceClient.Options>, "timeOut is not an option"],
        [
          "an infinite timeout given as a string",
          { timeout: "forever" as "1 second" },
          "timeout must be a positive duration"
        ],
        [
          "a fractional maxConcurrency",
          { maxConcurrency: 2.5 },
          "maxConcurrency must be a whole number >= 1 or Infinity"
        ],
        [
          "a fallback that is a string",
          { fallback: "b/model" as unknown as Array<string> },
          "fallback must be a list of model ids"
        ],
        ["a transformClient that is not a function", {
          transformClient: {} as InferenceClient.Options["transformClient"]
        }, "transformClient must be a function"],
        ["a rate limit of 0 requests", {
          rateLimit: { requests: { limit: 0, interval: "1 second" } }
        }, "rateLimit.requests.limit must be a whole number >= 1, got 0"],
        ["a usage budget of 0 dollars", { usage: { budget: { usd: 0 } } }, "usage.budget.usd"]
      ]
    )

    describe("the API key", () => {
      const KEY = "wandb-key-0123456789abcdef"
      const refused = (apiKey: unknown) =>
        Effect.gen(function*() {
          const exit = yield* Effect.exit(
            Effect.provide(
              InferenceClient.make({ ...testOptions, apiKey: apiKey as Redacted.Redacted<string> }),
              Fake.make([]).layer
            )
          )
          assert.isTrue(Exit.isFailure(exit) && Cause.isDie(exit.cause), "the layer is refused")
          return Exit.isFailure(exit) ? Cause.pretty(exit.cause) : ""
        })

      it.effect("a plain string is refused with a message naming apiKey and Redacted.make, not the key", () =>
        Effect.gen(function*() {
          const message = yield* refused(KEY)
          assert.include(message, "apiKey")
          assert.include(message, "Redacted.make")
          assert.notInclude(message, KEY)
        }))

      for (
        const [name, bad] of [
          ["a line feed", `${KEY}\n`],
          ["a carriage return", `${KEY.slice(0, 8)}\r${KEY.slice(8)}`],
          ["a NUL", `${KEY}\u0000`],
          ["a space", `${KEY.slice(0, 5)} ${KEY.slice(5)}`],
          ["a character outside Latin-1", `${KEY}€`],
          ["an accented letter", `${KEY}é`]
        ] as const
      ) {
        it.effect(`a key with ${name} is refused when the layer is built, naming apiKey and not the key`, () =>
          Effect.gen(function*() {
            const message = yield* refused(Redacted.make(bad))
            assert.include(message, "apiKey")
            assert.notInclude(message, KEY.slice(0, 8))
            assert.notInclude(message, KEY.slice(-8))
          }))
      }
    })

    it.effect("a trailing slash on baseUrl is ignored", () =>
      Effect.gen(function*() {
        const { fake } = yield* call([Fake.completion()], { baseUrl: "http://inference.test/v1/" })
        assert.strictEqual(fake.requests[0].url, "http://inference.test/v1/chat/completions")
      }))

    it.effect("transformClient changes every request", () =>
      Effect.gen(function*() {
        const { fake } = yield* call([Fake.completion()], {
          transformClient: HttpClient.mapRequest(HttpClientRequest.setHeader("x-extra", "yes"))
        })
        assert.strictEqual(fake.requests[0].headers["x-extra"], "yes")
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
