/**
 * Where a call moves on to another model: the request's model first, then each
 * `fallback` model in turn while the last one failed with an error that
 * `fallbackOn` accepts (by default a retryable error, after its own retries,
 * or an open breaker). The last model's error is the call's.
 */
import * as Effect from "effect/Effect"
import { dual } from "effect/Function"
import type * as InferenceError from "../InferenceError.js"

/**
 * The models a call for `primary` may go to, in order.
 *
 * @internal
 */
export const modelsOf = (primary: string, fallback: ReadonlyArray<string>): ReadonlyArray<string> =>
  fallback.length === 0 ? [primary] : [primary, ...fallback.filter((model) => model !== primary)]

/**
 * What a call falls back on: its models in order and which errors move it on.
 *
 * @internal
 */
export interface Fallback {
  readonly models: ReadonlyArray<string>
  readonly fallbackOn: (error: InferenceError.InferenceError) => boolean
}

/**
 * Runs `run` for each model of `fallback` in turn, each move logged at Warning.
 *
 * @internal
 */
export const withFallback: {
  (
    fallback: Fallback
  ): <A, R>(
    run: (model: string) => Effect.Effect<A, InferenceError.InferenceError, R>
  ) => Effect.Effect<A, InferenceError.InferenceError, R>
  <A, R>(
    run: (model: string) => Effect.Effect<A, InferenceError.InferenceError, R>,
    fallback: Fallback
  ): Effect.Effect<A, InferenceError.InferenceError, R>
} = dual(2, <A, R>(
  run: (model: string) => Effect.Effect<A, InferenceError.InferenceError, R>,
  { fallbackOn, models }: Fallback
): Effect.Effect<A, InferenceError.InferenceError, R> => {
  const from = (i: number): Effect.Effect<A, InferenceError.InferenceError, R> =>
    i === models.length - 1 ? run(models[i]!) : Effect.catchIf(
      run(models[i]!),
      fallbackOn,
      (error) =>
        Effect.logWarning("Inference model failed; falling back").pipe(
          Effect.annotateLogs({ model: models[i], fallback: models[i + 1], tag: error._tag }),
          Effect.zipRight(from(i + 1))
        )
    )
  return from(0)
})
