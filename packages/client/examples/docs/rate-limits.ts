import { InferenceClient, RateLimit } from "@effect-inference/client"
import { Effect, Layer, Redacted } from "effect"

// One quota for every client of the project: 60 requests and 100,000 tokens a minute.
export const Quota = RateLimit.layer({
  requests: { limit: 60, interval: "1 minute" },
  tokens: { limit: 100_000, interval: "1 minute" }
})

export const Client = InferenceClient.layer({ apiKey: Redacted.make("my-key") }).pipe(Layer.provideMerge(Quota))

// A batch of 500 questions runs as fast as the quota allows, with no 429 on the way.
export const batch = (questions: ReadonlyArray<string>) =>
  Effect.flatMap(
    InferenceClient.InferenceClient,
    (client) =>
      Effect.forEach(questions, (content) =>
        client.chatCompletion({
          model: "meta-llama/Llama-3.1-8B-Instruct",
          messages: [{ role: "user", content }],
          max_tokens: 200 // part of the estimate reserved before sending
        }), { concurrency: 16 })
  )
