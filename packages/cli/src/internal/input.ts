/**
 * The place where input rows are read and checked: the OpenAI Batch API's
 * request lines, each row's check, the shard a row belongs to, and the first
 * pass over a file (problems, counts and the cost estimate) before anything is sent.
 */
import type { ChatCompletion } from "@effect-inference/client"
import { InferenceClient, UsageTracker } from "@effect-inference/client"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import type { FileError, RowProblem } from "./errors.js"
import * as Lines from "./lines.js"

/** A checked row: its `custom_id`, its request, and where it stands in the file. */
export interface Row {
  readonly customId: string
  readonly body: ChatCompletion.ChatCompletionRequest
  readonly line: number
}

/** The `url`s a row may name: the chat completions endpoint, with or without the `/v1` prefix. */
export const URLS: ReadonlyArray<string> = ["/v1/chat/completions", "/chat/completions"]

/** The most characters of a `custom_id`: OpenAI's batch files keep theirs short, and every id is kept in memory. */
export const MAX_CUSTOM_ID = 512

const describe = (value: unknown): string => value === null ? "null" : Array.isArray(value) ? "an array" : typeof value

/** Checks one line: a row, a problem, or nothing for a blank line. */
export const parse = (line: Lines.Line): Either.Either<Row, RowProblem> | undefined => {
  const problem = (message: string, customId?: string): Either.Either<Row, RowProblem> =>
    Either.left(customId === undefined ? { line: line.number, message } : { line: line.number, customId, message })
  if (line.tooLong) return problem(`longer than ${Lines.MAX_LINE_BYTES} bytes`)
  if (line.text.trim() === "") return undefined
  let value: unknown
  try {
    value = JSON.parse(line.text)
  } catch (error) {
    return problem(`not valid JSON (${(error as Error).message})`)
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return problem(`a row must be a JSON object, not ${describe(value)}`)
  }
  const row = value as Record<string, unknown>
  const customId = row.custom_id
  if (typeof customId !== "string" || customId === "") return problem("custom_id must be a non-empty string")
  if (customId.length > MAX_CUSTOM_ID) return problem(`custom_id is longer than ${MAX_CUSTOM_ID} characters`)
  if (row.method !== undefined && row.method !== "POST") {
    return problem(`method must be "POST", not ${JSON.stringify(row.method)}`, customId)
  }
  if (typeof row.url !== "string" || !URLS.includes(row.url)) {
    return problem(`url must be one of ${URLS.map((url) => `"${url}"`).join(", ")}`, customId)
  }
  if (typeof row.body !== "object" || row.body === null || Array.isArray(row.body)) {
    return problem(`body must be a chat completion request object, not ${describe(row.body)}`, customId)
  }
  const checked = Effect.runSync(Effect.either(InferenceClient.validateRequest(row.body)))
  if (Either.isLeft(checked)) return problem(`body: ${checked.left.message}`, customId)
  return Either.right({ customId, body: checked.right, line: line.number })
}

/** A shard of a file: rows whose `custom_id` hashes to `index` (1-based) of `count`. */
export interface Shard {
  readonly index: number
  readonly count: number
}

/**
 * FNV-1a (32 bits) of a `custom_id`'s UTF-8 bytes: the same shard for the same
 * id on every machine and Node version. A few lines, so written here rather than
 * taken from a package: the shard only needs an even, stable spread.
 */
export const hash = (customId: string): number => {
  let h = 0x811c9dc5
  for (const byte of Buffer.from(customId, "utf8")) {
    h ^= byte
    h = Math.imul(h, 0x01000193) >>> 0
  }
  return h
}

/** Whether a row belongs to the shard (every row does without one). */
export const inShard = (customId: string, shard: Shard | undefined): boolean =>
  shard === undefined || shard.count === 1 || hash(customId) % shard.count === shard.index - 1

/** The estimate of the rows of one model (see `UsageTracker.estimate`). */
export interface ModelEstimate {
  readonly model: string
  readonly rows: number
  readonly promptTokens: number
  readonly completionTokens: number
  /** `undefined` when the model has no price. */
  readonly usd: { readonly min: number; readonly max: number } | undefined
}

/** What the first pass found. */
export interface Scan {
  /** Rows in the file (valid or not, blank lines left out). */
  readonly rows: number
  /** Valid rows in this shard. */
  readonly inShard: number
  /** The first problems, in line order (at most `MAX_PROBLEMS`). */
  readonly problems: ReadonlyArray<RowProblem>
  readonly problemCount: number
  /** Lines that are invalid, or whose `custom_id` an earlier line has: left out of a run with `skipInvalid`. */
  readonly skipLines: ReadonlySet<number>
  /** The rows of this shard by model, in the order the models first appear. */
  readonly models: ReadonlyArray<ModelEstimate>
}

/** Adds up the estimates of rows, model by model, in the order the models first appear. */
export const estimates = (prices: UsageTracker.Options["prices"]) => {
  const models = new Map<string, {
    model: string
    rows: number
    promptTokens: number
    completionTokens: number
    usd: { min: number; max: number } | undefined
  }>()
  return {
    add: (body: ChatCompletion.ChatCompletionRequestInput): void => {
      const estimate = UsageTracker.estimate(body, prices)
      let entry = models.get(estimate.model)
      if (entry === undefined) {
        entry = { model: estimate.model, rows: 0, promptTokens: 0, completionTokens: 0, usd: { min: 0, max: 0 } }
        models.set(estimate.model, entry)
      }
      entry.rows++
      entry.promptTokens += estimate.promptTokens
      entry.completionTokens += estimate.completionTokens
      if (estimate.usd === undefined) entry.usd = undefined
      else if (entry.usd !== undefined) {
        entry.usd.min += estimate.usd.min
        entry.usd.max += estimate.usd.max
      }
    },
    result: (): ReadonlyArray<ModelEstimate> => [...models.values()]
  }
}

/** Problems kept for the report; the rest are counted. */
export const MAX_PROBLEMS = 50

/**
 * Reads the whole file once: checks every row (a duplicate `custom_id` anywhere
 * in the file is a problem, whatever the shard) and adds up the estimate of the
 * rows in the shard. Memory: the `custom_id`s seen, and one line.
 */
export const scan = (
  path: string,
  options: { readonly shard?: Shard | undefined; readonly prices?: UsageTracker.Options["prices"] }
): Effect.Effect<Scan, FileError> =>
  Effect.suspend(() => {
    const seen = new Map<string, number>()
    const problems: Array<RowProblem> = []
    const skipLines = new Set<number>()
    let problemCount = 0
    let rows = 0
    let inShardCount = 0
    const models = estimates(options.prices)
    const report = (problem: RowProblem) => {
      problemCount++
      if (problems.length < MAX_PROBLEMS) problems.push(problem)
    }
    return Stream.runForEach(Lines.read(path), (line) =>
      Effect.sync(() => {
        const parsed = parse(line)
        if (parsed === undefined) return
        rows++
        if (Either.isLeft(parsed)) {
          skipLines.add(line.number)
          return report(parsed.left)
        }
        const row = parsed.right
        const first = seen.get(row.customId)
        if (first !== undefined) {
          skipLines.add(line.number)
          return report({
            line: line.number,
            customId: row.customId,
            message: `custom_id "${row.customId}" is also on line ${first}`
          })
        }
        seen.set(row.customId, line.number)
        if (!inShard(row.customId, options.shard)) return
        inShardCount++
        models.add(row.body)
      })).pipe(
        Effect.map((): Scan => ({
          rows,
          inShard: inShardCount,
          problems,
          problemCount,
          skipLines,
          models: models.result()
        }))
      )
  })

/**
 * The valid rows of the file in this shard that `wanted` accepts, in file order,
 * read again from the file. The first pass has checked them, so a row is only
 * parsed here (the client checks its body again before sending it, so a file
 * changed since is still refused row by row); `skipLines` are the lines the
 * first pass found invalid or repeated.
 */
export const rows = (
  path: string,
  shard: Shard | undefined,
  skipLines: ReadonlySet<number>,
  wanted: (customId: string) => boolean
): Stream.Stream<Row, FileError> =>
  Stream.filterMap(Lines.read(path), (line) => {
    if (line.tooLong || skipLines.has(line.number) || line.text.trim() === "") return Option.none()
    let value: { readonly custom_id?: unknown; readonly body?: unknown }
    try {
      value = JSON.parse(line.text)
    } catch {
      return Option.none()
    }
    const customId = value?.custom_id
    if (typeof customId !== "string" || typeof value.body !== "object" || value.body === null) return Option.none()
    return inShard(customId, shard) && wanted(customId)
      ? Option.some({ customId, body: value.body as ChatCompletion.ChatCompletionRequest, line: line.number })
      : Option.none()
  })
