#!/usr/bin/env node
/**
 * The `effect-inference` command (`pnpm --filter @effect-inference/cli cli` in this repository):
 *
 *   effect-inference batch requests.jsonl --output results.jsonl [--max-cost 5] [--shard 1/3] …
 *
 * See docs/batch.md. Exit codes: 0 every row succeeded, 1 some rows failed or were not done,
 * 2 the run could not start (bad options, bad input, a failed preflight).
 *
 * @since 0.2.0
 */
import * as ValidationError from "@effect/cli/ValidationError"
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import { createRequire } from "node:module"
import * as Command from "./internal/command.js"

const { version } = createRequire(import.meta.url)("../package.json") as { version: string }

// Not NodeRuntime.runMain: its SIGINT handler would interrupt the run at once, where the command's own takes no
// more rows and lets those in flight finish.
let code: number = Command.EXIT_OK
Effect.runPromiseExit(
  Command.main(Command.nodeIo(), process.argv, version, (exit) => {
    code = exit
  }).pipe(Effect.provide(NodeContext.layer))
).then((exit) => {
  if (Exit.isSuccess(exit)) return process.exit(code)
  // @effect/cli has printed a usage error itself; anything else (a defect) is printed here, not lost: exit code 2.
  const failure = Cause.failureOption(exit.cause)
  if (!(Option.isSome(failure) && ValidationError.isValidationError(failure.value))) {
    process.stderr.write(`effect-inference: unexpected error: ${Cause.pretty(exit.cause)}\n`)
  }
  process.exit(Command.EXIT_NOT_STARTED)
})
