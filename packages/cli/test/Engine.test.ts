import { Batch } from "@effect-inference/cli"
import { InferenceError } from "@effect-inference/client"
import { Fault, InferenceSimulator } from "@effect-inference/testing"
import { assert, describe, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import * as Stream from "effect/Stream"
import * as fs from "node:fs"
import * as path from "node:path"
import * as Files from "./utils/Files.js"
import * as Sim from "./utils/Simulator.js"

/** The faults of the mixed runs: the transient ones (retried) and some the client does not retry. */
const MIXED: ReadonlyArray<Fault.Fault> = [
  ...Fault.transient,
  Fault.badRequest,
  Fault.unprocessable,
  Fault.modelNotFound,
  Fault.wrongShapeBody
]

/** The error tag the client gives a call whose last attempt met the fault. */
const tagOf: Record<string, string> = {
  RateLimited: "RateLimitError",
  InternalError: "InternalServerError",
  BadGateway: "InternalServerError",
  GatewayTimeout: "InternalServerError",
  Overloaded: "ServiceUnavailableError",
  ConnectionReset: "ConnectionError",
  BadRequest: "BadRequestError",
  Unprocessable: "UnprocessableEntityError",
  ModelNotFound: "NotFoundError",
  WrongShapeBody: "ResponseDecodeError"
}

/** The tags of the client's errors (`InferenceError.InferenceError`'s members). */
const TAGS: ReadonlySet<string> = new Set([
  "InvalidRequestError",
  "BadRequestError",
  "AuthenticationError",
  "QuotaExceededError",
  "PermissionDeniedError",
  "NotFoundError",
  "ConflictError",
  "UnprocessableEntityError",
  "RateLimitError",
  "InternalServerError",
  "ServiceUnavailableError",
  "UnexpectedStatusError",
  "ConnectionError",
  "TimeoutError",
  "ResponseDecodeError",
  "CircuitOpenError",
  "BudgetExceededError",
  "CoordinationError"
])

const files = (dir: string) => {
  const output = path.join(dir, "out.jsonl")
  return { input: path.join(dir, "in.jsonl"), output, errors: Batch.defaultErrors(output) }
}

/** Every id of `expected` once in the union of the files, and nothing else. */
const assertExactlyOnce = (expected: ReadonlyArray<string>, ...paths: ReadonlyArray<string>) => {
  const counts = Files.countIds(...paths)
  assert.deepStrictEqual([...counts.keys()].sort(), [...expected].sort())
  for (const [id, n] of counts) assert.strictEqual(n, 1, `${id} is in the results ${n} times`)
}

describe("Batch.run against the simulator", () => {
  it.live(
    "puts 2,000 rows at 30% mixed faults each in exactly one file with the client's tag, and resumes",
    () =>
      Effect.gen(function*() {
        const dir = yield* Files.tempDir
        const { errors, input, output } = files(dir)
        const N = 2000
        yield* Files.writeRows(input, N)

        const first = yield* Batch.run({ input, output }).pipe(Effect.provide(Sim.client()))
        assertExactlyOnce(Files.ids(N), output, errors)
        assert.strictEqual(first.succeeded + first.failed, N)
        assert.strictEqual(first.pending, 0)
        assert.isUndefined(first.stopped)
        assert.deepStrictEqual(Files.readLines(output).length, first.succeeded)
        // 30% of 2,000 attempts fault, and a retry does not save them all
        assert.isAbove(first.failed, 50)
        assert.isAbove(first.attempts, N)

        // Each line is what the row's last request met.
        const sent = yield* Sim.requestsById
        const failures = Files.readResults(errors)
        const byTag: Record<string, number> = {}
        for (const line of failures) {
          const last = sent.get(line.custom_id)!.at(-1)!
          assert.isTrue(TAGS.has(line.error!.code))
          byTag[line.error!.code] = (byTag[line.error!.code] ?? 0) + 1
          if (last.fault === undefined) {
            // The last attempt never got its answer to the client: it timed out (a loaded machine) or its
            // connection failed before the simulator logged a fault.
            assert.include(["TimeoutError", "ConnectionError"], line.error!.code, JSON.stringify(line))
            continue
          }
          assert.strictEqual(line.error!.code, tagOf[last.fault], line.custom_id)
          assert.isTrue(TAGS.has(line.error!.code))
          assert.isNotEmpty(line.error!.message)
          if (last.fault === "ConnectionReset") assert.isNull(line.response)
          else assert.strictEqual(line.response!.status_code, last.status)
        }
        assert.deepStrictEqual(byTag, first.failedByTag)
        for (const line of Files.readResults(output)) {
          const last = sent.get(line.custom_id)!.at(-1)!
          assert.strictEqual(last.outcome, "ok")
          assert.deepStrictEqual(line.response!.status_code, 200)
          assert.strictEqual(line.response!.request_id, (line.response!.body as { id: string }).id)
          assert.isNull(line.error)
        }
        // The journal goes once every row is done.
        assert.isFalse(fs.existsSync(`${output}.journal`))

        // Resume, with the faults gone: only the retryable failures are sent again, once each.
        const retryable = new Set(
          failures.filter((l) => InferenceError.isRetryable(errorOf(l))).map((l) => l.custom_id)
        )
        const kept = failures.filter((l) => !retryable.has(l.custom_id))
        assert.isAbove(retryable.size, 0)
        assert.isAbove(kept.length, 0)
        const simulator = yield* InferenceSimulator.InferenceSimulator
        yield* simulator.setFaultRate(0)
        yield* Sim.clearLog
        const second = yield* Batch.run({ input, output }).pipe(Effect.provide(Sim.client()))
        const resent = yield* Sim.requestsById
        assert.deepStrictEqual([...resent.keys()].sort(), [...retryable].sort())
        for (const entries of resent.values()) assert.strictEqual(entries.length, 1)
        assert.strictEqual(second.alreadySucceeded, first.succeeded)
        assert.strictEqual(second.alreadyFailed, kept.length)
        assert.strictEqual(second.retried, retryable.size)
        assert.strictEqual(second.succeeded, retryable.size)
        assert.strictEqual(second.failed, 0)
        // The old error lines of the rows tried again are gone; the others are kept as they were.
        assert.deepStrictEqual(Files.readResults(errors), kept)
        assertExactlyOnce(Files.ids(N), output, errors)

        // A third run sends nothing; with retryFailed, the rest.
        yield* Sim.clearLog
        const third = yield* Batch.run({ input, output }).pipe(Effect.provide(Sim.client()))
        assert.strictEqual((yield* Sim.chatLog).length, 0)
        assert.strictEqual(third.succeeded + third.failed, 0)
        const fourth = yield* Batch.run({ input, output, retryFailed: true }).pipe(Effect.provide(Sim.client()))
        const retried = yield* Sim.requestsById
        assert.deepStrictEqual([...retried.keys()].sort(), kept.map((l) => l.custom_id).sort())
        assert.strictEqual(fourth.succeeded, kept.length)
        assert.deepStrictEqual(Files.readLines(errors), [])
        assertExactlyOnce(Files.ids(N), output, errors)
      }).pipe(
        Effect.scoped,
        Effect.provide(Sim.simulator({ seed: 17, faultRate: 0.3, faults: MIXED }))
      ),
    30_000
  )

  it.live("splits a file between three shards, each row run by exactly one", () =>
    Effect.gen(function*() {
      const dir = yield* Files.tempDir
      const input = yield* Files.writeRows(path.join(dir, "in.jsonl"), 300)
      const outputs = [1, 2, 3].map((index) => path.join(dir, `out-${index}.jsonl`))
      const summaries = yield* Effect.all(
        [1, 2, 3].map((index) =>
          Batch.run({ input, output: outputs[index - 1]!, shard: { index, count: 3 } }).pipe(
            Effect.provide(Sim.client())
          )
        ),
        { concurrency: "unbounded" }
      )
      assertExactlyOnce(Files.ids(300), ...outputs)
      for (const [i, summary] of summaries.entries()) {
        assert.strictEqual(summary.rows, 300)
        assert.strictEqual(summary.succeeded, summary.inShard)
        assert.isAbove(summary.inShard, 50)
        for (const line of Files.readResults(outputs[i]!)) {
          assert.isTrue(Batch.inShard(line.custom_id, { index: i + 1, count: 3 }))
        }
      }
      const sent = yield* Sim.requestsById
      assert.strictEqual(sent.size, 300)
      for (const entries of sent.values()) assert.strictEqual(entries.length, 1)
    }).pipe(Effect.scoped, Effect.provide(Sim.simulator())))

  it.live("dry run sends nothing, and its estimate bounds the usage of the real run", () =>
    Effect.gen(function*() {
      const dir = yield* Files.tempDir
      const { input, output } = files(dir)
      // Prompts of several lengths; half the rows leave max_tokens to its default (1,024).
      yield* Files.writeRows(input, 200, (i) => ({
        messages: [
          { role: "system", content: "You are a careful assistant. Answer in one short sentence." },
          { role: "user", content: `row-${i}: ${"tell me about the number ".repeat(1 + (i % 7))}${i}.` }
        ],
        ...(i % 2 === 0 ? { max_tokens: 48 } : { max_tokens: undefined })
      }))
      const dry = yield* Batch.run({ input, output, dryRun: true }).pipe(Effect.provide(Sim.client()))
      assert.strictEqual((yield* Sim.log).length, 0)
      assert.isFalse(fs.existsSync(output))
      assert.isTrue(dry.dryRun)
      assert.strictEqual(dry.estimate.length, 1)
      const estimate = dry.estimate[0]!
      assert.strictEqual(estimate.model, Files.MODEL)
      assert.strictEqual(estimate.rows, 200)
      assert.strictEqual(estimate.completionTokens, 100 * 48 + 100 * 1024)

      const real = yield* Batch.run({ input, output }).pipe(Effect.provide(Sim.client()))
      assert.strictEqual(real.succeeded, 200)
      assert.deepStrictEqual(real.estimate, dry.estimate)
      // The bound, for docs/batch.md: the prompt estimate (about 4 characters a token, plus 4 a message) is
      // within ±50% of what the server counts. The simulator counts a word or a punctuation mark a token (plain
      // English: about 4.5 characters a token), so these rows land near 0.9 of the estimate.
      const ratio = real.promptTokens / estimate.promptTokens
      assert.isTrue(ratio > 0.5 && ratio < 1.5, `actual/estimated prompt tokens = ${ratio}`)
      // The completion estimate is the most the rows may use (answers here are 8 to 40 tokens), and the cost lies
      // in the range: at least the prompt at the cached rate, at most the prompt and every completion token.
      assert.isAbove(real.completionTokens, 0)
      assert.isAtMost(real.completionTokens, estimate.completionTokens)
      assert.isAtLeast(real.usd, estimate.usd!.min)
      assert.isAtMost(real.usd, estimate.usd!.max)
    }).pipe(Effect.scoped, Effect.provide(Sim.simulator())))

  it.live("takes rows as the client's adaptive limit sends them, so a stop leaves the rest untaken", () =>
    Effect.gen(function*() {
      const dir = yield* Files.tempDir
      const { input, output } = files(dir)
      yield* Files.writeRows(input, 300)
      const summary = yield* Batch.run({ input, output, stop: Effect.sleep("1200 millis"), grace: "10 seconds" }).pipe(
        Effect.provide(Sim.client({ adaptiveConcurrency: { initial: 4, min: 1, max: 4 }, maxConcurrency: 64 }))
      )
      const sent = yield* Sim.requestsById
      // 4 in flight at 100 ms an answer. Before the first answer the runner takes 32 rows (the limit the client
      // starts with by default), 800 ms of work; then the limit and 2 more: about 16 rows by the stop and 6 taken
      // at it, some 54 in all. Taking the default 256 rows at once, as a fixed window does, sends them all, each
      // waiting for one of the 4 slots.
      assert.isAtMost(sent.size, 100)
      assert.strictEqual(summary.succeeded, sent.size)
      assert.strictEqual(summary.stopped?.reason, "interrupted")
      assert.strictEqual(summary.pending, 300 - sent.size)
    }).pipe(Effect.scoped, Effect.provide(Sim.simulator({ firstByte: "100 millis" }))))

  it.live("stops taking rows before the budget would pass, and a larger budget finishes the rest", () =>
    Effect.gen(function*() {
      const dir = yield* Files.tempDir
      const { errors, input, output } = files(dir)
      const N = 200
      yield* Files.writeRows(input, N, () => ({ max_tokens: 1000 }))
      // $1 a million tokens: each row reserves about $0.001 and spends about $0.00005.
      const prices = { [Files.MODEL]: { input: 1, output: 1 } }
      const budget = 0.003
      const first = yield* Batch.run({ input, output, concurrency: 8 }).pipe(
        Effect.provide(Sim.client({}, { prices, budget: { usd: budget } }))
      )
      assert.strictEqual(first.stopped?.reason, "budget")
      assert.match(first.stopped!.message, /^stopped taking rows: the next would pass the budget/)
      assert.isAtMost(first.usd, budget)
      assert.isAbove(first.succeeded, 0)
      assert.isAbove(first.pending, 0)
      assert.strictEqual(first.failed, 0)
      assert.strictEqual(first.succeeded + first.pending, N)
      // The refused rows are written nowhere: they are still to do.
      assert.strictEqual(Files.readLines(output).length, first.succeeded)
      assert.deepStrictEqual(Files.readLines(errors), [])
      const sent = yield* Sim.requestsById
      assert.strictEqual(sent.size, first.succeeded)

      const second = yield* Batch.run({ input, output }).pipe(
        Effect.provide(Sim.client({}, { prices, budget: { usd: 1 } }))
      )
      assert.isUndefined(second.stopped)
      assert.strictEqual(second.alreadySucceeded, first.succeeded)
      assert.strictEqual(second.succeeded, first.pending)
      assert.strictEqual(second.pending, 0)
      assertExactlyOnce(Files.ids(N), output, errors)
    }).pipe(Effect.scoped, Effect.provide(Sim.simulator())))

  describe("preflight", () => {
    it.live("fails with PreflightError naming a model the service does not offer, and sends no row", () =>
      Effect.gen(function*() {
        const dir = yield* Files.tempDir
        const { input, output } = files(dir)
        yield* Files.writeRows(input, 10, (i) => i === 7 ? { model: "acme/retired-model" } : {})
        const error = yield* Effect.flip(Batch.run({ input, output }).pipe(Effect.provide(Sim.client())))
        assert.strictEqual(error._tag, "PreflightError")
        if (error._tag !== "PreflightError") return
        assert.deepStrictEqual(error.unknownModels, ["acme/retired-model"])
        assert.isUndefined(error.error)
        assert.include(error.message, "\"acme/retired-model\"")
        assert.include(error.available, Files.MODEL)
        assert.strictEqual((yield* Sim.chatLog).length, 0)
        assert.isFalse(fs.existsSync(output))
      }).pipe(Effect.scoped, Effect.provide(Sim.simulator())))

    it.live("fails with PreflightError carrying AuthenticationError for a bad key", () =>
      Effect.gen(function*() {
        const dir = yield* Files.tempDir
        const { input, output } = files(dir)
        yield* Files.writeRows(input, 10)
        const error = yield* Effect.flip(
          Batch.run({ input, output }).pipe(Effect.provide(Sim.client({ apiKey: Redacted.make("wrong-key") })))
        )
        assert.strictEqual(error._tag, "PreflightError")
        if (error._tag !== "PreflightError") return
        assert.strictEqual(error.error?._tag, "AuthenticationError")
        assert.match(error.message, /^preflight failed: /)
        assert.strictEqual((yield* Sim.chatLog).length, 0)
        assert.strictEqual((yield* Sim.log).length, 1)
      }).pipe(Effect.scoped, Effect.provide(Sim.simulator())))
  })
})

describe("Batch.stream", () => {
  it.live("gives one result per row of a stream, failures as Failed results", () =>
    Effect.gen(function*() {
      const N = 100
      const rows = Stream.fromIterable(
        Files.ids(N).map((customId, i) => {
          const line = Files.request(i + 1)
          return { customId, body: line.body as Batch.Row["body"] }
        })
      )
      const results = Chunk.toArray(
        yield* Stream.runCollect(Batch.stream(rows, { concurrency: 16 })).pipe(
          Effect.provide(Sim.client({ retry: false }))
        )
      )
      assert.deepStrictEqual(results.map((r) => r.customId).sort(), Files.ids(N).sort())
      const failed = results.filter((r) => r._tag === "Failed")
      assert.isAbove(failed.length, 0)
      assert.isBelow(failed.length, N)
      for (const result of results) {
        if (result._tag === "Failed") assert.isTrue(TAGS.has(result.error._tag))
        else assert.isString(result.completion.choices[0]?.message.content)
      }
    }).pipe(Effect.provide(Sim.simulator({ seed: 3, faultRate: 0.3 }))))

  it.live("takes no further row after an error that stops a run (a refused key)", () =>
    Effect.gen(function*() {
      const rows = Stream.fromIterable(
        Files.ids(50).map((customId, i) => ({
          customId,
          body: Files.request(i + 1).body as Batch.Row["body"]
        }))
      )
      const results = Chunk.toArray(
        yield* Stream.runCollect(Batch.stream(rows, { concurrency: 1 })).pipe(
          Effect.provide(Sim.client({ apiKey: Redacted.make("wrong-key"), retry: false }))
        )
      )
      assert.strictEqual(results.length, 1)
      assert.strictEqual(results[0]!._tag, "Failed")
      assert.isTrue(results[0]!._tag === "Failed" && Batch.stopsRun(results[0]!.error))
      assert.strictEqual((yield* Sim.chatLog).length, 1)
    }).pipe(Effect.provide(Sim.simulator())))
})

/** The error a failure line stands for, enough for `isRetryable`. */
const errorOf = (line: Files.ResultLine): InferenceError.InferenceError => {
  const status = line.response?.status_code
  switch (line.error!.code) {
    case "RateLimitError":
      return new InferenceError.RateLimitError({ status, attempts: 1 })
    case "InternalServerError":
      return new InferenceError.InternalServerError({ status, attempts: 1 })
    case "ServiceUnavailableError":
      return new InferenceError.ServiceUnavailableError({ status, attempts: 1 })
    case "ConnectionError":
      return new InferenceError.ConnectionError({ description: "reset", sent: true, attempts: 1 })
    case "TimeoutError":
      return new InferenceError.TimeoutError({ phase: "attempt", timeout: Duration.seconds(5), attempts: 1 })
    default:
      return new InferenceError.BadRequestError({ status, attempts: 1 })
  }
}
