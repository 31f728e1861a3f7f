/**
 * Adaptive concurrency against the simulator: a model whose limit the client
 * is not told. With the default options the client finds it, every call
 * succeeds, and few requests are refused; with a fixed `maxConcurrency` above
 * the limit, most are.
 */
import { InferenceClient } from "@effect-inference/client"
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Stream from "effect/Stream"
import type * as InferenceSimulator from "../../src/InferenceSimulator.js"
import { ask, chatLog, MODEL, withClient, withSimulatorOnly } from "../utils/Integration.js"

const LIMIT = 4
const CALLS = 80

/** Each call lasts 8-40 tokens at 2 ms a token; the model allows LIMIT in flight. */
const simulatorOptions: InferenceSimulator.Options = {
  perToken: "2 millis",
  modelConcurrencyLimits: { [MODEL]: LIMIT }
}

const streamed = (content: string) =>
  Effect.flatMap(
    InferenceClient.InferenceClient,
    (client) => Stream.runDrain(client.streamChatCompletion({ model: MODEL, messages: [{ role: "user", content }] }))
  )

/** CALLS calls (every fourth a stream), 64 at a time, through a client of `options`: failures and requests refused. */
const run = (options: Partial<InferenceClient.Options>) =>
  Effect.gen(function*() {
    const results = yield* withClient(options)(Effect.forEach(
      Array.from({ length: CALLS }, (_, i) => i),
      (i) => Effect.either(i % 4 === 3 ? streamed(`question ${i}`) : ask(`question ${i}`)),
      { concurrency: 64 }
    ))
    const log = yield* chatLog
    return {
      failures: results.filter(Either.isLeft).map((result) => result.left._tag),
      requests: log.length,
      refused: log.filter((entry) => entry.outcome === "concurrency-limited").length
    }
  })

describe("adaptive concurrency against the simulator", () => {
  it.live(`a model limit of ${LIMIT} it is not told: found, every call answered, few requests refused`, () =>
    withSimulatorOnly(
      Effect.gen(function*() {
        // The retries of the test utilities (a few ms apart), and the breaker off: 429s are not its business.
        const { failures, refused, requests } = yield* run({ circuitBreaker: false, retry: { maxRetries: 10 } })
        assert.deepStrictEqual(failures, [])
        // The first burst (32, the initial limit) is over the limit; after that, the limit is found, and probed
        // above ever more rarely (a handful of 429s in 80 calls).
        assert.isAtMost(refused, 32 - LIMIT + 10, `${refused} of ${requests} refused`)
      }),
      simulatorOptions
    ))

  it.live("the same with a fixed maxConcurrency of 64 and no retries: most calls refused", () =>
    withSimulatorOnly(
      Effect.gen(function*() {
        const { failures, refused } = yield* run({ circuitBreaker: false, retry: false, adaptiveConcurrency: false })
        assert.isAbove(refused, CALLS / 2, `${refused} refused`)
        assert.strictEqual(failures.length, refused)
        assert.isTrue(failures.every((tag) => tag === "RateLimitError"))
      }),
      simulatorOptions
    ))
})
