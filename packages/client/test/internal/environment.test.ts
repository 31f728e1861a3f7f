/**
 * One rule of precedence for every optional service: `false` turns it off;
 * options given to the client build its own; left out, the service in context;
 * otherwise a default.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as CircuitBreaker from "../../src/CircuitBreaker.js"
import * as ConcurrencyStore from "../../src/ConcurrencyStore.js"
import * as InferenceClient from "../../src/InferenceClient.js"
import * as RateLimit from "../../src/RateLimit.js"
import * as UsageTracker from "../../src/UsageTracker.js"
import { hello, layer, MODEL } from "../utils/Client.js"
import * as Fake from "../utils/FakeTransport.js"

/**
 * Two calls of `hello` through a client of `options`, with `context` provided
 * around it, on the TestClock: their results and the virtual time they took.
 */
const twoCalls = <ROut, E>(
  fake: Fake.Fake,
  options: Partial<InferenceClient.Options>,
  context: Layer.Layer<ROut, E>
) =>
  Effect.gen(function*() {
    const client = yield* InferenceClient.InferenceClient
    const start = yield* Clock.currentTimeMillis
    const results = yield* Effect.all([
      Effect.either(client.chatCompletion(hello)),
      Effect.either(client.chatCompletion(hello))
    ])
    return { results, millis: (yield* Clock.currentTimeMillis) - start }
  }).pipe(Effect.provide(layer(fake, options)), Effect.provide(context), Fake.runWithClock, Effect.flatten)

/** Breakers in context with this client's breaker for MODEL isolated. */
const isolated = Layer.effect(
  CircuitBreaker.Breakers,
  Effect.tap(
    CircuitBreaker.makeRegistry(),
    (breakers) =>
      Effect.flatMap(breakers.get(CircuitBreaker.key("http://inference.test/v1", MODEL)), (breaker) => breaker.isolate)
  )
)

describe("InferenceClient", () => {
  describe("precedence of optional services", () => {
    it.effect("breakers: left out, the registry in context; given options, the client's own; false, none", () =>
      Effect.gen(function*() {
        const fromContext = Fake.make([Fake.completion(), Fake.completion()])
        const [first] = (yield* twoCalls(fromContext, {}, isolated)).results
        assert.isTrue(first._tag === "Left" && first.left._tag === "CircuitOpenError")
        assert.strictEqual(fromContext.requests.length, 0)
        for (const circuitBreaker of [{ consecutiveFailures: 3 }, false] as const) {
          const own = Fake.make([Fake.completion(), Fake.completion()])
          const { results } = yield* twoCalls(own, { circuitBreaker }, isolated)
          assert.deepStrictEqual(results.map((r) => r._tag), ["Right", "Right"])
          assert.strictEqual(own.requests.length, 2)
        }
      }))

    it.effect("rate limiter: left out, the limiter in context; given options, the client's own", () =>
      Effect.gen(function*() {
        const shared = RateLimit.layer({ requests: { limit: 1, interval: "1 minute" } })
        const fromContext = yield* twoCalls(Fake.make([Fake.completion(), Fake.completion()]), {}, shared)
        // The second call waited for the shared limit's next window.
        assert.deepStrictEqual(fromContext.results.map((r) => r._tag), ["Right", "Right"])
        assert.isAtLeast(fromContext.millis, 60_000)
        const own = yield* twoCalls(
          Fake.make([Fake.completion(), Fake.completion()]),
          { rateLimit: { requests: { limit: 10, interval: "1 minute" } } },
          shared
        )
        assert.deepStrictEqual(own.results.map((r) => r._tag), ["Right", "Right"])
        assert.strictEqual(own.millis, 0)
      }))

    it.effect("usage tracker: left out, the tracker in context; given options, the client's own; false, none", () =>
      Effect.gen(function*() {
        const tracker = yield* UsageTracker.make({ logLevel: "None" })
        const inContext = Layer.succeed(UsageTracker.UsageTracker, tracker)
        yield* twoCalls(Fake.make([Fake.completion(), Fake.completion()]), {}, inContext)
        assert.strictEqual((yield* tracker.totals).overall.calls, 2)
        yield* twoCalls(Fake.make([Fake.completion(), Fake.completion()]), { usage: { logLevel: "None" } }, inContext)
        yield* twoCalls(Fake.make([Fake.completion(), Fake.completion()]), { usage: false }, inContext)
        assert.strictEqual((yield* tracker.totals).overall.calls, 2)
      }))
  })

  describe("stores", () => {
    it.effect("a ConcurrencyStore in context holds the slots of every client of one project", () =>
      Effect.gen(function*() {
        const fake = Fake.make(() => Fake.delayed("1 second", () => Fake.completion()))
        const client = InferenceClient.InferenceClient.pipe(Effect.provide(layer(fake, { maxConcurrency: 2 })))
        const calls = Effect.gen(function*() {
          const [a, b] = yield* Effect.all([client, client])
          yield* Effect.forEach(
            [a, b, a, b, a, b],
            (c) => c.chatCompletion(hello),
            { concurrency: "unbounded" }
          )
        })
        // Each client alone would have 2 in flight, 4 together; the store holds both to the one limit.
        yield* Fake.runWithClock(Effect.provide(calls, ConcurrencyStore.layerMemory))
        assert.strictEqual(fake.maxInFlight(), 2)
        assert.strictEqual(fake.requests.length, 6)
        const alone = Fake.make(() => Fake.delayed("1 second", () => Fake.completion()))
        const own = InferenceClient.InferenceClient.pipe(Effect.provide(layer(alone, { maxConcurrency: 2 })))
        yield* Fake.runWithClock(Effect.gen(function*() {
          const [a, b] = yield* Effect.all([own, own])
          yield* Effect.forEach([a, b, a, b], (c) => c.chatCompletion(hello), { concurrency: "unbounded" })
        }))
        assert.strictEqual(alone.maxInFlight(), 4)
      }))
  })
})
