/**
 * The budget's store service, and the store in memory: a map from key to a
 * budget's state, where each operation is one synchronous step of the pure
 * core (`budget.ts`), so no other fiber sees a half-made change.
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Api from "../BudgetStore.js"
import * as budget from "./budget.js"

/**
 * The tag of the store service (re-exported by `BudgetStore.ts`, which
 * documents it).
 */
export class BudgetStore extends Context.Tag("@effect-inference/client/BudgetStore")<
  BudgetStore,
  Api.BudgetStore.Service
>() {}

/**
 * The key a tracker keeps its budget under, unless it is given another.
 *
 * @internal
 */
export const DEFAULT_KEY = "budget"

/** @internal */
export const unsafeMakeMemory = (): Api.BudgetStore.Service => {
  const states = new Map<string, budget.State>()
  /** Applies `step` to the budget under `key` (made from `limits.origin` if there is none) in one synchronous step. */
  const modify = <A>(
    key: string,
    limits: Api.Limits,
    step: (state: budget.State, now: number) => readonly [budget.State, A]
  ): Effect.Effect<A> =>
    Effect.clockWith((clock) =>
      Effect.sync(() => {
        const [state, result] = step(
          states.get(key) ?? budget.initial(limits.origin),
          clock.unsafeCurrentTimeMillis()
        )
        states.set(key, state)
        return result
      })
    )
  return BudgetStore.of({
    reserve: ({ amount, key, limits }) =>
      modify(key, limits, (state, now) => budget.reserve(state, amount, now, limits)),
    settle: ({ id, key, limits, used }) =>
      modify(key, limits, (state, now) => budget.settle(state, id, used, now, limits)),
    status: ({ key, limits }) => modify(key, limits, (state, now) => budget.status(state, now, limits))
  })
}

/** @internal */
export const makeMemory: Effect.Effect<Api.BudgetStore.Service> = Effect.sync(unsafeMakeMemory)

/** @internal */
export const layerMemory: Layer.Layer<BudgetStore> = Layer.sync(BudgetStore, unsafeMakeMemory)
