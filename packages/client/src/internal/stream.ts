/**
 * Where a stream runs: `streamChatCompletion` through the cache and the
 * budget, then the policies of `pipeline.ts` until its first content (an
 * attempt succeeds once content arrives: until then nothing has reached the
 * consumer, so any failure can be retried from scratch, or fall back), and
 * from then on the idle timeout between chunks, with no retry.
 */
import * as Cause from "effect/Cause"
import * as Chunk from "effect/Chunk"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as ExecutionStrategy from "effect/ExecutionStrategy"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import type { ChatCompletionRequest } from "../ChatCompletion.js"
import type { ChatCompletionChunk } from "../ChatCompletionChunk.js"
import * as InferenceError from "../InferenceError.js"
import * as RateLimit from "../RateLimit.js"
import * as ResponseCache from "../ResponseCache.js"
import type * as UsageTracker from "../UsageTracker.js"
import * as ChunkInternal from "./chunks.js"
import type * as classify from "./classify.js"
import type { CallState, Environment } from "./environment.js"
import { callState } from "./environment.js"
import { modelsOf } from "./fallback.js"
import * as pipeline from "./pipeline.js"
import * as request from "./request.js"
import * as ResponseCacheInternal from "./responseCache.js"
import { logFailure } from "./retryPolicy.js"
import * as streamPull from "./streamPull.js"
import * as timeout from "./timeout.js"
import * as tokens from "./tokens.js"
import * as usage from "./usage.js"

type Pull = streamPull.Pull

/** A stream's shape, from its request. */
interface Shape {
  readonly includeUsage: boolean
  readonly choices: number
  readonly estimatedTokens: number
}

/** An attempt that reached its first content (or the end of a stream with none). */
interface Started {
  readonly prefix: ReadonlyArray<ChatCompletionChunk>
  readonly pull: Pull
  readonly ended: boolean
  readonly context: classify.CallContext
  /** The attempt's place in the rate limits, settled from the usage in the last chunk. */
  readonly permit: RateLimit.Permit | undefined
}

/** Opens the stream and reads it up to its first content: what was read, and the pull of the rest. */
const firstContent = (
  env: Environment,
  call: CallState,
  httpRequest: Parameters<typeof streamPull.open>[2],
  context: classify.CallContext,
  shape: Shape
): Effect.Effect<Omit<Started, "permit">, InferenceError.InferenceError, Scope.Scope> =>
  Effect.gen(function*() {
    const pull = yield* streamPull.open(env, call, httpRequest, context, shape.includeUsage, shape.choices)
    const prefix: Array<ChatCompletionChunk> = []
    while (true) {
      const batch = yield* Effect.either(pull)
      if (Either.isLeft(batch)) {
        if (Option.isSome(batch.left)) return yield* Effect.fail(batch.left.value)
        return { prefix, pull, ended: true, context }
      }
      prefix.push(...batch.right)
      if (Chunk.some(batch.right, ChunkInternal.hasContent)) return { prefix, pull, ended: false, context }
    }
  })

/**
 * The stream of one model, up to its first content, retried by the policy.
 * Each attempt runs in a scope of its own, forked from the stream's: closed
 * (aborting the request, freeing the slot and the permit) if the attempt
 * fails, and kept open for the rest of the stream if it succeeds.
 */
const start = (
  env: Environment,
  call: CallState,
  chatRequest: ChatCompletionRequest,
  extra: request.Extra,
  model: string,
  shape: Shape
): Effect.Effect<Started, InferenceError.InferenceError, Scope.Scope> =>
  Effect.gen(function*() {
    const httpRequest = yield* request.jsonBody(request.streamBody(chatRequest, model, extra))
    const outer = yield* Effect.scope
    return yield* pipeline.retried(env, call, undefined, model, (attempt) =>
      Effect.flatMap(Scope.fork(outer, ExecutionStrategy.sequential), (scope) => {
        const context: classify.CallContext = { ...attempt, chunksDelivered: undefined }
        let permit: RateLimit.Permit | undefined
        return pipeline.attempt(
          firstContent(env, call, httpRequest, context, shape),
          env,
          context,
          { duration: env.options.firstChunkTimeout, phase: "firstChunk" },
          {
            estimatedTokens: shape.estimatedTokens,
            // A refused or unsent attempt gives its tokens back; the scope would charge the estimate.
            actualTokens: Exit.match({
              onSuccess: () =>
                undefined,
              onFailure: RateLimit.tokensOfFailure
            }),
            keep: (taken) => {
              permit = taken
            }
          }
        ).pipe(
          Scope.extend(scope),
          Effect.map((started): Started => ({ ...started, permit })),
          Effect.onError(() =>
            Scope.close(scope, Exit.void)
          )
        )
      }))
  })

/** What a stream's usage record needs, filled in as the stream goes. */
interface Seen {
  failure: InferenceError.InferenceError | undefined
  ended: boolean
  usage: ChatCompletionChunk["usage"]
  generatedChars: number
  reservation: UsageTracker.Reservation | undefined
}

/**
 * Holds the stream's place in the budget, and records its usage when the
 * stream's scope closes, however it ends: the usage chunk's counts, or an
 * estimate from the text that was seen, or none.
 */
const track = (
  tracker: UsageTracker.UsageTracker.Service,
  env: Environment,
  chatRequest: ChatCompletionRequest,
  call: CallState,
  seen: Seen
): Effect.Effect<void, InferenceError.InferenceError, Scope.Scope> =>
  Effect.gen(function*() {
    const start = yield* Clock.currentTimeMillis
    yield* Effect.addFinalizer((exit) =>
      usage.recordCall(tracker, chatRequest, call, start, {
        stream: true,
        reservation: seen.reservation,
        usage: seen.usage !== undefined
          ? usage.reported(seen.usage)
          : seen.generatedChars > 0
          // Left early, or broke off, before the usage chunk: what was seen of it.
          ? {
            promptTokens: seen.reservation?.promptTokens ?? tokens.estimatePromptTokens(chatRequest),
            completionTokens: Math.ceil(seen.generatedChars / tokens.CHARS_PER_TOKEN),
            estimated: true
          }
          : undefined,
        ...(seen.failure !== undefined
          ? { error: seen.failure }
          : seen.ended
          ? {}
          : Exit.isFailure(exit) && !Cause.isInterruptedOnly(exit.cause)
          ? { defect: true }
          : { interrupted: true })
      })
    )
    seen.reservation = yield* tracker.reserve(chatRequest, modelsOf(chatRequest.model, env.options.fallback))
  })

/**
 * The chunks of a started stream for the consumer: the prefix read before the
 * first content, then the rest under the idle timeout. One pull does in one
 * place what stream stages would do per read (each stage costs a few µs, and a
 * stream paced token by token has a read per chunk): chunks are counted as
 * they leave (a later failure is not retried and says how far it got), the
 * usage chunk settles the rate-limit permit, and the end is logged and
 * annotated.
 */
const rest = (
  env: Environment,
  started: Started,
  seen: Seen
): Effect.Effect<Stream.Stream<ChatCompletionChunk, InferenceError.InferenceError>, never, Scope.Scope> =>
  Effect.gen(function*() {
    const { context } = started
    const idle = (): Option.Option<InferenceError.InferenceError> =>
      Option.some(
        new InferenceError.TimeoutError({
          phase: "idle",
          timeout: env.options.idleTimeout,
          model: context.model,
          attempts: context.attempt,
          chunksDelivered: context.chunksDelivered
        })
      )
    const after: Pull = started.ended
      ? Effect.fail(Option.none())
      : yield* timeout.idleGuard(started.pull, env.options.idleTimeout, idle)
    let prefix = started.prefix.length > 0 ? Chunk.unsafeFromArray(started.prefix) : undefined
    const counting = env.tracker !== undefined
    const deliver = (chunks: Chunk.Chunk<ChatCompletionChunk>): Pull => {
      context.chunksDelivered = (context.chunksDelivered ?? 0) + chunks.length
      let settle: Effect.Effect<void> | undefined
      for (const chunk of chunks) {
        if (counting) seen.generatedChars += ChunkInternal.contentLength(chunk)
        if (chunk.usage !== undefined) {
          seen.usage = chunk.usage
          if (started.permit !== undefined) settle = started.permit.settle(tokens.reportedTotal(chunk.usage))
        }
      }
      return settle === undefined ? Effect.succeed(chunks) : Effect.as(settle, chunks)
    }
    const stop = (cause: Option.Option<InferenceError.InferenceError>): Pull => {
      if (Option.isNone(cause)) {
        seen.ended = true
        return env.tracing
          ? Effect.zipRight(Effect.annotateCurrentSpan("inference.outcome", "success"), Effect.fail(cause))
          : Effect.fail(cause)
      }
      const error = cause.value
      seen.failure = error
      const logged = logFailure(error, context.attempt, Option.none())
      return Effect.zipRight(
        env.tracing ? Effect.zipRight(logged, Effect.annotateCurrentSpan("inference.outcome", error._tag)) : logged,
        Effect.fail(cause)
      )
    }
    const next: Pull = Effect.suspend(() => {
      if (prefix !== undefined) {
        const first = prefix
        prefix = undefined
        return deliver(first)
      }
      return Effect.matchEffect(after, { onSuccess: deliver, onFailure: stop })
    })
    const chunks = Stream.repeatEffectChunkOption(next)
    return env.tracing
      ? Stream.concat(Stream.execute(Effect.annotateCurrentSpan("inference.attempts", context.attempt)), chunks)
      : chunks
  })

/** A stream of a checked request, past the cache. */
const live = (
  env: Environment,
  chatRequest: ChatCompletionRequest,
  extra: request.Extra
): Stream.Stream<ChatCompletionChunk, InferenceError.InferenceError> => {
  const shape: Shape = {
    includeUsage: chatRequest.stream_options?.include_usage !== false,
    choices: chatRequest.n ?? 1,
    estimatedTokens: env.limiter === undefined ? 0 : RateLimit.estimateTokens(chatRequest)
  }
  const stream = Stream.unwrapScoped(Effect.gen(function*() {
    const call = callState(chatRequest.model)
    const seen: Seen = { failure: undefined, ended: false, usage: undefined, generatedChars: 0, reservation: undefined }
    const remember = <A, R>(effect: Effect.Effect<A, InferenceError.InferenceError, R>) =>
      Effect.tapError(effect, (error) =>
        Effect.sync(() => {
          seen.failure = error
        }))
    if (env.tracker !== undefined) yield* remember(track(env.tracker, env, chatRequest, call, seen))
    const started = yield* remember(
      pipeline.call(env, call, chatRequest.model, (model) => start(env, call, chatRequest, extra, model, shape))
    )
    return yield* rest(env, started, seen)
  }))
  return env.tracing
    ? Stream.withSpan(stream, "InferenceClient.streamChatCompletion", {
      kind: "client",
      attributes: { "inference.model": chatRequest.model }
    })
    : stream
}

/**
 * A stream through the cache: a fresh entry is replayed chunk by chunk;
 * otherwise the live stream is stored once it has been read to its end.
 */
const cached = (
  env: Environment,
  chatRequest: ChatCompletionRequest,
  extra: request.Extra,
  use: ResponseCacheInternal.CacheUse
): Stream.Stream<ChatCompletionChunk, InferenceError.InferenceError> =>
  Stream.unwrap(Effect.gen(function*() {
    const start = yield* Clock.currentTimeMillis
    const key = ResponseCache.key({
      baseUrl: env.options.baseUrl,
      project: env.options.project,
      request: request.streamBody(chatRequest, chatRequest.model, extra)
    })
    if (use.read) {
      const found = yield* use.cache.get(key)
      yield* ResponseCacheInternal.countLookup(Option.isSome(found))
      if (Option.isSome(found)) {
        yield* usage.recordHit(env.tracker, chatRequest.model, true, start)
        const entry = found.value
        return Stream.fromIterable(
          entry._tag === "CachedStream" ? entry.chunks : ChunkInternal.fromCompletion(entry.completion)
        )
      }
    }
    return Stream.suspend(() => {
      const chunks: Array<ChatCompletionChunk> = []
      return live(env, chatRequest, extra).pipe(
        Stream.mapChunks((batch) => {
          for (const chunk of batch) chunks.push(chunk)
          return batch
        }),
        Stream.onEnd(Effect.suspend(() => use.cache.set(key, new ResponseCache.CachedStream({ chunks }), use.ttl)))
      )
    })
  }))

/**
 * `streamChatCompletion` of a checked call.
 *
 * @internal
 */
export const streamChatCompletion = (
  env: Environment,
  { extra, request: chatRequest, use }: request.Checked
): Stream.Stream<ChatCompletionChunk, InferenceError.InferenceError> =>
  use === undefined ? live(env, chatRequest, extra) : cached(env, chatRequest, extra, use)
