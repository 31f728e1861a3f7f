import { assert, describe, it } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Chunk from "effect/Chunk"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import * as TestClock from "effect/TestClock"
import * as CircuitBreaker from "../src/CircuitBreaker.js"
import * as InferenceError from "../src/InferenceError.js"
import { hello, withClient } from "./utils/Client.js"
import * as Fake from "./utils/FakeTransport.js"

const overloaded = new InferenceError.ServiceUnavailableError({ status: 503 })

/** A breaker and counted calls through it: how many effects actually ran. */
const setup = (options: CircuitBreaker.Options = {}, key = "http://test/v1 m") =>
  Effect.gen(function*() {
    const breaker = yield* CircuitBreaker.make(key, options)
    let ran = 0
    const run = <A, E extends InferenceError.InferenceError>(effect: Effect.Effect<A, E>) =>
      breaker.withBreaker(Effect.suspend(() => {
        ran++
        return effect
      }))
    return {
      breaker,
      ran: () => ran,
      ok: run(Effect.succeed("ok")),
      fail: (error: InferenceError.InferenceError = overloaded) => Effect.flip(run(Effect.fail(error))),
      times: <A, E>(n: number, effect: Effect.Effect<A, E>) =>
        Effect.forEach(Array.from({ length: n }), () => Effect.either(effect))
    }
  })

const rejectedWith = (error: InferenceError.InferenceError | string) => {
  assert.isFalse(typeof error === "string", "expected a failure")
  const e = error as InferenceError.InferenceError
  assert.strictEqual(e._tag, "CircuitOpenError")
  return e as InferenceError.CircuitOpenError
}

describe("CircuitBreaker", () => {
  describe("counting while closed", () => {
    it.effect("every outcome of concurrent calls through a closed breaker is counted, none twice", () =>
      Effect.gen(function*() {
        const t = yield* setup({
          consecutiveFailures: false,
          failureRate: { threshold: 1, window: 100, minimumCalls: 100 }
        })
        // Each call yields before it ends, so their outcomes interleave.
        const call = (i: number) =>
          Effect.either(
            t.breaker.withBreaker(
              Effect.zipRight(Effect.yieldNow(), i % 3 === 0 ? Effect.fail(overloaded) : Effect.void)
            )
          )
        yield* Effect.forEach(Array.from({ length: 60 }, (_, i) => i), call, { concurrency: "unbounded" })
        const snapshot = yield* t.breaker.snapshot
        assert.strictEqual(snapshot.state, "closed")
        assert.strictEqual(snapshot.window.length, 60)
        assert.strictEqual(snapshot.window.filter(Boolean).length, 20)
      }))

    it.effect("concurrent failures trip it once; outcomes of calls begun before the trip do not count after it", () =>
      Effect.gen(function*() {
        const t = yield* setup({ consecutiveFailures: 5, failureRate: false })
        const failing = t.breaker.withBreaker(Effect.zipRight(Effect.yieldNow(), Effect.fail(overloaded)))
        yield* Effect.forEach(Array.from({ length: 20 }), () => Effect.either(failing), { concurrency: "unbounded" })
        const snapshot = yield* t.breaker.snapshot
        assert.strictEqual(snapshot.state, "open")
        assert.strictEqual(snapshot.trips, 1)
      }))
  })

  describe("closed → open", () => {
    it.effect("after n consecutive counted failures; an open breaker fails fast without running the call", () =>
      Effect.gen(function*() {
        const t = yield* setup({ consecutiveFailures: 3, failureRate: false })
        yield* t.times(2, t.fail())
        assert.strictEqual(yield* t.breaker.state, "closed")
        yield* t.fail()
        assert.strictEqual(yield* t.breaker.state, "open")
        const ranBefore = t.ran()
        const error = rejectedWith(yield* Effect.flip(t.ok))
        assert.strictEqual(t.ran(), ranBefore, "nothing ran")
        assert.strictEqual(error.state, "open")
        assert.isTrue(Duration.equals(Option.getOrThrow(error.retryAfter), Duration.seconds(10)))
        yield* TestClock.adjust("4 seconds")
        const later = rejectedWith(yield* Effect.flip(t.ok))
        assert.isTrue(Duration.equals(Option.getOrThrow(later.retryAfter), Duration.seconds(6)), "time until half-open")
      }))

    it.effect("a success in between resets the count of failures in a row", () =>
      Effect.gen(function*() {
        const t = yield* setup({ consecutiveFailures: 3, failureRate: false })
        yield* t.times(2, t.fail())
        yield* t.ok
        yield* t.times(2, t.fail())
        assert.strictEqual(yield* t.breaker.state, "closed")
        yield* t.fail()
        assert.strictEqual(yield* t.breaker.state, "open")
      }))

    it.effect("by failure rate over a sliding window, once the minimum number of calls is reached", () =>
      Effect.gen(function*() {
        const t = yield* setup({
          consecutiveFailures: false,
          failureRate: { threshold: 0.5, window: 10, minimumCalls: 6 }
        })
        // F S F S F S: 3 of 6 failed, but the rule is checked on a failure
        for (let i = 0; i < 3; i++) {
          yield* t.fail()
          yield* t.ok
        }
        assert.strictEqual(yield* t.breaker.state, "closed")
        yield* t.fail() // 4 of 7
        assert.strictEqual(yield* t.breaker.state, "open")
      }))

    it.effect("the failure rate only looks at the last `window` calls", () =>
      Effect.gen(function*() {
        const t = yield* setup({
          consecutiveFailures: false,
          failureRate: { threshold: 0.5, window: 4, minimumCalls: 4 }
        })
        yield* t.times(2, t.fail())
        yield* t.times(6, t.ok) // the two failures slide out
        yield* t.fail() // 1 of the last 4
        assert.strictEqual(yield* t.breaker.state, "closed")
        yield* t.fail() // 2 of the last 4
        assert.strictEqual(yield* t.breaker.state, "open")
      }))

    it.effect("client errors and interruptions never trip it", () =>
      Effect.gen(function*() {
        const t = yield* setup({ consecutiveFailures: 2, failureRate: { threshold: 0.1, window: 10, minimumCalls: 1 } })
        const clientErrors = [
          new InferenceError.BadRequestError({ status: 400 }),
          new InferenceError.AuthenticationError({ status: 401 }),
          new InferenceError.QuotaExceededError({ status: 402 }),
          new InferenceError.PermissionDeniedError({ status: 403, reason: "Other" }),
          new InferenceError.NotFoundError({ status: 404 }),
          new InferenceError.UnprocessableEntityError({ status: 422 }),
          new InferenceError.InvalidRequestError({ path: "model", issue: "missing" }),
          new InferenceError.ResponseDecodeError({ description: "not JSON" })
        ]
        for (let round = 0; round < 10; round++) for (const error of clientErrors) yield* t.fail(error)
        for (let i = 0; i < 10; i++) {
          const fiber = yield* Effect.fork(t.breaker.withBreaker(Effect.never))
          yield* Effect.yieldNow()
          yield* Fiber.interrupt(fiber)
        }
        assert.strictEqual(yield* t.breaker.state, "closed")
      }))

    // Since 0.2.0 a RateLimitError is not among them: see "rate limits (429)" below.
    it.effect("every service failure counts", () =>
      Effect.gen(function*() {
        const failures = [
          new InferenceError.ConnectionError({ description: "ECONNRESET", sent: true }),
          new InferenceError.ConnectionError({ description: "ECONNREFUSED", sent: false }),
          new InferenceError.TimeoutError({ phase: "attempt", timeout: Duration.seconds(1) }),
          new InferenceError.InternalServerError({ status: 500 }),
          overloaded
        ]
        for (const failure of failures) {
          const t = yield* setup({ consecutiveFailures: 1, failureRate: false })
          yield* t.fail(failure)
          assert.strictEqual(yield* t.breaker.state, "open", failure._tag)
        }
      }))
  })

  describe("rate limits (429): busy, not broken", () => {
    const rateLimited = new InferenceError.RateLimitError({ status: 429, scope: "project", limitedModel: "m" })
    const serverError = new InferenceError.InternalServerError({ status: 500 })

    it.effect("are not a service failure by the default rule", () =>
      Effect.sync(() => {
        assert.isFalse(CircuitBreaker.isServiceFailure(rateLimited))
        assert.isFalse(CircuitBreaker.isServiceFailure(new InferenceError.RateLimitError({ status: 429 })))
      }))

    it.effect("many 429s in a row do not open it, by either rule", () =>
      Effect.gen(function*() {
        const t = yield* setup({ consecutiveFailures: 2, failureRate: { threshold: 0.1, window: 10, minimumCalls: 1 } })
        yield* t.times(50, t.fail(rateLimited))
        assert.strictEqual(yield* t.breaker.state, "closed")
        assert.strictEqual(t.ran(), 50, "every call was let through")
        const snapshot = yield* t.breaker.snapshot
        assert.strictEqual(snapshot.consecutiveFailures, 0)
        assert.deepStrictEqual(snapshot.window, [], "no outcome was recorded")
      }))

    it.effect("a 429 does not reset a run of failures: 500, 500, 429, 500 trips at 3 as if it were absent", () =>
      Effect.gen(function*() {
        const t = yield* setup({ consecutiveFailures: 3, failureRate: false })
        yield* t.times(2, t.fail(serverError))
        yield* t.times(5, t.fail(rateLimited))
        assert.strictEqual(yield* t.breaker.state, "closed")
        assert.strictEqual((yield* t.breaker.snapshot).consecutiveFailures, 2, "the run is kept")
        yield* t.fail(serverError)
        assert.strictEqual(yield* t.breaker.state, "open")
      }))

    it.effect("a 429 takes no place in the failure-rate window", () =>
      Effect.gen(function*() {
        const t = yield* setup({
          consecutiveFailures: false,
          failureRate: { threshold: 0.5, window: 4, minimumCalls: 4 }
        })
        // S F 429 429 429 S F: the window holds S F S F, 2 of 4 failed
        yield* t.ok
        yield* t.fail(serverError)
        yield* t.times(3, t.fail(rateLimited))
        yield* t.ok
        assert.deepStrictEqual((yield* t.breaker.snapshot).window, [false, true, false])
        yield* t.fail(serverError)
        assert.strictEqual(yield* t.breaker.state, "open")
      }))

    it.effect("a 429 from a probe frees its slot without a verdict", () =>
      Effect.gen(function*() {
        const t = yield* setup({ consecutiveFailures: 1, failureRate: false, halfOpenProbes: 1 })
        yield* t.fail(serverError)
        yield* TestClock.adjust("10 seconds")
        yield* t.fail(rateLimited)
        assert.strictEqual(yield* t.breaker.state, "half-open", "neither reopened nor closed")
        yield* t.ok
        assert.strictEqual(yield* t.breaker.state, "closed", "the next call could probe")
      }))

    it.effect("through the client: 429 answers never open the model's breaker; 500s around them do", () =>
      Effect.gen(function*() {
        const limit = Fake.json(429, {
          error: {
            message: "concurrency limit reached for requests: meta-llama/Llama-3.1-8B-Instruct-project limit reached",
            type: "rate_limit_error",
            param: null,
            code: "rate_limit_exceeded"
          }
        })
        const fault = Fake.json(500, Fake.errorBody("The server had an error while processing your request"))
        const tags = (script: ReadonlyArray<Fake.Reply>, calls: number) =>
          withClient(
            Fake.make(script),
            (client) => Effect.forEach(Array.from({ length: calls }), () => Effect.flip(client.chatCompletion(hello))),
            { retry: false, circuitBreaker: { consecutiveFailures: 3, failureRate: false } }
          ).pipe(Effect.map((errors) => errors.map((e) => e._tag)))
        assert.deepStrictEqual(yield* tags([limit], 10), Array(10).fill("RateLimitError"))
        assert.deepStrictEqual(yield* tags([fault, fault, limit, limit, fault, fault], 6), [
          "InternalServerError",
          "InternalServerError",
          "RateLimitError",
          "RateLimitError",
          "InternalServerError",
          "CircuitOpenError"
        ])
      }))
  })

  describe("open → half-open → closed or open", () => {
    it.effect("turns half-open when the break is over, read lazily from the clock", () =>
      Effect.gen(function*() {
        const t = yield* setup({ consecutiveFailures: 1, failureRate: false, breakDuration: "30 seconds" })
        yield* t.fail()
        yield* TestClock.adjust("29999 millis")
        assert.strictEqual(yield* t.breaker.state, "open")
        yield* TestClock.adjust("1 millis")
        assert.strictEqual(yield* t.breaker.state, "half-open")
      }))

    it.effect("closes when its probes succeed", () =>
      Effect.gen(function*() {
        const t = yield* setup({ consecutiveFailures: 1, failureRate: false, halfOpenProbes: 3 })
        yield* t.fail()
        yield* TestClock.adjust("10 seconds")
        yield* t.times(2, t.ok)
        assert.strictEqual(yield* t.breaker.state, "half-open")
        yield* t.ok
        assert.strictEqual(yield* t.breaker.state, "closed")
        const snapshot = yield* t.breaker.snapshot
        assert.strictEqual(snapshot.trips, 0, "the break schedule starts over")
      }))

    it.effect("reopens on a failed probe, with a longer break each trip in a row, up to the cap", () =>
      Effect.gen(function*() {
        const t = yield* setup({ consecutiveFailures: 1, failureRate: false, halfOpenProbes: 1 })
        const breaks: Array<number> = []
        yield* t.fail()
        for (let trip = 0; trip < 7; trip++) {
          const error = rejectedWith(yield* Effect.flip(t.ok))
          const wait = Option.getOrThrow(error.retryAfter)
          breaks.push(Duration.toSeconds(wait))
          yield* TestClock.adjust(wait)
          yield* t.fail() // the probe fails
        }
        assert.deepStrictEqual(breaks, [10, 20, 40, 80, 120, 120, 120])
      }))

    it.effect("lets only halfOpenProbes calls through when half-open; the others fail fast", () =>
      Effect.gen(function*() {
        const t = yield* setup({ consecutiveFailures: 1, failureRate: false, halfOpenProbes: 1 })
        yield* t.fail()
        yield* TestClock.adjust("10 seconds")
        const probe = yield* Effect.fork(t.breaker.withBreaker(Effect.as(Effect.sleep("5 seconds"), "probe")))
        yield* Effect.yieldNow()
        const extra = rejectedWith(yield* Effect.flip(t.ok))
        assert.strictEqual(extra.state, "half-open")
        yield* TestClock.adjust("5 seconds")
        assert.strictEqual(yield* Fiber.join(probe), "probe")
        assert.strictEqual(yield* t.breaker.state, "closed")
      }))

    it.effect("a client error from a probe frees its slot without a verdict", () =>
      Effect.gen(function*() {
        const t = yield* setup({ consecutiveFailures: 1, failureRate: false, halfOpenProbes: 1 })
        yield* t.fail()
        yield* TestClock.adjust("10 seconds")
        yield* t.fail(new InferenceError.BadRequestError({ status: 400 }))
        assert.strictEqual(yield* t.breaker.state, "half-open")
        yield* t.ok
        assert.strictEqual(yield* t.breaker.state, "closed")
      }))

    it.effect("a call that started before the breaker opened does not count after", () =>
      Effect.gen(function*() {
        const t = yield* setup({ consecutiveFailures: 1, failureRate: false, halfOpenProbes: 1 })
        const slow = yield* Effect.fork(t.breaker.withBreaker(Effect.as(Effect.sleep("20 seconds"), "late")))
        yield* Effect.yieldNow()
        yield* t.fail() // opens
        yield* TestClock.adjust("10 seconds") // half-open
        yield* TestClock.adjust("10 seconds") // the slow call succeeds now, as an outcome of the closed state
        yield* Fiber.join(slow)
        assert.strictEqual(yield* t.breaker.state, "half-open", "the late success did not close it")
      }))
  })

  describe("controls, events, metrics, snapshots", () => {
    it.effect("isolate holds it open past any break; reset closes it", () =>
      Effect.gen(function*() {
        const t = yield* setup()
        yield* t.breaker.isolate
        yield* TestClock.adjust("1 day")
        const error = rejectedWith(yield* Effect.flip(t.ok))
        assert.isTrue(Option.isNone(error.retryAfter))
        yield* t.breaker.reset
        assert.strictEqual(yield* t.ok, "ok")
      }))

    it.effect("publishes each change of state, with the clock's time", () =>
      Effect.gen(function*() {
        const t = yield* setup({ consecutiveFailures: 1, failureRate: false, halfOpenProbes: 1 })
        const queue = yield* t.breaker.subscribe
        yield* Effect.yieldNow()
        yield* t.fail()
        yield* TestClock.adjust("10 seconds")
        yield* t.ok
        const events = Chunk.toReadonlyArray(yield* Queue.takeAll(queue))
        assert.deepStrictEqual(events.map((e) => [e.from, e.to, e.at]), [
          ["closed", "open", 0],
          ["open", "half-open", 10_000],
          ["half-open", "closed", 10_000]
        ])
      }).pipe(Effect.scoped))

    it.effect("counts transitions and rejections in metrics", () =>
      Effect.gen(function*() {
        const key = "http://metrics/v1 m"
        const t = yield* setup({ consecutiveFailures: 1, failureRate: false }, key)
        yield* t.fail()
        yield* t.times(3, t.ok)
        const { rejected, state, transitions } = CircuitBreaker.metrics
        const opened = yield* Metric.value(
          transitions.pipe(Metric.tagged("breaker", key), Metric.tagged("from", "closed"), Metric.tagged("to", "open"))
        )
        assert.strictEqual(opened.count, 1)
        assert.strictEqual((yield* Metric.value(Metric.tagged(rejected, "breaker", key))).count, 3)
        assert.strictEqual((yield* Metric.value(Metric.tagged(state, "breaker", key))).value, 2)
      }))

    it.effect("a snapshot survives JSON and restores the same state, break included", () =>
      Effect.gen(function*() {
        const t = yield* setup({ consecutiveFailures: 1, failureRate: false, halfOpenProbes: 1 })
        yield* t.fail()
        yield* TestClock.adjust("10 seconds")
        yield* t.fail() // second trip: a 20 s break
        const json = JSON.stringify(yield* Schema.encode(CircuitBreaker.Snapshot)(yield* t.breaker.snapshot))
        const saved = yield* Schema.decode(CircuitBreaker.Snapshot)(JSON.parse(json))
        const other = yield* setup({ consecutiveFailures: 1, failureRate: false, halfOpenProbes: 1 }, "other")
        yield* other.breaker.restore(saved)
        const error = rejectedWith(yield* Effect.flip(other.ok))
        assert.isTrue(Duration.equals(Option.getOrThrow(error.retryAfter), Duration.seconds(20)))
        yield* TestClock.adjust("20 seconds")
        yield* other.fail() // the next break continues the schedule: 40 s
        const next = rejectedWith(yield* Effect.flip(other.ok))
        assert.isTrue(Duration.equals(Option.getOrThrow(next.retryAfter), Duration.seconds(40)))
      }))

    it.effect("a registry makes one breaker per key and merges their events", () =>
      Effect.gen(function*() {
        const registry = yield* CircuitBreaker.makeRegistry({ consecutiveFailures: 1, failureRate: false })
        const a = yield* registry.get(CircuitBreaker.key("http://x/v1", "a"))
        assert.strictEqual(yield* registry.get(CircuitBreaker.key("http://x/v1", "a")), a)
        const b = yield* registry.get(CircuitBreaker.key("http://x/v1", "b"))
        const queue = yield* registry.subscribe
        yield* Effect.yieldNow()
        yield* Effect.either(a.withBreaker(Effect.fail(overloaded)))
        assert.strictEqual(yield* a.state, "open")
        assert.strictEqual(yield* b.state, "closed", "breakers do not share state")
        const [event] = Chunk.toReadonlyArray(yield* Queue.takeAll(queue))
        assert.strictEqual(event?.key, "http://x/v1 a")
        assert.strictEqual((yield* registry.all).length, 2)
      }).pipe(Effect.scoped))

    it.effect("invalid options stop the program with a message naming the option", () =>
      Effect.gen(function*() {
        const exit = yield* Effect.exit(CircuitBreaker.make("k", { halfOpenProbes: 0 }))
        assert.isTrue(Exit.isFailure(exit) && Cause.isDie(exit.cause))
        if (Exit.isFailure(exit)) assert.include(Cause.pretty(exit.cause), "halfOpenProbes")
      }))

    it.effect("a custom Schedule sets the breaks", () =>
      Effect.gen(function*() {
        const t = yield* setup({
          consecutiveFailures: 1,
          failureRate: false,
          halfOpenProbes: 1,
          breakDuration: Schedule.fibonacci("1 second")
        })
        const breaks: Array<number> = []
        yield* t.fail()
        for (let trip = 0; trip < 5; trip++) {
          const wait = Option.getOrThrow(rejectedWith(yield* Effect.flip(t.ok)).retryAfter)
          breaks.push(Duration.toSeconds(wait))
          yield* TestClock.adjust(wait)
          yield* t.fail()
        }
        assert.deepStrictEqual(breaks, [1, 1, 2, 3, 5])
      }))
  })
})
