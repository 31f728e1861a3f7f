/**
 * The concurrency store's tag and its memory implementation: the pure core's
 * leases (`concurrencyCore.ts`) per key, read with Effect's `Clock`, so that a
 * `TestClock` test sees leases expire exactly.
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Api from "../ConcurrencyStore.js"
import * as Core from "./concurrencyCore.js"

export class ConcurrencyStore extends Context.Tag("@effect-inference/client/ConcurrencyStore")<
  ConcurrencyStore,
  Api.ConcurrencyStore.Service
>() {}

type Options<K extends keyof Api.ConcurrencyStore.Service> = Parameters<Api.ConcurrencyStore.Service[K]>[0]

/** A store in this process's memory: one map of leases per key, dropped once it is empty. */
class MemoryStore implements Api.ConcurrencyStore.Service {
  private readonly keys = new Map<string, Core.Leases>()

  private update<A>(key: string, f: (leases: Core.Leases, now: number) => readonly [Core.Leases, A]): Effect.Effect<A> {
    return Effect.clockWith((clock) =>
      Effect.sync(() => {
        const [next, result] = f(this.keys.get(key) ?? Core.empty, clock.unsafeCurrentTimeMillis())
        if (next.size === 0) this.keys.delete(key)
        else this.keys.set(key, next)
        return result
      })
    )
  }

  readonly tryAcquire = (options: Options<"tryAcquire">) =>
    this.update(
      options.key,
      (leases, now) => Core.admit(leases, options.leaseId, now, options.limit, options.leaseMillis)
    )

  readonly renew = (options: Options<"renew">) =>
    this.update(options.key, (leases, now) => Core.renew(leases, options.leaseId, now, options.leaseMillis))

  readonly release = (options: Options<"release">) =>
    this.update(options.key, (leases, now) => [Core.expire(Core.release(leases, options.leaseId), now), undefined])

  readonly held = (key: string) => this.update(key, (leases, now) => [Core.expire(leases, now), Core.held(leases, now)])
}

/** @internal */
export const makeMemory: Effect.Effect<Api.ConcurrencyStore.Service> = Effect.sync(() => new MemoryStore())

/** @internal */
export const layerMemory: Layer.Layer<ConcurrencyStore> = Layer.effect(ConcurrencyStore, makeMemory)
