/**
 * Memory stays flat whatever the file's size: child processes with a small
 * heap (`--max-old-space-size`) that a run keeping its rows or results would
 * overflow.
 *
 * Why not 100,000 rows through the whole command: the runner's own overhead is
 * about half a millisecond a row on a 2-core machine (measured with a client
 * that answers at once), so such a run takes 45 s or more, 80 s against the
 * simulator, which CI cannot spend three times. So the 100,000-row file goes
 * through the command's first pass (`--dry-run`: every row read and checked,
 * each `custom_id` kept), and 10,000 rows through `Batch.run` with that instant
 * client (fixtures/memory.ts), whose heap in use is sampled after full
 * collections: it must not grow with the rows.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as fs from "node:fs"
import * as path from "node:path"
import * as Files from "../utils/Files.js"
import * as Cli from "./utils/Cli.js"

const TIMEOUT = 90_000

/** Writes rows 1 to `n` a few thousand at a time (the file is some 20 MB for 100,000 rows). */
const writeMany = (file: string, n: number) =>
  Effect.sync(() => {
    const fd = fs.openSync(file, "w")
    try {
      for (let start = 1; start <= n; start += 5_000) {
        const lines: Array<string> = []
        for (let i = start; i < Math.min(start + 5_000, n + 1); i++) lines.push(JSON.stringify(Files.request(i)))
        fs.writeSync(fd, `${lines.join("\n")}\n`)
      }
    } finally {
      fs.closeSync(fd)
    }
    return file
  })

interface Measured {
  readonly rows: number
  readonly succeeded: number
  readonly failed: number
  readonly pending: number
  readonly served: number
  readonly baseline: number
  readonly peakLive: number
  readonly millis: number
}

const MB = 1024 * 1024

describe("effect-inference batch: memory", () => {
  it.scopedLive(
    "a 100,000-row file: the first pass over it (--dry-run) runs in a 96 MB heap",
    () =>
      Effect.gen(function*() {
        const dir = yield* Files.tempDir
        const input = yield* writeMany(path.join(dir, "input.jsonl"), 100_000)
        const exited = yield* Cli.run(
          [
            "batch",
            input,
            "--output",
            path.join(dir, "results.jsonl"),
            "--dry-run",
            "--base-url",
            "http://127.0.0.1:9"
          ],
          { nodeFlags: ["--max-old-space-size=96"] }
        )
        assert.strictEqual(exited.code, 0, Cli.report(exited))
        assert.include(exited.stdout, "dry run: 100,000 rows")
        assert.include(exited.stdout, `${Files.MODEL}: 100,000 rows`)
      }),
    TIMEOUT
  )

  it.scopedLive(
    "10,000 rows through Batch.run: the heap in use does not grow with the rows (128 MB heap)",
    () =>
      Effect.gen(function*() {
        const n = 10_000
        const dir = yield* Files.tempDir
        const input = yield* writeMany(path.join(dir, "input.jsonl"), n)
        const output = path.join(dir, "results.jsonl")
        const exited = yield* Effect.scoped(Effect.flatMap(
          Cli.startProgram("test/process/fixtures/memory.ts", [input, output], {
            nodeFlags: ["--expose-gc", "--max-old-space-size=128"]
          }),
          (running) => running.exited
        ))
        assert.strictEqual(exited.code, 0, Cli.report(exited))
        const measured = JSON.parse(exited.stdout) as Measured
        assert.deepInclude(measured, { rows: n, succeeded: n, failed: 0, pending: 0, served: n })
        assert.strictEqual(Files.readLines(output).length, n)
        // About 4 MB over the heap before the run, however many rows: the rows in flight, a read buffer, the metrics.
        // A run that kept each row's result (a kilobyte or so) would add 10 MB or more.
        const growth = measured.peakLive - measured.baseline
        assert.isBelow(growth, 8 * MB, `heap in use grew by ${(growth / MB).toFixed(1)} MB over ${n} rows`)
      }),
    TIMEOUT
  )
})
