import { InferenceClient } from "@effect-inference/client"
import * as UndiciHttpClient from "@effect-inference/client/UndiciHttpClient"
import { Effect, Layer, Redacted } from "effect"

// After: the client as a layer (3 retries, 60 s per attempt, a breaker per model and usage tracking by default).
export const makeInference = (apiKey: string, baseUrl = InferenceClient.DEFAULT_BASE_URL) =>
  InferenceClient.layer({ apiKey: Redacted.make(apiKey), baseUrl, project: "my-team/my-project" }).pipe(
    Layer.provide(UndiciHttpClient.layer)
  )

export const summarise = (text: string) =>
  Effect.flatMap(InferenceClient.InferenceClient, (client) =>
    client.chatCompletion({
      model: "meta-llama/Llama-3.1-8B-Instruct",
      messages: [{ role: "user", content: `Summarise in one line: ${text}` }],
      max_tokens: 100
    })).pipe(
      Effect.map((completion) => completion.choices[0].message.content ?? ""),
      // One tag per cause; the type of summarise lists the errors left for its caller.
      Effect.catchTags({
        RateLimitError: () => Effect.succeed("Busy: try again later"),
        QuotaExceededError: () => Effect.succeed("Out of credits: check billing")
      })
    )
