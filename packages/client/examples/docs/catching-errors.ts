import { InferenceClient } from "@effect-inference/client"
import { Duration, Effect, Option } from "effect"

const ask = (content: string) =>
  Effect.flatMap(InferenceClient.InferenceClient, (client) =>
    client.chatCompletion({
      model: "meta-llama/Llama-3.1-8B-Instruct",
      messages: [{ role: "user", content }]
    }))

export const answer = (content: string) =>
  ask(content).pipe(
    Effect.map((completion) => completion.choices[0].message.content ?? ""),
    Effect.catchTags({
      // Not retried: a person has to act.
      AuthenticationError: () => Effect.succeed("Check WANDB_API_KEY and WANDB_PROJECT"),
      QuotaExceededError: () => Effect.succeed("Out of credits: top up or raise the spending cap"),
      // `resource` says what was missing: "model", "path" (a wrong baseUrl) or "unknown".
      NotFoundError: (e) =>
        Effect.succeed(
          e.resource === "path"
            ? `No such path under ${e.baseUrl ?? "the base URL"}: check baseUrl`
            : `Unknown model ${e.model}: pick one from listModels()`
        ),
      // Retried already, `attempts` times; retryAfter is set when the server asked for a wait
      // longer than maxRetryAfter, so the caller can schedule the work for later.
      RateLimitError: (e) =>
        Effect.succeed(
          Option.match(e.retryAfter, {
            onNone: () => `Still rate limited after ${e.attempts} attempts`,
            onSome: (wait) => `Rate limited: try again in ${Duration.format(wait)}`
          })
        ),
      TimeoutError: (e) => Effect.succeed(`Timed out (${e.phase}) after ${e.attempts} attempts`)
    })
  )
