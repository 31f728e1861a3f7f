import { InferenceClient, UsageTracker } from "@effect-inference/client"
import { Duration, Effect, Layer, Option, Redacted, Stream } from "effect"

// Your prices (USD per million tokens: prompt, cached prompt, completion) and a budget of $25 a day,
// with alerts at 50%, 80% and 100%.
export const Usage = UsageTracker.layer({
  prices: { "meta-llama/Llama-3.1-8B-Instruct": { input: 0.22, cachedInput: 0.055, output: 0.22 } },
  budget: { usd: 25, period: "1 day" }
})

// provideMerge: the application reads the same tracker the client records into.
export const Client = InferenceClient.layer({ apiKey: Redacted.make("my-key") }).pipe(Layer.provideMerge(Usage))

export const ask = (content: string) =>
  Effect.flatMap(InferenceClient.InferenceClient, (client) =>
    client.chatCompletion({
      model: "meta-llama/Llama-3.1-8B-Instruct",
      messages: [{ role: "user", content }],
      max_tokens: 300 // the most a call can spend, so the budget holds exactly
    })).pipe(
      Effect.map((completion) => completion.choices[0].message.content ?? ""),
      Effect.catchTag("BudgetExceededError", (e) =>
        Effect.succeed(
          `Today's budget is spent; back in ${
            Option.match(e.resetsIn, { onNone: () => "a while", onSome: Duration.format })
          }`
        ))
    )

// Every alert, as it happens: fork this for the life of the application.
export const watchAlerts = (notify: (text: string) => Effect.Effect<void>) =>
  Effect.flatMap(UsageTracker.UsageTracker, (tracker) =>
    Stream.runForEach(tracker.alerts, (alert) =>
      notify(
        alert._tag === "BudgetAlert"
          ? `${alert.threshold * 100}% of the ${alert.dimension} budget spent`
          : `W&B says the account is out of credits: ${alert.message}`
      )))

export const report = Effect.flatMap(UsageTracker.UsageTracker, (tracker) => tracker.report)
