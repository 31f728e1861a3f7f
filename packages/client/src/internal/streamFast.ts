/**
 * The fused path of a stream's attempt: every policy of `pipeline.attempt` in
 * its uncontended case, taken in one synchronous step, the request sent
 * through `UndiciHttpClient` directly with the attempt's deadline handed to it,
 * and everything the attempt holds given back by one finalizer.
 *
 * Why: a short stream (a few chunks) costs mostly what surrounds its request,
 * and the general path builds that from one combinator per policy (the
 * adaptive limit, the slot, the breaker, the rate limit, the attempt timeout),
 * an attempt scope forked and closed, and the request through
 * `HttpClient.execute` and `BoundedBody.scoped`: each a few runtime
 * operations, on the way in and again on the way back. Counted at the fiber
 * runtime's dispatch as `pnpm --filter @effect-inference/benchmarks ops` counts
 * (one 10-chunk stream at a time over `UndiciHttpClient`, against the
 * benchmarks' `server.ts --answer-tokens 10 --per-token 0`), a stream took 712
 * runtime operations on the general path and 630 with this; with the stream's
 * one finalizer (stream.ts, `Ending`) and the usage tracker's one-step
 * reservation and record, 585. `pnpm bench --scenario "stream short"
 * --no-profile`: 593 µs of CPU per stream before (the SDK: 493), 526–543 after
 * in three runs (the SDK: 460–483); see docs/benchmarks.md, Analysis item 4.
 *
 * When: the transport is `UndiciHttpClient` unwrapped (`Environment.direct`),
 * no rate limiter, Effect's own clock (not `TestClock`), no deadline set
 * around the call, and at this instant the model's adaptive line has a free
 * permit of this process, the client's slots (in memory) a free slot, and the
 * model's breaker (in the memory store, made already) is closed. Otherwise,
 * and for every attempt that finds one of these taken (a queue for a slot, an
 * open or half-open breaker, a store shared by processes), it is the general
 * path, `pipeline.attempt`, unchanged. A tracer or a response cache never get
 * here either: with a tracer `direct` is still taken (the transport makes no
 * spans) but the stream's span is around all of it, as on the general path.
 *
 * What it does is what the general path does, in the same order: the permits
 * are taken in the order adaptive limit, slot, breaker; the attempt's end is
 * counted by the breaker, then by the adaptive limit; a failure (or an
 * interruption) gives back the response (aborting its request), the slot and
 * the adaptive permit, in that order, before the error goes on to the retry;
 * a success keeps them until the stream's scope closes, where the attempt's
 * scope would have closed. A failure after the first-chunk timer fired is
 * `TimeoutError` with `phase: "firstChunk"`, as `timeout.deadlineFail` makes it.
 */
import type * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import type * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as CircuitBreaker from "../CircuitBreaker.js"
import * as InferenceError from "../InferenceError.js"
import type * as AdaptiveConcurrency from "./adaptiveConcurrency.js"
import * as BoundedBody from "./boundedBody.js"
import * as CircuitBreakerInternal from "./circuitBreaker.js"
import * as classify from "./classify.js"
import type { Direct, Environment } from "./environment.js"
import * as Slots from "./slots.js"
import * as timeout from "./timeout.js"
import { currentDeadline, Deadline } from "./undiciHttpClient.js"

/** What an attempt took in the fused step. */
interface Holds {
  readonly adaptive: AdaptiveConcurrency.Held | undefined
  readonly slots: Slots.Slots | undefined
  readonly breaker: CircuitBreakerInternal.Pass | undefined
  /** The breaker's generation the attempt is counted in. */
  readonly generation: number
}

/**
 * Takes an adaptive permit, a slot and the breaker's pass for `model`, each
 * only if it is free now; `undefined` (and nothing held) if one is not.
 */
const take = (env: Environment, model: string | undefined): Holds | undefined => {
  let adaptive: AdaptiveConcurrency.Held | undefined
  if (env.adaptive !== undefined && model !== undefined) {
    adaptive = env.adaptive.tryHold(model)
    if (adaptive === undefined) return undefined
  }
  let slots: Slots.Slots | undefined
  if (env.slots !== undefined) {
    if (!(env.slots instanceof Slots.Slots) || !env.slots.tryTake()) {
      adaptive?.release()
      return undefined
    }
    slots = env.slots
  }
  let breaker: CircuitBreakerInternal.Pass | undefined
  let generation = 0
  if (env.breakers !== undefined) {
    breaker = CircuitBreakerInternal.passOf(
      env.breakers,
      CircuitBreaker.key(env.options.baseUrl, model ?? "(models)")
    )
    const admitted = breaker?.admit()
    if (admitted === undefined) {
      slots?.unsafeRelease()
      adaptive?.release()
      return undefined
    }
    generation = admitted
  }
  return { adaptive, slots, breaker, generation }
}

/**
 * `then`, after the attempt's end is counted by the breaker and then by the
 * adaptive limit. Either answers `Effect.void` when it has nothing to report
 * (nearly always), and that step is left out.
 */
const counted = <A, E>(
  holds: Holds,
  exit: Exit.Exit<unknown, InferenceError.InferenceError>,
  then: Effect.Effect<A, E>
): Effect.Effect<A, E> => {
  let effect = then
  if (holds.adaptive !== undefined) {
    const adapted = holds.adaptive.adapt(exit)
    if (adapted !== Effect.void) effect = Effect.zipRight(adapted, effect)
  }
  if (holds.breaker !== undefined) {
    const recorded = holds.breaker.record(holds.generation, exit)
    if (recorded !== Effect.void) effect = Effect.zipRight(recorded, effect)
  }
  return effect
}

/**
 * One attempt of a stream: `use` given the response to the shaped `request`,
 * bounded by `bound`, with the attempt's policies taken in one step when they
 * are all free (see the module's doc); otherwise `general`. What a successful
 * attempt holds is handed to `keep`, to be given back when the stream ends
 * (`release` begins that in its caller's step, and returns the rest of it).
 *
 * @internal
 */
export const attempt = <A>(
  env: Environment,
  direct: Direct,
  context: classify.CallContext,
  bound: Pick<timeout.AttemptBound, "duration" | "phase">,
  request: HttpClientRequest.HttpClientRequest,
  use: (response: HttpClientResponse.HttpClientResponse) => Effect.Effect<A, InferenceError.InferenceError>,
  keep: (release: () => Effect.Effect<void>) => void,
  general: Effect.Effect<A, InferenceError.InferenceError>
): Effect.Effect<A, InferenceError.InferenceError> =>
  Effect.uninterruptibleMask((restore) =>
    Effect.withFiberRuntime((fiber) => {
      const millis = Duration.toMillis(bound.duration)
      if (
        Context.get(fiber.currentDefaultServices, Clock.Clock) !== timeout.defaultClock ||
        !(millis <= timeout.MAX_TIMER) ||
        fiber.getFiberRef(currentDeadline) !== undefined
      ) {
        return restore(general)
      }
      const holds = take(env, context.model)
      if (holds === undefined) return restore(general)
      let timedOut = false
      const deadline = new Deadline()
      const timer = setTimeout(() => {
        timedOut = true
        deadline.expire()
      }, millis)
      let response: HttpClientResponse.HttpClientResponse | undefined
      const releaseHolds = () => {
        holds.slots?.unsafeRelease()
        holds.adaptive?.release()
      }
      // What closing the attempt's scope does on the general path: the response let go of (its request aborted
      // unless undici is done with it), then the slot, then the adaptive permit. Begun in the caller's step (a
      // finalizer's, or the failure's below); once.
      const release = (): Effect.Effect<void> => {
        const held = response
        response = undefined
        if (held === undefined) {
          releaseHolds()
          return Effect.void
        }
        const wait = BoundedBody.unsafeDiscard(held)
        if (wait === Effect.void) {
          releaseHolds()
          return Effect.void
        }
        return Effect.ensuring(wait, Effect.sync(releaseHolds))
      }
      const exchange = Effect.flatMap(
        restore(
          Effect.mapError(direct.send(request, deadline), (error) => classify.fromHttpClientError(error, context))
        ),
        (sent) => {
          response = sent
          return restore(use(sent))
        }
      )
      return Effect.matchCauseEffect(exchange, {
        onSuccess: (value) => {
          clearTimeout(timer)
          keep(release)
          return counted(holds, Exit.succeed(value), Effect.succeed(value))
        },
        onFailure: (cause) => {
          clearTimeout(timer)
          const failure = Cause.failureOrCause(cause)
          const exit: Exit.Exit<A, InferenceError.InferenceError> = Either.isLeft(failure)
            ? Exit.fail(
              timedOut
                ? new InferenceError.TimeoutError({
                  phase: bound.phase,
                  timeout: bound.duration,
                  model: context.model,
                  attempts: context.attempt
                })
                : failure.left
            )
            : Exit.failCause(failure.right)
          return counted(holds, exit, Effect.suspend(() => Effect.zipRight(release(), exit)))
        }
      })
    })
  )
