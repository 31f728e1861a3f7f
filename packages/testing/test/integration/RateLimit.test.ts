/**
 * Client-side request limits against the simulator: 200 concurrent calls stay
 * under the limit in every window, as the simulator's log of arrivals shows.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as InferenceSimulator from "../../src/InferenceSimulator.js"
import { ask, chatLog, withSimulator } from "../utils/Integration.js"

const LIMIT = 40
const INTERVAL = 250

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
        const arrivals = (yield* chatLog).map((entry) => entry.at).sort((a, b) => a - b)
        assert.strictEqual(arrivals.length, 200)
        // Sent at most LIMIT per INTERVAL; arrivals can bunch by a few ms of loopback latency, so windows a
        // little shorter than the interval are checked.
        const window = INTERVAL - 25
        let worst = 0
        for (let i = 0, j = 0; i < arrivals.length; i++) {
          while (arrivals[i]! - arrivals[j]! >= window) j++
          worst = Math.max(worst, i - j + 1)
        }
        assert.isAtMost(worst, LIMIT, `most requests in any ${window} ms`)
        assert.isAtLeast(
          arrivals[arrivals.length - 1]! - arrivals[0]!,
          (200 / LIMIT - 1) * INTERVAL - 25,
          "spread over the windows"
        )
      }),
      {},
      { rateLimit: { requests: { limit: LIMIT, interval: `${INTERVAL} millis` } }, maxConcurrency: Infinity }
    ))
})
