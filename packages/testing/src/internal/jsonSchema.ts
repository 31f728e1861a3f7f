/**
 * A value that satisfies a JSON schema: what the simulator answers for
 * `response_format: json_schema` and for a tool call's `arguments`.
 *
 * Written here rather than taken from a package: the simulator needs one small,
 * deterministic instance per schema (the same seed gives the same value, so a
 * streamed and a plain answer agree), and the widely used generators are either
 * random by design (json-schema-faker, which also pulls in faker data) or made
 * to illustrate OpenAPI documents (openapi-sampler), where a placeholder need
 * not satisfy `minimum`, `multipleOf` or `exclusiveMaximum`. What the simulator
 * meets is the simple schemas of tools and structured output: objects, strings,
 * numbers, integers, booleans, arrays, enums, `const`, `required`, nesting,
 * `anyOf`/`oneOf`/`allOf` and local `$ref`s, which this covers in a page.
 */

/** @internal */
export type Json = null | boolean | number | string | ReadonlyArray<Json> | { readonly [key: string]: Json }

type Schema = Readonly<Record<string, unknown>>

interface Context {
  readonly root: unknown
  readonly random: () => number
  readonly depth: number
  readonly words: ReadonlyArray<string>
}

/** Nesting below which optional properties and one array item are filled in. */
const SHALLOW = 6

const isRecord = (u: unknown): u is Schema => typeof u === "object" && u !== null && !Array.isArray(u)

const numberOr = (u: unknown, fallback: number | undefined): number | undefined =>
  typeof u === "number" && Number.isFinite(u) ? u : fallback

/** Resolves a local `$ref` (`#/$defs/Name`, `#/definitions/Name`, `#/properties/a`). */
const resolve = (root: unknown, ref: string): unknown => {
  if (!ref.startsWith("#")) return undefined
  let node: unknown = root
  for (const raw of ref.slice(1).split("/").filter((part) => part !== "")) {
    const part = decodeURIComponent(raw).replace(/~1/g, "/").replace(/~0/g, "~")
    node = isRecord(node) ? node[part] : Array.isArray(node) ? node[Number(part)] : undefined
  }
  return node
}

/** `allOf` merged into one schema: properties and `required` joined, the first word on everything else. */
const mergeAll = (schema: Schema, parts: ReadonlyArray<unknown>, ctx: Context): Schema => {
  const merged: Record<string, unknown> = { ...schema }
  delete merged.allOf
  const properties: Record<string, unknown> = isRecord(schema.properties) ? { ...schema.properties } : {}
  const required = new Set<string>(Array.isArray(schema.required) ? schema.required.map(String) : [])
  for (const raw of parts) {
    const part = isRecord(raw) && typeof raw.$ref === "string" ? resolve(ctx.root, raw.$ref) : raw
    if (!isRecord(part)) continue
    for (const [key, value] of Object.entries(part)) {
      if (key === "properties" && isRecord(value)) Object.assign(properties, value)
      else if (key === "required" && Array.isArray(value)) value.forEach((name) => required.add(String(name)))
      else if (!(key in merged)) merged[key] = value
    }
  }
  if (Object.keys(properties).length > 0) merged.properties = properties
  if (required.size > 0) merged.required = [...required]
  return merged
}

const typeOf = (schema: Schema): string | undefined => {
  const type = schema.type
  if (typeof type === "string") return type
  if (Array.isArray(type)) {
    const concrete = type.find((t) => t !== "null")
    return typeof concrete === "string" ? concrete : type.includes("null") ? "null" : undefined
  }
  if (isRecord(schema.properties) || schema.required !== undefined) return "object"
  if (schema.items !== undefined || schema.prefixItems !== undefined) return "array"
  if (schema.minimum !== undefined || schema.maximum !== undefined) return "number"
  return undefined
}

const FORMATS: Readonly<Record<string, string>> = {
  "date-time": "2026-01-01T00:00:00Z",
  date: "2026-01-01",
  time: "00:00:00Z",
  email: "user@example.com",
  uri: "https://example.com/",
  url: "https://example.com/",
  hostname: "example.com",
  ipv4: "192.0.2.1",
  ipv6: "2001:db8::1",
  uuid: "00000000-0000-4000-8000-000000000000",
  duration: "PT1S"
}

const stringOf = (schema: Schema, ctx: Context): string => {
  const min = Math.max(0, numberOr(schema.minLength, 0)!)
  const max = numberOr(schema.maxLength, undefined)
  const format = typeof schema.format === "string" ? FORMATS[schema.format] : undefined
  let text = format ?? ctx.words[Math.floor(ctx.random() * ctx.words.length)]!
  while (text.length < min) text += ` ${ctx.words[Math.floor(ctx.random() * ctx.words.length)]!}`
  return max === undefined ? text : text.slice(0, Math.max(min, max))
}

const numberOf = (schema: Schema, integer: boolean, ctx: Context): number => {
  // Draft 4 writes exclusive bounds as booleans beside minimum/maximum; later drafts as numbers.
  const exclusiveMin = typeof schema.exclusiveMinimum === "number" ? schema.exclusiveMinimum : undefined
  const exclusiveMax = typeof schema.exclusiveMaximum === "number" ? schema.exclusiveMaximum : undefined
  const minimum = numberOr(schema.minimum, undefined)
  const maximum = numberOr(schema.maximum, undefined)
  const step = numberOr(schema.multipleOf, undefined) ?? (integer ? 1 : undefined)
  const above = (x: number, bound: number | undefined, strict: boolean) =>
    bound === undefined || (strict ? x > bound : x >= bound)
  const below = (x: number, bound: number | undefined, strict: boolean) =>
    bound === undefined || (strict ? x < bound : x <= bound)
  const fits = (x: number) =>
    above(x, minimum, schema.exclusiveMinimum === true) && above(x, exclusiveMin, true) &&
    below(x, maximum, schema.exclusiveMaximum === true) && below(x, exclusiveMax, true)
  const low = Math.max(minimum ?? -Infinity, exclusiveMin ?? -Infinity)
  const high = Math.min(maximum ?? Infinity, exclusiveMax ?? Infinity)
  const from = Number.isFinite(low) ? low : Number.isFinite(high) ? Math.min(0, high - 100) : 0
  const to = Number.isFinite(high) ? high : from + 100
  const raw = from + ctx.random() * (to - from)
  const candidates = step === undefined
    ? [Math.round(raw * 100) / 100, (from + to) / 2]
    : [Math.round(raw / step) * step, Math.ceil(from / step) * step, Math.ceil(from / step) * step + step]
  const value = candidates.find(fits) ?? from
  return integer ? Math.round(value) : value
}

const valueOf = (raw: unknown, ctx: Context): Json => {
  // Past this depth a recursive schema ends in null rather than recursing forever.
  if (ctx.depth > 32) return null
  if (!isRecord(raw)) return stringOf({}, ctx)
  const deeper: Context = { ...ctx, depth: ctx.depth + 1 }
  if (typeof raw.$ref === "string") return valueOf(resolve(ctx.root, raw.$ref), deeper)
  if ("const" in raw) return raw.const as Json
  if (Array.isArray(raw.enum) && raw.enum.length > 0) {
    return raw.enum[Math.floor(ctx.random() * raw.enum.length)] as Json
  }
  if (Array.isArray(raw.allOf)) return valueOf(mergeAll(raw, raw.allOf, ctx), deeper)
  const options = Array.isArray(raw.anyOf) ? raw.anyOf : Array.isArray(raw.oneOf) ? raw.oneOf : undefined
  if (options !== undefined && options.length > 0) {
    // The first option that is not `null`: a nullable field gets a value, which tells a test more.
    const option = options.find((o) => !(isRecord(o) && o.type === "null")) ?? options[0]
    return valueOf(option, deeper)
  }
  if (typeof raw.default !== "undefined" && typeOf(raw) === undefined) return raw.default as Json
  switch (typeOf(raw)) {
    case "null":
      return null
    case "boolean":
      return ctx.random() < 0.5
    case "integer":
      return numberOf(raw, true, ctx)
    case "number":
      return numberOf(raw, false, ctx)
    case "array": {
      if (Array.isArray(raw.prefixItems) || Array.isArray(raw.items)) {
        const tuple = (Array.isArray(raw.prefixItems) ? raw.prefixItems : raw.items) as ReadonlyArray<unknown>
        return tuple.map((item) => valueOf(item, deeper))
      }
      const min = Math.max(0, numberOr(raw.minItems, 0)!)
      const max = numberOr(raw.maxItems, undefined)
      // One item where none is required shows the item's shape; deep down, none, so recursion ends.
      const wanted = ctx.depth < SHALLOW ? Math.max(min, 1) : min
      const length = max === undefined ? wanted : Math.min(wanted, max)
      const items: Array<Json> = []
      for (let attempt = 0; items.length < length && attempt < length * 8; attempt++) {
        const item = valueOf(raw.items ?? {}, deeper)
        if (raw.uniqueItems === true && items.some((x) => JSON.stringify(x) === JSON.stringify(item))) continue
        items.push(item)
      }
      return items
    }
    case "object": {
      const properties = isRecord(raw.properties) ? raw.properties : {}
      const out: Record<string, Json> = {}
      const required = new Set(Array.isArray(raw.required) ? raw.required.map(String) : [])
      for (const [name, property] of Object.entries(properties)) {
        // Every property near the top; deep down only the required ones, so a recursive schema ends.
        if (ctx.depth < SHALLOW || required.has(name)) out[name] = valueOf(property, deeper)
      }
      // A required name the schema does not describe still gets a value.
      if (Array.isArray(raw.required)) {
        for (const name of raw.required) if (!(String(name) in out)) out[String(name)] = stringOf({}, ctx)
      }
      return out
    }
    default:
      return stringOf(raw, ctx)
  }
}

/**
 * A value satisfying `schema`, the same for the same `random` sequence. Strings are
 * drawn from `words`, numbers from within their bounds; every declared property is present near the top, only the required ones deeper.
 *
 * @internal
 */
export const instance = (schema: unknown, random: () => number, words: ReadonlyArray<string>): Json =>
  valueOf(schema, { root: schema, random, depth: 0, words })
