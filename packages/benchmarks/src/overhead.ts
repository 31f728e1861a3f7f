/**
 * The client's own cost per call, with no network: a transport that answers
 * at once from memory. Prints µs of CPU per call for the client in its default
 * configuration and with each feature off.
 *
 *   tsx src/overhead.ts [calls] [variant]
 */
import { InferenceClient } from "@effect-inference/client"
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import * as Effect from "effect/Effect"
import * as Logger from "effect/Logger"
import * as Redacted from "effect/Redacted"
import { variants } from "./clients.js"

const calls = Number(process.argv[2] ?? 20_000)
/** Only the variants whose name contains this, if given. */
const only = process.argv[3]
const completion = JSON.stringify({
  id: "chatcmpl-1",
  object: "chat.completion",
  created: 1,
  model: "meta-llama/Llama-3.1-8B-Instruct",
  choices: [{ index: 0, message: { role: "assistant", content: "A short answer." }, finish_reason: "stop" }],
  usage: { prompt_tokens: 12, completion_tokens: 4, total_tokens: 16 }
})

const transport = HttpClient.make((request) =>
  Effect.succeed(
    HttpClientResponse.fromWeb(
      request,
      new Response(completion, { status: 200, headers: { "content-type": "application/json" } })
    )
  )
)

const body = {
  model: "meta-llama/Llama-3.1-8B-Instruct",
  messages: [{ role: "user" as const, content: "Say something short about benchmarks." }],
  max_tokens: 20
}

const measure = (options: Partial<InferenceClient.Options>) =>
  Effect.gen(function*() {
    const client = yield* InferenceClient.make({
      apiKey: Redacted.make("bench-key"),
      baseUrl: "http://127.0.0.1:1/v1",
      ...options
    })
    const run = (n: number) =>
      Effect.forEach(Array.from({ length: n }), () => client.chatCompletion(body), { concurrency: 64, discard: true })
    yield* run(2_000)
    const cpu = process.cpuUsage()
    yield* run(calls)
    const used = process.cpuUsage(cpu)
    return (used.user + used.system) / calls
  }).pipe(Effect.provideService(HttpClient.HttpClient, transport))

const baseline = Effect.gen(function*() {
  // The floor for an Effect program: the same answer, parsed, with nothing around it.
  const run = (n: number) =>
    Effect.forEach(
      Array.from({ length: n }),
      () => Effect.promise(() => new Response(completion).text()).pipe(Effect.map((text) => JSON.parse(text))),
      { concurrency: 64, discard: true }
    )
  yield* run(2_000)
  const cpu = process.cpuUsage()
  yield* run(calls)
  const used = process.cpuUsage(cpu)
  return (used.user + used.system) / calls
})

const main = Effect.gen(function*() {
  console.log(`${"Response + JSON.parse".padEnd(24)} ${(yield* baseline).toFixed(1).padStart(7)} µs/call`)
  for (
    const [name, options] of Object.entries(variants).filter(([name]) => only === undefined || name.includes(only))
  ) {
    console.log(`${name.padEnd(24)} ${(yield* measure(options)).toFixed(1).padStart(7)} µs/call`)
  }
}).pipe(Effect.provide(Logger.remove(Logger.defaultLogger)))

Effect.runPromise(main)
