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
import * as KeyValueStore from "@effect/platform/KeyValueStore"
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
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Predicate from "effect/Predicate"
import * as Schema from "effect/Schema"
import { ChatCompletion } from "../ChatCompletion.js"
import type { ChatCompletionRequest } from "../ChatCompletion.js"
import * as InferenceError from "../InferenceError.js"
import type * as ResponseCache from "../ResponseCache.js"
import { ChatCompletionChunk } from "./chunks.js"
import * as checks from "./options.js"
import * as validate from "./validate.js"

const DEFAULT_CAPACITY = 1000
const DEFAULT_TTL = Duration.hours(1)

// ---------------------------------------------------------------------------
// Entries (documented where the public module re-exports them)
// ---------------------------------------------------------------------------

// The schemas of what is stored are defined here, not in the public module: the persistent cache encodes and
// decodes entries, so this module needs them as values, and the public module needs this one's constructors.

export class CachedCompletion extends Schema.TaggedClass<CachedCompletion>(
  "@effect-inference/client/ResponseCache/CachedCompletion"
)("CachedCompletion", { completion: ChatCompletion }) {}

export class CachedStream extends Schema.TaggedClass<CachedStream>(
  "@effect-inference/client/ResponseCache/CachedStream"
)("CachedStream", { chunks: Schema.Array(ChatCompletionChunk) }) {}

export const Entry = Schema.Union(CachedCompletion, CachedStream)

export type Entry = typeof Entry.Type

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
// Policy
// ---------------------------------------------------------------------------

/**
 * How one call uses the cache: the cache, whether a stored answer may be
 * served (`false` for `"no-cache"`, which still stores the fresh one), and how
 * long the fresh answer is kept.
 *
 * @internal
 */
export interface CacheUse {
  readonly cache: ResponseCache.ResponseCache.Service
  readonly read: boolean
  readonly ttl: Duration.Duration
}

/**
 * How one call uses the cache, from the request and the call's `cache`
 * directive; `undefined` leaves the cache alone. A directive asking for a
 * `ttl` caches the call whatever the policy; otherwise the policy decides, and
 * `"deterministic"` takes only requests whose answer does not change from call
 * to call (`temperature: 0` or a `seed`). The directive is checked even when
 * there is no cache, so a mistake in it shows before a cache is added, not after.
 *
 * @internal
 */
export const use = (
  cache: ResponseCache.ResponseCache.Service | undefined,
  request: ChatCompletionRequest,
  directive: ResponseCache.Directive | undefined
): Either.Either<CacheUse | undefined, InferenceError.InvalidRequestError> => {
  let ttl: Duration.Duration | undefined
  if (Predicate.isRecord(directive)) {
    const checked = validate.positiveDuration(directive.ttl, true)
    if (Either.isLeft(checked)) {
      return Either.left(new InferenceError.InvalidRequestError({ path: "cache.ttl", issue: checked.left }))
    }
    ttl = checked.right
  } else if (directive !== undefined && directive !== "no-cache" && directive !== "no-store") {
    return Either.left(
      new InferenceError.InvalidRequestError({
        path: "cache",
        issue: `must be "no-cache", "no-store" or { ttl }, got ${String(directive)}`
      })
    )
  }
  if (cache === undefined || directive === "no-store") return Either.right(undefined)
  if (ttl !== undefined) return Either.right({ cache, read: true, ttl })
  const deterministic = request.temperature === 0 || request.seed !== undefined
  return Either.right(
    cache.policy === "all" || deterministic ? { cache, read: directive !== "no-cache", ttl: cache.ttl } : undefined
  )
}

// ---------------------------------------------------------------------------
// The cache
// ---------------------------------------------------------------------------

interface Stored {
  readonly entry: Entry
  readonly ttlMillis: number
}

type Lookup = Either.Either<Stored, InferenceError.InferenceError>

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
      compute: Effect.Effect<Entry, InferenceError.InferenceError>,
      ttl: Duration.Duration
    ): Effect.Effect<{ readonly entry: Entry; readonly hit: boolean }, InferenceError.InferenceError> =>
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

    const get = (key: string): Effect.Effect<Option.Option<Entry>> =>
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

    const set = (key: string, entry: Entry, ttl: Duration.Duration): Effect.Effect<void> => {
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

/** What the store holds for a key: the entry, when it expires, and a version, so that another layout reads as a miss. */
const Persisted = Schema.parseJson(Schema.Struct({
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
    const store = (yield* KeyValueStore.KeyValueStore).forSchema(Persisted)
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
