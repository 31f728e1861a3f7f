/**
 * Where a call's usage is priced, counted, logged and charged to the budget.
 *
 * Every change to the budget is one synchronous step over plain state, so no
 * other fiber sees a half-made reservation: `reserve` checks and holds in the
 * same step, `record` releases and charges in the same step. Effects (metrics,
 * log lines, publishing) run after the step, from what it decided.
 */
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as FiberRef from "effect/FiberRef"
import * as LogLevel from "effect/LogLevel"
import * as Metric from "effect/Metric"
import * as MetricBoundaries from "effect/MetricBoundaries"
import * as MetricLabel from "effect/MetricLabel"
import * as Option from "effect/Option"
import * as Predicate from "effect/Predicate"
import * as PubSub from "effect/PubSub"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import type { ChatCompletionRequestInput, Usage } from "../ChatCompletion.js"
import * as InferenceError from "../InferenceError.js"
import type * as UsageTracker from "../UsageTracker.js"
import { BudgetAlert, QuotaAlert, UsageEvent } from "../UsageTracker.js"
import * as checks from "./options.js"
import * as tokens from "./tokens.js"
import * as validate from "./validate.js"

/**
 * Example prices (USD per million tokens) for W&B's catalogue as of late 2026:
 * made up to be plausible, with cached input at about a quarter of input. Not
 * W&B's prices; users pass their own.
 *
 * @internal
 */
export const DEFAULT_PRICES: Readonly<Record<string, UsageTracker.Price>> = {
  "deepseek-ai/DeepSeek-V4.1-Flash": { input: 0.2, cachedInput: 0.05, output: 0.8 },
  "deepseek-ai/DeepSeek-V4-Flash-0731": { input: 0.2, cachedInput: 0.05, output: 0.8 },
  "deepseek-ai/DeepSeek-V4-Pro-0813": { input: 0.6, cachedInput: 0.15, output: 2.2 },
  "deepseek-ai/DeepSeek-V3.1": { input: 0.55, cachedInput: 0.14, output: 1.65 },
  "google/gemma-4-31B-it": { input: 0.15, cachedInput: 0.04, output: 0.45 },
  "google/gemma-4-26B-A4B-it": { input: 0.08, cachedInput: 0.02, output: 0.3 },
  "moonshotai/Kimi-K2.6": { input: 0.6, cachedInput: 0.15, output: 2.5 },
  "moonshotai/Kimi-K2.7-Code": { input: 0.6, cachedInput: 0.15, output: 2.5 },
  "zai-org/GLM-5.2": { input: 0.55, cachedInput: 0.11, output: 2 },
  "MiniMaxAI/MiniMax-M3": { input: 0.3, cachedInput: 0.06, output: 1.2 },
  "openai/gpt-oss-120b": { input: 0.15, cachedInput: 0.04, output: 0.6 },
  "openai/gpt-oss-20b": { input: 0.05, cachedInput: 0.01, output: 0.2 },
  "Qwen/Qwen3.6-35B-A3B": { input: 0.1, cachedInput: 0.025, output: 0.4 },
  "ibm-granite/granite-4.2-8b": { input: 0.03, cachedInput: 0.01, output: 0.1 },
  "nvidia/NVIDIA-Nemotron-3-Ultra-550B-A55B": { input: 0.9, cachedInput: 0.225, output: 3 },
  "meta-llama/Llama-3.3-70B-Instruct": { input: 0.71, cachedInput: 0.18, output: 0.71 },
  "meta-llama/Llama-3.1-8B-Instruct": { input: 0.22, cachedInput: 0.055, output: 0.22 }
}

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
 * An amount that may be added to a budget's spending: nothing for `NaN` or less than nothing, the largest
 * number for more than a number holds (a price of 1e300 per million tokens). Spending that became `NaN` or
 * `Infinity` would refuse every call for good, a new period included.
 */
const addable = (amount: number): number => amount > 0 ? Math.min(amount, Number.MAX_VALUE) : 0

/**
 * The cost of a call by a price: cached prompt tokens (at most the prompt) at
 * `cachedInput`, the rest of the prompt at `input`, the completion at `output`.
 *
 * @internal
 */
export const priceTokens = (
  price: UsageTracker.Price,
  promptTokens: number,
  completionTokens: number,
  cachedTokens = 0
): number => {
  const cached = Math.min(Math.max(0, cachedTokens), promptTokens)
  return ((promptTokens - cached) * price.input + cached * (price.cachedInput ?? price.input) +
    completionTokens * price.output) / 1_000_000
}

const DEFAULT_THRESHOLDS = [0.5, 0.8, 1]

/** Sums of dollar amounts drift in the last bits: a budget of exactly ten calls' cost still holds ten. */
const EPSILON = 1e-9

// ---------------------------------------------------------------------------
// Metrics
// ---------------------------------------------------------------------------

/** @internal */
export const metrics = {
  calls: Metric.counter("inference_calls_total", {
    description: "Inference calls, by model and outcome (success or the error's tag)",
    incremental: true
  }),
  attempts: Metric.counter("inference_attempts_total", {
    description: "HTTP attempts made by inference calls, retries included",
    incremental: true
  }),
  tokens: Metric.counter("inference_tokens_total", {
    description:
      "Tokens used by inference calls, by model and kind: prompt or completion, and cached (part of prompt) or reasoning (part of completion)",
    incremental: true
  }),
  latency: Metric.histogram(
    "inference_call_duration_ms",
    MetricBoundaries.exponential({ start: 5, factor: 2, count: 16 }),
    "Duration of inference calls in milliseconds, retries and waits included"
  ),
  cost: Metric.gauge("inference_cost_usd", {
    description: "Estimated cost of inference calls in US dollars, running total by model"
  })
}

// ---------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------

interface Limit {
  readonly dimension: InferenceError.BudgetDimension
  readonly limit: number
  spent: number
  reserved: number
  /** Thresholds already alerted in this period. */
  readonly fired: Set<number>
}

/** @internal */
export interface Resolved {
  readonly prices: Readonly<Record<string, UsageTracker.Price>>
  readonly usd: number | undefined
  readonly tokens: number | undefined
  readonly period: number | undefined
  readonly thresholds: ReadonlyArray<number>
  readonly logLevel: LogLevel.LogLevel
  readonly logPrompt: boolean
}

const positive = (value: unknown): value is number => typeof value === "number" && Number.isFinite(value) && value > 0

const Budget = Schema.Struct({
  usd: Schema.optional(checks.check(positive, "a positive number")),
  tokens: Schema.optional(checks.wholeNumber(1)),
  period: Schema.optional(checks.duration({ finite: true })),
  thresholds: Schema.optional(
    checks.check(
      (u): u is ReadonlyArray<number> => Array.isArray(u) && u.every((t) => positive(t) && t <= 1),
      "fractions in (0, 1]"
    )
  )
}).pipe(
  Schema.filter((budget) => budget.usd !== undefined || budget.tokens !== undefined || "needs usd, tokens or both")
)

/** The tracker's options, every field checked (a price table's entries below, model by model). */
const decodeOptions = checks.decoder(
  Schema.Struct({
    prices: Schema.optional(
      checks.check(
        (u): u is Readonly<Record<string, UsageTracker.Price>> => Predicate.isRecord(u),
        "an object of prices by model id"
      )
    ),
    budget: Schema.optional(Budget),
    logLevel: Schema.optional(checks.literal(...LogLevel.allLevels.map((l) => l._tag))),
    logPrompt: Schema.optional(checks.boolean)
  }),
  "UsageTracker options"
)

/** @internal */
export const resolveOptions = (input: UsageTracker.Options): Either.Either<Resolved, string> =>
  Either.gen(function*() {
    const options = yield* decodeOptions(input)
    const prices = { ...DEFAULT_PRICES, ...options.prices }
    for (const [model, price] of Object.entries(prices)) {
      const valid = (n: unknown) => typeof n === "number" && Number.isFinite(n) && n >= 0
      if (!valid(price?.input) || !valid(price?.output)) {
        return yield* Either.left(`prices["${model}"] must have input and output prices >= 0 (USD per million tokens)`)
      }
      if (price.cachedInput !== undefined && !valid(price.cachedInput)) {
        return yield* Either.left(
          `prices["${model}"].cachedInput must be a price >= 0 (USD per million tokens), got ${price.cachedInput}`
        )
      }
    }
    const budget = options.budget ?? {}
    const period = budget.period === undefined ? undefined : Duration.toMillis(Duration.decode(budget.period))
    const thresholds = budget.thresholds ?? DEFAULT_THRESHOLDS
    // Debug by default: a library is quiet unless asked, and Effect's default logger prints Info.
    const logLevel = LogLevel.allLevels.find((l) => l._tag === options.logLevel) ?? LogLevel.Debug
    return {
      prices,
      usd: budget.usd,
      tokens: budget.tokens,
      period,
      thresholds: [...new Set(thresholds)].sort((a, b) => a - b),
      logLevel,
      logPrompt: options.logPrompt ?? false
    }
  })

// ---------------------------------------------------------------------------
// Totals
// ---------------------------------------------------------------------------

type MutableSummary = { -readonly [K in keyof UsageTracker.Summary]: UsageTracker.Summary[K] }

const emptySummary = (): MutableSummary => ({
  calls: 0,
  succeeded: 0,
  failed: 0,
  cacheHits: 0,
  attempts: 0,
  promptTokens: 0,
  completionTokens: 0,
  totalTokens: 0,
  cachedTokens: 0,
  reasoningTokens: 0,
  costUsd: 0
})

const addTo = (summary: MutableSummary, event: UsageEvent): void => {
  summary.calls++
  if (event.outcome === "success") summary.succeeded++
  else summary.failed++
  if (event.cached) summary.cacheHits++
  summary.attempts += event.attempts
  summary.promptTokens += event.promptTokens
  summary.completionTokens += event.completionTokens
  summary.totalTokens += event.totalTokens
  summary.cachedTokens += event.cachedTokens
  summary.reasoningTokens += event.reasoningTokens
  summary.costUsd += event.costUsd
}

const usd = (amount: number): string => `$${amount.toFixed(6)}`
const formatCount = (n: number): string => n.toLocaleString("en-US")

/** What a call is counted as having used, and why. */
interface Used {
  readonly source: UsageTracker.UsageSource
  readonly promptTokens: number
  readonly completionTokens: number
  readonly cachedTokens: number
  readonly reasoningTokens: number
  /** The usage field that was not a token count, when the usage given was not believed. */
  readonly invalid?: string | undefined
}

const NOTHING: Used = {
  source: "none",
  promptTokens: 0,
  completionTokens: 0,
  cachedTokens: 0,
  reasoningTokens: 0
}

const table = (rows: ReadonlyArray<ReadonlyArray<string>>): string => {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((row) => row[i]!.length)))
  return rows.map((row) =>
    row.map((cell, i) => i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!)).join("  ")
  )
    .join("\n")
}

// ---------------------------------------------------------------------------
// The tracker
// ---------------------------------------------------------------------------

/** @internal */
export const make = (options: UsageTracker.Options = {}): Effect.Effect<UsageTracker.UsageTracker.Service> =>
  Effect.flatMap(validate.optionsOrDie("UsageTracker", resolveOptions(options)), makeResolved)

/**
 * A tracker of options checked already (by `resolveOptions`, as the client
 * checks its own `usage` option with the rest of its options).
 *
 * @internal
 */
export const makeResolved = (resolved: Resolved): Effect.Effect<UsageTracker.UsageTracker.Service> =>
  Effect.gen(function*() {
    const origin = yield* Clock.currentTimeMillis
    const eventHub = yield* PubSub.sliding<UsageEvent>(4096)
    const alertHub = yield* PubSub.sliding<UsageTracker.Alert>(1024)
    const limits: Array<Limit> = []
    if (resolved.usd !== undefined) {
      limits.push({ dimension: "usd", limit: resolved.usd, spent: 0, reserved: 0, fired: new Set() })
    }
    if (resolved.tokens !== undefined) {
      limits.push({ dimension: "tokens", limit: resolved.tokens, spent: 0, reserved: 0, fired: new Set() })
    }
    let periodIndex = 0
    const overall = emptySummary()
    const byModel = new Map<string, MutableSummary>()
    const unpricedWarned = new Set<string>()
    /** Reservations still held: each is released once, by the first record of it. */
    const held = new WeakSet<UsageTracker.Reservation>()
    let holding = 0
    const amount = (limit: Limit, r: UsageTracker.Reservation) =>
      limit.dimension === "usd" ? r.usd : r.promptTokens + r.completionTokens

    const periodStart = () => resolved.period === undefined ? origin : origin + periodIndex * resolved.period
    const periodEnd = () => resolved.period === undefined ? undefined : periodStart() + resolved.period
    /** Starts a new period if one is due: spending starts again, reservations in flight stay held. */
    const roll = (now: number): void => {
      if (resolved.period === undefined) return
      const index = Math.floor((now - origin) / resolved.period)
      if (index === periodIndex) return
      periodIndex = index
      for (const limit of limits) {
        limit.spent = 0
        limit.fired.clear()
      }
    }

    const priceOf = (model: string): UsageTracker.Price | undefined =>
      Object.hasOwn(resolved.prices, model) ? resolved.prices[model] : undefined
    const costOf = (
      model: string,
      promptTokens: number,
      completionTokens: number,
      cachedTokens?: number
    ): number | undefined => {
      const price = priceOf(model)
      return price === undefined ? undefined : priceTokens(price, promptTokens, completionTokens, cachedTokens)
    }
    /** The most a call can cost: its whole prompt at the dearer of the two input rates. */
    const upperCostOf = (model: string, promptTokens: number, completionTokens: number): number | undefined => {
      const price = priceOf(model)
      return price === undefined
        ? undefined
        : priceTokens(
          { input: Math.max(price.input, price.cachedInput ?? price.input), output: price.output },
          promptTokens,
          completionTokens
        )
    }

    const reserve = (
      request: ChatCompletionRequestInput,
      models?: ReadonlyArray<string>
    ): Effect.Effect<
      UsageTracker.Reservation,
      InferenceError.BudgetExceededError | InferenceError.InvalidRequestError
    > =>
      Effect.flatMap(Clock.currentTimeMillis, (now): Effect.Effect<
        UsageTracker.Reservation,
        InferenceError.BudgetExceededError | InferenceError.InvalidRequestError
      > => {
        const promptTokens = tokens.estimatePromptTokens(request)
        const completionTokens = tokens.estimateCompletionTokens(request)
        let cost = 0
        for (const model of models ?? [request.model]) {
          const price = upperCostOf(model, promptTokens, completionTokens)
          if (price === undefined) {
            if (resolved.usd === undefined) continue
            return Effect.fail(
              new InferenceError.InvalidRequestError({
                path: "model",
                issue:
                  `"${model}" has no price in the usage tracker, so the dollar budget cannot hold its cost: add it to prices`
              })
            )
          }
          cost = Math.max(cost, price)
        }
        const reservation: UsageTracker.Reservation = {
          model: request.model,
          promptTokens,
          completionTokens,
          usd: cost
        }
        if (limits.length === 0) return Effect.succeed(reservation)
        roll(now)
        for (const limit of limits) {
          const requested = amount(limit, reservation)
          // Written so that a NaN anywhere refuses the call rather than holds it.
          if (!(limit.spent + limit.reserved + requested <= limit.limit * (1 + EPSILON))) {
            const end = periodEnd()
            return Effect.fail(
              new InferenceError.BudgetExceededError({
                model: request.model,
                dimension: limit.dimension,
                limit: limit.limit,
                spent: limit.spent,
                reserved: limit.reserved,
                requested,
                resetsIn: end === undefined ? Option.none() : Option.some(Duration.millis(end - now))
              })
            )
          }
        }
        for (const limit of limits) limit.reserved += amount(limit, reservation)
        held.add(reservation)
        holding++
        return Effect.succeed(reservation)
      })

    /**
     * What the call used: reported, estimated, or nothing. This is where a failed call's cost is decided: with
     * no usage reported, a failure that generated nothing (`tokens.generatedNothing`: refused with an error
     * status, or never sent, as a `ConnectionError` with `sent: false`) costs nothing and its reservation is
     * released; any other ending is charged the reservation's estimate. A usage with a count that is not a
     * token count is not believed: the call is charged its reservation's estimate, whatever its ending (the
     * server answered, so it may well have billed), and the count is named for a warning.
     */
    const usageOf = (call: UsageTracker.CallRecord): Used => {
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

    const record = (call: UsageTracker.CallRecord): Effect.Effect<UsageEvent> =>
      // The clock and the metric labels read once, and everything but the log line and the publishing in one
      // synchronous step: this runs after every call.
      Effect.clockWith((clock) =>
        FiberRef.getWith(
          FiberRef.currentMetricLabels,
          (labels) => recordAt(call, clock.unsafeCurrentTimeMillis(), labels)
        )
      )

    const recordAt = (
      call: UsageTracker.CallRecord,
      now: number,
      labels: ReadonlyArray<MetricLabel.MetricLabel>
    ): Effect.Effect<UsageEvent> => {
      const used = usageOf(call)
      const cost = costOf(call.model, used.promptTokens, used.completionTokens, used.cachedTokens)
      const event = new UsageEvent({
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
      // One synchronous step: release the hold, charge the use, see which thresholds it crossed.
      roll(now)
      const alerts: Array<UsageTracker.Alert> = []
      const reservation = call.reservation
      const release = reservation !== undefined && held.delete(reservation)
      if (release) holding--
      for (const limit of limits) {
        // With nothing in flight nothing is reserved: no rounding residue is left to hold. (`!(left > 0)` is
        // also true of NaN.)
        if (release) {
          const left = limit.reserved - amount(limit, reservation)
          limit.reserved = holding === 0 || !(left > 0) ? 0 : left
        }
        // Clamped, so that no single report can push the spending out of the numbers: a new period always
        // starts it again from 0.
        limit.spent = Math.min(
          limit.spent + addable(limit.dimension === "usd" ? event.costUsd : event.totalTokens),
          Number.MAX_VALUE
        )
        for (const threshold of resolved.thresholds) {
          if (limit.spent >= threshold * limit.limit * (1 - EPSILON) && !limit.fired.has(threshold)) {
            limit.fired.add(threshold)
            alerts.push(
              new BudgetAlert({
                dimension: limit.dimension,
                threshold,
                spent: limit.spent,
                limit: limit.limit,
                periodStart: periodStart(),
                model: call.model
              })
            )
          }
        }
      }
      addTo(overall, event)
      let summary = byModel.get(call.model)
      if (summary === undefined) byModel.set(call.model, summary = emptySummary())
      addTo(summary, event)
      if (call.error?._tag === "QuotaExceededError") {
        alerts.push(
          new QuotaAlert({
            model: call.model,
            status: call.error.status,
            requestId: call.error.requestId,
            message: call.error.message
          })
        )
      }
      observe(event, labels)
      let after: Effect.Effect<unknown> = Effect.zipRight(logUsage(event, call), PubSub.publish(eventHub, event))
      if (used.invalid !== undefined) {
        // Once per call: a call is recorded once. Only names go in: the field is ours, the request id checked.
        after = Effect.zipRight(
          Effect.logWarning("Inference usage reported a count that is not a token count; counted as the estimate")
            .pipe(
              Effect.annotateLogs({
                model: call.model,
                field: `usage.${used.invalid}`,
                requestId: call.requestId ?? "none",
                usage: used.source
              })
            ),
          after
        )
      }
      if (cost === undefined && event.totalTokens > 0 && !unpricedWarned.has(call.model)) {
        unpricedWarned.add(call.model)
        after = Effect.zipRight(
          after,
          Effect.logWarning("Inference model has no price; its cost counts as $0").pipe(
            Effect.annotateLogs({ model: call.model })
          )
        )
      }
      if (alerts.length > 0) after = Effect.zipRight(after, Effect.forEach(alerts, publishAlert, { discard: true }))
      return Effect.as(after, event)
    }

    const logUsage = (event: UsageEvent, call: UsageTracker.CallRecord): Effect.Effect<void> =>
      resolved.logLevel._tag === "None" ? Effect.void : FiberRef.getWith(
        FiberRef.currentMinimumLogLevel,
        // Below the minimum level the line would be dropped anyway: skip building its annotations.
        (minimum) => LogLevel.lessThan(resolved.logLevel, minimum) ? Effect.void : logLine(event, call)
      )

    const logLine = (event: UsageEvent, call: UsageTracker.CallRecord): Effect.Effect<void> =>
      Effect.logWithLevel(resolved.logLevel, "Inference usage").pipe(
        Effect.annotateLogs({
          model: event.model,
          outcome: event.outcome,
          attempts: event.attempts,
          promptTokens: event.promptTokens,
          completionTokens: event.completionTokens,
          totalTokens: event.totalTokens,
          cachedTokens: event.cachedTokens,
          reasoningTokens: event.reasoningTokens,
          usage: event.usage,
          costUsd: event.costUsd,
          latencyMs: Math.round(event.latencyMillis),
          cached: event.cached,
          stream: event.stream,
          requestId: event.requestId ?? "none",
          ...(resolved.logPrompt && call.messages !== undefined ? { prompt: safeJson(call.messages) } : {})
        })
      )

    const publishAlert = (alert: UsageTracker.Alert): Effect.Effect<void> =>
      Effect.zipRight(
        alert._tag === "BudgetAlert"
          ? Effect.logWarning("Inference budget threshold reached").pipe(
            Effect.annotateLogs({
              dimension: alert.dimension,
              threshold: `${Math.round(alert.threshold * 100)}%`,
              spent: alert.spent,
              limit: alert.limit,
              model: alert.model
            })
          )
          : Effect.logWarning("Inference quota exhausted").pipe(
            Effect.annotateLogs({
              model: alert.model,
              status: alert.status ?? "none",
              requestId: alert.requestId ?? "none"
            })
          ),
        PubSub.publish(alertHub, alert)
      )

    const summaryCopy = (s: MutableSummary): UsageTracker.Summary => ({ ...s })
    const totals = Effect.sync((): UsageTracker.Totals => ({
      overall: summaryCopy(overall),
      byModel: Object.fromEntries([...byModel].map(([model, s]) => [model, summaryCopy(s)]))
    }))
    const budget = Effect.map(Clock.currentTimeMillis, (now): ReadonlyArray<UsageTracker.BudgetStatus> => {
      roll(now)
      return limits.map((limit) => ({
        dimension: limit.dimension,
        limit: limit.limit,
        spent: limit.spent,
        reserved: limit.reserved,
        remaining: Math.max(0, limit.limit - limit.spent - limit.reserved),
        periodStart: periodStart(),
        periodEnd: periodEnd()
      }))
    })
    const report = Effect.map(Effect.zip(totals, budget), ([t, budgets]) => {
      const row = (name: string, s: UsageTracker.Summary) => [
        name,
        formatCount(s.calls),
        formatCount(s.succeeded),
        formatCount(s.failed),
        formatCount(s.cacheHits),
        formatCount(s.attempts),
        formatCount(s.promptTokens),
        formatCount(s.completionTokens),
        usd(s.costUsd)
      ]
      const lines = [
        table([
          ["model", "calls", "ok", "failed", "cached", "attempts", "prompt tokens", "completion tokens", "cost"],
          ...Object.entries(t.byModel).sort(([a], [b]) => a.localeCompare(b)).map(([model, s]) => row(model, s)),
          row("total", t.overall)
        ])
      ]
      for (const b of budgets) {
        const amount = b.dimension === "usd" ? usd : formatCount
        lines.push(
          `budget (${b.dimension}): ${amount(b.spent)} spent of ${amount(b.limit)} (${
            (100 * b.spent / b.limit).toFixed(1)
          }%), ${amount(b.reserved)} reserved`
        )
      }
      return lines.join("\n")
    })

    return {
      reserve,
      record,
      costOf,
      totals,
      budget,
      report,
      events: Stream.fromPubSub(eventHub),
      subscribe: PubSub.subscribe(eventHub),
      alerts: Stream.fromPubSub(alertHub),
      subscribeAlerts: PubSub.subscribe(alertHub)
    }
  })

/** The metrics of one model, tagged once: tagging builds a new metric key, too much work for every call. */
interface ModelMetrics {
  readonly calls: Map<string, Metric.Metric.Counter<number>>
  readonly attempts: Metric.Metric.Counter<number>
  readonly promptTokens: Metric.Metric.Counter<number>
  readonly completionTokens: Metric.Metric.Counter<number>
  readonly cachedTokens: Metric.Metric.Counter<number>
  readonly reasoningTokens: Metric.Metric.Counter<number>
  readonly latency: Metric.Metric.Histogram<number>
  readonly cost: Metric.Metric.Gauge<number>
}

const metricsByModel = new Map<string, ModelMetrics>()

const metricsOf = (model: string): ModelMetrics => {
  let found = metricsByModel.get(model)
  if (found === undefined) {
    const tokens = (kind: string) =>
      Metric.taggedWithLabels(metrics.tokens, [MetricLabel.make("model", model), MetricLabel.make("kind", kind)])
    found = {
      calls: new Map(),
      attempts: Metric.tagged(metrics.attempts, "model", model),
      promptTokens: tokens("prompt"),
      completionTokens: tokens("completion"),
      cachedTokens: tokens("cached"),
      reasoningTokens: tokens("reasoning"),
      latency: Metric.tagged(metrics.latency, "model", model),
      cost: Metric.tagged(metrics.cost, "model", model)
    }
    metricsByModel.set(model, found)
  }
  return found
}

/** Updates the metrics for one call, with the metric labels of the fiber (`Effect.tagMetrics`) as `Metric.update` does. */
const observe = (event: UsageEvent, labels: ReadonlyArray<MetricLabel.MetricLabel>): void => {
  const m = metricsOf(event.model)
  let calls = m.calls.get(event.outcome)
  if (calls === undefined) {
    calls = Metric.taggedWithLabels(metrics.calls, [
      MetricLabel.make("model", event.model),
      MetricLabel.make("outcome", event.outcome)
    ])
    m.calls.set(event.outcome, calls)
  }
  calls.unsafeUpdate(1, labels)
  if (event.attempts > 0) m.attempts.unsafeUpdate(event.attempts, labels)
  if (event.promptTokens > 0) m.promptTokens.unsafeUpdate(event.promptTokens, labels)
  if (event.completionTokens > 0) m.completionTokens.unsafeUpdate(event.completionTokens, labels)
  if (event.cachedTokens > 0) m.cachedTokens.unsafeUpdate(event.cachedTokens, labels)
  if (event.reasoningTokens > 0) m.reasoningTokens.unsafeUpdate(event.reasoningTokens, labels)
  m.latency.unsafeUpdate(event.latencyMillis, labels)
  // A gauge's update sets it; modify adds to it, as `Metric.incrementBy` does for a gauge.
  if (event.costUsd > 0) m.cost.unsafeModify(event.costUsd, labels)
}

const safeJson = (value: unknown): string => {
  try {
    return JSON.stringify(value) ?? ""
  } catch {
    return "(not JSON)"
  }
}
