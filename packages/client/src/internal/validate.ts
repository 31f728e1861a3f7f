/**
 * Where a request is checked before it is sent, and where options are checked
 * when a layer is built.
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import { ChatCompletionRequest } from "../ChatCompletion.js"
import * as InferenceError from "../InferenceError.js"
import * as checks from "./options.js"

// Every issue, not just the first, so that a request with several mistakes is fixed in one go. A request that
// passes costs the same either way.
const decodeRequest = Schema.decodeUnknownEither(ChatCompletionRequest, { onExcessProperty: "error", errors: "all" })
const formatPath = (path: ReadonlyArray<PropertyKey>): string =>
  path.reduce<string>(
    (out, key) => typeof key === "number" ? `${out}[${key}]` : out === "" ? String(key) : `${out}.${String(key)}`,
    ""
  ) || "(request)"

/** Levenshtein distance, for the few field names there are (short strings, so the square table is fine). */
const distance = (a: string, b: string): number => {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j)
  for (let i = 1; i <= a.length; i++) {
    const current = [i]
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min(previous[j]! + 1, current[j - 1]! + 1, previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1))
    }
    previous = current
  }
  return previous[b.length]!
}

/**
 * Schema's "is unexpected, expected: …" for a field the request (or one of its
 * parts) does not have, with what a person should do about it: the field it
 * most likely meant, or, for `stream`, the method to call.
 */
const unexpectedField = (field: string, depth: number, issue: string): string => {
  if (field === "stream" && depth === 1) {
    return "is unexpected: the client sets stream itself, so call streamChatCompletion for a stream " +
      "(chatCompletion asks for one whole answer)"
  }
  const allowed = [...issue.matchAll(/"([^"]+)"/g)].map((m) => m[1]!)
  const closest = allowed.map((name) => [name, distance(field, name)] as const).sort((a, b) => a[1] - b[1])[0]
  return closest !== undefined && closest[1] <= Math.max(2, Math.floor(field.length / 3))
    ? issue.replace(/^is unexpected/, `is unexpected; did you mean "${closest[0]}"?`)
    : issue
}

/** @internal */
export const invalidRequest = (error: ParseResult.ParseError): InferenceError.InvalidRequestError => {
  const formatted = ParseResult.ArrayFormatter.formatErrorSync(error)
  if (formatted.length === 0) return new InferenceError.InvalidRequestError({ path: "(request)", issue: error.message })
  // Issues by path, in order; a union reports one issue per member at the same path, each part of the answer.
  const byPath = new Map<string, { depth: number; top: PropertyKey | undefined; messages: Set<string> }>()
  for (const issue of formatted) {
    const path = formatPath(issue.path)
    const field = issue.path[issue.path.length - 1]
    const message = issue._tag === "Unexpected" && typeof field === "string"
      ? unexpectedField(field, issue.path.length, issue.message)
      : issue.message
    const entry = byPath.get(path) ?? { depth: issue.path.length, top: issue.path[0], messages: new Set<string>() }
    entry.messages.add(message)
    byPath.set(path, entry)
  }
  const groups = [...byPath].map(([path, entry]) => ({ path, ...entry, issue: [...entry.messages].join("; or ") }))
  // The deepest issue of a field names what a person has to fix; shallower issues of the same field (a union's
  // other members) are noise. Other fields' issues come after it.
  const primary = groups.reduce((best, g) => (g.depth > best.depth ? g : best), groups[0]!)
  const others = groups.filter((g) => g !== primary && g.top !== primary.top)
  return new InferenceError.InvalidRequestError({
    path: primary.path,
    issue: primary.issue,
    ...(others.length === 0 ? {} : { moreIssues: others.map((g) => ({ path: g.path, issue: g.issue })) })
  })
}

/**
 * Checks a request without ever throwing: a getter, a `Proxy` or a `toJSON`
 * of the caller's that throws while the request is read is an
 * `InvalidRequestError` like any other bad input.
 *
 * @internal
 */
export const validateRequest = (
  input: unknown
): Either.Either<ChatCompletionRequest, InferenceError.InvalidRequestError> => {
  try {
    return Either.mapLeft(decodeRequest(input), invalidRequest)
  } catch (error) {
    return Either.left(unreadable("(request)", error))
  }
}

/** A value of the caller's that threw while it was read. */
export const unreadable = (path: string, error: unknown): InferenceError.InvalidRequestError =>
  new InferenceError.InvalidRequestError({
    path,
    issue: `could not be read: ${error instanceof Error ? `${error.name}: ${error.message}` : String(error)}`
  })

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
  // A plain copy, made here where a throw is an InvalidRequestError: a getter, a Proxy or a toJSON of the caller's
  // is read once, and what is checked is what is cached and sent.
  let fields: Record<string, unknown>
  try {
    fields = JSON.parse(JSON.stringify(extra))
  } catch (error) {
    return Either.left(
      new InferenceError.InvalidRequestError({
        path: "extraBody",
        issue: `cannot be sent as JSON: ${error instanceof Error ? error.message : String(error)}`
      })
    )
  }
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
 * either, as the options' checks have it (a call's `cache.ttl` is checked with
 * this): the duration, or the issue (`must be a positive, finite duration, got 0`).
 *
 * @internal
 */
export const positiveDuration = (input: unknown, finite: boolean): Either.Either<Duration.Duration, string> =>
  checks.isDuration(input, { finite })
    ? Either.right(Duration.decode(input))
    : Either.left(`must be ${checks.describeDuration({ finite })}, got ${String(input)}`)

/**
 * The checked options, or a defect naming the module and the option: invalid
 * options are a programming error, reported when the layer is built.
 *
 * @internal
 */
export const optionsOrDie = <A>(module: string, checked: Either.Either<A, string>): Effect.Effect<A> =>
  Either.match(checked, { onLeft: (message) => Effect.dieMessage(`${module}: ${message}`), onRight: Effect.succeed })
