/**
 * Where responses are keyed, stored, looked up and expired.
 *
 * Both caches are Effect's `Cache` (bounded, per-entry time to live, and one
 * lookup for concurrent gets of a key); the persistent one reads through to a
 * `KeyValueStore` on a miss and writes a fresh success back to it. The `Cache`
 * keeps a failed lookup for its time to live, even zero, until the clock moves
 * on, so a lookup never fails: it returns the error as a value, which is then
 * invalidated at once and failed with.
 */
import type * as PlatformError from "@effect/platform/Error"
import type * as FileSystem from "@effect/platform/FileSystem"
import * as KeyValueStore from "@effect/platform/KeyValueStore"
import type * as Path from "@effect/platform/Path"
import { sha256 } from "@noble/hashes/sha2.js"
import { bytesToHex, utf8ToBytes } from "@noble/hashes/utils.js"
import * as Cache from "effect/Cache"
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import type * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Equal from "effect/Equal"
import * as Exit from "effect/Exit"
import * as Hash from "effect/Hash"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import type { InferenceError } from "../InferenceError.js"
import type * as ResponseCache from "../ResponseCache.js"
import { Entry, ResponseCache as ResponseCacheTag } from "../ResponseCache.js"
import * as checks from "./options.js"
import * as validate from "./validate.js"

const DEFAULT_CAPACITY = 1000
const DEFAULT_TTL = Duration.hours(1)

/** @internal */
export const metrics = {
  lookups: Metric.counter("inference_cache_lookups_total", {
    description: "Response cache lookups by the inference client, by result (hit or miss)",
    incremental: true
  })
}
const hits = Metric.tagged(metrics.lookups, "result", "hit")
const misses = Metric.tagged(metrics.lookups, "result", "miss")

/** @internal */
export const countLookup = (hit: boolean): Effect.Effect<void> => Metric.increment(hit ? hits : misses)

// ---------------------------------------------------------------------------
// Keys
// ---------------------------------------------------------------------------

/** JSON with the keys of every object sorted, so that equal requests give equal text. */
const canonical = (value: unknown): unknown => {
  if (Array.isArray(value)) return value.map(canonical)
  if (value !== null && typeof value === "object") {
    const out: Record<string, unknown> = {}
    for (const k of Object.keys(value).sort()) {
      const v = (value as Record<string, unknown>)[k]
      if (v !== undefined) out[k] = canonical(v)
    }
    return out
  }
  return value
}

/**
 * @internal
 *
 * SHA-256 from `@noble/hashes` (audited, no dependencies, synchronous): Web
 * Crypto's digest is asynchronous, and a key has to be known before the cache
 * is asked, on every call.
 */
export const key = (input: ResponseCache.KeyInput): string =>
  bytesToHex(
    sha256(
      utf8ToBytes(
        JSON.stringify(["effect-inference/1", input.baseUrl, input.project ?? null, canonical(input.request)])
      )
    )
  )

// ---------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------

interface Resolved {
  readonly capacity: number
  readonly ttl: Duration.Duration
  readonly policy: ResponseCache.Policy
}

const decodeOptions = checks.decoder(
  Schema.Struct({
    capacity: Schema.optional(checks.wholeNumber(1)),
    ttl: Schema.optional(checks.duration({ finite: true })),
    policy: Schema.optional(checks.literal("deterministic", "all"))
  }),
  "ResponseCache options"
)

const resolveOptions = (options: ResponseCache.Options): Either.Either<Resolved, string> =>
  Either.map(decodeOptions(options), (checked) => ({
    capacity: checked.capacity ?? DEFAULT_CAPACITY,
    ttl: checked.ttl === undefined ? DEFAULT_TTL : Duration.decode(checked.ttl),
    policy: checked.policy ?? "deterministic"
  }))

// ---------------------------------------------------------------------------
// The cache
// ---------------------------------------------------------------------------

interface Stored {
  readonly entry: ResponseCache.Entry
  readonly ttlMillis: number
}

type Lookup = Either.Either<Stored, InferenceError>

/** A key of the in-memory `Cache`: equal by the key alone, carrying the lookup of whoever asked first. */
class LookupKey implements Equal.Equal {
  constructor(readonly key: string, readonly lookup: Effect.Effect<Lookup>) {}
  [Equal.symbol](that: Equal.Equal): boolean {
    return that instanceof LookupKey && that.key === this.key
  }
  [Hash.symbol](): number {
    return Hash.cached(this, Hash.string(this.key))
  }
}

/** Where entries live beyond memory. */
interface Backing {
  readonly read: (key: string, now: number) => Effect.Effect<Option.Option<Stored>>
  readonly write: (key: string, stored: Stored, now: number) => Effect.Effect<void>
  readonly remove: (key: string) => Effect.Effect<void>
  readonly clear: Effect.Effect<void>
}

const make = (resolved: Resolved, backing: Backing | undefined): Effect.Effect<ResponseCache.ResponseCache.Service> =>
  Effect.gen(function*() {
    const cache = yield* Cache.makeWith({
      capacity: resolved.capacity,
      lookup: (k: LookupKey) => k.lookup,
      timeToLive: (exit: Exit.Exit<Lookup>) =>
        Exit.isSuccess(exit) && Either.isRight(exit.value) ? Duration.millis(exit.value.right.ttlMillis) : Duration.zero
    })

    const getOrCompute = (
      key: string,
      compute: Effect.Effect<ResponseCache.Entry, InferenceError>,
      ttl: Duration.Duration
    ): Effect.Effect<{ readonly entry: ResponseCache.Entry; readonly hit: boolean }, InferenceError> =>
      Effect.flatMap(Effect.context<never>(), (context: Context.Context<never>) => {
        let computed = false
        const fromBacking = backing === undefined
          ? Effect.succeedNone
          : Effect.flatMap(Clock.currentTimeMillis, (now) => backing.read(key, now))
        // The `Cache` runs a lookup with the context it was made in: the caller's is put back (its span, its services).
        const lookup: Effect.Effect<Lookup> = Effect.provide(
          Effect.flatMap(fromBacking, (found): Effect.Effect<Lookup> => {
            if (Option.isSome(found)) return Effect.succeed(Either.right(found.value))
            computed = true
            return Effect.flatMap(
              Effect.either(compute),
              (result): Effect.Effect<Lookup> =>
                Either.isLeft(result) ? Effect.succeed(Either.left(result.left)) : Effect.flatMap(
                  Clock.currentTimeMillis,
                  (now) => {
                    const stored: Stored = { entry: result.right, ttlMillis: Duration.toMillis(ttl) }
                    return Effect.as(
                      backing === undefined ? Effect.void : backing.write(key, stored, now),
                      Either.right(stored)
                    )
                  }
                )
            )
          }),
          context
        )
        const get: Effect.Effect<Lookup> = Effect.catchAllCause(
          cache.get(new LookupKey(key, lookup)),
          // The fiber that ran the lookup was interrupted, not this one: look again.
          (cause) => Cause.isInterruptedOnly(cause) ? Effect.suspend(() => get) : Effect.failCause(cause)
        )
        return Effect.flatMap(get, (result) =>
          Either.isLeft(result)
            ? Effect.zipRight(
              cache.invalidateWhen(new LookupKey(key, lookup), (value) => value === result),
              Effect.fail(result.left)
            )
            : Effect.succeed({ entry: result.right.entry, hit: !computed }))
      })

    const keyOf = (key: string) => new LookupKey(key, Effect.dieMessage("ResponseCache: no lookup"))

    const get = (key: string): Effect.Effect<Option.Option<ResponseCache.Entry>> =>
      Effect.flatMap(cache.getOption(keyOf(key)), (found) => {
        if (Option.isSome(found)) {
          return Effect.succeed(Either.isRight(found.value) ? Option.some(found.value.right.entry) : Option.none())
        }
        if (backing === undefined) return Effect.succeedNone
        return Effect.map(
          Effect.flatMap(Clock.currentTimeMillis, (now) => backing.read(key, now)),
          Option.map((stored) => stored.entry)
        )
      })

    const set = (key: string, entry: ResponseCache.Entry, ttl: Duration.Duration): Effect.Effect<void> => {
      const stored: Stored = { entry, ttlMillis: Duration.toMillis(ttl) }
      return Effect.zipRight(
        cache.set(keyOf(key), Either.right(stored)),
        backing === undefined
          ? Effect.void
          : Effect.flatMap(Clock.currentTimeMillis, (now) => backing.write(key, stored, now))
      )
    }

    const invalidate = (key: string): Effect.Effect<void> =>
      Effect.zipRight(cache.invalidate(keyOf(key)), backing === undefined ? Effect.void : backing.remove(key))

    return {
      ttl: resolved.ttl,
      policy: resolved.policy,
      getOrCompute,
      get,
      set,
      invalidate,
      invalidateAll: Effect.zipRight(cache.invalidateAll, backing === undefined ? Effect.void : backing.clear)
    }
  })

const resolveOrDie = (options: ResponseCache.Options): Effect.Effect<Resolved> =>
  validate.optionsOrDie("ResponseCache", resolveOptions(options))

/** @internal */
export const makeMemory = (options: ResponseCache.Options = {}): Effect.Effect<ResponseCache.ResponseCache.Service> =>
  Effect.flatMap(resolveOrDie(options), (resolved) => make(resolved, undefined))

// ---------------------------------------------------------------------------
// Persistence
// ---------------------------------------------------------------------------

/** Built on first use: `Entry` is defined by the public module, which loads this one first. */
const persisted = () =>
  Schema.parseJson(Schema.Struct({
    version: Schema.Literal(1),
    expiresAt: Schema.Number,
    entry: Entry
  }))

const logStoreFailure = (operation: string, key: string) => (error: unknown) =>
  Effect.logWarning("Response cache store failed; carrying on without it").pipe(
    Effect.annotateLogs({
      operation,
      key,
      error: error instanceof Error ? error.message : String(error)
    })
  )

/** @internal */
export const makePersistent = (
  options: ResponseCache.Options = {}
): Effect.Effect<ResponseCache.ResponseCache.Service, never, KeyValueStore.KeyValueStore> =>
  Effect.gen(function*() {
    const resolved = yield* resolveOrDie(options)
    const store = (yield* KeyValueStore.KeyValueStore).forSchema(persisted())
    const backing: Backing = {
      read: (key, now) =>
        store.get(key).pipe(
          Effect.flatMap(Option.match({
            onNone: () => Effect.succeedNone,
            onSome: (persisted) =>
              persisted.expiresAt > now
                ? Effect.succeedSome({ entry: persisted.entry, ttlMillis: persisted.expiresAt - now })
                : Effect.as(Effect.ignore(store.remove(key)), Option.none())
          })),
          Effect.catchAll((error) =>
            error._tag === "ParseError"
              // Written by another version, or damaged: a miss, and the fresh answer will replace it.
              ? Effect.as(
                Effect.logDebug("Response cache entry unreadable; treated as a miss").pipe(
                  Effect.annotateLogs({ key })
                ),
                Option.none()
              )
              : Effect.as(logStoreFailure("read", key)(error), Option.none())
          )
        ),
      write: (key, stored, now) =>
        store.set(key, { version: 1, expiresAt: now + stored.ttlMillis, entry: stored.entry }).pipe(
          Effect.catchAll(logStoreFailure("write", key))
        ),
      remove: (key) => Effect.catchAll(store.remove(key), logStoreFailure("remove", key)),
      clear: Effect.catchAll(store.clear, logStoreFailure("clear", "*"))
    }
    return yield* make(resolved, backing)
  })

/** @internal */
export const layerFileSystem = (
  directory: string,
  options?: ResponseCache.Options
): Layer.Layer<ResponseCacheTag, PlatformError.PlatformError, FileSystem.FileSystem | Path.Path> =>
  Layer.effect(ResponseCacheTag, makePersistent(options)).pipe(
    Layer.provide(KeyValueStore.layerFileSystem(directory))
  )
