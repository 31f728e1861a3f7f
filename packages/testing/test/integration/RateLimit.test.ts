/**
 * Client-side request limits against the simulator: 200 concurrent calls stay
 * under the limit in every window, as the simulator's log of arrivals shows.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as InferenceSimulator from "../../src/InferenceSimulator.js"
import { ask, chatLog, withSimulator } from "../utils/Integration.js"

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
})
