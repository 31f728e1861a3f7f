/**
 * The place where files are read and written a line at a time: input read in
 * bounded memory whatever its size, results appended whole.
 *
 * Node's `readline` (and Effect's `Stream.splitLines`) keep a line in memory
 * however long it grows, so one 2 GB line with no newline would cost 2 GB: the
 * reader here splits the bytes itself and drops the rest of a line past its
 * bound, reporting it as too long.
 *
 * Results are appended with one `write(2)` per line, synchronously, so a line
 * is in the file whole or not at all whenever the process stops (`process.exit`
 * on a second Ctrl-C, a SIGKILL between two steps); only a power cut in the
 * middle of a write can leave a torn last line, which {@link repairTail} cuts
 * off before a file is appended to again.
 */
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import * as fs from "node:fs"
import { FileError } from "./errors.js"

/** One line of a file: its 1-based number and its text, or `tooLong` when it passed the bound. */
export interface Line {
  readonly number: number
  readonly text: string
  readonly tooLong: boolean
}

/** Most bytes a line may have before its rest is dropped: 16 MiB, far above any chat request. */
export const MAX_LINE_BYTES = 16 * 1024 * 1024

const READ_BYTES = 256 * 1024
const NEWLINE = 0x0a

const fileError = (path: string, action: string) => (error: unknown) =>
  new FileError({ path, message: `could not ${action}: ${error instanceof Error ? error.message : String(error)}` })

/**
 * The lines of a file, streamed: memory stays within one read and one line,
 * whatever the file's size. A last line without a newline is a line; an empty
 * line is a line (the caller decides what it means). `\r\n` endings lose their `\r`.
 */
export const read = (path: string, maxLineBytes = MAX_LINE_BYTES): Stream.Stream<Line, FileError> =>
  Stream.suspend(() => {
    const decoder = new TextDecoder()
    async function* lines(): AsyncGenerator<ReadonlyArray<Line>> {
      const handle = await fs.promises.open(path, "r")
      try {
        const buffer = Buffer.allocUnsafe(READ_BYTES)
        let pending: Array<Buffer> = []
        let pendingBytes = 0
        let tooLong = false
        let number = 0
        const finish = (): Line => {
          number++
          const bytes = pending.length === 1 ? pending[0] : Buffer.concat(pending, pendingBytes)
          let text = tooLong ? "" : decoder.decode(bytes)
          if (text.endsWith("\r")) text = text.slice(0, -1)
          const line = { number, text, tooLong }
          pending = []
          pendingBytes = 0
          tooLong = false
          return line
        }
        const keep = (piece: Buffer) => {
          if (tooLong) return
          if (pendingBytes + piece.length > maxLineBytes) {
            tooLong = true
            pending = []
            pendingBytes = 0
            return
          }
          // A copy: the read buffer is used again.
          pending.push(Buffer.from(piece))
          pendingBytes += piece.length
        }
        while (true) {
          const { bytesRead } = await handle.read(buffer, 0, READ_BYTES, null)
          if (bytesRead === 0) break
          const out: Array<Line> = []
          let start = 0
          while (start < bytesRead) {
            const end = buffer.indexOf(NEWLINE, start)
            if (end === -1 || end >= bytesRead) {
              keep(buffer.subarray(start, bytesRead))
              break
            }
            keep(buffer.subarray(start, end))
            out.push(finish())
            start = end + 1
          }
          if (out.length > 0) yield out
        }
        if (pendingBytes > 0 || tooLong) yield [finish()]
      } finally {
        await handle.close()
      }
    }
    return Stream.fromAsyncIterable(lines(), fileError(path, "read it")).pipe(
      Stream.mapConcat((lines) => lines)
    )
  })

/** Whether the file exists (any error but "not found" is the caller's to meet when it reads). */
export const exists = (path: string): Effect.Effect<boolean> =>
  Effect.sync(() => {
    try {
      fs.statSync(path)
      return true
    } catch (error) {
      return (error as NodeJS.ErrnoException).code !== "ENOENT"
    }
  })

/**
 * Cuts a torn last line (bytes after the last newline) off a file, so that lines
 * appended after it start on a line of their own. Returns whether it cut
 * anything. A file that does not exist is left alone.
 */
export const repairTail = (path: string): Effect.Effect<boolean, FileError> =>
  Effect.flatMap(exists(path), (found) => found ? cutTail(path) : Effect.succeed(false))

const cutTail = (path: string): Effect.Effect<boolean, FileError> =>
  Effect.try({
    try: () => {
      const fd = fs.openSync(path, "r+")
      try {
        const size = fs.fstatSync(fd).size
        if (size === 0) return false
        const buffer = Buffer.allocUnsafe(64 * 1024)
        let end = size
        while (end > 0) {
          const start = Math.max(0, end - buffer.length)
          const n = fs.readSync(fd, buffer, 0, end - start, start)
          const at = buffer.subarray(0, n).lastIndexOf(NEWLINE)
          if (at !== -1) {
            const keep = start + at + 1
            if (keep === size) return false
            fs.ftruncateSync(fd, keep)
            return true
          }
          end = start
        }
        fs.ftruncateSync(fd, 0)
        return true
      } finally {
        fs.closeSync(fd)
      }
    },
    catch: fileError(path, "repair its last line")
  })

/** A file results are appended to, a whole line per write. */
export interface Appender {
  readonly append: (line: string) => void
}

/**
 * Opens `path` for appending (creating it) for the scope's life; each `append`
 * writes the line and its newline with as many `write(2)` calls as it takes
 * (one, for any line a regular file accepts at once). The file is flushed to
 * disk when the scope closes.
 */
export const appender = (path: string) =>
  Effect.acquireRelease(
    Effect.try({
      try: () => fs.openSync(path, "a"),
      catch: fileError(path, "open it for appending")
    }),
    (fd) =>
      Effect.sync(() => {
        try {
          fs.fsyncSync(fd)
        } catch {
          // A file system without fsync (a pipe, /dev/null) has nothing to flush.
        }
        fs.closeSync(fd)
      })
  ).pipe(
    Effect.map((fd): Appender => ({
      append: (line) => {
        const bytes = Buffer.from(`${line}\n`)
        let written = 0
        while (written < bytes.length) written += fs.writeSync(fd, bytes, written, bytes.length - written)
      }
    }))
  )

/**
 * Replaces a file's lines with those `keep` accepts, atomically: written to a
 * file beside it, flushed, then renamed over it, so a crash leaves either the
 * old file or the new one.
 */
export const filter = (
  path: string,
  keep: (text: string) => boolean
): Effect.Effect<number, FileError> =>
  Effect.gen(function*() {
    if (!(yield* exists(path))) return 0
    const temporary = `${path}.${process.pid}.tmp`
    let removed = 0
    yield* Effect.scoped(Effect.gen(function*() {
      const out = yield* appender(temporary)
      yield* Stream.runForEach(read(path), (line) =>
        Effect.sync(() => {
          if (line.text === "" || !keep(line.text)) {
            if (line.text !== "") removed++
            return
          }
          out.append(line.text)
        }))
    })).pipe(Effect.onError(() => Effect.sync(() => fs.rmSync(temporary, { force: true }))))
    yield* Effect.try({ try: () => fs.renameSync(temporary, path), catch: fileError(path, "replace it") })
    return removed
  })
