import { assert, describe, it } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as FiberId from "effect/FiberId"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as Scope from "effect/Scope"
import * as Supervisor from "effect/Supervisor"
import * as TestClock from "effect/TestClock"
import { ChatCompletionRequest } from "../src/ChatCompletion.js"
import type { ChatCompletionRequestInput } from "../src/ChatCompletion.js"
import * as InferenceError from "../src/InferenceError.js"
import * as RateLimit from "../src/RateLimit.js"
import { everyError } from "./utils/Errors.js"

const range = (n: number) => Array.from({ length: n }, (_, i) => i)

/** The most of `times` (milliseconds) that fall in any half-open window `[t, t + interval)`. */
const mostInAnyWindow = (times: ReadonlyArray<number>, interval: number): number => {
  const sorted = [...times].sort((a, b) => a - b)
  let most = 0
  // A window holding the most calls can always be moved to start at one of them.
  for (let i = 0; i < sorted.length; i++) {
    let j = i
    while (j < sorted.length && sorted[j] < sorted[i] + interval) j++
    most = Math.max(most, j - i)
  }
  return most
}

/** Lets forked fibers run up to their next wait without moving the clock. */
const runForked = TestClock.adjust(0)

interface Admitted {
  readonly permit: RateLimit.Permit
  /** When the caller got through, from the clock. */
  readonly at: number
}

/** Forks a caller that acquires a permit in `scope` and reports when it got through. */
const take = (limiter: RateLimit.RateLimit, estimatedTokens: number, scope: Scope.Scope) =>
  Effect.fork(
    Scope.extend(
      Effect.map(
        Effect.zip(limiter.acquire(estimatedTokens), Clock.currentTimeMillis),
        ([permit, at]): Admitted => ({ permit, at })
      ),
      scope
    )
  )

const isWaiting = <A, E>(fiber: Fiber.RuntimeFiber<A, E>) => Effect.map(Fiber.poll(fiber), Option.isNone)

const dieMessage = <A, E>(exit: Exit.Exit<A, E>): string | undefined =>
  Exit.isFailure(exit)
    ? Option.match(Cause.dieOption(exit.cause), {
      onNone: () => undefined,
      onSome: (defect) => defect instanceof Error ? defect.message : String(defect)
    })
    : undefined

describe("RateLimit", () => {
  describe("requests", () => {
    it.effect("200 concurrent calls never exceed 10 in any 1 s window, and are all through by 19 s", () =>
      Effect.gen(function*() {
        const limiter = yield* RateLimit.make({ requests: { limit: 10, interval: "1 second" } })
        const times: Array<number> = []
        const record = Effect.flatMap(Clock.currentTimeMillis, (now) => Effect.sync(() => times.push(now)))
        const all = yield* Effect.fork(
          Effect.forEach(range(200), () => limiter.withLimit(record, { estimatedTokens: 0 }), {
            concurrency: "unbounded",
            discard: true
          })
        )
        yield* TestClock.adjust("30 seconds")
        yield* Fiber.join(all)
        assert.strictEqual(times.length, 200)
        assert.strictEqual(mostInAnyWindow(times, 1000), 10)
        // As fast as the limit allows: 10 at each whole second.
        for (let second = 0; second < 20; second++) {
          assert.strictEqual(times.filter((t) => t === second * 1000).length, 10, `at ${second} s`)
        }
      }))

    it.effect("the limit holds in every window, not only in windows aligned with the first call", () =>
      Effect.gen(function*() {
        // A fixed window started by the first call would let 9 through at 0.9 s and 10 more at 1 s.
        const limiter = yield* RateLimit.make({ requests: { limit: 10, interval: "1 second" } })
        const times: Array<number> = []
        const record = Effect.flatMap(Clock.currentTimeMillis, (now) => Effect.sync(() => times.push(now)))
        yield* limiter.withLimit(record, { estimatedTokens: 0 })
        yield* TestClock.adjust("900 millis")
        const rest = yield* Effect.fork(
          Effect.forEach(range(19), () => limiter.withLimit(record, { estimatedTokens: 0 }), {
            concurrency: "unbounded",
            discard: true
          })
        )
        yield* TestClock.adjust("5 seconds")
        yield* Fiber.join(rest)
        assert.deepStrictEqual(times, [0, ...range(9).map(() => 900), 1000, ...range(9).map(() => 1900)])
        assert.strictEqual(mostInAnyWindow(times, 1000), 10)
      }))

    it.effect("a busy window keeps counting right as it drops thousands of expired charges", () =>
      Effect.gen(function*() {
        const limiter = yield* RateLimit.make({ requests: { limit: 1500, interval: "1 second" } })
        const times: Array<number> = []
        const record = Effect.flatMap(Clock.currentTimeMillis, (now) => Effect.sync(() => times.push(now)))
        const callers = (n: number) =>
          Effect.fork(
            Effect.forEach(range(n), () => limiter.withLimit(record, { estimatedTokens: 0 }), {
              concurrency: "unbounded",
              discard: true
            })
          )
        const early = yield* callers(1100)
        yield* TestClock.adjust("500 millis")
        // At 1 s the 1100 early charges are dropped while the 400 of 0.5 s still count.
        const late = yield* callers(2600)
        yield* TestClock.adjust("3 seconds")
        yield* Fiber.join(early)
        yield* Fiber.join(late)
        assert.deepStrictEqual(
          [0, 500, 1000, 1500, 2000].map((at) => times.filter((t) => t === at).length),
          [1100, 400, 1100, 400, 700]
        )
      }))

    it.effect("every call is a request: a retried attempt waits like a new one", () =>
      Effect.gen(function*() {
        const limiter = yield* RateLimit.make({ requests: { limit: 2, interval: "1 second" } })
        const attempts: Array<number> = []
        const attempt = Effect.flatMap(Clock.currentTimeMillis, (now) => {
          attempts.push(now)
          return attempts.length < 3 ? Effect.fail("transient") : Effect.succeed("ok")
        })
        // The limit wraps each attempt, inside the retry.
        const fiber = yield* Effect.fork(
          Effect.retry(limiter.withLimit(attempt, { estimatedTokens: 0 }), { times: 5 })
        )
        yield* TestClock.adjust("2 seconds")
        assert.strictEqual(yield* Fiber.join(fiber), "ok")
        assert.deepStrictEqual(attempts, [0, 0, 1000])
      }))
  })

  describe("tokens", () => {
    it.effect("estimates reserve, usage corrects: an over-estimate is given back, an under-estimate charged", () =>
      Effect.gen(function*() {
        const limiter = yield* RateLimit.make({ tokens: { limit: 100, interval: "10 seconds" } })
        const scope = yield* Scope.make()
        const a = yield* Fiber.join(yield* take(limiter, 60, scope))
        assert.strictEqual(a.at, 0)
        const b = yield* take(limiter, 50, scope)
        yield* runForked
        assert.isTrue(yield* isWaiting(b), "60 + 50 > 100")

        yield* TestClock.adjust("1 second")
        yield* a.permit.settle(30) // used 30 of 60: 30 back
        const admittedB = yield* Fiber.join(b)
        assert.strictEqual(admittedB.at, 1000, "30 + 50 fits at once")

        yield* TestClock.adjust("1 second")
        yield* admittedB.permit.settle(90) // used 90 of 50: 40 more; 30 (at 1 s) + 90 (at 2 s) = 120 now
        const c = yield* take(limiter, 10, scope)
        yield* runForked
        const d = yield* take(limiter, 1, scope)
        yield* TestClock.adjust("8999 millis")
        assert.isTrue(yield* isWaiting(c), "the extra 40 is charged: 120 + 10 > 100 until the 30 expires")
        yield* TestClock.adjust("1 millis")
        assert.strictEqual((yield* Fiber.join(c)).at, 11_000, "90 + 10 = 100 fits exactly when the 30 expires")
        yield* runForked
        assert.isTrue(yield* isWaiting(d), "c's reservation counts: 90 + 10 + 1 > 100")
        yield* TestClock.adjust("1 second")
        assert.strictEqual((yield* Fiber.join(d)).at, 12_000, "when the 90 expires")
        yield* Scope.close(scope, Exit.void)
      }))

    it.effect("a refund lets the next caller through earlier", () =>
      Effect.gen(function*() {
        /** How long after the first caller the next one gets through, when the first settles at 1 s. */
        const nextCallerAfter = (used: number | undefined) =>
          Effect.gen(function*() {
            const limiter = yield* RateLimit.make({ tokens: { limit: 100, interval: "10 seconds" } })
            const scope = yield* Scope.make()
            const first = yield* Fiber.join(yield* take(limiter, 80, scope))
            const next = yield* take(limiter, 80, scope)
            yield* TestClock.adjust("1 second")
            yield* first.permit.settle(used)
            yield* TestClock.adjust("20 seconds")
            const { at } = yield* Fiber.join(next)
            yield* Scope.close(scope, Exit.void)
            return at - first.at
          })
        // A failed call refunded in full, a call that used less, and a call whose usage is unknown.
        assert.strictEqual(yield* nextCallerAfter(0), 1000)
        assert.strictEqual(yield* nextCallerAfter(20), 1000)
        assert.strictEqual(yield* nextCallerAfter(21), 11_000, "21 + 80 > 100: waits for the 21 to expire")
        assert.strictEqual(yield* nextCallerAfter(undefined), 11_000, "the reservation is charged")
      }))

    it.effect("a call in flight keeps its reservation past the interval, until it is settled", () =>
      Effect.gen(function*() {
        const limiter = yield* RateLimit.make({ tokens: { limit: 100, interval: "10 seconds" } })
        const scope = yield* Scope.make()
        const long = yield* Fiber.join(yield* take(limiter, 100, scope))
        const next = yield* take(limiter, 70, scope)
        yield* TestClock.adjust("30 seconds")
        assert.isTrue(yield* isWaiting(next), "a stream that is still running may still be using its tokens")
        yield* long.permit.settle(30)
        assert.strictEqual((yield* Fiber.join(next)).at, 30_000, "woken by the settlement, not by a timer")
        yield* Scope.close(scope, Exit.void)
      }))

    it.effect("a permit not settled is charged its reservation when its scope closes; a second settle is ignored", () =>
      Effect.gen(function*() {
        const limiter = yield* RateLimit.make({ tokens: { limit: 100, interval: "10 seconds" } })
        const first = yield* Scope.make()
        yield* Scope.extend(limiter.acquire(60), first)
        const scope = yield* Scope.make()
        const next = yield* take(limiter, 60, scope)
        yield* TestClock.adjust("1 second")
        yield* Scope.close(first, Exit.void)
        yield* runForked
        assert.isTrue(yield* isWaiting(next), "the scope's close charged the 60 it reserved")
        yield* TestClock.adjust("10 seconds")
        const admitted = yield* Fiber.join(next)
        assert.strictEqual(admitted.at, 11_000)
        yield* admitted.permit.settle(100)
        yield* admitted.permit.settle(0)
        const after = yield* take(limiter, 1, scope)
        yield* TestClock.adjust("9999 millis")
        assert.isTrue(yield* isWaiting(after), "only the first settlement counts")
        yield* TestClock.adjust("1 millis")
        assert.strictEqual((yield* Fiber.join(after)).at, 21_000)
        yield* Scope.close(scope, Exit.void)
      }))

    it.effect("withLimit settles from the call's exit: usage on success, the rule of the caller on failure", () =>
      Effect.gen(function*() {
        const limiter = yield* RateLimit.make({ tokens: { limit: 100, interval: "10 seconds" } })
        const cost: RateLimit.Cost<{ readonly used: number }, InferenceError.InferenceError> = {
          estimatedTokens: 90,
          actualTokens: Exit.match({ onSuccess: (a) => a.used, onFailure: RateLimit.tokensOfFailure })
        }
        const refused = new InferenceError.RateLimitError({ status: 429 })
        // Refused: nothing charged, so the next 90 fits at once.
        yield* Effect.flip(limiter.withLimit(Effect.fail(refused), cost))
        yield* limiter.withLimit(Effect.succeed({ used: 10 }), cost)
        assert.strictEqual(yield* Clock.currentTimeMillis, 0, "10 used, 90 more fits")
        // A timeout may have generated tokens: the 90 reserved is charged.
        const timeout = new InferenceError.TimeoutError({ phase: "attempt", timeout: Duration.seconds(1) })
        yield* Effect.flip(limiter.withLimit(Effect.fail(timeout), cost))
        const next = yield* Effect.fork(
          Effect.zipRight(limiter.withLimit(Effect.succeed({ used: 1 }), cost), Clock.currentTimeMillis)
        )
        yield* TestClock.adjust("10 seconds")
        assert.strictEqual(yield* Fiber.join(next), 10_000)
      }))

    it.effect("a request estimated above the token limit waits for an empty window and goes alone", () =>
      Effect.gen(function*() {
        const limiter = yield* RateLimit.make({ tokens: { limit: 100, interval: "10 seconds" } })
        const scope = yield* Scope.make()
        const small = yield* Fiber.join(yield* take(limiter, 10, scope))
        yield* small.permit.settle(10)
        const big = yield* take(limiter, 250, scope)
        yield* runForked
        const after = yield* take(limiter, 1, scope)
        yield* TestClock.adjust("9999 millis")
        assert.isTrue(yield* isWaiting(big), "10 + 100 > 100")
        yield* TestClock.adjust("1 millis")
        const admitted = yield* Fiber.join(big)
        assert.strictEqual(admitted.at, 10_000)
        assert.strictEqual(admitted.permit.tokens, 100, "the reservation is clamped to the limit")
        yield* runForked
        assert.isTrue(yield* isWaiting(after), "it goes alone")
        yield* admitted.permit.settle(250)
        yield* TestClock.adjust("9999 millis")
        assert.isTrue(yield* isWaiting(after), "what it really used is charged")
        yield* TestClock.adjust("1 millis")
        assert.strictEqual((yield* Fiber.join(after)).at, 20_000)
        yield* Scope.close(scope, Exit.void)
      }))

    it.effect("the limit holds at every admission over many calls with wrong estimates", () =>
      Effect.gen(function*() {
        const limit = 200
        const interval = 5000
        const limiter = yield* RateLimit.make({ tokens: { limit, interval: `${interval} millis` } })
        // A fixed pseudo-random sequence, so that a failure can be replayed.
        let seed = 42
        const random = (n: number) => {
          seed = (seed * 1103515245 + 12345) % 2147483648
          return seed % n
        }
        type Event =
          | { readonly _tag: "admit"; readonly call: number; readonly at: number; readonly reserved: number }
          | { readonly _tag: "settle"; readonly call: number; readonly at: number; readonly used: number }
        const events: Array<Event> = []
        const calls = range(60).map((call) => ({
          call,
          estimate: 1 + random(80),
          used: random(120),
          holdMillis: random(3000)
        }))
        const run = Effect.forEach(calls, ({ call, estimate, holdMillis, used }) =>
          Effect.scoped(Effect.gen(function*() {
            const permit = yield* limiter.acquire(estimate)
            events.push({ _tag: "admit", call, at: yield* Clock.currentTimeMillis, reserved: permit.tokens })
            yield* Effect.sleep(holdMillis)
            yield* permit.settle(used)
            events.push({ _tag: "settle", call, at: yield* Clock.currentTimeMillis, used })
          })), { concurrency: "unbounded", discard: true })
        const fiber = yield* Effect.fork(run)
        yield* TestClock.adjust("10 minutes")
        yield* Fiber.join(fiber)
        assert.strictEqual(events.filter((e) => e._tag === "admit").length, 60)
        assert.isTrue(calls.some((c) => c.used > c.estimate) && calls.some((c) => c.used < c.estimate))
        // Replays the events in order: a call counts its reservation while in flight,
        // then what it used for one interval from its settlement.
        const inFlight = new Map<number, number>()
        const settled: Array<{ readonly at: number; readonly used: number }> = []
        for (const event of events) {
          if (event._tag === "settle") {
            inFlight.delete(event.call)
            settled.push({ at: event.at, used: event.used })
            continue
          }
          const load = [...inFlight.values()].reduce((sum, n) => sum + n, 0) +
            settled.filter((s) => s.at + interval > event.at).reduce((sum, s) => sum + s.used, 0)
          assert.isAtMost(load + event.reserved, limit, `call ${event.call} at ${event.at} ms`)
          inFlight.set(event.call, event.reserved)
        }
      }))
  })

  describe("interruption", () => {
    /** Callers waiting behind one that holds the only request of the second, two of them interrupted. */
    const interruptedCallers = Effect.gen(function*() {
      const limiter = yield* RateLimit.make({
        requests: { limit: 1, interval: "1 second" },
        tokens: { limit: 100, interval: "10 seconds" }
      })
      const scope = yield* Scope.make()
      yield* Fiber.join(yield* take(limiter, 50, scope))
      const head = yield* take(limiter, 50, scope) // waits for the request slot, holding the line
      yield* runForked
      const queued = yield* take(limiter, 50, scope) // waits behind it
      yield* runForked
      const next = yield* take(limiter, 50, scope)
      yield* TestClock.adjust("500 millis")
      yield* Fiber.interrupt(head)
      yield* Fiber.interrupt(queued)
      yield* TestClock.adjust("499 millis")
      assert.isTrue(yield* isWaiting(next), "the interrupted callers gave back nothing they did not take")
      yield* TestClock.adjust("1 millis")
      // Had either interrupted caller kept a request or its 50 tokens, this would wait longer.
      assert.strictEqual((yield* Fiber.join(next)).at, 1000)
      const last = yield* take(limiter, 0, scope)
      yield* TestClock.adjust("1 second")
      assert.strictEqual((yield* Fiber.join(last)).at, 2000)
      yield* Scope.close(scope, Exit.void)
    })

    it.effect("a waiting caller that is interrupted takes nothing and leaves no fiber behind", () =>
      Effect.gen(function*() {
        const supervisor = yield* Supervisor.track
        yield* Effect.supervised(interruptedCallers, supervisor)
        assert.strictEqual((yield* supervisor.value).length, 0, "no fiber or timer outlives the callers")
      }))
    it.effect("a call interrupted once through is charged its reservation", () =>
      Effect.gen(function*() {
        const limiter = yield* RateLimit.make({ tokens: { limit: 100, interval: "10 seconds" } })
        const refunded = yield* Effect.fork(
          limiter.withLimit(Effect.never, { estimatedTokens: 70, actualTokens: () => 0 })
        )
        yield* runForked
        yield* Fiber.interrupt(refunded)
        // actualTokens saw the interruption and said 0: the caller decides, even then.
        const next = yield* Effect.fork(
          Effect.zipRight(
            limiter.withLimit(Effect.void, { estimatedTokens: 100, actualTokens: () => 0 }),
            Clock.currentTimeMillis
          )
        )
        yield* runForked
        assert.strictEqual(yield* Fiber.join(next), 0)
        const charged = yield* Effect.fork(limiter.withLimit(Effect.never, { estimatedTokens: 70 }))
        yield* TestClock.adjust("1 second")
        yield* Fiber.interrupt(charged)
        const after = yield* Effect.fork(
          Effect.zipRight(limiter.withLimit(Effect.void, { estimatedTokens: 40 }), Clock.currentTimeMillis)
        )
        yield* TestClock.adjust("9999 millis")
        assert.isTrue(yield* isWaiting(after), "by default an interrupted call is charged its 70 for an interval")
        yield* TestClock.adjust("1 millis")
        assert.strictEqual(yield* Fiber.join(after), 11_000)
      }))
  })

  describe("options", () => {
    it.effect("invalid limits and intervals stop the program with a message naming the option", () =>
      Effect.gen(function*() {
        const cases: ReadonlyArray<readonly [RateLimit.Options, string]> = [
          [{ requests: { limit: 0, interval: "1 second" } }, "requests.limit must be a whole number >= 1, got 0"],
          [{ requests: { limit: 1.5, interval: "1 second" } }, "requests.limit must be a whole number >= 1, got 1.5"],
          [{ tokens: { limit: -10, interval: "1 second" } }, "tokens.limit must be a whole number >= 1, got -10"],
          [{ tokens: { limit: NaN, interval: "1 second" } }, "tokens.limit must be a whole number >= 1, got NaN"],
          [
            { tokens: { limit: Infinity, interval: "1 second" } },
            "tokens.limit must be a whole number >= 1, got Infinity"
          ],
          [
            { requests: { limit: 1, interval: "0 seconds" } },
            "requests.interval must be a positive, finite duration, got 0 seconds"
          ],
          [
            { requests: { limit: 1, interval: -5 } },
            "requests.interval must be a positive, finite duration, got -5"
          ],
          [
            { tokens: { limit: 1, interval: Infinity } },
            "tokens.interval must be a positive, finite duration, got Infinity"
          ],
          [
            // A typo a type-checked caller cannot make, but a config file can.
            { tokens: { limit: 1, interval: "1 minnute" as "1 minute" } },
            "tokens.interval must be a positive, finite duration, got 1 minnute"
          ]
        ]
        for (const [options, message] of cases) {
          assert.strictEqual(dieMessage(yield* Effect.exit(RateLimit.make(options))), `RateLimit: ${message}`)
        }
      }))

    it.effect("no limits let every call through at once; a bad estimate is a defect", () =>
      Effect.gen(function*() {
        const limiter = yield* RateLimit.make({})
        yield* Effect.forEach(range(1000), () => limiter.withLimit(Effect.void, { estimatedTokens: 1e6 }))
        assert.strictEqual(yield* Clock.currentTimeMillis, 0)
        const bounded = yield* RateLimit.make({ tokens: { limit: 10, interval: "1 second" } })
        for (const estimate of [-1, NaN, Infinity]) {
          assert.strictEqual(
            dieMessage(yield* Effect.exit(bounded.withLimit(Effect.void, { estimatedTokens: estimate }))),
            `RateLimit: estimatedTokens must be a finite number >= 0, got ${estimate}`
          )
          assert.strictEqual(
            dieMessage(yield* Effect.exit(Effect.scoped(bounded.acquire(estimate)))),
            `RateLimit: estimatedTokens must be a finite number >= 0, got ${estimate}`
          )
        }
      }))

    it.effect("a limiter provided as a layer is one quota for everyone who uses it", () =>
      Effect.gen(function*() {
        const call = Effect.flatMap(RateLimit.Limiter, (limiter) =>
          limiter.withLimit(Clock.currentTimeMillis, { estimatedTokens: 0 }))
        const limits = { requests: { limit: 2, interval: "1 second" } } as const
        const shared = yield* Effect.fork(
          Effect.all([call, call, call], { concurrency: "unbounded" }).pipe(Effect.provide(RateLimit.layer(limits)))
        )
        const separate = yield* Effect.fork(
          Effect.all(
            [call, call, call].map((c) =>
              Effect.provide(c, RateLimit.layer(limits))
            ),
            {
              concurrency: "unbounded"
            }
          )
        )
        yield* TestClock.adjust("1 second")
        assert.deepStrictEqual([...(yield* Fiber.join(shared))].sort(), [0, 0, 1000])
        assert.deepStrictEqual(yield* Fiber.join(separate), [0, 0, 0])
      }))

    it.effect("withLimit is pipeable", () =>
      Effect.gen(function*() {
        const limiter = yield* RateLimit.make({ requests: { limit: 1, interval: "1 second" } })
        // Typed: piping keeps the effect's own success and error types.
        const a: string = yield* Effect.succeed("a").pipe(limiter.withLimit({ estimatedTokens: 0 }))
        const b = yield* Effect.fork(Clock.currentTimeMillis.pipe(limiter.withLimit({ estimatedTokens: 0 })))
        yield* TestClock.adjust("1 second")
        assert.strictEqual(a, "a")
        assert.strictEqual(yield* Fiber.join(b), 1000)
      }))
  })

  describe("estimateTokens", () => {
    const base: ChatCompletionRequestInput = {
      model: "m",
      messages: [{ role: "user", content: "Hi there" }]
    }

    it("prompt: 3 + per message 4 + a token per 4 characters; completion: max_tokens", () => {
      assert.strictEqual(RateLimit.estimateTokens({ ...base, max_tokens: 100 }), 3 + 4 + 2 + 100)
      // 9 characters round up to 3 tokens.
      assert.strictEqual(
        RateLimit.estimateTokens({ ...base, messages: [{ role: "user", content: "Hi there!" }], max_tokens: 100 }),
        3 + 4 + 3 + 100
      )
    })

    it("the completion budget: max_completion_tokens, else max_tokens, else the default, times n", () => {
      const prompt = 3 + 4 + 2
      assert.strictEqual(RateLimit.estimateTokens(base), prompt + RateLimit.DEFAULT_COMPLETION_TOKENS)
      assert.strictEqual(RateLimit.DEFAULT_COMPLETION_TOKENS, 1024)
      assert.strictEqual(
        RateLimit.estimateTokens({ ...base, max_tokens: 100, max_completion_tokens: 50 }),
        prompt + 50
      )
      assert.strictEqual(RateLimit.estimateTokens({ ...base, max_tokens: 100, n: 3 }), prompt + 300)
    })

    it("counts every message's text, names, tool calls, images, tools and a JSON schema", () => {
      const toolCalls = [{ id: "c1", type: "function" as const, function: { name: "f", arguments: "{\"x\":1}" } }]
      const tools = [{ type: "function" as const, function: { name: "f", description: "does f" } }]
      const jsonSchema = { name: "answer", schema: { type: "object" } }
      const request: ChatCompletionRequestInput = {
        model: "m",
        messages: [
          { role: "system", content: "12345678", name: "sys" }, // 11 chars
          { role: "user", content: [{ type: "text", text: "abcd" }, { type: "image_url", image_url: { url: "x" } }] },
          { role: "assistant", content: null, tool_calls: toolCalls },
          { role: "tool", content: [{ type: "text", text: "42" }], tool_call_id: "c1" } // 4 chars
        ],
        tools,
        response_format: { type: "json_schema", json_schema: jsonSchema },
        max_tokens: 10
      }
      const json = (u: unknown) => Math.ceil(JSON.stringify(u).length / 4)
      const expected = 3 +
        (4 + 3) +
        (4 + 1 + 1000) +
        (4 + json(toolCalls)) +
        (4 + 1) +
        json(tools) +
        json(jsonSchema) +
        10
      assert.strictEqual(RateLimit.estimateTokens(request), expected)
    })

    it("takes the request as the client has decoded it", () => {
      const decoded = Schema.decodeUnknownSync(ChatCompletionRequest)({ ...base, max_tokens: 100 })
      assert.strictEqual(RateLimit.estimateTokens(decoded), 109)
    })
  })

  describe("tokensOfFailure", () => {
    // One entry per error class, so that a new class has to be decided here.
    const expected: { readonly [Tag in InferenceError.InferenceError["_tag"]]: 0 | undefined } = {
      InvalidRequestError: 0,
      BadRequestError: 0,
      AuthenticationError: 0,
      QuotaExceededError: 0,
      PermissionDeniedError: 0,
      NotFoundError: 0,
      ConflictError: 0,
      UnprocessableEntityError: 0,
      RateLimitError: 0,
      InternalServerError: 0,
      ServiceUnavailableError: 0,
      UnexpectedStatusError: 0,
      CircuitOpenError: 0,
      BudgetExceededError: 0,
      CoordinationError: 0,
      ConnectionError: undefined,
      TimeoutError: undefined,
      ResponseDecodeError: undefined
    }

    it("refunds an error the server answered before generating; keeps the estimate when it may have", () => {
      for (const [tag, error] of Object.entries(everyError)) {
        assert.strictEqual(RateLimit.tokensOfFailure(Cause.fail(error)), expected[error._tag], tag)
      }
    })

    it("refunds a connection error that sent nothing; keeps the estimate when it may have sent", () => {
      const refused = new InferenceError.ConnectionError({
        attempts: 4,
        description: "connect ECONNREFUSED 127.0.0.1:8000",
        sent: false
      })
      const reset = new InferenceError.ConnectionError({ description: "ECONNRESET: socket hang up", sent: true })
      assert.strictEqual(RateLimit.tokensOfFailure(Cause.fail(refused)), 0)
      assert.strictEqual(RateLimit.tokensOfFailure(Cause.fail(reset)), undefined)
      assert.strictEqual(
        RateLimit.tokensOfFailure(Cause.parallel(Cause.fail(refused), Cause.fail(reset))),
        undefined,
        "all failures must have generated nothing"
      )
    })

    it("keeps the estimate after streamed content, on interruption, on a defect and with no failure", () => {
      const refused = new InferenceError.RateLimitError({ status: 429 })
      const midStream = new InferenceError.InternalServerError({ status: 500, chunksDelivered: 3 })
      assert.strictEqual(RateLimit.tokensOfFailure(Cause.fail(midStream)), undefined)
      assert.strictEqual(RateLimit.tokensOfFailure(Cause.interrupt(FiberId.none)), undefined)
      assert.strictEqual(
        RateLimit.tokensOfFailure(Cause.sequential(Cause.fail(refused), Cause.die("boom"))),
        undefined
      )
      assert.strictEqual(RateLimit.tokensOfFailure(Cause.empty), undefined)
      assert.strictEqual(RateLimit.tokensOfFailure(Cause.parallel(Cause.fail(refused), Cause.fail(refused))), 0)
    })
  })
})
