/**
 * The client waits as long as the server asks before it retries, measured where
 * it matters: between the arrivals of the requests at the simulator.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Fault from "../../src/Fault.js"
import * as InferenceSimulator from "../../src/InferenceSimulator.js"
import { ask, fastRetry, withSimulator } from "../utils/Integration.js"

/** Milliseconds between the arrivals of consecutive requests. */
const gaps = (log: ReadonlyArray<InferenceSimulator.LogEntry>): ReadonlyArray<number> =>
  log.slice(1).map((entry, i) => entry.at - log[i]!.at)

/** Plays `faults` once each, then lets a call succeed, and returns the gaps between its attempts. */
const gapsAfter = (faults: ReadonlyArray<Fault.Fault>) =>
  withSimulator(
    Effect.gen(function*() {
      const simulator = yield* InferenceSimulator.InferenceSimulator
      yield* simulator.script(...faults)
      yield* ask()
      const log = yield* simulator.log
      assert.deepStrictEqual(log.map((e) => e.outcome), [...faults.map(() => "fault"), "ok"])
      return gaps(log)
    })
  )

/**
 * Slack above an expected backoff: a request's own round trip, plus the other test files
 * that run in parallel on the same cores (Chaos.test.ts is busy for seconds).
 */
const SLACK = 150

/** Slack above a Retry-After: under a second, so that waiting it twice, or adding a 1 s backoff to it, fails. */
const RETRY_AFTER_SLACK = 500

const assertWithin = (actual: number, min: number, max: number, what: string) =>
  assert.isTrue(actual >= min && actual < max, `${what}: ${actual} ms, expected within [${min}, ${max})`)

describe("Retry-After against the simulator", () => {
  it.live("Retry-After: 1 (seconds) → the retry arrives 1 s after the first request", () =>
    Effect.gen(function*() {
      const [gap] = yield* gapsAfter([Fault.rateLimited({ seconds: 1 })])
      assertWithin(gap!, 1000, 1000 + RETRY_AFTER_SLACK, "wait before the retry")
    }))

  it.live("retry-after-ms: 300 → the retry arrives 300 ms after the first request", () =>
    Effect.gen(function*() {
      const [gap] = yield* gapsAfter([Fault.rateLimited({ millis: 300 })])
      assertWithin(gap!, 300, 300 + RETRY_AFTER_SLACK, "wait before the retry")
    }))

  it.live("Retry-After as an HTTP date 2 s ahead → the retry waits for that date (second resolution: ≥ 1 s)", () =>
    Effect.gen(function*() {
      // The date is cut to the second it falls in, so "2 s ahead" means 1-2 s ahead depending on when in
      // its second the 429 is sent. Send it well inside a second: at its very end, the wait would be a hair
      // over 1 s and a timer a millisecond early (they run on the event loop's cached clock) would fail this.
      const intoSecond = Date.now() % 1000
      yield* Effect.sleep(
        Duration.millis(intoSecond < 100 ? 100 - intoSecond : intoSecond >= 800 ? 1100 - intoSecond : 0)
      )
      const [gap] = yield* gapsAfter([Fault.rateLimited({ httpDateIn: 2 })])
      assertWithin(gap!, 1000, 2000 + RETRY_AFTER_SLACK, "wait before the retry")
    }))

  it.live("a Retry-After longer than maxRetryAfter fails at once with RateLimitError carrying it", () =>
    withSimulator(
      Effect.gen(function*() {
        const simulator = yield* InferenceSimulator.InferenceSimulator
        yield* simulator.script(Fault.rateLimited({ seconds: 5 }))
        const start = Date.now()
        const error = yield* Effect.flip(ask())
        const elapsed = Date.now() - start
        const log = yield* simulator.log
        assert.strictEqual(error._tag, "RateLimitError")
        assert.deepStrictEqual(
          error._tag === "RateLimitError" ? error.retryAfter : Option.none(),
          Option.some(Duration.seconds(5))
        )
        assert.strictEqual(error.attempts, 1)
        assert.strictEqual(log.length, 1, "requests the simulator received")
        assert.isTrue(elapsed < 1000, `failed after ${elapsed} ms, not at once`)
      }),
      {},
      { retry: { ...fastRetry, maxRetryAfter: "1 second" } }
    ))

  it.live("without Retry-After, retries follow the backoff: 20, 40, 80 ms", () =>
    Effect.gen(function*() {
      const observed = yield* gapsAfter([Fault.rateLimited(), Fault.overloaded, Fault.internalError])
      assert.strictEqual(observed.length, 3)
      for (const [i, expected] of [20, 40, 80].entries()) {
        assertWithin(observed[i]!, expected, expected + SLACK, `wait before retry ${i + 1}`)
      }
    }))

  it.live("a Retry-After shorter than the backoff does not shorten it", () =>
    Effect.gen(function*() {
      // The third attempt's 429 asks for 5 ms; the backoff is at 80 ms by then, and the longer wait wins.
      const observed = yield* gapsAfter([Fault.overloaded, Fault.overloaded, Fault.rateLimited({ millis: 5 })])
      assertWithin(observed[2]!, 80, 80 + SLACK, "wait before retry 3")
    }))

  it.live("a Retry-After applies to its own retry only: the next wait is the backoff again", () =>
    Effect.gen(function*() {
      const observed = yield* gapsAfter([Fault.rateLimited({ millis: 300 }), Fault.overloaded])
      assertWithin(observed[0]!, 300, 300 + RETRY_AFTER_SLACK, "wait before retry 1")
      assertWithin(observed[1]!, 40, 40 + SLACK, "wait before retry 2")
    }))
})
