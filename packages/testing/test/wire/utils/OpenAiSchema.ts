/**
 * Validators against OpenAI's published schemas of `POST /chat/completions` (the
 * fixture beside these tests says which commit and version of
 * `openai/openai-openapi` they come from): the request body, the answer, each
 * chunk of a streamed answer, and the error body.
 *
 * Two checks of a request body:
 * - `openAi`: the published schema as it is. It does not close the set of fields
 *   (no `additionalProperties: false` on the request), so W&B's extra parameters
 *   pass it, and so would a misspelt field.
 * - `openAiWithWandbExtras`: the published schema plus exactly the extra
 *   parameters W&B Inference documents, with their documented types, and no other
 *   field (`unevaluatedProperties: false`, which sees the fields the published
 *   schema evaluates through its `allOf` and `$ref`s). A misspelt or invented
 *   field fails it.
 */
import addFormatsModule from "ajv-formats"
import type { FormatsPlugin } from "ajv-formats"
import { Ajv2020 } from "ajv/dist/2020.js"
import type { AnySchemaObject, ValidateFunction } from "ajv/dist/2020.js"
import * as fs from "node:fs"

// ajv-formats is CommonJS with `exports.default`: Node's ESM loader gives the plugin, TypeScript's NodeNext the module
const addFormats: FormatsPlugin =
  ((plugin: FormatsPlugin | { readonly default: FormatsPlugin }) =>
    typeof plugin === "function" ? plugin : plugin.default)(addFormatsModule as unknown as FormatsPlugin)

export const FIXTURE_URL = new URL("../fixtures/openai-chat-completions.schema.json", import.meta.url)

/** The fixture as it is stored: the published schemas and the components they reference. */
export const fixture: AnySchemaObject = JSON.parse(fs.readFileSync(FIXTURE_URL, "utf8"))

/** Where the fixture comes from (repository, file, commit, version). */
export const source = fixture["x-source"] as {
  readonly repository: string
  readonly file: string
  readonly commit: string
  readonly version: string
  readonly openapi: string
  readonly schemas: ReadonlyArray<string>
}

/**
 * W&B Inference's documented request parameters that OpenAI's schema does not
 * have, with the types W&B's docs give them. Nothing else is let in.
 */
export const WANDB_EXTRAS: Readonly<Record<string, AnySchemaObject>> = {
  top_k: { type: "integer" },
  min_p: { type: "number", minimum: 0, maximum: 1 },
  repetition_penalty: { type: "number", exclusiveMinimum: 0 },
  chat_template_kwargs: { type: "object" },
  cache_salt: { type: "string", minLength: 1 }
}

/**
 * OpenAPI 3.0's `nullable: true` (the document still uses it, although it
 * declares OpenAPI 3.1) as JSON Schema: "or null". Ajv supports `nullable` only
 * beside a `type`, and the document has it beside `oneOf` too (`StopConfiguration`,
 * `prediction`), so it is rewritten as `anyOf: [{type: "null"}, schema]` everywhere.
 * Field names inside `properties` are data, not keywords, and stay.
 */
const nullableAsAnyOf = (json: unknown, inProperties = false): unknown => {
  if (Array.isArray(json)) return json.map((item) => nullableAsAnyOf(item))
  if (typeof json !== "object" || json === null) return json
  const schema = json as Record<string, unknown>
  const rest = Object.fromEntries(
    Object.entries(schema)
      .filter(([key]) => inProperties || key !== "nullable")
      .map(([key, value]) => [key, nullableAsAnyOf(value, !inProperties && key === "properties")])
  )
  return !inProperties && schema.nullable === true ? { anyOf: [{ type: "null" }, rest] } : rest
}

const makeAjv = () => {
  // strictTypes is off because the published schema puts `discriminator` beside `oneOf` without `type: "object"`
  const ajv = new Ajv2020({ allErrors: true, strict: true, strictTypes: false, discriminator: true })
  addFormats(ajv)
  // OpenAI's own format for `created` and the like: seconds since the epoch
  ajv.addFormat("unixtime", { type: "number", validate: (n: number) => Number.isInteger(n) && n >= 0 })
  // the fixture's own fields, and the OpenAPI annotations the published schema keeps
  ajv.addVocabulary(["x-source", "components", "x-stainless-const"])
  ajv.addSchema(nullableAsAnyOf(fixture) as AnySchemaObject, "openai")
  return ajv
}

const ajv = makeAjv()

const component = (name: string): ValidateFunction => ajv.compile({ $ref: `openai#/components/schemas/${name}` })

/** OpenAI's published `CreateChatCompletionRequest`, as it is. */
export const openAi: ValidateFunction = component("CreateChatCompletionRequest")

/** OpenAI's published `CreateChatCompletionRequest` plus exactly W&B's documented extras, and no other field. */
export const openAiWithWandbExtras: ValidateFunction = ajv.compile({
  $ref: "openai#/components/schemas/CreateChatCompletionRequest",
  properties: WANDB_EXTRAS,
  unevaluatedProperties: false
})

/** OpenAI's published `CreateChatCompletionResponse`: a whole answer. */
export const openAiResponse: ValidateFunction = component("CreateChatCompletionResponse")

/** OpenAI's published `CreateChatCompletionStreamResponse`: one chunk of a streamed answer. */
export const openAiChunk: ValidateFunction = component("CreateChatCompletionStreamResponse")

/** OpenAI's published `ErrorResponse`: `{"error": {"message", "type", "param", "code"}}`. */
export const openAiError: ValidateFunction = component("ErrorResponse")

/** The problems of `body` for `validate`, one per line; empty when it conforms. */
export const problems = (validate: ValidateFunction, body: unknown): string =>
  validate(body) ? "" : ajv.errorsText(validate.errors, { separator: "\n" })

/** The top-level fields of the published request schema (through its `allOf` and `$ref`s). */
export const openAiFields = (): ReadonlyArray<string> => {
  const schemas = (fixture.components as { schemas: Record<string, AnySchemaObject> }).schemas
  const fields = new Set<string>()
  const visit = (schema: AnySchemaObject): void => {
    if (typeof schema.$ref === "string") visit(schemas[schema.$ref.replace("#/components/schemas/", "")]!)
    for (const part of (schema.allOf ?? []) as Array<AnySchemaObject>) visit(part)
    for (const name of Object.keys(schema.properties ?? {})) fields.add(name)
  }
  visit(schemas.CreateChatCompletionRequest!)
  return [...fields].sort()
}
