import { InferenceClient } from "@effect-inference/client"
import * as UndiciHttpClient from "@effect-inference/client/UndiciHttpClient"
import { Effect } from "effect"

export const program = Effect.gen(function*() {
  const client = yield* InferenceClient.InferenceClient
  const completion = yield* client.chatCompletion({
    model: "meta-llama/Llama-3.1-8B-Instruct",
    messages: [{ role: "user", content: "Say hello in five words" }]
  })
  return completion.choices[0].message.content
}).pipe(
  Effect.catchTag("QuotaExceededError", () => Effect.succeed("Out of credits: check billing")),
  Effect.provide(InferenceClient.layerConfig()), // reads WANDB_API_KEY, WANDB_PROJECT
  Effect.provide(UndiciHttpClient.layer) // Node; on Bun, Deno, browsers and edge runtimes: FetchHttpClient.layer
)
