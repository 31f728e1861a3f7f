/**
 * `--max-cost`: the run stops taking rows when the next would pass the budget,
 * says so, exits 1 and leaves the refused rows to do, in no file. A real
 * process of the command against the simulator in this process.
 */
import { InferenceSimulator } from "@effect-inference/testing"
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as fs from "node:fs"
import * as path from "node:path"
import * as Files from "../utils/Files.js"
import { idOf } from "../utils/Simulator.js"
import * as Cli from "./utils/Cli.js"

const TIMEOUT = 60_000

describe("effect-inference batch --max-cost", () => {
  it.scopedLive(
    "stops before passing the budget, says so, exits 1; no refused row is sent or written",
    () =>
      Effect.gen(function*() {
        const n = 60
        const budget = 1.5
        const simulator = yield* InferenceSimulator.make({ firstByte: "5 millis" })
        const { dir, errors, input, output } = yield* Files.batchFiles(n)
        // A dollar a thousand tokens: a row costs some 3 cents (its reservation up to 7), so 60 rows pass $1.50.
        const prices = path.join(dir, "prices.json")
        fs.writeFileSync(prices, JSON.stringify({ [Files.MODEL]: { input: 1000, output: 1000 } }))
        const exited = yield* Cli.run([
          "batch",
          input,
          "--output",
          output,
          "--base-url",
          simulator.url,
          "--concurrency",
          "4",
          "--prices",
          prices,
          "--max-cost",
          `${budget}`
        ])
        assert.strictEqual(exited.code, 1, Cli.report(exited))
        assert.include(exited.stdout, "stopped taking rows: the next would pass the budget")
        const cost = /cost\s+\$([\d.]+)/.exec(exited.stdout)
        assert.isNotNull(cost, exited.stdout)
        assert.isAtMost(Number(cost![1]), budget)

        // What the service answered, at those prices: within the budget too.
        const log = (yield* simulator.log).filter((entry) => entry.path === "/v1/chat/completions")
        const tokens = log.reduce((sum, entry) => sum + (entry.usage?.total_tokens ?? 0), 0)
        assert.isAtMost(tokens / 1000, budget)

        // The files hold exactly the rows sent, all succeeded; a refused row is in neither and left to do.
        const done = Files.readResults(output)
        assert.deepStrictEqual(Files.readLines(errors), [], "no BudgetExceededError line")
        assert.deepStrictEqual(done.map((result) => result.custom_id).sort(), log.map(idOf).sort())
        assert.isAbove(done.length, 10)
        assert.isBelow(done.length, n)
        assert.include(exited.stdout, `${n - done.length} rows not done. To go on, run the same command again:`)
      }),
    TIMEOUT
  )
})
