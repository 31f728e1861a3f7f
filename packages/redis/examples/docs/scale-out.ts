import { InferenceClient } from "@effect-inference/client"
import { RedisStores } from "@effect-inference/redis"
import { Layer, Redacted } from "effect"

// Every replica of the service: together at most 16 requests in flight to the project, one daily budget
// of $20, and one breaker per model. Run as many replicas as you like with the same REDIS_URL.
export const Inference = InferenceClient.layer({
  apiKey: Redacted.make("my-key"),
  project: "team/project",
  maxConcurrency: 16,
  usage: { budget: { usd: 20, period: "1 day" } }
})

// The stores from REDIS_URL (and REDIS_KEY_PREFIX, if set); while Redis is away, each process goes on alone.
export const Live = Inference.pipe(Layer.provide(RedisStores.layerConfig()))

// Or: no call goes out while the shared state cannot be reached (CoordinationError instead).
export const Strict = Inference.pipe(
  Layer.provide(RedisStores.layer({ url: "redis://127.0.0.1:6379", onUnavailable: "fail" }))
)
