/**
 * Where a request is checked before it is sent.
 */
import * as Either from "effect/Either"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import { ChatCompletionRequest } from "../ChatCompletion.js"
import * as InferenceError from "../InferenceError.js"

const decodeRequest = Schema.decodeUnknownEither(ChatCompletionRequest, { onExcessProperty: "error" })
const formatPath = (path: ReadonlyArray<PropertyKey>): string =>
  path.reduce<string>(
    (out, key) => typeof key === "number" ? `${out}[${key}]` : out === "" ? String(key) : `${out}.${String(key)}`,
    ""
  ) || "(request)"

/** @internal */
export const invalidRequest = (error: ParseResult.ParseError): InferenceError.InvalidRequestError => {
  const issues = ParseResult.ArrayFormatter.formatErrorSync(error)
  // The deepest issue names the field a person has to fix; union members add shallower noise.
  const deepest = issues.reduce((best, i) => (i.path.length > best.path.length ? i : best), issues[0])
  if (deepest === undefined) return new InferenceError.InvalidRequestError({ path: "(request)", issue: error.message })
  const path = formatPath(deepest.path)
  // A union reports one issue per member at the same path; each is part of the answer.
  const messages = issues.filter((i) => formatPath(i.path) === path).map((i) => i.message)
  return new InferenceError.InvalidRequestError({ path, issue: [...new Set(messages)].join("; or ") })
}

/** @internal */
export const validateRequest = (
  input: unknown
): Either.Either<ChatCompletionRequest, InferenceError.InvalidRequestError> =>
  Either.mapLeft(decodeRequest(input), invalidRequest)
