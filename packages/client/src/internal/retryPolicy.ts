import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import { dual } from "effect/Function"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import * as ScheduleDecision from "effect/ScheduleDecision"
import * as Intervals from "effect/ScheduleIntervals"
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

/**
 * Runs `attempt` (given its 1-based number) until it succeeds or the policy
 * gives up, and fails with the last error itself. `onFailure` is told about every
 * failed attempt and the delay before the next one (none when it was the last).
 *
 * `Effect.retry` would hide that delay, which every retry log line must show, so
 * the policy's own `step` is driven here.
 *
 * @internal
 */
export const retrying = <A, R, R2>(
  attempt: (n: number) => Effect.Effect<A, InferenceError, R>,
  policy: Schedule.Schedule<unknown, InferenceError, R2>,
  onFailure: (error: InferenceError, attempt: number, next: Option.Option<Duration.Duration>) => Effect.Effect<void>
): Effect.Effect<A, InferenceError, R | R2> =>
  Effect.suspend(() => {
    let state = policy.initial
    const loop = (n: number): Effect.Effect<A, InferenceError, R | R2> =>
      Effect.catchAll(attempt(n), (error) =>
        Effect.flatMap(Clock.currentTimeMillis, (now) =>
          Effect.flatMap(policy.step(now, error, state), ([next, , decision]) => {
            if (ScheduleDecision.isDone(decision)) {
              return Effect.zipRight(onFailure(error, n, Option.none()), Effect.fail(error))
            }
            state = next
            const delay = Duration.millis(Math.max(0, Intervals.start(decision.intervals) - now))
            return onFailure(error, n, Option.some(delay)).pipe(
              Effect.zipRight(Effect.sleep(delay)),
              Effect.zipRight(loop(n + 1))
            )
          })))
    return loop(1)
  })
