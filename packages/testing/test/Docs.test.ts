/**
 * The snippets of the pages whose code lives in this package run: the testing and
 * caching guides, and both sides of the openai-node comparison (the client's docs
 * test checks that each block is the file it names).
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as Redacted from "effect/Redacted"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import { Cache, freshSentiment, sentiment } from "../examples/docs/caching.js"
import { makeInference, summarise } from "../examples/docs/openai-effect.js"
import { makeOpenAI, summarise as summariseWithSdk } from "../examples/docs/openai-sdk.js"
import { program as simulatorSnippet } from "../examples/docs/simulator.js"
import * as Fault from "../src/Fault.js"
import * as InferenceSimulator from "../src/InferenceSimulator.js"
import { chatLog, clientLayer, withSimulatorOnly } from "./utils/Integration.js"

describe("docs/caching.md", () => {
  it.live("sentiment asks once and answers again from disk, after a restart too; freshSentiment asks again", () =>
    withSimulatorOnly(Effect.scoped(Effect.gen(function*() {
      const directory = yield* Effect.acquireRelease(
        Effect.promise(() => fs.mkdtemp(path.join(os.tmpdir(), "effect-inference-docs-"))),
        (dir) => Effect.promise(() => fs.rm(dir, { recursive: true, force: true }))
      )
      const withCache = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
        Effect.provide(effect, clientLayer().pipe(Layer.provide(Cache(directory))))
      const first = yield* withCache(Effect.zip(sentiment("I love it"), sentiment("I love it")))
      const afterRestart = yield* withCache(sentiment("I love it"))
      assert.strictEqual((yield* chatLog).length, 1)
      assert.strictEqual(first[1].id, first[0].id)
      assert.strictEqual(afterRestart.id, first[0].id)
      yield* withCache(freshSentiment("I love it"))
      assert.strictEqual((yield* chatLog).length, 2)
    }))))
})

describe("docs/testing.md", () => {
  it.live("the simulator snippet sees two 503s retried, then an answer", () =>
    Effect.gen(function*() {
      // the snippet's retry warnings are the client's normal output; they are asserted elsewhere
      const result = yield* simulatorSnippet.pipe(Effect.provide(Logger.remove(Logger.defaultLogger)))
      assert.deepStrictEqual(result.outcomes, ["fault", "fault", "ok"])
      assert.isAbove((result.answer ?? "").length, 0)
    }))
})

describe("docs/coming-from-openai-node.md", () => {
  const text = "The simulator answers the same request with the same words."

  it.live("the SDK's program and the client's get the same answer, billed to the same project", () =>
    withSimulatorOnly(Effect.gen(function*() {
      const simulator = yield* InferenceSimulator.InferenceSimulator
      const key = Redacted.value(simulator.apiKey)
      const before = yield* Effect.promise(() => summariseWithSdk(makeOpenAI(key, simulator.url), text))
      const after = yield* summarise(text).pipe(Effect.provide(makeInference(key, simulator.url)))
      assert.isAbove(before.length, 0)
      assert.strictEqual(after, before)
      assert.deepStrictEqual((yield* chatLog).map((entry) => entry.project), [
        "my-team/my-project",
        "my-team/my-project"
      ])
    })))

  it.live("an out-of-credits 429: the SDK sends it three times and says busy; the client sends it once", () =>
    withSimulatorOnly(Effect.gen(function*() {
      const simulator = yield* InferenceSimulator.InferenceSimulator
      const key = Redacted.value(simulator.apiKey)
      yield* simulator.script(Fault.quotaExceeded429, Fault.quotaExceeded429, Fault.quotaExceeded429)
      const sdk = yield* Effect.promise(() => summariseWithSdk(makeOpenAI(key, simulator.url), text))
      assert.strictEqual(sdk, "Busy: try again later")
      assert.strictEqual((yield* chatLog).length, 3, "the SDK's default 2 retries")
      yield* simulator.clearLog
      yield* simulator.script(Fault.quotaExceeded429)
      const client = yield* summarise(text).pipe(Effect.provide(makeInference(key, simulator.url)))
      assert.strictEqual(client, "Out of credits: check billing")
      assert.strictEqual((yield* chatLog).length, 1)
    })))
})
