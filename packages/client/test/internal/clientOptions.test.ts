/**
 * Where the client's options are checked: the layer refuses what cannot work, naming the option; layerConfig reads the environment.
 */
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import { assert, describe, it } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as InferenceClient from "../../src/InferenceClient.js"
import * as ClientOptions from "../../src/internal/clientOptions.js"
import type * as RetryPolicy from "../../src/RetryPolicy.js"
import { callHello as call, failureOf, hello, SECRET, testOptions, withClient } from "../utils/Client.js"
import * as Fake from "../utils/FakeTransport.js"
import { refusesEach } from "../utils/Options.js"

describe("InferenceClient", () => {
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
        ["a usage budget of 0 dollars", { usage: { budget: { usd: 0 } } }, "usage.budget.usd"],
        [
          "adaptiveConcurrency that is neither false nor options",
          { adaptiveConcurrency: true as unknown as false },
          "adaptiveConcurrency must be false or options"
        ],
        [
          "an adaptive max above maxConcurrency",
          { maxConcurrency: 8, adaptiveConcurrency: { max: 16 } },
          "adaptiveConcurrency.max (16) must be at most maxConcurrency (8)"
        ],
        [
          "an adaptive min above its max",
          { adaptiveConcurrency: { min: 10, max: 4 } },
          "adaptiveConcurrency.min (10) must be at most its max (4)"
        ],
        [
          "an adaptive initial outside min and max",
          { adaptiveConcurrency: { initial: 2, min: 4 } },
          "adaptiveConcurrency.initial (2) must be between its min (4) and max (64)"
        ],
        ["a fractional adaptive min", { adaptiveConcurrency: { min: 1.5 } }, "adaptiveConcurrency.min"],
        [
          "a misspelt adaptive option",
          { adaptiveConcurrency: { inital: 4 } as InferenceClient.AdaptiveConcurrency },
          "adaptiveConcurrency.inital is not an option"
        ]
      ]
    )

    it("adaptiveConcurrency: on by default within maxConcurrency, off with false, its bounds as given", () => {
      const resolve = (options: Partial<InferenceClient.Options>) =>
        Either.getOrThrow(ClientOptions.resolveOptions({ ...testOptions, ...options })).adaptiveConcurrency
      assert.deepStrictEqual(resolve({}), { initial: 32, min: 1, max: 64 })
      assert.deepStrictEqual(resolve({ maxConcurrency: 8 }), { initial: 8, min: 1, max: 8 })
      assert.strictEqual(resolve({ maxConcurrency: Infinity })?.max, 1024)
      assert.isUndefined(resolve({ adaptiveConcurrency: false }))
      assert.deepStrictEqual(resolve({ adaptiveConcurrency: { initial: 2, min: 2, max: 10 } }), {
        initial: 2,
        min: 2,
        max: 10
      })
    })

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
})
