/**
 * Wiring for tests of the client against the simulator over real loopback HTTP,
 * with undici as the transport (its connection pool closes with the layer, so
 * tests can check that no socket is left).
 */
import type { RetryPolicy } from "@effect-inference/client"
import { InferenceClient } from "@effect-inference/client"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as InferenceSimulator from "../../src/InferenceSimulator.js"

/** Retries that keep real delays short. */
export const fastRetry: Partial<RetryPolicy.Options> = {
  maxRetries: 3,
  baseDelay: "20 millis",
  factor: 2,
  maxDelay: "200 millis",
  jitter: false
}

export const MODEL = "meta-llama/Llama-3.1-8B-Instruct"

export const ask = (content = "Hello") =>
  Effect.flatMap(
    InferenceClient.InferenceClient,
    (client) => client.chatCompletion({ model: MODEL, messages: [{ role: "user", content }] })
  )

/** A client over undici pointed at the simulator in context. */
export const clientLayer = (
  options: Partial<InferenceClient.Options> = {}
): Layer.Layer<InferenceClient.InferenceClient, never, InferenceSimulator.InferenceSimulator> =>
  InferenceSimulator.clientLayer({ retry: fastRetry, timeout: "2 seconds", ...options }).pipe(
    Layer.provide(NodeHttpClient.layerUndici)
  )

/** Runs `effect` with a fresh simulator and a client of it. */
export const withSimulator = <A, E>(
  effect: Effect.Effect<A, E, InferenceClient.InferenceClient | InferenceSimulator.InferenceSimulator>,
  simulator: InferenceSimulator.Options = {},
  client: Partial<InferenceClient.Options> = {}
): Effect.Effect<A, E> =>
  Effect.provide(
    effect,
    clientLayer(client).pipe(
      Layer.provideMerge(InferenceSimulator.layer(simulator)),
      // the retry warnings are asserted in the client's own tests; here they would only bury the report
      Layer.provideMerge(Logger.remove(Logger.defaultLogger))
    )
  )

/** Waits (for real, briefly) until `check` holds, for socket closes that the OS reports asynchronously. */
export const eventually = <E, R>(check: Effect.Effect<boolean, E, R>, timeoutMillis = 2_000) =>
  Effect.gen(function*() {
    const deadline = Date.now() + timeoutMillis
    while (!(yield* check)) {
      if (Date.now() > deadline) return false
      yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 10)))
    }
    return true
  })

/**
 * Runs `effect` with a fresh simulator and no client, so that clients given with
 * {@link withClient} close (and drop their connections) while the simulator still
 * runs and can count what is left open.
 */
export const withSimulatorOnly = <A, E>(
  effect: Effect.Effect<A, E, InferenceSimulator.InferenceSimulator>,
  simulator: InferenceSimulator.Options = {}
): Effect.Effect<A, E> =>
  Effect.provide(
    effect,
    InferenceSimulator.layer(simulator).pipe(Layer.provideMerge(Logger.remove(Logger.defaultLogger)))
  )

/** Runs `effect` with a client of the simulator in context; the client and its connection pool close when it ends. */
export const withClient = (client: Partial<InferenceClient.Options> = {}) =>
<A, E, R>(
  effect: Effect.Effect<A, E, R>
): Effect.Effect<A, E, InferenceSimulator.InferenceSimulator | Exclude<R, InferenceClient.InferenceClient>> =>
  Effect.provide(effect, clientLayer(client))

/** Waits until the simulator has no TCP connection open; `false` if some are still open after `timeoutMillis`. */
export const noOpenConnections = (timeoutMillis = 2_000) =>
  Effect.flatMap(
    InferenceSimulator.InferenceSimulator,
    (simulator) => eventually(Effect.map(simulator.openConnections, (n) => n === 0), timeoutMillis)
  )

/** The chat completion requests in the simulator's log (no `GET /v1/models`). */
export const chatLog = Effect.map(
  Effect.flatMap(InferenceSimulator.InferenceSimulator, (simulator) => simulator.log),
  (log) => log.filter((entry) => entry.path === "/v1/chat/completions")
)
