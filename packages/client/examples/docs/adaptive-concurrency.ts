import { InferenceClient } from "@effect-inference/client"
import { Layer, Redacted } from "effect"

// The default: each model's limit found from the 429s, never above 64 in flight in all.
export const Adaptive = InferenceClient.layer({ apiKey: Redacted.make("my-key") })

// A project known to allow 8 in flight: a fixed limit, no probing.
export const Fixed = InferenceClient.layer({
  apiKey: Redacted.make("my-key"),
  maxConcurrency: 8,
  adaptiveConcurrency: false
})

// Bounds of its own: start low, never above 32.
export const Cautious = InferenceClient.layer({
  apiKey: Redacted.make("my-key"),
  adaptiveConcurrency: { initial: 4, max: 32 }
})

export const Layers = Layer.mergeAll(Adaptive, Fixed, Cautious)
