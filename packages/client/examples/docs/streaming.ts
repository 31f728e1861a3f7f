import { ChatCompletionChunk, InferenceClient } from "@effect-inference/client"
import { Effect, Stream } from "effect"

const request = {
  model: "deepseek-ai/DeepSeek-V3.1",
  messages: [{ role: "user" as const, content: "Explain backpressure in one paragraph." }]
}

// Print the answer as it arrives. Failures before any text are retried for you;
// a failure after text has arrived ends the stream with a typed error.
export const printAnswer = (write: (text: string) => void) =>
  Effect.flatMap(InferenceClient.InferenceClient, (client) =>
    client.streamChatCompletion(request).pipe(
      Stream.runForEach((chunk) => Effect.sync(() => write(chunk.choices[0]?.delta.content ?? ""))),
      Effect.catchTags({
        TimeoutError: (e) =>
          Effect.sync(() => write(`\n[stalled: ${e.phase}, after ${e.chunksDelivered ?? 0} chunks]`)),
        RateLimitError: (e) => Effect.sync(() => write(`\n[rate limited after ${e.chunksDelivered ?? 0} chunks]`))
      })
    ))

// Or stream, and get the whole completion (text, tool calls, finish reason, usage) at the end.
export const wholeAnswer = Effect.flatMap(
  InferenceClient.InferenceClient,
  (client) => ChatCompletionChunk.collect(client.streamChatCompletion(request))
)
