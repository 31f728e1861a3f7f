/**
 * Steps a `Schedule` by hand, as the client's retry loop does, so tests can read
 * each decision (continue after how long, or stop) without sleeping.
 */
import * as Effect from "effect/Effect"
import type * as Schedule from "effect/Schedule"
import * as ScheduleDecision from "effect/ScheduleDecision"
import * as Intervals from "effect/ScheduleIntervals"

export interface Steps<Out> {
  /** The delay in milliseconds before each recurrence the schedule allowed, in order. */
  readonly delays: ReadonlyArray<number>
  /** The output of each allowed recurrence. */
  readonly outputs: ReadonlyArray<Out>
  /** Whether the schedule refused an input (it is done) before the inputs ran out. */
  readonly done: boolean
}

/**
 * Feeds `inputs` to `schedule` one at a time, starting at `start` (ms) and moving
 * the time to the start of each interval the schedule decides on.
 */
export const steps = <Out, In, R>(
  schedule: Schedule.Schedule<Out, In, R>,
  inputs: Iterable<In>,
  start = 0
): Effect.Effect<Steps<Out>, never, R> =>
  Effect.gen(function*() {
    const delays: Array<number> = []
    const outputs: Array<Out> = []
    let state = schedule.initial
    let now = start
    for (const input of inputs) {
      const [next, out, decision] = yield* schedule.step(now, input, state)
      if (ScheduleDecision.isDone(decision)) return { delays, outputs, done: true }
      const at = Intervals.start(decision.intervals)
      delays.push(at - now)
      outputs.push(out)
      state = next
      now = at
    }
    return { delays, outputs, done: false }
  })

/** `n` copies of `value`, to feed a schedule the same input again and again. */
export const repeat = <A>(value: A, n: number): ReadonlyArray<A> => Array.from({ length: n }, () => value)
