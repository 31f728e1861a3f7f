/**
 * Where a client keeps each model's adaptive concurrency limit (the
 * `adaptiveConcurrency` option): a FIFO line of permits per model whose size
 * follows `adaptiveCore.step` after every answer, the gauge
 * `inference_concurrency_limit{model}`, and a debug log line per change.
 */
import * as Cause from "effect/Cause"
import type * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Metric from "effect/Metric"
import * as Scope from "effect/Scope"
import type * as InferenceError from "../InferenceError.js"
import * as Core from "./adaptiveCore.js"
import * as Slots from "./slots.js"

/**
 * The current limit of each model a client called, as requests in flight.
 *
 * @internal
 */
export const limitGauge = Metric.gauge("inference_concurrency_limit", {
  description: "Requests allowed in flight per model, as adaptive concurrency found it"
})

/** One model's limit: what it knows, its line, and the requests it lets through now. */
class ModelLimit {
  state: Core.State
  readonly slots: Slots.Slots
  inFlight = 0
  readonly gauge: Metric.Metric.Gauge<number>
  /** The gauge has not been set yet: the first answer sets it. */
  unreported = true

  constructor(readonly model: string, options: Core.Options) {
    this.state = Core.initial(options)
    this.slots = Slots.unsafeMake(Core.permits(this.state))
    this.gauge = Metric.tagged(limitGauge, "model", model)
  }
}

/**
 * The adaptive limits of one client, a model each, on `clock` (the clock the
 * client was built with: `TestClock` in tests).
 *
 * @internal
 */
export class AdaptiveLimits {
  private readonly models = new Map<string, ModelLimit>()

  constructor(readonly options: Core.Options, private readonly clock: Clock.Clock) {}

  private of(model: string): ModelLimit {
    let limit = this.models.get(model)
    if (limit === undefined) {
      limit = new ModelLimit(model, this.options)
      this.models.set(model, limit)
    }
    return limit
  }

  /** Requests `model` may have in flight now (the options' `initial` before any answer). */
  limit(model: string): number {
    const found = this.models.get(model)
    return found === undefined ? Core.permits(Core.initial(this.options)) : Core.permits(found.state)
  }

  /** Applies what the service answered, resizing the line, setting the gauge and logging a change. */
  private record(limit: ModelLimit, event: Core.Event): Effect.Effect<void> {
    const before = Core.permits(limit.state)
    limit.state = Core.step(limit.state, event, this.clock.unsafeCurrentTimeMillis(), this.options)
    const after = Core.permits(limit.state)
    if (after === before) {
      if (!limit.unreported) return Effect.void
      limit.unreported = false
      return Metric.set(limit.gauge, after)
    }
    limit.unreported = false
    limit.slots.resize(after)
    return Effect.zipRight(
      Metric.set(limit.gauge, after),
      Effect.logDebug("Concurrency limit changed").pipe(
        Effect.annotateLogs({ model: limit.model, from: before, to: after, after: event._tag })
      )
    )
  }

  /**
   * Runs `self` (one attempt at `model`) holding one of the model's permits:
   * given back when `self` ends (`hold` "attempt"), or when `hold` closes (a
   * stream's attempt, whose request lasts as long as the stream). How `self`
   * ends adapts the limit: an answer, or a 429 (`RateLimitError`); any other
   * failure says nothing of it. The wait is interruptible; `self` runs with
   * the caller's interruptibility.
   *
   * A free permit is taken in the same step as the rest (no effect of its
   * own): this runs around every attempt, and the steps of a wait, which is
   * rare, would cost every call: with a `take` effect and a lookup effect this
   * added 22 runtime operations to a plain call's 178, this way 15
   * (`InferenceClient.make` over a transport answering from memory, the
   * operations counted at the fiber runtime's dispatch).
   */
  withPermit<A, R>(
    self: Effect.Effect<A, InferenceError.InferenceError, R>,
    model: string,
    hold: Scope.Scope | "attempt"
  ): Effect.Effect<A, InferenceError.InferenceError, R> {
    return Effect.uninterruptibleMask((restore) =>
      Effect.suspend(() => {
        const limit = this.of(model)
        const run = (): Effect.Effect<A, InferenceError.InferenceError, R> => {
          const inFlight = ++limit.inFlight
          const atLimit = inFlight >= Core.permits(limit.state)
          const sentAt = this.clock.unsafeCurrentTimeMillis()
          let released = false
          const release = () => {
            if (released) return
            released = true
            limit.inFlight--
            limit.slots.unsafeRelease()
          }
          const adapt = (exit: Exit.Exit<A, InferenceError.InferenceError>): Effect.Effect<void> => {
            // The limit first, then the permit back: a 429 that lowers the limit keeps this permit from going to
            // the next in line, who would only be refused too.
            let recorded: Effect.Effect<void> = Effect.void
            if (Exit.isSuccess(exit)) recorded = this.record(limit, { _tag: "Accepted", inFlight, atLimit, sentAt })
            else {
              const failure = Cause.failureOption(exit.cause)
              if (failure._tag === "Some" && failure.value._tag === "RateLimitError") {
                recorded = this.record(limit, { _tag: "Refused", inFlight, sentAt })
              }
            }
            if (hold === "attempt") release()
            return recorded
          }
          if (hold === "attempt") return Effect.onExit(restore(self), adapt)
          // A stream's attempt: the permit stays with its scope; a failed attempt's scope is closed by its caller.
          return Effect.zipRight(Scope.addFinalizer(hold, Effect.sync(release)), Effect.onExit(restore(self), adapt))
        }
        return limit.slots.tryTake() ? run() : Effect.flatMap(limit.slots.take(restore), run)
      })
    )
  }
}

/**
 * Adaptive limits within `options`.
 *
 * @internal
 */
export const make = (options: Core.Options, clock: Clock.Clock): AdaptiveLimits => new AdaptiveLimits(options, clock)
