/**
 * What a call used, and the records a usage tracker publishes: one event per
 * call, and the alerts. The records are here, not in `UsageTracker.ts`,
 * because the tracker builds them and `UsageTracker.ts` imports the tracker;
 * it re-exports them and documents them.
 */
import * as Duration from "effect/Duration"
import * as Schema from "effect/Schema"
import type { Usage } from "../ChatCompletion.js"
import { BudgetDimension } from "../InferenceError.js"
import type * as UsageTracker from "../UsageTracker.js"
import * as tokens from "./tokens.js"

/** Where a call's token counts came from. */
export const UsageSource = Schema.Literal("reported", "estimated", "none")

/** Where a call's token counts came from. */
export type UsageSource = typeof UsageSource.Type

/** What one call used. */
export class UsageEvent extends Schema.Class<UsageEvent>("@effect-inference/client/UsageTracker/UsageEvent")({
  timestamp: Schema.Number,
  model: Schema.String,
  stream: Schema.Boolean,
  cached: Schema.Boolean,
  outcome: Schema.String,
  attempts: Schema.Int,
  promptTokens: Schema.Int,
  completionTokens: Schema.Int,
  totalTokens: Schema.Int,
  /**
   * The prompt tokens the server read from its prefix cache (part of
   * `promptTokens`, priced at `cachedInput`); 0 when it reports none.
   *
   * @since 0.2.0
   */
  cachedTokens: Schema.optionalWith(Schema.Int, { default: () => 0 }),
  /**
   * The completion tokens the model spent thinking (part of
   * `completionTokens`); 0 when the server reports none.
   *
   * @since 0.2.0
   */
  reasoningTokens: Schema.optionalWith(Schema.Int, { default: () => 0 }),
  usage: UsageSource,
  costUsd: Schema.Number,
  /** `false` when the model has no price, so its cost counts as 0. */
  priced: Schema.Boolean,
  latencyMillis: Schema.Number,
  requestId: Schema.optional(Schema.String)
}) {}

/** Spending crossed a threshold of a budget. */
export class BudgetAlert extends Schema.TaggedClass<BudgetAlert>("@effect-inference/client/UsageTracker/BudgetAlert")(
  "BudgetAlert",
  {
    dimension: BudgetDimension,
    /** The fraction of the limit crossed, for example `0.8`. */
    threshold: Schema.Number,
    spent: Schema.Number,
    limit: Schema.Number,
    /** When the budget's period started, in milliseconds since the epoch. */
    periodStart: Schema.Number,
    /** The model of the call that crossed it. */
    model: Schema.String
  }
) {}

/** The server said the account is out of credits or at its spending cap. */
export class QuotaAlert extends Schema.TaggedClass<QuotaAlert>("@effect-inference/client/UsageTracker/QuotaAlert")(
  "QuotaAlert",
  {
    model: Schema.String,
    status: Schema.optional(Schema.Int),
    requestId: Schema.optional(Schema.String),
    message: Schema.String
  }
) {}

/** An alert. */
export const Alert = Schema.Union(BudgetAlert, QuotaAlert)

/** An alert. */
export type Alert = typeof Alert.Type

// ---------------------------------------------------------------------------
// What a call used
// ---------------------------------------------------------------------------

/** @internal */
export const callUsage = (usage: Usage): UsageTracker.CallUsage => {
  const counts = {
    promptTokens: usage.prompt_tokens,
    completionTokens: usage.completion_tokens,
    cachedTokens: usage.prompt_tokens_details?.cached_tokens ?? 0,
    reasoningTokens: usage.completion_tokens_details?.reasoning_tokens ?? 0
  }
  const invalid = tokens.usageProblem(usage)
  return invalid === undefined ? counts : { ...counts, invalid }
}

/**
 * The first count of a {@link UsageTracker.CallUsage} that is not a token count, by the name of the `usage`
 * field it stands for; or the one `callUsage` found.
 */
const callUsageProblem = (usage: UsageTracker.CallUsage): string | undefined =>
  usage.invalid !== undefined
    ? usage.invalid
    : !tokens.isTokenCount(usage.promptTokens)
    ? "prompt_tokens"
    : !tokens.isTokenCount(usage.completionTokens)
    ? "completion_tokens"
    : !tokens.isTokenCount(usage.cachedTokens ?? 0)
    ? "prompt_tokens_details.cached_tokens"
    : !tokens.isTokenCount(usage.reasoningTokens ?? 0)
    ? "completion_tokens_details.reasoning_tokens"
    : undefined

/**
 * What a call is counted as having used, and why.
 *
 * @internal
 */
export interface Used {
  readonly source: UsageSource
  readonly promptTokens: number
  readonly completionTokens: number
  readonly cachedTokens: number
  readonly reasoningTokens: number
  /** The usage field that was not a token count, when the usage given was not believed. */
  readonly invalid?: string | undefined
}

/** @internal */
export const NOTHING: Used = {
  source: "none",
  promptTokens: 0,
  completionTokens: 0,
  cachedTokens: 0,
  reasoningTokens: 0
}

/**
 * What the call used: reported, estimated, or nothing. This is where a failed call's cost is decided: with no
 * usage reported, a failure that generated nothing (`tokens.generatedNothing`: refused with an error status, or
 * never sent, as a `ConnectionError` with `sent: false`) costs nothing and its reservation is released; any other
 * ending is charged the reservation's estimate. A usage with a count that is not a token count is not believed:
 * the call is charged its reservation's estimate, whatever its ending (the server answered, so it may well have
 * billed), and the count is named for a warning.
 *
 * @internal
 */
export const usageOf = (call: UsageTracker.CallRecord): Used => {
  if (call.cached === true) return NOTHING
  const estimate: Used = call.reservation === undefined ? NOTHING : {
    source: "estimated",
    promptTokens: call.reservation.promptTokens,
    completionTokens: call.reservation.completionTokens,
    cachedTokens: 0,
    reasoningTokens: 0
  }
  if (call.usage !== undefined) {
    const invalid = callUsageProblem(call.usage)
    if (invalid !== undefined) return { ...estimate, invalid }
    const { completionTokens, promptTokens } = call.usage
    return {
      source: call.usage.estimated === true ? "estimated" : "reported",
      promptTokens,
      completionTokens,
      cachedTokens: Math.min(call.usage.cachedTokens ?? 0, promptTokens),
      reasoningTokens: Math.min(call.usage.reasoningTokens ?? 0, completionTokens)
    }
  }
  const ended = call.error !== undefined || call.interrupted === true || call.defect === true
  const nothing = call.error !== undefined && tokens.generatedNothing(call.error)
  return !ended || nothing ? NOTHING : estimate
}

/** @internal */
export const eventOf = (
  call: UsageTracker.CallRecord,
  used: Used,
  cost: number | undefined,
  now: number
): UsageEvent =>
  new UsageEvent({
    timestamp: now,
    model: call.model,
    stream: call.stream === true,
    cached: call.cached === true,
    outcome: call.error !== undefined
      ? call.error._tag
      : call.interrupted === true
      ? "Interrupted"
      : call.defect === true
      ? "Defect"
      : "success",
    attempts: call.attempts,
    promptTokens: used.promptTokens,
    completionTokens: used.completionTokens,
    totalTokens: used.promptTokens + used.completionTokens,
    cachedTokens: used.cachedTokens,
    reasoningTokens: used.reasoningTokens,
    usage: used.source,
    costUsd: cost ?? 0,
    priced: cost !== undefined,
    latencyMillis: Math.max(0, Duration.toMillis(Duration.decode(call.latency))),
    requestId: call.requestId
  }, true) // built from checked numbers: the schema's check would only cost time on every call
