/**
 * The simulator and a client of it over loopback, as `Batch.run` needs them:
 * an `InferenceClient` with short retries and no circuit breaker (so each
 * row's outcome is its own calls'), and a `UsageTracker` it records into.
 */
import { UsageTracker } from "@effect-inference/client"
import type { InferenceClient, RetryPolicy } from "@effect-inference/client"
import * as UndiciHttpClient from "@effect-inference/client/UndiciHttpClient"
import { InferenceSimulator } from "@effect-inference/testing"
import { assert } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"

/** Retries that keep real delays short: one retry after 5 ms. */
export const fastRetry: Partial<RetryPolicy.Options> = {
  maxRetries: 1,
  baseDelay: "5 millis",
  factor: 2,
  maxDelay: "20 millis",
  jitter: false
}

/** A simulator for the test, and no log lines (the client logs each retry as a warning). */
export const simulator = (
  options: InferenceSimulator.Options = {}
): Layer.Layer<InferenceSimulator.InferenceSimulator, InferenceSimulator.ListenError> =>
  InferenceSimulator.layer(options).pipe(Layer.provideMerge(Logger.remove(Logger.defaultLogger)))

/**
 * A client of the simulator in context and the tracker it records into: a fixed
 * concurrency (no adaptive limit, so 429 faults do not slow a run down), no
 * circuit breaker, {@link fastRetry}. Provide one per run: a run's tracker
 * totals (and budget) are its own.
 */
export const client = (
  options: Partial<InferenceClient.Options> = {},
  tracker: UsageTracker.Options = {}
): Layer.Layer<
  InferenceClient.InferenceClient | UsageTracker.UsageTracker,
  never,
  InferenceSimulator.InferenceSimulator
> =>
  InferenceSimulator.clientLayer({
    retry: fastRetry,
    timeout: "5 seconds",
    maxConcurrency: 64,
    adaptiveConcurrency: false,
    circuitBreaker: false,
    ...options
  }).pipe(
    Layer.provideMerge(UsageTracker.layer({ logLevel: "None", ...tracker })),
    Layer.provide(UndiciHttpClient.layer)
  )

/** Every request in the simulator's log, `GET /v1/models` included. */
export const log = Effect.flatMap(InferenceSimulator.InferenceSimulator, (simulator) => simulator.log)

/** The chat requests in the simulator's log. */
export const chatLog = Effect.map(log, (entries) => entries.filter((entry) => entry.path === "/v1/chat/completions"))

/** The `custom_id` a logged request was for, from the prompt (see `Files.request`). */
export const idOf = (entry: InferenceSimulator.LogEntry): string => {
  const body = entry.body as { readonly messages?: ReadonlyArray<{ readonly content?: unknown }> }
  const content = body.messages?.[0]?.content
  const match = typeof content === "string" ? /^(row-\d+):/.exec(content) : null
  if (match === null) return assert.fail(`a request that is no row's: ${JSON.stringify(entry.body)}`)
  return match[1]!
}

/** The chat requests sent so far, by row, in order. */
export const requestsById = Effect.map(chatLog, (log) => {
  const byId = new Map<string, Array<InferenceSimulator.LogEntry>>()
  for (const entry of log) {
    const id = idOf(entry)
    const list = byId.get(id) ?? []
    list.push(entry)
    byId.set(id, list)
  }
  return byId
})

/** Clears the simulator's log, so that the next run's requests are counted alone. */
export const clearLog = Effect.flatMap(InferenceSimulator.InferenceSimulator, (simulator) => simulator.clearLog)
