/**
 * The totals of a tracker's calls, and its report as a plain-text table.
 */
import type * as UsageTracker from "../UsageTracker.js"
import type { UsageEvent } from "./usageEvents.js"

/** @internal */
export type MutableSummary = { -readonly [K in keyof UsageTracker.Summary]: UsageTracker.Summary[K] }

/** @internal */
export const emptySummary = (): MutableSummary => ({
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

/** @internal */
export const addTo = (summary: MutableSummary, event: UsageEvent): void => {
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

const table = (rows: ReadonlyArray<ReadonlyArray<string>>): string => {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((row) => row[i]!.length)))
  return rows.map((row) =>
    row.map((cell, i) => i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!)).join("  ")
  )
    .join("\n")
}

/** @internal */
export const formatReport = (
  totals: UsageTracker.Totals,
  budgets: ReadonlyArray<UsageTracker.BudgetStatus>
): string => {
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
      ...Object.entries(totals.byModel).sort(([a], [b]) => a.localeCompare(b)).map(([model, s]) => row(model, s)),
      row("total", totals.overall)
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
}
