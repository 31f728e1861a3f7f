/**
 * An `HttpClient` straight over undici: one object per response, headers
 * converted once, bodies read with one callback.
 *
 * An interrupted request is not given up on until undici has let go of it: the
 * interruption completes once undici has failed the request (closing its
 * connection), so that whatever holds a slot for the request (the client's
 * concurrency limit) does not give the slot back while the request is alive.
 */
import * as NodeStream from "@effect/platform-node/NodeStream"
import * as undici from "@effect/platform-node/Undici"
import * as Cookies from "@effect/platform/Cookies"
import * as Headers from "@effect/platform/Headers"
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientError from "@effect/platform/HttpClientError"
import type * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import * as IncomingMessage from "@effect/platform/HttpIncomingMessage"
import * as UrlParams from "@effect/platform/UrlParams"
import * as Effect from "effect/Effect"
import * as Inspectable from "effect/Inspectable"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as BoundedBody from "./boundedBody.js"

/**
 * A response whose body is never read keeps its connection busy; as
 * @effect/platform does, such a response is aborted once it is garbage
 * collected. Reading the body (any of the ways below) takes it off the list.
 */
const unread = new FinalizationRegistry<AbortController>((controller) => controller.abort())

type Body = Exclude<undici.Dispatcher.DispatchOptions["body"], undefined>

const requestBody = (request: HttpClientRequest.HttpClientRequest): Effect.Effect<Body> => {
  const body = request.body
  switch (body._tag) {
    case "Empty":
      return Effect.succeed(null)
    case "Uint8Array":
      return Effect.succeed(body.body)
    case "Raw":
      return Effect.succeed(body.body as Body)
    case "FormData":
      return Effect.succeed(body.formData as undici.FormData)
    case "Stream":
      return NodeStream.toReadable(body.stream)
  }
}

/**
 * One request as undici runs it, standing between `Dispatcher.request` and the
 * dispatcher to see what undici does with it: whether the request was put on a
 * connection, and when undici is done with it. `Dispatcher.prototype.request`
 * calls `this.dispatch` with its own handler; the exchange passes itself on as
 * the handler, and hands every event to that one.
 */
class Exchange extends undici.Dispatcher implements undici.Dispatcher.DispatchHandler {
  private handler: undici.Dispatcher.DispatchHandler | undefined
  /** undici has put the request on a connection: until then, not a byte of it was sent. */
  private connected = false
  /** undici is done with the request: answered in full (the connection back in the pool), or failed (closed). */
  private settled = false
  private waiting: Array<() => void> | undefined

  constructor(readonly dispatcher: undici.Dispatcher) {
    super()
  }

  /**
   * Waits until undici has let go of the request. A request that was never put
   * on a connection is let go of at once: undici drops it, aborted, before it
   * writes it, and waiting would mean waiting for a free connection.
   */
  get gone(): Effect.Effect<void> {
    return this.settled || !this.connected ? Effect.void : Effect.async<void>((resume) => {
      if (this.settled) return resume(Effect.void)
      ;(this.waiting ??= []).push(() => resume(Effect.void))
    })
  }

  override dispatch(options: undici.Dispatcher.DispatchOptions, handler: undici.Dispatcher.DispatchHandler): boolean {
    this.handler = handler
    return this.dispatcher.dispatch(options, this)
  }

  private settle(): void {
    this.settled = true
    const waiting = this.waiting
    if (waiting === undefined) return
    this.waiting = undefined
    for (const resume of waiting) resume()
  }

  // The handler methods are undici's own (older) handler interface, the one `Dispatcher.request`'s handler has.
  onConnect(...args: [abort: (error?: Error) => void, ...context: Array<unknown>]): void {
    this.connected = true
    // undici passes the request's context after `abort`: handed on as it came.
    Reflect.apply(this.handler!.onConnect!, this.handler, args)
  }

  onHeaders(statusCode: number, headers: Array<Buffer>, resume: () => void, statusText: string): boolean {
    return this.handler!.onHeaders!(statusCode, headers, resume, statusText)
  }

  onData(chunk: Buffer): boolean {
    return this.handler!.onData!(chunk)
  }

  onComplete(trailers: Array<string> | null): void {
    this.settle()
    this.handler!.onComplete!(trailers)
  }

  onError(error: Error): void {
    this.settle()
    this.handler!.onError!(error)
  }
}

class UndiciResponse extends Inspectable.Class implements HttpClientResponse.HttpClientResponse, BoundedBody.Native {
  readonly [IncomingMessage.TypeId]: IncomingMessage.TypeId = IncomingMessage.TypeId
  readonly [HttpClientResponse.TypeId]: HttpClientResponse.TypeId = HttpClientResponse.TypeId

  constructor(
    readonly request: HttpClientRequest.HttpClientRequest,
    readonly source: undici.Dispatcher.ResponseData,
    readonly controller: AbortController,
    readonly exchange: Exchange
  ) {
    super()
    // A body that fails while nobody reads it must not be an unhandled error.
    source.body.on("error", ignore)
    unread.register(this, controller, this)
  }

  get status(): number {
    return this.source.statusCode
  }

  private cachedHeaders: Headers.Headers | undefined
  get headers(): Headers.Headers {
    return this.cachedHeaders ??= Headers.fromInput(this.source.headers as Headers.Input)
  }

  private cachedCookies: Cookies.Cookies | undefined
  get cookies(): Cookies.Cookies {
    if (this.cachedCookies !== undefined) return this.cachedCookies
    const header = this.source.headers["set-cookie"]
    return this.cachedCookies = header === undefined
      ? Cookies.empty
      : Cookies.fromSetCookie(Array.isArray(header) ? header : [header])
  }

  get remoteAddress(): Option.Option<string> {
    return Option.none()
  }

  private decodeError(cause: unknown): HttpClientError.ResponseError {
    return new HttpClientError.ResponseError({ request: this.request, response: this, reason: "Decode", cause })
  }

  /** Aborts the request unless undici is done with it, and waits until undici has let go of it. */
  private get abort(): Effect.Effect<void> {
    return Effect.suspend(() => {
      unread.unregister(this)
      this.controller.abort()
      return this.exchange.gone
    })
  }

  get [BoundedBody.discardResponse](): Effect.Effect<void> {
    return this.abort
  }

  /** Reads the whole body once; interrupting the read aborts the request, and completes once undici let go of it. */
  private read<A>(consume: () => Promise<A>): Effect.Effect<A, HttpClientError.ResponseError> {
    let promise: Promise<A> | undefined
    return Effect.async<A, HttpClientError.ResponseError>((resume) => {
      unread.unregister(this)
      promise ??= consume()
      promise.then(
        (value) => resume(Effect.succeed(value)),
        (cause) => resume(Effect.fail(this.decodeError(cause)))
      )
      return this.abort
    })
  }

  /**
   * Reads the body until it ends or more than `max` bytes have come; then
   * destroys it, which aborts the request: the rest is never read.
   */
  [BoundedBody.readBounded](max: number): Effect.Effect<BoundedBody.Read, HttpClientError.ResponseError> {
    return Effect.async<BoundedBody.Read, HttpClientError.ResponseError>((resume) => {
      unread.unregister(this)
      const body = this.source.body
      if (body.destroyed || body.readableEnded) {
        resume(Effect.fail(this.decodeError(body.errored ?? new Error("the body was read or closed already"))))
        return
      }
      const parts: Array<Buffer> = []
      let size = 0
      const onData = (chunk: Buffer) => {
        parts.push(chunk)
        size += chunk.length
        if (size <= max) return
        stop()
        body.destroy()
        resume(Effect.as(this.exchange.gone, { text: decode(parts, max), truncated: true }))
      }
      const onEnd = () => {
        stop()
        resume(Effect.succeed({ text: decode(parts, size), truncated: false }))
      }
      const onError = (cause: unknown) => {
        stop()
        resume(Effect.zipRight(this.exchange.gone, Effect.fail(this.decodeError(cause))))
      }
      const stop = () => {
        body.off("data", onData)
        body.off("end", onEnd)
        body.off("error", onError)
      }
      body.on("data", onData)
      body.on("end", onEnd)
      body.on("error", onError)
      return Effect.suspend(() => {
        stop()
        return this.abort
      })
    })
  }

  private textBody: Effect.Effect<string, HttpClientError.ResponseError> | undefined
  get text(): Effect.Effect<string, HttpClientError.ResponseError> {
    return this.textBody ??= this.read(() => this.source.body.text())
  }

  get json(): Effect.Effect<unknown, HttpClientError.ResponseError> {
    return Effect.flatMap(this.text, (text) =>
      Effect.try({
        try: () => text === "" ? null : JSON.parse(text) as unknown,
        catch: (cause) => this.decodeError(cause)
      }))
  }

  get urlParamsBody(): Effect.Effect<UrlParams.UrlParams, HttpClientError.ResponseError> {
    return Effect.flatMap(this.text, (text) =>
      Effect.try({
        try: () => UrlParams.fromInput(new URLSearchParams(text)),
        catch: (cause) => this.decodeError(cause)
      }))
  }

  private arrayBufferBody: Effect.Effect<ArrayBuffer, HttpClientError.ResponseError> | undefined
  get arrayBuffer(): Effect.Effect<ArrayBuffer, HttpClientError.ResponseError> {
    return this.arrayBufferBody ??= this.read(() => this.source.body.arrayBuffer())
  }

  private formDataBody: Effect.Effect<FormData, HttpClientError.ResponseError> | undefined
  get formData(): Effect.Effect<FormData, HttpClientError.ResponseError> {
    // undici's request API does not parse form data; the WHATWG Response does, from the same bytes and type.
    return this.formDataBody ??= this.read(async () =>
      new Response(await this.source.body.arrayBuffer(), { headers: this.headers }).formData()
    )
  }

  get stream(): Stream.Stream<Uint8Array, HttpClientError.ResponseError> {
    // Each pull takes everything buffered, so a burst of network reads is one chunk; leaving early destroys the body
    // (aborting the request), and the stream ends once undici has let go of the request.
    return Stream.ensuring(
      NodeStream.fromReadable(() => {
        unread.unregister(this)
        return this.source.body
      }, (cause) => this.decodeError(cause)),
      this.abort
    )
  }

  toJSON(): unknown {
    return IncomingMessage.inspect(this, {
      _id: "@effect/platform/HttpClientResponse",
      request: this.request.toJSON(),
      status: this.status
    })
  }
}

const ignore = () => {}

/** The text of the first `size` bytes of `parts`. */
const decode = (parts: ReadonlyArray<Buffer>, size: number): string =>
  parts.length === 1 ? parts[0]!.toString("utf8", 0, size) : Buffer.concat(parts, size).toString("utf8")

/** @internal */
export const make = (dispatcher: undici.Dispatcher): HttpClient.HttpClient =>
  HttpClient.makeWith<never, never, HttpClientError.HttpClientError, never>(
    (effect) =>
      Effect.flatMap(effect, (request) => {
        const url = UrlParams.makeUrl(request.url, request.urlParams, request.hash)
        if (url._tag === "Left") {
          return Effect.fail(new HttpClientError.RequestError({ request, reason: "InvalidUrl", cause: url.left }))
        }
        return Effect.flatMap(requestBody(request), (body) =>
          Effect.async<HttpClientResponse.HttpClientResponse, HttpClientError.RequestError>((resume) => {
            const controller = new AbortController()
            const exchange = new Exchange(dispatcher)
            exchange.request({
              signal: controller.signal,
              method: request.method,
              headers: request.headers,
              origin: url.right.origin,
              path: url.right.pathname + url.right.search,
              body,
              // Timeouts are the caller's (Effect.timeout and the like), not the socket's.
              headersTimeout: 0,
              bodyTimeout: 0
            }).then(
              (response) =>
                resume(Effect.succeed(new UndiciResponse(request, response, controller, exchange))),
              (cause) => resume(Effect.fail(new HttpClientError.RequestError({ request, reason: "Transport", cause })))
            )
            // The interruption completes once undici has failed the request (and closed its connection).
            return Effect.suspend(() => {
              controller.abort()
              return exchange.gone
            })
          }))
      }),
    Effect.succeed
  )

/** @internal */
export const makeScoped = (
  options?: undici.Agent.Options
): Effect.Effect<HttpClient.HttpClient, never, Scope.Scope> =>
  Effect.map(
    Effect.acquireRelease(
      Effect.sync(() => new undici.Agent(options)),
      (agent) => Effect.promise(() => agent.destroy())
    ),
    make
  )

/** @internal */
export const layerWith = (options: undici.Agent.Options): Layer.Layer<HttpClient.HttpClient> =>
  Layer.scoped(HttpClient.HttpClient, makeScoped(options))

/** @internal */
export const layer: Layer.Layer<HttpClient.HttpClient> = Layer.scoped(HttpClient.HttpClient, makeScoped())
