/**
 * Builds an `InferenceClient` over a fake transport, with settings that keep
 * retries deterministic (no jitter) for `TestClock` tests.
 */
import { assert } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import type { ChatCompletionRequestInput } from "../../src/ChatCompletion.js"
import * as InferenceClient from "../../src/InferenceClient.js"
import * as FakeTransport from "./FakeTransport.js"

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

/** The typed failure of `exit`, asserting that there is one. */
export const failureOf = <A, E>(exit: Exit.Exit<A, E>): E => {
  const failure = Exit.isFailure(exit) ? Cause.failureOption(exit.cause) : Option.none()
  assert.isTrue(Option.isSome(failure), `expected a typed failure, got ${String(exit)}`)
  return Option.getOrThrow(failure)
}

/** Runs `hello` against a fake playing `script`, on the TestClock; returns the exit and the fake. */
export const callHello = (
  script: ReadonlyArray<FakeTransport.Reply>,
  options: Partial<InferenceClient.Options> = {}
) =>
  Effect.gen(function*() {
    const fake = FakeTransport.make(script)
    const exit = yield* FakeTransport.runWithClock(withClient(fake, (client) => client.chatCompletion(hello), options))
    return { exit, fake }
  })
