/**
 * Batch runs: JSONL files of chat completion requests (the OpenAI Batch API's
 * input format) put through an `InferenceClient`, each row's result appended
 * in the Batch API's output format, resumable and budgeted. The engine of the
 * `effect-inference batch` command, for Effect programs.
 *
 * Every row goes through the client in context, so its retries, timeouts,
 * circuit breakers, adaptive concurrency and budget apply to every row.
 *
 * @since 0.2.0
 */
import type { ChatCompletion, InferenceClient, InferenceError } from "@effect-inference/client"
import type * as Effect from "effect/Effect"
import type * as Stream from "effect/Stream"
import * as engine from "./internal/engine.js"
import * as errors from "./internal/errors.js"
import * as input from "./internal/input.js"
import * as output from "./internal/output.js"

/**
 * A row to send: its `custom_id` and its chat completion request.
 *
 * @since 0.2.0
 * @category models
 */
export type Row = engine.Row

/**
 * What became of a row: its completion, or the client's error.
 *
 * @since 0.2.0
 * @category models
 */
export type Result = engine.Result

/**
 * How {@link stream} runs.
 *
 * - `concurrency`: rows in flight at once (default 256). The client's own
 *   limits (`maxConcurrency`, adaptive concurrency, a rate limit) decide how
 *   many requests are on the wire; rows over them wait in its line.
 * - `stop`: when this effect completes, no further row is taken; rows taken
 *   finish.
 *
 * @since 0.2.0
 * @category models
 */
export interface StreamOptions {
  readonly concurrency?: number | undefined
  readonly stop?: Effect.Effect<void> | undefined
}

/**
 * Sends each row of a stream through the `InferenceClient` in context and
 * emits each row's result as it finishes (not in input order). A row's
 * failure is a `Failed` result, never the stream's error. After a result whose
 * error stops a run (see {@link stopsRun}: the budget is spent, the key is
 * refused, the account is out of credits), no further row is taken.
 *
 * @example
 * ```ts
 * import { Batch } from "@effect-inference/cli"
 * import { Effect, Stream } from "effect"
 *
 * const rows = Stream.make(
 *   { customId: "q1", body: { model: "meta-llama/Llama-3.1-8B-Instruct", messages: [{ role: "user" as const, content: "2 + 2?" }] } },
 *   { customId: "q2", body: { model: "meta-llama/Llama-3.1-8B-Instruct", messages: [{ role: "user" as const, content: "3 + 3?" }] } }
 * )
 *
 * // Answers by custom_id, failures logged by tag.
 * export const answers = Batch.stream(rows, { concurrency: 16 }).pipe(
 *   Stream.tap((result) =>
 *     result._tag === "Failed" ? Effect.logWarning(`${result.customId}: ${result.error._tag}`) : Effect.void
 *   ),
 *   Stream.runCollect
 * )
 * ```
 *
 * @since 0.2.0
 * @category streams
 */
export const stream: <E, R>(
  rows: Stream.Stream<Row, E, R>,
  options?: StreamOptions
) => Stream.Stream<Result, E, R | InferenceClient.InferenceClient> = (rows, options) => engine.process(rows, options)

/**
 * Whether an error stops a run rather than fails a row: `BudgetExceededError`,
 * `AuthenticationError` and `QuotaExceededError`, which every later row would
 * meet too. {@link run} writes such a row nowhere: it stays to do.
 *
 * @since 0.2.0
 * @category predicates
 */
export const stopsRun: (error: InferenceError.InferenceError) => boolean = engine.stopsRun

/**
 * A shard of an input file: the rows whose `custom_id` hashes (FNV-1a, 32
 * bits, of its UTF-8 bytes) to `index` of `count`, with `index` from 1 to
 * `count`. `count` machines given shards 1 to `count` split a file between
 * them, each row to exactly one.
 *
 * @since 0.2.0
 * @category models
 */
export type Shard = input.Shard

/**
 * Whether a `custom_id` belongs to a shard.
 *
 * @example
 * ```ts
 * import { Batch } from "@effect-inference/cli"
 * import { strictEqual } from "node:assert"
 *
 * const shards = [1, 2, 3].filter((index) => Batch.inShard("row-42", { index, count: 3 }))
 * strictEqual(shards.length, 1)
 * ```
 *
 * @since 0.2.0
 * @category predicates
 */
export const inShard: (customId: string, shard: Shard) => boolean = input.inShard

/**
 * How {@link run} runs. Only `input` and `output` are required.
 *
 * - `errors`: the file failed rows go to; default `<output>.errors.jsonl`.
 * - `concurrency`: rows in flight at once (default 256; see {@link StreamOptions}).
 * - `dryRun`: check every row and estimate, send nothing.
 * - `retryFailed`: also try again rows an earlier run failed with an error
 *   that is not retryable (see the resume rules in docs/batch.md).
 * - `skipInvalid`: run the valid rows of an input that has invalid ones.
 * - `shard`: only the rows of this shard.
 * - `prices`: prices by model for the estimate, merged over
 *   `UsageTracker.DEFAULT_PRICES` (the tracker in context prices the actual cost).
 * - `preflight`: `false` skips the `listModels` check before the first row;
 *   a client (one made with `retry: false`, say) runs it instead of the one
 *   in context, so that a wrong URL fails at once rather than after retries.
 * - `stop`: when it completes, no further row is taken (an interrupt).
 * - `grace`: after a stop, how long rows in flight may take to finish before
 *   they are abandoned (their requests aborted); default 30 seconds.
 * - `onProgress`: called every `progressInterval` (default 1 second) and once
 *   at the end.
 *
 * @since 0.2.0
 * @category models
 */
export type RunOptions = engine.RunOptions

/**
 * Where a run stands: rows done of `total` (the rows this run has to do),
 * by outcome, rows in flight, the adaptive concurrency limit of the input's
 * models (`undefined` when adaptive concurrency is off), tokens and cost so far
 * (from the `UsageTracker` in context; 0 without one), the rate and the time left.
 *
 * @since 0.2.0
 * @category models
 */
export type Progress = engine.Progress

/**
 * Why a run ended before every row was done: the budget (`budget`), a stop
 * from outside (`interrupted`), or an error every row would meet (`error`).
 *
 * @since 0.2.0
 * @category models
 */
export type Stopped = engine.Stopped

/**
 * What a run did; `estimate` is the estimate of the rows it had to do, by model.
 *
 * @since 0.2.0
 * @category models
 */
export type Summary = engine.Summary

/**
 * The estimate of a model's rows: prompt tokens (about 4 characters a token),
 * the most completion tokens they may use, and the cost range (see
 * `UsageTracker.estimate`).
 *
 * @since 0.2.0
 * @category models
 */
export type ModelEstimate = input.ModelEstimate

/**
 * Runs a batch file: checks every row, runs the preflight, skips what earlier
 * runs did, then sends the rest and appends each result, a whole line at a
 * time, to `output` (successes) or `errors` (failures). Provide an
 * `InferenceClient`, and a `UsageTracker` for tokens and cost in the progress
 * and the summary (the client records into the tracker in context).
 *
 * Fails with `InvalidInputError` (invalid rows, unless `skipInvalid`),
 * `PreflightError` or `FileError`; a row's failure is a line in `errors`.
 *
 * @example
 * ```ts
 * import { Batch } from "@effect-inference/cli"
 * import { InferenceClient, UsageTracker } from "@effect-inference/client"
 * import * as UndiciHttpClient from "@effect-inference/client/UndiciHttpClient"
 * import { Effect, Layer } from "effect"
 *
 * const Live = InferenceClient.layerConfig().pipe(
 *   Layer.provideMerge(UsageTracker.layer({ budget: { usd: 5 } })),
 *   Layer.provide(UndiciHttpClient.layer)
 * )
 *
 * export const program = Batch.run({ input: "prompts.jsonl", output: "results.jsonl" }).pipe(
 *   Effect.tap((summary) => Effect.log(`${summary.succeeded} succeeded, ${summary.failed} failed`)),
 *   Effect.provide(Live)
 * )
 * ```
 *
 * @since 0.2.0
 * @category running
 */
export const run: (
  options: RunOptions
) => Effect.Effect<Summary, BatchError, InferenceClient.InferenceClient> = engine.run

/**
 * The errors file of an output file when none is given: `<output>.errors.jsonl`.
 *
 * @since 0.2.0
 * @category constants
 */
export const defaultErrors: (output: string) => string = engine.defaultErrors

/**
 * The line of a row that succeeded, in the Batch API's output format:
 * `{"id", "custom_id", "response": {"status_code": 200, "request_id", "body"}, "error": null}`.
 *
 * @since 0.2.0
 * @category formats
 */
export const successLine: (customId: string, completion: ChatCompletion.ChatCompletion) => string = output.successLine

/**
 * The line of a row that failed: `{"id", "custom_id", "response": {"status_code", "body"} | null,
 * "error": {"code": <the error's tag>, "message"}}`.
 *
 * @since 0.2.0
 * @category formats
 */
export const failureLine: (customId: string, error: InferenceError.InferenceError) => string = output.failureLine

/**
 * A file could not be read, written or replaced.
 *
 * @since 0.2.0
 * @category errors
 */
export const FileError: typeof errors.FileError = errors.FileError

/**
 * @since 0.2.0
 * @category errors
 */
export type FileError = errors.FileError

/**
 * The input has invalid rows (listed with their line numbers), so nothing was sent.
 *
 * @since 0.2.0
 * @category errors
 */
export const InvalidInputError: typeof errors.InvalidInputError = errors.InvalidInputError

/**
 * @since 0.2.0
 * @category errors
 */
export type InvalidInputError = errors.InvalidInputError

/**
 * The preflight failed: the client's error (a bad key, a wrong base URL), or
 * models the input names that the service does not offer.
 *
 * @since 0.2.0
 * @category errors
 */
export const PreflightError: typeof errors.PreflightError = errors.PreflightError

/**
 * @since 0.2.0
 * @category errors
 */
export type PreflightError = errors.PreflightError

/**
 * Every way a run can fail as a whole.
 *
 * @since 0.2.0
 * @category errors
 */
export type BatchError = errors.BatchError
