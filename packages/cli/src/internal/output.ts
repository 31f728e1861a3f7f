/**
 * The place for what a run leaves on disk: the result lines (the OpenAI Batch
 * API's output format), the journal of rows sent, and what an earlier run left
 * there (what to skip, what to try again, what may have been paid twice).
 */
import type { ChatCompletion } from "@effect-inference/client"
import type { InferenceError } from "@effect-inference/client"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import * as crypto from "node:crypto"
import type { FileError } from "./errors.js"
import * as Lines from "./lines.js"

/** An id for a result line, as the Batch API gives each: `batch_req_` and 24 hex digits. */
const lineId = (): string => `batch_req_${crypto.randomBytes(12).toString("hex")}`

/** The line of a row that succeeded. `request_id` is the completion's `id`. */
export const successLine = (customId: string, completion: ChatCompletion.ChatCompletion): string =>
  JSON.stringify({
    id: lineId(),
    custom_id: customId,
    response: { status_code: 200, request_id: completion.id, body: completion },
    error: null
  })

/**
 * The line of a row that failed: `error.code` is the error's tag; `response`
 * holds the HTTP status and the server's error body (its scrubbed fields) when
 * the service answered, else `null`.
 */
export const failureLine = (customId: string, error: InferenceError.InferenceError): string => {
  const fields = error as {
    readonly status?: number | undefined
    readonly serverMessage?: string | undefined
    readonly type?: string | undefined
    readonly code?: string | undefined
    readonly param?: string | undefined
  }
  const response = fields.status === undefined ? null : {
    status_code: fields.status,
    body: {
      error: {
        message: fields.serverMessage ?? null,
        type: fields.type ?? null,
        code: fields.code ?? null,
        param: fields.param ?? null
      }
    }
  }
  return JSON.stringify({
    id: lineId(),
    custom_id: customId,
    response,
    error: { code: error._tag, message: error.message }
  })
}

/**
 * Whether a row that failed with this code (and HTTP status) is tried again by
 * a later run without `--retry-failed`: the failures that may pass another
 * time (the client's retryable errors, a total timeout, an open breaker, an
 * unreachable store). Decided from the line alone, as a resume sees only that.
 */
export const retryableCode = (code: string, status: number | undefined): boolean => {
  switch (code) {
    case "RateLimitError":
    case "InternalServerError":
    case "ServiceUnavailableError":
    case "ConflictError":
    case "ConnectionError":
    case "TimeoutError":
    case "CircuitOpenError":
    case "CoordinationError":
      return true
    case "UnexpectedStatusError":
      return status === 408 || (status !== undefined && status >= 500)
    default:
      return false
  }
}

/** A row an earlier run failed. */
export interface PriorFailure {
  readonly code: string
  readonly retryable: boolean
}

/** What earlier runs left in the output files. */
export interface Prior {
  readonly succeeded: ReadonlySet<string>
  readonly failed: ReadonlyMap<string, PriorFailure>
  /** Rows the journal says were sent but that have no result: in flight when the last run stopped. */
  readonly unfinished: number
  /** Files whose torn last line was cut off. */
  readonly repaired: ReadonlyArray<string>
}

/** The `custom_id` of a result line, or `undefined` for a line that is not one. */
const resultOf = (text: string): { customId: string; code?: string; status?: number } | undefined => {
  try {
    const value = JSON.parse(text) as {
      custom_id?: unknown
      error?: { code?: unknown } | null
      response?: { status_code?: unknown } | null
    }
    if (typeof value !== "object" || value === null || typeof value.custom_id !== "string") return undefined
    const code = typeof value.error?.code === "string" ? value.error.code : undefined
    const status = typeof value.response?.status_code === "number" ? value.response.status_code : undefined
    return {
      customId: value.custom_id,
      ...(code === undefined ? {} : { code }),
      ...(status === undefined ? {} : { status })
    }
  } catch {
    return undefined
  }
}

const eachLine = (path: string, f: (text: string) => void): Effect.Effect<void, FileError> =>
  Effect.flatMap(Lines.exists(path), (exists) =>
    exists
      ? Stream.runForEach(Lines.read(path), (line) =>
        Effect.sync(() => {
          if (!line.tooLong && line.text !== "") f(line.text)
        }))
      : Effect.void)

/**
 * Reads what earlier runs wrote: torn last lines are cut off first (so that
 * appending goes on cleanly), then every result line is read. A row with a
 * success line counts as succeeded even if an error line names it too.
 */
export const readPrior = (
  files: { readonly output: string; readonly errors: string; readonly journal: string }
): Effect.Effect<Prior, FileError> =>
  Effect.gen(function*() {
    const repaired: Array<string> = []
    for (const path of [files.output, files.errors, files.journal]) {
      if (yield* Lines.repairTail(path)) repaired.push(path)
    }
    const succeeded = new Set<string>()
    const failed = new Map<string, PriorFailure>()
    yield* eachLine(files.output, (text) => {
      const result = resultOf(text)
      if (result !== undefined && result.code === undefined) succeeded.add(result.customId)
    })
    yield* eachLine(files.errors, (text) => {
      const result = resultOf(text)
      if (result === undefined || result.code === undefined || succeeded.has(result.customId)) return
      failed.set(result.customId, { code: result.code, retryable: retryableCode(result.code, result.status) })
    })
    let unfinished = 0
    const counted = new Set<string>()
    yield* eachLine(files.journal, (text) => {
      let customId: unknown
      try {
        customId = JSON.parse(text)
      } catch {
        return
      }
      if (typeof customId !== "string" || counted.has(customId)) return
      counted.add(customId)
      if (!succeeded.has(customId) && !failed.has(customId)) unfinished++
    })
    return { succeeded, failed, unfinished, repaired }
  })

/** The `custom_id` of an error line, for dropping the lines of rows tried again. */
export const customIdOf = (text: string): string | undefined => resultOf(text)?.customId
