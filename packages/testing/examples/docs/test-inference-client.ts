import { InferenceClient, InferenceError } from "@effect-inference/client"
import { TestInferenceClient } from "@effect-inference/testing"
import { Effect } from "effect"

// Application code, unchanged: it asks only for an InferenceClient.
const translate = (text: string) =>
  Effect.flatMap(InferenceClient.InferenceClient, (client) =>
    client.chatCompletion({
      model: "meta-llama/Llama-3.1-8B-Instruct",
      messages: [{ role: "user", content: `Translate to French: ${text}` }]
    })).pipe(
      Effect.map((completion) => completion.choices[0].message.content ?? ""),
      Effect.catchTag("RateLimitError", () => Effect.succeed("(busy, try again later)"))
    )

// A test of it: script the answers, run the code, then look at what it sent.
export const program = Effect.gen(function*() {
  const first = yield* translate("Hello")
  const second = yield* translate("Goodbye")
  const requests = yield* Effect.flatMap(TestInferenceClient.TestInferenceClient, (test) => test.requests)
  return { first, second, sent: requests.map((request) => request.messages[0].content) }
  // => { first: "Bonjour", second: "(busy, try again later)",
  //      sent: ["Translate to French: Hello", "Translate to French: Goodbye"] }
}).pipe(
  Effect.provide(TestInferenceClient.layer({
    replies: ["Bonjour", new InferenceError.RateLimitError({ status: 429 })]
  }))
)
