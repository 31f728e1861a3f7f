/**
 * When a failed call is tried again, and after how long.
 *
 * The policy is a plain `Schedule` fed with the `InferenceError` of each failed
 * attempt, so it can be composed with Effect's own combinators or replaced.
 *
 * @since 0.1.0
 */
import type * as Duration from "effect/Duration"
import type * as Schedule from "effect/Schedule"
import type { InferenceError } from "./InferenceError.js"
import * as internal from "./internal/retryPolicy.js"

/**
 * The knobs of the default policy.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** Retries after the first attempt (so `maxRetries + 1` attempts at most). Default 3. */
  readonly maxRetries: number
  /** Delay before the first retry. Default 1 second. */
  readonly baseDelay: Duration.DurationInput
  /** Growth of the delay per retry. Default 2. */
  readonly factor: number
  /** Upper bound of the backoff before jitter (a jittered wait can be up to 20% longer). Default 30 seconds. */
  readonly maxDelay: Duration.DurationInput
  /** Spread each delay randomly over 80%-120% so that clients do not retry in step. Default `true`. */
  readonly jitter: boolean
  /**
   * The longest `Retry-After` the client will wait for. A longer one fails the
   * call at once with the error (its `retryAfter` set) so the caller decides.
   * Default 60 seconds.
   */
  readonly maxRetryAfter: Duration.DurationInput
}

/**
 * The default options: 3 retries, 1 s doubling to at most 30 s, jittered, and
 * `Retry-After` obeyed up to 60 s.
 *
 * @since 0.1.0
 * @category constructors
 */
export const defaultOptions: Options = internal.defaultOptions

/**
 * The retry policy of the client: `Schedule.exponential(baseDelay, factor)`,
 * capped at `maxDelay`, jittered, limited to `maxRetries`, continuing only while
 * the error `isRetryable`, and obeying the server's `Retry-After` (see
 * {@link withRetryAfter}). Its output is the delay before the next attempt.
 *
 * @example
 * ```ts
 * import { InferenceClient, RetryPolicy } from "@effect-inference/client"
 * import { Redacted, Schedule } from "effect"
 *
 * // Five quick retries, then give up; still obeys Retry-After.
 * const retry = RetryPolicy.make({ maxRetries: 5, baseDelay: "200 millis" })
 * // Or compose: no new retry once 20 seconds have passed since the first failure.
 * const bounded = retry.pipe(Schedule.upTo("20 seconds"))
 *
 * InferenceClient.layer({ apiKey: Redacted.make("key"), retry: bounded })
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: (options?: Partial<Options>) => Schedule.Schedule<Duration.Duration, InferenceError> = internal.make

/**
 * Adds the `Retry-After` rule to any schedule of `InferenceError`s: the next
 * delay is at least the `retryAfter` of the error, and an error whose
 * `retryAfter` exceeds `maxRetryAfter` stops the schedule at once.
 *
 * @example
 * ```ts
 * import { InferenceError, RetryPolicy } from "@effect-inference/client"
 * import { Schedule } from "effect"
 *
 * // A schedule of your own: every 2 seconds, 10 times at most, only what is retryable,
 * // and never sooner than the server's Retry-After (up to a minute).
 * const retry = Schedule.spaced("2 seconds").pipe(
 *   Schedule.intersect(Schedule.recurs(10)),
 *   Schedule.whileInput(InferenceError.isRetryable),
 *   RetryPolicy.withRetryAfter("1 minute")
 * )
 * ```
 *
 * @since 0.1.0
 * @category combinators
 */
export const withRetryAfter: {
  (maxRetryAfter: Duration.DurationInput): <Out, R>(
    self: Schedule.Schedule<Out, InferenceError, R>
  ) => Schedule.Schedule<Out, InferenceError, R>
  <Out, R>(
    self: Schedule.Schedule<Out, InferenceError, R>,
    maxRetryAfter: Duration.DurationInput
  ): Schedule.Schedule<Out, InferenceError, R>
} = internal.withRetryAfter
