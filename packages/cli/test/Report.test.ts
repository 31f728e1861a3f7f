import { assert, describe, it } from "@effect/vitest"
import type * as Engine from "../src/internal/engine.js"
import * as Report from "../src/internal/report.js"

const progress: Engine.Progress = {
  total: 12_345,
  done: 2_345,
  succeeded: 2_300,
  failed: 45,
  failedByTag: { BadRequestError: 15, RateLimitError: 30 },
  inFlight: 64,
  limit: undefined,
  promptTokens: 120_000,
  completionTokens: 34_567,
  usd: 0.0421,
  elapsedMillis: 60_000,
  rowsPerSecond: 39.083,
  etaMillis: 255_900
}

const summary: Engine.Summary = {
  input: "prompts.jsonl",
  output: "results.jsonl",
  errors: "results.jsonl.errors.jsonl",
  dryRun: false,
  rows: 1_000,
  inShard: 1_000,
  invalid: 0,
  alreadySucceeded: 0,
  alreadyFailed: 0,
  retried: 0,
  unfinishedBefore: 0,
  succeeded: 990,
  failed: 10,
  failedByTag: { ServiceUnavailableError: 4, BadRequestError: 6 },
  pending: 0,
  abandoned: 0,
  attempts: 1_234,
  promptTokens: 25_000,
  completionTokens: 18_000,
  usd: 0.01,
  estimate: [
    {
      model: "meta-llama/Llama-3.1-8B-Instruct",
      rows: 1_000,
      promptTokens: 24_000,
      completionTokens: 1_024_000,
      usd: { min: 0.00132, max: 0.23056 }
    }
  ],
  wallMillis: 95_000,
  stopped: undefined
}

describe("Report", () => {
  it("formats counts, dollars and durations", () => {
    assert.strictEqual(Report.count(1_234_567), "1,234,567")
    assert.strictEqual(Report.usd(0.00132), "$0.0013")
    assert.strictEqual(Report.usd(12.345), "$12.35")
    assert.strictEqual(Report.duration(4_200), "4.2s")
    assert.strictEqual(Report.duration(95_000), "1m35s")
    assert.strictEqual(Report.duration(3_725_000), "1h02m")
    assert.strictEqual(Report.duration(Infinity), "?")
  })

  describe("progressLine", () => {
    it("gives rows, rate, ETA, tokens, cost, rows in flight and failures by tag, most first", () => {
      assert.strictEqual(
        Report.progressLine(progress),
        "progress: 2,345/12,345 rows (18%) · 39.1 rows/s · ETA 4m16s · 154,567 tokens · $0.0421 · 64 in flight · " +
          "45 failed (RateLimitError 30, BadRequestError 15)"
      )
    })

    it("gives the adaptive limit when there is one, and ? for the ETA before the first row", () => {
      assert.strictEqual(
        Report.progressLine({
          ...progress,
          done: 0,
          succeeded: 0,
          failed: 0,
          failedByTag: {},
          limit: 48,
          promptTokens: 0,
          completionTokens: 0,
          usd: 0,
          rowsPerSecond: 0,
          etaMillis: undefined
        }),
        "progress: 0/12,345 rows (0%) · 0.0 rows/s · ETA ? · 0 tokens · $0.0000 · limit 48 · 0 failed"
      )
    })
  })

  describe("progressBar", () => {
    it("draws the bar before the line and cuts it to the width", () => {
      const bar = `[${"█".repeat(4)}${"░".repeat(20)}]`
      assert.strictEqual(
        Report.progressBar(progress, 200),
        `${bar} ${Report.progressLine(progress).slice("progress: ".length)}`
      )
      const cut = Report.progressBar(progress, 40)
      assert.strictEqual(cut.length, 40)
      assert.strictEqual(cut, `${bar} 2,345/12,345…`)
    })
  })

  describe("dryRun", () => {
    it("counts the invalid rows skipped", () => {
      const text = Report.dryRun({ ...summary, dryRun: true, invalid: 3 })
      assert.strictEqual(
        text.split("\n")[0],
        "dry run: 1,000 rows in prompts.jsonl, 3 invalid (skipped); nothing was sent"
      )
    })

    it("gives the rows, the estimate by model and the total", () => {
      assert.strictEqual(
        Report.dryRun({ ...summary, dryRun: true, succeeded: 0, failed: 0, failedByTag: {}, attempts: 0 }),
        [
          "dry run: 1,000 rows in prompts.jsonl, all valid; nothing was sent",
          "estimate (prompt at about 4 characters a token; completion from none to max_tokens, 1,024 when unset):",
          "  meta-llama/Llama-3.1-8B-Instruct: 1,000 rows, 24,000 prompt tokens + up to 1,024,000 completion tokens, " +
          "$0.0013 to $0.2306",
          "  total: $0.0013 to $0.2306"
        ].join("\n")
      )
    })

    it("says so when a model has no price, and gives the rows of a shard", () => {
      assert.strictEqual(
        Report.dryRun({
          ...summary,
          dryRun: true,
          inShard: 340,
          estimate: [{ model: "acme/model", rows: 340, promptTokens: 5_000, completionTokens: 348_160, usd: undefined }]
        }),
        [
          "dry run: 1,000 rows in prompts.jsonl, all valid; nothing was sent",
          "340 rows in this shard",
          "estimate (prompt at about 4 characters a token; completion from none to max_tokens, 1,024 when unset):",
          "  acme/model: 340 rows, 5,000 prompt tokens + up to 348,160 completion tokens, " +
          "no price (give one with --prices)",
          "  total: unknown (a model has no price)"
        ].join("\n")
      )
    })
  })

  describe("summary", () => {
    it("gives the table and how to retry the failures", () => {
      assert.strictEqual(
        Report.summary(summary, "effect-inference batch prompts.jsonl -o results.jsonl"),
        [
          "batch summary",
          "  input            prompts.jsonl: 1,000 rows",
          "  succeeded        990",
          "  failed           10 (BadRequestError 6, ServiceUnavailableError 4)",
          "  retried          0 rows an earlier run failed",
          "  attempts         1,234",
          "  tokens           25,000 prompt + 18,000 completion (estimate 24,000 prompt + up to 1,024,000 completion)",
          "  cost             $0.0100 (estimate $0.0013 to $0.2306)",
          "  wall time        1m35s",
          "  results          results.jsonl; failures in results.jsonl.errors.jsonl",
          "",
          "Retryable failures are tried again by running the same command again; the others with --retry-failed."
        ].join("\n")
      )
    })

    it("gives what earlier runs did, a stop, abandoned rows and how to go on", () => {
      assert.strictEqual(
        Report.summary(
          {
            ...summary,
            invalid: 3,
            inShard: 997,
            alreadySucceeded: 500,
            alreadyFailed: 7,
            retried: 2,
            unfinishedBefore: 4,
            succeeded: 300,
            failed: 0,
            failedByTag: {},
            pending: 190,
            abandoned: 5,
            stopped: { reason: "interrupted", message: "interrupted: no further rows were taken" }
          },
          "effect-inference batch prompts.jsonl -o results.jsonl"
        ),
        [
          "batch summary",
          "  input            prompts.jsonl: 1,000 rows, 3 invalid (skipped)",
          "  done before      500 succeeded, 7 failed (kept; --retry-failed tries them)",
          "  succeeded        300",
          "  failed           0",
          "  retried          2 rows an earlier run failed",
          "  attempts         1,234",
          "  tokens           25,000 prompt + 18,000 completion (estimate 24,000 prompt + up to 1,024,000 completion)",
          "  cost             $0.0100 (estimate $0.0013 to $0.2306)",
          "  wall time        1m35s",
          "  results          results.jsonl; failures in results.jsonl.errors.jsonl",
          "  sent twice?      4 rows were in flight when the last run stopped: sent again",
          "",
          "interrupted: no further rows were taken",
          "5 rows in flight were abandoned after the grace period; they may have been paid",
          "190 rows not done. To go on, run the same command again:",
          "  effect-inference batch prompts.jsonl -o results.jsonl"
        ].join("\n")
      )
    })
  })
})
