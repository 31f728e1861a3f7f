/**
 * Driving the simulator with plain `fetch`, as any OpenAI-compatible client drives
 * W&B Inference: the helpers every simulator test shares.
 */
import { assert } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import * as InferenceSimulator from "../../src/InferenceSimulator.js"

export const MODEL = "meta-llama/Llama-3.1-8B-Instruct"
export const MESSAGES = [{ role: "user", content: "Hello" }]

/** W&B's catalogue of late 2026, as the simulator serves it by default. */
export const CATALOGUE: ReadonlyArray<string> = [
  "deepseek-ai/DeepSeek-V4.1-Flash",
  "deepseek-ai/DeepSeek-V4-Flash-0731",
  "deepseek-ai/DeepSeek-V4-Pro-0813",
  "deepseek-ai/DeepSeek-V3.1",
  "google/gemma-4-31B-it",
  "google/gemma-4-26B-A4B-it",
  "moonshotai/Kimi-K2.6",
  "moonshotai/Kimi-K2.7-Code",
  "zai-org/GLM-5.2",
  "MiniMaxAI/MiniMax-M3",
  "openai/gpt-oss-120b",
  "openai/gpt-oss-20b",
  "Qwen/Qwen3.6-35B-A3B",
  "ibm-granite/granite-4.2-8b",
  "nvidia/NVIDIA-Nemotron-3-Ultra-550B-A55B",
  "meta-llama/Llama-3.3-70B-Instruct",
  "meta-llama/Llama-3.1-8B-Instruct"
]

export interface Reply {
  readonly status: number
  readonly contentType: string | null
  readonly text: string
}

export interface Completion {
  readonly id: string
  readonly object: string
  readonly created: number
  readonly model: string
  readonly choices: ReadonlyArray<{
    readonly index: number
    readonly message: {
      readonly role: string
      readonly content: string
      readonly reasoning?: string | null
      readonly refusal?: null
      readonly tool_calls?: ReadonlyArray<
        {
          readonly id: string
          readonly type: string
          readonly function: { readonly name: string; readonly arguments: string }
        }
      >
    }
    readonly finish_reason: string
    readonly logprobs?: null
  }>
  readonly system_fingerprint?: string | null
  readonly usage: {
    readonly prompt_tokens: number
    readonly completion_tokens: number
    readonly total_tokens: number
    readonly prompt_tokens_details?: { readonly cached_tokens: number }
    readonly completion_tokens_details?: { readonly reasoning_tokens: number }
  }
}

export interface Chunk {
  readonly id: string
  readonly object: string
  readonly model: string
  readonly choices: ReadonlyArray<{
    readonly index: number
    readonly delta: {
      readonly role?: string
      readonly content?: string | null
      readonly reasoning?: string
      readonly tool_calls?: ReadonlyArray<{
        readonly index: number
        readonly id?: string
        readonly type?: string
        readonly function: { readonly name?: string; readonly arguments: string }
      }>
    }
    readonly finish_reason: string | null
  }>
  readonly usage?: Completion["usage"] | null
}

/** One server-sent event: its `event:` name (if any) and its `data:` text. */
export interface Event {
  readonly event: string | undefined
  readonly data: string
}

/** Runs `f` against a fresh simulator, closed afterwards. */
export const withSimulator = <A, E>(
  f: (simulator: InferenceSimulator.Service) => Effect.Effect<A, E>,
  options: InferenceSimulator.Options = {}
) => Effect.scoped(Effect.flatMap(InferenceSimulator.make(options), f))

export const request = (
  simulator: InferenceSimulator.Service,
  path: string,
  init: {
    readonly method?: string
    readonly body?: unknown
    readonly key?: string | undefined
    readonly headers?: Readonly<Record<string, string>>
  } = {}
): Effect.Effect<Reply> =>
  Effect.promise(async () => {
    const response = await fetch(`${simulator.url}${path}`, {
      method: init.method ?? (init.body === undefined ? "GET" : "POST"),
      headers: {
        authorization: `Bearer ${init.key ?? Redacted.value(simulator.apiKey)}`,
        "content-type": "application/json",
        ...init.headers
      },
      ...(init.body === undefined ? {} : { body: JSON.stringify(init.body) })
    })
    return { status: response.status, contentType: response.headers.get("content-type"), text: await response.text() }
  })

export const chat = (simulator: InferenceSimulator.Service, body: Record<string, unknown> = {}, key?: string) =>
  request(simulator, "/chat/completions", { body: { model: MODEL, messages: MESSAGES, ...body }, key })

export const completion = (simulator: InferenceSimulator.Service, body: Record<string, unknown> = {}) =>
  Effect.map(chat(simulator, body), (reply) => {
    assert.strictEqual(reply.status, 200, reply.text)
    return JSON.parse(reply.text) as Completion
  })

export const errorMessage = (reply: Reply): unknown =>
  (JSON.parse(reply.text) as { error?: { message?: unknown } }).error?.message

export const events = (text: string): ReadonlyArray<Event> =>
  text.split("\n\n").filter((block) => block.trim() !== "").map((block) => {
    const lines = block.split("\n")
    const event = lines.find((line) => line.startsWith("event: "))?.slice("event: ".length)
    const data = lines.filter((line) => line.startsWith("data: ")).map((line) => line.slice("data: ".length)).join("\n")
    return { event, data }
  })

export const chunks = (all: ReadonlyArray<Event>): ReadonlyArray<Chunk> =>
  all.filter((e) => e.event === undefined && e.data !== "[DONE]").map((e) => JSON.parse(e.data) as Chunk)

export const content = (all: ReadonlyArray<Chunk>): string => all.map((c) => c.choices[0]?.delta.content ?? "").join("")

export const contentChunks = (all: ReadonlyArray<Chunk>): number =>
  all.filter((c) => (c.choices[0]?.delta.content ?? "") !== "").length
