/**
 * The same application as a CommonJS module: compiled to out/cjs.cjs, whose `require()` loads the
 * ES module packages (Node >= 20.19 and >= 22.12 do). One line per check; exit code 1 if any fails.
 */
import { InferenceClient } from "@effect-inference/client"
import * as UndiciHttpClient from "@effect-inference/client/UndiciHttpClient"
import { Fault, InferenceSimulator } from "@effect-inference/testing"
import { Effect, Layer, Stream } from "effect"

const model = "meta-llama/Llama-3.1-8B-Instruct"
const messages = [{ role: "user" as const, content: "Say hello in five words" }]

const check = (ok: boolean, line: string): Effect.Effect<void, string> =>
  ok ? Effect.sync(() => console.log(`cjs: ${line}`)) : Effect.fail(line)

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

  yield* simulator.script(Fault.quotaExceeded)
  const caught = yield* client.chatCompletion({ model, messages }).pipe(
    Effect.as("no error"),
    Effect.catchTag("QuotaExceededError", (error) => Effect.succeed(`caught ${error._tag} (status ${error.status})`)),
    Effect.catchAll((error) => Effect.succeed(`wrong error ${error._tag}`))
  )
  yield* check(caught.startsWith("caught QuotaExceededError"), `typed error: ${caught}`)

  let internal = "importable"
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports -- what a CommonJS user would write
    require("@effect-inference/client/" + "internal/sse")
  } catch (error) {
    internal = (error as NodeJS.ErrnoException).code ?? String(error)
  }
  yield* check(internal === "ERR_PACKAGE_PATH_NOT_EXPORTED", `internal modules are not exported (${internal})`)
})

const TestLive = InferenceSimulator.clientLayer().pipe(
  Layer.provideMerge(InferenceSimulator.layer({ seed: 7 })),
  Layer.provide(UndiciHttpClient.layer)
)

Effect.runPromise(Effect.provide(program, TestLive)).then(
  () => console.log("cjs: ok"),
  (error: unknown) => {
    console.error(`cjs: FAILED: ${String(error)}`)
    process.exitCode = 1
  }
)
