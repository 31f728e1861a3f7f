import { ChatCompletion, InferenceClient, InferenceError, Model } from "@effect-inference/client"
import { assert, describe, it } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import { program as docSnippet } from "../examples/docs/test-inference-client.js"
import * as TestInferenceClient from "../src/TestInferenceClient.js"

const MODEL = "deepseek-ai/DeepSeek-V3.1"

const ask = (content: string, model = MODEL): ChatCompletion.ChatCompletionRequestInput => ({
  model,
  messages: [{ role: "system", content: "Be brief." }, { role: "user", content }]
})

const chat = (request: ChatCompletion.ChatCompletionRequestInput) =>
  Effect.flatMap(InferenceClient.InferenceClient, (client) => client.chatCompletion(request))

const contentOf = (request: ChatCompletion.ChatCompletionRequestInput) =>
  Effect.map(chat(request), (completion) => completion.choices[0].message.content)

const control = TestInferenceClient.TestInferenceClient

/** Runs `self` against a fresh scripted client. */
const run = <A, E>(
  self: Effect.Effect<A, E, InferenceClient.InferenceClient | TestInferenceClient.TestInferenceClient>,
  options?: TestInferenceClient.Options
): Effect.Effect<A, E> => Effect.provide(self, TestInferenceClient.layer(options))

const failureOf = <A, E>(exit: Exit.Exit<A, E>): E => {
  const failure = Exit.isFailure(exit) ? Cause.failureOption(exit.cause) : Option.none()
  assert.isTrue(Option.isSome(failure), `expected a typed failure, got ${String(exit)}`)
  return Option.getOrThrow(failure)
}

describe("TestInferenceClient", () => {
  describe("replies", () => {
    it.effect("a string reply is a completion with that content, for the request's model, counted as the simulator counts", () =>
      run(
        Effect.gen(function*() {
          const completion = yield* chat(ask("What is the capital of France?"))
          assert.strictEqual(completion.choices.length, 1)
          assert.strictEqual(completion.choices[0].message.content, "Paris, of course.")
          assert.strictEqual(completion.choices[0].message.role, "assistant")
          assert.strictEqual(completion.choices[0].finish_reason, "stop")
          assert.strictEqual(completion.model, MODEL)
          assert.strictEqual(completion.id, "chatcmpl-test-1")
          // a word or punctuation mark each: system "Be brief." (3 + role 1 + 3), user "What is the capital of
          // France?" (7 + 1 + 3), priming 3 → 21; "Paris, of course." → 5
          assert.deepStrictEqual(
            [completion.usage?.prompt_tokens, completion.usage?.completion_tokens, completion.usage?.total_tokens],
            [21, 5, 26]
          )
        }),
        { replies: ["Paris, of course."] }
      ))

    it.effect("replies are used in order and the last one repeats once the script is used up", () =>
      run(
        Effect.gen(function*() {
          const answers = yield* Effect.forEach(["a", "b", "c", "d"], (q) => contentOf(ask(q)))
          assert.deepStrictEqual(answers, ["one", "two", "two", "two"])
          assert.strictEqual(yield* Effect.flatMap(control, (test) => test.calls), 4)
        }),
        { replies: ["one", "two"] }
      ))

    it.effect("a completion reply is returned as it is", () => {
      const scripted = TestInferenceClient.completion("cut", { model: "other/model", finishReason: "length" })
      return run(
        Effect.gen(function*() {
          const completion = yield* chat(ask("Hi"))
          assert.strictEqual(completion, scripted)
        }),
        { replies: [scripted] }
      )
    })

    it.effect("an error reply fails the call with that error, caught by its tag", () => {
      const error = new InferenceError.QuotaExceededError({ status: 402, model: MODEL })
      return run(
        Effect.gen(function*() {
          const exit = yield* Effect.exit(chat(ask("Hi")))
          assert.strictEqual(failureOf(exit), error)
          const caught = yield* chat(ask("Hi")).pipe(
            Effect.as("answered"),
            Effect.catchTag("QuotaExceededError", (e) => Effect.succeed(`quota ${e.status}`)),
            Effect.catchTag("RateLimitError", () => Effect.succeed("rate limited"))
          )
          assert.strictEqual(caught, "quota 402")
        }),
        { replies: [error] }
      )
    })

    it.effect("a function reply gets the decoded request and the 1-based call number", () =>
      run(
        Effect.gen(function*() {
          const seen: Array<[ChatCompletion.ChatCompletionRequest, number]> = []
          const test = yield* control
          yield* test.reply((request, n) => {
            seen.push([request, n])
            return n === 2
              ? Effect.fail(new InferenceError.ServiceUnavailableError({ status: 503 }))
              : Effect.succeed(TestInferenceClient.completion(`call ${n} for ${request.model}`))
          })
          assert.strictEqual(yield* contentOf(ask("first")), `call 1 for ${MODEL}`)
          const second = yield* Effect.either(chat(ask("second")))
          assert.isTrue(Either.isLeft(second) && second.left._tag === "ServiceUnavailableError")
          assert.strictEqual(yield* contentOf(ask("third", "openai/gpt-oss-120b")), "call 3 for openai/gpt-oss-120b")
          assert.deepStrictEqual(seen.map(([, n]) => n), [1, 2, 3])
          assert.isTrue(seen[0][0] instanceof ChatCompletion.ChatCompletionRequest)
          assert.strictEqual(seen[1][0].messages[1].content, "second")
        })
      ))

    it.effect("a function that throws is a defect of that call", () =>
      run(
        Effect.gen(function*() {
          const exit = yield* Effect.exit(chat(ask("Hi")))
          assert.isTrue(Exit.isFailure(exit) && Cause.isDie(exit.cause))
        }),
        {
          // A scripted function with a bug: the test must see a defect, not a hang or a pass.
          replies: [() => Effect.succeed(TestInferenceClient.completion(String(JSON.parse("{not json"))))]
        }
      ))

    it.effect("reply appends to the script; replies appended after it ran out are used next, in order", () =>
      run(
        Effect.gen(function*() {
          const test = yield* control
          assert.strictEqual(yield* contentOf(ask("1")), "first")
          assert.strictEqual(yield* contentOf(ask("2")), "first")
          yield* test.reply("second", "third")
          const answers = yield* Effect.forEach(["3", "4", "5"], (q) => contentOf(ask(q)))
          assert.deepStrictEqual(answers, ["second", "third", "third"])
        }),
        { replies: ["first"] }
      ))

    it.effect("concurrent calls each use a reply of their own", () =>
      run(
        Effect.gen(function*() {
          const answers = yield* Effect.all(
            ["a", "b", "c"].map((q) => contentOf(ask(q))),
            { concurrency: "unbounded" }
          )
          assert.deepStrictEqual([...answers].sort(), ["1", "2", "3"])
          const requests = yield* Effect.flatMap(control, (test) => test.requests)
          assert.strictEqual(requests.length, 3)
        }),
        { replies: ["1", "2", "3"] }
      ))
  })

  describe("with no script", () => {
    it.effect("each call echoes the last user message, for the request's model", () =>
      run(
        Effect.gen(function*() {
          const completion = yield* chat({
            model: MODEL,
            messages: [
              { role: "user", content: "first question" },
              { role: "assistant", content: "an answer" },
              { role: "user", content: [{ type: "text", text: "second" }, { type: "text", text: "question" }] },
              { role: "system", content: "Be brief." }
            ]
          })
          assert.strictEqual(completion.choices[0].message.content, "second\nquestion")
          assert.strictEqual(completion.model, MODEL)
          assert.strictEqual(completion.choices[0].finish_reason, "stop")
          assert.strictEqual(completion.usage?.completion_tokens, 2)
        })
      ))

    it.effect("the default answer is the same on every run", () =>
      Effect.gen(function*() {
        const once = run(chat(ask("Same input")))
        assert.deepStrictEqual(yield* once, yield* once)
      }))
  })

  describe("validation", () => {
    it.effect("an invalid request fails with InvalidRequestError and is not recorded, counted or answered", () =>
      run(
        Effect.gen(function*() {
          const test = yield* control
          const exit = yield* Effect.exit(chat({ model: MODEL, messages: [] }))
          const error = failureOf(exit)
          assert.strictEqual(error._tag, "InvalidRequestError")
          if (error._tag === "InvalidRequestError") assert.strictEqual(error.path, "messages")
          assert.deepStrictEqual(yield* test.requests, [])
          assert.strictEqual(yield* test.calls, 0)
          // The reply the invalid call did not use answers the next valid one.
          assert.strictEqual(yield* contentOf(ask("Hi")), "kept")
          assert.strictEqual(yield* test.calls, 1)
        }),
        { replies: ["kept", "next"] }
      ))

    it.effect("a misspelt field is rejected as the real client rejects it", () =>
      run(
        Effect.gen(function*() {
          // @ts-expect-error the field is misspelt on purpose
          const exit = yield* Effect.exit(chat({ ...ask("Hi"), temprature: 0.5 }))
          const error = failureOf(exit)
          assert.strictEqual(error._tag, "InvalidRequestError")
          if (error._tag === "InvalidRequestError") assert.strictEqual(error.path, "temprature")
        })
      ))
  })

  describe("the record", () => {
    it.effect("requests holds the decoded requests in order, and calls their number", () =>
      run(
        Effect.gen(function*() {
          const test = yield* control
          yield* contentOf(ask("one"))
          yield* Effect.either(chat({ ...ask("two", "openai/gpt-oss-120b"), temperature: 0.2 }))
          const requests = yield* test.requests
          assert.deepStrictEqual(requests.map((r) => [r.model, r.messages[1].content, r.temperature]), [
            [MODEL, "one", undefined],
            ["openai/gpt-oss-120b", "two", 0.2]
          ])
          assert.isTrue(requests.every((r) => r instanceof ChatCompletion.ChatCompletionRequest))
          assert.strictEqual(yield* test.calls, 2)
        }),
        // A failed call reached the script all the same, so it is recorded.
        { replies: ["ok", new InferenceError.RateLimitError({ status: 429 })] }
      ))

    it.effect("each build of the layer has a script and a record of its own", () =>
      Effect.gen(function*() {
        const layer = TestInferenceClient.layer({ replies: ["first", "second"] })
        const once = Effect.provide(
          Effect.zip(contentOf(ask("Hi")), Effect.flatMap(control, (test) => test.calls)),
          layer
        )
        assert.deepStrictEqual(yield* once, ["first", 1])
        assert.deepStrictEqual(yield* once, ["first", 1])
      }))
  })

  describe("listModels", () => {
    it.effect("returns real W&B model ids by default", () =>
      run(
        Effect.gen(function*() {
          const models = yield* Effect.flatMap(InferenceClient.InferenceClient, (client) => client.listModels())
          assert.deepStrictEqual(models.map((m) => m.id), [
            "meta-llama/Llama-3.1-8B-Instruct",
            "deepseek-ai/DeepSeek-V3.1",
            "Qwen/Qwen3-235B-A22B-Instruct-2507",
            "openai/gpt-oss-120b"
          ])
          assert.deepStrictEqual(models.map((m) => m.owned_by), ["meta-llama", "deepseek-ai", "Qwen", "openai"])
          assert.isTrue(models.every((m) => m instanceof Model.Model && m.object === "model"))
        })
      ))

    it.effect("returns the configured models, ids or Model values", () => {
      const custom = new Model.Model({ id: "acme/llm", object: "model", created: 7, owned_by: "acme-corp" })
      return run(
        Effect.gen(function*() {
          const models = yield* Effect.flatMap(InferenceClient.InferenceClient, (client) => client.listModels())
          assert.deepStrictEqual(models.map((m) => [m.id, m.owned_by]), [["local-model", ""], [
            "acme/llm",
            "acme-corp"
          ]])
          assert.strictEqual(models[1], custom)
        }),
        { models: ["local-model", custom] }
      )
    })
  })

  describe("completion", () => {
    it("builds one stop choice with word-counted usage and fixed id and time", () => {
      const completion = TestInferenceClient.completion("three little words")
      assert.isTrue(completion instanceof ChatCompletion.ChatCompletion)
      assert.strictEqual(completion.id, "chatcmpl-test")
      assert.strictEqual(completion.created, 0)
      assert.strictEqual(completion.model, "meta-llama/Llama-3.1-8B-Instruct")
      assert.strictEqual(completion.choices[0].message.content, "three little words")
      assert.strictEqual(completion.choices[0].finish_reason, "stop")
      assert.deepStrictEqual(
        [completion.usage?.prompt_tokens, completion.usage?.completion_tokens, completion.usage?.total_tokens],
        [0, 3, 3]
      )
      assert.deepStrictEqual(completion, TestInferenceClient.completion("three little words"))
    })

    it("takes the model, finish reason and usage it is given", () => {
      const completion = TestInferenceClient.completion("The answer is", {
        model: MODEL,
        finishReason: "length",
        usage: { promptTokens: 40, completionTokens: 100 }
      })
      assert.strictEqual(completion.model, MODEL)
      assert.strictEqual(completion.choices[0].finish_reason, "length")
      assert.deepStrictEqual(
        [completion.usage?.prompt_tokens, completion.usage?.completion_tokens, completion.usage?.total_tokens],
        [40, 100, 140]
      )
    })
  })

  describe("doc snippet", () => {
    it.effect("examples/docs/test-inference-client.ts answers, then falls back on the rate limit", () =>
      Effect.gen(function*() {
        assert.deepStrictEqual(yield* docSnippet, {
          first: "Bonjour",
          second: "(busy, try again later)",
          sent: ["Translate to French: Hello", "Translate to French: Goodbye"]
        })
      }))
  })
})
