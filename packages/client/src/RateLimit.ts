/**
 * Client-side rate limits: at most so many HTTP requests, and at most so many
 * tokens, in any span of time of a given length, so that a batch stays under a
 * known quota instead of finding it with 429s.
 *
 * A call reserves an estimate of its tokens before it is sent (see
 * {@link estimateTokens}) and settles the reservation with the `usage` the
 * server reports afterwards: an over-estimate is given back at once, an
 * under-estimate is charged, and the callers after it wait for it.
 *
 * Effect's `RateLimiter` does not fit, for three reasons: its cost is fixed when
 * a call is let through, so a reservation can be neither given back nor topped
 * up once `usage` is known; both of its algorithms let up to twice the limit
 * through within one interval (a fixed window restarts the whole budget at a
 * boundary of its own, a token bucket adds its refill to a full bucket), while a
 * provider's window is aligned with neither; and it refills from a background
 * fiber, so it needs a `Scope`. This module keeps a log of charges and lets a
 * call through only if the charges of the last `interval` leave room for it, so
 * the limit holds in every window, wherever the provider's starts. It is built
 * from Effect's `Clock` and `Deferred` and a FIFO queue: a waiting caller sleeps in
 * its own fiber, nothing runs in the background, and `TestClock` tests are exact.
 *
 * The logs live in a `RateLimitStore`: by default one in memory for each
 * limiter; a limiter made where one is provided keeps them there (a store
 * shared by several processes keeps one quota across all of them).
 *
 * @since 0.1.0
 */
import type * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import type * as Effect from "effect/Effect"
import type * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import type { ChatCompletionRequestInput } from "./ChatCompletion.js"
import type { CoordinationError, InferenceError } from "./InferenceError.js"
import * as internal from "./internal/rateLimit.js"
import * as tokens from "./internal/tokens.js"

/**
 * One limit: at most `limit` in any span of `interval`.
 *
 * @since 0.1.0
 * @category models
 */
export interface Limit {
  /** A whole number >= 1. */
  readonly limit: number
  /** A positive duration, for example `"1 minute"`. */
  readonly interval: Duration.DurationInput
}

/**
 * The limits to keep. Either may be left out; with neither, calls pass at once.
 * Invalid values (a limit that is not a whole number >= 1, an interval that is
 * not a positive duration) stop the program when the limiter is made, with a
 * message naming the option, as they are a programming error.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /**
   * HTTP requests per interval. Every attempt is a request, retries included,
   * as that is what the provider counts.
   */
  readonly requests?: Limit | undefined
  /**
   * Tokens (prompt and completion) per interval. A call reserves its estimate
   * from when it is sent until it is settled, and is charged what it used for
   * one `interval` from then: the provider may count a call's tokens when it
   * starts or when it ends, and the charge covers both.
   */
  readonly tokens?: Limit | undefined
}

/**
 * The place a call holds in the limits, from when it is let through until it is
 * settled.
 *
 * @since 0.1.0
 * @category models
 */
export interface Permit {
  /**
   * The tokens reserved: the estimate, rounded up, and at most the token limit
   * (a larger estimate waits for an empty window and is let through alone, then
   * charged what it really used).
   */
  readonly tokens: number
  /**
   * Replaces the reservation with the tokens the call used, charged from now for
   * one interval: less gives the difference back at once (waiting callers are
   * woken), more makes later callers wait. `0` gives it all back (a call the
   * server refused). `undefined`, or anything but a whole number from 0 below
   * 10^9 (`NaN`, `Infinity`, `-5`, `1.5`, `1e308`: a server's broken report),
   * charges the reservation, `tokens` (usage unknown). A charge above the token
   * limit counts as the whole limit: it fills the window for one interval, and
   * no more. Only the first settlement counts.
   */
  readonly settle: (actualTokens: number | undefined) => Effect.Effect<void>
}

/**
 * What a call costs, for {@link RateLimit.withLimit}.
 *
 * @since 0.1.0
 * @category models
 */
export interface Cost<A, E> {
  /** The tokens to reserve before the call, usually {@link estimateTokens} of its request. */
  readonly estimatedTokens: number
  /**
   * The tokens the call used, read from how it ended (for example
   * `usage.total_tokens` of a completion); `undefined` charges the
   * reservation. Default: the reservation, however it ended.
   */
  readonly actualTokens?: ((exit: Exit.Exit<A, E>) => number | undefined) | undefined
}

/**
 * A limiter. Callers are let through roughly in the order they came: one that
 * waits for room holds back those behind it, so a large call is not starved by
 * small ones.
 *
 * @since 0.1.0
 * @category models
 */
export interface RateLimit {
  /**
   * Waits until one more request and `estimatedTokens` fit in the limits, then
   * takes them. Waiting can be interrupted, and an interrupted caller takes
   * nothing. A permit not settled by the time the scope closes is settled then
   * with its reservation. Fails with `CoordinationError` if the
   * `RateLimitStore` cannot answer, and with a defect if `estimatedTokens` is
   * negative or not a number.
   */
  readonly acquire: (estimatedTokens: number) => Effect.Effect<Permit, CoordinationError, Scope.Scope>
  /**
   * Runs `self` as one request of `cost.estimatedTokens` tokens: waits for room,
   * runs it, and settles the permit with `cost.actualTokens` of its exit
   * (interrupted included). Fails with `CoordinationError`, without running
   * `self`, if the `RateLimitStore` cannot answer.
   */
  readonly withLimit: {
    <A, E>(
      cost: Cost<A, E>
    ): <A2 extends A, E2 extends E, R>(
      self: Effect.Effect<A2, E2, R>
    ) => Effect.Effect<A2, E2 | CoordinationError, R>
    <A, E, R>(
      self: Effect.Effect<A, E, R>,
      cost: Cost<NoInfer<A>, NoInfer<E>>
    ): Effect.Effect<A, E | CoordinationError, R>
  }
}

/**
 * Makes a limiter. It needs no `Scope`: nothing runs between calls.
 *
 * @example
 * ```ts
 * import { RateLimit } from "@effect-inference/client"
 * import { Effect } from "effect"
 *
 * const program = Effect.gen(function*() {
 *   const limiter = yield* RateLimit.make({
 *     requests: { limit: 60, interval: "1 minute" },
 *     tokens: { limit: 100_000, interval: "1 minute" }
 *   })
 *   const request = { model: "m", messages: [{ role: "user" as const, content: "Hi" }], max_tokens: 200 }
 *   // Stands for a call that reports it used 120 tokens.
 *   const call = Effect.succeed({ usage: { total_tokens: 120 } })
 *   return yield* limiter.withLimit(call, {
 *     estimatedTokens: RateLimit.estimateTokens(request),
 *     actualTokens: (exit) => exit._tag === "Success" ? exit.value.usage.total_tokens : 0
 *   })
 * })
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: (options: Options) => Effect.Effect<RateLimit> = internal.make

/**
 * The limiter shared by everything built with {@link layer}: provide it to
 * keep one quota (a W&B project's) across several clients.
 *
 * @since 0.1.0
 * @category tags
 */
export class Limiter extends Context.Tag("@effect-inference/client/RateLimit/Limiter")<Limiter, RateLimit>() {}

/**
 * A limiter as a `Layer`.
 *
 * @example
 * ```ts
 * import { InferenceClient, RateLimit } from "@effect-inference/client"
 * import { Layer } from "effect"
 *
 * // Every client built with it keeps to the project's one quota.
 * const InferenceLive = InferenceClient.layerConfig().pipe(
 *   Layer.provide(RateLimit.layer({ requests: { limit: 300, interval: "1 minute" } }))
 * )
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options): Layer.Layer<Limiter> => Layer.effect(Limiter, make(options))

/**
 * The completion budget {@link estimateTokens} assumes for a request that sets
 * neither `max_completion_tokens` nor `max_tokens`: 1024 tokens.
 *
 * @since 0.1.0
 * @category constants
 */
export const DEFAULT_COMPLETION_TOKENS: number = tokens.DEFAULT_COMPLETION_TOKENS

/**
 * An upper-leaning estimate of the tokens a chat completion request will use,
 * computed before it is sent:
 *
 * - the prompt: 3, plus for each message 4 and a token per 4 characters of its
 *   text (text parts, name, refusal, tool calls as JSON) rounded up, plus 1000
 *   per image, plus a token per 4 characters of the JSON of `tools` and of a
 *   `json_schema` response format;
 * - the completion: `max_completion_tokens ?? max_tokens ??`
 *   {@link DEFAULT_COMPLETION_TOKENS}, times `n`.
 *
 * Four characters a token fits English prose; code and non-Latin scripts use
 * more tokens per character. The estimate only has to be close: a call settled
 * with its `usage` is charged what it really used.
 *
 * @example
 * ```ts
 * import { RateLimit } from "@effect-inference/client"
 * import { strictEqual } from "node:assert"
 *
 * // 3 + (4 + 2) for the prompt, 100 for the completion
 * strictEqual(
 *   RateLimit.estimateTokens({ model: "m", messages: [{ role: "user", content: "Hi there" }], max_tokens: 100 }),
 *   109
 * )
 * ```
 *
 * @since 0.1.0
 * @category estimates
 */
export const estimateTokens: (request: ChatCompletionRequestInput) => number = tokens.estimateTokens

/**
 * The client's rule for what a failed call is charged: nothing (`0`) when the
 * server refused it with an error status before any content, or it was never
 * sent (refused before sending, or a `ConnectionError` with `sent: false`: the
 * connection refused, the host not found, a TLS failure), since it generated
 * nothing and W&B does not bill failed requests; the estimate (`undefined`)
 * when it may have generated tokens all the same: a timeout, a connection lost
 * after sending, an undecodable 2xx body, a stream that broke off after
 * content, an interruption or a defect. The usage tracker charges a budget by
 * the same rule.
 *
 * @example
 * ```ts
 * import { type ChatCompletion, InferenceClient, RateLimit } from "@effect-inference/client"
 * import { Effect, Exit } from "effect"
 *
 * // A call under a limiter of your own, charged as the client charges its own calls.
 * const limited = (limiter: RateLimit.RateLimit, request: ChatCompletion.ChatCompletionRequestInput) =>
 *   Effect.flatMap(InferenceClient.InferenceClient, (client) =>
 *     limiter.withLimit(client.chatCompletion(request), {
 *       estimatedTokens: RateLimit.estimateTokens(request),
 *       actualTokens: (exit) =>
 *         Exit.isSuccess(exit) ? exit.value.usage?.total_tokens : RateLimit.tokensOfFailure(exit.cause)
 *     }))
 * ```
 *
 * @since 0.1.0
 * @category estimates
 */
export const tokensOfFailure: (cause: Cause.Cause<InferenceError>) => 0 | undefined = tokens.tokensOfFailure
