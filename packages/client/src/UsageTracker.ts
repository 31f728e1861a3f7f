/**
 * Usage monitoring and budgets: what each call used and cost, totals by model,
 * metrics, one usage log line per call, and an optional spending limit that
 * alerts at thresholds and refuses calls that would go past it.
 *
 * The client records every call in a tracker (its own, or the one provided
 * with {@link layer}, which is how an application reads totals, events and
 * alerts). A budget reserves each call's upper estimate before it is sent and
 * settles it from the `usage` the server reports, so calls in flight at the
 * same time cannot spend past the limit together. The budget lives in a
 * `BudgetStore`: by default one in memory for each tracker; a tracker made
 * where one is provided keeps its budget there (a store shared by several
 * processes, and kept across restarts, keeps one budget for all of them).
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import type * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as LogLevel from "effect/LogLevel"
import type * as Queue from "effect/Queue"
import type * as Scope from "effect/Scope"
import type * as Stream from "effect/Stream"
import type { ChatCompletionRequestInput, Usage } from "./ChatCompletion.js"
import type {
  BudgetDimension,
  BudgetExceededError,
  CoordinationError,
  InferenceError,
  InvalidRequestError
} from "./InferenceError.js"
import * as pricing from "./internal/pricing.js"
import * as tokens from "./internal/tokens.js"
import * as events from "./internal/usageEvents.js"
import * as usageMetrics from "./internal/usageMetrics.js"
import * as internal from "./internal/usageTracker.js"

/**
 * A model's price in US dollars per million tokens, with W&B's three rates:
 * prompt tokens (`input`), prompt tokens the server read from its prefix cache
 * (`cachedInput`, the `input` rate when left out) and completion tokens
 * (`output`, reasoning included). A call costs
 *
 * ```
 * ((prompt - cached) * input + cached * cachedInput + completion * output) / 1,000,000
 * ```
 *
 * where `cached` is `usage.prompt_tokens_details.cached_tokens` (0 when the
 * server reports none).
 *
 * @since 0.1.0
 * @category models
 */
export interface Price {
  readonly input: number
  /**
   * The rate of cached prompt tokens; default `input`.
   *
   * @since 0.2.0
   */
  readonly cachedInput?: number | undefined
  readonly output: number
}

/**
 * Example prices for the models of W&B's catalogue (as of late 2026), in US
 * dollars per million tokens. They are made-up examples so that cost tracking
 * works out of the box, **not** W&B's price list: prices and the catalogue
 * change every month, so pass your own from W&B's pricing page as `prices`
 * (they are merged over these, model by model).
 *
 * @since 0.1.0
 * @category constants
 */
export const DEFAULT_PRICES: Readonly<Record<string, Price>> = pricing.DEFAULT_PRICES

/**
 * A spending limit. Give `usd`, `tokens` or both; each is watched on its own.
 *
 * - `period`: the budget starts again every `period`, counted from when the
 *   tracker was made (for example `"1 day"`). Default: none, the limit covers
 *   the tracker's whole life.
 * - `thresholds`: fractions of the limit at which an alert is published and
 *   logged, once each per period. Default `[0.5, 0.8, 1]`.
 *
 * Invalid values (a limit that is not positive, a threshold outside (0, 1], a
 * period that is not a positive duration) stop the program when the tracker is
 * made, with a message naming the option, as they are a programming error.
 *
 * @since 0.1.0
 * @category models
 */
export interface Budget {
  readonly usd?: number | undefined
  readonly tokens?: number | undefined
  readonly period?: Duration.DurationInput | undefined
  readonly thresholds?: ReadonlyArray<number> | undefined
}

/**
 * How a tracker is set up. Everything is optional.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** Prices per model, merged over {@link DEFAULT_PRICES}. */
  readonly prices?: Readonly<Record<string, Price>> | undefined
  /** A spending limit; default none. */
  readonly budget?: Budget | undefined
  /**
   * The level of the usage log line, `"None"` for no line. Default `"Debug"`,
   * below the minimum level of Effect's default logger (Info), so an application
   * sees the line only when it asks: `"Info"` here, or a minimum level of Debug.
   */
  readonly logLevel?: LogLevel.Literal | undefined
  /**
   * Adds the request's messages to the usage log line. Default `false`: prompts
   * often hold personal data, and a log is the wrong place to keep them.
   */
  readonly logPrompt?: boolean | undefined
}

/**
 * Where a call's token counts came from: the server's `usage` (`reported`), an
 * estimate (`estimated`: a stream the consumer left early, a call that timed
 * out after it may have been processed), or nothing used (`none`: refused,
 * never sent, or answered from the cache).
 *
 * @since 0.1.0
 * @category models
 */
export const UsageSource: typeof events.UsageSource = events.UsageSource

/**
 * @since 0.1.0
 * @category models
 */
export type UsageSource = events.UsageSource

/**
 * What one call used, published on `events` and
 * written as the usage log line. `outcome` is `"success"`, the error's tag,
 * `"Interrupted"` (for a stream, also when its consumer stopped early) or
 * `"Defect"`. `timestamp` is in milliseconds since the epoch, from the
 * `Clock`.
 *
 * A `Schema.Class` with the fields `timestamp`, `model`, `stream`, `cached`,
 * `outcome`, `attempts`, `promptTokens`, `completionTokens`, `totalTokens`,
 * `cachedTokens` (the prompt tokens the server read from its prefix cache,
 * part of `promptTokens` and priced at `cachedInput`; 0 when it reports none;
 * since 0.2.0), `reasoningTokens` (the completion tokens the model spent
 * thinking, part of `completionTokens`; 0 when the server reports none; since
 * 0.2.0), `usage` (a {@link UsageSource}), `costUsd`, `priced` (`false` when
 * the model has no price, so its cost counts as 0), `latencyMillis` and
 * `requestId` (optional).
 *
 * @since 0.1.0
 * @category models
 */
export const UsageEvent: typeof events.UsageEvent = events.UsageEvent

/**
 * @since 0.1.0
 * @category models
 */
export type UsageEvent = events.UsageEvent

/**
 * Spending crossed a threshold of a budget (published once per threshold and
 * period): a `Schema.TaggedClass` with the fields `dimension`, `threshold`
 * (the fraction of the limit crossed, for example `0.8`), `spent`, `limit`,
 * `periodStart` (when the budget's period started, in milliseconds since the
 * epoch) and `model` (of the call that crossed it).
 *
 * @since 0.1.0
 * @category models
 */
export const BudgetAlert: typeof events.BudgetAlert = events.BudgetAlert

/**
 * @since 0.1.0
 * @category models
 */
export type BudgetAlert = events.BudgetAlert

/**
 * The server said the account is out of credits or at its spending cap (a
 * `QuotaExceededError`: 402, or a 429 about quota). Published every time. A
 * `Schema.TaggedClass` with the fields `model`, `status` (optional),
 * `requestId` (optional) and `message`.
 *
 * @since 0.1.0
 * @category models
 */
export const QuotaAlert: typeof events.QuotaAlert = events.QuotaAlert

/**
 * @since 0.1.0
 * @category models
 */
export type QuotaAlert = events.QuotaAlert

/**
 * An alert, published on `alerts` and logged as a
 * warning.
 *
 * @since 0.1.0
 * @category models
 */
export const Alert: typeof events.Alert = events.Alert

/**
 * @since 0.1.0
 * @category models
 */
export type Alert = events.Alert

/**
 * Totals over a set of calls.
 *
 * @since 0.1.0
 * @category models
 */
export interface Summary {
  readonly calls: number
  readonly succeeded: number
  readonly failed: number
  /** Calls answered from the response cache (they cost nothing). */
  readonly cacheHits: number
  readonly attempts: number
  readonly promptTokens: number
  readonly completionTokens: number
  readonly totalTokens: number
  /**
   * Cached prompt tokens, part of `promptTokens`.
   *
   * @since 0.2.0
   */
  readonly cachedTokens: number
  /**
   * Reasoning tokens, part of `completionTokens`.
   *
   * @since 0.2.0
   */
  readonly reasoningTokens: number
  readonly costUsd: number
}

/**
 * Totals overall and by model, since the tracker was made.
 *
 * @since 0.1.0
 * @category models
 */
export interface Totals {
  readonly overall: Summary
  readonly byModel: Readonly<Record<string, Summary>>
}

/**
 * Where one budget stands now.
 *
 * @since 0.1.0
 * @category models
 */
export interface BudgetStatus {
  readonly dimension: BudgetDimension
  readonly limit: number
  /** Settled spending in the current period. */
  readonly spent: number
  /** Held by calls in flight. */
  readonly reserved: number
  readonly remaining: number
  readonly periodStart: number
  /** When the period ends, in milliseconds since the epoch; `undefined` without a period. */
  readonly periodEnd: number | undefined
}

/**
 * A call's hold on the budget, from `reserve` until
 * the call is recorded.
 *
 * @since 0.1.0
 * @category models
 */
export interface Reservation {
  readonly model: string
  readonly promptTokens: number
  readonly completionTokens: number
  readonly usd: number
}

/**
 * The tokens a call used, for {@link CallRecord}. `cachedTokens` (part of
 * `promptTokens`) and `reasoningTokens` (part of `completionTokens`) default
 * to 0; `estimated` marks counts the client guessed.
 *
 * Every count must be a whole number from 0 below 10^9. A usage with any
 * other count (`Infinity`, `NaN`, `-5`, `1.5`, `1e308`), or with `invalid`
 * set, is not believed: the call is counted as if it had reported no usage,
 * at its reservation's estimate, and a warning naming the count is logged.
 *
 * @since 0.2.0
 * @category models
 */
export interface CallUsage {
  readonly promptTokens: number
  readonly completionTokens: number
  readonly cachedTokens?: number | undefined
  readonly reasoningTokens?: number | undefined
  readonly estimated?: boolean | undefined
  /**
   * The name of a count the server reported that is not a token count (for
   * example `"total_tokens"`), set by {@link callUsage}: the usage is then
   * not believed.
   *
   * @since 0.2.0
   */
  readonly invalid?: string | undefined
}

/**
 * The {@link CallUsage} of a `usage` the server reported: its token counts and
 * the details `prompt_tokens_details.cached_tokens` and
 * `completion_tokens_details.reasoning_tokens`. A report with a count that is
 * not a whole number from 0 below 10^9 (`total_tokens` included, which the
 * tracker does not otherwise read) comes back with `invalid` naming it.
 *
 * @example
 * ```ts
 * import { ChatCompletion, UsageTracker } from "@effect-inference/client"
 *
 * // JSON reads 1e400 as Infinity
 * UsageTracker.callUsage(new ChatCompletion.Usage({ prompt_tokens: Infinity, completion_tokens: 2, total_tokens: 7 }))
 * // { promptTokens: Infinity, completionTokens: 2, cachedTokens: 0, reasoningTokens: 0, invalid: "prompt_tokens" }
 * ```
 *
 * @since 0.2.0
 * @category constructors
 */
export const callUsage: (usage: Usage) => CallUsage = events.callUsage

/**
 * What the client reports about a finished call to
 * `record`.
 *
 * - `usage`: the tokens used, or `undefined` if unknown; then a failure that
 *   generated nothing is counted as nothing (the server refused it with an
 *   error status, or it was never sent: refused before sending, or a
 *   `ConnectionError` with `sent: false`, as a refused connection), and any
 *   other ending (a timeout, a connection lost after sending, an interruption)
 *   as the reservation's estimate.
 * - `error`: the failure, if the call failed; `interrupted` if it was (or, for
 *   a stream, if its consumer stopped before the end); `defect` if it died.
 *
 * @since 0.1.0
 * @category models
 */
export interface CallRecord {
  readonly model: string
  readonly stream?: boolean | undefined
  readonly cached?: boolean | undefined
  readonly latency: Duration.DurationInput
  readonly attempts: number
  readonly requestId?: string | undefined
  readonly usage?: CallUsage | undefined
  readonly error?: InferenceError | undefined
  readonly interrupted?: boolean | undefined
  readonly defect?: boolean | undefined
  readonly reservation?: Reservation | undefined
  /** The request's messages, logged only with `logPrompt`. */
  readonly messages?: ChatCompletionRequestInput["messages"] | undefined
}

/**
 * The usage tracker service. The client records into the one in its context,
 * so an application reads totals, events and alerts from it, and several
 * clients share one budget.
 *
 * @example
 * ```ts
 * import { InferenceClient, UsageTracker } from "@effect-inference/client"
 * import { FetchHttpClient } from "@effect/platform"
 * import { Effect, Layer, Redacted } from "effect"
 *
 * const ClientLive = InferenceClient.layer({ apiKey: Redacted.make("my-key") }).pipe(
 *   Layer.provideMerge(UsageTracker.layer({ budget: { usd: 25, period: "30 days" } })),
 *   Layer.provide(FetchHttpClient.layer)
 * )
 *
 * const report = Effect.flatMap(UsageTracker.UsageTracker, (tracker) => tracker.report)
 * ```
 *
 * @since 0.1.0
 * @category tags
 */
export class UsageTracker extends Context.Tag("@effect-inference/client/UsageTracker")<
  UsageTracker,
  UsageTracker.Service
>() {}

/**
 * @since 0.1.0
 */
export declare namespace UsageTracker {
  /**
   * What a tracker can do.
   *
   * @since 0.1.0
   * @category models
   */
  export interface Service {
    /**
     * Holds the upper estimate of a call's cost against the budget, or fails with
     * `BudgetExceededError` if it does not fit beside what is spent and reserved.
     * `models` lists every model the call may go to (fallbacks): the estimate
     * uses the dearest. With a dollar budget, a model without a price fails with
     * `InvalidRequestError`, as its cost could not be held. A `BudgetStore`
     * that cannot answer and says `rejectCall` fails it with `CoordinationError`.
     * Without a budget it always succeeds.
     */
    readonly reserve: (
      request: ChatCompletionRequestInput,
      models?: ReadonlyArray<string>
    ) => Effect.Effect<Reservation, BudgetExceededError | InvalidRequestError | CoordinationError>
    /**
     * Records a finished call: settles its reservation, updates totals and
     * metrics, writes the usage log line, publishes the event and any alert.
     * A reservation is settled once; a second record of it only counts the call.
     */
    readonly record: (call: CallRecord) => Effect.Effect<UsageEvent>
    /**
     * The cost in US dollars of the given tokens, `cachedTokens` of the prompt
     * tokens priced at the `cachedInput` rate (default 0), or `undefined` for a
     * model without a price.
     */
    readonly costOf: (
      model: string,
      promptTokens: number,
      completionTokens: number,
      cachedTokens?: number
    ) => number | undefined
    readonly totals: Effect.Effect<Totals>
    /** One entry per budget dimension; empty without a budget. */
    readonly budget: Effect.Effect<ReadonlyArray<BudgetStatus>>
    /** Usage events from when the stream starts running. */
    readonly events: Stream.Stream<UsageEvent>
    /** Subscribes now, so no event published after this is missed. */
    readonly subscribe: Effect.Effect<Queue.Dequeue<UsageEvent>, never, Scope.Scope>
    /** Alerts from when the stream starts running. */
    readonly alerts: Stream.Stream<Alert>
    /** Subscribes to alerts now. */
    readonly subscribeAlerts: Effect.Effect<Queue.Dequeue<Alert>, never, Scope.Scope>
    /** The totals and budgets as a plain-text table. */
    readonly report: Effect.Effect<string>
  }
}

/**
 * Makes a tracker. Invalid options stop the program (see {@link Budget}).
 *
 * @example
 * ```ts
 * import { UsageTracker } from "@effect-inference/client"
 * import { Effect } from "effect"
 * import { strictEqual } from "node:assert"
 *
 * const program = Effect.gen(function*() {
 *   // Prices in US dollars per million tokens, merged over the defaults.
 *   const tracker = yield* UsageTracker.make({ prices: { "my-org/my-model": { input: 0.2, output: 0.6 } } })
 *   return tracker.costOf("my-org/my-model", 1_000_000, 500_000)
 * })
 *
 * strictEqual(Effect.runSync(program), 0.5)
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: (options?: Options) => Effect.Effect<UsageTracker.Service> = internal.make

/**
 * A tracker as a `Layer`.
 *
 * @example
 * ```ts
 * import { InferenceClient, UsageTracker } from "@effect-inference/client"
 * import { Effect, Layer, Stream } from "effect"
 *
 * const InferenceLive = InferenceClient.layerConfig().pipe(
 *   Layer.provideMerge(UsageTracker.layer({ budget: { usd: 100, period: "30 days", thresholds: [0.8, 1] } }))
 * )
 *
 * // Alerts at 80% and 100% of the month's budget.
 * const watchBudget = Effect.flatMap(UsageTracker.UsageTracker, (tracker) =>
 *   Stream.runForEach(tracker.alerts, (alert) => Effect.logWarning(alert)))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options?: Options): Layer.Layer<UsageTracker> => Layer.effect(UsageTracker, make(options))

/**
 * The metrics every tracker updates, so any Effect metrics exporter sees them:
 *
 * - `inference_calls_total` (counter; tags `model`, `outcome`)
 * - `inference_attempts_total` (counter; tag `model`)
 * - `inference_tokens_total` (counter; tags `model`, `kind`: `prompt` or `completion`, and
 *   `cached` and `reasoning`, which are parts of `prompt` and `completion`: do not add them in)
 * - `inference_call_duration_ms` (histogram; tag `model`)
 * - `inference_cost_usd` (gauge, running total; tag `model`)
 *
 * @since 0.1.0
 * @category metrics
 */
export const metrics = usageMetrics.metrics

/**
 * What a request is expected to use and cost before it is sent: the estimate
 * a budget holds for it (see {@link estimate}).
 *
 * - `promptTokens`: the prompt, estimated from its text at about 4 characters
 *   a token (the server's tokenizer decides the real count).
 * - `completionTokens`: the most the request may generate: `max_completion_tokens`,
 *   else `max_tokens`, else 1,024, times `n`.
 * - `usd`: from no completion at all (`min`: the prompt at the cheaper input
 *   rate) to the whole `completionTokens` (`max`: the prompt at the dearer
 *   input rate, what a budget reserves); `undefined` for a model without a price.
 *
 * @since 0.2.0
 * @category models
 */
export interface Estimate {
  readonly model: string
  readonly promptTokens: number
  readonly completionTokens: number
  readonly usd: { readonly min: number; readonly max: number } | undefined
}

/**
 * The estimate a budget reserves for a request, without a tracker: for a cost
 * preview before a batch, or a check of what a budget will let through.
 * `prices` are merged over {@link DEFAULT_PRICES}, as a tracker's are.
 *
 * @example
 * ```ts
 * import { UsageTracker } from "@effect-inference/client"
 * import { strictEqual } from "node:assert"
 *
 * const estimate = UsageTracker.estimate(
 *   { model: "my-org/my-model", messages: [{ role: "user", content: "Hi" }], max_tokens: 100 },
 *   { "my-org/my-model": { input: 1, output: 2 } }
 * )
 * strictEqual(estimate.completionTokens, 100)
 * strictEqual(estimate.usd?.max, (estimate.promptTokens * 1 + 100 * 2) / 1_000_000)
 * ```
 *
 * @since 0.2.0
 * @category estimates
 */
export const estimate = (
  request: ChatCompletionRequestInput,
  prices?: Readonly<Record<string, Price>>
): Estimate => {
  const table = prices === undefined ? pricing.DEFAULT_PRICES : { ...pricing.DEFAULT_PRICES, ...prices }
  const promptTokens = tokens.estimatePromptTokens(request)
  const completionTokens = tokens.estimateCompletionTokens(request)
  const price = pricing.priceOf(table, request.model)
  return {
    model: request.model,
    promptTokens,
    completionTokens,
    usd: price === undefined ? undefined : {
      min: pricing.priceTokens(
        { input: Math.min(price.input, price.cachedInput ?? price.input), output: price.output },
        promptTokens,
        0
      ),
      max: pricing.upperCostOf(table, request.model, promptTokens, completionTokens)!
    }
  }
}
