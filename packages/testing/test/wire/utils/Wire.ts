/**
 * Wiring and shared expectations of the wire-compatibility tests: a fresh
 * simulator per test, the official `openai` SDK and `@effect/ai-openai` pointed at
 * it with their retries off (so each fault is seen exactly once), and the requests
 * and checks every client's tests use.
 */
import * as OpenAiClient from "@effect/ai-openai/OpenAiClient"
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import { Ajv2020 } from "ajv/dist/2020.js"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as Redacted from "effect/Redacted"
import OpenAI from "openai"
import * as Fault from "../../../src/Fault.js"
import * as InferenceSimulator from "../../../src/InferenceSimulator.js"

export { CATALOGUE } from "../../utils/Simulator.js"

/** A model that does not reason. */
export const PLAIN_MODEL = "meta-llama/Llama-3.1-8B-Instruct"

/** Reasoning models of W&B's catalogue (late 2026): their thinking arrives in `reasoning`. */
export const REASONING_MODELS = ["deepseek-ai/DeepSeek-V4.1-Flash", "openai/gpt-oss-20b"] as const

export const MESSAGES = [{ role: "user" as const, content: "What is the weather in Paris?" }]

/** The one tool of the tool-call tests. */
export const WEATHER_TOOL = {
  type: "function" as const,
  function: {
    name: "get_weather",
    description: "The current weather in a city",
    parameters: {
      type: "object",
      properties: { city: { type: "string" }, unit: { type: "string", enum: ["celsius", "fahrenheit"] } },
      required: ["city"],
      additionalProperties: false
    }
  }
}

/** The JSON schema of the structured-output tests. */
export const WEATHER_SCHEMA = {
  type: "object",
  properties: { city: { type: "string" }, temperature_c: { type: "number" }, sunny: { type: "boolean" } },
  required: ["city", "temperature_c", "sunny"],
  additionalProperties: false
}

export const JSON_SCHEMA_FORMAT = {
  type: "json_schema" as const,
  json_schema: { name: "weather", strict: true, schema: WEATHER_SCHEMA }
}

export const JSON_OBJECT_FORMAT = { type: "json_object" as const }

/**
 * Every fault that answers with an HTTP status, and that status. Each client
 * must see the status itself, whatever class it gives the error.
 */
export const STATUS_FAULTS: ReadonlyArray<readonly [Fault.Fault, number]> = [
  [Fault.badRequest, 400],
  [Fault.unauthorized, 401],
  [Fault.quotaExceeded, 402],
  [Fault.regionNotSupported, 403],
  [Fault.gatewayNotEnabled, 403],
  [Fault.modelNotFound, 404],
  [Fault.unprocessable, 422],
  [Fault.rateLimited(), 429],
  [Fault.rateLimited({ seconds: 1 }), 429],
  [Fault.quotaExceeded429, 429],
  [Fault.personalAccount, 429],
  [Fault.internalError, 500],
  [Fault.badGateway, 502],
  [Fault.overloaded, 503],
  [Fault.gatewayTimeout, 504]
]

/** A fault's name in a test title: its tag and the parameter that tells two of a tag apart. */
export const faultName = (fault: Fault.Fault): string =>
  fault._tag === "RateLimited" && fault.retryAfter?.seconds !== undefined
    ? `RateLimited (Retry-After ${fault.retryAfter.seconds})`
    : fault._tag

/** Runs `effect` with a fresh simulator on 127.0.0.1, a free port, closed when the effect ends. */
export const withSimulator = <A, E, R>(
  effect: Effect.Effect<A, E, R>,
  options: InferenceSimulator.Options = {}
): Effect.Effect<A, E | InferenceSimulator.ListenError, Exclude<R, InferenceSimulator.InferenceSimulator>> =>
  Effect.provide(effect, InferenceSimulator.layer({ host: "127.0.0.1", port: 0, ...options }))

/** Queues faults for the next chat requests of the simulator in context. */
export const script = (...faults: ReadonlyArray<Fault.Fault | "ok">) =>
  Effect.flatMap(InferenceSimulator.InferenceSimulator, (simulator) => simulator.script(...faults))

/** The official SDK, pointed at the simulator in context, with no retries. */
export const openAiSdk = Effect.map(
  InferenceSimulator.InferenceSimulator,
  (simulator) =>
    new OpenAI({ apiKey: Redacted.value(simulator.apiKey), baseURL: simulator.url, maxRetries: 0, timeout: 5_000 })
)

/** A promise of the SDK as an Effect; a rejection is the failure, kept as it is for the assertions. */
export const promise = <A>(f: () => Promise<A>): Effect.Effect<A, unknown> =>
  Effect.tryPromise({ try: f, catch: (error) => error })

/** Reads an SDK stream to its end; the items before a failure are kept beside it. */
export const drain = <A>(f: () => Promise<AsyncIterable<A>>) =>
  Effect.promise(async () => {
    const items: Array<A> = []
    try {
      for await (const item of await f()) items.push(item)
      return { items, error: undefined as unknown }
    } catch (error) {
      return { items, error }
    }
  })

/**
 * `@effect/ai-openai`'s client (its own layer, which retries nothing) pointed at
 * the simulator in context, over `fetch`. Its debug logs of skipped stream events
 * are left out of the report.
 */
export const effectOpenAiLayer: Layer.Layer<OpenAiClient.OpenAiClient, never, InferenceSimulator.InferenceSimulator> =
  Layer.unwrapEffect(
    Effect.map(
      InferenceSimulator.InferenceSimulator,
      (simulator) => OpenAiClient.layer({ apiKey: simulator.apiKey, apiUrl: simulator.url })
    )
  ).pipe(Layer.provide(FetchHttpClient.layer), Layer.provide(Logger.remove(Logger.defaultLogger)))

/** A field the SDKs do not type (`reasoning`, `reasoning_content`), read from the raw object. */
export const untyped = (value: unknown, field: string): unknown =>
  typeof value === "object" && value !== null ? (value as Record<string, unknown>)[field] : undefined

/** The thinking of a message or delta: `reasoning`, or `reasoning_content` as older servers name it. */
export const reasoningOf = (value: unknown): unknown =>
  untyped(value, "reasoning") ?? untyped(value, "reasoning_content")

const ajv = new Ajv2020({ allErrors: true, strict: true })

/**
 * The problems of `value` against a JSON Schema (a tool's parameters, a response
 * format's schema), as text; empty when it conforms.
 */
export const schemaErrors = (schema: Record<string, unknown>, value: unknown): string => {
  const validate = ajv.compile(schema)
  return validate(value) ? "" : ajv.errorsText(validate.errors)
}

/** Parses JSON text; `undefined` when it is not JSON. */
export const parseJson = (text: string | null | undefined): unknown => {
  if (text === null || text === undefined) return undefined
  try {
    return JSON.parse(text)
  } catch {
    return undefined
  }
}

/** A raw answer of the simulator in context to `POST /chat/completions` with `body`, read by `fetch`. */
export const postChat = (body: Record<string, unknown>) =>
  Effect.flatMap(InferenceSimulator.InferenceSimulator, (simulator) =>
    Effect.promise(async () => {
      const response = await fetch(`${simulator.url}/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${Redacted.value(simulator.apiKey)}` },
        body: JSON.stringify(body)
      })
      return {
        status: response.status,
        contentType: response.headers.get("content-type") ?? "",
        text: await response.text()
      }
    }))

/** The events of an SSE body, each as its raw lines (blank-line separated), in order. */
export const sseEvents = (text: string): ReadonlyArray<string> =>
  text.split("\n\n").filter((event) => event.trim() !== "")

/** The JSON payloads of an SSE body's `data:` events, `[DONE]` left out. */
export const sseJson = (text: string): ReadonlyArray<unknown> =>
  sseEvents(text)
    .flatMap((event) => event.split("\n").filter((line) => line.startsWith("data: ")).map((line) => line.slice(6)))
    .filter((data) => data !== "[DONE]")
    .map((data) => JSON.parse(data))
