/**
 * A cache of successful responses. When one is in the client's context, a
 * request the cache policy allows is answered from it when it can, and a fresh
 * success is stored; errors never are. Identical calls made at the same time
 * send one request and share its answer.
 *
 * The key is the SHA-256 of the whole request in a canonical form (every
 * parameter, with the base URL and the project), so two requests that differ
 * in any field never share an entry. A streamed request is its own entry: its
 * chunks are stored as they came and replayed one by one.
 *
 * @since 0.1.0
 */
import type * as PlatformError from "@effect/platform/Error"
import type * as FileSystem from "@effect/platform/FileSystem"
import * as KeyValueStore from "@effect/platform/KeyValueStore"
import type * as Path from "@effect/platform/Path"
import * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import type * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Option from "effect/Option"
import type * as Schema from "effect/Schema"
import type { InferenceError } from "./InferenceError.js"
import * as internal from "./internal/responseCache.js"

/**
 * A stored chat completion.
 *
 * @since 0.1.0
 * @category models
 */
export const CachedCompletion: typeof internal.CachedCompletion = internal.CachedCompletion

/**
 * An instance of the {@link CachedCompletion} schema class, named for use in types.
 *
 * @since 0.1.0
 * @category models
 */
export type CachedCompletion = internal.CachedCompletion

/**
 * The chunks of a stored stream, in the order they came.
 *
 * @since 0.1.0
 * @category models
 */
export const CachedStream: typeof internal.CachedStream = internal.CachedStream

/**
 * An instance of the {@link CachedStream} schema class, named for use in types.
 *
 * @since 0.1.0
 * @category models
 */
export type CachedStream = internal.CachedStream

/**
 * What the cache holds for a key.
 *
 * @since 0.1.0
 * @category models
 */
export const Entry: Schema.Union<[typeof CachedCompletion, typeof CachedStream]> = internal.Entry

/**
 * @since 0.1.0
 * @category models
 */
export type Entry = typeof Entry.Type

/**
 * Which requests the client caches without being asked per call:
 * `"deterministic"` (the default) caches only requests with `temperature: 0` or
 * a `seed`, whose answer does not change from call to call; `"all"` caches every
 * request. A call's own `cache` option overrides this.
 *
 * @since 0.1.0
 * @category models
 */
export type Policy = "deterministic" | "all"

/**
 * What one call asks of the cache, as `cache` in the client's call options:
 *
 * - `"no-cache"`: do not answer from the cache, but store the fresh answer;
 * - `"no-store"`: leave the cache alone, neither reading nor writing;
 * - `{ ttl }`: cache this call (whatever the policy) for `ttl`.
 *
 * @since 0.1.0
 * @category models
 */
export type Directive = "no-cache" | "no-store" | { readonly ttl: Duration.DurationInput }

/**
 * How a cache is set up.
 *
 * - `capacity`: entries kept in memory, the least recently used going first.
 *   Default 1000.
 * - `ttl`: how long an entry is served. Default 1 hour.
 * - `policy`: see {@link Policy}. Default `"deterministic"`.
 *
 * Invalid values stop the program when the cache is made, with a message naming
 * the option.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  readonly capacity?: number | undefined
  readonly ttl?: Duration.DurationInput | undefined
  readonly policy?: Policy | undefined
}

/**
 * What identifies a response: the request as it is sent, and where it is sent.
 *
 * @since 0.1.0
 * @category models
 */
export interface KeyInput {
  readonly baseUrl: string
  readonly project: string | undefined
  readonly request: unknown
}

/**
 * The response cache service.
 *
 * @example
 * ```ts
 * import { InferenceClient, ResponseCache } from "@effect-inference/client"
 * import { FetchHttpClient } from "@effect/platform"
 * import { Layer, Redacted } from "effect"
 *
 * const ClientLive = InferenceClient.layer({ apiKey: Redacted.make("my-key") }).pipe(
 *   Layer.provide(ResponseCache.layerMemory({ capacity: 500, ttl: "10 minutes" })),
 *   Layer.provide(FetchHttpClient.layer)
 * )
 * ```
 *
 * @since 0.1.0
 * @category tags
 */
export class ResponseCache extends Context.Tag("@effect-inference/client/ResponseCache")<
  ResponseCache,
  ResponseCache.Service
>() {}

/**
 * @since 0.1.0
 */
export declare namespace ResponseCache {
  /**
   * What a cache can do. The client uses `getOrCompute` and `set`; the rest is
   * for applications that manage the cache themselves.
   *
   * @since 0.1.0
   * @category models
   */
  export interface Service {
    /** The default time to live. */
    readonly ttl: Duration.Duration
    readonly policy: Policy
    /**
     * The entry for `key` if there is a fresh one (a hit); otherwise runs
     * `compute`, stores its success for `ttl` and returns it (a miss). Calls for
     * the same key while `compute` runs wait for it and share its result, its
     * failure included, which is not stored.
     */
    readonly getOrCompute: (
      key: string,
      compute: Effect.Effect<Entry, InferenceError>,
      ttl: Duration.Duration
    ) => Effect.Effect<{ readonly entry: Entry; readonly hit: boolean }, InferenceError>
    /** The fresh entry for `key`, if any, without computing anything. */
    readonly get: (key: string) => Effect.Effect<Option.Option<Entry>>
    /** Stores `entry` under `key` for `ttl`, replacing what was there. */
    readonly set: (key: string, entry: Entry, ttl: Duration.Duration) => Effect.Effect<void>
    readonly invalidate: (key: string) => Effect.Effect<void>
    readonly invalidateAll: Effect.Effect<void>
  }
}

/**
 * The cache key of a request: the SHA-256, in hex, of the request's canonical
 * JSON (object keys sorted at every depth) with the base URL and the project.
 *
 * @since 0.1.0
 * @category keys
 */
export const key: (input: KeyInput) => string = internal.key

/**
 * A cache in memory, built on Effect's `Cache`: bounded by `capacity`, entries
 * expire after their time to live, concurrent lookups of one key merge.
 *
 * @example
 * ```ts
 * import { InferenceClient, ResponseCache } from "@effect-inference/client"
 * import { Effect, Layer } from "effect"
 *
 * const program = Effect.gen(function*() {
 *   // A cache the program keeps a hold of, to empty it when its prompts change.
 *   const cache = yield* ResponseCache.makeMemory({ capacity: 100, policy: "all" })
 *   const InferenceLive = InferenceClient.layerConfig().pipe(
 *     Layer.provide(Layer.succeed(ResponseCache.ResponseCache, cache))
 *   )
 *   yield* cache.invalidateAll
 *   return InferenceLive
 * })
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeMemory: (options?: Options) => Effect.Effect<ResponseCache.Service> = internal.makeMemory

/**
 * A cache kept in a `KeyValueStore`, so it survives restarts, with a bounded
 * in-memory tier in front (which also merges concurrent lookups). An entry that
 * cannot be read back (written by another version, or damaged) counts as a
 * miss; a store that fails to read or write is logged and skipped, never
 * failing the call.
 *
 * @example
 * ```ts
 * import { ResponseCache } from "@effect-inference/client"
 * import { KeyValueStore } from "@effect/platform"
 * import { Effect } from "effect"
 *
 * // Over any KeyValueStore: here one in memory, as in a test.
 * const cache = ResponseCache.makePersistent({ ttl: "1 day" }).pipe(Effect.provide(KeyValueStore.layerMemory))
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const makePersistent: (
  options?: Options
) => Effect.Effect<ResponseCache.Service, never, KeyValueStore.KeyValueStore> = internal.makePersistent

/**
 * An in-memory cache as a `Layer`.
 *
 * @example
 * ```ts
 * import { InferenceClient, ResponseCache } from "@effect-inference/client"
 * import { Effect, Layer } from "effect"
 *
 * const InferenceLive = InferenceClient.layerConfig().pipe(Layer.provide(ResponseCache.layerMemory()))
 *
 * // temperature 0 is cached under the default policy; this call also keeps it for a day.
 * const program = Effect.flatMap(InferenceClient.InferenceClient, (client) =>
 *   client.chatCompletion(
 *     { model: "meta-llama/Llama-3.1-8B-Instruct", messages: [{ role: "user", content: "2 + 2?" }], temperature: 0 },
 *     { cache: { ttl: "1 day" } }
 *   )).pipe(Effect.provide(InferenceLive))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerMemory = (options?: Options): Layer.Layer<ResponseCache> =>
  Layer.effect(ResponseCache, makeMemory(options))

/**
 * A persistent cache over the `KeyValueStore` in context, as a `Layer`.
 *
 * @example
 * ```ts
 * import { ResponseCache } from "@effect-inference/client"
 * import { KeyValueStore } from "@effect/platform"
 * import { Layer } from "effect"
 *
 * // Any KeyValueStore: a Redis or SQL one of your own, or this one in memory for tests.
 * const CacheLive = ResponseCache.layerPersistent({ ttl: "1 day" }).pipe(Layer.provide(KeyValueStore.layerMemory))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerPersistent = (options?: Options): Layer.Layer<ResponseCache, never, KeyValueStore.KeyValueStore> =>
  Layer.effect(ResponseCache, makePersistent(options))

/**
 * A persistent cache in a directory, one file per entry (`KeyValueStore`'s file
 * system store), which is made if missing; the layer fails with the
 * `PlatformError` if it cannot be. Give the cache a directory of its own:
 * `invalidateAll` removes the directory. On Node, provide `NodeContext.layer`
 * from `@effect/platform-node` for the file system.
 *
 * @example
 * ```ts
 * import { InferenceClient, ResponseCache } from "@effect-inference/client"
 * import { NodeContext } from "@effect/platform-node"
 * import { Layer } from "effect"
 *
 * // Answers kept across restarts, one file each, in a directory of the cache's own.
 * const InferenceLive = InferenceClient.layerConfig().pipe(
 *   Layer.provide(ResponseCache.layerFileSystem(".cache/inference", { ttl: "7 days" })),
 *   Layer.provide(NodeContext.layer)
 * )
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerFileSystem = (
  directory: string,
  options?: Options
): Layer.Layer<ResponseCache, PlatformError.PlatformError, FileSystem.FileSystem | Path.Path> =>
  Layer.provide(layerPersistent(options), KeyValueStore.layerFileSystem(directory))

/**
 * Lookups of the cache by the client: counter `inference_cache_lookups_total`,
 * tagged `result` (`hit` or `miss`).
 *
 * @since 0.1.0
 * @category metrics
 */
export const metrics = internal.metrics
