import { Batch } from "@effect-inference/cli"
import { TestInferenceClient } from "@effect-inference/testing"
import { assert, describe, it } from "@effect/vitest"
import * as Deferred from "effect/Deferred"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as TestClock from "effect/TestClock"
import * as fs from "node:fs"
import * as path from "node:path"
import * as Files from "./utils/Files.js"

const N = 20
/** Calls answered at once; later ones take `slow`. */
const FAST = 5

/** A scripted client: the first `FAST` calls answer at once, the others after `slow` (virtual time). */
const client = (slow: Duration.DurationInput) =>
  TestInferenceClient.layer({
    models: [Files.MODEL],
    replies: [(_request, n) =>
      n <= FAST
        ? Effect.succeed(TestInferenceClient.completion("at once"))
        : Effect.as(Effect.sleep(slow), TestInferenceClient.completion("slowly"))]
  })

/** Real waits are for the file reads; virtual time moves by `step` until the fiber is done. */
const realPause = Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 2)))
const untilDone = <A, E>(fiber: Fiber.Fiber<A, E>, step: Duration.DurationInput) =>
  Effect.gen(function*() {
    for (let i = 0; i < 2_000; i++) {
      if (Option.isSome(yield* Fiber.poll(fiber))) return yield* Fiber.join(fiber)
      yield* TestClock.adjust(step)
      yield* realPause
    }
    return yield* Effect.dieMessage("the run did not end")
  })

/** Waits (really, briefly) until the scripted client has had `n` calls. */
const untilCalls = (n: number) =>
  Effect.gen(function*() {
    const test = yield* TestInferenceClient.TestInferenceClient
    for (let i = 0; i < 2_000; i++) {
      if ((yield* test.calls) >= n) return
      yield* realPause
    }
    return yield* Effect.dieMessage(`fewer than ${n} calls`)
  })

describe("Batch.run: stop and grace", () => {
  it.scoped("after a stop, takes no further row and writes the rows in flight that finish within the grace", () =>
    Effect.gen(function*() {
      const dir = yield* Files.tempDir
      const input = yield* Files.writeRows(path.join(dir, "in.jsonl"), N)
      const output = path.join(dir, "out.jsonl")
      const stop = yield* Deferred.make<void>()
      const fiber = yield* Effect.fork(
        Batch.run({ input, output, concurrency: 2, stop: Deferred.await(stop), grace: "30 seconds" })
      )
      // 5 rows done, 2 in flight
      yield* untilCalls(FAST + 2)
      yield* Deferred.succeed(stop, undefined)
      const summary = yield* untilDone(fiber, "500 millis")
      const test = yield* TestInferenceClient.TestInferenceClient
      assert.strictEqual(yield* test.calls, FAST + 2)
      assert.strictEqual(summary.succeeded, FAST + 2)
      assert.strictEqual(summary.abandoned, 0)
      assert.strictEqual(summary.pending, N - FAST - 2)
      assert.strictEqual(summary.stopped?.reason, "interrupted")
      assert.strictEqual(Files.readLines(output).length, FAST + 2)
    }).pipe(Effect.provide(client("2 seconds"))))

  it.scoped("abandons the rows in flight past the grace, writes them nowhere, and a second run does the rest", () =>
    Effect.gen(function*() {
      const dir = yield* Files.tempDir
      const input = yield* Files.writeRows(path.join(dir, "in.jsonl"), N)
      const output = path.join(dir, "out.jsonl")
      const errors = Batch.defaultErrors(output)
      const stop = yield* Deferred.make<void>()
      const hanging = yield* Layer.build(client("1 hour"))
      const fiber = yield* Effect.fork(
        Batch.run({ input, output, concurrency: 2, stop: Deferred.await(stop), grace: "1 second" }).pipe(
          Effect.provide(hanging)
        )
      )
      yield* untilCalls(FAST + 2).pipe(Effect.provide(hanging))
      yield* Deferred.succeed(stop, undefined)
      const first = yield* untilDone(fiber, "100 millis")
      assert.strictEqual(first.succeeded, FAST)
      assert.strictEqual(first.abandoned, 2)
      assert.strictEqual(first.pending, N - FAST)
      assert.strictEqual(first.stopped?.reason, "interrupted")
      assert.strictEqual(Files.readLines(output).length, FAST)
      assert.deepStrictEqual(Files.readLines(errors), [])
      // the journal remembers the abandoned rows
      assert.isTrue(fs.existsSync(`${output}.journal`))

      const second = yield* Batch.run({ input, output }).pipe(Effect.provide(client("0 millis")))
      assert.strictEqual(second.alreadySucceeded, FAST)
      assert.strictEqual(second.unfinishedBefore, 2)
      assert.strictEqual(second.succeeded, N - FAST)
      assert.strictEqual(second.pending, 0)
      assert.isFalse(fs.existsSync(`${output}.journal`))
      const counts = Files.countIds(output, errors)
      assert.deepStrictEqual([...counts.keys()].sort(), Files.ids(N).sort())
      for (const n of counts.values()) assert.strictEqual(n, 1)
    }))
})
