/**
 * The rate limiter's store service, and the store in memory: a map from key to
 * the limiter's state, where each operation is one synchronous step of the
 * pure core (`rateLimitCore.ts`), so no other fiber sees a half-made change.
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Api from "../RateLimitStore.js"
import * as core from "./rateLimitCore.js"

/**
 * The tag of the store service (re-exported by `RateLimitStore.ts`, which
 * documents it).
 */
export class RateLimitStore extends Context.Tag("@effect-inference/client/RateLimitStore")<
  RateLimitStore,
  Api.RateLimitStore.Service
>() {}

/**
 * The key a limiter keeps its windows under, unless it is given another.
 *
 * @internal
 */
export const DEFAULT_KEY = "rate-limit"

/** @internal */
export const unsafeMakeMemory = (): Api.RateLimitStore.Service => {
  const states = new Map<string, core.State>()
  return RateLimitStore.of({
    admit: ({ key, limits, tokens }) =>
      Effect.clockWith((clock) =>
        Effect.sync(() => {
          const [state, admission] = core.admit(
            states.get(key) ?? core.initial,
            tokens,
            clock.unsafeCurrentTimeMillis(),
            limits
          )
          states.set(key, state)
          return admission
        })
      ),
    settle: ({ id, key, limits, used }) =>
      Effect.clockWith((clock) =>
        Effect.sync(() => {
          states.set(
            key,
            core.settle(states.get(key) ?? core.initial, id, used, clock.unsafeCurrentTimeMillis(), limits)
          )
        })
      )
  })
}

/** @internal */
export const makeMemory: Effect.Effect<Api.RateLimitStore.Service> = Effect.sync(unsafeMakeMemory)

/** @internal */
export const layerMemory: Layer.Layer<RateLimitStore> = Layer.sync(RateLimitStore, unsafeMakeMemory)
