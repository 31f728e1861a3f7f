/**
 * Files for batch tests: a temporary directory per test (removed with its
 * scope), input files of generated rows, and result files read back.
 */
import { assert } from "@effect/vitest"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"

/** The model every generated row names: the simulator offers it and the default prices price it. */
export const MODEL = "meta-llama/Llama-3.1-8B-Instruct"

/** A temporary directory for the scope's life. */
export const tempDir: Effect.Effect<string, never, Scope.Scope> = Effect.acquireRelease(
  Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), "effect-inference-cli-"))),
  (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
)

/**
 * The request line of row `i`: `custom_id` `row-<i>`, and a prompt that starts
 * with the id, so that the simulator's log tells which row a request was for.
 */
export const request = (i: number, body: Record<string, unknown> = {}): Record<string, unknown> => ({
  custom_id: `row-${i}`,
  method: "POST",
  url: "/v1/chat/completions",
  body: {
    model: MODEL,
    messages: [{ role: "user", content: `row-${i}: what is ${i} plus ${i}?` }],
    max_tokens: 64,
    ...body
  }
})

/** Writes lines as they are (the caller decides newlines). */
export const writeText = (file: string, text: string): Effect.Effect<string> =>
  Effect.sync(() => {
    fs.writeFileSync(file, text)
    return file
  })

/** Writes a JSONL file of rows 1 to `n` (see {@link request}); `body` may vary the body by row. */
export const writeRows = (
  file: string,
  n: number,
  body: (i: number) => Record<string, unknown> = () => ({})
): Effect.Effect<string> =>
  writeText(file, Array.from({ length: n }, (_, k) => `${JSON.stringify(request(k + 1, body(k + 1)))}\n`).join(""))

/** The ids `row-1` to `row-<n>`. */
export const ids = (n: number): Array<string> => Array.from({ length: n }, (_, k) => `row-${k + 1}`)

/** A result line as the tests read it. */
export interface ResultLine {
  readonly id: string
  readonly custom_id: string
  readonly response: {
    readonly status_code: number
    readonly request_id?: string
    readonly body: unknown
  } | null
  readonly error: { readonly code: string; readonly message: string } | null
}

/** The lines of a file (none when it does not exist); every line must end with a newline. */
export const readLines = (file: string): Array<string> => {
  if (!fs.existsSync(file)) return []
  const text = fs.readFileSync(file, "utf8")
  if (text === "") return []
  if (!text.endsWith("\n")) assert.fail(`${file} ends with a torn line`)
  return text.slice(0, -1).split("\n")
}

/** The result lines of a file, parsed. */
export const readResults = (file: string): Array<ResultLine> => readLines(file).map((line) => JSON.parse(line))

/** How many times each `custom_id` appears across files. */
export const countIds = (...files: ReadonlyArray<string>): Map<string, number> => {
  const counts = new Map<string, number>()
  for (const file of files) {
    for (const result of readResults(file)) counts.set(result.custom_id, (counts.get(result.custom_id) ?? 0) + 1)
  }
  return counts
}

/** A temporary directory with an input of rows 1 to `n`, and where a run's results and errors go in it. */
export const batchFiles = (n: number) =>
  Effect.gen(function*() {
    const dir = yield* tempDir
    const input = yield* writeRows(path.join(dir, "input.jsonl"), n)
    const output = path.join(dir, "results.jsonl")
    return { dir, input, output, errors: `${output}.errors.jsonl` }
  })
