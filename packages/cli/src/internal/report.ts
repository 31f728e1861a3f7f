/**
 * The place where a run is put into words: the live progress bar of a
 * terminal, the plain progress line of a log, the dry run's estimate and the
 * summary at the end. Pure functions of the figures, so their text is tested
 * as it is.
 */
import type { Progress, Summary } from "./engine.js"
import type * as Input from "./input.js"

const integer = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 })

/** 1234567 → "1,234,567". */
export const count = (n: number): string => integer.format(n)

/** Dollars with four decimals below $10, two above. */
export const usd = (n: number): string => `$${n < 10 ? n.toFixed(4) : n.toFixed(2)}`

/** 95_000 ms → "1m35s"; 4_200 → "4.2s". */
export const duration = (millis: number): string => {
  if (!Number.isFinite(millis)) return "?"
  if (millis < 60_000) return `${(millis / 1000).toFixed(1)}s`
  const seconds = Math.round(millis / 1000)
  const hours = Math.floor(seconds / 3600)
  const minutes = Math.floor((seconds % 3600) / 60)
  const rest = seconds % 60
  return hours > 0 ? `${hours}h${String(minutes).padStart(2, "0")}m` : `${minutes}m${String(rest).padStart(2, "0")}s`
}

const byTag = (tags: Readonly<Record<string, number>>): string =>
  Object.entries(tags)
    .sort(([a, x], [b, y]) => y - x || a.localeCompare(b))
    .map(([tag, n]) => `${tag} ${count(n)}`)
    .join(", ")

const percent = (progress: Progress): string =>
  progress.total === 0 ? "100%" : `${Math.floor((progress.done / progress.total) * 100)}%`

const concurrency = (progress: Progress): string =>
  progress.limit === undefined ? `${count(progress.inFlight)} in flight` : `limit ${count(progress.limit)}`

/** The plain line a log gets every few seconds (no terminal). */
export const progressLine = (progress: Progress): string => {
  const parts = [
    `${count(progress.done)}/${count(progress.total)} rows (${percent(progress)})`,
    `${progress.rowsPerSecond.toFixed(1)} rows/s`,
    `ETA ${progress.etaMillis === undefined ? "?" : duration(progress.etaMillis)}`,
    `${count(progress.promptTokens + progress.completionTokens)} tokens`,
    usd(progress.usd),
    concurrency(progress),
    progress.failed === 0 ? "0 failed" : `${count(progress.failed)} failed (${byTag(progress.failedByTag)})`
  ]
  return `progress: ${parts.join(" · ")}`
}

/** The terminal's live bar, one line of at most `width` columns, redrawn in place. */
export const progressBar = (progress: Progress, width: number): string => {
  const barWidth = 24
  const filled = progress.total === 0 ? barWidth : Math.floor((progress.done / progress.total) * barWidth)
  const bar = `[${"█".repeat(filled)}${"░".repeat(barWidth - filled)}]`
  const line = `${bar} ${progressLine(progress).slice("progress: ".length)}`
  return line.length > width ? `${line.slice(0, Math.max(0, width - 1))}…` : line
}

const modelLines = (estimate: ReadonlyArray<Input.ModelEstimate>): Array<string> =>
  estimate.map((model) =>
    `  ${model.model}: ${count(model.rows)} rows, ${count(model.promptTokens)} prompt tokens + up to ` +
    `${count(model.completionTokens)} completion tokens, ` +
    (model.usd === undefined ? "no price (give one with --prices)" : `${usd(model.usd.min)} to ${usd(model.usd.max)}`)
  )

const estimateTotal = (estimate: ReadonlyArray<Input.ModelEstimate>) => {
  let min = 0
  let max = 0
  let priced = true
  let promptTokens = 0
  let completionTokens = 0
  for (const model of estimate) {
    promptTokens += model.promptTokens
    completionTokens += model.completionTokens
    if (model.usd === undefined) priced = false
    else {
      min += model.usd.min
      max += model.usd.max
    }
  }
  return { min, max, priced, promptTokens, completionTokens }
}

/** What a dry run prints. */
export const dryRun = (summary: Summary): string => {
  const total = estimateTotal(summary.estimate)
  const rows = summary.estimate.reduce((sum, model) => sum + model.rows, 0)
  return [
    `dry run: ${count(summary.rows)} rows in ${summary.input}, ` +
    `${summary.invalid === 0 ? "all valid" : `${count(summary.invalid)} invalid (skipped)`}; nothing was sent`,
    ...(summary.inShard === summary.rows - summary.invalid ? [] : [`${count(rows)} rows in this shard`]),
    "estimate (prompt at about 4 characters a token; completion from none to max_tokens, 1,024 when unset):",
    ...modelLines(summary.estimate),
    `  total: ${total.priced ? `${usd(total.min)} to ${usd(total.max)}` : "unknown (a model has no price)"}`
  ].join("\n")
}

const row = (label: string, value: string) => `  ${label.padEnd(16)} ${value}`

/** The summary at the end of a run, and how to go on. */
export const summary = (s: Summary, resumeCommand: string): string => {
  const total = estimateTotal(s.estimate)
  const lines = [
    "batch summary",
    row(
      "input",
      `${s.input}: ${count(s.rows)} rows${s.invalid === 0 ? "" : `, ${count(s.invalid)} invalid (skipped)`}`
    ),
    ...(s.inShard === s.rows - s.invalid ? [] : [row("shard", `${count(s.inShard)} rows`)]),
    ...(s.alreadySucceeded + s.alreadyFailed === 0 ? [] : [
      row(
        "done before",
        `${count(s.alreadySucceeded)} succeeded, ${count(s.alreadyFailed)} failed (kept; --retry-failed tries them)`
      )
    ]),
    row("succeeded", count(s.succeeded)),
    row("failed", s.failed === 0 ? "0" : `${count(s.failed)} (${byTag(s.failedByTag)})`),
    row("retried", `${count(s.retried)} rows an earlier run failed`),
    row("attempts", count(s.attempts)),
    row(
      "tokens",
      `${count(s.promptTokens)} prompt + ${count(s.completionTokens)} completion ` +
        `(estimate ${count(total.promptTokens)} prompt + up to ${count(total.completionTokens)} completion)`
    ),
    row(
      "cost",
      `${usd(s.usd)} (estimate ${
        total.priced ? `${usd(total.min)} to ${usd(total.max)}` : "unknown: a model has no price"
      })`
    ),
    row("wall time", duration(s.wallMillis)),
    row("results", `${s.output}; failures in ${s.errors}`)
  ]
  if (s.unfinishedBefore > 0) {
    lines.push(
      row("sent twice?", `${count(s.unfinishedBefore)} rows were in flight when the last run stopped: sent again`)
    )
  }
  if (s.stopped !== undefined) lines.push("", s.stopped.message)
  if (s.abandoned > 0) {
    lines.push(`${count(s.abandoned)} rows in flight were abandoned after the grace period; they may have been paid`)
  }
  if (s.pending > 0) {
    lines.push(`${count(s.pending)} rows not done. To go on, run the same command again:`, `  ${resumeCommand}`)
  } else if (s.failed > 0) {
    lines.push(
      "",
      "Retryable failures are tried again by running the same command again; the others with --retry-failed."
    )
  }
  return lines.join("\n")
}
