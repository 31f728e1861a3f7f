import { CircuitBreaker, InferenceClient } from "@effect-inference/client"
import { Effect, Queue, Redacted } from "effect"

// Breakers shared by the application's clients, so it can watch and steer them.
export const Breakers = CircuitBreaker.layer({
  consecutiveFailures: 5,
  failureRate: { threshold: 0.5, window: 20, minimumCalls: 10 },
  breakDuration: "15 seconds",
  halfOpenProbes: 2
})

export const Client = InferenceClient.layer({ apiKey: Redacted.make("my-key") })

// Take a model out of rotation by hand, then look at what happened.
export const drain = (model: string) =>
  Effect.gen(function*() {
    const breakers = yield* CircuitBreaker.Breakers
    const changes = yield* breakers.subscribe
    const breaker = yield* breakers.get(CircuitBreaker.key(InferenceClient.DEFAULT_BASE_URL, model))
    yield* breaker.isolate // calls to this model now fail fast with CircuitOpenError
    const snapshot = yield* breaker.snapshot // serialisable with Schema, to save or share
    return { state: snapshot.state, changes: yield* Queue.takeAll(changes) }
  }).pipe(Effect.scoped)
