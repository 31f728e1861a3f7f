/**
 * Where every time bound of a call lives: the attempt timeout (`timeout` for a
 * plain call, `firstChunkTimeout` for a stream until its first content), the
 * total timeout over a whole call, and the idle timeout between a stream's
 * chunks. Each fails with `TimeoutError` and its `phase`.
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import { dual } from "effect/Function"
import type * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import type * as Scope from "effect/Scope"
import * as InferenceError from "../InferenceError.js"

/** Effect's own clock, in place unless a layer (TestClock) replaces it. */
const defaultClock = Effect.runSync(Effect.clock)

/** The longest delay a Node timer keeps; a longer one would fire at once. */
const MAX_TIMER = 2 ** 31 - 1

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
  options: { readonly duration: Duration.Duration; readonly onTimeout: () => E1 }
): Effect.Effect<A, E | E1, R> =>
  Effect.clockWith((clock) => {
    const millis = Duration.toMillis(options.duration)
    if (clock !== defaultClock || !(millis <= MAX_TIMER)) return Effect.timeoutFail(self, options)
    return Effect.fiberIdWith((parent) =>
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
    )
  })

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
    timeoutFail(self, {
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
 * The rest of a stream, failed with `idle()` when the server sends nothing for
 * `idleTimeout`. A race per pull (`Effect.timeout`) forks two fibers for every
 * read, which in a stream paced token by token cost more than the read; so one
 * fiber reads ahead by a batch into a queue, and one watchdog, waking once per
 * `idleTimeout`, stops the reader (aborting the request) when its current read
 * has waited too long. Time the reader spends waiting for the consumer does
 * not count: a slow consumer is not a stalled server.
 *
 * @internal
 */
export const idleGuard = <A, E>(
  pull: Effect.Effect<A, Option.Option<E>>,
  idleTimeout: Duration.Duration,
  idle: () => Option.Option<E>
): Effect.Effect<Effect.Effect<A, Option.Option<E>>, never, Scope.Scope> =>
  Effect.gen(function*() {
    type Item = Exit.Exit<A, Option.Option<E>> | "idle"
    const queue = yield* Queue.bounded<Item>(1)
    const clock = yield* Effect.clock
    const idleMillis = Duration.toMillis(idleTimeout)
    /** When the reader's current read began; `undefined` while it waits for the consumer. */
    let readingSince: number | undefined = clock.unsafeCurrentTimeMillis()
    const read: Effect.Effect<void> = Effect.flatMap(
      Effect.exit(Effect.suspend(() => {
        readingSince = clock.unsafeCurrentTimeMillis()
        return pull
      })),
      (exit) => {
        readingSince = undefined
        return Effect.zipRight(Queue.offer(queue, exit), Exit.isSuccess(exit) ? read : Effect.void)
      }
    )
    const reader = yield* Effect.forkScoped(read)
    const watch: Effect.Effect<void> = Effect.suspend(() => {
      const since = readingSince
      const now = clock.unsafeCurrentTimeMillis()
      if (since !== undefined && now - since >= idleMillis) {
        return Effect.zipRight(Fiber.interrupt(reader), Queue.offer(queue, "idle"))
      }
      return Effect.zipRight(Effect.sleep(since === undefined ? idleMillis : since + idleMillis - now), watch)
    })
    yield* Effect.forkScoped(watch)
    // The idle error is built when it is taken, so that its chunksDelivered counts every chunk before it.
    return Effect.flatMap(Queue.take(queue), (item) => item === "idle" ? Effect.fail(idle()) : item)
  })
