/**
 * Where a response becomes a value or an error: a 2xx body read within its
 * bound and decoded, a non-2xx status classified with the start of its body,
 * and the JSON answer to a stream request turned into the chunks of a stream.
 * (`classify.ts` says which error a status or a failure is; `decode.ts` how a
 * body is decoded.)
 */
import type * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import * as Chunk from "effect/Chunk"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import type * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import type { ChatCompletionChunk } from "../ChatCompletionChunk.js"
import * as InferenceError from "../InferenceError.js"
import { ModelList } from "../Model.js"
import * as BoundedBody from "./boundedBody.js"
import * as ChunkInternal from "./chunks.js"
import * as classify from "./classify.js"
import { decodeCompletion } from "./decode.js"

const decodeModelList = Schema.decodeUnknownEither(ModelList)

/** A successful body over `maxResponseBytes`: the same request would get it again, so it is not retried. */
const tooLarge = (
  response: HttpClientResponse.HttpClientResponse,
  context: classify.CallContext,
  max: number,
  stated: number | undefined
): InferenceError.ResponseDecodeError =>
  classify.decodeFailure(
    response,
    stated === undefined
      ? `the body is too large: over maxResponseBytes (${max} bytes), and the rest was not read`
      : `the body is too large: its Content-Length, ${stated} bytes, is over maxResponseBytes (${max} bytes)`,
    context
  )

const decodeWith = <A>(decode: (u: unknown) => Either.Either<A, ParseResult.ParseError>) =>
(
  response: HttpClientResponse.HttpClientResponse,
  context: classify.CallContext,
  limits: BoundedBody.Limits
): Effect.Effect<A, InferenceError.InferenceError> => {
  const max = limits.maxResponseBytes
  const stated = BoundedBody.contentLength(response)
  // A body said to be over the bound is refused before a byte of it is read.
  if (stated !== undefined && stated > max) {
    return Effect.zipRight(BoundedBody.discard(response), Effect.fail(tooLarge(response, context, max, stated)))
  }
  return Effect.flatMap(
    Effect.mapError(BoundedBody.read(response, max), (error) => classify.fromHttpClientError(error, context)),
    ({ text, truncated }) => {
      if (truncated) return Effect.fail(tooLarge(response, context, max, undefined))
      let json: unknown
      try {
        json = JSON.parse(text)
      } catch {
        return Effect.fail(classify.decodeFailure(response, `the body is not JSON (${text.length} bytes)`, context))
      }
      return Either.match(decode(json), {
        onLeft: (error) => Effect.fail(classify.decodeFailure(response, error, context)),
        onRight: Effect.succeed
      })
    }
  )
}

/** @internal */
export const decodeCompletionResponse = decodeWith(decodeCompletion)

/** @internal */
export const decodeModels = decodeWith(decodeModelList)

/**
 * Whether a response says it is Server-Sent Events.
 *
 * @internal
 */
export const isEventStream = (response: HttpClientResponse.HttpClientResponse): boolean =>
  response.headers["content-type"]?.toLowerCase().includes("text/event-stream") === true

/**
 * The answer to a stream request that is not an event stream (a server that
 * honours `accept: application/json`, or ignores `stream: true`): a whole
 * completion, delivered as the chunks a stream of it would have had. Any other
 * body is a `ResponseDecodeError`: not retried (the same request would get the
 * same answer) and not counted by the breaker (the service answered).
 *
 * @internal
 */
export const completionAsStream = (
  response: HttpClientResponse.HttpClientResponse,
  context: classify.CallContext,
  includeUsage: boolean,
  limits: BoundedBody.Limits
): Effect.Effect<
  Effect.Effect<Chunk.Chunk<ChatCompletionChunk>, Option.Option<InferenceError.InferenceError>>,
  InferenceError.InferenceError
> =>
  Effect.map(
    Effect.mapError(
      decodeCompletionResponse(response, context, limits),
      (error) =>
        error._tag === "ResponseDecodeError"
          ? new InferenceError.ResponseDecodeError({
            ...error,
            description: `a stream request was answered with ${
              classify.scrub(response.headers["content-type"] ?? "no content-type", context.secret)
            }, not text/event-stream, and the body is not a chat completion (${error.description})`
          })
          : error
    ),
    (completion) => {
      let chunks: Chunk.Chunk<ChatCompletionChunk> | undefined = Chunk.unsafeFromArray(
        ChunkInternal.fromCompletion(completion, { includeUsage })
      )
      return Effect.suspend(() => {
        if (chunks === undefined) return Effect.fail(Option.none())
        const all = chunks
        chunks = undefined
        return Effect.succeed(all)
      })
    }
  )

/**
 * The tagged error of a non-2xx response, from its status, headers and the
 * start of its body.
 *
 * @internal
 */
export const failFromResponse = (
  response: HttpClientResponse.HttpClientResponse,
  context: classify.CallContext,
  limits: BoundedBody.Limits
): Effect.Effect<never, InferenceError.InferenceError> =>
  Effect.flatMap(
    // An error body that cannot be read is still an error of this status: classify it without a body. Its message is
    // at its start: the first maxErrorBodyBytes are read, the rest is not, and the request is aborted, not drained.
    Effect.orElseSucceed(
      Effect.map(BoundedBody.read(response, limits.maxErrorBodyBytes), (read) => read.text),
      () => ""
    ),
    (text) =>
      Effect.flatMap(
        Clock.currentTimeMillis,
        (now) => Effect.fail(classify.fromErrorResponse(response, text, now, context))
      )
  )
