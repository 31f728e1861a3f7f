/**
 * A server's `usage` is believed only when its counts are token counts: a
 * single answer with `"prompt_tokens": 1e400` (JSON's Infinity), `1e308`, `-5`
 * or `1.5` must not put a budget or a rate limiter into a state it cannot
 * leave by the next period.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Schema from "effect/Schema"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as TestClock from "effect/TestClock"
import { Usage } from "../src/ChatCompletion.js"
import * as InferenceClient from "../src/InferenceClient.js"
import * as tokens from "../src/internal/tokens.js"
import * as RateLimit from "../src/RateLimit.js"
import * as UsageTracker from "../src/UsageTracker.js"
import * as Capture from "./utils/Capture.js"
import { hello, layer as clientLayer, MODEL } from "./utils/Client.js"
import * as Fake from "./utils/FakeTransport.js"

const WARNING = "Inference usage reported a count that is not a token count; counted as the estimate"

/** The estimate of `hello`: 3 + (4 + 2) prompt tokens, the default 1024 completion tokens. */
const PROMPT_ESTIMATE = 9
const COMPLETION_ESTIMATE = 1024

/** Reports a server may send, as raw JSON (`1e400` cannot be written by `JSON.stringify`), and the count named. */
const broken: ReadonlyArray<readonly [name: string, usage: string, field: string]> = [
  [
    "1e400 (JSON's Infinity)",
    `{"prompt_tokens": 1e400, "completion_tokens": 2, "total_tokens": 1e400}`,
    "prompt_tokens"
  ],
  ["1e308", `{"prompt_tokens": 5, "completion_tokens": 1e308, "total_tokens": 1e308}`, "completion_tokens"],
  ["-5", `{"prompt_tokens": -5, "completion_tokens": 2, "total_tokens": -3}`, "prompt_tokens"],
  ["1.5", `{"prompt_tokens": 5, "completion_tokens": 1.5, "total_tokens": 6.5}`, "completion_tokens"],
  [
    "Infinity - Infinity (NaN in the price)",
    `{"prompt_tokens": 1e400, "completion_tokens": 2, "total_tokens": 7, "prompt_tokens_details": {"cached_tokens": 1e400}}`,
    "prompt_tokens"
  ],
  ["1e308 in total_tokens only", `{"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 1e308}`, "total_tokens"],
  [
    "-1e400 cached tokens",
    `{"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7, "prompt_tokens_details": {"cached_tokens": -1e400}}`,
    "prompt_tokens_details.cached_tokens"
  ],
  [
    "1e9 reasoning tokens",
    `{"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7, "completion_tokens_details": {"reasoning_tokens": 1000000000}}`,
    "completion_tokens_details.reasoning_tokens"
  ]
]

const completionWith = (usage: string) =>
  Fake.text(
    200,
    `{"id":"chatcmpl-1","object":"chat.completion","created":1700000000,"model":"${MODEL}",` +
      `"choices":[{"index":0,"message":{"role":"assistant","content":"Hi"},"finish_reason":"stop"}],"usage":${usage}}`,
    { "content-type": "application/json" }
  )

const streamWith = (usage: string) =>
  Fake.sse(
    [
      Fake.sseEvent(Fake.chunkBody({ role: "assistant", content: "Hi" })),
      Fake.sseEvent(Fake.chunkBody({}, "stop")),
      Fake.sseEvent(
        `{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"${MODEL}","choices":[],"usage":${usage}}`
      ),
      "data: [DONE]\n\n"
    ].join("")
  )

describe("reported usage", () => {
  describe("the check", () => {
    it("a token count is a whole number from 0 below 10^9", () => {
      for (const good of [0, 1, 7, 999_999_999]) assert.isTrue(tokens.isTokenCount(good), String(good))
      for (const bad of [Infinity, -Infinity, Number.NaN, 1e308, 1e9, -5, -0.5, 1.5, "12", undefined, null]) {
        assert.isFalse(tokens.isTokenCount(bad), String(bad))
      }
    })

    it("callUsage names the first count of the report that is not one; a sound report is read as before", () => {
      for (const [name, usage, field] of broken) {
        const decoded = Schema.decodeUnknownSync(Usage)(JSON.parse(usage))
        assert.strictEqual(UsageTracker.callUsage(decoded).invalid, field, name)
      }
      const sound = Schema.decodeUnknownSync(Usage)({ prompt_tokens: 5, completion_tokens: 2, total_tokens: 7 })
      assert.notProperty(UsageTracker.callUsage(sound), "invalid")
    })
  })

  describe("the tracker", () => {
    const budget = { tokens: 5000, usd: 1, period: "1 day" } as const
    const options = { budget, prices: { [MODEL]: { input: 1, output: 2 } }, logLevel: "None" } as const

    it.effect("a report that is not believed is charged the estimate, once, and the next call fits", () =>
      Effect.gen(function*() {
        const capture = Capture.make()
        yield* Capture.withCapture(
          capture,
          Effect.gen(function*() {
            const tracker = yield* UsageTracker.make(options)
            for (const [name, usage, field] of broken) {
              const reservation = yield* tracker.reserve(hello)
              const event = yield* tracker.record({
                model: MODEL,
                latency: "1 second",
                attempts: 1,
                reservation,
                usage: UsageTracker.callUsage(Schema.decodeUnknownSync(Usage)(JSON.parse(usage)))
              })
              assert.strictEqual(event.usage, "estimated", name)
              assert.strictEqual(event.promptTokens, PROMPT_ESTIMATE, name)
              assert.strictEqual(event.completionTokens, COMPLETION_ESTIMATE, name)
              assert.isTrue(Number.isFinite(event.costUsd), name)
              const warnings = capture.logs.filter((log) => log.message.includes(WARNING))
              assert.strictEqual(warnings.at(-1)?.annotations["field"], `usage.${field}`, name)
              for (const status of yield* tracker.budget) {
                assert.isTrue(Number.isFinite(status.spent) && status.spent <= status.limit, `${name}: ${status.spent}`)
              }
              // Settled back to nothing spent, so that each case starts from the same budget.
              yield* TestClock.adjust("1 day")
            }
            assert.strictEqual(capture.logs.filter((log) => log.message.includes(WARNING)).length, broken.length)
          })
        )
      }))

    it.effect("counts given to record directly are checked the same way; NaN never reaches the budget", () =>
      Effect.gen(function*() {
        const tracker = yield* UsageTracker.make(options)
        const reservation = yield* tracker.reserve(hello)
        const event = yield* tracker.record({
          model: MODEL,
          latency: "1 second",
          attempts: 1,
          reservation,
          usage: { promptTokens: Number.NaN, completionTokens: 3 }
        })
        assert.strictEqual(event.usage, "estimated")
        const orphan = yield* tracker.record({
          model: MODEL,
          latency: "1 second",
          attempts: 1,
          usage: { promptTokens: Infinity, completionTokens: Infinity, cachedTokens: Infinity }
        })
        assert.strictEqual(orphan.usage, "none", "without a reservation there is no estimate: nothing")
        for (const status of yield* tracker.budget) assert.isTrue(Number.isFinite(status.spent))
        assert.isTrue(Exit.isSuccess(yield* Effect.exit(tracker.reserve(hello))))
      }))

    it.effect("a cost too large for a number spends the budget for its period only", () =>
      Effect.gen(function*() {
        const tracker = yield* UsageTracker.make({
          budget: { usd: 1, period: "1 hour" },
          prices: { [MODEL]: { input: 1e300, output: 1e300 } },
          logLevel: "None"
        })
        yield* tracker.record({
          model: MODEL,
          latency: "1 second",
          attempts: 1,
          usage: { promptTokens: 999_999_999, completionTokens: 999_999_999 }
        })
        const [status] = yield* tracker.budget
        assert.isTrue(Number.isFinite(status!.spent))
        yield* TestClock.adjust("1 hour")
        assert.strictEqual((yield* tracker.budget)[0]!.spent, 0)
      }))
  })

  describe("the rate limiter", () => {
    /** Forks a caller that acquires `estimate` tokens in `scope`, and reports when it got through. */
    const take = (limiter: RateLimit.RateLimit, estimate: number, scope: Scope.Scope) =>
      Effect.fork(Scope.extend(Effect.zipRight(limiter.acquire(estimate), Clock.currentTimeMillis), scope))

    it.effect("a settlement that is not a token count charges the reservation; the next caller goes at once", () =>
      Effect.gen(function*() {
        for (const bad of [Infinity, 1e308, -5, 1.5, Number.NaN, 1e9]) {
          const limiter = yield* RateLimit.make({ tokens: { limit: 1000, interval: "1 minute" } })
          const scope = yield* Scope.make()
          const permit = yield* Scope.extend(limiter.acquire(400), scope)
          yield* permit.settle(bad)
          const next = yield* take(limiter, 600, scope)
          yield* TestClock.adjust(0)
          const at = yield* Fiber.poll(next)
          assert.isTrue(Option.isSome(at) && Exit.isSuccess(at.value), `after settling ${bad}`)
          yield* Scope.close(scope, Exit.void)
        }
      }))

    it.effect("a charge above the limit fills the window for one interval, and no more", () =>
      Effect.gen(function*() {
        const limiter = yield* RateLimit.make({ tokens: { limit: 1000, interval: "1 minute" } })
        const scope = yield* Scope.make()
        const permit = yield* Scope.extend(limiter.acquire(10), scope)
        yield* permit.settle(999_999_999)
        const next = yield* take(limiter, 1000, scope)
        yield* TestClock.adjust("1 minute")
        assert.strictEqual(yield* Fiber.join(next), 60_000)
        yield* Scope.close(scope, Exit.void)
      }))
  })

  describe("through the client", () => {
    const tracker = UsageTracker.layer({
      budget: { tokens: 5000, usd: 1, period: "1 day" },
      prices: { [MODEL]: { input: 1, output: 2 } },
      logLevel: "None"
    })
    /** Room for two estimates of `hello` (1033 tokens each), not for a broken report believed. */
    const rateLimit: RateLimit.Options = { tokens: { limit: 3000, interval: "1 hour" } }

    const run = <A, E>(
      fake: Fake.Fake,
      capture: Capture.Capture,
      f: (
        client: InferenceClient.InferenceClient.Service,
        tracker: UsageTracker.UsageTracker.Service
      ) => Effect.Effect<A, E>
    ) =>
      Capture.withCapture(
        capture,
        Effect.gen(function*() {
          const client = yield* InferenceClient.InferenceClient
          return yield* f(client, yield* UsageTracker.UsageTracker)
        }).pipe(
          Effect.provide(clientLayer(fake, { rateLimit, circuitBreaker: false }).pipe(Layer.provideMerge(tracker)))
        )
      )

    for (const stream of [false, true]) {
      for (const [name, usage, field] of broken) {
        // Live: a limiter that believed the report would hold the next call for an hour, and the timeout says so.
        it.live(`${stream ? "a stream" : "a call"} reporting ${name}: the next call in the period still goes through`, () =>
          Effect.gen(function*() {
            const capture = Capture.make()
            const fake = Fake.make([
              stream ? streamWith(usage) : completionWith(usage),
              stream ? Fake.sse(Fake.sseAnswer(["Hi"])) : Fake.completion()
            ])
            const call = (client: InferenceClient.InferenceClient.Service) =>
              stream ? Stream.runDrain(client.streamChatCompletion(hello)) : client.chatCompletion(hello)
            const result = yield* run(fake, capture, (client, tracker) =>
              Effect.scoped(Effect.gen(function*() {
                const events = yield* tracker.subscribe
                yield* call(client)
                const first = yield* Queue.take(events)
                const second = yield* Effect.exit(Effect.timeout(call(client), "2 seconds"))
                return { first, second, budget: yield* tracker.budget }
              })))
            assert.isTrue(Exit.isSuccess(result.second), `the second call: ${String(result.second)}`)
            assert.strictEqual(result.first.usage, "estimated")
            assert.strictEqual(result.first.promptTokens, PROMPT_ESTIMATE)
            assert.strictEqual(result.first.completionTokens, COMPLETION_ESTIMATE)
            for (const status of result.budget) {
              assert.isTrue(Number.isFinite(status.spent) && status.spent < status.limit, String(status.spent))
            }
            const warnings = capture.logs.filter((log) => log.message.includes(WARNING))
            assert.strictEqual(warnings.length, 1, "one warning for the call")
            assert.strictEqual(warnings[0]!.annotations["field"], `usage.${field}`)
            assert.strictEqual(warnings[0]!.level, "WARN")
          }))
      }
    }
  })
})
