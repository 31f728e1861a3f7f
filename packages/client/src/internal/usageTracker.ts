/**
 * Where a call's usage is counted, logged and charged to the budget: the
 * tracker itself, built from the parts that stand alone (`pricing.ts`: what
 * tokens cost; `usageEvents.ts`: what a call used, and the events and alerts;
 * `usageMetrics.ts`; `usageReport.ts`: the totals and the report; `budget.ts`:
 * the budget's rule).
 *
 * The budget's state lives in a `BudgetStore`, whose every operation is
 * atomic: `reserve` checks and holds in one step, `record` gives the hold back
 * and spends in one step, so no other fiber (or process, with a shared store)
 * sees a half-made reservation. The totals are one synchronous step over plain
 * state. Effects (log lines, publishing) run after the steps, from what they
 * decided.
 *
 * It is past 400 lines because it holds the tracker's options and their
 * checks, how the budget's store is reached and worked around when it cannot
 * answer, and the one step that records a call, which read the same options
 * and state; each part that reads none of them has a module of its own.
 */
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as FiberRef from "effect/FiberRef"
import * as LogLevel from "effect/LogLevel"
import type * as MetricLabel from "effect/MetricLabel"
import * as Option from "effect/Option"
import * as Predicate from "effect/Predicate"
import * as PubSub from "effect/PubSub"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import type * as BudgetStore from "../BudgetStore.js"
import type { ChatCompletionRequestInput } from "../ChatCompletion.js"
import * as InferenceError from "../InferenceError.js"
import type * as UsageTracker from "../UsageTracker.js"
import * as budgetStore from "./budgetStore.js"
import * as checks from "./options.js"
import * as pricing from "./pricing.js"
import * as tokens from "./tokens.js"
import type { Alert, UsageEvent, Used } from "./usageEvents.js"
import { BudgetAlert, eventOf, QuotaAlert, usageOf } from "./usageEvents.js"
import { observe } from "./usageMetrics.js"
import type { MutableSummary } from "./usageReport.js"
import { addTo, emptySummary, formatReport } from "./usageReport.js"
import * as validate from "./validate.js"

const DEFAULT_THRESHOLDS = [0.5, 0.8, 1]

// ---------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------

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
    const prices = { ...pricing.DEFAULT_PRICES, ...options.prices }
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
// The budget
// ---------------------------------------------------------------------------

/**
 * A tracker's budget: its store, its key there, its terms, and the hold id of
 * each reservation still held (a reservation is given back once, by the first
 * record of it).
 */
interface Budget {
  readonly store: BudgetStore.BudgetStore.Service
  readonly key: string
  readonly limits: BudgetStore.Limits
  readonly holds: WeakMap<UsageTracker.Reservation, number>
}

/**
 * A store that could not answer is worked around, not passed on (see the
 * store's contract): an outage of the store must not become an outage of
 * inference.
 */
const storeFailed = (budget: Budget, error: BudgetStore.BudgetStoreError, consequence: string) =>
  Effect.logWarning(`Budget store failed: ${consequence}`).pipe(
    Effect.annotateLogs({ key: budget.key, error: error.message })
  )

/**
 * Holds a reservation against the budget, or fails with `BudgetExceededError`.
 * Uninterruptible: a hold the store made must reach `holds`, or it would never
 * be given back.
 */
const hold = (
  budget: Budget,
  reservation: UsageTracker.Reservation
): Effect.Effect<UsageTracker.Reservation, InferenceError.BudgetExceededError | InferenceError.CoordinationError> =>
  Effect.uninterruptible(Effect.matchEffect(
    budget.store.reserve({
      key: budget.key,
      amount: { usd: reservation.usd, tokens: reservation.promptTokens + reservation.completionTokens },
      limits: budget.limits
    }),
    {
      onFailure: (error) =>
        error.rejectCall === true
          ? Effect.fail(
            new InferenceError.CoordinationError({ model: reservation.model, store: "budget", reason: error.message })
          )
          : Effect.as(storeFailed(budget, error, "the call goes ahead without a hold"), reservation),
      onSuccess: (decision) => {
        if (decision._tag === "Held") {
          budget.holds.set(reservation, decision.id)
          return Effect.succeed(reservation)
        }
        return Effect.fail(
          new InferenceError.BudgetExceededError({
            model: reservation.model,
            dimension: decision.dimension,
            limit: decision.limit,
            spent: decision.spent,
            reserved: decision.reserved,
            requested: decision.requested,
            resetsIn: decision.resetsInMillis === undefined
              ? Option.none()
              : Option.some(Duration.millis(decision.resetsInMillis))
          })
        )
      }
    }
  ))

/** Gives back the call's hold, if it is still held, spends what it used, and returns the alerts it crossed. */
const spend = (
  budget: Budget,
  call: UsageTracker.CallRecord,
  event: UsageEvent
): Effect.Effect<ReadonlyArray<BudgetAlert>> => {
  const reservation = call.reservation
  const id = reservation === undefined ? undefined : budget.holds.get(reservation)
  if (reservation !== undefined && id !== undefined) budget.holds.delete(reservation)
  return Effect.matchEffect(
    budget.store.settle({
      key: budget.key,
      id,
      used: { usd: event.costUsd, tokens: event.totalTokens },
      limits: budget.limits
    }),
    {
      onFailure: (error) => Effect.as(storeFailed(budget, error, "the call is not counted in the budget"), []),
      onSuccess: (crossed) => Effect.succeed(crossed.map((c) => new BudgetAlert({ ...c, model: call.model })))
    }
  )
}

// ---------------------------------------------------------------------------
// Log lines and alerts
// ---------------------------------------------------------------------------

/** The log line of a call, unless it is below `minimum` (the fiber's minimum level): then it is not built. */
const logUsage = (
  resolved: Resolved,
  event: UsageEvent,
  call: UsageTracker.CallRecord,
  minimum: LogLevel.LogLevel
): Effect.Effect<void> =>
  resolved.logLevel._tag === "None" || LogLevel.lessThan(resolved.logLevel, minimum)
    ? Effect.void
    : logLine(resolved, event, call)

const logLine = (resolved: Resolved, event: UsageEvent, call: UsageTracker.CallRecord): Effect.Effect<void> =>
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

const logAlert = (alert: Alert): Effect.Effect<void> =>
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
    )

// ---------------------------------------------------------------------------
// The tracker
// ---------------------------------------------------------------------------

/**
 * Where a tracker keeps its budget: a store given explicitly, else the one in
 * context, else a memory store of its own.
 *
 * @internal
 */
export interface StoreOptions {
  readonly store?: BudgetStore.BudgetStore.Service | undefined
  /** Default `"budget"`. */
  readonly key?: string | undefined
}

/** @internal */
export const make = (options: UsageTracker.Options = {}): Effect.Effect<UsageTracker.UsageTracker.Service> =>
  Effect.flatMap(validate.optionsOrDie("UsageTracker", resolveOptions(options)), (resolved) => makeResolved(resolved))

/**
 * A tracker of options checked already (by `resolveOptions`, as the client
 * checks its own `usage` option with the rest of its options). Its budget
 * lives in `options.store`, else in the `BudgetStore` in context, else in a
 * memory store of its own, under `options.key` (default `"budget"`).
 *
 * @internal
 */
export const makeResolved = (
  resolved: Resolved,
  options?: StoreOptions
): Effect.Effect<UsageTracker.UsageTracker.Service> =>
  Effect.gen(function*() {
    const origin = yield* Clock.currentTimeMillis
    const eventHub = yield* PubSub.sliding<UsageEvent>(4096)
    const alertHub = yield* PubSub.sliding<Alert>(1024)
    const budget: Budget | undefined = resolved.usd === undefined && resolved.tokens === undefined
      ? undefined
      : {
        store: options?.store ??
          Option.getOrElse(yield* Effect.serviceOption(budgetStore.BudgetStore), budgetStore.unsafeMakeMemory),
        key: options?.key ?? budgetStore.DEFAULT_KEY,
        limits: {
          usd: resolved.usd,
          tokens: resolved.tokens,
          periodMillis: resolved.period,
          origin,
          thresholds: resolved.thresholds
        },
        holds: new WeakMap()
      }
    const overall = emptySummary()
    const byModel = new Map<string, MutableSummary>()
    const unpricedWarned = new Set<string>()

    /** A call's reservation, before the budget holds it: its estimate, priced at the dearest of `models`. */
    const estimate = (
      request: ChatCompletionRequestInput,
      models: ReadonlyArray<string> | undefined
    ): UsageTracker.Reservation | InferenceError.InvalidRequestError => {
      const promptTokens = tokens.estimatePromptTokens(request)
      const completionTokens = tokens.estimateCompletionTokens(request)
      let cost = 0
      for (const model of models ?? [request.model]) {
        const price = pricing.upperCostOf(resolved.prices, model, promptTokens, completionTokens)
        if (price === undefined) {
          if (resolved.usd === undefined) continue
          return new InferenceError.InvalidRequestError({
            path: "model",
            issue:
              `"${model}" has no price in the usage tracker, so the dollar budget cannot hold its cost: add it to prices`
          })
        }
        cost = Math.max(cost, price)
      }
      return { model: request.model, promptTokens, completionTokens, usd: cost }
    }

    const reserve = (
      request: ChatCompletionRequestInput,
      models?: ReadonlyArray<string>
    ): Effect.Effect<
      UsageTracker.Reservation,
      InferenceError.BudgetExceededError | InferenceError.InvalidRequestError | InferenceError.CoordinationError
    > =>
      Effect.suspend((): Effect.Effect<
        UsageTracker.Reservation,
        InferenceError.BudgetExceededError | InferenceError.InvalidRequestError | InferenceError.CoordinationError
      > => {
        const reservation = estimate(request, models)
        if (reservation instanceof InferenceError.InvalidRequestError) return Effect.fail(reservation)
        return budget === undefined ? Effect.succeed(reservation) : hold(budget, reservation)
      })

    const record = (call: UsageTracker.CallRecord): Effect.Effect<UsageEvent> =>
      // The clock, the metric labels and the minimum log level read in one step: this runs after every call.
      Effect.withFiberRuntime((fiber) => {
        const labels = fiber.getFiberRef(FiberRef.currentMetricLabels)
        const minimum = fiber.getFiberRef(FiberRef.currentMinimumLogLevel)
        const used = usageOf(call)
        const cost = pricing.costOf(
          resolved.prices,
          call.model,
          used.promptTokens,
          used.completionTokens,
          used.cachedTokens
        )
        const now = Context.get(fiber.currentDefaultServices, Clock.Clock).unsafeCurrentTimeMillis()
        const event = eventOf(call, used, cost, now)
        // Uninterruptible from the budget's settlement to the totals: a call is counted in both or in neither.
        return budget === undefined
          ? count(call, event, used, [], labels, minimum)
          : Effect.flatten(Effect.uninterruptible(
            Effect.map(spend(budget, call, event), (alerts) => count(call, event, used, alerts, labels, minimum))
          ))
      })

    /**
     * Adds the call to the totals and the metrics in one synchronous step, and
     * returns what is left to do: the log lines and the publishing.
     */
    const count = (
      call: UsageTracker.CallRecord,
      event: UsageEvent,
      used: Used,
      budgetAlerts: ReadonlyArray<BudgetAlert>,
      labels: ReadonlyArray<MetricLabel.MetricLabel>,
      minimum: LogLevel.LogLevel
    ): Effect.Effect<UsageEvent> => {
      const alerts: Array<Alert> = [...budgetAlerts]
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
      let after: Effect.Effect<unknown> = Effect.zipRight(
        logUsage(resolved, event, call, minimum),
        PubSub.publish(eventHub, event)
      )
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
      if (!event.priced && event.totalTokens > 0 && !unpricedWarned.has(call.model)) {
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

    const publishAlert = (alert: Alert): Effect.Effect<void> =>
      Effect.zipRight(logAlert(alert), PubSub.publish(alertHub, alert))

    const summaryCopy = (s: MutableSummary): UsageTracker.Summary => ({ ...s })
    const totals = Effect.sync((): UsageTracker.Totals => ({
      overall: summaryCopy(overall),
      byModel: Object.fromEntries([...byModel].map(([model, s]) => [model, summaryCopy(s)]))
    }))
    // `budget` and `report` have no error channel: a store that cannot say where the budget stands is a defect.
    const budgetStatus: Effect.Effect<ReadonlyArray<UsageTracker.BudgetStatus>> = budget === undefined
      ? Effect.succeed([])
      : Effect.orDie(budget.store.status({ key: budget.key, limits: budget.limits }))

    const tracker: UsageTracker.UsageTracker.Service = {
      reserve,
      record,
      costOf: (model, promptTokens, completionTokens, cachedTokens) =>
        pricing.costOf(resolved.prices, model, promptTokens, completionTokens, cachedTokens),
      totals,
      budget: budgetStatus,
      report: Effect.map(Effect.zip(totals, budgetStatus), ([t, budgets]) => formatReport(t, budgets)),
      events: Stream.fromPubSub(eventHub),
      subscribe: PubSub.subscribe(eventHub),
      alerts: Stream.fromPubSub(alertHub),
      subscribeAlerts: PubSub.subscribe(alertHub)
    }
    if (budget === undefined) unheld.set(tracker, estimate)
    return tracker
  })

/** The trackers `makeResolved` made with no budget, whose reservation is its estimate, held nowhere. */
const unheld = new WeakMap<
  UsageTracker.UsageTracker.Service,
  (
    request: ChatCompletionRequestInput,
    models: ReadonlyArray<string> | undefined
  ) => UsageTracker.Reservation | InferenceError.InvalidRequestError
>()

/**
 * `tracker.reserve(request, models)` in the caller's step, when the tracker is one of `makeResolved`'s with no
 * budget (nothing to hold: the reservation is the estimate); `undefined` otherwise, and `reserve` it is (see
 * streamFast.ts).
 *
 * @internal
 */
export const reserveNow = (
  tracker: UsageTracker.UsageTracker.Service,
  request: ChatCompletionRequestInput,
  models: ReadonlyArray<string>
): UsageTracker.Reservation | undefined => {
  const reservation = unheld.get(tracker)?.(request, models)
  return reservation === undefined || reservation instanceof InferenceError.InvalidRequestError
    ? undefined
    : reservation
}

const safeJson = (value: unknown): string => {
  try {
    return JSON.stringify(value) ?? ""
  } catch {
    return "(not JSON)"
  }
}
