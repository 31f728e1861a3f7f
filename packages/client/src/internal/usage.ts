/**
 * Where a call's usage is recorded: its place in the budget held before
 * anything is sent (a call that does not fit fails with `BudgetExceededError`),
 * and its record written however it ends, with the usage the server reported,
 * an estimate, or none. (`usageTracker.ts` is the tracker itself: totals,
 * prices, budgets and alerts.)
 */
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import { dual } from "effect/Function"
import * as Option from "effect/Option"
import type { ChatCompletion, ChatCompletionRequest } from "../ChatCompletion.js"
import type * as InferenceError from "../InferenceError.js"
import * as UsageTracker from "../UsageTracker.js"
import type { CallState } from "./environment.js"

/**
 * How one call ended, for its usage record.
 *
 * @internal
 */
export const endingOf = (exit: Exit.Exit<unknown, InferenceError.InferenceError>) =>
  Exit.isSuccess(exit) ? {} : Option.match(Cause.failureOption(exit.cause), {
    onSome: (error) => ({ error }),
    onNone: () => Cause.isInterruptedOnly(exit.cause) ? { interrupted: true } : { defect: true }
  })

/**
 * Records a finished call of `request`, begun at `start`, as far as `call` got.
 *
 * @internal
 */
export const recordCall = (
  tracker: UsageTracker.UsageTracker.Service,
  request: ChatCompletionRequest,
  call: CallState,
  start: number,
  ending: Omit<UsageTracker.CallRecord, "model" | "latency" | "attempts" | "requestId" | "messages">
): Effect.Effect<UsageTracker.UsageEvent> =>
  Effect.clockWith((clock) =>
    tracker.record({
      model: call.model ?? request.model,
      latency: Duration.millis(clock.unsafeCurrentTimeMillis() - start),
      attempts: call.attempts,
      requestId: call.requestId,
      messages: request.messages,
      ...ending
    })
  )

/**
 * The usage a server reported, checked (see `UsageTracker.callUsage`).
 *
 * @internal
 */
export const reported = (usage: ChatCompletion["usage"]) =>
  usage === undefined ? undefined : UsageTracker.callUsage(usage)

/**
 * What a plain call is tracked with: the tracker, the request (its estimate),
 * the models it may go to (the reservation is priced at the dearest), and how
 * far it got.
 *
 * @internal
 */
export interface Tracking {
  readonly tracker: UsageTracker.UsageTracker.Service | undefined
  readonly request: ChatCompletionRequest
  readonly models: ReadonlyArray<string>
  readonly call: CallState
}

/**
 * Runs a plain call holding its place in the budget, and records its usage
 * however it ends. Without a tracker, the call itself.
 *
 * @internal
 */
export const withUsage: {
  (
    tracking: Tracking
  ): (
    self: Effect.Effect<ChatCompletion, InferenceError.InferenceError>
  ) => Effect.Effect<ChatCompletion, InferenceError.InferenceError>
  (
    self: Effect.Effect<ChatCompletion, InferenceError.InferenceError>,
    tracking: Tracking
  ): Effect.Effect<ChatCompletion, InferenceError.InferenceError>
} = dual(2, (
  self: Effect.Effect<ChatCompletion, InferenceError.InferenceError>,
  { call, models, request, tracker }: Tracking
): Effect.Effect<ChatCompletion, InferenceError.InferenceError> =>
  tracker === undefined ?
    self :
    Effect.flatMap(Clock.currentTimeMillis, (start) =>
      Effect.uninterruptibleMask((restore) =>
        Effect.flatMap(
          Effect.tapErrorCause(
            tracker.reserve(request, models),
            (cause) => recordCall(tracker, request, call, start, endingOf(Exit.failCause(cause)))
          ),
          (reservation) =>
            Effect.onExit(restore(self), (exit) =>
              recordCall(tracker, request, call, start, {
                reservation,
                usage: Exit.isSuccess(exit) ? reported(exit.value.usage) : undefined,
                ...endingOf(exit)
              }))
        )
      )))

/**
 * Records a call answered from the cache: no tokens, no cost, no attempt.
 *
 * @internal
 */
export const recordHit = (
  tracker: UsageTracker.UsageTracker.Service | undefined,
  model: string,
  stream: boolean,
  start: number
): Effect.Effect<void> =>
  tracker === undefined ? Effect.void : Effect.flatMap(
    Clock.currentTimeMillis,
    (end) => tracker.record({ model, stream, cached: true, latency: Duration.millis(end - start), attempts: 0 })
  )
