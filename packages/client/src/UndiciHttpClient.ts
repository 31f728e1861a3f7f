/**
 * An `HttpClient` over undici's `Dispatcher.request`, made for Node servers that
 * call W&B Inference often: keep-alive connections, and the least work per
 * request.
 *
 * @effect/platform's `NodeHttpClient.layerUndici` goes through
 * `HttpClient.make`, which wraps every response in a second object, registers it
 * for garbage-collection cleanup, rebuilds the `Headers` on every read of
 * `response.headers` and reads a body by running a cached effect in a fiber of
 * its own. Over loopback that costs about as much CPU as the request itself
 * (`docs/benchmarks.md`, rows `platform` and `client`). This client does the same
 * job directly: one object per response, headers converted once, bodies read
 * with one callback, an abort on interruption.
 *
 * An interrupted request, a body read that is interrupted and a stream left
 * early abort the request, and complete only once undici has failed it and
 * closed its connection (a request still waiting for a connection was never sent,
 * and is let go of at once): the client's `maxConcurrency` slot is not given back
 * while the request is alive. A body is read with a byte count, so the client's
 * bounds (`maxResponseBytes`, ...) stop the read, and the connection, at the bound.
 * A streamed answer goes to the client's stream as undici reads it from the
 * socket, with no Node stream or Effect `Stream` in between; a stream read to
 * its end leaves its connection in the pool for the next request.
 *
 * It has no HTTP spans: install `NodeHttpClient.layerUndici` (or any other
 * `HttpClient`) where a tracer should see each request.
 *
 * It is for Node only, so it is not part of the package's index, which stays
 * usable wherever `fetch` is: import it from
 * `@effect-inference/client/UndiciHttpClient`. It takes undici and its stream
 * conversions from `@effect/platform-node` (an optional peer dependency).
 *
 * @since 0.1.0
 */
import type * as undici from "@effect/platform-node/Undici"
import type * as HttpClient from "@effect/platform/HttpClient"
import type * as Effect from "effect/Effect"
import type * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import * as internal from "./internal/undiciHttpClient.js"

/**
 * An `HttpClient` that sends every request through `dispatcher`.
 *
 * @example
 * ```ts
 * import * as UndiciHttpClient from "@effect-inference/client/UndiciHttpClient"
 * import { HttpClient } from "@effect/platform"
 * import { Undici } from "@effect/platform-node"
 * import { Layer } from "effect"
 *
 * // Through a dispatcher the application already has: a proxy here, a MockAgent in tests.
 * const HttpLive = Layer.succeed(
 *   HttpClient.HttpClient,
 *   UndiciHttpClient.make(new Undici.ProxyAgent("http://proxy.internal:3128"))
 * )
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: (dispatcher: undici.Dispatcher) => HttpClient.HttpClient = internal.make

/**
 * An `HttpClient` over an undici `Agent` of its own (made with `options`), closed
 * when the scope closes.
 *
 * @example
 * ```ts
 * import { InferenceClient } from "@effect-inference/client"
 * import * as UndiciHttpClient from "@effect-inference/client/UndiciHttpClient"
 * import { HttpClient } from "@effect/platform"
 * import { Effect, Redacted } from "effect"
 *
 * // An agent for one job, its connections closed when the job ends.
 * const program = Effect.gen(function*() {
 *   const http = yield* UndiciHttpClient.makeScoped({ connections: 8 })
 *   const client = yield* InferenceClient.make({ apiKey: Redacted.make("my-key") }).pipe(
 *     Effect.provideService(HttpClient.HttpClient, http)
 *   )
 *   return yield* client.listModels()
 * }).pipe(Effect.scoped)
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeScoped: (
  options?: undici.Agent.Options
) => Effect.Effect<HttpClient.HttpClient, never, Scope.Scope> = internal.makeScoped

/**
 * The `HttpClient` over an undici `Agent` of its own, with undici's defaults
 * (keep-alive, connections per origin unbounded), closed with the layer.
 *
 * @example
 * ```ts
 * import { InferenceClient } from "@effect-inference/client"
 * import * as UndiciHttpClient from "@effect-inference/client/UndiciHttpClient"
 * import { Layer } from "effect"
 *
 * const InferenceLive = InferenceClient.layerConfig().pipe(Layer.provide(UndiciHttpClient.layer))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer: Layer.Layer<HttpClient.HttpClient> = internal.layer

/**
 * The `HttpClient` over an undici `Agent` made with `options` (connection
 * limits, keep-alive timeouts, TLS), closed with the layer.
 *
 * @example
 * ```ts
 * import { InferenceClient } from "@effect-inference/client"
 * import * as UndiciHttpClient from "@effect-inference/client/UndiciHttpClient"
 * import { Layer } from "effect"
 *
 * const InferenceLive = InferenceClient.layerConfig().pipe(
 *   Layer.provide(UndiciHttpClient.layerWith({ connections: 32, keepAliveTimeout: 30_000 }))
 * )
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerWith: (options: undici.Agent.Options) => Layer.Layer<HttpClient.HttpClient> = internal.layerWith
