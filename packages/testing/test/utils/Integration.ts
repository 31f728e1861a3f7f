/**
 * Wiring for tests of the client against the simulator over real loopback HTTP,
 * with the client's own undici transport, `UndiciHttpClient` (its connection pool
 * closes with the layer, so tests can check that no socket is left).
 */
import type { ChatCompletion, ChatCompletionChunk, InferenceError } from "@effect-inference/client"
import { InferenceClient, RetryPolicy } from "@effect-inference/client"
import * as UndiciHttpClient from "@effect-inference/client/UndiciHttpClient"
import type * as HttpClient from "@effect/platform/HttpClient"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as Schedule from "effect/Schedule"
import * as Stream from "effect/Stream"
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

/** A client pointed at the simulator in context, over `transport` (by default `UndiciHttpClient.layer`). */
export const clientLayer = (
  options: Partial<InferenceClient.Options> = {},
  transport: Layer.Layer<HttpClient.HttpClient> = UndiciHttpClient.layer
): Layer.Layer<InferenceClient.InferenceClient, never, InferenceSimulator.InferenceSimulator> =>
  InferenceSimulator.clientLayer({ retry: fastRetry, timeout: "2 seconds", ...options }).pipe(
    Layer.provide(transport)
  )

/** Runs `effect` with a fresh simulator and a client of it. */
export const withSimulator = <A, E>(
  effect: Effect.Effect<A, E, InferenceClient.InferenceClient | InferenceSimulator.InferenceSimulator>,
  simulator: InferenceSimulator.Options = {},
  client: Partial<InferenceClient.Options> = {}
): Effect.Effect<A, E | InferenceSimulator.ListenError> =>
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
): Effect.Effect<A, E | InferenceSimulator.ListenError> =>
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

/** A chat request for the simulator's default model; `overrides` add or replace fields. */
export const chatRequest = (
  overrides: Partial<ChatCompletion.ChatCompletionRequestInput> = {},
  content = "Hello"
): ChatCompletion.ChatCompletionRequestInput => ({ model: MODEL, messages: [{ role: "user", content }], ...overrides })

/** `client.streamChatCompletion(request)` of the client in context. */
export const streamChat = (request: ChatCompletion.ChatCompletionRequestInput) =>
  Stream.unwrap(Effect.map(InferenceClient.InferenceClient, (client) => client.streamChatCompletion(request)))

/**
 * Runs `stream` to its end and returns every chunk the consumer received, then the
 * typed error that ended it, if any (a defect is not caught, so it fails the test).
 */
export const runStream = <E, R>(stream: Stream.Stream<ChatCompletionChunk.ChatCompletionChunk, E, R>) =>
  Effect.map(Stream.runCollect(Stream.either(stream)), (items) => {
    const chunks: Array<ChatCompletionChunk.ChatCompletionChunk> = []
    let error: E | undefined = undefined
    for (const item of Chunk.toReadonlyArray(items)) {
      if (Either.isRight(item)) chunks.push(item.right)
      else error = item.left
    }
    return { chunks, error }
  })

/**
 * The retry policy of {@link fastRetry}, unchanged, with a record of every failed
 * attempt it was asked about, so a test can see which errors were retried.
 * Make one per test: the record is the test's own.
 */
export const observedRetry = () => {
  const seen: Array<InferenceError.InferenceError> = []
  const retry = RetryPolicy.make(fastRetry).pipe(
    Schedule.tapInput((error: InferenceError.InferenceError) => Effect.sync(() => seen.push(error)))
  )
  return { retry, seen }
}
