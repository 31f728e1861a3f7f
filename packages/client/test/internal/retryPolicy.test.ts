/**
 * Where a retry is decided: how many attempts, the backoff between them, and Retry-After.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import { callHello as call, failureOf } from "../utils/Client.js"
import * as Fake from "../utils/FakeTransport.js"

describe("InferenceClient", () => {
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
})
