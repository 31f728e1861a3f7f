/**
 * Builds an `InferenceClient` over a fake transport, with settings that keep
 * retries deterministic (no jitter) for `TestClock` tests.
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import type { ChatCompletionRequestInput } from "../../src/ChatCompletion.js"
import * as InferenceClient from "../../src/InferenceClient.js"
import type * as FakeTransport from "./FakeTransport.js"

/** A key long and odd enough that finding it anywhere means it leaked. */
export const SECRET = "wandb-secret-4f9c2e7a1b3d"

export const MODEL = "meta-llama/Llama-3.1-8B-Instruct"

export const hello: ChatCompletionRequestInput = {
  model: MODEL,
  messages: [{ role: "user", content: "Hello" }]
}

export const testOptions: InferenceClient.Options = {
  apiKey: Redacted.make(SECRET),
  baseUrl: "http://inference.test/v1",
  project: "team/project",
  retry: { maxRetries: 3, baseDelay: "1 second", factor: 2, maxDelay: "30 seconds", jitter: false }
}

export const layer = (
  fake: FakeTransport.Fake,
  options: Partial<InferenceClient.Options> = {}
): Layer.Layer<InferenceClient.InferenceClient> =>
  InferenceClient.layer({ ...testOptions, ...options }).pipe(Layer.provide(fake.layer))

/** Runs `f` with a client over `fake`. */
export const withClient = <A, E>(
  fake: FakeTransport.Fake,
  f: (client: InferenceClient.InferenceClient.Service) => Effect.Effect<A, E>,
  options: Partial<InferenceClient.Options> = {}
): Effect.Effect<A, E> => Effect.provide(Effect.flatMap(InferenceClient.InferenceClient, f), layer(fake, options))
