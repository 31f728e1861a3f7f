/**
 * Where one streaming attempt's response becomes a pull of decoded chunks: the
 * request sent, a non-2xx answer classified, a JSON answer turned into chunks,
 * and an event stream parsed as it is read, within its bounds, each event
 * decoded, until `[DONE]` or the end of a body that finished every choice.
 */
import type * as HttpClientError from "@effect/platform/HttpClientError"
import type * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import type * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import * as Chunk from "effect/Chunk"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import type { ChatCompletionChunk } from "../ChatCompletionChunk.js"
import type * as InferenceError from "../InferenceError.js"
import * as BoundedBody from "./boundedBody.js"
import * as ChunkInternal from "./chunks.js"
import * as classify from "./classify.js"
import { decodeChunk } from "./decode.js"
import type { CallState, Environment } from "./environment.js"
import * as responses from "./response.js"
import * as sse from "./sse.js"

/**
 * A pull of a stream's chunks: a batch, or the end (`None`), or its error.
 *
 * @internal
 */
export type Pull = Effect.Effect<Chunk.Chunk<ChatCompletionChunk>, Option.Option<InferenceError.InferenceError>>

/**
 * An opened attempt: the pull of its chunks, and how to stop a pull in
 * progress from elsewhere (the idle timeout): it fails, and the request is
 * aborted.
 *
 * @internal
 */
export interface Opened {
  readonly pull: Pull
  readonly abort: () => void
}

/** A JSON answer has no body read in progress to stop: it was read whole. */
const nothingToAbort = () => {}

/**
 * Opens one streaming attempt: sends the request, classifies a non-2xx answer,
 * and returns a pull of decoded chunks. The pull skips batches with no event
 * (keep-alive comments), ends at `[DONE]` (or at the end of a body that gave
 * a choice its finish reason) and fails on a truncated body, an error frame,
 * a broken socket or an undecodable event.
 *
 * @internal
 */
export const open = (
  env: Environment,
  call: CallState,
  request: HttpClientRequest.HttpClientRequest,
  context: classify.CallContext,
  includeUsage: boolean,
  choices: number,
  scope: Scope.Scope
): Effect.Effect<Opened, InferenceError.InferenceError> =>
  Effect.flatMap(
    // Let go of when the attempt's scope closes (the stream ends, fails or is left early): the scope, which holds
    // the slot, does not finish before the request is gone.
    BoundedBody.scoped(
      Effect.mapError(env.http.execute(request), (error) => classify.fromHttpClientError(error, context)),
      scope
    ),
    (response) => fromResponse(env, call, response, context, includeUsage, choices, scope)
  )

/**
 * What `open` does with the response once it has come: a non-2xx answer
 * classified, a JSON answer turned into chunks, an event stream read.
 *
 * @internal
 */
export const fromResponse = (
  env: Environment,
  call: CallState,
  response: HttpClientResponse.HttpClientResponse,
  context: classify.CallContext,
  includeUsage: boolean,
  choices: number,
  scope: Scope.Scope
): Effect.Effect<Opened, InferenceError.InferenceError> => {
  call.requestId = classify.requestIdOf(response.headers, env.secret)
  if (response.status < 200 || response.status >= 300) {
    return responses.failFromResponse(response, context, env.options)
  }
  if (!responses.isEventStream(response)) {
    return Effect.map(
      responses.completionAsStream(response, context, includeUsage, env.options),
      (pull) => ({ pull, abort: nothingToAbort })
    )
  }
  return Effect.map(
    BoundedBody.reader(response, scope),
    (reader) => eventPull(env, response, reader, context, choices)
  )
}

/**
 * The pull of an event stream's decoded chunks, read from `reader`: each read
 * parsed and decoded in the pull's own step.
 */
const eventPull = (
  env: Environment,
  response: HttpClientResponse.HttpClientResponse,
  reader: BoundedBody.Reader,
  context: classify.CallContext,
  choices: number
): Opened => {
  const parser = sse.makeParser()
  let done = false
  // Every requested choice must finish: with n > 1, one finished choice does not complete the others, and a
  // server that sends fewer choices than were asked for has not answered in full.
  const finished = new Set<number>()
  const complete = () => finished.size === choices
  let out: Array<ChatCompletionChunk> = []
  const flush = (): Pull => {
    const batch = Chunk.unsafeFromArray(out)
    out = []
    return Effect.succeed(batch)
  }
  // An error that arrived in the same read as chunks before it: those chunks go out first.
  // It is built when it is raised, so that its chunksDelivered counts those chunks.
  let pending: (() => InferenceError.InferenceError) | undefined
  const fail = (error: () => InferenceError.InferenceError): Pull => {
    if (out.length === 0) {
      return Effect.fail(Option.some(error()))
    }
    pending = error
    return flush()
  }
  // Reading ended: every chunk of the last read has been flushed already.
  const failNow = (error: InferenceError.InferenceError) => Effect.fail(Option.some(error))
  // Until the first output every byte read counts, so that a flood of empty or role-only chunks (or comments)
  // is cut off; after it, each event is bounded by the parser and each gap by the idle timeout.
  let outputSeen = false
  let bytesBeforeOutput = 0
  const onEnd = (cause: Option.Option<HttpClientError.ResponseError>) =>
    Option.match(cause, {
      // A body that ends after a finish reason is complete even without [DONE].
      onNone: () => complete() ? Effect.fail(Option.none()) : failNow(classify.truncated(response, context)),
      onSome: (error) => failNow(classify.fromHttpClientError(error, context))
    })
  const decodeBytes = (reads: Iterable<Uint8Array>): Pull => {
    for (const bytes of reads) {
      const events = parser.feed(bytes)
      if (events instanceof sse.Overflow) {
        const size = events.size
        return fail(() =>
          classify.decodeFailure(
            response,
            `an SSE line is too large: it exceeded ${size} bytes with no end of line`,
            context
          )
        )
      }
      const failed = decodeEvents(events)
      if (failed !== undefined) return failed
      if (done) break
      if (!outputSeen) {
        bytesBeforeOutput += bytes.length
        if (bytesBeforeOutput > env.options.maxBytesBeforeFirstOutput) {
          const read = bytesBeforeOutput
          return fail(() =>
            classify.decodeFailure(
              response,
              `the stream is too large before its first output: ${read} bytes with no content, over ` +
                `maxBytesBeforeFirstOutput (${env.options.maxBytesBeforeFirstOutput} bytes)`,
              context
            )
          )
        }
      }
    }
    if (out.length > 0) return flush()
    return done ? Effect.fail(Option.none()) : pull
  }
  /** Decodes the events of one read into `out`; a pull that fails, if one does. */
  const decodeEvents = (events: ReadonlyArray<sse.Event>): Pull | undefined => {
    for (const event of events) {
      if (event.data === "[DONE]") {
        if (!complete()) return fail(() => classify.truncated(response, context))
        done = true
        break
      }
      let json: unknown
      try {
        json = JSON.parse(event.data)
      } catch {
        return fail(() => classify.decodeFailure(response, "an SSE event is not JSON", context))
      }
      if (event.event === "error" || classify.isErrorEvent(json)) {
        return Effect.flatMap(
          Clock.currentTimeMillis,
          (now) => fail(() => classify.fromErrorFrame(event.data, now, context))
        )
      }
      const decoded = decodeChunk(json)
      if (Either.isLeft(decoded)) {
        return fail(() => classify.decodeFailure(response, decoded.left, context))
      }
      for (const choice of decoded.right.choices) {
        if (
          choice.finish_reason !== null && Number.isInteger(choice.index) && choice.index >= 0 &&
          choice.index < choices
        ) {
          finished.add(choice.index)
        }
      }
      if (!outputSeen) outputSeen = ChunkInternal.hasContent(decoded.right)
      out.push(decoded.right)
    }
    return undefined
  }
  const read = Effect.matchEffect(reader.read, { onFailure: onEnd, onSuccess: decodeBytes })
  const pull: Pull = Effect.suspend(() => {
    if (pending !== undefined) return Effect.fail(Option.some(pending()))
    return done ? Effect.fail(Option.none()) : read
  })
  return { pull, abort: reader.abort }
}
