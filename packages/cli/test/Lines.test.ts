import { assert, describe, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import * as fs from "node:fs"
import * as path from "node:path"
import * as Lines from "../src/internal/lines.js"
import * as Files from "./utils/Files.js"

const readAll = (file: string, maxLineBytes?: number) =>
  Effect.map(Stream.runCollect(Lines.read(file, maxLineBytes)), Chunk.toArray)

describe("Lines", () => {
  describe("read", () => {
    it.scoped("numbers lines from 1, drops \\r of CRLF, keeps empty lines and a last line without newline", () =>
      Effect.gen(function*() {
        const dir = yield* Files.tempDir
        const file = yield* Files.writeText(path.join(dir, "a"), "one\r\n\ntwo\nthree")
        assert.deepStrictEqual(yield* readAll(file), [
          { number: 1, text: "one", tooLong: false },
          { number: 2, text: "", tooLong: false },
          { number: 3, text: "two", tooLong: false },
          { number: 4, text: "three", tooLong: false }
        ])
      }))

    it.scoped("reports a line past the bound as too long and reads on after it", () =>
      Effect.gen(function*() {
        const dir = yield* Files.tempDir
        const file = yield* Files.writeText(path.join(dir, "a"), `short\n${"x".repeat(101)}\nafter\n${"y".repeat(100)}`)
        assert.deepStrictEqual(yield* readAll(file, 100), [
          { number: 1, text: "short", tooLong: false },
          { number: 2, text: "", tooLong: true },
          { number: 3, text: "after", tooLong: false },
          { number: 4, text: "y".repeat(100), tooLong: false }
        ])
      }))

    it.scoped("keeps a line whole across reads, multi-byte characters split between them included", () =>
      Effect.gen(function*() {
        const dir = yield* Files.tempDir
        // 300,001 bytes of "é" (2 bytes each) after one "a": a character falls across the 256 KiB read.
        const long = `a${"é".repeat(150_000)}`
        const file = yield* Files.writeText(path.join(dir, "a"), `${long}\nend\n`)
        const lines = yield* readAll(file)
        assert.strictEqual(lines.length, 2)
        assert.strictEqual(lines[0]!.text, long)
        assert.strictEqual(lines[1]!.text, "end")
      }))

    it.effect("fails with FileError for a file that does not exist", () =>
      Effect.gen(function*() {
        const error = yield* Effect.flip(readAll("/nonexistent/effect-inference/in.jsonl"))
        assert.strictEqual(error._tag, "FileError")
        assert.strictEqual(error.path, "/nonexistent/effect-inference/in.jsonl")
      }))
  })

  describe("repairTail", () => {
    it.scoped("cuts the bytes after the last newline", () =>
      Effect.gen(function*() {
        const dir = yield* Files.tempDir
        const file = yield* Files.writeText(path.join(dir, "a"), "{\"a\":1}\n{\"b\":2}\n{\"c\":")
        assert.isTrue(yield* Lines.repairTail(file))
        assert.strictEqual(fs.readFileSync(file, "utf8"), "{\"a\":1}\n{\"b\":2}\n")
      }))

    it.scoped("cuts a torn line longer than its read window", () =>
      Effect.gen(function*() {
        const dir = yield* Files.tempDir
        const file = yield* Files.writeText(path.join(dir, "a"), `whole\n${"z".repeat(200_000)}`)
        assert.isTrue(yield* Lines.repairTail(file))
        assert.strictEqual(fs.readFileSync(file, "utf8"), "whole\n")
      }))

    it.scoped("empties a file that holds only a torn line", () =>
      Effect.gen(function*() {
        const dir = yield* Files.tempDir
        const file = yield* Files.writeText(path.join(dir, "a"), "{\"custom_id\":\"x")
        assert.isTrue(yield* Lines.repairTail(file))
        assert.strictEqual(fs.readFileSync(file, "utf8"), "")
      }))

    it.scoped("leaves whole files, empty files and missing files alone", () =>
      Effect.gen(function*() {
        const dir = yield* Files.tempDir
        const whole = yield* Files.writeText(path.join(dir, "whole"), "a\nb\n")
        const empty = yield* Files.writeText(path.join(dir, "empty"), "")
        assert.isFalse(yield* Lines.repairTail(whole))
        assert.isFalse(yield* Lines.repairTail(empty))
        assert.isFalse(yield* Lines.repairTail(path.join(dir, "missing")))
        assert.strictEqual(fs.readFileSync(whole, "utf8"), "a\nb\n")
        assert.isFalse(fs.existsSync(path.join(dir, "missing")))
      }))
  })

  describe("appender and filter", () => {
    it.scoped("appends whole lines and filter keeps only the accepted ones, in order", () =>
      Effect.gen(function*() {
        const dir = yield* Files.tempDir
        const file = path.join(dir, "out")
        yield* Effect.scoped(Effect.gen(function*() {
          const out = yield* Lines.appender(file)
          for (const word of ["keep 1", "drop 2", "keep 3", "drop 4"]) out.append(word)
        }))
        assert.strictEqual(fs.readFileSync(file, "utf8"), "keep 1\ndrop 2\nkeep 3\ndrop 4\n")
        const removed = yield* Lines.filter(file, (text) => text.startsWith("keep"))
        assert.strictEqual(removed, 2)
        assert.strictEqual(fs.readFileSync(file, "utf8"), "keep 1\nkeep 3\n")
        // no temporary file is left beside it
        assert.deepStrictEqual(fs.readdirSync(dir), ["out"])
      }))
  })
})
