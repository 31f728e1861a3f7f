/**
 * Each model's adaptive limit in a client: a line of permits that follows what
 * the service answers, its gauge and its log line, and how long a stream's
 * attempt holds its permit.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as HashMap from "effect/HashMap"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Metric from "effect/Metric"
import * as Scope from "effect/Scope"
import * as TestClock from "effect/TestClock"
import * as ConcurrencyStore from "../../src/ConcurrencyStore.js"
import * as InferenceError from "../../src/InferenceError.js"
import * as Adaptive from "../../src/internal/adaptiveConcurrency.js"

const options = { initial: 16, min: 1, max: 64 }

/**
 * A service that serves `limit` requests at once, 200 ms each, and refuses more
 * with a 429 at once; it counts what it was sent, refused, and the most it served.
 */
const service = (limit: number) => {
  let serving = 0
  const counts = { sent: 0, refused: 0, peak: 0 }
  const call = Effect.suspend(() => {
    counts.sent++
    if (serving >= limit) {
      counts.refused++
      return Effect.fail(new InferenceError.RateLimitError({ status: 429, scope: "model" }))
    }
    serving++
    counts.peak = Math.max(counts.peak, serving)
    return Effect.ensuring(
      Effect.sleep("200 millis"),
      Effect.sync(() => {
        serving--
      })
    )
  })
  return { call, counts }
}

/** `calls` calls through `limits`, 256 at a time, each retried after 100 ms when refused, on the TestClock. */
const drive = (
  limits: Adaptive.AdaptiveLimits,
  call: Effect.Effect<void, InferenceError.InferenceError>,
  calls: number
) =>
  Effect.gen(function*() {
    const attempt = limits.withPermit(call, "m", "attempt")
    const retried: Effect.Effect<void> = Effect.catchAll(attempt, () =>
      Effect.zipRight(Effect.sleep("100 millis"), retried))
    const running = yield* Effect.fork(Effect.forEach(Array.from({ length: calls }), () =>
      retried, {
      concurrency: 256,
      discard: true
    }))
    while (running.unsafePoll() === null) yield* TestClock.adjust("100 millis")
    return yield* Fiber.join(running)
  })

describe("adaptive concurrency", () => {
  it.effect(
    "finds a limit it is not told, with few 429s, and never lets more than the limit in flight",
    () =>
      Effect.gen(function*() {
        for (const [limit, calls] of [[1, 40], [8, 300], [40, 600]] as const) {
          const limits = Adaptive.make(options, yield* Effect.clock)
          const { call, counts } = service(limit)
          yield* drive(limits, call, calls)
          // The first burst (the initial limit of 16) is refused above the limit; after it, at most 3%.
          assert.isAtMost(counts.refused, 15 + 0.03 * counts.sent, `limit ${limit}: refused of ${counts.sent}`)
          assert.strictEqual(counts.peak, limit)
          assert.isAtLeast(limits.limit("m"), limit, `limit ${limit}: found`)
          assert.isAtMost(limits.limit("m"), limit + 1, `limit ${limit}: not far above`)
        }
      }),
    60_000
  )

  it.effect(
    "two processes sharing a ConcurrencyStore learn the one limit together and stay under it",
    () =>
      Effect.gen(function*() {
        const store = yield* ConcurrencyStore.makeMemory
        const clock = yield* Effect.clock
        const shared = { store, scope: "http://inference.test/v1 team/project" }
        const a = Adaptive.make(options, clock, shared)
        const b = Adaptive.make(options, clock, shared)
        const { call, counts } = service(6)
        yield* Effect.all([drive(a, call, 300), drive(b, call, 300)], { concurrency: "unbounded" })
        assert.strictEqual(counts.peak, 6)
        // Alone, each would have found 6 for itself and sent 12 at once: the shared counts keep both at the one limit.
        for (const limits of [a, b]) {
          assert.isAtLeast(limits.limit("m"), 6)
          assert.isAtMost(limits.limit("m"), 7)
        }
        // The first burst (16 each, within the store's count) is over the limit; after that, a few probes.
        assert.isAtMost(counts.refused, 16 - 6 + 0.03 * counts.sent, `refused ${counts.refused} of ${counts.sent}`)
        assert.strictEqual(
          yield* store.held("adaptive http://inference.test/v1 team/project m"),
          0,
          "every lease given back"
        )
      }),
    60_000
  )

  it.effect("the gauge inference_concurrency_limit{model} follows the limit, and each change is a debug line", () =>
    Effect.gen(function*() {
      const lines: Array<{ readonly message: unknown; readonly annotations: Record<string, unknown> }> = []
      const logger = Logger.make(({ annotations, message }) => {
        lines.push({ message, annotations: Object.fromEntries(HashMap.toEntries(annotations)) })
      })
      const limits = Adaptive.make(options, yield* Effect.clock)
      const { call } = service(4)
      const gauge = Metric.tagged(Adaptive.limitGauge, "model", "m")
      yield* drive(limits, call, 100).pipe(
        Effect.provide(Logger.replace(Logger.defaultLogger, logger)),
        Logger.withMinimumLogLevel(LogLevel.Debug)
      )
      assert.strictEqual((yield* Metric.value(gauge)).value, limits.limit("m"))
      const changes = lines.filter((line) => JSON.stringify(line.message).includes("Concurrency limit changed"))
      assert.isAbove(changes.length, 0)
      const last = changes.at(-1)!.annotations
      assert.strictEqual(last["model"], "m")
      assert.strictEqual(last["to"], limits.limit("m"))
      assert.notStrictEqual(last["from"], last["to"])
    }))

  it.effect("a stream's attempt holds its permit until its scope closes", () =>
    Effect.gen(function*() {
      const limits = Adaptive.make({ ...options, initial: 1, max: 1 }, yield* Effect.clock)
      const scope = yield* Scope.make()
      yield* limits.withPermit(Effect.void, "m", scope)
      const second = yield* Effect.fork(limits.withPermit(Effect.succeed("second"), "m", "attempt"))
      yield* TestClock.adjust("1 second")
      assert.isNull(second.unsafePoll(), "waits while the stream runs")
      yield* Scope.close(scope, Exit.void)
      assert.strictEqual(yield* Fiber.join(second), "second")
    }))

  it.effect("each model has its own limit", () =>
    Effect.gen(function*() {
      const limits = Adaptive.make(options, yield* Effect.clock)
      const refused = Effect.fail(new InferenceError.RateLimitError({ status: 429 }))
      yield* Effect.either(limits.withPermit(refused, "a", "attempt"))
      assert.strictEqual(limits.limit("a"), 1, "refused with 1 in flight: the minimum")
      assert.strictEqual(limits.limit("b"), 16)
    }))

  it.effect("an interrupted wait takes no permit, and other failures leave the limit alone", () =>
    Effect.gen(function*() {
      const limits = Adaptive.make({ ...options, initial: 1, max: 1 }, yield* Effect.clock)
      const scope = yield* Scope.make()
      yield* limits.withPermit(Effect.void, "m", scope)
      const waiting = yield* Effect.fork(limits.withPermit(Effect.void, "m", "attempt"))
      yield* TestClock.adjust("10 millis")
      assert.isNull(waiting.unsafePoll())
      yield* Fiber.interrupt(waiting)
      yield* Scope.close(scope, Exit.void)
      assert.strictEqual(yield* limits.withPermit(Effect.succeed("free"), "m", "attempt"), "free")
      const other = Adaptive.make(options, yield* Effect.clock)
      for (
        const error of [
          new InferenceError.InternalServerError({ status: 500 }),
          new InferenceError.ServiceUnavailableError({ status: 503 })
        ]
      ) {
        const failed = yield* Effect.either(other.withPermit(Effect.fail(error), "m", "attempt"))
        assert.isTrue(failed._tag === "Left")
      }
      assert.strictEqual(other.limit("m"), 16, "only a 429 lowers it")
    }))
})
