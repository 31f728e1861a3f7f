/**
 * Memory stays flat whatever the file's size: a child process runs a
 * generated 100,000-row file through `Batch.run` in a 128 MB heap, with a
 * client that answers at once (fixtures/memory.ts: the command itself cannot
 * be given a client, and through the simulator such a run takes over a
 * minute, which CI cannot spend three times); its heap in use, sampled after
 * full collections, must stay under a fixed bound.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as fs from "node:fs"
import * as path from "node:path"
import * as Files from "../utils/Files.js"
import * as Cli from "./utils/Cli.js"

const TIMEOUT = 120_000

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
    "100,000 rows through Batch.run: the heap in use stays under 64 MB (in a 128 MB heap)",
    () =>
      Effect.gen(function*() {
        const n = 100_000
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
        // About 38 MB at most: some 30 MB before the run (the modules), the custom_ids of the file (the first pass
        // keeps them to find repeats: some 8 MB for 100,000), the rows in flight and a read buffer. A run that kept
        // each row's result (a kilobyte or so) would need over 100 MB, and one that read the file whole some 20 MB.
        assert.isBelow(
          measured.peakLive,
          64 * MB,
          `heap in use: ${(measured.baseline / MB).toFixed(1)} MB before, ${
            (measured.peakLive / MB).toFixed(1)
          } MB at most`
        )
      }),
    TIMEOUT
  )
})
