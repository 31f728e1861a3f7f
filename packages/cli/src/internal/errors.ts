/**
 * The errors of a batch run that are not a row's: a file that cannot be read or
 * written, an input with invalid rows, a failed preflight.
 */
import { InferenceError } from "@effect-inference/client"
import * as Schema from "effect/Schema"

/** A file could not be read, written or replaced. */
export class FileError extends Schema.TaggedError<FileError>("@effect-inference/cli/FileError")("FileError", {
  path: Schema.String,
  message: Schema.String
}) {}

/** A problem with one line of the input. */
export const RowProblem = Schema.Struct({
  line: Schema.Int,
  customId: Schema.optional(Schema.String),
  message: Schema.String
})
export type RowProblem = typeof RowProblem.Type

/** The input has invalid rows, so the run did not start (`skipInvalid` runs the valid ones). */
export class InvalidInputError
  extends Schema.TaggedError<InvalidInputError>("@effect-inference/cli/InvalidInputError")("InvalidInputError", {
    path: Schema.String,
    /** The first problems found, in line order. */
    problems: Schema.Array(RowProblem),
    /** How many problems there are in all. */
    count: Schema.Int
  })
{
  override get message(): string {
    const more = this.count > this.problems.length ? `\n  … and ${this.count - this.problems.length} more` : ""
    return `${this.path}: ${this.count} invalid ${this.count === 1 ? "row" : "rows"}; nothing was sent\n` +
      this.problems.map((problem) => `  line ${problem.line}: ${problem.message}`).join("\n") + more
  }
}

/** The run could not start: the service refused the preflight, or does not offer a model the input names. */
export class PreflightError
  extends Schema.TaggedError<PreflightError>("@effect-inference/cli/PreflightError")("PreflightError", {
    /** The client's error, when the preflight request failed. */
    error: Schema.optional(InferenceError.InferenceError),
    /** Models named in the input that the service does not list. */
    unknownModels: Schema.Array(Schema.String),
    /** Some of the models the service does list, to help with a typo. */
    available: Schema.Array(Schema.String)
  })
{
  override get message(): string {
    if (this.error !== undefined) return `preflight failed: ${this.error.message}`
    const list = this.unknownModels.map((model) => `"${model}"`).join(", ")
    return `preflight failed: the service does not offer ${list}` +
      (this.available.length === 0 ? "" : `; it offers ${this.available.map((m) => `"${m}"`).join(", ")}`)
  }
}

/** Every way a batch run can fail as a whole. */
export type BatchError = FileError | InvalidInputError | PreflightError
