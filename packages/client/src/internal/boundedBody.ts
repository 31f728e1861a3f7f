/**
 * Where a response body is read within a bound, and where a response the client
 * stops using is let go of.
 *
 * A server, or anything in front of it, can send a body of any size: an endless
 * 200, an error page of 400 MB. Every body the client reads comes through here,
 * counted as it arrives, so that reading stops at the bound and the rest is never
 * read: the request is aborted (its connection closed), not drained.
 *
 * Any `HttpClient` works: a body is read from `response.stream`, which every
 * transport of @effect/platform gives, with a byte count. A transport can offer
 * a cheaper way of its own (`UndiciHttpClient` does) through the symbols below.
 */
import * as HttpClientError from "@effect/platform/HttpClientError"
import type * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"

/**
 * A body as far as it was read.
 *
 * @internal
 */
export interface Read {
  /** The body's text; if it was longer than the bound, the text of its first bytes up to the bound. */
  readonly text: string
  /** Whether the body went on past the bound: the rest of it was not read, and the request was aborted. */
  readonly truncated: boolean
}

/**
 * The key of a transport's own bounded read: `(max) => Effect<Read>`, reading at
 * most `max` bytes (and aborting the request if there are more).
 *
 * @internal
 */
export const readBounded: unique symbol = Symbol.for("@effect-inference/client/BoundedBody/readBounded")

/**
 * The key of a transport's own way to let go of a response: an `Effect` that
 * aborts the request unless the transport is done with it already, and waits
 * until the transport has really let go of it (its connection closed or back in
 * the pool).
 *
 * @internal
 */
export const discardResponse: unique symbol = Symbol.for("@effect-inference/client/BoundedBody/discard")

/**
 * A response whose transport reads a bounded body and lets go of a request
 * itself (`UndiciHttpClient`'s).
 *
 * @internal
 */
export interface Native {
  readonly [readBounded]: (max: number) => Effect.Effect<Read, HttpClientError.ResponseError>
  readonly [discardResponse]: Effect.Effect<void>
}

const isNative = (
  response: HttpClientResponse.HttpClientResponse
): response is HttpClientResponse.HttpClientResponse & Native => readBounded in response

/**
 * The response's `Content-Length`, if it states one. An HTTP/1.1 transport reads
 * exactly so many bytes of a body that has one, whatever the server sends after.
 *
 * @internal
 */
export const contentLength = (response: HttpClientResponse.HttpClientResponse): number | undefined => {
  const header = response.headers["content-length"]
  if (header === undefined) return undefined
  const length = Number(header)
  return Number.isSafeInteger(length) && length >= 0 ? length : undefined
}

const decoder = new TextDecoder()

const decode = (parts: ReadonlyArray<Uint8Array>, size: number): string => {
  if (parts.length === 1) return decoder.decode(parts[0]!.subarray(0, size))
  const all = new Uint8Array(size)
  let offset = 0
  for (const part of parts) {
    if (offset >= size) break
    const take = Math.min(part.length, size - offset)
    all.set(take === part.length ? part : part.subarray(0, take), offset)
    offset += take
  }
  return decoder.decode(all)
}

/**
 * Reads `response.stream` until it ends or more than `max` bytes have come;
 * stopping closes the stream, which aborts the request (every transport of
 * @effect/platform aborts a body whose stream is left early). A loop over the
 * stream's pull costs half of what `Stream.runFoldWhile` does per body.
 */
const readStream = (
  response: HttpClientResponse.HttpClientResponse,
  max: number
): Effect.Effect<Read, HttpClientError.ResponseError> =>
  Effect.scoped(Effect.flatMap(Stream.toPull(response.stream), (pull) => {
    const parts: Array<Uint8Array> = []
    let size = 0
    const loop: Effect.Effect<Read, HttpClientError.ResponseError> = Effect.matchEffect(pull, {
      onSuccess: (reads) => {
        for (const bytes of reads) {
          parts.push(bytes)
          size += bytes.length
        }
        return size > max ? Effect.succeed({ text: decode(parts, max), truncated: true }) : loop
      },
      onFailure: Option.match({
        onNone: () => Effect.succeed({ text: decode(parts, size), truncated: false }),
        onSome: Effect.fail
      })
    })
    return loop
  })).pipe(
    // A body that cannot be opened (read already, say) makes some transports' streams die as they start, where
    // `response.text` fails: it is a body that cannot be read, as it would be there.
    Effect.catchAllDefect((cause) =>
      Effect.fail(new HttpClientError.ResponseError({ request: response.request, response, reason: "Decode", cause }))
    )
  )

/**
 * The web `ReadableStream` behind a response of @effect/platform's fetch
 * transport (`FetchHttpClient`, `HttpClientResponse.fromWeb`), which keeps the
 * web `Response` it wraps as `source`: not part of its interface, so this is
 * only a faster way in, checked with `instanceof`, and any other response is
 * read through `response.stream` (or `response.text`). Reading the web stream
 * with its own reader costs less than either: about 20 µs a body where Effect's
 * `Stream` over it costs 140, and less than `response.text` too.
 */
const webBody = (response: HttpClientResponse.HttpClientResponse): ReadableStream<Uint8Array> | undefined => {
  const source = (response as { readonly source?: unknown }).source
  return typeof Response !== "undefined" && source instanceof Response && source.body !== null && !source.bodyUsed
    ? source.body
    : undefined
}

/** Reads a web stream until it ends or more than `max` bytes have come; stopping cancels it (aborting the request). */
const readWeb = (
  response: HttpClientResponse.HttpClientResponse,
  body: ReadableStream<Uint8Array>,
  max: number
): Effect.Effect<Read, HttpClientError.ResponseError> =>
  Effect.tryPromise({
    try: async (signal) => {
      const reader = body.getReader()
      const cancel = () => void reader.cancel().catch(() => undefined)
      signal.addEventListener("abort", cancel, { once: true })
      try {
        const parts: Array<Uint8Array> = []
        let size = 0
        while (true) {
          const { done, value } = await reader.read()
          if (done) return { text: decode(parts, size), truncated: false }
          parts.push(value)
          size += value.length
          if (size > max) {
            cancel()
            return { text: decode(parts, max), truncated: true }
          }
        }
      } finally {
        signal.removeEventListener("abort", cancel)
      }
    },
    catch: (cause) =>
      new HttpClientError.ResponseError({ request: response.request, response, reason: "Decode", cause })
  })

/**
 * Reads at most `max` bytes of the body of `response`: its text, and whether it
 * went on past them (then the rest was not read and the request was aborted).
 *
 * @internal
 */
export const read = (
  response: HttpClientResponse.HttpClientResponse,
  max: number
): Effect.Effect<Read, HttpClientError.ResponseError> => {
  if (isNative(response)) return response[readBounded](max)
  const web = webBody(response)
  if (web !== undefined) return readWeb(response, web, max)
  const length = contentLength(response)
  // A body of a stated length within the bound is read in one go, which costs less than counting reads: the
  // transport stops at its Content-Length. Not an encoded one: `fetch` decompresses, and the length is the
  // compressed one.
  const encoding = response.headers["content-encoding"]
  if (length !== undefined && length <= max && (encoding === undefined || encoding === "identity")) {
    return Effect.map(response.text, (text) => ({ text, truncated: false }))
  }
  return readStream(response, max)
}

/**
 * Lets go of a response the client will not read (any more): over
 * `UndiciHttpClient`, aborts its request unless undici is done with it and waits
 * until undici has closed it. Other transports abort a response that is never
 * read once it is garbage collected (as @effect/platform's own do), and one whose
 * stream is left early at once.
 *
 * @internal
 */
export const discard = (response: HttpClientResponse.HttpClientResponse): Effect.Effect<void> =>
  isNative(response) ? response[discardResponse] : Effect.void

/**
 * Sends a request with `execute` and runs `use` on its response. If the fiber is
 * interrupted after the response arrives, before or while `use` runs, the
 * response is discarded (see {@link discard}) before the interruption completes:
 * whatever holds a slot around this (the concurrency limit, a rate-limit permit)
 * is not given back while the request is still alive.
 *
 * @internal
 */
export const withResponse = <E, A, E2>(
  execute: Effect.Effect<HttpClientResponse.HttpClientResponse, E>,
  use: (response: HttpClientResponse.HttpClientResponse) => Effect.Effect<A, E2>
): Effect.Effect<A, E | E2> =>
  Effect.uninterruptibleMask((restore) =>
    Effect.flatMap(restore(execute), (response) => Effect.onInterrupt(restore(use(response)), () => discard(response)))
  )

/**
 * Sends a request with `execute`; its response is discarded (see
 * {@link discard}) when the scope closes, however the scope ends, so that the
 * scope does not finish before the request is gone.
 *
 * @internal
 */
export const scoped = <E>(
  execute: Effect.Effect<HttpClientResponse.HttpClientResponse, E>
): Effect.Effect<HttpClientResponse.HttpClientResponse, E, Scope.Scope> =>
  Effect.uninterruptibleMask((restore) =>
    Effect.tap(restore(execute), (response) => Effect.addFinalizer(() => discard(response)))
  )

/** @internal */
export const DEFAULT_MAX_RESPONSE_BYTES = 32 * 1024 * 1024

/** @internal */
export const DEFAULT_MAX_ERROR_BODY_BYTES = 64 * 1024

/** @internal */
export const DEFAULT_MAX_BYTES_BEFORE_FIRST_OUTPUT = 4 * 1024 * 1024

/**
 * The bounds of the bodies of a call's responses.
 *
 * @internal
 */
export interface Limits {
  /** Of a successful (2xx) body. */
  readonly maxResponseBytes: number
  /** Of an error body, read for its message. */
  readonly maxErrorBodyBytes: number
}
