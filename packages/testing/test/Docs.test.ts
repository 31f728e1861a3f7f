/**
 * The testing guide's snippets run (the client's docs test checks that each block
 * of docs/testing.md is the file it names).
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import { Cache, freshSentiment, sentiment } from "../examples/docs/caching.js"
import { program as simulatorSnippet } from "../examples/docs/simulator.js"
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
