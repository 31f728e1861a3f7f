/**
 * Where a request is checked before it is sent, and where options are checked
 * when a layer is built.
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
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

/** The fields `extraBody` may not set, and why: the request holds them, or the client sets them itself. */
const RESERVED_EXTRA_FIELDS: Readonly<Record<string, string>> = {
  model: "model is a field of the request itself: set it there (fallback models go in the client's options)",
  messages: "messages is a field of the request itself: set it there",
  stream: "the client sets stream itself: call streamChatCompletion for a stream, chatCompletion for one answer"
}

const kindOf = (u: unknown): string => u === null ? "null" : Array.isArray(u) ? "an array" : typeof u

/**
 * A call's `extraBody`: fields the client sends as they are, beside the checked
 * request, for parameters its schema does not know yet (as the OpenAI SDKs'
 * `extra_body`). It must be a plain object, and it cannot set `model`,
 * `messages` or `stream`, which would send a different request than the one
 * checked (and priced, and cached). `undefined` is no extra fields.
 *
 * @internal
 */
export const extraBody = (
  extra: unknown
): Either.Either<Record<string, unknown> | undefined, InferenceError.InvalidRequestError> => {
  if (extra === undefined) return Either.right(undefined)
  if (typeof extra !== "object" || extra === null || Array.isArray(extra)) {
    return Either.left(
      new InferenceError.InvalidRequestError({
        path: "extraBody",
        issue: `extraBody must be an object of extra body fields, got ${kindOf(extra)}`
      })
    )
  }
  const fields = extra as Record<string, unknown>
  for (const key of Object.keys(RESERVED_EXTRA_FIELDS)) {
    if (Object.hasOwn(fields, key)) {
      return Either.left(
        new InferenceError.InvalidRequestError({
          path: `extraBody.${key}`,
          issue: `extraBody cannot set ${key}: ${RESERVED_EXTRA_FIELDS[key]}`
        })
      )
    }
  }
  return Either.right(fields)
}

/**
 * A duration input that decodes to more than zero; with `finite`, not infinite
 * either. Every option that takes a duration is checked with this; the message
 * names the option when `name` is given (`timeout must be a positive duration,
 * got 0`), and is the bare issue otherwise.
 *
 * @internal
 */
export const positiveDuration = (
  input: unknown,
  finite: boolean,
  name?: string
): Either.Either<Duration.Duration, string> =>
  Either.fromOption(
    Option.filter(
      Duration.decodeUnknown(input),
      (d) => Duration.greaterThan(d, Duration.zero) && (!finite || Duration.isFinite(d))
    ),
    () =>
      `${name === undefined ? "" : `${name} `}must be a positive${finite ? ", finite" : ""} duration, got ${
        String(input)
      }`
  )

/**
 * The checked options, or a defect naming the module and the option: invalid
 * options are a programming error, reported when the layer is built.
 *
 * @internal
 */
export const optionsOrDie = <A>(module: string, checked: Either.Either<A, string>): Effect.Effect<A> =>
  Either.match(checked, { onLeft: (message) => Effect.dieMessage(`${module}: ${message}`), onRight: Effect.succeed })
