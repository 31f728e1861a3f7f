/**
 * The client's own cost per call, with no network: a transport that answers
 * at once from memory. Prints µs of CPU per call for the client in its default
 * configuration and with each feature off, as the median of interleaved rounds
 * in one process (separate processes on a small shared machine vary by ±30%).
 *
 *   tsx src/overhead.ts [calls] [rounds] [variant ...]
 */
import { InferenceClient } from "@effect-inference/client"
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import * as Effect from "effect/Effect"
import * as Logger from "effect/Logger"
import * as Redacted from "effect/Redacted"
import { variants } from "./clients.js"
import { completionJson, measureRounds, printRounds, realCompletionJson } from "./measure.js"

const calls = Number(process.argv[2] ?? 10_000)
const rounds = Number(process.argv[3] ?? 5)
/** Only these variants, if given. */
const only = process.argv.slice(4)

/** Answers from memory, with no wrapper of `HttpClient.make` around it: the client's own cost is what remains. */
// With the Content-Length a server sends with a JSON answer, as every OpenAI-compatible server does: the client
// reads a body of a stated length within its bound in one go. The last row answers without one (chunked, or
// compressed by a proxy), which the client reads in counted pieces.
const answering = (json: string, contentLength = true) =>
  HttpClient.makeWith<never, never, never, never>(
    (request) =>
      Effect.map(request, (request) =>
        HttpClientResponse.fromWeb(
          request,
          new Response(json, {
            status: 200,
            headers: contentLength
              ? { "content-type": "application/json", "content-length": String(Buffer.byteLength(json)) }
              : { "content-type": "application/json" }
          })
        )),
    Effect.succeed
  )
const transport = answering(completionJson)

const body = {
  model: "meta-llama/Llama-3.1-8B-Instruct",
  messages: [{ role: "user" as const, content: "Say something short about benchmarks." }],
  max_tokens: 20
}

const configurations: Record<string, Partial<InferenceClient.Options>> = {
  ...variants,
  "usage log off": { usage: { logLevel: "None" } }
}

const main = Effect.gen(function*() {
  const effects: Record<string, Effect.Effect<unknown, unknown>> = {
    // The floor for an Effect program: the same answer, parsed, with nothing around it.
    "Response + JSON.parse": Effect.map(Effect.promise(() => new Response(completionJson).text()), JSON.parse)
  }
  for (const [name, options] of Object.entries(configurations)) {
    if (only.length > 0 && !only.includes(name)) continue
    const client = yield* InferenceClient.make({
      apiKey: Redacted.make("bench-key"),
      baseUrl: "http://127.0.0.1:1/v1",
      ...options
    })
    effects[name] = client.chatCompletion(body)
  }
  if (only.length === 0 || only.includes("default, real answer shape")) {
    // The default client, answered in the shape real servers send (token details, nulls): it must stay on the
    // direct decoder, not fall back to the general Schema decoder.
    const client = yield* InferenceClient.make({ apiKey: Redacted.make("bench-key"), baseUrl: "http://127.0.0.1:1/v1" })
      .pipe(Effect.provideService(HttpClient.HttpClient, answering(realCompletionJson)))
    effects["default, real answer shape"] = client.chatCompletion(body)
  }
  if (only.length === 0 || only.includes("default, no Content-Length")) {
    const client = yield* InferenceClient.make({ apiKey: Redacted.make("bench-key"), baseUrl: "http://127.0.0.1:1/v1" })
      .pipe(Effect.provideService(HttpClient.HttpClient, answering(completionJson, false)))
    effects["default, no Content-Length"] = client.chatCompletion(body)
  }
  printRounds(yield* measureRounds(effects, { calls, rounds }))
}).pipe(
  Effect.provideService(HttpClient.HttpClient, transport),
  Effect.provide(Logger.remove(Logger.defaultLogger))
)

Effect.runPromise(main)
