/**
 * Where a client keeps each model's adaptive concurrency limit (the
 * `adaptiveConcurrency` option): a FIFO line of permits per model whose size
 * follows `adaptiveCore.step` after every answer, the gauge
 * `inference_concurrency_limit{model}`, and a debug log line per change.
 */
import * as Cause from "effect/Cause"
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

  constructor(readonly model: string, options: Core.Options) {
    this.state = Core.initial(options)
    this.slots = Slots.unsafeMake(Core.permits(this.state))
    this.gauge = Metric.tagged(limitGauge, "model", model)
  }
}

/**
 * The adaptive limits of one client, a model each.
 *
 * @internal
 */
export class AdaptiveLimits {
  private readonly models = new Map<string, ModelLimit>()

  constructor(readonly options: Core.Options) {}

  /** The limit of `model`, made (and its gauge set) the first time. */
  private of(model: string): Effect.Effect<ModelLimit> {
    const found = this.models.get(model)
    if (found !== undefined) return Effect.succeed(found)
    return Effect.suspend(() => {
      const again = this.models.get(model)
      if (again !== undefined) return Effect.succeed(again)
      const limit = new ModelLimit(model, this.options)
      this.models.set(model, limit)
      return Effect.as(Metric.set(limit.gauge, Core.permits(limit.state)), limit)
    })
  }

  /** Requests `model` may have in flight now (the options' `initial` before any answer). */
  limit(model: string): number {
    const found = this.models.get(model)
    return found === undefined ? Core.permits(Core.initial(this.options)) : Core.permits(found.state)
  }

  /** Applies what the service answered, resizing the line, setting the gauge and logging a change. */
  private record(limit: ModelLimit, event: Core.Event, now: number): Effect.Effect<void> {
    const before = Core.permits(limit.state)
    limit.state = Core.step(limit.state, event, now, this.options)
    const after = Core.permits(limit.state)
    if (after === before) return Effect.void
    limit.slots.resize(after)
    return Effect.zipRight(
      Metric.set(limit.gauge, after),
      Effect.logDebug("Concurrency limit changed").pipe(
        Effect.annotateLogs({ model: limit.model, from: before, to: after, after: event._tag })
      )
    )
  }

  /** What an attempt's end says of the limit: answered, refused for concurrency, or nothing. */
  private outcome<A>(
    limit: ModelLimit,
    exit: Exit.Exit<A, InferenceError.InferenceError>,
    inFlight: number,
    atLimit: boolean,
    sentAt: number,
    now: number
  ): Effect.Effect<void> {
    if (Exit.isSuccess(exit)) return this.record(limit, { _tag: "Accepted", inFlight, atLimit }, now)
    const failure = Cause.failureOption(exit.cause)
    return failure._tag === "Some" && failure.value._tag === "RateLimitError"
      ? this.record(limit, { _tag: "Refused", inFlight, sentAt }, now)
      : Effect.void
  }

  /**
   * Runs `self` (one attempt at `model`) holding one of the model's permits:
   * given back when `self` ends (`hold` "attempt"), or when `hold` closes (a
   * stream's attempt, whose request lasts as long as the stream). How `self`
   * ends adapts the limit. The wait is interruptible; `self` runs with the
   * caller's interruptibility.
   */
  withPermit<A, R>(
    self: Effect.Effect<A, InferenceError.InferenceError, R>,
    model: string,
    hold: Scope.Scope | "attempt"
  ): Effect.Effect<A, InferenceError.InferenceError, R> {
    return Effect.flatMap(
      this.of(model),
      (limit) =>
        Effect.clockWith((clock) =>
          Effect.uninterruptibleMask((restore) =>
            Effect.flatMap(limit.slots.take(restore), () => {
              const inFlight = ++limit.inFlight
              const atLimit = inFlight >= Core.permits(limit.state)
              const sentAt = clock.unsafeCurrentTimeMillis()
              let released = false
              const release = Effect.sync(() => {
                if (released) return
                released = true
                limit.inFlight--
                limit.slots.unsafeRelease()
              })
              const adapt = (exit: Exit.Exit<A, InferenceError.InferenceError>) =>
                this.outcome(limit, exit, inFlight, atLimit, sentAt, clock.unsafeCurrentTimeMillis())
              if (hold === "attempt") {
                return Effect.onExit(restore(self), (exit) => Effect.zipRight(release, adapt(exit)))
              }
              // A stream's attempt: the permit stays with its scope; a failed attempt's scope is closed by its caller.
              return Effect.zipRight(Scope.addFinalizer(hold, release), Effect.onExit(restore(self), adapt))
            })
          )
        )
    )
  }
}

/**
 * Adaptive limits within `options`.
 *
 * @internal
 */
export const make = (options: Core.Options): AdaptiveLimits => new AdaptiveLimits(options)
