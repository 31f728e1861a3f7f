/**
 * Client-side request limits against the simulator: 200 concurrent calls stay
 * under the limit in every window, as the simulator's log of arrivals shows.
 */
import { InferenceClient } from "@effect-inference/client"
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as InferenceSimulator from "../../src/InferenceSimulator.js"
import { ask, chatLog, MODEL, withSimulator } from "../utils/Integration.js"

/** The most timestamps within any span shorter than `span`. */
const mostWithin = (sorted: ReadonlyArray<number>, span: number): number => {
  let most = 0
  for (let i = 0, j = 0; i < sorted.length; i++) {
    while (sorted[i]! - sorted[j]! >= span) j++
    most = Math.max(most, i - j + 1)
  }
  return most
}

const LIMIT = 50
const INTERVAL = 500
const SKEW = 200
const TOKEN_LIMIT = 600

const question = (i: number) =>
  Effect.flatMap(
    InferenceClient.InferenceClient,
    (client) =>
      client.chatCompletion({ model: MODEL, messages: [{ role: "user", content: `Question ${i}` }], max_tokens: 16 })
  )
const TOKEN_INTERVAL = 500

describe("rate limits against the simulator", () => {
  it.live(`200 concurrent calls, at most ${LIMIT} requests per ${INTERVAL} ms, all answered`, () =>
    withSimulator(
      Effect.gen(function*() {
        // Client and simulator share this process: warm both up (and open the connection pool) first, so that
        // arrival times reflect send times rather than the first requests' start-up cost.
        const simulator = yield* InferenceSimulator.InferenceSimulator
        yield* Effect.forEach(Array.from({ length: LIMIT }), () => ask(), { concurrency: "unbounded" })
        yield* Effect.sleep(`${INTERVAL * 2} millis`)
        yield* simulator.clearLog
        const results = yield* Effect.forEach(Array.from({ length: 200 }), () => Effect.either(ask()), {
          concurrency: "unbounded"
        })
        assert.isTrue(results.every((r) => r._tag === "Right"))
        const log = yield* chatLog
        assert.strictEqual(log.length, 200)
        // The limiter lets requests go in bursts of LIMIT, INTERVAL apart (its own timing is tested exactly
        // under TestClock). Here client and simulator share one busy event loop, so a request can arrive a
        // long while after it was let through: a window shorter than the interval by SKEW absorbs that.
        const arrivals = log.map((entry) => entry.at).sort((a, b) => a - b)
        assert.isAtMost(mostWithin(arrivals, INTERVAL - SKEW), LIMIT, `most requests in any ${INTERVAL - SKEW} ms`)
        assert.isAtLeast(
          arrivals[arrivals.length - 1]! - arrivals[0]!,
          (200 / LIMIT - 1) * INTERVAL - SKEW,
          "spread over the windows"
        )
      }),
      {},
      {
        rateLimit: { requests: { limit: LIMIT, interval: `${INTERVAL} millis` } },
        maxConcurrency: Infinity
      }
    ))

  it.live(
    "tokens per interval: the usage of the requests arriving in any window stays under the limit",
    () =>
      withSimulator(
        Effect.gen(function*() {
          const simulator = yield* InferenceSimulator.InferenceSimulator
          // warm up with small calls: a call without max_tokens would reserve the whole window for itself
          yield* Effect.forEach(Array.from({ length: 10 }), (_, i) => question(i), { concurrency: "unbounded" })
          yield* Effect.sleep(`${TOKEN_INTERVAL * 2} millis`)
          yield* simulator.clearLog
          const results = yield* Effect.forEach(
            Array.from({ length: 100 }),
            (_, i) =>
              Effect.either(
                Effect.flatMap(InferenceClient.InferenceClient, (client) =>
                  client.chatCompletion({
                    model: MODEL,
                    messages: [{ role: "user", content: `Question ${i}` }],
                    max_tokens: 16
                  }))
              ),
            { concurrency: "unbounded" }
          )
          assert.isTrue(results.every((r) => r._tag === "Right"))
          const log = yield* chatLog
          const used = log.map((entry) => [entry.at, entry.usage?.total_tokens ?? 0] as const).sort(([a], [b]) => a - b)
          const total = used.reduce((sum, [, tokens]) => sum + tokens, 0)
          assert.isAbove(total, TOKEN_LIMIT * 3, "enough tokens to need several windows")
          let worst = 0
          for (let i = 0, j = 0, sum = 0; i < used.length; i++) {
            sum += used[i]![1]
            while (used[i]![0] - used[j]![0] >= TOKEN_INTERVAL - SKEW) sum -= used[j++]![1]
            worst = Math.max(worst, sum)
          }
          assert.isAtMost(worst, TOKEN_LIMIT, `most tokens arriving in any ${TOKEN_INTERVAL - SKEW} ms`)
        }),
        {},
        {
          rateLimit: { tokens: { limit: TOKEN_LIMIT, interval: `${TOKEN_INTERVAL} millis` } },
          maxConcurrency: Infinity
        }
      ),
    20_000
  )
})
