/**
 * Where every time bound of a call lives: the attempt timeout (`timeout` for a
 * plain call, `firstChunkTimeout` for a stream until its first content), the
 * total timeout over a whole call, and the idle timeout between a stream's
 * chunks. Each fails with `TimeoutError` and its `phase`.
 *
 * Under `TestClock` every bound is `Effect.timeoutFail` (or a fiber on the
 * clock), so that virtual time drives it. Under Effect's own clock, an
 * attempt's bound is a timer: over `UndiciHttpClient` it stops the request
 * through the transport (`deadlineFail`, no fiber), over any other transport it
 * interrupts the one fiber the attempt runs in (`timeoutFail`).
 */
import * as Cause from "effect/Cause"
import type * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as FiberRef from "effect/FiberRef"
import { dual } from "effect/Function"
import * as Scope from "effect/Scope"
import * as InferenceError from "../InferenceError.js"
import { currentDeadline, Deadline } from "./undiciHttpClient.js"

/**
 * Effect's own clock, in place unless a layer (TestClock) replaces it.
 *
 * @internal
 */
export const defaultClock = Effect.runSync(Effect.clock)

/**
 * The longest delay a Node timer keeps; a longer one would fire at once.
 *
 * @internal
 */
export const MAX_TIMER = 2 ** 31 - 1

/** What a time bound is given: its duration, and the error when time is up. */
interface Bound<E1> {
  readonly duration: Duration.Duration
  readonly onTimeout: () => E1
}

/**
 * `timer(millis)` under Effect's own clock, for a duration a Node timer can
 * keep; `Effect.timeoutFail` itself under any other clock (`TestClock`), so
 * that virtual time drives the bound.
 */
const underTimer = <A, E, R, E1>(
  self: Effect.Effect<A, E, R>,
  options: Bound<E1>,
  timer: (millis: number) => Effect.Effect<A, E | E1, R>
): Effect.Effect<A, E | E1, R> =>
  Effect.clockWith((clock) => {
    const millis = Duration.toMillis(options.duration)
    return clock !== defaultClock || !(millis <= MAX_TIMER) ? Effect.timeoutFail(self, options) : timer(millis)
  })

/**
 * `Effect.timeoutFail(self, { duration, onTimeout })`, with one fiber instead of
 * two under the default clock.
 *
 * `Effect.timeoutFail` races the effect against a sleep: it forks both into
 * fibers of their own, and the losing sleep fiber is interrupted and awaited.
 * Under Effect's own clock this does the same with one fiber: the effect runs in
 * a child fiber, as with `Effect.timeoutFail`, and a plain timer interrupts that
 * child when time is up. The outcome is the same: the effect's value or error
 * if it ends first, and otherwise `onTimeout()` once the child's finalizers have
 * run (an aborted request, a released slot). Under any other clock (`TestClock`
 * in tests) it is `Effect.timeoutFail` itself, so virtual time bounds attempts
 * exactly.
 *
 * Kept for its cost: `pnpm --filter @effect-inference/benchmarks costs` (a call's
 * exchange with no network, 64 in flight) measured the exchange at 38 µs of CPU,
 * 76 µs with `Effect.timeoutFail` and 53 µs with this: 22 µs per attempt, about
 * a tenth of a whole call over loopback (`pnpm bench`, plain C = 64).
 *
 * @internal
 */
export const timeoutFail = <A, E, R, E1>(
  self: Effect.Effect<A, E, R>,
  options: Bound<E1>
): Effect.Effect<A, E | E1, R> =>
  underTimer(self, options, (millis) =>
    Effect.fiberIdWith((parent) =>
      // Masked between the fork and the wait, so that an interruption cannot leave the child running.
      Effect.uninterruptibleMask((restore) =>
        Effect.flatMap(Effect.fork(restore(self)), (child) =>
          Effect.onInterrupt(
            restore(Effect.async<A, E | E1>((resume) => {
              let timedOut = false
              const timer = setTimeout(() => {
                timedOut = true
                child.unsafeInterruptAsFork(parent)
              }, millis)
              child.addObserver((exit) => {
                clearTimeout(timer)
                // Interrupted by the timer: time is up. A value or error that came first wins.
                resume(timedOut && Exit.isInterrupted(exit) ? Effect.fail(options.onTimeout()) : exit)
              })
              return Effect.sync(() => clearTimeout(timer))
            })),
            () => Fiber.interrupt(child)
          ))
      )
    ))

/**
 * `timeoutFail` for an exchange over `UndiciHttpClient`, with no fiber of its
 * own: a timer aborts the deadline that the transport links every request of
 * this fiber to (`currentDeadline`), which fails the request (whether it waits
 * for its headers or its body) as an interruption would, once undici has let
 * go of it; a failure after the timer fired is `onTimeout()`. A value or error
 * that came first wins, as with `Effect.timeoutFail`. Only for an effect whose
 * waiting is all the transport's (an attempt's exchange), and only under
 * Effect's own clock: otherwise it is `timeoutFail`.
 *
 * Kept for its cost. Plain calls over loopback, 64 in flight, 10,000 calls after 3,000 of warm-up, the CPU of the
 * client's process (`runner.ts --client client --concurrency 64 --requests 10000 --warmup 3000` in
 * packages/benchmarks, against `server.ts --answer-tokens 20`), medians of 5 interleaved runs: 195 µs per call
 * with `timeoutFail` (a fiber per attempt), 147 µs with this (and no `FiberRef` change for tracing, see
 * `request.inCall`). It is also 34 of the 751 runtime operations of a 10-chunk stream.
 *
 * @internal
 */
export const deadlineFail = <A, E, R, E1>(
  self: Effect.Effect<A, E, R>,
  options: Bound<E1>
): Effect.Effect<A, E | E1, R> =>
  underTimer(self, options, (millis) =>
    // `Effect.acquireUseRelease` and `Effect.catchAll` in one step each way: the deadline set, `self` run, then the
    // deadline put back and a failure after the timer fired turned into `onTimeout()`. Fewer runtime operations
    // (this runs for every attempt), the same outcome: a value or error that came first wins.
    Effect.uninterruptibleMask((restore) => {
      let timedOut = false
      let timer: ReturnType<typeof setTimeout> | undefined
      return Effect.flatMap(
        FiberRef.modify(currentDeadline, (outer) => {
          const deadline = new Deadline()
          // A deadline set already (none is, by the client's own calls) still applies: the earlier one wins.
          outer?.link(() => deadline.expire())
          timer = setTimeout(() => {
            timedOut = true
            deadline.expire()
          }, millis)
          return [outer, deadline]
        }),
        (outer) => {
          const release = FiberRef.set(currentDeadline, outer)
          return Effect.matchCauseEffect(restore(self), {
            onSuccess: (value) => {
              clearTimeout(timer)
              return Effect.as(release, value)
            },
            onFailure: (cause) => {
              clearTimeout(timer)
              const failure = Cause.failureOrCause(cause)
              return Effect.zipRight(
                release,
                Either.isLeft(failure)
                  ? Effect.fail(timedOut ? options.onTimeout() : failure.left)
                  : Effect.failCause(failure.right)
              )
            }
          })
        }
      )
    }))

/**
 * Bounds one attempt by `duration`: `TimeoutError` with `phase` (`"attempt"`
 * for a plain call, `"firstChunk"` for a stream until its first content), the
 * attempt's model and number.
 *
 * @internal
 */
export const withAttemptTimeout: {
  (
    options: AttemptBound
  ): <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E | InferenceError.TimeoutError, R>
  <A, E, R>(self: Effect.Effect<A, E, R>, options: AttemptBound): Effect.Effect<A, E | InferenceError.TimeoutError, R>
} = dual(
  2,
  <A, E, R>(
    self: Effect.Effect<A, E, R>,
    options: AttemptBound
  ): Effect.Effect<A, E | InferenceError.TimeoutError, R> =>
    (options.deadline === true ? deadlineFail : timeoutFail)(self, {
      duration: options.duration,
      onTimeout: () =>
        new InferenceError.TimeoutError({
          phase: options.phase,
          timeout: options.duration,
          model: options.model,
          attempts: options.attempt
        })
    })
)

/**
 * The bound of one attempt, and what its `TimeoutError` says.
 *
 * @internal
 */
export interface AttemptBound {
  readonly duration: Duration.Duration
  readonly phase: "attempt" | "firstChunk"
  readonly model: string | undefined
  readonly attempt: number
  /** The exchange is over a transport that honours a deadline (`UndiciHttpClient`): see `deadlineFail`. */
  readonly deadline?: boolean | undefined
}

/**
 * How far a call got, for the error of its total timeout (and its usage record).
 *
 * @internal
 */
export interface Progress {
  /** Attempts begun, over every model. */
  readonly attempts: number
  /** The model of the last attempt begun. */
  readonly model: string | undefined
}

/**
 * Bounds a whole call (every model it falls back to, every attempt and wait) by
 * `duration`, if there is one: `TimeoutError` with `phase: "total"`, saying how
 * far the call got.
 *
 * @internal
 */
export const withTotalTimeout: {
  (
    duration: Duration.Duration | undefined,
    progress: Progress
  ): <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E | InferenceError.TimeoutError, R>
  <A, E, R>(
    self: Effect.Effect<A, E, R>,
    duration: Duration.Duration | undefined,
    progress: Progress
  ): Effect.Effect<A, E | InferenceError.TimeoutError, R>
} = dual(3, <A, E, R>(
  self: Effect.Effect<A, E, R>,
  duration: Duration.Duration | undefined,
  progress: Progress
): Effect.Effect<A, E | InferenceError.TimeoutError, R> =>
  duration === undefined ? self : timeoutFail(self, {
    duration,
    onTimeout: () =>
      new InferenceError.TimeoutError({
        phase: "total",
        timeout: duration,
        model: progress.model,
        attempts: Math.max(progress.attempts, 1)
      })
  }))

/**
 * The watch on a stream's reads that makes its idle timeout, from `idleGuard`.
 *
 * @internal
 */
export interface IdleGuard {
  /** A read begins: the server has `idleTimeout` to answer it. */
  readonly begin: () => void
  /** The read ended: the time until the next one begins is the consumer's, and does not count. */
  readonly end: () => void
  /** Whether the watchdog stopped a read: that read, and every later one, fails with the idle timeout. */
  readonly expired: () => boolean
}

/**
 * The idle timeout of the rest of a stream: when a read has waited
 * `idleTimeout` for the server, `abort` stops it (aborting the request), and
 * `expired` tells the stream to fail with the idle timeout. The consumer's
 * fiber reads, as it would without the bound, and says when each read begins
 * and ends: a race per read (`Effect.timeout`) forks two fibers for every
 * read, and a reader fiber handing reads over through a queue costs a
 * hand-off per read, either of which in a stream paced token by token costs
 * more than the read. One watchdog instead wakes once per `idleTimeout` (a
 * plain timer under Effect's own clock, a fiber under any other, so that
 * `TestClock` drives it). Time between reads does not count: a slow consumer
 * is not a stalled server.
 *
 * Kept for its cost: `pnpm --filter @effect-inference/benchmarks bench --scenario stream --only client
 * --rounds 1`, median of 3 interleaved runs, measured the client at 15.0 µs of CPU per chunk paced token by
 * token and 721 µs per 10-chunk stream with this, and at 31.0 and 877 with a reader fiber handing each read
 * over through a queue.
 *
 * @internal
 */
export const idleGuard = (
  abort: () => void,
  idleTimeout: Duration.Duration,
  scope: Scope.Scope
): Effect.Effect<IdleGuard> =>
  Effect.clockWith((clock) => {
    if (clock === defaultClock && Duration.toMillis(idleTimeout) <= MAX_TIMER) {
      return Effect.suspend(() => {
        const { guard, stop } = unsafeIdleTimer(abort, idleTimeout, clock)!
        return Effect.as(Scope.addFinalizer(scope, Effect.sync(stop)), guard)
      })
    }
    const watch = watchdog(abort, idleTimeout, clock)
    const loop: Effect.Effect<void> = Effect.suspend(() => {
      const wait = watch.left()
      return wait <= 0 ? Effect.sync(watch.expire) : Effect.zipRight(Effect.sleep(wait), loop)
    })
    return Effect.as(Effect.forkIn(loop, scope), watch.guard)
  })

/** The guard of `idleGuard`, and what its watchdog needs: how long the read in progress has left, and the expiry. */
const watchdog = (abort: () => void, idleTimeout: Duration.Duration, clock: Clock.Clock) => {
  const idleMillis = Duration.toMillis(idleTimeout)
  /** When the read in progress began; `undefined` between reads. */
  let readingSince: number | undefined
  let timedOut = false
  return {
    idleMillis,
    /** How long until the read in progress has waited too long (at most `idleTimeout`); 0 or less once it has. */
    left: (): number => {
      const since = readingSince
      return since === undefined ? idleMillis : since + idleMillis - clock.unsafeCurrentTimeMillis()
    },
    expire: () => {
      timedOut = true
      abort()
    },
    guard: {
      begin: () => {
        readingSince = clock.unsafeCurrentTimeMillis()
      },
      end: () => {
        readingSince = undefined
      },
      expired: () => timedOut
    } satisfies IdleGuard
  }
}

/**
 * `idleGuard`'s watchdog as a plain timer, started now, and how to stop it: what the fused path of a stream
 * (streamFast.ts) uses, stopping it in the stream's one finalizer. Only under Effect's own clock and for an
 * `idleTimeout` a Node timer can keep: otherwise `undefined`, and `idleGuard` it is.
 *
 * @internal
 */
export const unsafeIdleTimer = (
  abort: () => void,
  idleTimeout: Duration.Duration,
  clock: Clock.Clock
): { readonly guard: IdleGuard; readonly stop: () => void } | undefined => {
  if (clock !== defaultClock) return undefined
  const watch = watchdog(abort, idleTimeout, clock)
  if (!(watch.idleMillis <= MAX_TIMER)) return undefined
  const check = () => {
    const wait = watch.left()
    if (wait <= 0) watch.expire()
    else timer = setTimeout(check, wait)
  }
  let timer = setTimeout(check, watch.idleMillis)
  return { guard: watch.guard, stop: () => clearTimeout(timer) }
}
