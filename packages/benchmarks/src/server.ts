/**
 * The benchmarks' server: the W&B Inference simulator with no faults, in a
 * process of its own so that its CPU time is not the client's. It prints
 * `READY <url>` once listening and stops when its input closes.
 *
 *   tsx src/server.ts --answer-tokens 500 --per-token 0 [--first-byte 200] [--model-limit <model>=<n> ...]
 *
 * Its input takes commands, one a line:
 * - `limit <model> <n>` sets the model's limit of requests in flight (`Infinity` lifts it) and prints
 *   `LIMIT <epoch ms> <model> <n>`;
 * - `stats` prints `STATS <json>`: the chat requests the simulator has seen so far, by outcome
 *   (`{"ok": 1990, "concurrency-limited": 12}`), counted from its log, retries included.
 */
import { InferenceSimulator } from "@effect-inference/testing"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as Effect from "effect/Effect"
import * as readline from "node:readline"

const arg = (name: string, fallback: number): number => {
  const at = process.argv.indexOf(`--${name}`)
  return at === -1 ? fallback : Number(process.argv[at + 1])
}

/** `--model-limit <model>=<n>`, as many as given. */
const modelLimits = (): Record<string, number> => {
  const limits: Record<string, number> = {}
  process.argv.forEach((value, i) => {
    if (process.argv[i - 1] !== "--model-limit") return
    const at = value.lastIndexOf("=")
    const n = Number(value.slice(at + 1))
    if (at <= 0 || !Number.isInteger(n) || n < 1) {
      process.stderr.write(`--model-limit: not <model>=<n>: "${value}"\n`)
      process.exit(2)
    }
    limits[value.slice(0, at)] = n
  })
  return limits
}

const answerTokens = arg("answer-tokens", 20)

/** Chat requests by outcome; the log itself is kept to one entry, so counting is done as each request ends. */
const outcomes: Record<string, number> = {}

const main = Effect.gen(function*() {
  const simulator = yield* InferenceSimulator.make({
    port: 0,
    apiKeys: ["bench-key"],
    faultRate: 0,
    firstByte: `${arg("first-byte", 0)} millis`,
    perToken: `${arg("per-token", 0)} millis`,
    answerTokens: [answerTokens, answerTokens],
    modelConcurrencyLimits: modelLimits(),
    // The log is for tests; a benchmark only needs the server to answer, and the counts.
    maxLogEntries: 1,
    onLogEntry: (entry) => {
      if (entry.path === "/v1/chat/completions") outcomes[entry.outcome] = (outcomes[entry.outcome] ?? 0) + 1
    }
  })
  const command = (line: string) => {
    const [verb, model, value] = line.trim().split(/\s+/)
    const limit = Number(value)
    if (verb === "limit" && model !== undefined && (limit === Infinity || (Number.isInteger(limit) && limit >= 1))) {
      Effect.runSync(simulator.setModelConcurrencyLimit(model, limit))
      process.stdout.write(`LIMIT ${Date.now()} ${model} ${limit}\n`)
    } else if (verb === "stats") {
      process.stdout.write(`STATS ${JSON.stringify(outcomes)}\n`)
    } else if (verb !== undefined && verb !== "") {
      process.stderr.write(`server: unknown command "${line}"; limit <model> <n> | stats\n`)
    }
  }
  process.stdout.write(`READY ${simulator.url}\n`)
  yield* Effect.async<void>((resume) => {
    const lines = readline.createInterface({ input: process.stdin })
    lines.on("line", command)
    lines.on("close", () => resume(Effect.void))
  })
}).pipe(Effect.scoped)

NodeRuntime.runMain(main, { disablePrettyLogger: true })
