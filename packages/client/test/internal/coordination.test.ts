/**
 * A store that cannot answer and says the call must not go on without it
 * (`rejectCall`, as the Redis stores do with `onUnavailable: "fail"`): the
 * call fails with `CoordinationError` naming the store, before anything is
 * sent, and is not retried. Without `rejectCall` the policies let the call
 * through, as the stores' own tests show.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as BudgetStore from "../../src/BudgetStore.js"
import * as CircuitBreakerStore from "../../src/CircuitBreakerStore.js"
import * as ConcurrencyStore from "../../src/ConcurrencyStore.js"
import * as InferenceClient from "../../src/InferenceClient.js"
import * as InferenceError from "../../src/InferenceError.js"
import * as RateLimitStore from "../../src/RateLimitStore.js"
import { failureOf, hello, layer } from "../utils/Client.js"
import * as Fake from "../utils/FakeTransport.js"

const message = "Redis could not answer: connect ECONNREFUSED 127.0.0.1:6379"

const concurrencyDown = Layer.succeed(ConcurrencyStore.ConcurrencyStore, {
  tryAcquire: () => Effect.fail(new ConcurrencyStore.ConcurrencyStoreError({ message, rejectCall: true })),
  renew: () => Effect.succeed(true),
  release: () => Effect.void,
  held: () => Effect.succeed(0)
})

const rateLimitDown = Layer.succeed(RateLimitStore.RateLimitStore, {
  admit: () => Effect.fail(new RateLimitStore.RateLimitStoreError({ message, rejectCall: true })),
  settle: () => Effect.void
})

const budgetDown = Layer.effect(
  BudgetStore.BudgetStore,
  Effect.map(BudgetStore.makeMemory, (memory) => ({
    ...memory,
    reserve: () => Effect.fail(new BudgetStore.BudgetStoreError({ message, rejectCall: true }))
  }))
)

const breakerDown = Layer.succeed(CircuitBreakerStore.CircuitBreakerStore, {
  get: () => Effect.fail(new CircuitBreakerStore.CircuitBreakerStoreError({ message, rejectCall: true })),
  compareAndSet: () => Effect.fail(new CircuitBreakerStore.CircuitBreakerStoreError({ message, rejectCall: true }))
})

const cases: ReadonlyArray<
  readonly [
    InferenceError.CoordinationStore,
    Layer.Layer<never>,
    Partial<InferenceClient.Options>
  ]
> = [
  ["concurrency", concurrencyDown, { maxConcurrency: 8 }],
  ["rate-limit", rateLimitDown, { rateLimit: { requests: { limit: 10, interval: "1 minute" } } }],
  ["budget", budgetDown, { usage: { budget: { tokens: 1_000_000 } } }],
  ["circuit-breaker", breakerDown, { circuitBreaker: {} }]
]

describe("a store that cannot answer and says rejectCall", () => {
  for (const [store, down, options] of cases) {
    it.effect(`${store}: the call fails with CoordinationError before sending, and is not retried`, () =>
      Effect.gen(function*() {
        const fake = Fake.make([Fake.completion()])
        const exit = yield* Fake.runWithClock(
          Effect.flatMap(InferenceClient.InferenceClient, (client) => client.chatCompletion(hello)).pipe(
            Effect.provide(layer(fake, options).pipe(Layer.provide(down)))
          )
        )
        const error = failureOf(exit)
        assert.strictEqual(error._tag, "CoordinationError")
        assert.strictEqual((error as InferenceError.CoordinationError).store, store)
        assert.include(error.message, message)
        assert.include(error.message, "Nothing was sent")
        assert.isFalse(InferenceError.wasSent(error))
        assert.isFalse(InferenceError.isRetryable(error))
        assert.strictEqual(fake.requests.length, 0, "nothing sent")
      }))
  }
})
