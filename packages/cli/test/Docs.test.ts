/**
 * The code of docs/batch.md: each block is a file under examples/docs
 * (type-checked with the tests, compared with the page by the client's docs
 * test), run here against the simulator.
 */
import { Batch } from "@effect-inference/cli"
import { assert, describe, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as path from "node:path"
import { shardOne } from "../examples/docs/batch-run.js"
import { answers } from "../examples/docs/batch-stream.js"
import * as Files from "./utils/Files.js"
import * as Sim from "./utils/Simulator.js"

describe("docs/batch.md", () => {
  it.scopedLive("Batch.stream: one line per question, by custom_id", () =>
    Effect.gen(function*() {
      const lines = Chunk.toReadonlyArray(yield* Effect.provide(answers, Sim.client()))
      assert.deepStrictEqual(lines.map((line) => line.split(":")[0]).sort(), ["q1", "q2", "q3"])
      assert.isTrue(lines.every((line) => !line.includes("failed")), lines.join("\n"))
    }).pipe(Effect.provide(Sim.simulator())))

  it.scopedLive("Batch.run with a shard: the shard's rows in results.jsonl, the others left", () =>
    Effect.gen(function*() {
      const dir = yield* Files.tempDir
      yield* Files.writeRows(path.join(dir, "prompts.jsonl"), 12)
      // The example names its files relative to the working directory, as the command does.
      const cwd = process.cwd()
      yield* Effect.acquireRelease(Effect.sync(() => process.chdir(dir)), () => Effect.sync(() => process.chdir(cwd)))
      yield* Effect.provide(shardOne, Sim.client())
      const done = Files.readResults(path.join(dir, "results.jsonl")).map((line) => line.custom_id).sort()
      const expected = Files.ids(12).filter((id) => Batch.inShard(id, { index: 1, count: 2 })).sort()
      assert.isAbove(expected.length, 0)
      assert.deepStrictEqual(done, expected)
    }).pipe(Effect.provide(Sim.simulator())))
})
