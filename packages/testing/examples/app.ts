/**
 * A small application function of the kind `TestInferenceClient` is for: it asks
 * the model for a summary and, when the account is out of credits or rate
 * limited, falls back to a summary it makes itself rather than failing.
 * test/SampleApp.test.ts tests it without any HTTP.
 */
import { InferenceClient } from "@effect-inference/client"
import { Effect } from "effect"

export const MODEL = "meta-llama/Llama-3.1-8B-Instruct"

export const SYSTEM_PROMPT = "Summarize the user's text in one sentence."

export interface Summary {
  readonly text: string
  /** `"model"` when the model wrote it, `"fallback"` when the app made it itself. */
  readonly source: "model" | "fallback"
}

/** The first sentence of the text: poor, but free and always available. */
export const fallback = (text: string): Summary => ({
  text: (text.trim().match(/^[^.!?]*[.!?]?/)?.[0] ?? "").trim(),
  source: "fallback"
})

export const summarize = (text: string) =>
  Effect.gen(function*() {
    const client = yield* InferenceClient.InferenceClient
    const completion = yield* client.chatCompletion({
      model: MODEL,
      messages: [
        { role: "system", content: SYSTEM_PROMPT },
        { role: "user", content: text }
      ],
      temperature: 0,
      max_tokens: 100
    })
    const content = completion.choices[0]?.message.content ?? null
    // A model can answer with no text (only tool calls, or a refusal); the user still gets a summary.
    return content === null || content.trim() === ""
      ? fallback(text)
      : { text: content.trim(), source: "model" as const }
  }).pipe(
    // Degrade rather than fail: both are about the account, not the text, and pass with time or billing.
    Effect.catchTags({
      QuotaExceededError: () => Effect.succeed(fallback(text)),
      RateLimitError: () => Effect.succeed(fallback(text))
    })
  )
