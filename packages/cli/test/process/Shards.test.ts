/**
 * One file split between processes: `--shard i/n` in n processes covers every
 * row once, and with `--redis` the processes share the project's concurrency
 * limit through a real `redis-server`. Real processes of the command against
 * the simulator in this process.
 */
import { Batch } from "@effect-inference/cli"
import { InferenceSimulator } from "@effect-inference/testing"
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as path from "node:path"
import * as Files from "../utils/Files.js"
import * as Cli from "./utils/Cli.js"
import * as RedisServer from "./utils/RedisServer.js"

const TIMEOUT = 60_000

/** Each row once in the union of the files; the counts by file. */
const exactlyOnce = (n: number, files: ReadonlyArray<string>) => {
  const counts = Files.countIds(...files)
  assert.deepStrictEqual([...counts].filter(([, count]) => count !== 1), [])
  assert.deepStrictEqual([...counts.keys()].sort(), Files.ids(n).sort())
}

describe("effect-inference batch across processes", () => {
  it.scopedLive(
    "--shard i/3 in three processes on one file: each does its shard, together every row once",
    () =>
      Effect.gen(function*() {
        const n = 150
        const simulator = yield* InferenceSimulator.make({ firstByte: "10 millis" })
        const dir = yield* Files.tempDir
        const input = yield* Files.writeRows(path.join(dir, "input.jsonl"), n)
        const shards = [1, 2, 3]
        const runs = yield* Effect.forEach(shards, (i) =>
          Cli.run([
            "batch",
            input,
            "--output",
            path.join(dir, `results-${i}.jsonl`),
            "--base-url",
            simulator.url,
            "--shard",
            `${i}/3`
          ]), { concurrency: "unbounded" })
        for (const [k, exited] of runs.entries()) {
          assert.strictEqual(exited.code, 0, Cli.report(exited))
          const i = shards[k]!
          const mine = Files.ids(n).filter((id) => Batch.inShard(id, { index: i, count: 3 }))
          // A shard of 150 rows is near 50, not empty, not all.
          assert.isAbove(mine.length, 30)
          assert.isBelow(mine.length, 70)
          const done = Files.readResults(path.join(dir, `results-${i}.jsonl`)).map((result) => result.custom_id)
          assert.deepStrictEqual(done.sort(), mine.sort())
          assert.match(exited.stdout, new RegExp(`shard\\s+${mine.length} rows`))
        }
        exactlyOnce(n, shards.map((i) => path.join(dir, `results-${i}.jsonl`)))
        // Nor was any row sent by two processes.
        const sent = (yield* simulator.log).filter((entry) => entry.path === "/v1/chat/completions")
        assert.strictEqual(sent.length, n)
      }),
    TIMEOUT
  )

  it.scopedLive(
    "--redis: two runners (shards 1/2 and 2/2, --concurrency auto) share the project's limit of 8 through Redis",
    () =>
      Effect.gen(function*() {
        const n = 240
        const limit = 8
        const redis = yield* RedisServer.make
        const simulator = yield* InferenceSimulator.make({
          concurrencyLimit: limit,
          firstByte: "40 millis",
          perToken: "2 millis"
        })
        const dir = yield* Files.tempDir
        const input = yield* Files.writeRows(path.join(dir, "input.jsonl"), n)
        const runs = yield* Effect.forEach([1, 2], (i) =>
          Cli.run([
            "batch",
            input,
            "--output",
            path.join(dir, `results-${i}.jsonl`),
            "--base-url",
            simulator.url,
            "--project",
            "acme/batch",
            "--concurrency",
            "auto",
            "--shard",
            `${i}/2`,
            "--redis",
            redis.url
          ]), { concurrency: "unbounded" })
        for (const exited of runs) assert.strictEqual(exited.code, 0, Cli.report(exited))
        exactlyOnce(n, [1, 2].map((i) => path.join(dir, `results-${i}.jsonl`)))

        const log = (yield* simulator.log).filter((entry) => entry.path === "/v1/chat/completions")
        const refused = log.filter((entry) => entry.outcome === "concurrency-limited").length
        const peak = InferenceSimulator.peakInFlight(log)
        // The simulator answers no more than the limit at once, whatever is sent: that the runners kept to it is in
        // the 429s. Two runners that each find the limit alone are refused some 60 times here (a quarter of the
        // rows); sharing one count through Redis, about 20.
        assert.isBelow(refused, n / 6, `${refused} requests refused with a 429 for ${n} rows`)
        assert.isAtMost(peak, limit)
        // They did use the limit, together.
        assert.isAtLeast(peak, limit / 2)
      }),
    TIMEOUT
  )
})
