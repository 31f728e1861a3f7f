import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientError from "@effect/platform/HttpClientError"
import { assert, describe, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import * as TestClock from "effect/TestClock"
import type { ChatCompletionRequestInput } from "../src/ChatCompletion.js"
import { Usage } from "../src/ChatCompletion.js"
import * as InferenceClient from "../src/InferenceClient.js"
import * as InferenceError from "../src/InferenceError.js"
import type * as RateLimit from "../src/RateLimit.js"
import * as UsageTracker from "../src/UsageTracker.js"
import * as Capture from "./utils/Capture.js"
import { hello, layer as clientLayer, MODEL, SECRET, testOptions, withClient } from "./utils/Client.js"
import { everyError } from "./utils/Errors.js"
import * as Fake from "./utils/FakeTransport.js"
import { refusesEach } from "./utils/Options.js"

/** One dollar per million prompt tokens, two per million completion tokens: costs are easy to check by hand. */
const PRICED = "test/priced"
const prices = { [PRICED]: { input: 1, output: 2 } }

const request = (content: string, maxTokens: number, model = PRICED): ChatCompletionRequestInput => ({
  model,
  messages: [{ role: "user", content }],
  max_tokens: maxTokens
})

/** A finished call that used `prompt` and `completion` tokens. */
const used = (prompt: number, completion: number, model = PRICED): UsageTracker.CallRecord => ({
  model,
  latency: "120 millis",
  attempts: 1,
  usage: { promptTokens: prompt, completionTokens: completion }
})

const quiet = { logLevel: "None" } as const

const collectAlerts = (queue: Queue.Dequeue<UsageTracker.Alert>) =>
  Effect.map(Queue.takeAll(queue), (alerts) => Chunk.toReadonlyArray(alerts))

describe("UsageTracker", () => {
  describe("prices", () => {
    it.effect("prices tokens per million, input and output apart, with defaults for the simulator's models", () =>
      Effect.gen(function*() {
        const tracker = yield* UsageTracker.make({ prices, ...quiet })
        assert.strictEqual(tracker.costOf(PRICED, 1_000_000, 500_000), 2)
        const llama = UsageTracker.DEFAULT_PRICES[MODEL]
        assert.isDefined(llama)
        assert.closeTo(tracker.costOf(MODEL, 1000, 1000)!, (1000 * llama.input + 1000 * llama.output) / 1e6, 1e-15)
        assert.isUndefined(tracker.costOf("someone/unknown-model", 10, 10))
      }))

    it.effect("user prices replace the default of the same model and keep the others", () =>
      Effect.gen(function*() {
        const tracker = yield* UsageTracker.make({ prices: { [MODEL]: { input: 10, output: 10 } }, ...quiet })
        assert.strictEqual(tracker.costOf(MODEL, 100_000, 0), 1)
        assert.isDefined(tracker.costOf("openai/gpt-oss-120b", 1, 1))
      }))

    refusesEach(UsageTracker.make, [
      ["a negative price", { prices: { m: { input: -1, output: 1 } } }, "prices[\"m\"]"],
      ["a negative cached input price", { prices: { m: { input: 1, cachedInput: -1, output: 1 } } }, "cachedInput"],
      ["a budget of zero dollars", { budget: { usd: 0 } }, "budget.usd"],
      ["a fractional token budget", { budget: { tokens: 10.5 } }, "budget.tokens"],
      ["a budget with no limit", { budget: { period: "1 day" } }, "budget needs usd, tokens or both"],
      ["a threshold above 1", { budget: { usd: 1, thresholds: [0.5, 1.5] } }, "budget.thresholds"],
      ["a zero period", { budget: { usd: 1, period: 0 } }, "budget.period"],
      ["an unknown log level", { logLevel: "Loud" as "Info" }, "logLevel"]
    ])
  })

  describe("cached input", () => {
    const cachedPrices = { [PRICED]: { input: 1, cachedInput: 0.25, output: 2 }, "test/flat": { input: 1, output: 2 } }

    it.effect("cached prompt tokens cost cachedInput, the rest of the prompt input, the completion output", () =>
      Effect.gen(function*() {
        const tracker = yield* UsageTracker.make({ prices: cachedPrices, ...quiet })
        // (1,000,000 - 400,000) * 1 + 400,000 * 0.25 + 500,000 * 2 = 1,700,000 micro-dollars
        assert.closeTo(tracker.costOf(PRICED, 1_000_000, 500_000, 400_000)!, 1.7, 1e-12)
        assert.strictEqual(tracker.costOf(PRICED, 1_000_000, 500_000), 2, "no cached tokens: all at input")
        // Without cachedInput, cached tokens cost the input rate.
        assert.strictEqual(tracker.costOf("test/flat", 1_000_000, 500_000, 400_000), 2)
        // Cached tokens are part of the prompt: never more than it.
        assert.strictEqual(tracker.costOf(PRICED, 100_000, 0, 1_000_000), 0.025)
      }))

    it.scoped("events, totals, metrics and the log line carry cached and reasoning tokens", () =>
      Effect.gen(function*() {
        const model = "metrics/model-cached"
        const capture = Capture.make()
        const { event, totals } = yield* Capture.withCapture(
          capture,
          Effect.gen(function*() {
            // Info: the line is read from the default logger, whose minimum level is Info (the default level is Debug)
            const tracker = yield* UsageTracker.make({ prices: { [model]: cachedPrices[PRICED] }, logLevel: "Info" })
            const event = yield* tracker.record({
              ...used(1000, 300, model),
              usage: { promptTokens: 1000, completionTokens: 300, cachedTokens: 800, reasoningTokens: 250 }
            })
            yield* tracker.record(used(10, 10, model))
            return { event, totals: yield* tracker.totals }
          })
        )
        assert.deepInclude(event, {
          promptTokens: 1000,
          completionTokens: 300,
          totalTokens: 1300,
          cachedTokens: 800,
          reasoningTokens: 250,
          costUsd: (200 * 1 + 800 * 0.25 + 300 * 2) / 1e6
        })
        assert.deepInclude(totals.byModel[model], { promptTokens: 1010, cachedTokens: 800, reasoningTokens: 250 })
        assert.deepInclude(totals.overall, { cachedTokens: 800, reasoningTokens: 250 })
        const tokens = (kind: string) =>
          Metric.value(UsageTracker.metrics.tokens.pipe(Metric.tagged("model", model), Metric.tagged("kind", kind)))
        assert.strictEqual((yield* tokens("cached")).count, 800)
        assert.strictEqual((yield* tokens("reasoning")).count, 250)
        assert.strictEqual((yield* tokens("prompt")).count, 1010)
        assert.deepInclude(capture.logs[0]?.annotations, { cachedTokens: 800, reasoningTokens: 250 })
        assert.deepInclude(capture.logs[1]?.annotations, { cachedTokens: 0, reasoningTokens: 0 })
      }))

    it("callUsage reads the token details of a reported usage, 0 when absent", () => {
      const usage = Schema.decodeUnknownSync(Usage)({
        prompt_tokens: 120,
        completion_tokens: 20,
        total_tokens: 140,
        prompt_tokens_details: { cached_tokens: 96 },
        completion_tokens_details: { reasoning_tokens: null }
      })
      assert.deepStrictEqual(UsageTracker.callUsage(usage), {
        promptTokens: 120,
        completionTokens: 20,
        cachedTokens: 96,
        reasoningTokens: 0
      })
    })

    it("the default prices are examples for the current catalogue, each with a cached input rate", () => {
      for (
        const model of [
          "deepseek-ai/DeepSeek-V4.1-Flash",
          "zai-org/GLM-5.2",
          "openai/gpt-oss-20b",
          "Qwen/Qwen3.6-35B-A3B",
          "nvidia/NVIDIA-Nemotron-3-Ultra-550B-A55B",
          MODEL
        ]
      ) {
        const price = UsageTracker.DEFAULT_PRICES[model]
        assert.isDefined(price, model)
        assert.isDefined(price?.cachedInput, model)
        assert.isAtMost(price!.cachedInput!, price!.input, model)
      }
    })
  })

  describe("totals", () => {
    it.effect("adds each call to its model and to the overall totals", () =>
      Effect.gen(function*() {
        const tracker = yield* UsageTracker.make({ prices, ...quiet })
        yield* tracker.record(used(100, 50))
        yield* tracker.record({ ...used(10, 0), attempts: 3 })
        yield* tracker.record({ model: PRICED, latency: 0, attempts: 0, cached: true })
        yield* tracker.record({
          model: "other/model",
          latency: 0,
          attempts: 2,
          error: everyError.InternalServerError
        })
        const totals = yield* tracker.totals
        assert.deepStrictEqual(totals.byModel[PRICED], {
          calls: 3,
          succeeded: 3,
          failed: 0,
          cacheHits: 1,
          attempts: 4,
          promptTokens: 110,
          completionTokens: 50,
          totalTokens: 160,
          cachedTokens: 0,
          reasoningTokens: 0,
          costUsd: (110 * 1 + 50 * 2) / 1e6
        })
        assert.strictEqual(totals.byModel["other/model"]?.failed, 1)
        assert.strictEqual(totals.byModel["other/model"]?.totalTokens, 0)
        assert.strictEqual(totals.overall.calls, 4)
        assert.strictEqual(totals.overall.attempts, 6)
        assert.strictEqual(totals.overall.totalTokens, 160)
      }))

    it.scoped("publishes an event per call, with its outcome, tokens, cost and request id", () =>
      Effect.gen(function*() {
        const tracker = yield* UsageTracker.make({ prices, ...quiet })
        const events = yield* tracker.subscribe
        yield* TestClock.setTime(1_750_000_000_000)
        yield* tracker.record({ ...used(1000, 500), requestId: "req-7", stream: true })
        yield* tracker.record({ model: PRICED, latency: "2 seconds", attempts: 4, error: everyError.TimeoutError })
        const [first, second] = Chunk.toReadonlyArray(yield* Queue.takeAll(events))
        assert.deepInclude(first, {
          timestamp: 1_750_000_000_000,
          model: PRICED,
          stream: true,
          cached: false,
          outcome: "success",
          promptTokens: 1000,
          completionTokens: 500,
          totalTokens: 1500,
          usage: "reported",
          costUsd: 0.002,
          priced: true,
          latencyMillis: 120,
          requestId: "req-7"
        })
        // No reservation to estimate from: a timeout without usage counts as nothing.
        assert.deepInclude(second, { outcome: "TimeoutError", attempts: 4, totalTokens: 0, usage: "none" })
      }))

    it.effect("a call the server refused counts as nothing; one that may have been processed counts as its estimate", () =>
      Effect.gen(function*() {
        const tracker = yield* UsageTracker.make({ prices, ...quiet })
        const refused = yield* tracker.reserve(request("x".repeat(40), 100))
        const refusedEvent = yield* tracker.record({
          model: PRICED,
          latency: 0,
          attempts: 1,
          reservation: refused,
          error: everyError.BadRequestError
        })
        assert.deepInclude(refusedEvent, { usage: "none", totalTokens: 0, costUsd: 0 })
        const timedOut = yield* tracker.reserve(request("x".repeat(40), 100))
        const timedOutEvent = yield* tracker.record({
          model: PRICED,
          latency: 0,
          attempts: 1,
          reservation: timedOut,
          error: everyError.TimeoutError
        })
        // 3 + (4 + 40 / 4) prompt tokens, 100 completion tokens
        assert.deepInclude(timedOutEvent, { usage: "estimated", promptTokens: 17, completionTokens: 100 })
        const interrupted = yield* tracker.reserve(request("x".repeat(40), 100))
        const interruptedEvent = yield* tracker.record({
          model: PRICED,
          latency: 0,
          attempts: 1,
          reservation: interrupted,
          interrupted: true
        })
        assert.deepInclude(interruptedEvent, { outcome: "Interrupted", usage: "estimated", totalTokens: 117 })
      }))

    it.effect("a model without a price costs 0, is marked unpriced, and is warned about once", () =>
      Effect.gen(function*() {
        const capture = Capture.make()
        const events = yield* Capture.withCapture(
          capture,
          Effect.gen(function*() {
            const tracker = yield* UsageTracker.make(quiet)
            return [
              yield* tracker.record(used(10, 10, "someone/unpriced")),
              yield* tracker.record(used(10, 10, "someone/unpriced"))
            ]
          })
        )
        assert.deepInclude(events[0], { costUsd: 0, priced: false, totalTokens: 20 })
        const warnings = capture.logs.filter((log) => log.message.includes("has no price"))
        assert.strictEqual(warnings.length, 1)
        assert.strictEqual(warnings[0]?.annotations.model, "someone/unpriced")
      }))

    it.effect("the report lists each model, the total and the budget", () =>
      Effect.gen(function*() {
        const tracker = yield* UsageTracker.make({ prices, budget: { tokens: 10_000 }, ...quiet })
        yield* tracker.record(used(1200, 300))
        yield* tracker.record(used(10, 10, "other/model"))
        const report = yield* tracker.report
        const lines = report.split("\n")
        assert.match(
          lines[0],
          /^model\s+calls\s+ok\s+failed\s+cached\s+attempts\s+prompt tokens\s+completion tokens\s+cost$/
        )
        assert.match(lines[1], /^other\/model\s+1\s+1\s+0\s+0\s+1\s+10\s+10\s+\$0\.000000$/)
        assert.match(lines[2], /^test\/priced\s+1\s+1\s+0\s+0\s+1\s+1,200\s+300\s+\$0\.001800$/)
        assert.match(lines[3], /^total\s+2\s+2\s+0\s+0\s+2\s+1,210\s+310\s+\$0\.001800$/)
        assert.strictEqual(lines[4], "budget (tokens): 1,520 spent of 10,000 (15.2%), 0 reserved")
      }))
  })

  describe("metrics", () => {
    it.effect("counts calls by outcome, attempts, tokens by kind, latency and cost, by model", () =>
      Effect.gen(function*() {
        const model = "metrics/model-a"
        const tracker = yield* UsageTracker.make({ prices: { [model]: { input: 1, output: 1 } }, ...quiet })
        const calls = (outcome: string) =>
          Metric.value(
            UsageTracker.metrics.calls.pipe(Metric.tagged("model", model), Metric.tagged("outcome", outcome))
          )
        const tokens = (kind: string) =>
          Metric.value(UsageTracker.metrics.tokens.pipe(Metric.tagged("model", model), Metric.tagged("kind", kind)))
        yield* tracker.record({ ...used(100, 40, model), attempts: 2 })
        yield* tracker.record({ model, latency: "3 seconds", attempts: 1, error: everyError.RateLimitError })
        assert.strictEqual((yield* calls("success")).count, 1)
        assert.strictEqual((yield* calls("RateLimitError")).count, 1)
        assert.strictEqual((yield* Metric.value(Metric.tagged(UsageTracker.metrics.attempts, "model", model))).count, 3)
        assert.strictEqual((yield* tokens("prompt")).count, 100)
        assert.strictEqual((yield* tokens("completion")).count, 40)
        const latency = yield* Metric.value(Metric.tagged(UsageTracker.metrics.latency, "model", model))
        assert.strictEqual(latency.count, 2)
        assert.strictEqual(latency.sum, 3120)
        const cost = yield* Metric.value(Metric.tagged(UsageTracker.metrics.cost, "model", model))
        assert.closeTo(cost.value, 140 / 1e6, 1e-15)
      }))
  })

  describe("the usage log line", () => {
    it.effect("is one structured line per call, with no prompt and no key", () =>
      Effect.gen(function*() {
        const capture = Capture.make()
        yield* Capture.withCapture(
          capture,
          Effect.gen(function*() {
            const tracker = yield* UsageTracker.make({ prices, logLevel: "Info" })
            yield* tracker.record({
              ...used(12, 3),
              requestId: "req-9",
              messages: [{ role: "user", content: "my secret diary" }]
            })
          })
        )
        assert.strictEqual(capture.logs.length, 1)
        const [log] = capture.logs
        assert.strictEqual(log.level, "INFO")
        assert.include(log.message, "Inference usage")
        assert.deepInclude(log.annotations, {
          model: PRICED,
          outcome: "success",
          attempts: 1,
          promptTokens: 12,
          completionTokens: 3,
          totalTokens: 15,
          costUsd: 18 / 1e6,
          requestId: "req-9",
          cached: false
        })
        assert.notInclude(capture.dump(), "secret diary")
      }))

    it.effect("is written at Debug by default: quiet under the default minimum level, there when it is lowered", () =>
      Effect.gen(function*() {
        const quietCapture = Capture.make()
        yield* Capture.withCapture(
          quietCapture,
          Effect.flatMap(UsageTracker.make({ prices }), (t) => t.record(used(1, 1)))
        )
        assert.deepStrictEqual(quietCapture.logs, [])
        const debugCapture = Capture.make()
        yield* Capture.withCapture(
          debugCapture,
          Effect.flatMap(UsageTracker.make({ prices }), (t) => t.record(used(1, 1)))
        ).pipe(Logger.withMinimumLogLevel(LogLevel.Debug))
        assert.deepStrictEqual(debugCapture.logs.map((log) => log.level), ["DEBUG"])
        assert.include(debugCapture.logs[0]?.message, "Inference usage")
      }))

    it.effect("carries the prompt when asked to, at the level asked for", () =>
      Effect.gen(function*() {
        const capture = Capture.make()
        yield* Capture.withCapture(
          capture,
          Effect.gen(function*() {
            const tracker = yield* UsageTracker.make({ prices, logPrompt: true, logLevel: "Warning" })
            yield* tracker.record({ ...used(1, 1), messages: [{ role: "user", content: "what is 2+2" }] })
          })
        )
        assert.strictEqual(capture.logs[0]?.level, "WARN")
        assert.include(String(capture.logs[0]?.annotations.prompt), "what is 2+2")
      }))

    it.effect("is not written at level None", () =>
      Effect.gen(function*() {
        const capture = Capture.make()
        yield* Capture.withCapture(
          capture,
          Effect.flatMap(UsageTracker.make({ prices, ...quiet }), (t) => t.record(used(1, 1)))
        )
        assert.strictEqual(capture.logs.length, 0)
      }))
  })

  describe("budgets", () => {
    it.effect("alerts once at each threshold, with exact figures, and logs each alert", () =>
      Effect.gen(function*() {
        const capture = Capture.make()
        const alerts = yield* Capture.withCapture(
          capture,
          Effect.scoped(Effect.gen(function*() {
            const tracker = yield* UsageTracker.make({ prices, budget: { tokens: 1000 }, ...quiet })
            const queue = yield* tracker.subscribeAlerts
            const seen: Array<ReadonlyArray<UsageTracker.Alert>> = []
            for (const tokens of [300, 300, 300, 100, 50]) {
              yield* tracker.record(used(tokens, 0))
              seen.push(yield* collectAlerts(queue))
            }
            return seen
          }))
        )
        const summary = alerts.map((batch) =>
          batch.map((alert) => alert._tag === "BudgetAlert" ? [alert.threshold, alert.spent, alert.limit] : [])
        )
        assert.deepStrictEqual(summary, [[], [[0.5, 600, 1000]], [[0.8, 900, 1000]], [[1, 1000, 1000]], []])
        const logged = capture.logs.filter((log) => log.message.includes("Inference budget threshold reached"))
        assert.deepStrictEqual(logged.map((log) => [log.level, log.annotations.threshold]), [
          ["WARN", "50%"],
          ["WARN", "80%"],
          ["WARN", "100%"]
        ])
      }))

    it.effect("a call that jumps past several thresholds alerts each of them", () =>
      Effect.scoped(Effect.gen(function*() {
        const tracker = yield* UsageTracker.make({
          prices,
          budget: { usd: 0.01, thresholds: [0.25, 0.5, 0.75] },
          ...quiet
        })
        const queue = yield* tracker.subscribeAlerts
        // 6000 prompt tokens at $1 per million: $0.006, 60% of the budget
        yield* tracker.record(used(6000, 0))
        const alerts = yield* collectAlerts(queue)
        assert.deepStrictEqual(alerts.map((a) => a._tag === "BudgetAlert" && [a.dimension, a.threshold]), [
          ["usd", 0.25],
          ["usd", 0.5]
        ])
      })))

    it.effect("at 100% a call fails with BudgetExceededError before anything is reserved", () =>
      Effect.gen(function*() {
        const tracker = yield* UsageTracker.make({ prices, budget: { tokens: 1000 }, ...quiet })
        yield* tracker.record(used(1000, 0))
        const error = yield* Effect.flip(tracker.reserve(request("hi", 1)))
        assert.strictEqual(error._tag, "BudgetExceededError")
        if (error._tag === "BudgetExceededError") {
          assert.deepInclude(error, { dimension: "tokens", limit: 1000, spent: 1000, reserved: 0, requested: 9 })
          assert.isTrue(Option.isNone(error.resetsIn))
          assert.include(error.message, "Nothing was sent")
        }
        assert.deepInclude((yield* tracker.budget)[0], { spent: 1000, reserved: 0, remaining: 0 })
      }))

    it.effect("reservations of calls in flight count: a call that does not fit beside them is refused", () =>
      Effect.gen(function*() {
        const tracker = yield* UsageTracker.make({ prices, budget: { tokens: 250 }, ...quiet })
        // 3 + (4 + 1) + 100 = 108 tokens each
        const first = yield* tracker.reserve(request("hi", 100))
        const second = yield* tracker.reserve(request("hi", 100))
        assert.deepInclude((yield* tracker.budget)[0], { reserved: 216, remaining: 34 })
        const refused = yield* Effect.flip(tracker.reserve(request("hi", 100)))
        assert.deepInclude(refused, { _tag: "BudgetExceededError", spent: 0, reserved: 216, requested: 108 })
        // Settled with what it really used: the rest of its hold is given back.
        yield* tracker.record({ ...used(8, 12), reservation: first })
        assert.deepInclude((yield* tracker.budget)[0], { spent: 20, reserved: 108 })
        yield* tracker.reserve(request("hi", 100))
        // A reservation is released once, however many times it is recorded.
        yield* tracker.record({ ...used(0, 0), reservation: second })
        yield* tracker.record({ ...used(0, 0), reservation: second })
        assert.deepInclude((yield* tracker.budget)[0], { spent: 20, reserved: 108 })
      }))

    it.effect("a dollar budget reserves at the dearest of the models a call may go to", () =>
      Effect.gen(function*() {
        const tracker = yield* UsageTracker.make({
          prices: { ...prices, "test/dear": { input: 100, output: 100 } },
          budget: { usd: 1 },
          ...quiet
        })
        const reservation = yield* tracker.reserve(request("hi", 100), [PRICED, "test/dear"])
        assert.closeTo(reservation.usd, 108 * 100 / 1e6, 1e-12)
      }))

    it.effect("a dollar budget refuses a model it cannot price, naming the model", () =>
      Effect.gen(function*() {
        const tracker = yield* UsageTracker.make({ budget: { usd: 1 }, ...quiet })
        const error = yield* Effect.flip(tracker.reserve(request("hi", 10, "someone/unpriced")))
        assert.strictEqual(error._tag, "InvalidRequestError")
        assert.include(error.message, "someone/unpriced")
        // A token budget needs no price.
        const tokensOnly = yield* UsageTracker.make({ budget: { tokens: 1000 }, ...quiet })
        assert.isTrue(Either.isRight(yield* Effect.either(tokensOnly.reserve(request("hi", 10, "someone/unpriced")))))
      }))

    it.effect("a budget with a period starts again each period, thresholds re-armed, holds kept", () =>
      Effect.scoped(Effect.gen(function*() {
        const tracker = yield* UsageTracker.make({ prices, budget: { tokens: 100, period: "1 hour" }, ...quiet })
        const queue = yield* tracker.subscribeAlerts
        const held = yield* tracker.reserve(request("hi", 10))
        yield* tracker.record(used(82, 0))
        const refused = yield* Effect.flip(tracker.reserve(request("hi", 10)))
        assert.strictEqual(refused._tag, "BudgetExceededError")
        if (refused._tag === "BudgetExceededError") {
          assert.deepStrictEqual(Option.map(refused.resetsIn, Duration.toMillis), Option.some(3_600_000))
          assert.match(refused.message, /resets in 1h/)
        }
        assert.strictEqual((yield* collectAlerts(queue)).length, 2)
        yield* TestClock.adjust("1 hour")
        const [status] = yield* tracker.budget
        assert.deepInclude(status, { spent: 0, reserved: 18, periodStart: 3_600_000, periodEnd: 7_200_000 })
        yield* tracker.reserve(request("hi", 10))
        yield* tracker.record({ ...used(60, 0), reservation: held })
        const alerts = yield* collectAlerts(queue)
        assert.deepStrictEqual(alerts.map((a) => a._tag === "BudgetAlert" && a.threshold), [0.5])
      })))

    it.effect("a connection that sent nothing costs nothing and releases its hold; one that may have sent is charged", () =>
      Effect.gen(function*() {
        const tracker = yield* UsageTracker.make({ prices, budget: { tokens: 2500, usd: 1 }, ...quiet })
        const refused = new InferenceError.ConnectionError({
          model: PRICED,
          attempts: 4,
          description: "connect ECONNREFUSED 127.0.0.1:8000",
          sent: false
        })
        for (let i = 0; i < 2; i++) {
          const reservation = yield* tracker.reserve(request("x".repeat(40), 1000))
          const event = yield* tracker.record({ model: PRICED, latency: 0, attempts: 4, reservation, error: refused })
          assert.deepInclude(event, { outcome: "ConnectionError", usage: "none", totalTokens: 0, costUsd: 0 })
        }
        for (const status of yield* tracker.budget) assert.deepInclude(status, { spent: 0, reserved: 0 })
        // A reset may come after the request went out: it may have been processed, so it costs its estimate.
        const reservation = yield* tracker.reserve(request("x".repeat(40), 1000))
        const reset = yield* tracker.record({
          model: PRICED,
          latency: 0,
          attempts: 1,
          reservation,
          error: everyError.ConnectionError
        })
        assert.deepInclude(reset, { usage: "estimated", totalTokens: 17 + 1000 })
      }))

    it.effect("a QuotaExceededError publishes a quota alert every time", () =>
      Effect.scoped(Effect.gen(function*() {
        const tracker = yield* UsageTracker.make(quiet)
        const queue = yield* tracker.subscribeAlerts
        const quota = new InferenceError.QuotaExceededError({ status: 402, requestId: "req-q", model: MODEL })
        yield* tracker.record({ model: MODEL, latency: 0, attempts: 1, error: quota })
        yield* tracker.record({ model: MODEL, latency: 0, attempts: 1, error: quota })
        const alerts = yield* collectAlerts(queue)
        assert.strictEqual(alerts.length, 2)
        assert.deepInclude(alerts[0], { _tag: "QuotaAlert", model: MODEL, status: 402, requestId: "req-q" })
      })))
  })

  describe("with the client", () => {
    const trackerLayer = (options: UsageTracker.Options = {}) =>
      UsageTracker.layer({ prices: { [MODEL]: { input: 1, output: 2 } }, ...quiet, ...options })

    const run = <A, E>(
      fake: Fake.Fake,
      f: (
        client: InferenceClient.InferenceClient.Service,
        tracker: UsageTracker.UsageTracker.Service
      ) => Effect.Effect<A, E>,
      tracker: Layer.Layer<UsageTracker.UsageTracker> = trackerLayer(),
      options: Partial<InferenceClient.Options> = {}
    ) =>
      Effect.gen(function*() {
        const client = yield* InferenceClient.InferenceClient
        return yield* f(client, yield* UsageTracker.UsageTracker)
      }).pipe(Effect.provide(clientLayer(fake, options).pipe(Layer.provideMerge(tracker))))

    it.effect("records each call with the usage, the attempts and the request id of the answer", () =>
      Effect.gen(function*() {
        const fake = Fake.make([
          Fake.json(503, Fake.errorBody("busy")),
          Fake.json(200, Fake.completionBody("Hi"), { "x-request-id": "req-ok" })
        ])
        const event = yield* Fake.runWithClock(run(fake, (client, tracker) =>
          Effect.scoped(Effect.gen(function*() {
            const events = yield* tracker.subscribe
            yield* client.chatCompletion(hello)
            return yield* Queue.take(events)
          }))))
        assert.isTrue(Exit.isSuccess(event))
        if (Exit.isSuccess(event)) {
          assert.deepInclude(event.value, {
            model: MODEL,
            outcome: "success",
            attempts: 2,
            promptTokens: 5,
            completionTokens: 2,
            usage: "reported",
            costUsd: 9 / 1e6,
            requestId: "req-ok",
            stream: false,
            cached: false
          })
          // the retry waited 1 second (TestClock)
          assert.strictEqual(event.value.latencyMillis, 1000)
        }
      }))

    it.effect("cached and reasoning tokens reach the usage event and the cost, for calls and streams", () =>
      Effect.gen(function*() {
        const usage = {
          prompt_tokens: 1000,
          completion_tokens: 300,
          total_tokens: 1300,
          prompt_tokens_details: { cached_tokens: 800 },
          completion_tokens_details: { reasoning_tokens: 250 }
        }
        const fake = Fake.make((n) =>
          n === 1
            ? Fake.json(200, { ...Fake.completionBody("Hi"), usage })
            : Fake.sse(
              Fake.sseEvent(Fake.chunkBody({ role: "assistant", content: "" })) +
                Fake.sseEvent(Fake.chunkBody({ reasoning: "hm" })) +
                Fake.sseEvent(Fake.chunkBody({ content: "Hi" }, "stop")) +
                Fake.sseEvent({ ...Fake.chunkBody({}), choices: [], usage }) +
                "data: [DONE]\n\n"
            )
        )
        const events = yield* run(fake, (client, tracker) =>
          Effect.scoped(Effect.gen(function*() {
            const events = yield* tracker.subscribe
            yield* client.chatCompletion(hello)
            yield* Stream.runDrain(client.streamChatCompletion(hello))
            return [yield* Queue.take(events), yield* Queue.take(events)]
          })), UsageTracker.layer({ prices: { [MODEL]: { input: 1, cachedInput: 0.25, output: 2 } }, ...quiet }))
        for (const event of events) {
          assert.deepInclude(event, {
            promptTokens: 1000,
            completionTokens: 300,
            cachedTokens: 800,
            reasoningTokens: 250
          })
          // (1000 - 800) × 1 + 800 × 0.25 + 300 × 2 per million tokens
          assert.closeTo(event.costUsd, 1000 / 1e6, 1e-12)
        }
        assert.deepStrictEqual(events.map((e) => e.stream), [false, true])
      }))

    it.effect("100 concurrent calls against a budget of 10 calls' cost never exceed it", () =>
      Effect.gen(function*() {
        // Each call's estimate: 3 + (4 + 2) prompt tokens and max_tokens 4; the server reports exactly that.
        const call = { ...hello, max_tokens: 4 }
        const body = {
          ...Fake.completionBody("Hi"),
          usage: { prompt_tokens: 9, completion_tokens: 4, total_tokens: 13 }
        }
        const fake = Fake.make(() => Fake.json(200, body))
        const cost = (9 * 1 + 4 * 2) / 1e6
        const result = yield* Fake.runWithClock(run(
          fake,
          (client, tracker) =>
            Effect.gen(function*() {
              const exits = yield* Effect.forEach(
                Array.from({ length: 100 }, () => call),
                (r) => Effect.exit(client.chatCompletion(r)),
                { concurrency: "unbounded" }
              )
              return { exits, budget: yield* tracker.budget, totals: yield* tracker.totals }
            }),
          trackerLayer({ budget: { usd: 10 * cost, tokens: 10 * 13 } })
        )).pipe(Effect.flatten)
        const failures = result.exits.filter(Exit.isFailure)
        assert.strictEqual(fake.requests.length, 10)
        assert.strictEqual(failures.length, 90)
        for (const exit of failures) {
          assert.strictEqual(Exit.isFailure(exit) && String(exit.cause).includes("BudgetExceededError"), true)
        }
        const [usd, tokens] = result.budget
        assert.isAtMost(usd.spent, usd.limit * (1 + 1e-9))
        assert.strictEqual(tokens.spent, 130)
        assert.strictEqual(tokens.reserved, 0)
        assert.deepInclude(result.totals.overall, { calls: 100, succeeded: 10, failed: 90, totalTokens: 130 })
      }))

    it.effect("with more calls than the budget holds, later calls fail as earlier ones spend it", () =>
      Effect.gen(function*() {
        const fake = Fake.make(() => Fake.completion())
        // hello with max_tokens 2: 9 + 2 = 11 tokens reserved; 7 used.
        const exits = yield* run(
          fake,
          (client) =>
            Effect.forEach(
              Array.from({ length: 20 }, () => ({ ...hello, max_tokens: 2 })),
              (r) => Effect.exit(client.chatCompletion(r))
            ),
          trackerLayer({ budget: { tokens: 50 } })
        )
        // sequential: 7 spent each; the 7th call finds 42 + 11 > 50
        assert.strictEqual(exits.filter(Exit.isSuccess).length, 6)
        assert.strictEqual(fake.requests.length, 6)
      }))

    it.effect("a refused call is recorded and sends nothing", () =>
      Effect.gen(function*() {
        const fake = Fake.make([Fake.completion()])
        const totals = yield* run(
          fake,
          (client, tracker) =>
            Effect.zipRight(Effect.flip(client.chatCompletion({ ...hello, max_tokens: 500 })), tracker.totals),
          trackerLayer({ budget: { tokens: 100 } })
        )
        assert.strictEqual(fake.requests.length, 0)
        assert.deepInclude(totals.overall, { calls: 1, failed: 1, attempts: 0 })
      }))

    it.effect("calls whose connection was refused leave the budget untouched", () =>
      Effect.gen(function*() {
        const requests: Array<string> = []
        const refusing = HttpClient.make((request) => {
          requests.push(request.url)
          return Effect.fail(
            new HttpClientError.RequestError({
              request,
              reason: "Transport",
              cause: new TypeError("fetch failed", {
                cause: Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:8000"), {
                  code: "ECONNREFUSED",
                  syscall: "connect"
                })
              })
            })
          )
        })
        const fake: Fake.Fake = { ...Fake.make([]), layer: Layer.succeed(HttpClient.HttpClient, refusing) }
        const result = yield* Fake.runWithClock(run(
          fake,
          (client, tracker) =>
            Effect.gen(function*() {
              const errors = [
                yield* Effect.flip(client.chatCompletion(hello)),
                yield* Effect.flip(client.chatCompletion(hello))
              ]
              return { errors, budget: yield* tracker.budget, totals: yield* tracker.totals }
            }),
          trackerLayer({ budget: { tokens: 2500 } })
        )).pipe(Effect.flatten)
        assert.deepStrictEqual(result.errors.map((e) => e._tag === "ConnectionError" && e.sent), [false, false])
        assert.isAbove(requests.length, 2, "each call was retried")
        assert.deepInclude(result.budget[0], { spent: 0, reserved: 0, remaining: 2500 })
        assert.deepInclude(result.totals.overall, { calls: 2, failed: 2, totalTokens: 0, costUsd: 0 })
      }))

    it.effect("a 402 from the server publishes a quota alert", () =>
      Effect.gen(function*() {
        const fake = Fake.make([Fake.json(402, Fake.errorBody("You exceeded your current quota"))])
        const alerts = yield* run(fake, (client, tracker) =>
          Effect.scoped(Effect.gen(function*() {
            const queue = yield* tracker.subscribeAlerts
            yield* Effect.flip(client.chatCompletion(hello))
            return yield* collectAlerts(queue)
          })))
        assert.deepInclude(alerts[0], { _tag: "QuotaAlert", model: MODEL, status: 402 })
      }))

    it.effect("a stream is recorded from its usage chunk", () =>
      Effect.gen(function*() {
        const fake = Fake.make([Fake.sse(Fake.sseAnswer(["a", "b", "c"]), { "x-request-id": "req-s" })])
        const event = yield* run(fake, (client, tracker) =>
          Effect.scoped(Effect.gen(function*() {
            const events = yield* tracker.subscribe
            yield* Stream.runDrain(client.streamChatCompletion(hello))
            return yield* Queue.take(events)
          })))
        assert.deepInclude(event, {
          stream: true,
          outcome: "success",
          promptTokens: 3,
          completionTokens: 3,
          usage: "reported",
          requestId: "req-s",
          attempts: 1
        })
      }))

    it.effect("a stream left early is recorded as interrupted, its tokens estimated from what arrived", () =>
      Effect.gen(function*() {
        // One event per read: the consumer leaves before the rest, and the usage chunk, arrive.
        const events = Fake.sseAnswer(["abcd", "efgh", "ijkl", "mnop"]).split(/(?<=\n\n)/)
        const fake = Fake.make([Fake.body(Fake.reads(...events))])
        const event = yield* run(fake, (client, tracker) =>
          Effect.scoped(Effect.gen(function*() {
            const events = yield* tracker.subscribe
            // the role chunk, then two words
            yield* Stream.runDrain(Stream.take(client.streamChatCompletion(hello), 3))
            return yield* Queue.take(events)
          })))
        assert.deepInclude(event, {
          outcome: "Interrupted",
          usage: "estimated",
          // hello: 3 + (4 + 2) prompt tokens estimated; two words of 4 characters arrived
          promptTokens: 9,
          completionTokens: 2
        })
      }))

    it.effect("a stream left early after its usage arrived is recorded with that usage", () =>
      Effect.gen(function*() {
        // Everything in one read: the usage chunk came with the words.
        const fake = Fake.make([Fake.sse(Fake.sseAnswer(["abcd", "efgh", "ijkl", "mnop"]))])
        const event = yield* run(fake, (client, tracker) =>
          Effect.scoped(Effect.gen(function*() {
            const events = yield* tracker.subscribe
            yield* Stream.runDrain(Stream.take(client.streamChatCompletion(hello), 3))
            return yield* Queue.take(events)
          })))
        assert.deepInclude(event, { outcome: "Interrupted", usage: "reported", promptTokens: 3, completionTokens: 4 })
      }))

    it.effect("a stream over budget fails before anything is sent", () =>
      Effect.gen(function*() {
        const fake = Fake.make([Fake.sse(Fake.sseAnswer(["a"]))])
        const error = yield* run(
          fake,
          (client) => Effect.flip(Stream.runDrain(client.streamChatCompletion({ ...hello, max_tokens: 1000 }))),
          trackerLayer({ budget: { tokens: 100 } })
        )
        assert.strictEqual(error._tag, "BudgetExceededError")
        assert.strictEqual(fake.requests.length, 0)
      }))

    it.effect("the client's own tracker writes the usage line; usage: false turns it off", () =>
      Effect.gen(function*() {
        const on = Capture.make()
        // Info: the default level (Debug) is below the captured logger's minimum
        yield* Capture.withCapture(
          on,
          withClient(Fake.make([Fake.completion()]), (c) => c.chatCompletion(hello), { usage: { logLevel: "Info" } })
        )
        const line = on.logs.find((log) => log.message.includes("Inference usage"))
        assert.isDefined(line)
        assert.deepInclude(line?.annotations, { model: MODEL, totalTokens: 7, outcome: "success" })
        assert.notInclude(on.dump(), SECRET)
        const off = Capture.make()
        yield* Capture.withCapture(
          off,
          withClient(Fake.make([Fake.completion()]), (c) => c.chatCompletion(hello), { usage: false })
        )
        assert.isUndefined(off.logs.find((log) => log.message.includes("Inference usage")))
      }))

    it.effect("the client's own tracker enforces the budget given in its options", () =>
      Effect.gen(function*() {
        const fake = Fake.make([Fake.completion()])
        const error = yield* withClient(fake, (c) => Effect.flip(c.chatCompletion({ ...hello, max_tokens: 200 })), {
          usage: { budget: { tokens: 100 }, logLevel: "None" }
        })
        assert.strictEqual(error._tag, "BudgetExceededError")
        assert.strictEqual(fake.requests.length, 0)
      }))

    it.effect("usage options make the client a tracker of its own even with one in context", () =>
      Effect.gen(function*() {
        const fake = Fake.make(() => Fake.completion())
        const result = yield* run(
          fake,
          (client, shared) =>
            Effect.gen(function*() {
              const refused = yield* Effect.flip(client.chatCompletion({ ...hello, max_tokens: 200 }))
              return { refused, shared: yield* shared.totals }
            }),
          trackerLayer(),
          { usage: { budget: { tokens: 100 }, logLevel: "None" } }
        )
        assert.strictEqual(result.refused._tag, "BudgetExceededError")
        assert.strictEqual(result.shared.overall.calls, 0)
      }))

    it.effect("a rate limit and a budget work side by side", () =>
      Effect.gen(function*() {
        const fake = Fake.make([Fake.completion()])
        const completion = yield* run(fake, (client) => client.chatCompletion(hello), trackerLayer(), {
          ...testOptions,
          rateLimit: { requests: { limit: 5, interval: "1 minute" } } satisfies RateLimit.Options
        })
        assert.strictEqual(completion.usage?.total_tokens, 7)
      }))
  })
})
