import { assert, describe, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import * as TestClock from "effect/TestClock"
import * as InferenceError from "../src/InferenceError.js"
import * as RetryPolicy from "../src/RetryPolicy.js"
import { everyErrorList } from "./utils/Errors.js"
import { repeat, steps } from "./utils/ScheduleSteps.js"

const noJitter: Partial<RetryPolicy.Options> = { baseDelay: "1 second", factor: 2, jitter: false }

const busy = new InferenceError.ServiceUnavailableError({ status: 503 })
const denied = new InferenceError.AuthenticationError({ status: 401 })
const rateLimited = (retryAfter?: Duration.DurationInput) =>
  new InferenceError.RateLimitError({
    status: 429,
    retryAfter: retryAfter === undefined ? Option.none() : Option.some(Duration.decode(retryAfter))
  })

describe("RetryPolicy", () => {
  describe("make", () => {
    it.effect("the default options are 3 retries, 1 s doubling to 30 s, jittered, Retry-After up to 60 s", () =>
      Effect.sync(() => {
        const o = RetryPolicy.defaultOptions
        assert.strictEqual(o.maxRetries, 3)
        assert.strictEqual(Duration.toMillis(o.baseDelay), 1000)
        assert.strictEqual(o.factor, 2)
        assert.strictEqual(Duration.toMillis(o.maxDelay), 30_000)
        assert.isTrue(o.jitter)
        assert.strictEqual(Duration.toMillis(o.maxRetryAfter), 60_000)
      }))

    it.effect("outputs the delay before each retry (Schedule.run)", () =>
      Effect.gen(function*() {
        const out = yield* Schedule.run(RetryPolicy.make({ ...noJitter, maxRetries: 3 }), 0, repeat(busy, 3))
        assert.deepStrictEqual(Chunk.toReadonlyArray(out).map(Duration.toMillis), [1000, 2000, 4000])
      }))

    it.effect("delays grow exponentially from baseDelay by factor", () =>
      Effect.gen(function*() {
        const doubling = yield* steps(RetryPolicy.make({ ...noJitter, maxRetries: 5 }), repeat(busy, 5))
        assert.deepStrictEqual(doubling.delays, [1000, 2000, 4000, 8000, 16_000])
        const tripling = yield* steps(
          RetryPolicy.make({ maxRetries: 3, baseDelay: "200 millis", factor: 3, jitter: false }),
          repeat(busy, 3)
        )
        assert.deepStrictEqual(tripling.delays, [200, 600, 1800])
      }))

    it.effect("delays are capped at maxDelay", () =>
      Effect.gen(function*() {
        const result = yield* steps(RetryPolicy.make({ ...noJitter, maxRetries: 6, maxDelay: "5 seconds" }), [
          ...repeat(busy, 6)
        ])
        assert.deepStrictEqual(result.delays, [1000, 2000, 4000, 5000, 5000, 5000])
      }))

    it.effect("the default cap is 30 seconds", () =>
      Effect.gen(function*() {
        const result = yield* steps(RetryPolicy.make({ ...noJitter, maxRetries: 7 }), repeat(busy, 7))
        assert.deepStrictEqual(result.delays, [1000, 2000, 4000, 8000, 16_000, 30_000, 30_000])
      }))

    it.effect("stops after maxRetries retries", () =>
      Effect.gen(function*() {
        const result = yield* steps(RetryPolicy.make({ ...noJitter, maxRetries: 2 }), repeat(busy, 5))
        assert.deepStrictEqual(result.delays, [1000, 2000])
        assert.isTrue(result.done)
      }))

    it.effect("maxRetries 0 stops at the first failure", () =>
      Effect.gen(function*() {
        const result = yield* steps(RetryPolicy.make({ ...noJitter, maxRetries: 0 }), [busy])
        assert.deepStrictEqual(result.delays, [])
        assert.isTrue(result.done)
      }))

    it.effect("the defaults allow exactly 3 retries", () =>
      Effect.gen(function*() {
        const result = yield* steps(RetryPolicy.make(), repeat(busy, 4))
        assert.strictEqual(result.delays.length, 3)
        assert.isTrue(result.done)
      }))

    it.effect("stops on a non-retryable error, even after retryable ones", () =>
      Effect.gen(function*() {
        const result = yield* steps(RetryPolicy.make({ ...noJitter, maxRetries: 5 }), [busy, busy, denied, busy])
        assert.deepStrictEqual(result.delays, [1000, 2000])
        assert.isTrue(result.done)
      }))

    for (const error of everyErrorList) {
      const retryable = InferenceError.isRetryable(error)
      it.effect(`${retryable ? "continues" : "stops"} on a first ${error._tag}`, () =>
        Effect.gen(function*() {
          // the samples carry a 7 s Retry-After, within the default 60 s
          const result = yield* steps(RetryPolicy.make({ ...noJitter, maxRetries: 1 }), [error])
          assert.strictEqual(result.done, !retryable)
          if (retryable) assert.deepStrictEqual(result.delays, [7000])
        }))
    }

    it.effect("stops on a total TimeoutError but not on an attempt one", () =>
      Effect.gen(function*() {
        const policy = RetryPolicy.make({ ...noJitter, maxRetries: 3 })
        const timeout = Duration.seconds(10)
        const attempt = yield* steps(policy, [new InferenceError.TimeoutError({ phase: "attempt", timeout })])
        const total = yield* steps(policy, [new InferenceError.TimeoutError({ phase: "total", timeout })])
        assert.deepStrictEqual(attempt.delays, [1000])
        assert.isTrue(total.done)
        assert.deepStrictEqual(total.delays, [])
      }))

    it.effect("jitter spreads each delay over 80%-120% of the capped backoff, so clients at the cap stay apart", () =>
      Effect.gen(function*() {
        const policy = RetryPolicy.make({ maxRetries: 6, baseDelay: "1 second", maxDelay: "10 seconds", jitter: true })
        const runs = yield* Effect.forEach(repeat(policy, 20), (p) => steps(p, repeat(busy, 6)))
        // the times are fractional milliseconds, so allow for float rounding
        const epsilon = 1e-6
        for (const { delays } of runs) {
          assert.strictEqual(delays.length, 6)
          delays.forEach((delay, i) => {
            const nominal = 1000 * 2 ** i
            const capped = Math.min(nominal, 10_000)
            assert.isAtLeast(delay, capped * 0.8 - epsilon, `retry ${i + 1}`)
            assert.isAtMost(delay, capped * 1.2 + epsilon, `retry ${i + 1}`)
          })
        }
        const firsts = new Set(runs.map((r) => r.delays[0]))
        assert.isAbove(firsts.size, 1, "jitter spreads the delays")
        const atCap = new Set(runs.map((r) => r.delays[5]))
        assert.isAbove(atCap.size, 1, "delays at the cap are still spread")
      }))
  })

  describe("Retry-After in make", () => {
    it.effect("a Retry-After longer than the backoff sets the delay", () =>
      Effect.gen(function*() {
        const result = yield* steps(RetryPolicy.make({ ...noJitter, maxRetries: 3 }), [rateLimited("10 seconds")])
        assert.deepStrictEqual(result.delays, [10_000])
      }))

    it.effect("a Retry-After shorter than the backoff leaves the backoff", () =>
      Effect.gen(function*() {
        const result = yield* steps(RetryPolicy.make({ ...noJitter, baseDelay: "3 seconds" }), [
          rateLimited("500 millis")
        ])
        assert.deepStrictEqual(result.delays, [3000])
      }))

    it.effect("a Retry-After raises only its own delay; the backoff carries on after it", () =>
      Effect.gen(function*() {
        const result = yield* steps(RetryPolicy.make({ ...noJitter, maxRetries: 3 }), [
          busy,
          rateLimited("20 seconds"),
          busy
        ])
        assert.deepStrictEqual(result.delays, [1000, 20_000, 4000])
      }))

    it.effect("a Retry-After above maxDelay but within maxRetryAfter is obeyed", () =>
      Effect.gen(function*() {
        const result = yield* steps(RetryPolicy.make({ ...noJitter, maxDelay: "5 seconds" }), [
          rateLimited("45 seconds")
        ])
        assert.deepStrictEqual(result.delays, [45_000])
      }))

    it.effect("a Retry-After above maxRetryAfter stops at once", () =>
      Effect.gen(function*() {
        const result = yield* steps(RetryPolicy.make({ ...noJitter, maxRetryAfter: "60 seconds" }), [
          rateLimited("61 seconds")
        ])
        assert.isTrue(result.done)
        assert.deepStrictEqual(result.delays, [])
      }))

    it.effect("a Retry-After equal to maxRetryAfter is still obeyed", () =>
      Effect.gen(function*() {
        const result = yield* steps(RetryPolicy.make({ ...noJitter, maxRetryAfter: "5 seconds" }), [
          rateLimited("5 seconds")
        ])
        assert.deepStrictEqual(result.delays, [5000])
      }))

    it.effect("jitter never brings a delay below the Retry-After", () =>
      Effect.gen(function*() {
        const policy = RetryPolicy.make({ maxRetries: 3, jitter: true })
        const runs = yield* Effect.forEach(repeat(policy, 20), (p) => steps(p, [rateLimited("10 seconds")]))
        for (const { delays } of runs) assert.deepStrictEqual(delays, [10_000])
      }))

    it.effect("a Retry-After does not extend the retries of a non-retryable error", () =>
      Effect.gen(function*() {
        const quota = new InferenceError.QuotaExceededError({
          status: 429,
          retryAfter: Option.some(Duration.seconds(1))
        })
        const result = yield* steps(RetryPolicy.make(noJitter), [quota])
        assert.isTrue(result.done)
      }))
  })

  describe("withRetryAfter", () => {
    const spaced = Schedule.spaced("2 seconds")

    it.effect("data-first: raises the delay to the error's retryAfter", () =>
      Effect.gen(function*() {
        const result = yield* steps(RetryPolicy.withRetryAfter(spaced, "1 minute"), [rateLimited("9 seconds"), busy])
        assert.deepStrictEqual(result.delays, [9000, 2000])
      }))

    it.effect("data-last: raises the delay to the error's retryAfter", () =>
      Effect.gen(function*() {
        const result = yield* steps(spaced.pipe(RetryPolicy.withRetryAfter("1 minute")), [
          rateLimited("9 seconds"),
          busy
        ])
        assert.deepStrictEqual(result.delays, [9000, 2000])
      }))

    it.effect("leaves the delay alone when the error has no retryAfter", () =>
      Effect.gen(function*() {
        const invalid = new InferenceError.InvalidRequestError({ path: "model", issue: "is missing" })
        const result = yield* steps(RetryPolicy.withRetryAfter(spaced, "1 minute"), [busy, rateLimited(), invalid])
        assert.deepStrictEqual(result.delays, [2000, 2000, 2000])
        assert.isFalse(result.done)
      }))

    it.effect("never shortens a delay", () =>
      Effect.gen(function*() {
        const result = yield* steps(RetryPolicy.withRetryAfter(spaced, "1 minute"), [rateLimited("1 second")])
        assert.deepStrictEqual(result.delays, [2000])
      }))

    it.effect("stops when retryAfter exceeds maxRetryAfter (data-first and data-last)", () =>
      Effect.gen(function*() {
        const first = yield* steps(RetryPolicy.withRetryAfter(spaced, "30 seconds"), [busy, rateLimited("31 seconds")])
        const last = yield* steps(spaced.pipe(RetryPolicy.withRetryAfter("30 seconds")), [
          busy,
          rateLimited("31 seconds")
        ])
        for (const result of [first, last]) {
          assert.deepStrictEqual(result.delays, [2000])
          assert.isTrue(result.done)
        }
      }))

    it.effect("keeps the output of the schedule it wraps", () =>
      Effect.gen(function*() {
        const out = yield* Schedule.run(
          RetryPolicy.withRetryAfter(Schedule.recurs(5), "1 minute"),
          0,
          [busy, rateLimited("3 seconds"), busy]
        )
        assert.deepStrictEqual(Chunk.toReadonlyArray(out), [0, 1, 2])
      }))

    it.effect("still stops when the schedule it wraps stops", () =>
      Effect.gen(function*() {
        const result = yield* steps(RetryPolicy.withRetryAfter(Schedule.recurs(1), "1 minute"), [
          rateLimited("3 seconds"),
          rateLimited("3 seconds")
        ])
        assert.deepStrictEqual(result.delays, [3000])
        assert.isTrue(result.done)
      }))
  })

  describe("composition", () => {
    it.effect("piped into Schedule.upTo, Retry-After is obeyed until the time bound stops it", () =>
      Effect.gen(function*() {
        const policy = RetryPolicy.make({ ...noJitter, maxRetries: 10 }).pipe(Schedule.upTo("10 seconds"))
        const result = yield* steps(policy, repeat(rateLimited("8 seconds"), 5))
        // decided at 0 s and 8 s; at 16 s the 10 s are up
        assert.deepStrictEqual(result.delays, [8000, 8000])
        assert.isTrue(result.done)
      }))

    it.effect("intersected with a longer spacing, the longer delay wins and Retry-After still raises it", () =>
      Effect.gen(function*() {
        const policy = Schedule.intersect(
          RetryPolicy.make({ ...noJitter, maxRetries: 3 }),
          Schedule.spaced("3 seconds")
        )
        const result = yield* steps(policy, [busy, rateLimited("10 seconds"), busy, busy])
        assert.deepStrictEqual(result.delays, [3000, 10_000, 4000])
        assert.isTrue(result.done)
      }))

    it.effect("intersected with Schedule.recurs, the fewer retries win and Retry-After still sets the delay", () =>
      Effect.gen(function*() {
        const policy = Schedule.intersect(RetryPolicy.make({ ...noJitter, maxRetries: 3 }), Schedule.recurs(1))
        const result = yield* steps(policy, [rateLimited("12 seconds"), busy])
        assert.deepStrictEqual(result.delays, [12_000])
        assert.isTrue(result.done)
      }))

    it.effect("intersected with Schedule.recurUpTo, a Retry-After above maxRetryAfter still stops at once", () =>
      Effect.gen(function*() {
        const policy = Schedule.intersect(RetryPolicy.make(noJitter), Schedule.recurUpTo("1 hour"))
        const result = yield* steps(policy, [rateLimited("2 minutes")])
        assert.isTrue(result.done)
      }))

    it.effect("withRetryAfter added around a composed schedule applies to it all", () =>
      Effect.gen(function*() {
        const policy = Schedule.exponential("1 second").pipe(
          Schedule.upTo("1 minute"),
          RetryPolicy.withRetryAfter("20 seconds")
        )
        const result = yield* steps(policy, [busy, rateLimited("15 seconds"), busy, rateLimited("21 seconds")])
        assert.deepStrictEqual(result.delays, [1000, 15_000, 4000])
        assert.isTrue(result.done)
      }))
  })

  describe("with Effect.retry on the TestClock", () => {
    /** Fails with `errors` in order, then succeeds; records the clock at each attempt. */
    const scripted = (errors: ReadonlyArray<InferenceError.InferenceError>) => {
      const times: Array<number> = []
      const attempt = Effect.flatMap(Clock.currentTimeMillis, (now) => {
        times.push(now)
        const error = errors[times.length - 1]
        return error === undefined ? Effect.succeed("done") : Effect.fail(error)
      })
      return { times, attempt }
    }

    it.effect("waits the backoff and the Retry-After between attempts, then succeeds", () =>
      Effect.gen(function*() {
        const { attempt, times } = scripted([rateLimited("5 seconds"), busy, busy])
        const fiber = yield* Effect.fork(Effect.retry(attempt, RetryPolicy.make({ ...noJitter, maxRetries: 3 })))
        yield* TestClock.adjust("4999 millis")
        assert.deepStrictEqual(times, [0], "no retry before the Retry-After has passed")
        yield* TestClock.adjust("1 hour")
        const exit = yield* fiber.await
        assert.isTrue(Exit.isSuccess(exit))
        assert.deepStrictEqual(times, [0, 5000, 7000, 11_000])
      }))

    it.effect("gives up after maxRetries with the last error", () =>
      Effect.gen(function*() {
        const last = new InferenceError.InternalServerError({ status: 500, requestId: "last" })
        const { attempt, times } = scripted([busy, busy, last, busy])
        const fiber = yield* Effect.fork(Effect.retry(attempt, RetryPolicy.make({ ...noJitter, maxRetries: 2 })))
        yield* TestClock.adjust("1 hour")
        assert.strictEqual(yield* Effect.flip(Fiber.join(fiber)), last)
        assert.deepStrictEqual(times, [0, 1000, 3000])
      }))

    it.effect("fails at once on a Retry-After above maxRetryAfter", () =>
      Effect.gen(function*() {
        const tooLong = rateLimited("5 minutes")
        const { attempt, times } = scripted([tooLong])
        const fiber = yield* Effect.fork(Effect.retry(attempt, RetryPolicy.make(noJitter)))
        yield* TestClock.adjust("1 hour")
        assert.strictEqual(yield* Effect.flip(Fiber.join(fiber)), tooLong)
        assert.deepStrictEqual(times, [0])
      }))
  })
})
