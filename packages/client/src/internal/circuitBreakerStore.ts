/**
 * The breaker store's tag and its memory implementation.
 *
 * The memory store also answers synchronously (`unsafeGet`,
 * `unsafeCompareAndSet`), and the breaker uses that when it finds one: a call
 * through a closed breaker then costs one synchronous read and compare-and-set,
 * as it did before breakers had stores. Its `Effect` operations do the same
 * thing, so that it meets the contract like any other store.
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type * as Api from "../CircuitBreakerStore.js"

export class CircuitBreakerStore extends Context.Tag("@effect-inference/client/CircuitBreakerStore")<
  CircuitBreakerStore,
  Api.CircuitBreakerStore.Service
>() {}

/**
 * A store in this process's memory.
 *
 * @internal
 */
export class MemoryStore implements Api.CircuitBreakerStore.Service {
  private readonly entries = new Map<string, Api.Entry>()

  /** The key's entry, or `undefined` if it was never written. */
  unsafeGet(key: string): Api.Entry | undefined {
    return this.entries.get(key)
  }

  /** Writes `state` at the next version if the key is still at `expectedVersion` (0: never written). */
  unsafeCompareAndSet(key: string, expectedVersion: number, state: Api.BreakerState): boolean {
    const version = this.entries.get(key)?.version ?? 0
    if (version !== expectedVersion) return false
    this.entries.set(key, { version: version + 1, state })
    return true
  }

  readonly get = (key: string): Effect.Effect<Option.Option<Api.Entry>> =>
    Effect.sync(() => Option.fromNullable(this.entries.get(key)))

  readonly compareAndSet = (key: string, expectedVersion: number, state: Api.BreakerState): Effect.Effect<boolean> =>
    Effect.sync(() => this.unsafeCompareAndSet(key, expectedVersion, state))
}

/** @internal */
export const isMemory = (store: Api.CircuitBreakerStore.Service): store is MemoryStore => store instanceof MemoryStore

/** @internal */
export const unsafeMakeMemory = (): MemoryStore => new MemoryStore()

/** @internal */
export const makeMemory: Effect.Effect<Api.CircuitBreakerStore.Service> = Effect.sync(unsafeMakeMemory)

/** @internal */
export const layerMemory: Layer.Layer<CircuitBreakerStore> = Layer.effect(CircuitBreakerStore, makeMemory)
