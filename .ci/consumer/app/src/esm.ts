/**
 * An ES module application of the packed packages: the simulator from @effect-inference/testing,
 * called through @effect-inference/client over its Node transport. One line per check; exit code 1
 * if any check fails.
 */
import { ChatCompletionChunk, InferenceClient, InferenceError } from "@effect-inference/client"
import * as UndiciHttpClient from "@effect-inference/client/UndiciHttpClient"
import { Fault, InferenceSimulator } from "@effect-inference/testing"
import { Effect, Layer, Stream } from "effect"

const model = "meta-llama/Llama-3.1-8B-Instruct"
const messages = [{ role: "user" as const, content: "Say hello in five words" }]

const check = (ok: boolean, line: string): Effect.Effect<void, string> =>
  ok ? Effect.sync(() => console.log(`esm: ${line}`)) : Effect.fail(line)

const program = Effect.gen(function*() {
  const simulator = yield* InferenceSimulator.InferenceSimulator
  const client = yield* InferenceClient.InferenceClient

  const completion = yield* client.chatCompletion({ model, messages })
  const content = completion.choices[0]?.message.content ?? ""
  yield* check(content.length > 0, `plain call answered ${JSON.stringify(content)}`)

  const chunks = yield* Stream.runCollect(client.streamChatCompletion({ model, messages }))
  const streamed = Array.from(chunks, (chunk) => chunk.choices[0]?.delta.content ?? "").join("")
  yield* check(
    chunks.length > 1 && streamed.length > 0,
    `stream delivered ${chunks.length} chunks: ${JSON.stringify(streamed)}`
  )
  const whole = yield* ChatCompletionChunk.collect(client.streamChatCompletion({ model, messages }))
  yield* check(whole.choices[0]?.finish_reason === "stop", "stream collected into a completion that finished with stop")

  yield* simulator.script(Fault.quotaExceeded)
  const caught = yield* client.chatCompletion({ model, messages }).pipe(
    Effect.as("no error"),
    Effect.catchTag(
      "QuotaExceededError",
      (error) =>
        Effect.succeed(
          `caught ${error._tag} (status ${error.status}, an InferenceError: ${InferenceError.isInferenceError(error)})`
        )
    ),
    Effect.catchAll((error) => Effect.succeed(`wrong error ${error._tag}`))
  )
  yield* check(caught.startsWith("caught QuotaExceededError"), `typed error: ${caught}`)
  const requests = (yield* simulator.log).filter((entry) => entry.path === "/v1/chat/completions").length
  yield* check(requests === 4, `the quota error was not retried (${requests} chat requests in all)`)

  const internal = yield* Effect.promise(() =>
    import("@effect-inference/client/" + "internal/sse").then(
      () => "importable",
      (error: NodeJS.ErrnoException) => error.code
    )
  )
  yield* check(internal === "ERR_PACKAGE_PATH_NOT_EXPORTED", `internal modules are not exported (${internal})`)
})

const TestLive = InferenceSimulator.clientLayer().pipe(
  Layer.provideMerge(InferenceSimulator.layer({ seed: 7 })),
  Layer.provide(UndiciHttpClient.layer)
)

Effect.runPromise(Effect.provide(program, TestLive)).then(
  () => console.log("esm: ok"),
  (error: unknown) => {
    console.error(`esm: FAILED: ${String(error)}`)
    process.exitCode = 1
  }
)
