/**
 * Where a client keeps each model's adaptive concurrency limit (the
 * `adaptiveConcurrency` option): a FIFO line of permits per model whose size
 * follows `adaptiveCore.step` after every answer, the gauge
 * `inference_concurrency_limit{model}`, and a debug log line per change.
 *
 * With a `ConcurrencyStore` in context (Redis, for several processes), each
 * model's permits are leases in it, under `adaptive <baseUrl> <project>
 * <model>`: a request is let through while fewer than this process's limit
 * are in flight in all processes, and the `k` of the rule (the requests in
 * flight when one was sent) is the store's count, every process's. Each
 * process keeps its own state, but all of them learn the one limit the
 * service enforces, from the same counts: their limits converge, and together
 * they stay under it.
 */
import * as Cause from "effect/Cause"
import type * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Metric from "effect/Metric"
import * as Scope from "effect/Scope"
import type * as ConcurrencyStore from "../ConcurrencyStore.js"
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

/**
 * Where the limits' permits are kept when several processes share them: the
 * store, and the endpoint and project its keys are scoped by.
 *
 * @internal
 */
export interface Shared {
  readonly store: ConcurrencyStore.ConcurrencyStore.Service
  readonly scope: string
}

/** One model's limit: what it knows, its line, and the requests it lets through now. */
class ModelLimit {
  state: Core.State
  /** This process's line (`Slots`), or the store's leases behind this process's line (`StoreSlots`). */
  readonly slots: Slots.Slots | Slots.StoreSlots
  readonly gauge: Metric.Metric.Gauge<number>
  /** The gauge has not been set yet: the first answer sets it. */
  unreported = true

  constructor(readonly model: string, options: Core.Options, shared: Shared | undefined) {
    this.state = Core.initial(options)
    this.slots = shared === undefined
      ? Slots.unsafeMake(Core.permits(this.state))
      : Slots.unsafeMakeWithStore({
        limit: Core.permits(this.state),
        key: `adaptive ${shared.scope} ${model}`,
        store: shared.store
      })
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

  constructor(
    readonly options: Core.Options,
    private readonly clock: Clock.Clock,
    private readonly shared?: Shared | undefined
  ) {}

  private of(model: string): ModelLimit {
    let limit = this.models.get(model)
    if (limit === undefined) {
      limit = new ModelLimit(model, this.options, this.shared)
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
    return Effect.suspend(() => {
      const limit = this.of(model)
      const slots = limit.slots
      return slots instanceof Slots.Slots
        ? this.local(limit, slots, self, hold)
        : this.viaStore(limit, slots, self, hold)
    })
  }

  /**
   * What an attempt's end says of the limit (an answer, or a 429; any other
   * failure says nothing of it), applied now: the state changes at once, the
   * effect reports it.
   */
  private adapt<A>(
    limit: ModelLimit,
    exit: Exit.Exit<A, InferenceError.InferenceError>,
    inFlight: number,
    atLimit: boolean,
    sentAt: number
  ): Effect.Effect<void> {
    if (Exit.isSuccess(exit)) return this.record(limit, { _tag: "Accepted", inFlight, atLimit, sentAt })
    const failure = Cause.failureOption(exit.cause)
    return failure._tag === "Some" && failure.value._tag === "RateLimitError"
      ? this.record(limit, { _tag: "Refused", inFlight, sentAt })
      : Effect.void
  }

  /** A permit of this process's line. */
  private local<A, R>(
    limit: ModelLimit,
    slots: Slots.Slots,
    self: Effect.Effect<A, InferenceError.InferenceError, R>,
    hold: Scope.Scope | "attempt"
  ): Effect.Effect<A, InferenceError.InferenceError, R> {
    return Effect.uninterruptibleMask((restore) => {
      const run = (): Effect.Effect<A, InferenceError.InferenceError, R> => {
        // This one included: the permits the line has given out.
        const inFlight = slots.inUse
        const atLimit = inFlight >= Core.permits(limit.state)
        const sentAt = this.clock.unsafeCurrentTimeMillis()
        // The limit first, then the permit back: a 429 that lowers the limit keeps this permit from going to the
        // next in line, who would only be refused too.
        const adapt = (exit: Exit.Exit<A, InferenceError.InferenceError>): Effect.Effect<void> => {
          const recorded = this.adapt(limit, exit, inFlight, atLimit, sentAt)
          if (hold === "attempt") slots.unsafeRelease()
          return recorded
        }
        if (hold === "attempt") return Effect.onExit(restore(self), adapt)
        // A stream's attempt: the permit stays with its scope; a failed attempt's scope is closed by its caller.
        return Effect.zipRight(Scope.addFinalizer(hold, slots.release), Effect.onExit(restore(self), adapt))
      }
      return slots.tryTake() ? run() : Effect.flatMap(slots.take(restore), run)
    })
  }

  /**
   * A free permit of `model`'s own line taken now, in the caller's step, as
   * `withPermit` takes it with a scope to hold it (see streamFast.ts): the
   * attempt's end goes to `adapt`, and `release` gives the permit back.
   * `undefined` when the line has no free permit or lives in a store: then
   * `withPermit` it is.
   */
  tryHold(model: string): Held | undefined {
    const limit = this.of(model)
    const slots = limit.slots
    if (!(slots instanceof Slots.Slots) || !slots.tryTake()) return undefined
    const inFlight = slots.inUse
    const atLimit = inFlight >= Core.permits(limit.state)
    const sentAt = this.clock.unsafeCurrentTimeMillis()
    return {
      adapt: (exit) => this.adapt(limit, exit, inFlight, atLimit, sentAt),
      release: slots.unsafeRelease
    }
  }

  /** A lease in the store the processes share: `k` is the store's count, every process's. */
  private viaStore<A, R>(
    limit: ModelLimit,
    slots: Slots.StoreSlots,
    self: Effect.Effect<A, InferenceError.InferenceError, R>,
    hold: Scope.Scope | "attempt"
  ): Effect.Effect<A, InferenceError.InferenceError, R> {
    return slots.counted(hold, (held) => {
      const atLimit = held >= Core.permits(limit.state)
      const sentAt = this.clock.unsafeCurrentTimeMillis()
      return Effect.onExit(self, (exit) => this.adapt(limit, exit, held, atLimit, sentAt))
    })
  }
}

/**
 * A permit taken by `AdaptiveLimits.tryHold`.
 *
 * @internal
 */
export interface Held {
  /** What the attempt's end says of the limit, applied now; the effect reports it. */
  readonly adapt: (exit: Exit.Exit<unknown, InferenceError.InferenceError>) => Effect.Effect<void>
  readonly release: () => void
}

/**
 * Adaptive limits within `options`.
 *
 * @internal
 */
export const make = (options: Core.Options, clock: Clock.Clock, shared?: Shared): AdaptiveLimits =>
  new AdaptiveLimits(options, clock, shared)
