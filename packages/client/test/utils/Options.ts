/**
 * Tests that a constructor refuses each set of invalid options, naming the
 * option in the defect it stops with.
 */
import { assert, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"

export const refusesEach = <O>(
  make: (options: O) => Effect.Effect<unknown>,
  cases: ReadonlyArray<readonly [name: string, options: O, expected: string]>
) => {
  for (const [name, options, expected] of cases) {
    it.effect(`refuses ${name}, naming the option`, () =>
      Effect.gen(function*() {
        const exit = yield* Effect.exit(make(options))
        assert.isTrue(Exit.isFailure(exit) && String(exit.cause).includes(expected), String(exit))
      }))
  }
}
