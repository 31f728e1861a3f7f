/**
 * `pnpm demo` (examples/demo.ts), run as a user runs it, in its own process
 * without WANDB_API_KEY: every practice in order against the embedded
 * simulator, ending with a batch.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Cli from "./utils/Cli.js"

describe("pnpm demo", () => {
  it.live(
    "pnpm demo runs every practice in order against the embedded simulator and exits 0",
    () =>
      Effect.gen(function*() {
        const result = yield* Effect.scoped(
          Effect.flatMap(Cli.startProgram("examples/demo.ts", []), (running) => running.exited)
        )
        assert.strictEqual(result.code, 0, Cli.report(result))
        const lines = result.stdout.split("\n")
        assert.include(lines[0], "No WANDB_API_KEY: running against the W&B Inference simulator")
        const order = [
          "1. A plain call",
          "2. A reasoning model",
          "3. A 503",
          "4. A 429",
          "5. A quota error and an authentication error",
          "6. A call that times out",
          "7. 20 concurrent calls",
          "8. A response cache",
          "9. A budget of 200 tokens",
          "10. Usage, from the UsageTracker",
          "11. A batch of 50 rows",
          "12. The same batch again"
        ].map((title) => result.stdout.indexOf(title))
        assert.isTrue(order.every((at, i) => at >= 0 && (i === 0 || at > order[i - 1]!)), `sections in order: ${order}`)
        // the reasoning model's thinking came first, then its answer, from one request despite a 1 s firstChunkTimeout
        assert.match(result.stdout, /thinking…[\s\S]*thought \d+ characters[\s\S]*answer "[^"]+" after \d+ ms/)
        assert.include(result.stdout, "requests sent: 1")
        assert.include(result.stdout, "succeeded on attempt 3")
        assert.include(result.stdout, "retrying in 2s")
        assert.include(result.stdout, "caught QuotaExceededError after 1 attempt(s)")
        assert.include(result.stdout, "caught AuthenticationError after 1 attempt(s)")
        assert.include(result.stdout, "caught TimeoutError after 2 attempt(s)")
        assert.include(result.stdout, "20/20 succeeded")
        assert.include(result.stdout, "429s from the server: 0")
        assert.match(result.stdout, /answered from the cache in \d+ ms/)
        assert.include(result.stdout, "alert: 50% of the tokens budget reached")
        assert.include(result.stdout, "alert: 80% of the tokens budget reached")
        assert.match(result.stdout, /call \d+: BudgetExceededError: .*Nothing was sent/)
        // the report: one row per model and the total, with the one cache hit
        assert.match(result.stdout, /meta-llama\/Llama-3\.1-8B-Instruct\s+\d+\s+\d+\s+3\s+1\s+\d+/)
        assert.match(result.stdout, /total\s+\d+\s+\d+\s+3\s+1\s+\d+\s+[\d,]+\s+[\d,]+\s+\$\d+\.\d{6}/)
        // the batch: its progress bar, every row in one file (the scripted 503 retried, the 400 failing its row),
        // and a second run that sends nothing
        assert.match(result.stdout, /\[[█░]{24}\] \d+\/50 rows \(\d+%\) · [\d.]+ rows\/s · ETA/)
        assert.match(result.stdout, /batch summary\n.*input .*questions\.jsonl: 50 rows/)
        assert.match(result.stdout, /succeeded\s+49\n.*failed\s+1 \(BadRequestError 1\)/)
        assert.include(result.stdout, "49 rows already succeeded, 1 failed and kept")
        assert.include(result.stdout, "0 requests sent")
      }),
    60_000
  )
})
