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
 *
 * A streamed body is read here too (`reader`): by whoever pulls it, and stopped
 * from anywhere, which is what the idle timeout of a stream needs.
 */
import * as HttpClientError from "@effect/platform/HttpClientError"
import type * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import type * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FiberId from "effect/FiberId"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Scope from "effect/Scope"
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
 * The key of `discardResponse` done now: `() => Effect<void>`, which aborts the
 * request at once unless the transport is done with it, and returns the wait
 * until the transport has let go of it (`Effect.void` when there is none).
 *
 * @internal
 */
export const discardNow: unique symbol = Symbol.for("@effect-inference/client/BoundedBody/discardNow")

/**
 * The key of a transport's own reader of a streamed body: `() => Reader`,
 * which takes the body over (nothing else may read it after).
 *
 * @internal
 */
export const bodyReader: unique symbol = Symbol.for("@effect-inference/client/BoundedBody/bodyReader")

/**
 * A body read as it arrives, by the fiber that pulls it, and stopped from
 * anywhere.
 *
 * @internal
 */
export interface Reader {
  /**
   * The bytes that came since the last read, all of them (waiting for some if
   * none did); `None` at the end of the body. After the end or a failure,
   * every read gives it again.
   */
  readonly read: Effect.Effect<Iterable<Uint8Array>, Option.Option<HttpClientError.ResponseError>>
  /**
   * Stops reading, from any fiber or a plain callback: the read in progress,
   * if any, and every later one fail, and the request is aborted (its scope,
   * closing, still waits until the transport has let go of it).
   */
  readonly abort: () => void
}

/**
 * A response whose transport reads a bounded body, reads a streamed one and
 * lets go of a request itself (`UndiciHttpClient`'s).
 *
 * @internal
 */
export interface Native {
  readonly [readBounded]: (max: number) => Effect.Effect<Read, HttpClientError.ResponseError>
  readonly [discardResponse]: Effect.Effect<void>
  readonly [discardNow]: () => Effect.Effect<void>
  readonly [bodyReader]: () => Reader
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
 * `discard`, begun now: over `UndiciHttpClient` the request is aborted at once
 * (unless undici is done with it), and what is returned waits until undici has
 * let go of it; `Effect.void` when there is nothing to wait for. For a caller
 * already in a step of its own (a finalizer), which `discard` would cost a
 * step more.
 *
 * @internal
 */
export const unsafeDiscard = (response: HttpClientResponse.HttpClientResponse): Effect.Effect<void> =>
  isNative(response) ? response[discardNow]() : Effect.void

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
 * {@link discard}) when `scope` closes, however it ends, so that the scope
 * does not finish before the request is gone.
 *
 * The finalizer goes to the scope itself: `Effect.addFinalizer` would run it
 * with the fiber refs of the fiber that added it, diffing and patching them
 * on the way in and out, and letting go of a response depends on none of them.
 *
 * @internal
 */
export const scoped = <E>(
  execute: Effect.Effect<HttpClientResponse.HttpClientResponse, E>,
  scope: Scope.Scope
): Effect.Effect<HttpClientResponse.HttpClientResponse, E> =>
  Effect.uninterruptibleMask((restore) =>
    Effect.tap(restore(execute), (response) => Scope.addFinalizer(scope, discard(response)))
  )

/** The failure of a read stopped by `Reader.abort`. */
const aborted = (response: HttpClientResponse.HttpClientResponse): HttpClientError.ResponseError =>
  new HttpClientError.ResponseError({
    request: response.request,
    response,
    reason: "Decode",
    cause: new Error("the read was stopped")
  })

/**
 * A reader of `response.stream`, for any transport. An Effect stream can only
 * be stopped by interrupting the fiber that pulls it, so one fiber reads ahead
 * by a batch into a queue that the reader takes from, and `abort` interrupts
 * that fiber; leaving the scope closes the stream (every transport of
 * @effect/platform aborts a body whose stream is left early).
 */
const streamReader = (response: HttpClientResponse.HttpClientResponse): Effect.Effect<Reader, never, Scope.Scope> =>
  Effect.gen(function*() {
    type Item = Exit.Exit<Chunk.Chunk<Uint8Array>, Option.Option<HttpClientError.ResponseError>>
    const pull = yield* Stream.toPull(response.stream)
    const queue = yield* Queue.bounded<Item>(1)
    const loop: Effect.Effect<void> = Effect.flatMap(
      Effect.exit(pull),
      (exit) => Effect.zipRight(Queue.offer(queue, exit), Exit.isSuccess(exit) ? loop : Effect.void)
    )
    const fiber = yield* Effect.forkScoped(loop)
    /** The end or the failure, once read (or the abort): what every later read gives. */
    let final: Item | undefined
    const take = Effect.flatten(Effect.tap(Queue.take(queue), (item) => {
      if (Exit.isFailure(item)) final = item
    }))
    return {
      read: Effect.suspend(() => final ?? take),
      abort: () => {
        if (final !== undefined) return
        final = Exit.fail(Option.some(aborted(response)))
        fiber.unsafeInterruptAsFork(FiberId.none)
        // A read waiting in `take` has an empty queue before it, so the offer always lands.
        Queue.unsafeOffer(queue, final)
      }
    }
  })

/**
 * Reads the body of `response` as it arrives (the transport's own reader if it
 * has one), until `scope` closes.
 *
 * @internal
 */
export const reader = (
  response: HttpClientResponse.HttpClientResponse,
  scope: Scope.Scope
): Effect.Effect<Reader> =>
  isNative(response) ? Effect.sync(() => response[bodyReader]()) : Scope.extend(streamReader(response), scope)

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
