/**
 * A scripted `HttpClient` for tests: it plays one reply per request, records
 * each request with the (test) clock's time, and counts attempts.
 */
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientError from "@effect/platform/HttpClientError"
import * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import * as Clock from "effect/Clock"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Stream from "effect/Stream"
import * as TestClock from "effect/TestClock"

/** What the fake does for one request. */
export type Reply =
  | Response
  | { readonly _tag: "Reset" }
  | { readonly _tag: "Hang" }
  | { readonly _tag: "Delay"; readonly delay: Duration.DurationInput; readonly then: () => Response }
  | { readonly _tag: "Body"; readonly status: number; readonly body: Stream.Stream<Uint8Array> }

/** A request as the fake saw it. */
export interface Recorded {
  readonly at: number
  readonly method: string
  readonly url: string
  readonly headers: Readonly<Record<string, string>>
  readonly body: unknown
  readonly signal: AbortSignal
}

export const reset: Reply = { _tag: "Reset" }
export const hang: Reply = { _tag: "Hang" }
export const delayed = (delay: Duration.DurationInput, then: () => Response): Reply => ({ _tag: "Delay", delay, then })

/**
 * A 200 whose body is an Effect stream of byte reads, played on the test's own
 * runtime (so `Effect.sleep` between reads follows the `TestClock`).
 */
export const body = (reads: Stream.Stream<Uint8Array>, status = 200): Reply => ({ _tag: "Body", status, body: reads })

const encoder = new TextEncoder()

/** Text reads as bytes. */
export const reads = (...texts: ReadonlyArray<string>): Stream.Stream<Uint8Array> =>
  Stream.fromIterable(texts.map((text) => encoder.encode(text)))

/** One SSE event for a JSON payload (or a raw `data:` string). */
export const sseEvent = (data: unknown, event?: string): string =>
  `${event === undefined ? "" : `event: ${event}\n`}data: ${typeof data === "string" ? data : JSON.stringify(data)}\n\n`

/** A chunk as OpenAI-compatible servers stream it. */
export const chunkBody = (
  delta: Record<string, unknown>,
  finishReason: string | null = null,
  extra: Record<string, unknown> = {}
) => ({
  id: "chatcmpl-1",
  object: "chat.completion.chunk",
  created: 1_700_000_000,
  model: "meta-llama/Llama-3.1-8B-Instruct",
  choices: [{ index: 0, delta, finish_reason: finishReason }],
  ...extra
})

/** A whole, well-formed stream answering `words`, with usage and [DONE]. */
export const sseAnswer = (words: ReadonlyArray<string>): string =>
  [
    sseEvent(chunkBody({ role: "assistant", content: "" })),
    ...words.map((word) => sseEvent(chunkBody({ content: word }))),
    sseEvent(chunkBody({}, "stop")),
    sseEvent({
      ...chunkBody({}),
      choices: [],
      usage: { prompt_tokens: 3, completion_tokens: words.length, total_tokens: 3 + words.length }
    }),
    "data: [DONE]\n\n"
  ].join("")

export const json = (status: number, body: unknown, headers: Record<string, string> = {}): Response =>
  new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json", ...headers } })

export const text = (status: number, body: string, headers: Record<string, string> = {}): Response =>
  new Response(body, { status, headers })

/** A whole SSE body, as a 200 with `content-type: text/event-stream`. */
export const sse = (body: string, headers: Record<string, string> = {}): Response =>
  new Response(body, { status: 200, headers: { "content-type": "text/event-stream", ...headers } })

/** An OpenAI-shaped error body. */
export const errorBody = (message: string, fields: { code?: string; type?: string; param?: string } = {}) => ({
  error: { message, type: fields.type ?? "error", param: fields.param ?? null, code: fields.code ?? null }
})

export const completionBody = (content: string, model = "meta-llama/Llama-3.1-8B-Instruct") => ({
  id: "chatcmpl-1",
  object: "chat.completion",
  created: 1_700_000_000,
  model,
  choices: [{ index: 0, message: { role: "assistant", content }, finish_reason: "stop", logprobs: null }],
  usage: { prompt_tokens: 5, completion_tokens: 2, total_tokens: 7 }
})

export const completion = (content = "Hi there") => json(200, completionBody(content))

export interface Fake {
  readonly layer: Layer.Layer<HttpClient.HttpClient>
  readonly client: HttpClient.HttpClient
  /** Requests seen so far, in order. */
  readonly requests: Array<Recorded>
  /** Most requests that were in flight at once. */
  readonly maxInFlight: () => number
}

/**
 * A fake transport that answers the n-th request with the n-th reply of the
 * script, and the last reply for every request after the script's end. A function
 * script gets the 1-based attempt number.
 */
export const make = (script: ReadonlyArray<Reply> | ((n: number) => Reply)): Fake => {
  const requests: Array<Recorded> = []
  let inFlight = 0
  let maxInFlight = 0
  const pick = (n: number): Reply =>
    typeof script === "function" ? script(n) : script[Math.min(n, script.length) - 1] ?? script[script.length - 1]
  const client = HttpClient.make((request, url, signal) =>
    Effect.gen(function*() {
      const at = yield* Clock.currentTimeMillis
      const body = request.body._tag === "Uint8Array"
        ? JSON.parse(new TextDecoder().decode(request.body.body))
        : undefined
      requests.push({ at, method: request.method, url: url.toString(), headers: request.headers, body, signal })
      const reply = pick(requests.length)
      if (reply instanceof Response) return HttpClientResponse.fromWeb(request, reply)
      switch (reply._tag) {
        case "Reset":
          return yield* new HttpClientError.RequestError({
            request,
            reason: "Transport",
            cause: Object.assign(new Error("socket hang up"), { code: "ECONNRESET" })
          })
        case "Hang":
          return yield* Effect.never
        case "Body": {
          const readable = yield* Stream.toReadableStreamEffect(reply.body)
          return HttpClientResponse.fromWeb(
            request,
            new Response(readable, { status: reply.status, headers: { "content-type": "text/event-stream" } })
          )
        }
        case "Delay": {
          inFlight++
          maxInFlight = Math.max(maxInFlight, inFlight)
          yield* Effect.sleep(reply.delay).pipe(Effect.ensuring(Effect.sync(() => inFlight--)))
          return HttpClientResponse.fromWeb(request, reply.then())
        }
      }
    })
  )
  return { layer: Layer.succeed(HttpClient.HttpClient, client), client, requests, maxInFlight: () => maxInFlight }
}

/**
 * Runs an effect that sleeps on the `TestClock`: forks it, moves the clock far
 * enough for every retry and timeout, and joins it.
 */
export const runWithClock = <A, E, R>(
  effect: Effect.Effect<A, E, R>,
  advance: Duration.DurationInput = "1 hour"
) =>
  Effect.gen(function*() {
    const fiber = yield* Effect.fork(effect)
    yield* TestClock.adjust(advance)
    return yield* fiber.await
  })
