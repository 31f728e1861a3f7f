/**
 * Where a plain call runs: `chatCompletion` through the cache, the budget and
 * the policies of `pipeline.ts` to one HTTP exchange per attempt, and
 * `listModels` through the inner part of the same path.
 */
import type * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import type * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type { ChatCompletion, ChatCompletionRequest } from "../ChatCompletion.js"
import type * as InferenceError from "../InferenceError.js"
import type { Model } from "../Model.js"
import * as RateLimit from "../RateLimit.js"
import * as ResponseCache from "../ResponseCache.js"
import * as BoundedBody from "./boundedBody.js"
import * as ChunkInternal from "./chunks.js"
import * as classify from "./classify.js"
import type { CallState, Environment } from "./environment.js"
import { callState } from "./environment.js"
import { modelsOf } from "./fallback.js"
import * as pipeline from "./pipeline.js"
import * as request from "./request.js"
import * as response from "./response.js"
import * as ResponseCacheInternal from "./responseCache.js"
import * as timeout from "./timeout.js"
import * as tokens from "./tokens.js"
import * as usage from "./usage.js"

/** What a 2xx response becomes. */
type OnSuccess<A> = (
  response: HttpClientResponse.HttpClientResponse,
  context: classify.CallContext,
  limits: BoundedBody.Limits
) => Effect.Effect<A, InferenceError.InferenceError>

/**
 * One HTTP exchange: the request sent, the response's request id kept, a 2xx
 * body read by `onSuccess` and any other status classified. An interruption
 * after the response came (a timeout, the caller) lets go of it before
 * whatever holds the attempt's slot is released.
 */
const exchange = <A>(
  env: Environment,
  call: CallState,
  httpRequest: HttpClientRequest.HttpClientRequest,
  context: classify.CallContext,
  onSuccess: OnSuccess<A>
): Effect.Effect<A, InferenceError.InferenceError> =>
  BoundedBody.withResponse(
    Effect.mapError(env.http.execute(httpRequest), (error) => classify.fromHttpClientError(error, context)),
    (received) => {
      call.requestId = classify.requestIdOf(received.headers, env.secret)
      return received.status >= 200 && received.status < 300
        ? onSuccess(received, context, env.options)
        : response.failFromResponse(received, context, env.options)
    }
  )

/** One model's attempts of a plain request: each an exchange under the attempt policies. */
const send = <A>(
  env: Environment,
  call: CallState,
  spanName: string,
  model: string | undefined,
  httpRequest: HttpClientRequest.HttpClientRequest,
  onSuccess: OnSuccess<A>,
  charge: Omit<pipeline.Charge<A>, "limiter">
): Effect.Effect<A, InferenceError.InferenceError> =>
  pipeline.retried(env, call, spanName, model, (context) =>
    pipeline.attempt(
      exchange(env, call, httpRequest, context, onSuccess),
      env,
      context,
      { duration: env.options.timeout, phase: "attempt" },
      charge,
      "attempt"
    ))

/** The tokens a plain call used, from how it ended: its reported usage, or what a failure says was sent. Built once. */
const completionTokens: (exit: Exit.Exit<ChatCompletion, InferenceError.InferenceError>) => number | undefined = Exit
  .match({
    onSuccess: (completion) => tokens.reportedTotal(completion.usage),
    onFailure: RateLimit.tokensOfFailure
  })

/** A chat completion of a checked request, past the cache: budget, total timeout, fallback, retries, attempts. */
const live = (
  env: Environment,
  chatRequest: ChatCompletionRequest,
  extra: request.Extra
): Effect.Effect<ChatCompletion, InferenceError.InferenceError> =>
  Effect.suspend(() => {
    const call = callState(chatRequest.model)
    const charge: Omit<pipeline.Charge<ChatCompletion>, "limiter"> = {
      estimatedTokens: env.limiter === undefined ? 0 : RateLimit.estimateTokens(chatRequest),
      actualTokens: completionTokens
    }
    return pipeline.call(env, call, chatRequest.model, (model) =>
      Effect.flatMap(
        request.jsonBody(request.completionBody(chatRequest, model, extra)),
        (httpRequest) =>
          send(
            env,
            call,
            "InferenceClient.chatCompletion",
            model,
            httpRequest,
            response.decodeCompletionResponse,
            charge
          )
      )).pipe(
        usage.withUsage({
          tracker: env.tracker,
          request: chatRequest,
          models: modelsOf(chatRequest.model, env.options.fallback),
          call
        })
      )
  })

/**
 * A chat completion through the cache: a fresh entry (a completion, or a
 * stream's chunks folded into one) is the answer, and identical concurrent
 * calls make one request; otherwise the answer is stored.
 */
const cached = (
  env: Environment,
  chatRequest: ChatCompletionRequest,
  extra: request.Extra,
  use: ResponseCacheInternal.CacheUse
): Effect.Effect<ChatCompletion, InferenceError.InferenceError> =>
  Effect.flatMap(Clock.currentTimeMillis, (start) => {
    const key = ResponseCache.key({
      baseUrl: env.options.baseUrl,
      project: env.options.project,
      request: request.completionBody(chatRequest, chatRequest.model, extra)
    })
    const run = live(env, chatRequest, extra)
    return use.read
      ? Effect.flatMap(
        use.cache.getOrCompute(
          key,
          Effect.map(run, (completion) => new ResponseCache.CachedCompletion({ completion })),
          use.ttl
        ),
        ({ entry, hit }) => {
          const completion = entry._tag === "CachedCompletion"
            ? entry.completion
            : ChunkInternal.toCompletion(entry.chunks)
          return Effect.as(
            Effect.zipRight(
              ResponseCacheInternal.countLookup(hit),
              hit ? usage.recordHit(env.tracker, chatRequest.model, false, start) : Effect.void
            ),
            completion
          )
        }
      )
      : Effect.tap(run, (completion) => use.cache.set(key, new ResponseCache.CachedCompletion({ completion }), use.ttl))
  })

/**
 * `chatCompletion` of a checked call.
 *
 * @internal
 */
export const chatCompletion = (
  env: Environment,
  { extra, request: { stream_options: _, ...chatRequest }, use }: request.Checked
): Effect.Effect<ChatCompletion, InferenceError.InferenceError> =>
  // stream_options is refused by OpenAI-compatible servers unless stream is true
  use === undefined ? live(env, chatRequest, extra) : cached(env, chatRequest, extra, use)

const decodeModels: OnSuccess<ReadonlyArray<Model>> = (received, context, limits) =>
  Effect.map(response.decodeModels(received, context, limits), (list) => list.data)

/**
 * `listModels`: the total timeout, retries and the attempt policies (a breaker
 * of its own, the rate limiter for a request of no tokens); not cached,
 * budgeted or tracked, and with no model to fall back from.
 *
 * @internal
 */
export const listModels = (env: Environment): Effect.Effect<ReadonlyArray<Model>, InferenceError.InferenceError> =>
  Effect.suspend(() => {
    const call = callState(undefined)
    return send(env, call, "InferenceClient.listModels", undefined, request.listModels, decodeModels, {
      estimatedTokens: 0,
      actualTokens: () => undefined
    }).pipe(timeout.withTotalTimeout(env.options.totalTimeout, call))
  })
