import { InferenceClient } from "@effect-inference/client"
import * as UndiciHttpClient from "@effect-inference/client/UndiciHttpClient"
import { Fault, InferenceSimulator } from "@effect-inference/testing"
import { Effect, Layer } from "effect"

// A simulator on a free port for the life of the layer, and a client pointed at it.
const TestLive = InferenceSimulator.clientLayer({ retry: { baseDelay: "10 millis" } }).pipe(
  Layer.provideMerge(InferenceSimulator.layer({ seed: 7, concurrencyLimit: 4 })),
  Layer.provide(UndiciHttpClient.layer)
)

export const program = Effect.gen(function*() {
  const simulator = yield* InferenceSimulator.InferenceSimulator
  const client = yield* InferenceClient.InferenceClient

  // The next two calls get W&B's 503, then the service recovers.
  yield* simulator.script(Fault.overloaded, Fault.overloaded)
  const completion = yield* client.chatCompletion({
    model: "meta-llama/Llama-3.1-8B-Instruct",
    messages: [{ role: "user", content: "Hello" }]
  })

  // The request log shows what the client really did on the wire.
  const log = yield* simulator.log
  return { answer: completion.choices[0].message.content, outcomes: log.map((entry) => entry.outcome) }
  // => { answer: "...", outcomes: ["fault", "fault", "ok"] }
}).pipe(Effect.provide(TestLive))
