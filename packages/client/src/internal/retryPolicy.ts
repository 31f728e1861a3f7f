/**
 * Where a retry is decided: the default policy (exponential backoff with
 * jitter, a cap, a number of retries, retryable errors only), the server's
 * `Retry-After` within a bound, and an attempt retried by a policy with a log
 * line for every failure.
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import { dual } from "effect/Function"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import * as ScheduleDecision from "effect/ScheduleDecision"
import * as Schema from "effect/Schema"
import type { InferenceError } from "../InferenceError.js"
import { isRetryable } from "../InferenceError.js"
import type { Options } from "../RetryPolicy.js"
import * as checks from "./options.js"

/** @internal */
export const defaultOptions: Options = {
  maxRetries: 3,
  baseDelay: Duration.seconds(1),
  factor: 2,
  maxDelay: Duration.seconds(30),
  jitter: true,
  maxRetryAfter: Duration.seconds(60)
}

/** @internal */
export const retryAfterOf = (error: InferenceError): Option.Option<Duration.Duration> =>
  "retryAfter" in error ? error.retryAfter : Option.none()

/** @internal */
export const withRetryAfter = dual<
  (maxRetryAfter: Duration.DurationInput) => <Out, R>(
    self: Schedule.Schedule<Out, InferenceError, R>
  ) => Schedule.Schedule<Out, InferenceError, R>,
  <Out, R>(
    self: Schedule.Schedule<Out, InferenceError, R>,
    maxRetryAfter: Duration.DurationInput
  ) => Schedule.Schedule<Out, InferenceError, R>
>(2, <Out, R>(self: Schedule.Schedule<Out, InferenceError, R>, maxRetryAfter: Duration.DurationInput) => {
  const max = Duration.decode(maxRetryAfter)
  return Schedule.intersect(self, Schedule.identity<InferenceError>()).pipe(
    // Waiting longer than the caller allows is not our call to make: stop and let the error carry retryAfter.
    Schedule.whileInput((error: InferenceError) =>
      Option.match(retryAfterOf(error), {
        onNone: () => true,
        onSome: (retryAfter) => Duration.lessThanOrEqualTo(retryAfter, max)
      })
    ),
    Schedule.modifyDelay(([, error], delay) =>
      Option.match(retryAfterOf(error), {
        onNone: () => delay,
        onSome: (retryAfter) => Duration.max(delay, retryAfter)
      })
    ),
    Schedule.map(([out]) => out)
  )
})

/** The options of the default policy, every one checked; `retry.` prefixes each path in a message. */
const RetryOptions = Schema.Struct({
  retry: Schema.Struct({
    maxRetries: Schema.optional(checks.wholeNumber(0)),
    // A zero or negative delay would retry at once: not a backoff.
    baseDelay: Schema.optional(checks.duration({ finite: true })),
    factor: Schema.optional(
      checks.check((u): u is number => typeof u === "number" && Number.isFinite(u) && u >= 1, "a finite number >= 1")
    ),
    maxDelay: Schema.optional(checks.duration()),
    jitter: Schema.optional(checks.boolean),
    // Zero is a choice: never wait for a Retry-After (the error carries it instead).
    maxRetryAfter: Schema.optional(checks.duration({ orZero: true }))
  })
})

const decodeRetryOptions = checks.decoder(RetryOptions, "retry")

/**
 * Checks the options of the default policy, naming the wrong one.
 *
 * @internal
 */
export const validate = (input: Partial<Options>): Either.Either<Options, string> =>
  Either.map(decodeRetryOptions({ retry: input }), ({ retry }) => ({ ...defaultOptions, ...checks.defined(retry) }))

/** @internal */
export const make = (options?: Partial<Options>): Schedule.Schedule<Duration.Duration, InferenceError> => {
  const o = { ...defaultOptions, ...options }
  const maxDelay = Duration.decode(o.maxDelay)
  const capped = Schedule.exponential(o.baseDelay, o.factor).pipe(
    Schedule.modifyDelay((_, delay) => Duration.min(delay, maxDelay))
  )
  // Jitter after the cap: capping a jittered delay would put every client that reached the cap back in step.
  const backoff = o.jitter ? Schedule.jittered(capped) : capped
  return backoff.pipe(
    Schedule.intersect(Schedule.recurs(o.maxRetries)),
    Schedule.whileInput(isRetryable),
    withRetryAfter(o.maxRetryAfter),
    Schedule.delays
  )
}

/** Jittered delays carry nanoseconds; a log line only needs milliseconds. */
const roundMillis = (duration: Duration.Duration): Duration.Duration =>
  Duration.millis(Math.round(Duration.toMillis(duration)))

/**
 * The log line of a failed attempt, at Warning: its number, the error's tag,
 * status and request id, and the delay before the next attempt (none when it
 * was the last).
 *
 * @internal
 */
export const logFailure = (
  error: InferenceError,
  attempt: number,
  next: Option.Option<Duration.Duration>
): Effect.Effect<void> =>
  Effect.logWarning(
    Option.isSome(next) ? "Inference attempt failed; retrying" : "Inference attempt failed; not retrying"
  ).pipe(
    Effect.annotateLogs({
      attempt,
      tag: error._tag,
      status: "status" in error && error.status !== undefined ? error.status : "none",
      requestId: "requestId" in error && error.requestId !== undefined ? error.requestId : "none",
      retryIn: Option.match(next, { onNone: () => "none", onSome: (d) => Duration.format(roundMillis(d)) }),
      error: error.message
    })
  )

/**
 * A retry policy that logs every failed attempt it is fed ({@link logFailure}):
 * `Schedule.onDecision` sees the error (the schedule's input, carried beside its
 * output), the attempt's number (a count beside it), the delay before the next
 * attempt (`Schedule.delays` of the policy: measured from the instant the policy
 * decided, so a 2 s backoff logs as `2s`) and whether there is one. Built once
 * per client; a driver's state is per call.
 *
 * @internal
 */
export const logged = <R>(
  policy: Schedule.Schedule<unknown, InferenceError, R>
): Schedule.Schedule<unknown, InferenceError, R> =>
  Schedule.delays(policy).pipe(
    Schedule.intersect(Schedule.identity<InferenceError>()),
    Schedule.intersect(Schedule.count),
    Schedule.onDecision(([[delay, error], count], decision) =>
      logFailure(error, count + 1, ScheduleDecision.isDone(decision) ? Option.none() : Option.some(delay))
    )
  )

/**
 * Retries `self` by `policy` (built by {@link logged}) with `Effect.retry`, and
 * fails with the last error itself; with no policy, runs it once and logs its
 * failure as the last.
 *
 * @internal
 */
export const withRetry: {
  <R2>(
    policy: Schedule.Schedule<unknown, InferenceError, R2> | undefined
  ): <A, R>(self: Effect.Effect<A, InferenceError, R>) => Effect.Effect<A, InferenceError, R | R2>
  <A, R, R2>(
    self: Effect.Effect<A, InferenceError, R>,
    policy: Schedule.Schedule<unknown, InferenceError, R2> | undefined
  ): Effect.Effect<A, InferenceError, R | R2>
} = dual(2, <A, R, R2>(
  self: Effect.Effect<A, InferenceError, R>,
  policy: Schedule.Schedule<unknown, InferenceError, R2> | undefined
): Effect.Effect<A, InferenceError, R | R2> =>
  policy === undefined
    ? Effect.tapError(self, (error) => logFailure(error, 1, Option.none()))
    // `Effect.retry` makes its schedule's driver (a `Ref`) before the first run, about 4 µs of CPU per call
    // (see `Hold` in pipeline.ts); nearly every call succeeds at once. So it starts at the first failure: its
    // first run fails again with that error, which the schedule sees as the first attempt's, and the ones after
    // run `self` again. The decisions and the log line are those of `Effect.retry(self, policy)`.
    : Effect.catchAll(self, (first) => {
      let replayed = false
      return Effect.retry(
        Effect.suspend(() => {
          if (replayed) return self
          replayed = true
          return Effect.fail(first)
        }),
        policy
      )
    }))
