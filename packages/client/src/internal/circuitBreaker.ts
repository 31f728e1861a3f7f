/**
 * The breaker's shell: it keeps the state in a `CircuitBreakerStore`, asks the
 * pure core (`circuitBreakerCore.ts`) for every decision, and carries the
 * decisions out: runs or refuses the call, and announces each change of state
 * on the breaker's events, its metrics and its log.
 *
 * A step reads the stored entry, decides, and writes with a compare-and-set;
 * when another writer came first it reads and decides again. Nothing runs on a
 * timer, so nothing happens between calls and a `TestClock` test sees exact
 * transitions: an open breaker turns half-open when a call (or a read of its
 * state) finds its break over.
 *
 * A step that announces nothing (nearly every one: a call through a closed
 * breaker and its outcome, a probe taken) is written at once. A step that
 * changes the state's kind (a trip, a probe's verdict, a reset) also takes a
 * lock, so that a breaker's announcements keep their order. With the memory
 * store (the default) a step that announces nothing is synchronous: a call
 * through a closed breaker that does not trip it is one synchronous read and
 * compare-and-set of the stored entry, with no lock and no effect in between;
 * two locked steps per call (a semaphore each) would cost tens of µs, more
 * than the breaker's decision itself.
 *
 * The break schedule is the one thing a store cannot hold: its state is
 * whatever the user's `Schedule` keeps. The shell keeps it, as the state after
 * the breaker's `trips` so far, and steps it when the core asks for a break.
 * When the stored trips are not the ones it stepped (a restore, or another
 * process), it replays that many steps from the start, as a restore always
 * has.
 *
 * Past 400 lines because it is the whole of a breaker's surface in one place:
 * the step loop, the announcements (events, metrics, log), snapshots and
 * restore, and the registry of breakers by key.
 */
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as PubSub from "effect/PubSub"
import * as Schedule from "effect/Schedule"
import * as ScheduleDecision from "effect/ScheduleDecision"
import * as Intervals from "effect/ScheduleIntervals"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import type * as CB from "../CircuitBreaker.js"
import type * as Api from "../CircuitBreakerStore.js"
import { CircuitOpenError, CoordinationError } from "../InferenceError.js"
import type { InferenceError } from "../InferenceError.js"
import * as Core from "./circuitBreakerCore.js"
import * as Store from "./circuitBreakerStore.js"
import * as checks from "./options.js"
import * as Slots from "./slots.js"
import { optionsOrDie } from "./validate.js"

export const State = Schema.Literal(...Core.kinds)

export class StateChange extends Schema.TaggedClass<StateChange>("@effect-inference/client/CircuitBreaker/StateChange")(
  "StateChange",
  {
    key: Schema.String,
    from: State,
    to: State,
    /** Epoch milliseconds, from Effect's `Clock`. */
    at: Schema.Number,
    reason: Schema.String
  }
) {}

export class Snapshot extends Schema.Class<Snapshot>("@effect-inference/client/CircuitBreaker/Snapshot")({
  key: Schema.String,
  state: State,
  /** Counted failures in a row. */
  consecutiveFailures: Schema.Int,
  /** The outcomes of the last calls, oldest first (`true` for a counted failure). */
  window: Schema.Array(Schema.Boolean),
  /** Trips since the breaker last closed: how far the break schedule has stepped. */
  trips: Schema.Int,
  /** While open: when it turns half-open, in epoch milliseconds (`null` while isolated). */
  openUntil: Schema.NullOr(Schema.Number),
  /** Held open by `isolate` until `reset`. */
  isolated: Schema.Boolean,
  /** While half-open: probes let through and probes that succeeded. */
  probes: Schema.Int,
  probesSucceeded: Schema.Int
}) {}

export const metrics = {
  transitions: Metric.counter("inference_circuit_breaker_transitions", {
    description: "Circuit breaker state changes, by breaker and by from/to state"
  }),
  rejected: Metric.counter("inference_circuit_breaker_rejected", {
    description: "Calls failed fast by an open or busy half-open breaker"
  }),
  state: Metric.gauge("inference_circuit_breaker_state", {
    description: "Breaker state: 0 closed, 1 half-open, 2 open"
  })
}

/**
 * The one place that says which failures count against a breaker by default.
 * A `RateLimitError` is not among them: a 429 says the service is busy (our
 * concurrency is over its limit), not broken, so it counts neither way and
 * leaves a run of failures as it was. Opening the breaker on 429s would only
 * stop the calls that would get through once a slot frees up.
 *
 * @internal
 */
export const isServiceFailure = (error: InferenceError): boolean => {
  switch (error._tag) {
    case "ConnectionError":
    case "TimeoutError":
    case "InternalServerError":
    case "ServiceUnavailableError":
      return true
    default:
      return false
  }
}

interface Resolved {
  readonly core: Core.Options
  readonly breakDuration: Schedule.Schedule<unknown, unknown>
  readonly isFailure: (error: InferenceError) => boolean
}

const DEFAULT_BREAK = Schedule.exponential("10 seconds", 2).pipe(
  Schedule.modifyDelay((_, delay) => Duration.min(delay, Duration.minutes(2)))
)

const resolve = (options: CB.Options = {}): Resolved => ({
  core: {
    consecutiveFailures: options.consecutiveFailures === false ? Infinity : options.consecutiveFailures ?? 5,
    rate: options.failureRate === false
      ? undefined
      : options.failureRate ?? { threshold: 0.5, window: 20, minimumCalls: 10 },
    halfOpenProbes: options.halfOpenProbes ?? 2
  },
  breakDuration: options.breakDuration === undefined
    ? DEFAULT_BREAK
    : Schedule.isSchedule(options.breakDuration)
    ? options.breakDuration
    : Schedule.spaced(options.breakDuration),
  isFailure: options.isFailure ?? isServiceFailure
})

const FailureRate = Schema.Struct({
  threshold: checks.check(
    (u): u is number => typeof u === "number" && u > 0 && u <= 1,
    "a fraction within (0, 1]"
  ),
  window: checks.wholeNumber(1),
  minimumCalls: checks.wholeNumber(1)
}).pipe(Schema.filter((rate) => rate.minimumCalls <= rate.window || "needs minimumCalls <= window"))

/** The breaker's options, every one checked; `circuitBreaker.` prefixes each path in a message. */
const BreakerOptions = Schema.Struct({
  circuitBreaker: Schema.Struct({
    consecutiveFailures: Schema.optional(
      Schema.Union(checks.check((u): u is false => u === false, "a whole number >= 1 or false"), checks.wholeNumber(1))
    ),
    failureRate: Schema.optional(
      Schema.Union(
        checks.check((u): u is false => u === false, "false or { threshold, window, minimumCalls }"),
        FailureRate
      )
    ),
    breakDuration: Schema.optional(
      Schema.Union(
        checks.check(
          (u): u is Schedule.Schedule<unknown, unknown> => Schedule.isSchedule(u),
          "a positive duration or a Schedule"
        ),
        checks.duration()
      )
    ),
    halfOpenProbes: Schema.optional(checks.wholeNumber(1)),
    isFailure: Schema.optional(checks.func)
  })
})

const decodeBreakerOptions = checks.decoder(BreakerOptions, "circuitBreaker")

/** @internal */
export const validate = (input: CB.Options): Either.Either<CB.Options, string> =>
  Either.map(decodeBreakerOptions({ circuitBreaker: input }), () => input)

/** Checks the options once: a registry resolves them once for all of its breakers. */
const resolveOrDie = (options: CB.Options | undefined): Effect.Effect<Resolved> =>
  Effect.map(optionsOrDie("CircuitBreaker", validate(options ?? {})), resolve)

/** The store in context, or else a memory store of the caller's own. */
const storeOrMemory: Effect.Effect<Api.CircuitBreakerStore.Service> = Effect.map(
  Effect.serviceOption(Store.CircuitBreakerStore),
  Option.getOrElse(Store.unsafeMakeMemory)
)

/** @internal */
export const make = (key: string, options?: CB.Options): Effect.Effect<CB.CircuitBreaker> =>
  Effect.flatMap(
    resolveOrDie(options),
    (o) => Effect.flatMap(storeOrMemory, (store) => build(key, o, undefined, store))
  )

const gaugeValue: Record<Core.Kind, number> = { closed: 0, "half-open": 1, open: 2 }

/** A key never written: a closed breaker with no history. */
const fresh: Api.Entry = { version: 0, state: Core.initial }

/** The decision on a call: the last of a `Call` step's decisions. */
const verdictOf = (decisions: ReadonlyArray<Core.Decision>) => {
  const last = decisions[decisions.length - 1]
  return last !== undefined && (last._tag === "Admit" || last._tag === "Refuse") ? last : undefined
}

const storeFailed = (key: string, error: Api.CircuitBreakerStoreError, consequence: string) =>
  Effect.logWarning(`Circuit breaker store failed: ${consequence}`).pipe(
    Effect.annotateLogs({ breaker: key, error: error.message })
  )

/**
 * A breaker of checked options over `store`; for a registry's breakers, its
 * events go to `shared` as well.
 */
const build = (
  key: string,
  o: Resolved,
  shared: PubSub.PubSub<StateChange> | undefined,
  store: Api.CircuitBreakerStore.Service
) =>
  Effect.gen(function*() {
    // Its own events, and (for a registry's breakers) the registry's too.
    const pubsub = yield* PubSub.sliding<StateChange>(1024)
    const memory = Store.isMemory(store) ? store : undefined
    // A FIFO queue, not Effect's Semaphore: while the breaker changes state many calls may wait for this lock, and
    // one release of a Semaphore resumes every fiber waiting for it (see slots.ts).
    const lock = yield* Slots.make(1)
    // Tagged once per breaker, not per call.
    const gauge = Metric.tagged(metrics.state, "breaker", key)
    const rejectedCount = Metric.tagged(metrics.rejected, "breaker", key)
    const transitionCount = Metric.tagged(metrics.transitions, "breaker", key)
    yield* Metric.set(gauge, 0)

    /** The break schedule's state after `trips` trips in a row (see the module's doc). */
    let schedule: { readonly trips: number; readonly state: unknown } = { trips: 0, state: o.breakDuration.initial }

    const replay = (trips: number, now: number): Effect.Effect<unknown> =>
      Effect.reduce(
        Array.from({ length: trips }),
        o.breakDuration.initial,
        (state) => Effect.map(o.breakDuration.step(now, undefined, state), ([next]) => next)
      )

    /** The break after `trips` trips, and the schedule's state after it; a finished schedule repeats the last. */
    const nextBreak = (trips: number, now: number): Effect.Effect<readonly [Core.Break, unknown]> =>
      Effect.flatMap(
        trips === 0
          ? Effect.succeed(o.breakDuration.initial)
          : trips === schedule.trips
          ? Effect.succeed(schedule.state)
          : replay(trips, now),
        (state) =>
          Effect.map(
            o.breakDuration.step(now, undefined, state),
            ([next, , decision]): readonly [Core.Break, unknown] =>
              ScheduleDecision.isDone(decision)
                ? ["repeat", state]
                : [Math.max(0, Intervals.start(decision.intervals) - now), next]
          )
      )

    const announce = (decisions: ReadonlyArray<Core.Decision>, now: number) =>
      Effect.forEach(decisions, (decision) => {
        if (decision._tag !== "Transition") return Effect.void
        const { from, reason, to } = decision
        return Effect.all([
          Effect.suspend(() => {
            const event = new StateChange({ key, from, to, at: now, reason })
            return shared === undefined
              ? PubSub.publish(pubsub, event)
              : Effect.zipRight(PubSub.publish(pubsub, event), PubSub.publish(shared, event))
          }),
          Metric.increment(Metric.tagged(Metric.tagged(transitionCount, "from", from), "to", to)),
          Metric.set(gauge, gaugeValue[to]),
          Effect.logDebug(`Circuit ${from} -> ${to}`).pipe(Effect.annotateLogs({ breaker: key, reason }))
        ], { discard: true })
      }, { discard: true })

    const read: Effect.Effect<Api.Entry, Api.CircuitBreakerStoreError> = Effect.map(
      store.get(key),
      Option.getOrElse(() => fresh)
    )

    /** A step decided, and the break schedule's state after it if it stepped the schedule (a trip). */
    type Decided = readonly [Core.Step, { readonly schedule: unknown } | undefined]

    /** Decides `event` from `entry`, with the next break if the core asks for one. */
    const decideWithBreak = (entry: Api.Entry, event: Core.Event, now: number): Effect.Effect<Decided> => {
      const first = Core.step(entry.state, event, now, o.core)
      if (event._tag !== "Outcome" || !first[1].some((decision) => decision._tag === "NeedsBreak")) {
        return Effect.succeed([first, undefined])
      }
      return Effect.map(nextBreak(entry.state.trips, now), ([after, schedule]): Decided => {
        const decided = Core.step(entry.state, { ...event, nextBreak: after }, now, o.core)
        return [decided, { schedule }]
      })
    }

    /**
     * One step under the lock: read, decide, compare-and-set, and announce what
     * changed; read and decide again if another writer came first.
     */
    const commit = (event: Core.Event, now: number): Effect.Effect<Core.Step, Api.CircuitBreakerStoreError> =>
      Effect.flatMap(read, (entry) =>
        Effect.flatMap(decideWithBreak(entry, event, now), ([[next, decisions], stepped]) =>
          Effect.flatMap(
            next === entry.state ? Effect.succeed(true) : store.compareAndSet(key, entry.version, next),
            (written): Effect.Effect<Core.Step, Api.CircuitBreakerStoreError> => {
              if (!written) {
                return commit(event, now)
              }
              if (stepped !== undefined) {
                schedule = { trips: next.trips, state: stepped.schedule }
              }
              return Effect.as(announce(decisions, now), [next, decisions] as const)
            }
          )))

    /**
     * One step. One that announces nothing is written at once (synchronously,
     * with the memory store); one that announces a change goes through the lock.
     */
    const decide = (event: Core.Event, now: number): Effect.Effect<Core.Step, Api.CircuitBreakerStoreError> => {
      if (memory !== undefined) {
        return Effect.suspend(() => {
          const entry = memory.unsafeGet(key) ?? fresh
          const result = Core.step(entry.state, event, now, o.core)
          if (!Core.isQuiet(result[1])) {
            return lock.withPermit(commit(event, now))
          }
          // Nothing ran since the read: this write cannot miss.
          if (result[0] !== entry.state) {
            memory.unsafeCompareAndSet(key, entry.version, result[0])
          }
          return Effect.succeed(result)
        })
      }
      const optimistic: Effect.Effect<Core.Step, Api.CircuitBreakerStoreError> = Effect.flatMap(read, (entry) => {
        const result = Core.step(entry.state, event, now, o.core)
        if (!Core.isQuiet(result[1])) {
          return lock.withPermit(commit(event, now))
        }
        if (result[0] === entry.state) {
          return Effect.succeed(result)
        }
        return Effect.flatMap(
          store.compareAndSet(key, entry.version, result[0]),
          (written) =>
            written ? Effect.succeed(result) : optimistic
        )
      })
      return optimistic
    }

    /**
     * A step whose caller has no error channel for the store (`state`,
     * `snapshot`, `isolate`, `reset`, `restore`): a store that cannot answer is
     * a defect there (see the store's contract).
     */
    const decideOrDie = (event: Core.Event) =>
      Effect.flatMap(Clock.currentTimeMillis, (now) =>
        Effect.orDie(decide(event, now)))

    /** Counts a call's outcome; one the store cannot take is dropped (the breaker fails open). */
    const record = (generation: number, outcome: Core.Outcome): Effect.Effect<void> =>
      Effect.clockWith((clock) => {
        const now = clock.unsafeCurrentTimeMillis()
        const event: Core.Event = { _tag: "Outcome", generation, outcome }
        // The common case, spelt out as one synchronous step: `decide` would take it too, at the cost of an effect.
        if (memory !== undefined) {
          const entry = memory.unsafeGet(key) ?? fresh
          const [next, decisions] = Core.step(entry.state, event, now, o.core)
          if (Core.isQuiet(decisions)) {
            if (next !== entry.state) memory.unsafeCompareAndSet(key, entry.version, next)
            return Effect.void
          }
        }
        return Effect.catchAll(decide(event, now), (error) => storeFailed(key, error, "an outcome was not counted"))
      })

    const outcomeOf = (exit: Exit.Exit<unknown, InferenceError>): Core.Outcome =>
      Exit.isSuccess(exit)
        ? "success"
        : Exit.isInterrupted(exit)
        ? "ignored"
        : Option.match(Cause.failureOption(exit.cause), {
          onNone: () => "failure" as const,
          onSome: (error) => (o.isFailure(error) ? "failure" : "ignored")
        })

    const call: Effect.Effect<Core.Step, Api.CircuitBreakerStoreError> = Effect.flatMap(
      Clock.currentTimeMillis,
      (now) => decide({ _tag: "Call" }, now)
    )

    const withBreaker = <A, E extends InferenceError, R>(
      effect: Effect.Effect<A, E, R>
    ): Effect.Effect<A, E | CircuitOpenError | CoordinationError, R> =>
      Effect.suspend(() => {
        // A closed breaker lets every call through and holds no slot for it: no step, and nothing to lose to an
        // interruption before the outcome is counted.
        if (memory !== undefined) {
          const state = (memory.unsafeGet(key) ?? fresh).state
          if (Core.admitsAll(state)) {
            const generation = state.generation
            return Effect.onExit(effect, (exit) => record(generation, outcomeOf(exit)))
          }
        }
        // Masked: a probe admitted must reach onExit, or an interruption in between would keep its slot forever.
        return Effect.uninterruptibleMask((restore) =>
          Effect.flatMap(
            Effect.either(call),
            (decided): Effect.Effect<A, E | CircuitOpenError | CoordinationError, R> => {
              if (Either.isLeft(decided)) {
                // The store could not answer: the call goes through (the breaker fails open), and is not counted;
                // unless the store says the call must not go on without it.
                return decided.left.rejectCall === true
                  ? Effect.fail(
                    new CoordinationError({ store: "circuit-breaker", reason: decided.left.message })
                  )
                  : Effect.zipRight(storeFailed(key, decided.left, "a call went through unguarded"), restore(effect))
              }
              // A `Call` step always ends with its verdict.
              const verdict = verdictOf(decided.right[1])
              if (verdict === undefined) return restore(effect)
              if (verdict._tag === "Admit") {
                return Effect.onExit(restore(effect), (exit) => record(verdict.generation, outcomeOf(exit)))
              }
              return Effect.zipRight(
                Metric.increment(rejectedCount),
                Effect.fail(
                  new CircuitOpenError({
                    breaker: key,
                    state: verdict.state,
                    retryAfter: verdict.retryAfter === undefined
                      ? Option.none()
                      : Option.some(Duration.millis(verdict.retryAfter))
                  })
                )
              )
            }
          )
        )
      })

    const state = Effect.map(decideOrDie({ _tag: "Read" }), ([s]) => s.state)

    const snapshot = Effect.map(decideOrDie({ _tag: "Read" }), ([s]) =>
      new Snapshot({
        key,
        state: s.state,
        consecutiveFailures: s.consecutiveFailures,
        window: s.window,
        trips: s.trips,
        openUntil: s.openUntil,
        isolated: s.isolated,
        probes: s.probes,
        probesSucceeded: s.probesSucceeded
      }))

    const restore = (saved: Snapshot) =>
      Effect.flatMap(Clock.currentTimeMillis, (now) =>
        // The schedule's own state cannot be saved; replaying its steps gives the same breaks.
        Effect.flatMap(replay(saved.trips, now), (scheduleState) =>
          Effect.flatMap(Effect.orDie(decide({ _tag: "Restore", saved }, now)), () =>
            Effect.sync(() => {
              schedule = { trips: saved.trips, state: scheduleState }
            }))))

    const breaker = {
      key,
      withBreaker,
      state,
      snapshot,
      restore,
      isolate: Effect.asVoid(decideOrDie({ _tag: "Isolate" })),
      reset: Effect.asVoid(decideOrDie({ _tag: "Reset" })),
      events: Stream.fromPubSub(pubsub),
      subscribe: PubSub.subscribe(pubsub)
    } satisfies CB.CircuitBreaker
    if (memory !== undefined) {
      passes.set(breaker, {
        admit: () => {
          const state = (memory.unsafeGet(key) ?? fresh).state
          return Core.admitsAll(state) ? state.generation : undefined
        },
        record: (generation, exit) => record(generation, outcomeOf(exit))
      })
    }
    return breaker
  })

/**
 * A closed breaker's case of `withBreaker`, taken in the caller's step (see
 * streamFast.ts): `admit` gives the generation a call is counted in if the
 * breaker is closed (`undefined`: `withBreaker` it is), and `record` counts
 * the call's outcome, as `withBreaker` does when the call ends.
 *
 * @internal
 */
export interface Pass {
  readonly admit: () => number | undefined
  readonly record: (generation: number, exit: Exit.Exit<unknown, InferenceError>) => Effect.Effect<void>
}

/** The breakers over the memory store, which answers in the caller's step, and their `Pass`. */
const passes = new WeakMap<CB.CircuitBreaker, Pass>()

/** The registries `makeRegistry` made, and a look-up of the breakers they made so far. */
const made = new WeakMap<CB.Registry, (key: string) => CB.CircuitBreaker | undefined>()

/**
 * The `Pass` of the breaker `registry` has for `key`, if the registry is one of `makeRegistry`'s, has made that
 * breaker already, and keeps it in the memory store; otherwise `undefined`, and `registry.get(key)` it is.
 *
 * @internal
 */
export const passOf = (registry: CB.Registry, key: string): Pass | undefined => {
  const breaker = made.get(registry)?.(key)
  return breaker === undefined ? undefined : passes.get(breaker)
}

/** @internal */
export const makeRegistry = (options?: CB.Options): Effect.Effect<CB.Registry> =>
  Effect.gen(function*() {
    const o = yield* resolveOrDie(options)
    const store = yield* storeOrMemory
    const pubsub = yield* PubSub.sliding<StateChange>(4096)
    const breakers = new Map<string, CB.CircuitBreaker>()
    const lock = yield* Slots.make(1)
    const get = (key: string) =>
      Effect.suspend(() => {
        const existing = breakers.get(key)
        if (existing !== undefined) return Effect.succeed(existing)
        return lock.withPermit(Effect.suspend(() => {
          const raced = breakers.get(key)
          if (raced !== undefined) return Effect.succeed(raced)
          return Effect.tap(build(key, o, pubsub, store), (breaker) => Effect.sync(() => breakers.set(key, breaker)))
        }))
      })
    const registry = {
      get,
      all: Effect.sync(() => [...breakers.values()]),
      events: Stream.fromPubSub(pubsub),
      subscribe: PubSub.subscribe(pubsub)
    } satisfies CB.Registry
    made.set(registry, (key) => breakers.get(key))
    return registry
  })
