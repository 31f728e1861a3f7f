import { InferenceClient } from "@effect-inference/client"
import { Effect, Redacted } from "effect"

// When Llama is down (after its retries) or its breaker is open, ask DeepSeek, then Qwen.
export const Resilient = InferenceClient.layer({
  apiKey: Redacted.make("my-key"),
  fallback: ["deepseek-ai/DeepSeek-V3.1", "Qwen/Qwen3.6-35B-A3B"]
})

export const answer = Effect.flatMap(InferenceClient.InferenceClient, (client) =>
  client.chatCompletion({
    model: "meta-llama/Llama-3.1-8B-Instruct",
    messages: [{ role: "user", content: "Summarise the news in one line." }]
  })).pipe(
    // The completion names the model that answered.
    Effect.map((completion) => ({ model: completion.model, text: completion.choices[0].message.content }))
  )

// Move on from a retired model too (a 404), besides the default triggers.
export const PastRetirements = InferenceClient.layer({
  apiKey: Redacted.make("my-key"),
  fallback: ["meta-llama/Llama-3.3-70B-Instruct"],
  fallbackOn: [...InferenceClient.DEFAULT_FALLBACK_ON, "NotFoundError"]
})
