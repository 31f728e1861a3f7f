/**
 * Where options objects are checked when a layer is built: one `Schema` per
 * options object, made of the checks below, each of which says what a value
 * must be and what it got; `decoder` turns the first issue into one line that
 * names the option (`retry.baseDelay must be a positive duration, got -1`).
 * Options come from code and from config files alike, so every field is checked
 * for its type, its range and its finiteness, and a key no option has (a typo)
 * is refused rather than ignored.
 */
import * as Duration from "effect/Duration"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as ParseResult from "effect/ParseResult"
import * as Predicate from "effect/Predicate"
import * as Schema from "effect/Schema"

/** A value as a message shows it: the value itself for a primitive, its kind otherwise. */
const show = (u: unknown): string =>
  typeof u === "string"
    ? u === "" ? "\"\"" : u
    : typeof u === "function"
    ? "a function"
    : Array.isArray(u)
    ? "an array"
    : u === null
    ? "null"
    : typeof u === "object"
    ? "an object"
    : String(u)

const actualOf = (issue: ParseResult.ParseIssue): unknown => "actual" in issue ? issue.actual : undefined

/**
 * A check of one option's value, whose failure reads "must be `mustBe`, got
 * `value`".
 *
 * @internal
 */
export const check = <A>(is: (u: unknown) => u is A, mustBe: string): Schema.Schema<A> =>
  Schema.declare(is, { message: (issue) => `must be ${mustBe}, got ${show(actualOf(issue))}` })

/** @internal */
export const wholeNumber = (min: number): Schema.Schema<number> =>
  check((u): u is number => Number.isInteger(u) && (u as number) >= min, `a whole number >= ${min}`)

/** @internal */
export const boolean: Schema.Schema<boolean> = check(Predicate.isBoolean, "true or false")

/** @internal */
export const func: Schema.Schema<(...args: ReadonlyArray<never>) => unknown> = check(
  (u): u is (...args: ReadonlyArray<never>) => unknown => typeof u === "function",
  "a function"
)

/** @internal */
export const literal = <const L extends ReadonlyArray<string>>(...values: L): Schema.Schema<L[number]> =>
  check(
    (u): u is L[number] => typeof u === "string" && values.includes(u),
    values.map((v) => `"${v}"`).join(" or ")
  )

/** What a duration must be, in the words of a message. */
export interface DurationBounds {
  readonly finite?: boolean
  readonly orZero?: boolean
}

/**
 * Whether `u` is a duration input (a number of milliseconds, a string such as
 * `"2 seconds"`, a `Duration`) that decodes to more than zero, or to zero or
 * more with `orZero`; with `finite`, not infinite either.
 *
 * @internal
 */
export const isDuration = (u: unknown, bounds: DurationBounds = {}): u is Duration.DurationInput =>
  // A negative number or string decodes to zero: refuse it as given, not as the zero it became.
  !(typeof u === "number" && !(u >= 0)) && !(typeof u === "bigint" && u < 0) &&
  !(typeof u === "string" && u.trim().startsWith("-")) &&
  Option.match(Duration.decodeUnknown(u), {
    onNone: () => false,
    onSome: (d) =>
      (bounds.orZero === true
        ? Duration.greaterThanOrEqualTo(d, Duration.zero)
        : Duration.greaterThan(d, Duration.zero)) &&
      (bounds.finite !== true || Duration.isFinite(d))
  })

/** @internal */
export const describeDuration = (bounds: DurationBounds = {}): string =>
  `a ${bounds.orZero === true ? "non-negative" : "positive"}${bounds.finite === true ? ", finite" : ""} duration`

/** @internal */
export const duration = (bounds: DurationBounds = {}): Schema.Schema<Duration.DurationInput> =>
  check((u): u is Duration.DurationInput => isDuration(u, bounds), describeDuration(bounds))

const formatPath = (path: ReadonlyArray<PropertyKey>): string =>
  path.reduce<string>(
    (out, key) =>
      typeof key === "number"
        ? `${out}[${key}]`
        : out === ""
        ? String(key)
        : `${out}.${String(key)}`,
    ""
  )

/** Issues of a union's `undefined` member (every optional field has one): never what a person must fix. */
const isNoise = (issue: ParseResult.ArrayFormatterIssue): boolean => issue.message.startsWith("Expected undefined")

/**
 * The one line a refusal prints: the deepest issue (a union reports one per
 * member; the deepest is the field to fix), preferring this module's own
 * messages over Schema's generic ones.
 */
const describe = (error: ParseResult.ParseError, what: string): string => {
  const issues = ParseResult.ArrayFormatter.formatErrorSync(error).filter((issue) => !isNoise(issue))
  if (issues.length === 0) return `${what} are invalid`
  const depth = Math.max(...issues.map((issue) => issue.path.length))
  const deepest = issues.filter((issue) => issue.path.length === depth)
  const issue = deepest.find((i) => i._tag === "Unexpected" || i.message.startsWith("must be")) ?? deepest[0]!
  const path = formatPath(issue.path)
  if (path === "") return `${what} must be an object, got ${show(actualOf(error.issue))}`
  switch (issue._tag) {
    case "Unexpected":
      return `${path} is not an option (${issue.message.replace(/^is unexpected, expected: /, "options: ")})`
    case "Missing":
      return `${path} is missing`
    default:
      return `${path} ${issue.message}`
  }
}

/**
 * The options that were given: an option set to `undefined` is left out, so
 * that it takes its default when spread over the defaults.
 *
 * @internal
 */
export const defined = <A extends object>(
  options: A
): { readonly [K in keyof A]?: Exclude<A[K], undefined> } =>
  Object.fromEntries(Object.entries(options).filter(([, value]) => value !== undefined)) as {
    readonly [K in keyof A]?: Exclude<A[K], undefined>
  }

/**
 * A checker of one options object: the checked options, or the line that says
 * which option is wrong and why.
 *
 * @internal
 */
export const decoder = <A, I>(
  schema: Schema.Schema<A, I>,
  what = "options"
): (input: unknown) => Either.Either<A, string> => {
  const decode = Schema.decodeUnknownEither(schema, { onExcessProperty: "error" })
  return (input) => Either.mapLeft(decode(input), (error) => describe(error, what))
}
