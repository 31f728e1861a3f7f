/**
 * The place where a batch runs: rows in, calls through the client, results out.
 * `process` is the pipeline both `Batch.stream` and `Batch.run` use; `run` adds
 * the files around it: the first pass, the preflight, resume, the journal,
 * progress, stopping and the summary.
 *
 * The order of a run, and why:
 * 1. The whole input is checked before anything is sent, so a bad row on line
 *    90,000 does not stop a run that has paid for 89,999.
 * 2. The preflight (`listModels`) fails a bad key, a wrong URL or an unknown
 *    model with one cheap request.
 * 3. What earlier runs wrote is read: torn last lines cut off, succeeded rows
 *    skipped, failed rows kept or (retryable, or with `retryFailed`) dropped
 *    from the errors file to be tried again.
 * 4. Each row is written to the journal as it is taken, and its result to the
 *    output or the errors file as it finishes; a row refused by the budget, or
 *    that met an error that stops the run, is written nowhere and stays to do.
 */
import type { ChatCompletion } from "@effect-inference/client"
import type { InferenceError } from "@effect-inference/client"
import { InferenceClient, UsageTracker } from "@effect-inference/client"
import type * as Cause from "effect/Cause"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as FiberSet from "effect/FiberSet"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Schedule from "effect/Schedule"
import * as Stream from "effect/Stream"
import * as Take from "effect/Take"
import * as fs from "node:fs"
import type { BatchError } from "./errors.js"
import { InvalidInputError, PreflightError } from "./errors.js"
import * as Input from "./input.js"
import * as Lines from "./lines.js"
import * as Output from "./output.js"

// ---------------------------------------------------------------------------
// One row
// ---------------------------------------------------------------------------

/** A row to send: its id and its request. */
export interface Row {
  readonly customId: string
  readonly body: ChatCompletion.ChatCompletionRequestInput
}

/** What became of a row. */
export type Result =
  | { readonly _tag: "Succeeded"; readonly customId: string; readonly completion: ChatCompletion.ChatCompletion }
  | { readonly _tag: "Failed"; readonly customId: string; readonly error: InferenceError.InferenceError }

/**
 * Errors that stop a run rather than fail a row: every later row would meet
 * them too (the budget is spent, the key is refused, the account is out of
 * credits). The row is left to do.
 */
export const stopsRun = (error: InferenceError.InferenceError): boolean =>
  error._tag === "BudgetExceededError" || error._tag === "AuthenticationError" ||
  error._tag === "QuotaExceededError"

/** Default rows in flight at once: the client's own limits decide how many are sent. */
export const DEFAULT_CONCURRENCY = 256

/** Rows taken before the first answer when the client may have adaptive concurrency: the limit it starts at. */
const FIRST_WINDOW = 32

/**
 * Sends each row through the client, `concurrency` at once, results as they
 * finish. After a result whose error {@link stopsRun}, no further row is taken
 * (rows already taken still finish). `stop`, when it completes, stops the taking too.
 *
 * A row is taken when its call starts, not when the stream hands it over: rows
 * come in chunks (a file read gives thousands at once, `Stream.fromIterable` all
 * of them), so each call checks the stop first and a row that comes after it is
 * left untaken (no result).
 *
 * One fiber hands out the rows, each to a fiber of its own once one of
 * `concurrency` permits is free, and the results come back through a queue.
 * `Stream.mapEffect` with `{ concurrency: 256 }` does the same at about 100 µs of
 * CPU a row in Effect 3.22 (its permits wake every waiting fiber at each
 * release), which made it most of the runner's cost; here the semaphore has one
 * waiter, the dispatcher, at most.
 *
 * `window`, read before each row is handed out and after each finishes, lowers
 * the permits below `concurrency`: `run` sets it to what the client can send
 * at once (its adaptive limit), so that rows are taken as the client can send
 * them rather than queued inside it, where a stop could no longer hold them back.
 */
export const process = <E, R>(
  rows: Stream.Stream<Row, E, R>,
  options: {
    readonly concurrency?: number | undefined
    readonly window?: Effect.Effect<number | undefined> | undefined
    readonly stop?: Effect.Effect<void> | undefined
    readonly onTake?: ((row: Row) => void) | undefined
  } = {}
): Stream.Stream<Result, E, R | InferenceClient.InferenceClient> =>
  Stream.unwrapScoped(Effect.gen(function*() {
    const client = yield* InferenceClient.InferenceClient
    const concurrency = options.concurrency ?? DEFAULT_CONCURRENCY
    const stopped = yield* Deferred.make<void>()
    if (options.stop !== undefined) {
      yield* Effect.forkScoped(Effect.zipRight(options.stop, Deferred.succeed(stopped, undefined)))
    }
    let size = concurrency
    const permits = yield* Effect.makeSemaphore(size)
    const fit: Effect.Effect<void> = options.window === undefined
      ? Effect.void
      : Effect.flatMap(options.window, (window) => {
        const next = window === undefined ? concurrency : Math.max(1, Math.min(concurrency, Math.floor(window)))
        if (next === size) return Effect.void
        size = next
        return permits.resize(next)
      })
    // At most `concurrency` results wait for the consumer: a row's permit is given back once its result is queued.
    const results = yield* Effect.acquireRelease(
      Queue.bounded<Take.Take<Result, E>>(concurrency + 1),
      Queue.shutdown
    )
    const calls = yield* FiberSet.make<void>()
    const call = (row: Row): Effect.Effect<void> =>
      client.chatCompletion(row.body).pipe(
        Effect.map((completion): Result => ({ _tag: "Succeeded", customId: row.customId, completion })),
        Effect.catchAll((error) =>
          Effect.as(
            stopsRun(error) ? Deferred.succeed(stopped, undefined) : Effect.void,
            { _tag: "Failed", customId: row.customId, error } as Result
          )
        ),
        Effect.flatMap((result) => Queue.offer(results, Take.of(result))),
        Effect.ensuring(Effect.zipRight(permits.release(1), fit))
      )
    const dispatch: Effect.Effect<void, never, R> = rows.pipe(
      Stream.interruptWhen(Deferred.await(stopped)),
      Stream.runForEach((row) =>
        fit.pipe(
          Effect.zipRight(permits.take(1)),
          Effect.zipRight(Deferred.isDone(stopped)),
          Effect.flatMap((done) => {
            if (done) return Effect.asVoid(permits.release(1))
            options.onTake?.(row)
            return Effect.asVoid(FiberSet.run(calls, call(row)))
          })
        )
      ),
      // Every call taken has queued its result.
      Effect.zipRight(FiberSet.awaitEmpty(calls)),
      Effect.matchCauseEffect({
        onSuccess: () => Queue.offer(results, Take.end),
        onFailure: (cause: Cause.Cause<E>) => Queue.offer(results, Take.failCause(cause))
      })
    )
    yield* Effect.forkScoped(dispatch)
    return Stream.flattenTake(Stream.fromQueue(results))
  }))

// ---------------------------------------------------------------------------
// A run
// ---------------------------------------------------------------------------

export interface RunOptions {
  readonly input: string
  readonly output: string
  readonly errors?: string | undefined
  readonly concurrency?: number | undefined
  readonly dryRun?: boolean | undefined
  readonly retryFailed?: boolean | undefined
  readonly skipInvalid?: boolean | undefined
  readonly shard?: Input.Shard | undefined
  readonly prices?: UsageTracker.Options["prices"]
  /**
   * `false` skips the preflight; a client runs it instead of the one in context
   * (one that does not retry, so that a wrong URL fails at once).
   */
  readonly preflight?: boolean | InferenceClient.InferenceClient.Service | undefined
  readonly stop?: Effect.Effect<void> | undefined
  readonly grace?: Duration.DurationInput | undefined
  readonly onProgress?: ((progress: Progress) => Effect.Effect<void>) | undefined
  readonly progressInterval?: Duration.DurationInput | undefined
}

/** Where a run stands. */
export interface Progress {
  /** Rows this run has to do. */
  readonly total: number
  readonly done: number
  readonly succeeded: number
  readonly failed: number
  readonly failedByTag: Readonly<Record<string, number>>
  /** Rows taken and not finished. */
  readonly inFlight: number
  /** The adaptive concurrency limits of the input's models, added up; `undefined` when none is set. */
  readonly limit: number | undefined
  readonly promptTokens: number
  readonly completionTokens: number
  readonly usd: number
  readonly elapsedMillis: number
  /** Rows finished per second, over the run so far. */
  readonly rowsPerSecond: number
  /** The time left at that rate; `undefined` before the first row finishes. */
  readonly etaMillis: number | undefined
}

/** Why a run ended before every row was done. */
export interface Stopped {
  readonly reason: "budget" | "interrupted" | "error"
  readonly message: string
}

/** What a run did. */
export interface Summary {
  readonly input: string
  readonly output: string
  readonly errors: string
  readonly dryRun: boolean
  /** Rows in the file (blank lines left out). */
  readonly rows: number
  /** Valid rows of this shard (all valid rows without a shard). */
  readonly inShard: number
  readonly invalid: number
  /** Rows earlier runs had done: succeeded, or failed and not tried again. */
  readonly alreadySucceeded: number
  readonly alreadyFailed: number
  /** Rows an earlier run failed that this run tried again. */
  readonly retried: number
  /** Rows an earlier run had sent but not finished when it stopped: they may have been paid twice. */
  readonly unfinishedBefore: number
  readonly succeeded: number
  readonly failed: number
  readonly failedByTag: Readonly<Record<string, number>>
  /** Rows of this shard not done when the run ended (budget, interrupt, a stopping error). */
  readonly pending: number
  /** Rows in flight when the run gave up waiting for them (after an interrupt's grace). */
  readonly abandoned: number
  /** HTTP attempts made, retries included. */
  readonly attempts: number
  readonly promptTokens: number
  readonly completionTokens: number
  readonly usd: number
  /** The estimate of the rows to do (all rows of the shard for a dry run). */
  readonly estimate: ReadonlyArray<Input.ModelEstimate>
  readonly wallMillis: number
  readonly stopped: Stopped | undefined
}

/** The errors file of an output file, unless one is given. */
export const defaultErrors = (output: string): string => `${output}.errors.jsonl`

/** The journal of an output file: the `custom_id` of each row taken, a line each. */
export const journalOf = (output: string): string => `${output}.journal`

const preflight = (models: ReadonlyArray<string>, with_: InferenceClient.InferenceClient.Service | undefined) =>
  Effect.gen(function*() {
    const client = with_ ?? (yield* InferenceClient.InferenceClient)
    const offered = yield* client.listModels().pipe(
      Effect.mapError((error) => new PreflightError({ error, unknownModels: [], available: [] }))
    )
    const ids = new Set(offered.map((model) => model.id))
    const unknown = models.filter((model) => !ids.has(model))
    if (unknown.length > 0) {
      return yield* new PreflightError({ unknownModels: unknown, available: [...ids].slice(0, 20) })
    }
  })

const emptySummary = (options: RunOptions, errors: string, scan: Input.Scan) => ({
  input: options.input,
  output: options.output,
  errors,
  dryRun: options.dryRun === true,
  rows: scan.rows,
  inShard: scan.inShard,
  invalid: scan.problemCount,
  alreadySucceeded: 0,
  alreadyFailed: 0,
  retried: 0,
  unfinishedBefore: 0,
  succeeded: 0,
  failed: 0,
  failedByTag: {},
  pending: 0,
  abandoned: 0,
  attempts: 0,
  promptTokens: 0,
  completionTokens: 0,
  usd: 0,
  estimate: scan.models,
  wallMillis: 0,
  stopped: undefined
})

const totalsOf = (tracker: Option.Option<UsageTracker.UsageTracker.Service>) =>
  Option.match(tracker, {
    onNone: () => Effect.succeed(undefined),
    onSome: (tracker) => Effect.map(tracker.totals, (totals) => totals.overall)
  })

/**
 * Runs a batch file to its end (or to a stop) and returns the summary. Fails
 * only when the run cannot start or a file cannot be read or written.
 */
export const run = (
  options: RunOptions
): Effect.Effect<Summary, BatchError, InferenceClient.InferenceClient> =>
  Effect.gen(function*() {
    const started = Date.now()
    const errors = options.errors ?? defaultErrors(options.output)
    const journal = journalOf(options.output)
    const scan = yield* Input.scan(options.input, { shard: options.shard, prices: options.prices })
    if (scan.problemCount > 0 && options.skipInvalid !== true) {
      return yield* new InvalidInputError({ path: options.input, problems: scan.problems, count: scan.problemCount })
    }
    const base = emptySummary(options, errors, scan)
    if (options.dryRun === true) return { ...base, wallMillis: Date.now() - started }

    if (options.preflight !== false && scan.models.length > 0) {
      yield* preflight(scan.models.map((m) => m.model), options.preflight === true ? undefined : options.preflight)
    }

    const prior = yield* Output.readPrior({ output: options.output, errors, journal })
    const retry = (customId: string) => {
      const failure = prior.failed.get(customId)
      return failure !== undefined && (failure.retryable || options.retryFailed === true)
    }
    const wanted = (customId: string) =>
      !prior.succeeded.has(customId) && (!prior.failed.has(customId) || retry(customId))
    // One pass over the rows of this shard (the results files may hold rows of other shards too): those an earlier
    // run finished, those it failed that are tried again, and the estimate of the rows to do.
    let alreadySucceeded = 0
    let alreadyFailed = 0
    let retried = 0
    const toDo = Input.estimates(options.prices)
    yield* Stream.runForEach(Input.rows(options.input, options.shard, scan.skipLines, () => true), (row) =>
      Effect.sync(() => {
        if (prior.succeeded.has(row.customId)) {
          alreadySucceeded++
          return
        }
        if (prior.failed.has(row.customId)) {
          if (!retry(row.customId)) {
            alreadyFailed++
            return
          }
          retried++
        }
        toDo.add(row.body)
      }))
    // The error lines of rows tried again go: each row is in exactly one file at the end.
    if (retried > 0) {
      yield* Lines.filter(errors, (text) => {
        const customId = Output.customIdOf(text)
        return customId === undefined || !retry(customId)
      })
    }
    const estimate = toDo.result()
    const total = scan.inShard - alreadySucceeded - alreadyFailed

    const tracker = yield* Effect.serviceOption(UsageTracker.UsageTracker)
    const before = yield* totalsOf(tracker)
    const models = scan.models.map((m) =>
      m.model
    )

    let succeeded = 0
    let failed = 0
    let inFlight = 0
    const failedByTag: Record<string, number> = {}
    let stopped: Stopped | undefined
    // Completed by `options.stop` (an interrupt) or by an error that stops the run, whichever comes first.
    const stop = yield* Deferred.make<void>()
    if (options.stop !== undefined) {
      yield* Effect.forkScoped(Effect.zipRight(
        options.stop,
        Effect.suspend(() => {
          stopped ??= { reason: "interrupted", message: "interrupted: no further rows were taken" }
          return Deferred.succeed(stop, undefined)
        })
      ))
    }

    // The adaptive limits of the input's models, added up; `undefined` while none is set (adaptive concurrency
    // off, or no call made yet).
    const gauges = models.map((model) => Metric.tagged(InferenceClient.concurrencyLimit, "model", model))
    const limitNow: Effect.Effect<number | undefined> = Effect.map(
      Effect.forEach(gauges, Metric.value),
      (states) => {
        let limit: number | undefined
        for (const { value } of states) if (value > 0) limit = (limit ?? 0) + value
        return limit
      }
    )
    // Rows taken at once: the adaptive limit and a few more, so a slot the client frees finds a row waiting; before
    // the limit is known, as many as the client starts with; with no adaptive limit, `concurrency`.
    const window = Effect.map(limitNow, (limit) =>
      limit !== undefined
        ? limit + Math.max(2, Math.ceil(limit / 8))
        : succeeded + failed === 0
        ? FIRST_WINDOW
        : undefined)

    // What the tracker counted since the run began (0 without a tracker).
    const since = (now: UsageTracker.Summary | undefined) =>
    (
      key: "attempts" | "promptTokens" | "completionTokens" | "costUsd"
    ): number => now === undefined || before === undefined ? 0 : now[key] - before[key]

    const progress = (): Effect.Effect<Progress> =>
      Effect.gen(function*() {
        const used = since(yield* totalsOf(tracker))
        const limit = yield* limitNow
        const elapsedMillis = Date.now() - started
        const done = succeeded + failed
        const rowsPerSecond = elapsedMillis > 0 ? done / (elapsedMillis / 1000) : 0
        return {
          total,
          done,
          succeeded,
          failed,
          failedByTag: { ...failedByTag },
          inFlight,
          limit,
          promptTokens: used("promptTokens"),
          completionTokens: used("completionTokens"),
          usd: used("costUsd"),
          elapsedMillis,
          rowsPerSecond,
          etaMillis: done === 0 || rowsPerSecond === 0 ? undefined : ((total - done) / rowsPerSecond) * 1000
        }
      })

    const report = options.onProgress === undefined ? Effect.void : Effect.flatMap(progress(), options.onProgress)
    const reporter = yield* Effect.forkScoped(
      Effect.repeat(report, Schedule.spaced(options.progressInterval ?? Duration.seconds(1))).pipe(
        Effect.delay(options.progressInterval ?? Duration.seconds(1))
      )
    )

    const abandoned = { count: 0 }
    yield* Effect.scoped(Effect.gen(function*() {
      const out = yield* Lines.appender(options.output)
      const err = yield* Lines.appender(errors)
      const journalFile = yield* Lines.appender(journal)
      const rows = Input.rows(options.input, options.shard, scan.skipLines, wanted).pipe(
        Stream.map((row): Row => ({ customId: row.customId, body: row.body }))
      )
      const results = process(rows, {
        concurrency: options.concurrency,
        window,
        stop: Deferred.await(stop),
        onTake: (row) => {
          inFlight++
          journalFile.append(JSON.stringify(row.customId))
        }
      })
      // After a stop, rows in flight have `grace` to finish; then they are interrupted (their requests aborted).
      const giveUp = Effect.zipRight(Deferred.await(stop), Effect.sleep(options.grace ?? Duration.seconds(30))).pipe(
        Effect.tap(() => Effect.sync(() => (abandoned.count = inFlight)))
      )
      yield* results.pipe(
        Stream.interruptWhen(giveUp),
        Stream.runForEach((result) =>
          Effect.sync(() => {
            inFlight--
            if (result._tag === "Succeeded") {
              out.append(Output.successLine(result.customId, result.completion))
              succeeded++
              return
            }
            const error = result.error
            if (stopsRun(error)) {
              stopped ??= {
                reason: error._tag === "BudgetExceededError" ? "budget" : "error",
                message: error._tag === "BudgetExceededError"
                  ? `stopped taking rows: the next would pass the budget (${error.message})`
                  : `stopped taking rows: ${error.message}`
              }
              return
            }
            err.append(Output.failureLine(result.customId, error))
            failed++
            failedByTag[error._tag] = (failedByTag[error._tag] ?? 0) + 1
          }).pipe(Effect.flatMap(() => stopped === undefined ? Effect.void : Deferred.succeed(stop, undefined)))
        )
      )
    }))
    yield* Fiber.interrupt(reporter)
    if (options.onProgress !== undefined) yield* report
    const used = since(yield* totalsOf(tracker))
    const pending = total - succeeded - failed
    if (pending === 0) yield* Effect.sync(() => fs.rmSync(journal, { force: true }))
    return {
      ...base,
      alreadySucceeded,
      alreadyFailed,
      retried,
      unfinishedBefore: prior.unfinished,
      succeeded,
      failed,
      failedByTag,
      pending,
      abandoned: abandoned.count,
      attempts: used("attempts"),
      promptTokens: used("promptTokens"),
      completionTokens: used("completionTokens"),
      usd: used("costUsd"),
      estimate,
      wallMillis: Date.now() - started,
      stopped
    }
  }).pipe(Effect.scoped)
