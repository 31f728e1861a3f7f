/**
 * Where a breaker counts a failure and decides its state.
 *
 * Every decision is a pure step over the state and the clock's `now`: no timers,
 * so nothing runs between calls and a `TestClock` test sees exact transitions. An
 * open breaker turns half-open when a call (or a read of its state) finds its
 * break over.
 *
 * A step that changes the state's kind (a trip, a probe, a reset) takes a lock,
 * as a `SynchronizedRef` would, so that its announcements keep their order. A
 * call through a closed breaker that does not trip it (nearly every call) needs
 * none of that: it is one synchronous read and write of the same value, taken
 * only while no locked step is under way: two locked steps per call (a
 * semaphore each) cost tens of µs, more than the breaker's decision itself.
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
import { metrics, Snapshot, StateChange } from "../CircuitBreaker.js"
import { CircuitOpenError } from "../InferenceError.js"
import type { InferenceError } from "../InferenceError.js"
import * as checks from "./options.js"
import * as Slots from "./slots.js"
import { optionsOrDie } from "./validate.js"

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

const stateValue: Record<CB.State, number> = { closed: 0, "half-open": 1, open: 2 }

interface Resolved {
  readonly consecutiveFailures: number
  readonly rate: { readonly threshold: number; readonly window: number; readonly minimumCalls: number } | undefined
  readonly breakDuration: Schedule.Schedule<unknown, unknown>
  readonly halfOpenProbes: number
  readonly isFailure: (error: InferenceError) => boolean
}

const DEFAULT_BREAK = Schedule.exponential("10 seconds", 2).pipe(
  Schedule.modifyDelay((_, delay) => Duration.min(delay, Duration.minutes(2)))
)

const resolve = (options: CB.Options = {}): Resolved => ({
  consecutiveFailures: options.consecutiveFailures === false ? Infinity : options.consecutiveFailures ?? 5,
  rate: options.failureRate === false
    ? undefined
    : options.failureRate ?? { threshold: 0.5, window: 20, minimumCalls: 10 },
  breakDuration: options.breakDuration === undefined
    ? DEFAULT_BREAK
    : Schedule.isSchedule(options.breakDuration)
    ? options.breakDuration
    : Schedule.spaced(options.breakDuration),
  halfOpenProbes: options.halfOpenProbes ?? 2,
  isFailure: options.isFailure ?? isServiceFailure
})

/** The state, with the break schedule's own state and a generation that tells stale outcomes apart. */
interface Internal {
  readonly state: CB.State
  readonly consecutiveFailures: number
  readonly window: ReadonlyArray<boolean>
  readonly trips: number
  readonly openUntil: number | null
  /** When it last opened, to repeat that break if the schedule has finished. */
  readonly openedAt: number | null
  readonly isolated: boolean
  readonly probes: number
  readonly probesSucceeded: number
  readonly generation: number
  readonly scheduleState: unknown
}

type Permit =
  | { readonly _tag: "Allowed"; readonly generation: number; readonly probe: boolean }
  | { readonly _tag: "Rejected"; readonly state: "open" | "half-open"; readonly retryAfter: number | undefined }

type Outcome = "success" | "failure" | "ignored"

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

/** @internal */
export const make = (key: string, options?: CB.Options): Effect.Effect<CB.CircuitBreaker> =>
  Effect.flatMap(resolveOrDie(options), (o) => build(key, o, undefined))

/** A breaker of checked options; for a registry's breakers, its events go to `shared` as well. */
const build = (key: string, o: Resolved, shared: PubSub.PubSub<StateChange> | undefined) =>
  Effect.gen(function*() {
    // Its own events, and (for a registry's breakers) the registry's too.
    const pubsub = yield* PubSub.sliding<StateChange>(1024)
    const initial = (): Internal => ({
      state: "closed",
      consecutiveFailures: 0,
      window: [],
      trips: 0,
      openUntil: null,
      openedAt: null,
      isolated: false,
      probes: 0,
      probesSucceeded: 0,
      generation: 0,
      scheduleState: o.breakDuration.initial
    })
    let cell = initial()
    /** A locked step is under way: a synchronous step must wait for it, or it would be overwritten. */
    let busy = false
    // A FIFO queue, not Effect's Semaphore: with the breaker open or half-open every call takes this lock, and
    // one release of a Semaphore resumes every fiber waiting for it (see slots.ts).
    const lock = yield* Slots.make(1)
    /** One locked step: `f` decides from the state, and its new state is kept when it succeeds. */
    const modify = <B>(f: (s: Internal) => Effect.Effect<readonly [B, Internal]>): Effect.Effect<B> =>
      lock.withPermit(
        Effect.suspend(() => {
          busy = true
          return f(cell)
        }).pipe(
          Effect.map(([b, next]) => {
            cell = next
            return b
          }),
          Effect.ensuring(Effect.sync(() => {
            busy = false
          }))
        )
      )
    // Tagged once per breaker, not per call.
    const gauge = Metric.tagged(metrics.state, "breaker", key)
    const rejectedCount = Metric.tagged(metrics.rejected, "breaker", key)
    const transitionCount = Metric.tagged(metrics.transitions, "breaker", key)
    yield* Metric.set(gauge, 0)

    const announce = (from: CB.State, to: CB.State, now: number, reason: string) =>
      Effect.all([
        Effect.suspend(() => {
          const event = new StateChange({ key, from, to, at: now, reason })
          return shared === undefined
            ? PubSub.publish(pubsub, event)
            : Effect.zipRight(PubSub.publish(pubsub, event), PubSub.publish(shared, event))
        }),
        Metric.increment(Metric.tagged(Metric.tagged(transitionCount, "from", from), "to", to)),
        Metric.set(gauge, stateValue[to]),
        Effect.logDebug(`Circuit ${from} -> ${to}`).pipe(Effect.annotateLogs({ breaker: key, reason }))
      ], { discard: true })

    /** Open (again): the break is the next step of the schedule; a finished schedule keeps its last break. */
    const trip = (s: Internal, now: number, reason: string) =>
      Effect.map(
        o.breakDuration.step(now, undefined, s.scheduleState),
        ([scheduleState, , decision]): readonly [Internal, Effect.Effect<void>] => {
          const previous = s.openUntil !== null && s.openedAt !== null ? s.openUntil - s.openedAt : 0
          const delay = ScheduleDecision.isDone(decision)
            ? previous
            : Math.max(0, Intervals.start(decision.intervals) - now)
          return [{
            ...s,
            state: "open",
            openUntil: now + delay,
            openedAt: now,
            trips: s.trips + 1,
            probes: 0,
            probesSucceeded: 0,
            generation: s.generation + 1,
            scheduleState: ScheduleDecision.isDone(decision) ? s.scheduleState : scheduleState
          }, announce(s.state, "open", now, reason)]
        }
      )

    /** An open breaker whose break is over is half-open. */
    const current = (s: Internal, now: number): readonly [Internal, Effect.Effect<void>] =>
      s.state === "open" && !s.isolated && s.openUntil !== null && now >= s.openUntil
        ? [
          { ...s, state: "half-open", probes: 0, probesSucceeded: 0, generation: s.generation + 1 },
          announce("open", "half-open", now, "break over")
        ]
        : [s, Effect.void]

    const acquire = Effect.flatMap(Clock.currentTimeMillis, (now) =>
      modify((before) => {
        const [s, announced] = current(before, now)
        let permit: Permit
        let next = s
        if (s.state === "closed") permit = { _tag: "Allowed", generation: s.generation, probe: false }
        else if (s.state === "open") {
          permit = {
            _tag: "Rejected",
            state: "open",
            retryAfter: s.openUntil === null ? undefined : Math.max(0, s.openUntil - now)
          }
        } else if (s.probes < o.halfOpenProbes) {
          permit = { _tag: "Allowed", generation: s.generation, probe: true }
          next = { ...s, probes: s.probes + 1 }
        } else permit = { _tag: "Rejected", state: "half-open", retryAfter: undefined }
        return Effect.as(announced, [permit, next] as const)
      }))

    /** A closed breaker after one more outcome, and why it trips, if it does. */
    const counted = (s: Internal, outcome: Exclude<Outcome, "ignored">): readonly [Internal, string | undefined] => {
      const failed = outcome === "failure"
      const consecutiveFailures = failed ? s.consecutiveFailures + 1 : 0
      const size = o.rate?.window ?? 0
      const window = size === 0 ? s.window : [...s.window, failed].slice(-size)
      const next = { ...s, consecutiveFailures, window }
      if (consecutiveFailures >= o.consecutiveFailures) return [next, `${consecutiveFailures} failures in a row`]
      if (o.rate !== undefined && failed && window.length >= o.rate.minimumCalls) {
        const failures = window.filter(Boolean).length
        if (failures / window.length >= o.rate.threshold) {
          return [next, `${failures} of the last ${window.length} calls failed`]
        }
      }
      return [next, undefined]
    }

    const recordLocked = (permit: Extract<Permit, { _tag: "Allowed" }>, outcome: Outcome) =>
      Effect.flatMap(Clock.currentTimeMillis, (now) =>
        modify((before): Effect.Effect<readonly [void, Internal]> => {
          const [s, announced] = current(before, now)
          // A call that started before the last change of state says nothing about the new one.
          if (s.generation !== permit.generation) {
            return Effect.as(announced, [undefined, s] as const)
          }
          const done = (next: Internal, effect: Effect.Effect<void> = Effect.void) =>
            Effect.as(Effect.zipRight(announced, effect), [undefined, next] as const)
          if (s.state === "half-open") {
            if (outcome === "ignored") {
              return done({ ...s, probes: Math.max(0, s.probes - 1) })
            }
            if (outcome === "failure") {
              return Effect.flatMap(
                trip(s, now, "a probe failed"),
                ([next, announce]) => done(next, announce)
              )
            }
            const succeeded = s.probesSucceeded + 1
            if (succeeded < o.halfOpenProbes) return done({ ...s, probesSucceeded: succeeded })
            return done(
              { ...initial(), generation: s.generation + 1 },
              announce("half-open", "closed", now, `${succeeded} probes succeeded`)
            )
          }
          if (s.state !== "closed" || outcome === "ignored") return done(s)
          const [next, reason] = counted(s, outcome)
          return reason === undefined
            ? done(next)
            : Effect.flatMap(trip(next, now, reason), ([tripped, announce]) => done(tripped, announce))
        }))

    const record = (permit: Extract<Permit, { _tag: "Allowed" }>, outcome: Outcome): Effect.Effect<void> =>
      Effect.suspend(() => {
        // Counted in one synchronous step unless it trips the breaker or a locked step is under way.
        if (!busy && cell.state === "closed" && cell.generation === permit.generation) {
          if (outcome === "ignored") return Effect.void
          const [next, reason] = counted(cell, outcome)
          if (reason === undefined) {
            cell = next
            return Effect.void
          }
        }
        return recordLocked(permit, outcome)
      })

    const outcomeOf = (exit: Exit.Exit<unknown, InferenceError>): Outcome =>
      Exit.isSuccess(exit)
        ? "success"
        : Exit.isInterrupted(exit)
        ? "ignored"
        : Option.match(Cause.failureOption(exit.cause), {
          onNone: () => "failure" as const,
          onSome: (error) => (o.isFailure(error) ? "failure" : "ignored")
        })

    const withBreaker = <A, E extends InferenceError, R>(
      effect: Effect.Effect<A, E, R>
    ): Effect.Effect<A, E | CircuitOpenError, R> =>
      Effect.suspend(() => {
        // A closed breaker lets every call through and holds no slot for it: no lock, and nothing to lose to an
        // interruption before the outcome is counted.
        if (!busy && cell.state === "closed") {
          const permit = { _tag: "Allowed", generation: cell.generation, probe: false } as const
          return Effect.onExit(effect, (exit) => record(permit, outcomeOf(exit)))
        }
        // Masked: a permit taken must reach onExit, or an interruption in between would keep a probe slot forever.
        return Effect.uninterruptibleMask((restore) =>
          Effect.flatMap(acquire, (permit): Effect.Effect<A, E | CircuitOpenError, R> =>
            permit._tag === "Rejected"
              ? Effect.zipRight(
                Metric.increment(rejectedCount),
                Effect.fail(
                  new CircuitOpenError({
                    breaker: key,
                    state: permit.state,
                    retryAfter: permit.retryAfter === undefined
                      ? Option.none()
                      : Option.some(Duration.millis(permit.retryAfter))
                  })
                )
              )
              : Effect.onExit(restore(effect), (exit) => record(permit, outcomeOf(exit))))
        )
      })

    const state = Effect.flatMap(Clock.currentTimeMillis, (now) =>
      modify((before) => {
        const [s, announced] = current(before, now)
        return Effect.as(announced, [s.state, s] as const)
      }))

    const snapshot = Effect.flatMap(Clock.currentTimeMillis, (now) =>
      modify((before) => {
        const [s, announced] = current(before, now)
        return Effect.as(
          announced,
          [
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
            }),
            s
          ] as const
        )
      }))

    const restore = (saved: Snapshot) =>
      Effect.flatMap(Clock.currentTimeMillis, (now) =>
        modify((s) => {
          // The schedule's own state cannot be saved; replaying its steps gives the same breaks.
          const replay = Effect.reduce(
            Array.from({ length: saved.trips }),
            o.breakDuration.initial,
            (state) => Effect.map(o.breakDuration.step(now, undefined, state), ([next]) => next)
          )
          return Effect.flatMap(replay, (scheduleState) => {
            const next: Internal = {
              state: saved.state,
              consecutiveFailures: saved.consecutiveFailures,
              window: saved.window,
              trips: saved.trips,
              openUntil: saved.openUntil,
              openedAt: saved.state === "open" ? now : null,
              isolated: saved.isolated,
              probes: saved.probes,
              probesSucceeded: saved.probesSucceeded,
              generation: s.generation + 1,
              scheduleState
            }
            return Effect.as(
              s.state === saved.state ? Effect.void : announce(s.state, saved.state, now, "restored"),
              [undefined, next] as const
            )
          })
        }))

    const isolate = Effect.flatMap(Clock.currentTimeMillis, (now) =>
      modify((s) =>
        Effect.as(
          s.state === "open" ? Effect.void : announce(s.state, "open", now, "isolated"),
          [undefined, { ...s, state: "open", isolated: true, openUntil: null, generation: s.generation + 1 }] as const
        )
      ))

    const reset = Effect.flatMap(Clock.currentTimeMillis, (now) =>
      modify((s) =>
        Effect.as(
          s.state === "closed" ? Effect.void : announce(s.state, "closed", now, "reset"),
          [undefined, { ...initial(), generation: s.generation + 1 }] as const
        )
      ))

    return {
      key,
      withBreaker,
      state,
      snapshot,
      restore,
      isolate,
      reset,
      events: Stream.fromPubSub(pubsub),
      subscribe: PubSub.subscribe(pubsub)
    } satisfies CB.CircuitBreaker
  })

/** @internal */
export const makeRegistry = (options?: CB.Options): Effect.Effect<CB.Registry> =>
  Effect.gen(function*() {
    const o = yield* resolveOrDie(options)
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
          return Effect.tap(build(key, o, pubsub), (breaker) => Effect.sync(() => breakers.set(key, breaker)))
        }))
      })
    return {
      get,
      all: Effect.sync(() => [...breakers.values()]),
      events: Stream.fromPubSub(pubsub),
      subscribe: PubSub.subscribe(pubsub)
    } satisfies CB.Registry
  })
