import type { InferenceError } from "@effect-inference/client"
import { InferenceClient, RetryPolicy } from "@effect-inference/client"
import { Redacted, Schedule } from "effect"

// The default policy with other numbers: it still obeys Retry-After.
export const patient = InferenceClient.layer({
  apiKey: Redacted.make("my-key"),
  retry: { maxRetries: 6, baseDelay: "2 seconds", maxDelay: "1 minute", maxRetryAfter: "2 minutes" }
})

// Compose: the default policy, but no new retry once 20 seconds have passed since the first failure.
export const bounded = InferenceClient.layer({
  apiKey: Redacted.make("my-key"),
  retry: RetryPolicy.make().pipe(Schedule.upTo("20 seconds"))
})

// Replace: retry only 503s, every 5 seconds, three times, with the Retry-After rule added back.
export const only503 = InferenceClient.layer({
  apiKey: Redacted.make("my-key"),
  retry: Schedule.spaced("5 seconds").pipe(
    Schedule.intersect(Schedule.recurs(3)),
    Schedule.whileInput((e: InferenceError.InferenceError) => e._tag === "ServiceUnavailableError"),
    RetryPolicy.withRetryAfter("1 minute")
  )
})
