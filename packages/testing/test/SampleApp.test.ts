/**
 * How an application tests its own code with TestInferenceClient: examples/app.ts's
 * `summarize`, on each of its paths, with no HTTP.
 */
import { ChatCompletion, InferenceError } from "@effect-inference/client"
import { assert, describe, it } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import { fallback, MODEL, summarize, SYSTEM_PROMPT } from "../examples/app.js"
import * as TestInferenceClient from "../src/TestInferenceClient.js"

const TEXT = "Effect is a TypeScript library for typed effects. It handles errors, retries and concurrency."
const FIRST_SENTENCE = "Effect is a TypeScript library for typed effects."

const summarizeWith = (replies: ReadonlyArray<TestInferenceClient.Reply>) =>
  Effect.gen(function*() {
    const summary = yield* summarize(TEXT)
    const test = yield* TestInferenceClient.TestInferenceClient
    return { summary, requests: yield* test.requests }
  }).pipe(Effect.provide(TestInferenceClient.layer({ replies })))

describe("sample app: summarize", () => {
  it.effect("returns the model's summary, trimmed", () =>
    Effect.gen(function*() {
      const { summary } = yield* summarizeWith(["  A library for typed effects.\n"])
      assert.deepStrictEqual(summary, { text: "A library for typed effects.", source: "model" })
    }))

  it.effect("sends its model, the system prompt and the text, at temperature 0", () =>
    Effect.gen(function*() {
      const { requests } = yield* summarizeWith(["ok"])
      assert.strictEqual(requests.length, 1)
      const [request] = requests
      assert.strictEqual(request.model, MODEL)
      assert.deepStrictEqual(request.messages, [
        { role: "system", content: SYSTEM_PROMPT },
        { role: "user", content: TEXT }
      ])
      assert.strictEqual(request.temperature, 0)
      assert.strictEqual(request.max_tokens, 100)
    }))

  it.effect("falls back to the first sentence when the account is out of credits", () =>
    Effect.gen(function*() {
      const { requests, summary } = yield* summarizeWith([new InferenceError.QuotaExceededError({ status: 402 })])
      assert.deepStrictEqual(summary, { text: FIRST_SENTENCE, source: "fallback" })
      assert.strictEqual(requests.length, 1)
    }))

  it.effect("falls back to the first sentence when rate limited", () =>
    Effect.gen(function*() {
      const { summary } = yield* summarizeWith([new InferenceError.RateLimitError({ status: 429, attempts: 4 })])
      assert.deepStrictEqual(summary, { text: FIRST_SENTENCE, source: "fallback" })
    }))

  it.effect("falls back when the model answers with no text", () =>
    Effect.gen(function*() {
      const { summary } = yield* summarizeWith([(request) =>
        Effect.succeed(
          new ChatCompletion.ChatCompletion({
            id: "chatcmpl-refused",
            created: 0,
            model: request.model,
            choices: [
              new ChatCompletion.Choice({
                index: 0,
                message: new ChatCompletion.ResponseMessage({ content: null, refusal: "I can't help with that." }),
                finish_reason: "stop"
              })
            ]
          })
        )])
      assert.deepStrictEqual(summary, fallback(TEXT))
    }))

  it.effect("lets other errors through to the caller, by their tag", () =>
    Effect.gen(function*() {
      const error = new InferenceError.AuthenticationError({ status: 401 })
      const exit = yield* Effect.exit(summarizeWith([error]))
      const failure = Exit.isFailure(exit) ? Cause.failureOption(exit.cause) : Option.none()
      assert.deepStrictEqual(failure, Option.some(error))
    }))
})
