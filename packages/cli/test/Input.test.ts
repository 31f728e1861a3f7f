import { Batch } from "@effect-inference/cli"
import { assert, describe, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as FastCheck from "effect/FastCheck"
import * as Stream from "effect/Stream"
import * as path from "node:path"
import * as Input from "../src/internal/input.js"
import * as Lines from "../src/internal/lines.js"
import * as Files from "./utils/Files.js"
import * as Sim from "./utils/Simulator.js"

const row = (i: number, body: Record<string, unknown> = {}) => JSON.stringify(Files.request(i, body))

/** One line of each kind of problem, between valid rows, blank lines, a CRLF line and a last line without newline. */
const mixed = [
  `${row(1)}\n`, //                                                              1 valid
  "\n", //                                                                      2 blank
  "{not json\n", //                                                             3
  "[1, 2]\n", //                                                                4
  `${JSON.stringify({ method: "POST", url: "/v1/chat/completions", body: {} })}\n`, // 5 no custom_id
  `${JSON.stringify({ ...Files.request(6), custom_id: "" })}\n`, //              6 empty custom_id
  `${row(1)}\n`, //                                                              7 duplicate of line 1
  `${JSON.stringify({ ...Files.request(8), method: "GET" })}\n`, //              8
  `${JSON.stringify({ ...Files.request(9), url: "/v1/embeddings" })}\n`, //      9
  `${row(10, { temperature: 5 })}\n`, //                                        10 fails the client's check
  `${JSON.stringify({ ...Files.request(11), pad: "x".repeat(Lines.MAX_LINE_BYTES) })}\n`, // 11 over the bound
  "   \n", //                                                                  12 blank
  `${row(13)}\r\n`, //                                                          13 valid, CRLF
  row(14) //                                                                    14 valid, no newline
].join("")

const expectedProblems: ReadonlyArray<readonly [line: number, message: RegExp]> = [
  [3, /^not valid JSON/],
  [4, /^a row must be a JSON object, not an array$/],
  [5, /^custom_id must be a non-empty string$/],
  [6, /^custom_id must be a non-empty string$/],
  [7, /^custom_id "row-1" is also on line 1$/],
  [8, /^method must be "POST", not "GET"$/],
  [9, /^url must be one of "\/v1\/chat\/completions", "\/chat\/completions"$/],
  [10, /^body: .*temperature/],
  [11, new RegExp(`^longer than ${Lines.MAX_LINE_BYTES} bytes$`)]
]

describe("Input", () => {
  describe("scan", () => {
    it.scoped("reports every kind of invalid row with its line number and ignores blank lines", () =>
      Effect.gen(function*() {
        const dir = yield* Files.tempDir
        const file = yield* Files.writeText(path.join(dir, "in.jsonl"), mixed)
        const scan = yield* Input.scan(file, {})
        assert.deepStrictEqual(
          scan.problems.map((problem) => problem.line),
          expectedProblems.map(([line]) => line)
        )
        for (const [i, [, message]] of expectedProblems.entries()) {
          assert.match(scan.problems[i]!.message, message, `line ${expectedProblems[i]![0]}`)
        }
        assert.strictEqual(scan.problemCount, expectedProblems.length)
        // 14 lines, 2 blank
        assert.strictEqual(scan.rows, 12)
        // rows 1, 13 (CRLF) and 14 (no newline at the end)
        assert.strictEqual(scan.inShard, 3)
        // every problem's line, the repeated custom_id's among them: a run with skipInvalid leaves them out
        assert.deepStrictEqual([...scan.skipLines].sort((a, b) => a - b), expectedProblems.map(([line]) => line))
        assert.deepStrictEqual(scan.models.map((m) => [m.model, m.rows]), [[Files.MODEL, 3]])
      }))

    it.scoped("names the custom_id of a row whose problem comes after its id was read", () =>
      Effect.gen(function*() {
        const dir = yield* Files.tempDir
        const file = yield* Files.writeText(path.join(dir, "in.jsonl"), mixed)
        const scan = yield* Input.scan(file, {})
        const byLine = new Map(scan.problems.map((problem) => [problem.line, problem.customId]))
        assert.strictEqual(byLine.get(7), "row-1")
        assert.strictEqual(byLine.get(8), "row-8")
        assert.strictEqual(byLine.get(10), "row-10")
        assert.strictEqual(byLine.get(3), undefined)
      }))

    it.scoped("keeps the first problems and counts the rest", () =>
      Effect.gen(function*() {
        const dir = yield* Files.tempDir
        const file = yield* Files.writeText(path.join(dir, "in.jsonl"), "nope\n".repeat(Input.MAX_PROBLEMS + 7))
        const scan = yield* Input.scan(file, {})
        assert.strictEqual(scan.problems.length, Input.MAX_PROBLEMS)
        assert.strictEqual(scan.problemCount, Input.MAX_PROBLEMS + 7)
        const error = new Batch.InvalidInputError({ path: file, problems: scan.problems, count: scan.problemCount })
        assert.match(error.message, /… and 7 more$/)
      }))

    it.scoped("reads the rows of a CRLF file and of a file whose last line has no newline", () =>
      Effect.gen(function*() {
        const dir = yield* Files.tempDir
        const file = yield* Files.writeText(path.join(dir, "in.jsonl"), `${row(1)}\r\n${row(2)}\r\n\r\n${row(3)}`)
        const scan = yield* Input.scan(file, {})
        assert.strictEqual(scan.problemCount, 0)
        const rows = yield* Stream.runCollect(Input.rows(file, undefined, new Set(), () => true))
        assert.deepStrictEqual(Chunk.toArray(rows).map((row) => [row.customId, row.line]), [
          ["row-1", 1],
          ["row-2", 2],
          ["row-3", 4]
        ])
      }))
  })

  describe("shards", () => {
    it("puts each custom_id in exactly one of n shards", () =>
      FastCheck.assert(
        FastCheck.property(
          FastCheck.string({ unit: "grapheme" }),
          FastCheck.integer({ min: 1, max: 9 }),
          (id, count) => {
            const shards = Array.from({ length: count }, (_, i) => i + 1).filter((index) =>
              Batch.inShard(id, { index, count })
            )
            return shards.length === 1
          }
        )
      ))

    it("spreads ids evenly and stably (FNV-1a of the UTF-8 bytes)", () => {
      // FNV-1a 32 of "a" and of "é" (two UTF-8 bytes): a change of hash would move every row of a running split.
      assert.strictEqual(Input.hash("a"), 0xe40c292c)
      assert.strictEqual(Input.hash(""), 0x811c9dc5)
      const counts = [0, 0, 0]
      for (const id of Files.ids(3000)) counts[[1, 2, 3].find((index) => Batch.inShard(id, { index, count: 3 }))! - 1]++
      for (const n of counts) assert.isTrue(n > 850 && n < 1150, `shard sizes ${counts}`)
    })
  })

  describe("Batch.run", () => {
    it.live("fails with InvalidInputError listing every problem and sends nothing", () =>
      Effect.gen(function*() {
        const dir = yield* Files.tempDir
        const file = yield* Files.writeText(path.join(dir, "in.jsonl"), mixed)
        const output = path.join(dir, "out.jsonl")
        const failure = yield* Effect.flip(Batch.run({ input: file, output }).pipe(Effect.provide(Sim.client())))
        assert.strictEqual(failure._tag, "InvalidInputError")
        if (failure._tag !== "InvalidInputError") return
        assert.deepStrictEqual(failure.problems.map((p) => p.line), expectedProblems.map(([line]) => line))
        assert.match(failure.message, /in\.jsonl: 9 invalid rows; nothing was sent\n {2}line 3: not valid JSON/)
        // Not even the preflight: the input is checked first.
        assert.strictEqual((yield* Sim.log).length, 0)
        assert.deepStrictEqual(Files.readLines(output), [])
      }).pipe(Effect.scoped, Effect.provide(Sim.simulator())))

    it.live("with skipInvalid runs the valid rows, the first of a repeated custom_id only", () =>
      Effect.gen(function*() {
        const dir = yield* Files.tempDir
        const file = yield* Files.writeText(path.join(dir, "in.jsonl"), mixed)
        const output = path.join(dir, "out.jsonl")
        const summary = yield* Batch.run({ input: file, output, skipInvalid: true }).pipe(
          Effect.provide(Sim.client())
        )
        assert.strictEqual(summary.invalid, 9)
        assert.strictEqual(summary.succeeded, 3)
        assert.deepStrictEqual(Files.readResults(output).map((r) => r.custom_id).sort(), ["row-1", "row-13", "row-14"])
        const sent = yield* Sim.requestsById
        assert.deepStrictEqual([...sent.keys()].sort(), ["row-1", "row-13", "row-14"])
        assert.strictEqual(sent.get("row-1")!.length, 1)
      }).pipe(Effect.scoped, Effect.provide(Sim.simulator())))
  })
})
