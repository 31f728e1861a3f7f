/**
 * Where a request is built: the transport shaped once (base URL, the bearer
 * token, the project header), the bodies of each kind of call, the check of a
 * call's request and options before anything is sent, and what spans and logs
 * may show of the headers (redaction, tracing on or off).
 */
import * as Headers from "@effect/platform/Headers"
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as FiberRef from "effect/FiberRef"
import * as Redacted from "effect/Redacted"
import type { ChatCompletionRequest, ChatCompletionRequestInput } from "../ChatCompletion.js"
import type * as InferenceClient from "../InferenceClient.js"
import * as InferenceError from "../InferenceError.js"
import type * as ResponseCache from "../ResponseCache.js"
import type { Resolved } from "./clientOptions.js"
import * as ResponseCacheInternal from "./responseCache.js"
import * as validate from "./validate.js"

/** Effect's own tracer, in place unless the application installs another. */
const builtInTracer = Effect.runSync(Effect.tracer)

/**
 * Whether spans are worth making: Effect's built-in tracer exports nothing, and a
 * span (the client's and @effect/platform's per request) costs more than the
 * rest of a call's bookkeeping, so without another tracer there are none.
 * Install one (@effect/opentelemetry's layer) before the client is built to get
 * them.
 *
 * @internal
 */
export const tracing: Effect.Effect<boolean> = Effect.map(Effect.tracer, (tracer) => tracer !== builtInTracer)

/**
 * The headers whose values a span may show. @effect/platform's `HttpClient` puts every request and response
 * header on its span (`http.request.header.<name>`, `http.response.header.<name>`) unless its name is
 * redacted, and a server can echo the key in any header it likes (`x-request-id: Bearer ...`, and
 * `content-type` too): so every other name is redacted, whatever it is called. `content-length` is safe
 * because the HTTP parser refuses a response whose length is not a number.
 */
const SPAN_HEADERS: ReadonlyArray<string> = ["content-length"]

/** Matches every header name not in `SPAN_HEADERS`. */
const UNLISTED_HEADER = new RegExp(`^(?!(?:${SPAN_HEADERS.join("|")})$)`, "i")

/**
 * Runs `effect` with the header names @effect/platform redacts extended: with a
 * tracer, to every header not on the allow-list (`SPAN_HEADERS`), the only
 * place response headers go; without one, to `Authorization`, where an
 * application has taken it out of the default list.
 */
const redactingHeaders = <A, E, R>(effect: Effect.Effect<A, E, R>, tracing: boolean): Effect.Effect<A, E, R> =>
  FiberRef.getWith(Headers.currentRedactedNames, (names) => {
    const name = tracing ? UNLISTED_HEADER : "authorization"
    return names.includes(name) ? effect : Effect.locally(effect, Headers.currentRedactedNames, [...names, name])
  })

/**
 * Runs a call's requests with the `Authorization` header (with a tracer, every
 * header not on an allow-list) redacted and, without a tracer that exports,
 * with tracing off: @effect/platform's `HttpClient` then makes no span and
 * sends no trace headers. One `FiberRef` change per call, not per attempt,
 * and none for tracing when the transport makes no spans (`UndiciHttpClient`,
 * unwrapped: `transportSpans` false): it is about ten runtime operations.
 *
 * @internal
 */
export const inCall = <A, E, R>(
  effect: Effect.Effect<A, E, R>,
  tracing: boolean,
  transportSpans: boolean
): Effect.Effect<A, E, R> =>
  redactingHeaders(
    tracing || !transportSpans ? effect : Effect.locally(effect, FiberRef.currentTracerEnabled, false),
    tracing
  )

/**
 * The `HttpClient` every request of a client goes through: the application's,
 * with the base URL and the same headers on every request (built once, not per
 * request), then the `transformClient` option. `accept` is each request's own
 * (JSON, or SSE for a stream: a server that honours `accept` would otherwise
 * answer a stream request with JSON).
 *
 * @internal
 */
export const transport = (resolved: Resolved, base: HttpClient.HttpClient): HttpClient.HttpClient => {
  const shaped = HttpClient.mapRequest(base, shape(resolved))
  return resolved.transformClient === undefined ? shaped : resolved.transformClient(shaped)
}

/**
 * What `transport` does to every request before the application's `HttpClient` sends it: the base URL and the
 * fixed headers. Also applied by a stream sent through `UndiciHttpClient` directly (see `Environment.direct`).
 *
 * @internal
 */
export const shape = (
  resolved: Resolved
): (request: HttpClientRequest.HttpClientRequest) => HttpClientRequest.HttpClientRequest => {
  const fixedHeaders: Record<string, string> = {
    authorization: `Bearer ${Redacted.value(resolved.apiKey)}`,
    ...(resolved.project === undefined ? {} : { "openai-project": resolved.project })
  }
  return (request) =>
    HttpClientRequest.setHeaders(HttpClientRequest.prependUrl(request, resolved.baseUrl), fixedHeaders)
}

// Requests of each kind, built once: a call adds only its body.
const completionPost = HttpClientRequest.post("/chat/completions").pipe(HttpClientRequest.acceptJson)
const streamPost = HttpClientRequest.post("/chat/completions").pipe(HttpClientRequest.accept("text/event-stream"))

/** @internal */
export const listModels = HttpClientRequest.get("/models").pipe(HttpClientRequest.acceptJson)

/**
 * The fields of a call's `extraBody`, checked, if it has any.
 *
 * @internal
 */
export type Extra = Readonly<Record<string, unknown>> | undefined

/**
 * The body of a plain request to `model`, with the call's `extraBody` fields.
 *
 * @internal
 */
export const completionBody = (request: ChatCompletionRequest, model: string, extra: Extra) => ({
  ...request,
  model,
  stream: false,
  ...extra
})

/**
 * The body of a streaming request to `model`: usage is asked for unless the caller said not to.
 *
 * @internal
 */
export const streamBody = (request: ChatCompletionRequest, model: string, extra: Extra) => ({
  ...request,
  model,
  stream: true,
  stream_options: { include_usage: true, ...request.stream_options },
  ...extra
})

/**
 * A chat completion request with `body` as JSON. The schema lets any value into
 * tool parameters and JSON schemas; one that JSON cannot hold (a BigInt, a
 * cycle) is the caller's mistake, reported before anything is sent.
 *
 * Encoded in the caller's step rather than through `HttpClientRequest.bodyJson`
 * (an `Effect.try` and a map): the same body and the same error, with no
 * runtime operation of its own.
 *
 * @internal
 */
export const jsonBodyEither = (
  body: { readonly stream: boolean }
): Either.Either<HttpClientRequest.HttpClientRequest, InferenceError.InvalidRequestError> => {
  try {
    return Either.right(HttpClientRequest.bodyUnsafeJson(body.stream ? streamPost : completionPost, body))
  } catch (error) {
    return Either.left(
      new InferenceError.InvalidRequestError({ path: "(request)", issue: `cannot be sent as JSON: ${String(error)}` })
    )
  }
}

/**
 * `jsonBodyEither` as an effect.
 *
 * @internal
 */
export const jsonBody = (
  body: { readonly stream: boolean }
): Effect.Effect<HttpClientRequest.HttpClientRequest, InferenceError.InvalidRequestError> =>
  Effect.suspend(() => {
    const encoded = jsonBodyEither(body)
    return Either.isRight(encoded) ? Effect.succeed(encoded.right) : Effect.fail(encoded.left)
  })

/**
 * A call checked: its request, its `extraBody`, and its use of the cache.
 *
 * @internal
 */
export interface Checked {
  readonly request: ChatCompletionRequest
  readonly extra: Extra
  readonly use: ResponseCacheInternal.CacheUse | undefined
}

/**
 * A call's request, its `extraBody` and its use of the cache, all checked
 * before anything is sent. It never throws: a getter, a `Proxy` or a `toJSON`
 * of the caller's that throws while they are read is an `InvalidRequestError`.
 *
 * @internal
 */
export const check = (
  input: ChatCompletionRequestInput,
  callOptions: InferenceClient.CallOptions | undefined,
  cache: ResponseCache.ResponseCache.Service | undefined
): Either.Either<Checked, InferenceError.InvalidRequestError> => {
  try {
    return Either.flatMap(validate.validateRequest(input), (request) =>
      Either.flatMap(
        callOptions?.extraBody === undefined ? Either.right(undefined) : validate.extraBody(callOptions.extraBody),
        (extra) =>
          Either.map(ResponseCacheInternal.use(cache, request, callOptions?.cache), (use) => ({ request, extra, use }))
      ))
  } catch (error) {
    return Either.left(validate.unreadable("(call options)", error))
  }
}
