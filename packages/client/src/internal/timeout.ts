/**
 * Where an attempt is bounded in time.
 *
 * `Effect.timeoutFail` races the effect against a sleep: it forks both into
 * fibers of their own, and the losing sleep fiber is interrupted and awaited.
 * At 64 calls in flight that costs about 55 µs of CPU per use, half an HTTP
 * request over loopback. Under Effect's own clock this does the same with one
 * fiber: the effect runs in a child fiber, as with `Effect.timeoutFail`, and a
 * plain timer interrupts that child when time is up (about 25 µs per use;
 * `pnpm --filter @effect-inference/benchmarks costs` measures both). The
 * outcome is the same: the effect's value or error if it ends first, and
 * otherwise `onTimeout()` once the child's finalizers have run (an aborted
 * request, a released slot). Under any other clock (`TestClock` in tests) it is
 * `Effect.timeoutFail` itself, so virtual time bounds attempts exactly.
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"

/** Effect's own clock, in place unless a layer (TestClock) replaces it. */
const defaultClock = Effect.runSync(Effect.clock)

/** The longest delay a Node timer keeps; a longer one would fire at once. */
const MAX_TIMER = 2 ** 31 - 1

/**
 * `Effect.timeoutFail(self, { duration, onTimeout })`, with one fiber instead of
 * two under the default clock.
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
