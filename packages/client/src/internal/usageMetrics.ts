/**
 * The metrics every usage tracker updates, and how one call updates them.
 */
import * as Metric from "effect/Metric"
import * as MetricBoundaries from "effect/MetricBoundaries"
import * as MetricLabel from "effect/MetricLabel"
import type { UsageEvent } from "./usageEvents.js"

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

/**
 * Updates the metrics for one call, with the metric labels of the fiber (`Effect.tagMetrics`) as `Metric.update` does. *
 * @internal
 */
export const observe = (event: UsageEvent, labels: ReadonlyArray<MetricLabel.MetricLabel>): void => {
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
