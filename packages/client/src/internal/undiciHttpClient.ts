/**
 * An `HttpClient` straight over undici: one object per response, headers
 * converted once, bodies read with one callback.
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
import type * as Stream from "effect/Stream"

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

class UndiciResponse extends Inspectable.Class implements HttpClientResponse.HttpClientResponse {
  readonly [IncomingMessage.TypeId]: IncomingMessage.TypeId = IncomingMessage.TypeId
  readonly [HttpClientResponse.TypeId]: HttpClientResponse.TypeId = HttpClientResponse.TypeId

  constructor(
    readonly request: HttpClientRequest.HttpClientRequest,
    readonly source: undici.Dispatcher.ResponseData,
    readonly controller: AbortController
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

  /** Reads the whole body once; interrupting the read aborts the request. */
  private read<A>(consume: () => Promise<A>): Effect.Effect<A, HttpClientError.ResponseError> {
    let promise: Promise<A> | undefined
    return Effect.async<A, HttpClientError.ResponseError>((resume) => {
      unread.unregister(this)
      promise ??= consume()
      promise.then(
        (value) => resume(Effect.succeed(value)),
        (cause) => resume(Effect.fail(this.decodeError(cause)))
      )
      return Effect.sync(() => this.controller.abort())
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
    // Each pull takes everything buffered, so a burst of network reads is one chunk; leaving early destroys the body.
    return NodeStream.fromReadable(() => {
      unread.unregister(this)
      return this.source.body
    }, (cause) => this.decodeError(cause))
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
            dispatcher.request({
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
                resume(Effect.succeed(new UndiciResponse(request, response, controller))),
              (cause) => resume(Effect.fail(new HttpClientError.RequestError({ request, reason: "Transport", cause })))
            )
            return Effect.sync(() => controller.abort())
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
