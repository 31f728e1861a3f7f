import { BudgetStore, ConcurrencyStore, InferenceClient } from "@effect-inference/client"
import { Effect, Layer, Redacted } from "effect"

// Two clients of one project (a chat service and a summariser in the same application) share its limit
// of 8 requests in flight and its daily budget of $5: the stores in context hold both for both.
const options = {
  apiKey: Redacted.make("my-key"),
  project: "team/project",
  maxConcurrency: 8,
  usage: { budget: { usd: 5, period: "1 day" } }
} as const

export class Chat extends Effect.Service<Chat>()("Chat", {
  effect: InferenceClient.make(options)
}) {}

export class Summariser extends Effect.Service<Summariser>()("Summariser", {
  effect: InferenceClient.make(options)
}) {}

export const Shared = Layer.mergeAll(ConcurrencyStore.layerMemory, BudgetStore.layerMemory)

export const App = Layer.mergeAll(Chat.Default, Summariser.Default).pipe(Layer.provide(Shared))
