/**
 * An `HttpClient` straight over undici: one object per response, headers
 * converted once, bodies read with one callback, a streamed body taken from
 * undici as it arrives.
 *
 * An interrupted request is not given up on until undici has let go of it: the
 * interruption completes once undici has failed the request (closing its
 * connection), so that whatever holds a slot for the request (the client's
 * concurrency limit) does not give the slot back while the request is alive.
 *
 * Past 400 lines because a transport is one piece: the exchange that watches
 * undici, the response, the reader of a streamed body, the deadline, and the
 * send the client's streams call directly (`direct`).
 */
import * as NodeStream from "@effect/platform-node/NodeStream"
import * as undici from "@effect/platform-node/Undici"
import * as Cookies from "@effect/platform/Cookies"
import * as Headers from "@effect/platform/Headers"
import type * as HttpBody from "@effect/platform/HttpBody"
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientError from "@effect/platform/HttpClientError"
import type * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import * as IncomingMessage from "@effect/platform/HttpIncomingMessage"
import * as UrlParams from "@effect/platform/UrlParams"
import * as Effect from "effect/Effect"
import * as FiberRef from "effect/FiberRef"
import { globalValue } from "effect/GlobalValue"
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

/** A body held in memory, as undici takes it. */
const inMemory = (body: Exclude<HttpBody.HttpBody, HttpBody.Stream>): Body => {
  switch (body._tag) {
    case "Empty":
      return null
    case "Uint8Array":
      return body.body
    case "Raw":
      return body.body as Body
    case "FormData":
      return body.formData as undici.FormData
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
  /** Why undici failed the request, if it did. */
  private failure: Error | undefined
  private waiting: Array<() => void> | undefined
  /** The reader that the body's reads go to, once there is one, instead of the body's Node stream. */
  private tap: Tap | undefined
  /** Lets undici read the socket again after `onData` asked it to wait. */
  private resumeReads: (() => void) | undefined

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

  /** undici is done with the request: there is nothing left to abort. */
  get isSettled(): boolean {
    return this.settled
  }

  /** From now on the body's reads go to `tap`; if undici is done with the request, `tap` is told how it ended. */
  attach(tap: Tap): void {
    this.tap = tap
    if (this.settled) tap.end(this.failure)
  }

  /** Lets undici read the socket again, after the reader caught up. */
  resume(): void {
    this.resumeReads?.()
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
    this.resumeReads = resume
    return this.handler!.onHeaders!(statusCode, headers, resume, statusText)
  }

  onData(chunk: Buffer): boolean {
    return this.tap === undefined ? this.handler!.onData!(chunk) : this.tap.data(chunk)
  }

  onComplete(trailers: Array<string> | null): void {
    this.settle()
    this.tap?.end(undefined)
    this.handler!.onComplete!(trailers)
  }

  onError(error: Error): void {
    this.failure = error
    this.settle()
    this.tap?.end(error)
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

  decodeError(cause: unknown): HttpClientError.ResponseError {
    return new HttpClientError.ResponseError({ request: this.request, response: this, reason: "Decode", cause })
  }

  /** Aborts the request unless undici is done with it, and waits until undici has let go of it. */
  private get abort(): Effect.Effect<void> {
    return Effect.suspend(() => this[BoundedBody.discardNow]())
  }

  [BoundedBody.discardNow](): Effect.Effect<void> {
    unread.unregister(this)
    // Answered in full or failed: undici has let go of it already. An abort now would only destroy the body's
    // Node stream with an error whose stack Node formats: 4% of the client's CPU in a profile of 10-chunk
    // streams (`pnpm --filter @effect-inference/benchmarks bench --scenario "stream short"`).
    if (this.exchange.isSettled) return Effect.void
    this.controller.abort()
    return this.exchange.gone
  }

  /**
   * Takes the body over: its reads go to the reader as undici makes them,
   * past the body's Node stream, which is never read.
   */
  [BoundedBody.bodyReader](): BoundedBody.Reader {
    unread.unregister(this)
    const tap = new Tap(this)
    const body = this.source.body
    if (body.destroyed || body.readableEnded || body.readableDidRead) {
      tap.end(body.errored ?? new Error("the body was read or closed already"))
      return tap
    }
    // What came with the headers, before there was a reader, went into the Node stream.
    for (let bytes: Buffer | null = body.read(); bytes !== null; bytes = body.read()) tap.data(bytes)
    this.exchange.attach(tap)
    return tap
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

/** Unread bytes past which undici stops reading the socket until the reader catches up (its own default). */
const HIGH_WATER_MARK = 64 * 1024

type Resume = (effect: Effect.Effect<Iterable<Uint8Array>, Option.Option<HttpClientError.ResponseError>>) => void

/**
 * The reader of a streamed body: undici's reads are kept as they come, and a
 * read takes all of them, or waits for the next. In a stream paced token by
 * token every network read is a read here, and the way through the body's
 * Node stream, an Effect `Stream` over it (`response.stream`) and a fiber that
 * reads it ahead (as `BoundedBody.reader` reads any other transport's body)
 * costs more than the rest of the client's work on the read:
 * `pnpm --filter @effect-inference/benchmarks bench --scenario stream --only client --rounds 1`
 * (median of 3 interleaved runs) measured 15.0 µs of CPU per chunk paced, 6.7
 * in bursts and 721 per 10-chunk stream with this, and 36.2, 8.0 and 969 with
 * `response.stream` read that way.
 */
class Tap implements BoundedBody.Reader {
  private parts: Array<Uint8Array> = []
  private size = 0
  /** `onData` asked undici to stop reading the socket. */
  private paused = false
  /** How the body ended (`None`: in full; or its failure), once it did: read after the bytes before it. */
  private final: Option.Option<HttpClientError.ResponseError> | undefined
  private waiting: Resume | undefined

  constructor(private readonly response: UndiciResponse) {}

  readonly read: Effect.Effect<Iterable<Uint8Array>, Option.Option<HttpClientError.ResponseError>> = Effect.suspend(
    () => {
      if (this.parts.length > 0) return Effect.succeed(this.take())
      if (this.final !== undefined) return Effect.fail(this.final)
      return this.next
    }
  )

  /**
   * Waits for the next read of undici's. Built once, and with no canceller:
   * `Effect.async` wraps an effect with one in `Effect.onInterrupt`, several
   * runtime operations on every read of a stream paced token by token. A
   * fiber interrupted while it waits ignores the resume it left here, and
   * nothing reads the body after that (its scope closes, aborting it).
   */
  private readonly next = Effect.async<Iterable<Uint8Array>, Option.Option<HttpClientError.ResponseError>>(
    (resume) => {
      this.waiting = resume
    }
  )

  /** A read waiting for bytes goes on, once its fiber runs: with every read that came until then. */
  private wake(resumed: Effect.Effect<Iterable<Uint8Array>, Option.Option<HttpClientError.ResponseError>>): void {
    const waiting = this.waiting
    if (waiting === undefined) return
    this.waiting = undefined
    waiting(resumed)
  }

  /** What a read woken by bytes gives: every read that came until its fiber runs (none if `abort` came first). */
  private readonly taken = Effect.sync(() => this.take())

  private take(): Array<Uint8Array> {
    const parts = this.parts
    this.parts = []
    this.size = 0
    if (this.paused) {
      this.paused = false
      this.response.exchange.resume()
    }
    return parts
  }

  /** One read of undici's; `false` asks undici to stop reading the socket for now. */
  data(bytes: Uint8Array): boolean {
    if (this.final !== undefined) return true
    this.parts.push(bytes)
    this.size += bytes.length
    this.wake(this.taken)
    if (this.size < HIGH_WATER_MARK) return true
    this.paused = true
    return false
  }

  end(failure: unknown): void {
    if (this.final !== undefined) return
    this.final = failure === undefined ? Option.none() : Option.some(this.response.decodeError(failure))
    this.wake(this.read)
  }

  readonly abort = (): void => {
    if (this.final === undefined) {
      this.parts = []
      this.final = Option.some(this.response.decodeError(new Error("the read was stopped")))
      this.wake(this.read)
    }
    if (!this.response.exchange.isSettled) this.response.controller.abort()
  }
}

/** The text of the first `size` bytes of `parts`. */
const decode = (parts: ReadonlyArray<Buffer>, size: number): string =>
  parts.length === 1 ? parts[0]!.toString("utf8", 0, size) : Buffer.concat(parts, size).toString("utf8")

/**
 * The deadline of an attempt (see `deadlineFail` in timeout.ts): once it
 * expires, every request linked to it is stopped as an interruption would stop
 * it. A callback list rather than an `AbortSignal`, which costs an
 * `AbortController` and an event listener per attempt.
 *
 * @internal
 */
export class Deadline {
  private expiredFlag = false
  private stops: Array<() => void> | undefined

  /** Whether the deadline has passed. */
  get expired(): boolean {
    return this.expiredFlag
  }

  /** Runs `stop` when the deadline passes (at once if it has). */
  link(stop: () => void): void {
    if (this.expiredFlag) stop()
    else (this.stops ??= []).push(stop)
  }

  /** The deadline passes: every linked request is stopped. */
  expire(): void {
    if (this.expiredFlag) return
    this.expiredFlag = true
    const stops = this.stops
    this.stops = undefined
    if (stops !== undefined) { for (const stop of stops) stop() }
  }
}

/**
 * The deadline that every request this transport sends from the fiber it is
 * set on is linked to.
 *
 * @internal
 */
export const currentDeadline: FiberRef.FiberRef<Deadline | undefined> = globalValue(
  Symbol.for("@effect-inference/client/UndiciHttpClient/currentDeadline"),
  () => FiberRef.unsafeMake<Deadline | undefined>(undefined)
)

/**
 * Sends one request straight through undici, linked to `deadline` if there is
 * one: what every request of this transport does, and what the client's
 * streams call directly (`direct`), with the deadline handed over rather than
 * read from `currentDeadline`.
 *
 * @internal
 */
export type Send = (
  request: HttpClientRequest.HttpClientRequest,
  deadline: Deadline | undefined
) => Effect.Effect<HttpClientResponse.HttpClientResponse, HttpClientError.HttpClientError>

/** The clients `make` built (the ones that honour `currentDeadline`), and how each sends a request. */
const honouring = globalValue(
  Symbol.for("@effect-inference/client/UndiciHttpClient/honouring"),
  () => new WeakMap<HttpClient.HttpClient, Send>()
)

/**
 * Whether `client` is this transport, and so stops a request when
 * `currentDeadline` expires.
 *
 * @internal
 */
export const honoursDeadline = (client: HttpClient.HttpClient): boolean => honouring.has(client)

/**
 * How `client` sends a request, if it is this transport (unwrapped): its
 * `execute` with no `HttpClient` around it and the deadline given.
 *
 * @internal
 */
export const direct = (client: HttpClient.HttpClient): Send | undefined => honouring.get(client)

/** @internal */
export const make = (dispatcher: undici.Dispatcher): HttpClient.HttpClient => {
  const send = makeSend(dispatcher)
  const client = HttpClient.makeWith<never, never, HttpClientError.HttpClientError, never>(
    (effect) =>
      Effect.flatMap(
        effect,
        (request) => Effect.withFiberRuntime((fiber) => send(request, fiber.getFiberRef(currentDeadline)))
      ),
    Effect.succeed
  )
  honouring.set(client, send)
  return client
}

const makeSend = (dispatcher: undici.Dispatcher): Send => (request, deadline) => {
  const url = UrlParams.makeUrl(request.url, request.urlParams, request.hash)
  if (url._tag === "Left") {
    return Effect.fail(new HttpClientError.RequestError({ request, reason: "InvalidUrl", cause: url.left }))
  }
  const sendBody = (body: Body) =>
    Effect.async<HttpClientResponse.HttpClientResponse, HttpClientError.RequestError>((resume) => {
      const controller = new AbortController()
      if (deadline !== undefined) deadline.link(() => controller.abort())
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
        (response) => resume(Effect.succeed(new UndiciResponse(request, response, controller, exchange))),
        (cause) => resume(Effect.fail(new HttpClientError.RequestError({ request, reason: "Transport", cause })))
      )
      // The interruption completes once undici has failed the request (and closed its connection).
      return Effect.suspend(() => {
        controller.abort()
        return exchange.gone
      })
    })
  // A body in memory (every body the client sends) is handed over in the same step.
  const body = request.body
  return body._tag === "Stream"
    ? Effect.flatMap(NodeStream.toReadable(body.stream), sendBody)
    : sendBody(inMemory(body))
}

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
