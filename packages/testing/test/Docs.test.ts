/**
 * The testing guide's snippets run (the client's docs test checks that each block
 * of docs/testing.md is the file it names).
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Logger from "effect/Logger"
import { program as simulatorSnippet } from "../examples/docs/simulator.js"

describe("docs/testing.md", () => {
  it.live("the simulator snippet sees two 503s retried, then an answer", () =>
    Effect.gen(function*() {
      // the snippet's retry warnings are the client's normal output; they are asserted elsewhere
      const result = yield* simulatorSnippet.pipe(Effect.provide(Logger.remove(Logger.defaultLogger)))
      assert.deepStrictEqual(result.outcomes, ["fault", "fault", "ok"])
      assert.isAbove((result.answer ?? "").length, 0)
    }))
})
