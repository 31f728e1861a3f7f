/**
 * Where a stream runs: `streamChatCompletion` through the cache and the
 * budget, then the policies of `pipeline.ts` until its first content (an
 * attempt succeeds once content arrives: until then nothing has reached the
 * consumer, so any failure can be retried from scratch, or fall back), and
 * from then on the idle timeout between chunks, with no retry.
 *
 * Past 400 lines because a stream's life is in one place: its attempts (the
 * fused one of streamFast.ts beside the general one), its usage record, the
 * channel that reads it, and the one finalizer that ends it; split up, each
 * part would take the stream's mutable state (`Seen`, `Ending`) as a parameter.
 */
import * as Cause from "effect/Cause"
import * as Channel from "effect/Channel"
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
import * as streamFast from "./streamFast.js"
import * as streamPull from "./streamPull.js"
import * as timeout from "./timeout.js"
import * as tokens from "./tokens.js"
import * as usage from "./usage.js"
import * as UsageTrackerInternal from "./usageTracker.js"

type Pull = streamPull.Pull

/** A stream's shape, from its request. */
interface Shape {
  readonly includeUsage: boolean
  readonly choices: number
  readonly estimatedTokens: number
}

/**
 * The tokens a failed streaming attempt is settled with: a refused or unsent attempt gives its tokens back (its
 * scope would charge the estimate). A successful one is settled later, from its usage chunk. Built once.
 */
const attemptTokens: (exit: Exit.Exit<unknown, InferenceError.InferenceError>) => number | undefined = Exit.match({
  onSuccess: () => undefined,
  onFailure: RateLimit.tokensOfFailure
})

/** An attempt that reached its first content (or the end of a stream with none). */
interface Started {
  readonly prefix: ReadonlyArray<ChatCompletionChunk>
  readonly pull: Pull
  /** Stops a pull in progress (the idle timeout): it fails, and the request is aborted. */
  readonly abort: () => void
  readonly ended: boolean
  readonly context: classify.CallContext
  /** The attempt's place in the rate limits, settled from the usage in the last chunk. */
  readonly permit: RateLimit.Permit | undefined
  /** Whether the attempt took the fused path (streamFast.ts): what it holds is in the stream's `Ending`. */
  readonly fused: boolean
}

/**
 * What the stream's one finalizer does before it records the usage, filled in
 * by the fused path (streamFast.ts), which keeps here what the general path
 * keeps in scopes of its own: stopping the idle timer, then letting go of what
 * the attempt holds. The general path's scopes are added to the stream's scope
 * after this finalizer, so they close before it: the order is the same.
 */
interface Ending {
  stopIdle: (() => void) | undefined
  release: (() => Effect.Effect<void>) | undefined
}

/**
 * Reads an opened stream up to its first content: what was read, and the pull of the rest. Written as one loop
 * of `matchEffect` over the pull (no generator, no `Effect.either` per batch): it runs for every stream.
 */
const firstContent = (
  opened: Effect.Effect<streamPull.Opened, InferenceError.InferenceError>,
  context: classify.CallContext,
  finish: (read: Omit<Started, "permit" | "fused">) => Started
): Effect.Effect<Started, InferenceError.InferenceError> =>
  Effect.flatMap(
    opened,
    ({ abort, pull }) => {
      const prefix: Array<ChatCompletionChunk> = []
      const loop: Effect.Effect<Started, InferenceError.InferenceError> = Effect.matchEffect(pull, {
        onFailure: (cause) =>
          Option.isSome(cause)
            ? Effect.fail(cause.value)
            : Effect.succeed(finish({ prefix, pull, abort, ended: true, context })),
        onSuccess: (batch) => {
          for (const chunk of batch) prefix.push(chunk)
          return Chunk.some(batch, ChunkInternal.hasContent)
            ? Effect.succeed(finish({ prefix, pull, abort, ended: false, context }))
            : loop
        }
      })
      return loop
    }
  )

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
  shape: Shape,
  outer: Scope.Scope,
  ending: Ending
): Effect.Effect<Started, InferenceError.InferenceError> =>
  Effect.suspend(() => {
    const encoded = request.jsonBodyEither(request.streamBody(chatRequest, model, extra))
    if (Either.isLeft(encoded)) return Effect.fail(encoded.left)
    const httpRequest = encoded.right
    const bound = { duration: env.options.firstChunkTimeout, phase: "firstChunk" } as const
    // The fused path needs the transport's own send and no rate limiter (see streamFast.ts).
    const direct = env.limiter === undefined ? env.direct : undefined
    const shaped = direct?.shape(httpRequest)
    return pipeline.retried(env, call, undefined, model, (attempt) => {
      const context: classify.CallContext = { ...attempt, chunksDelivered: undefined }
      const general = Effect.flatMap(Scope.fork(outer, ExecutionStrategy.sequential), (scope) => {
        let permit: RateLimit.Permit | undefined
        return pipeline.attempt(
          firstContent(
            streamPull.open(env, call, httpRequest, context, shape.includeUsage, shape.choices, scope),
            context,
            (read) => ({ ...read, permit, fused: false })
          ),
          env,
          context,
          bound,
          {
            estimatedTokens: shape.estimatedTokens,
            actualTokens: attemptTokens,
            keep: (taken) => {
              permit = taken
            }
          },
          scope
        ).pipe(
          Effect.onError(() => Scope.close(scope, Exit.void))
        )
      })
      if (direct === undefined || shaped === undefined) return general
      return streamFast.attempt(
        env,
        direct,
        context,
        bound,
        shaped,
        (response) =>
          firstContent(
            streamPull.fromResponse(env, call, response, context, shape.includeUsage, shape.choices, outer),
            context,
            (read) => ({ ...read, permit: undefined, fused: true })
          ),
        (release) => {
          ending.release = release
        },
        general
      )
    })
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
 * The usage record of a stream, begun at `begun`, written when the stream's
 * scope closes, however it ends: the usage chunk's counts, or an estimate
 * from the text that was seen, or none.
 */
const record = (
  tracker: UsageTracker.UsageTracker.Service,
  chatRequest: ChatCompletionRequest,
  call: CallState,
  seen: Seen,
  begun: number,
  exit: Exit.Exit<unknown, unknown>
): Effect.Effect<unknown> =>
  usage.recordCall(tracker, chatRequest, call, begun, {
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

/**
 * Holds the stream's place in the budget, then `then`. A tracker with no
 * budget has nothing to hold: its reservation is taken in the caller's step.
 */
const reserve = <A>(
  tracker: UsageTracker.UsageTracker.Service,
  env: Environment,
  chatRequest: ChatCompletionRequest,
  seen: Seen,
  then: Effect.Effect<A, InferenceError.InferenceError>
): Effect.Effect<A, InferenceError.InferenceError> => {
  const models = modelsOf(chatRequest.model, env.options.fallback)
  const now = UsageTrackerInternal.reserveNow(tracker, chatRequest, models)
  if (now !== undefined) {
    seen.reservation = now
    return then
  }
  return Effect.zipRight(
    Effect.map(tracker.reserve(chatRequest, models), (reservation) => {
      seen.reservation = reservation
    }),
    then
  )
}

/** What a stream's channel writes, and how it ends. */
type Out = Channel.Channel<
  Chunk.Chunk<ChatCompletionChunk>,
  unknown,
  InferenceError.InferenceError,
  unknown,
  void,
  unknown
>

const end: Effect.Effect<Out> = Effect.succeed(Channel.void)

/**
 * The chunks of a started stream for the consumer: the prefix read before the
 * first content, then the rest under the idle timeout, written by a channel
 * that pulls and writes, nothing else. Each read does in one place what stream
 * stages would do per read (each stage costs a few runtime operations, and a
 * stream paced token by token has a read per chunk): chunks are counted as
 * they leave (a later failure is not retried and says how far it got), the
 * usage chunk settles the rate-limit permit, and the end is logged and
 * annotated.
 *
 * `Stream.repeatEffectChunkOption` over a pull would do the same through an
 * `Option`, a tuple and two more operations per read, and a pull of its own
 * here (to count and settle) two more again.
 */
const rest = (
  env: Environment,
  started: Started,
  seen: Seen,
  scope: Scope.Scope,
  ending: Ending
): Effect.Effect<Out> =>
  Effect.clockWith((clock) => {
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
    const counting = env.tracker !== undefined
    const stop = (
      cause: Option.Option<InferenceError.InferenceError>
    ): Effect.Effect<Out, InferenceError.InferenceError> => {
      if (Option.isNone(cause)) {
        seen.ended = true
        return env.tracing ? Effect.zipRight(Effect.annotateCurrentSpan("inference.outcome", "success"), end) : end
      }
      const error = cause.value
      seen.failure = error
      const logged = logFailure(error, context.attempt, Option.none())
      return Effect.zipRight(
        env.tracing ? Effect.zipRight(logged, Effect.annotateCurrentSpan("inference.outcome", error._tag)) : logged,
        Effect.fail(error)
      )
    }
    /** Counts the chunks as they leave, settles the permit from the usage chunk, and writes them; then `next`. */
    const send = (chunks: Chunk.Chunk<ChatCompletionChunk>, next: () => Out): Out => {
      context.chunksDelivered = (context.chunksDelivered ?? 0) + chunks.length
      let settle: Effect.Effect<void> | undefined
      for (const chunk of Chunk.toReadonlyArray(chunks)) {
        if (counting) seen.generatedChars += ChunkInternal.contentLength(chunk)
        if (chunk.usage !== undefined) {
          seen.usage = chunk.usage
          if (started.permit !== undefined) settle = started.permit.settle(tokens.reportedTotal(chunk.usage))
        }
      }
      const written = Channel.flatMap(Channel.write(chunks), next)
      return settle === undefined ? written : Channel.unwrap(Effect.as(settle, written))
    }
    const withPrefix = (next: Out): Out =>
      started.prefix.length === 0
        ? next
        : Channel.suspend(() => send(Chunk.unsafeFromArray(started.prefix), () => next))
    const annotated = (out: Effect.Effect<Out>): Effect.Effect<Out> =>
      env.tracing ? Effect.zipRight(Effect.annotateCurrentSpan("inference.attempts", context.attempt), out) : out
    if (started.ended) {
      return annotated(Effect.succeed(withPrefix(Channel.unwrap(Effect.suspend(() => stop(Option.none()))))))
    }
    const guarded = (guard: timeout.IdleGuard): Out => {
      // A read begins when the consumer asks for more, not when the last batch went out.
      const more: Out = Channel.suspend(() => {
        guard.begin()
        return read
      })
      const thenMore = () => more
      const read: Out = Channel.unwrap(Effect.matchEffect(started.pull, {
        onSuccess: (chunks) => {
          guard.end()
          // The watchdog stopped the read as these came: the stream fails with the idle timeout all the same.
          return guard.expired() ? stop(idle()) : Effect.succeed(send(chunks, thenMore))
        },
        onFailure: (cause) => {
          guard.end()
          // The read failed because the watchdog stopped it: what it failed with is the idle timeout.
          return stop(guard.expired() ? idle() : cause)
        }
      }))
      return withPrefix(more)
    }
    if (started.fused) {
      // The fused path's idle timer is stopped by the stream's one finalizer, before the attempt is let go of, as
      // the general path's is by a finalizer of its own.
      const timer = timeout.unsafeIdleTimer(started.abort, env.options.idleTimeout, clock)
      if (timer !== undefined) {
        ending.stopIdle = timer.stop
        return annotated(Effect.succeed(guarded(timer.guard)))
      }
    }
    return annotated(Effect.map(timeout.idleGuard(started.abort, env.options.idleTimeout, scope), guarded))
  })

/**
 * The stream of the channel that `setup` gives, `setup` given a scope of the
 * stream's own that closes, with the stream's end, however it ends (the
 * request aborted and its slot released if it is left early). The scope is
 * made outside the channel's finalizer and nothing masks the gap: a scope
 * left there has nothing in it yet.
 *
 * `Stream.unwrapScoped` does the same as a stream of streams, flattened: every
 * chunk passes through the flattening.
 * `pnpm --filter @effect-inference/benchmarks bench --scenario stream --only client --rounds 1`
 * (median of 3 interleaved runs) measured 18.7 µs of CPU per chunk paced and
 * 910 per 10-chunk stream with it, 15.0 and 721 with this. The scope is handed
 * to what holds something until the stream ends, rather than put in the
 * context: providing a service takes more runtime operations than a read.
 */
const scopedChannel = <R>(
  setup: (scope: Scope.Scope) => Effect.Effect<Out, InferenceError.InferenceError, R>
): Stream.Stream<ChatCompletionChunk, InferenceError.InferenceError, R> =>
  Stream.fromChannel(
    Channel.unwrap(Effect.map(
      Scope.make(),
      (scope) => Channel.ensuringWith(Channel.unwrap(setup(scope)), (exit) => Scope.close(scope, exit))
    ))
  )

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
  const stream = scopedChannel((scope) =>
    Effect.clockWith((clock) => {
      const begun = clock.unsafeCurrentTimeMillis()
      const call = callState(chatRequest.model)
      const seen: Seen = {
        failure: undefined,
        ended: false,
        usage: undefined,
        generatedChars: 0,
        reservation: undefined
      }
      const ending: Ending = { stopIdle: undefined, release: undefined }
      const tracker = env.tracker
      // The stream's one finalizer of its own, added first so that it runs last: see `Ending`.
      const finalizer = Scope.addFinalizerExit(scope, (exit) => {
        ending.stopIdle?.()
        const released = ending.release?.() ?? Effect.void
        if (tracker === undefined) return released
        const recorded = record(tracker, chatRequest, call, seen, begun, exit)
        return released === Effect.void ? recorded : Effect.zipRight(released, recorded)
      })
      const started = Effect.flatMap(
        pipeline.call(
          env,
          call,
          chatRequest.model,
          (model) => start(env, call, chatRequest, extra, model, shape, scope, ending)
        ),
        (started) => rest(env, started, seen, scope, ending)
      )
      // Up to the first content, a failure is the stream's, and its usage record says so (`rest` cannot fail).
      return Effect.zipRight(
        finalizer,
        Effect.tapError(
          tracker === undefined ? started : reserve(tracker, env, chatRequest, seen, started),
          (error) =>
            Effect.sync(() => {
              seen.failure = error
            })
        )
      )
    })
  )
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
