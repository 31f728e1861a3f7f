import type { InferenceClient } from "@effect-inference/client"

/**
 * The client's configurations the benchmarks compare: its defaults, then each
 * feature switched off in turn, then all of them off.
 */
export const variants = {
  "default": {},
  "no retry": { retry: false },
  "no breaker": { circuitBreaker: false },
  "no usage tracking": { usage: false },
  "no concurrency limit": { maxConcurrency: Infinity },
  "no adaptive concurrency": { adaptiveConcurrency: false },
  "all off": { retry: false, circuitBreaker: false, usage: false, maxConcurrency: Infinity, adaptiveConcurrency: false }
} satisfies Record<string, Partial<InferenceClient.Options>>

/**
 * The clients the benchmarks compare, in the order the tables list them. `client`
 * runs over its own transport, `UndiciHttpClient.layer`; the last row runs its
 * defaults over @effect/platform's `NodeHttpClient.layerUndici`, as `platform` does.
 */
export const clients = [
  "undici",
  "openai",
  "platform",
  "client",
  "client: no retry",
  "client: no breaker",
  "client: no usage tracking",
  "client: no concurrency limit",
  "client: all off",
  "client: over NodeHttpClient.layerUndici"
] as const

export type ClientName = typeof clients[number]

/** What one run measured, as `runner.ts` prints it (one line of JSON). */
export interface Result {
  readonly client: ClientName
  readonly requests: number
  /** Streamed chunks received; for plain calls, the calls. */
  readonly chunks: number
  /** CPU time of the runner process over the measured requests (user + system), after the warm-up. */
  readonly cpuMicros: number
  readonly wallMillis: number
  readonly peakRssMb: number
  readonly heapAfterGcMb: number
}
