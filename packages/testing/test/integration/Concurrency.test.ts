/**
 * W&B limits concurrency per project, and so does the simulator: a client that
 * sends more at once than the limit gets 429s, one that keeps `maxConcurrency`
 * at the limit gets none, and each project has its own slots.
 */
import type { InferenceClient } from "@effect-inference/client"
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as InferenceSimulator from "../../src/InferenceSimulator.js"
import { ask, chatLog, withClient, withSimulatorOnly } from "../utils/Integration.js"

const LIMIT = 4
const CALLS = 40

/** Each call lasts 8-40 tokens at 5 ms a token, so calls overlap. */
const simulatorOptions: InferenceSimulator.Options = { concurrencyLimit: LIMIT, perToken: "5 millis" }

/** `CALLS` calls at once through one client; their results in order. */
const burst = (client: Partial<InferenceClient.Options>) =>
  withClient(client)(
    Effect.forEach(
      Array.from({ length: CALLS }, (_, i) => i),
      (i) => Effect.either(ask(`question ${i}`)),
      { concurrency: "unbounded" }
    )
  )

const rateLimitMessages = (results: ReadonlyArray<Either.Either<unknown, { readonly _tag: string }>>) =>
  results.flatMap((result) =>
    Either.isLeft(result) && result.left._tag === "RateLimitError" && "serverMessage" in result.left
      ? [result.left.serverMessage]
      : []
  )

describe("concurrency limit", () => {
  it.live(`maxConcurrency 16 over a limit of ${LIMIT} → some calls get W&B's 429`, () =>
    withSimulatorOnly(
      Effect.gen(function*() {
        // without a breaker: its trips on the 429s would turn later calls into CircuitOpenErrors
        const results = yield* burst({ maxConcurrency: 16, retry: false, circuitBreaker: false })
        const log = yield* chatLog
        const limited = rateLimitMessages(results)
        const failures = results.filter(Either.isLeft)
        assert.isAbove(limited.length, 0, "calls refused with 429")
        assert.strictEqual(failures.length, limited.length, "every failure is a RateLimitError")
        // the project's limit, in the lower-case shape the real service answers with
        for (const message of limited) {
          assert.strictEqual(message, "concurrency limit reached for requests: project limit reached")
        }
        assert.strictEqual(log.length, CALLS, "one request per call (no retries)")
        assert.strictEqual(log.filter((e) => e.outcome === "concurrency-limited").length, limited.length)
        assert.isTrue(log.filter((e) => e.outcome === "concurrency-limited").every((e) => e.status === 429))
        assert.isAtMost(InferenceSimulator.peakInFlight(log), LIMIT, "requests answered at once")
      }),
      simulatorOptions
    ))

  it.live(`maxConcurrency ${LIMIT} at the limit → no 429, every call succeeds`, () =>
    withSimulatorOnly(
      Effect.gen(function*() {
        const results = yield* burst({ maxConcurrency: LIMIT, retry: false })
        const log = yield* chatLog
        assert.strictEqual(results.filter(Either.isLeft).length, 0, "failed calls")
        assert.strictEqual(log.length, CALLS)
        assert.isTrue(log.every((e) => e.outcome === "ok"), "every request answered")
        // The client kept its slots full, so the test did press against the limit.
        assert.strictEqual(InferenceSimulator.peakInFlight(log), LIMIT, "requests answered at once")
      }),
      simulatorOptions
    ))

  it.live(`two projects get ${LIMIT} slots each`, () =>
    withSimulatorOnly(
      Effect.gen(function*() {
        const [a, b] = yield* Effect.all([
          burst({ project: "acme/a", maxConcurrency: LIMIT, retry: false }),
          burst({ project: "acme/b", maxConcurrency: LIMIT, retry: false })
        ], { concurrency: "unbounded" })
        const log = yield* chatLog
        assert.strictEqual([...a, ...b].filter(Either.isLeft).length, 0, "failed calls")
        for (const project of ["acme/a", "acme/b"]) {
          const own = log.filter((e) => e.project === project)
          assert.strictEqual(own.length, CALLS, `requests of ${project}`)
          assert.strictEqual(InferenceSimulator.peakInFlight(own), LIMIT, `requests of ${project} answered at once`)
        }
        assert.isAbove(InferenceSimulator.peakInFlight(log), LIMIT, "requests of both projects answered at once")
      }),
      simulatorOptions
    ))

  it.live(`two clients in one project share its ${LIMIT} slots`, () =>
    withSimulatorOnly(
      Effect.gen(function*() {
        const [a, b] = yield* Effect.all([
          burst({ project: "acme/a", maxConcurrency: LIMIT, retry: false }),
          burst({ project: "acme/a", maxConcurrency: LIMIT, retry: false })
        ], { concurrency: "unbounded" })
        const log = yield* chatLog
        assert.isAbove(rateLimitMessages([...a, ...b]).length, 0, "calls refused with 429")
        assert.isAbove(log.filter((e) => e.outcome === "concurrency-limited").length, 0)
        assert.isAtMost(InferenceSimulator.peakInFlight(log), LIMIT, "requests answered at once")
      }),
      simulatorOptions
    ))
})
