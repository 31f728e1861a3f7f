import { InferenceClient } from "@effect-inference/client"
import { Effect, Stream } from "effect"

// Show a reasoning model's thinking as it streams, then its answer.
export const showThinking = (write: (text: string) => void) =>
  Effect.flatMap(InferenceClient.InferenceClient, (client) =>
    client.streamChatCompletion({
      model: "Qwen/Qwen3.6-35B-A3B",
      messages: [{ role: "user", content: "Is 391 prime?" }]
    }).pipe(
      Stream.runForEach((chunk) =>
        Effect.sync(() => {
          const delta = chunk.choices[0]?.delta
          if (delta?.reasoning) write(`[thinking] ${delta.reasoning}`)
          if (delta?.content) write(delta.content)
        })
      )
    ))

// The same model with thinking off, where the model lets it be switched.
export const quickAnswer = Effect.flatMap(InferenceClient.InferenceClient, (client) =>
  client.chatCompletion({
    model: "Qwen/Qwen3.6-35B-A3B",
    messages: [{ role: "user", content: "Is 391 prime? Answer yes or no." }],
    chat_template_kwargs: { enable_thinking: false }
  }))
