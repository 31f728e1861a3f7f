import { InferenceClient } from "@effect-inference/client"
import * as UndiciHttpClient from "@effect-inference/client/UndiciHttpClient"
import { Config, Effect, Layer } from "effect"

export const InferenceLive = Layer.unwrapEffect(
  Effect.map(Config.redacted("WANDB_API_KEY"), (apiKey) =>
    InferenceClient.layer({
      apiKey,
      project: "my-team/my-project", // usage is billed to this W&B project
      timeout: "2 minutes", // per attempt; long generations need more than the 60 s default
      retry: { maxRetries: 5 },
      maxConcurrency: 16
    }))
)

export const program = Effect.gen(function*() {
  const client = yield* InferenceClient.InferenceClient
  const models = yield* client.listModels()
  const completion = yield* client.chatCompletion({
    model: models[0].id,
    messages: [
      { role: "system", content: "You answer in one sentence." },
      { role: "user", content: "What is W&B Inference?" }
    ],
    temperature: 0,
    max_tokens: 100
  })
  return { model: completion.model, answer: completion.choices[0].message.content, usage: completion.usage }
})

// The client needs an HttpClient: the application picks it, at its edge (on Node: undici).
export const main = program.pipe(Effect.provide(InferenceLive), Effect.provide(UndiciHttpClient.layer))
