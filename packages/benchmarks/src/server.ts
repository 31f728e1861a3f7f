/**
 * The benchmarks' server: the W&B Inference simulator with no faults, in a
 * process of its own so that its CPU time is not the client's. It prints
 * `READY <url>` once listening and stops when its input closes.
 *
 *   tsx src/server.ts --answer-tokens 500 --per-token 0
 */
import { InferenceSimulator } from "@effect-inference/testing"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as Effect from "effect/Effect"

const arg = (name: string, fallback: number): number => {
  const at = process.argv.indexOf(`--${name}`)
  return at === -1 ? fallback : Number(process.argv[at + 1])
}

const answerTokens = arg("answer-tokens", 20)

const main = Effect.gen(function*() {
  const simulator = yield* InferenceSimulator.make({
    port: 0,
    apiKeys: ["bench-key"],
    faultRate: 0,
    firstByte: 0,
    perToken: `${arg("per-token", 0)} millis`,
    answerTokens: [answerTokens, answerTokens],
    // The log is for tests; a benchmark only needs the server to answer.
    maxLogEntries: 1
  })
  process.stdout.write(`READY ${simulator.url}\n`)
  yield* Effect.async<void>((resume) => {
    process.stdin.on("end", () => resume(Effect.void))
    process.stdin.on("close", () => resume(Effect.void))
    process.stdin.resume()
  })
}).pipe(Effect.scoped)

NodeRuntime.runMain(main, { disablePrettyLogger: true })
