import { Batch } from "@effect-inference/cli"
import { InferenceClient, UsageTracker } from "@effect-inference/client"
import * as UndiciHttpClient from "@effect-inference/client/UndiciHttpClient"
import { Effect, Layer } from "effect"

// The client from WANDB_API_KEY and WANDB_PROJECT, a tracker that prices each row and stops the run before
// it passes $5, and the Node transport: what the command builds from its options.
export const Live = InferenceClient.layerConfig().pipe(
  Layer.provideMerge(UsageTracker.layer({ budget: { usd: 5 }, logLevel: "None" })),
  Layer.provide(UndiciHttpClient.layer)
)

// The same run as `effect-inference batch prompts.jsonl --output results.jsonl --shard 1/2`, with a line of
// progress every 5 seconds; run it again to go on from where it stopped.
export const shardOne = Batch.run({
  input: "prompts.jsonl",
  output: "results.jsonl",
  shard: { index: 1, count: 2 },
  progressInterval: "5 seconds",
  onProgress: (p) =>
    Effect.log(
      `${p.done}/${p.total} rows, ${p.failed} failed, ${p.rowsPerSecond.toFixed(1)} rows/s, $${p.usd.toFixed(4)}`
    )
}).pipe(
  Effect.tap((summary) =>
    Effect.log(`${summary.succeeded} succeeded, ${summary.failed} failed, ${summary.pending} not done`)
  ),
  Effect.catchTags({
    InvalidInputError: (error) => Effect.logError(error.message), // the bad rows, by line number
    PreflightError: (error) => Effect.logError(error.message) // a bad key, a wrong URL, an unknown model
  })
)

export const program = Effect.provide(shardOne, Live)
