/**
 * Long runs of the client's hostile-answer property (`packages/client/test/Hostile.test.ts`):
 * each case serves a generated answer from a raw-TCP loopback server and runs one
 * plain call and one stream (folded) through `InferenceClient`, which must end each
 * in a success or a typed `InferenceError` before its hang guard. Prints what the
 * cases came to, and every defect and hang with the command that replays its case.
 *
 *   pnpm fuzz [--cases N] [--seed S] [--from I] [--concurrency C] [--transport undici|fetch|mixed]
 *
 * The answers and the server are the test's own (`packages/client/test/utils`); the wiring below is
 * the test's too, written against the package's exports.
 */
import { ChatCompletionChunk, InferenceClient, InferenceError } from "@effect-inference/client"
import * as UndiciHttpClient from "@effect-inference/client/UndiciHttpClient"
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import type * as HttpClient from "@effect/platform/HttpClient"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Redacted from "effect/Redacted"
import { parseArgs } from "node:util"
import * as Hostile from "../../client/test/utils/Hostile.js"
import * as RawServer from "../../client/test/utils/RawServer.js"

const { values: args } = parseArgs({
  options: {
    cases: { type: "string", default: "1000" },
    seed: { type: "string" },
    from: { type: "string", default: "0" },
    concurrency: { type: "string", default: "4" },
    transport: { type: "string", default: "mixed" }
  }
})

const cases = Number(args.cases)
const seed = args.seed === undefined ? Date.now() % 2 ** 31 : Number(args.seed)
const from = Number(args.from)
const concurrency = Number(args.concurrency)
const transportName = args.transport
if (
  ![cases, seed, from, concurrency].every(Number.isSafeInteger) || cases < 1 || concurrency < 1 ||
  !["undici", "fetch", "mixed"].includes(transportName)
) {
  console.error("usage: pnpm fuzz [--cases N] [--seed S] [--from I] [--concurrency C] [--transport undici|fetch|mixed]")
  process.exit(2)
}

/** The transport of case `index`: in a mixed run, one case in five goes over fetch. */
const transportOf = (index: number): "undici" | "fetch" =>
  transportName === "mixed" ? (index % 5 === 4 ? "fetch" : "undici") : transportName === "fetch" ? "fetch" : "undici"

const transports: Record<"undici" | "fetch", Layer.Layer<HttpClient.HttpClient>> = {
  undici: UndiciHttpClient.layer,
  fetch: FetchHttpClient.layer
}

const options = (url: string): InferenceClient.Options => ({
  apiKey: Redacted.make("wandb-secret-4f9c2e7a1b3d"),
  baseUrl: `${url}/v1`,
  ...Hostile.clientLimits
})
const HANG_AFTER = Hostile.HANG_AFTER
const hello = { model: "meta-llama/Llama-3.1-8B-Instruct", messages: [{ role: "user" as const, content: "Hello" }] }

interface Result {
  readonly index: number
  readonly transport: "undici" | "fetch"
  readonly scenario: Hostile.Scenario
  readonly plain: Hostile.Outcome
  readonly stream: Hostile.Outcome
}

const runCase = (index: number): Effect.Effect<Result> =>
  Effect.suspend(() => {
    const scenario = Hostile.scenarioAt(seed, index)
    const transport = transportOf(index)
    return Effect.scoped(Effect.flatMap(
      RawServer.serve((request) => request.stream ? scenario.stream : scenario.plain),
      (server) =>
        Effect.provide(
          Effect.flatMap(InferenceClient.InferenceClient, (client) =>
            Effect.all([
              Hostile.outcomeOf(client.chatCompletion(hello), InferenceError.isInferenceError, HANG_AFTER),
              Hostile.outcomeOf(
                ChatCompletionChunk.collect(client.streamChatCompletion(hello)),
                InferenceError.isInferenceError,
                HANG_AFTER
              )
            ], { concurrency: 2 })),
          InferenceClient.layer(options(server.url)).pipe(Layer.provide(transports[transport]))
        )
    )).pipe(Effect.map(([plain, stream]) => {
      // The prototype is shared by the cases in flight: a pollution is put on the stream (whose fold merges tool
      // calls) of the case that finds it, which may not be the one that caused it (replay with --concurrency 1).
      const polluted = Hostile.prototypePollution()
      return {
        index,
        transport,
        scenario,
        plain,
        stream: polluted.length === 0
          ? stream
          : { _tag: "Defect" as const, detail: `Object.prototype polluted with ${polluted.join(", ")}` }
      }
    }))
  })

// ---------------------------------------------------------------------------
// Tally
// ---------------------------------------------------------------------------

const successes = { plain: 0, stream: 0 }
const typed = new Map<string, { plain: number; stream: number }>()
const bad: Array<{ readonly result: Result; readonly call: "plain" | "stream"; readonly outcome: Hostile.Outcome }> = []
const perTransport = { undici: 0, fetch: 0 }
let done = 0
let bytesServed = 0

const count = (result: Result) => {
  done++
  perTransport[result.transport]++
  bytesServed += result.scenario.plain.size + result.scenario.stream.size
  for (const call of ["plain", "stream"] as const) {
    const outcome = result[call]
    if (outcome._tag === "Success") successes[call]++
    else if (outcome._tag === "Typed") {
      const row = typed.get(outcome.tag) ?? { plain: 0, stream: 0 }
      row[call]++
      typed.set(outcome.tag, row)
    } else bad.push({ result, call, outcome })
  }
  if (done % 500 === 0) console.error(`  ${done}/${cases} cases, ${bad.length} defects or hangs`)
}

const pad = (text: string | number, width: number) => String(text).padStart(width)

const report = (elapsedMillis: number) => {
  const defects = bad.filter(({ outcome }) => outcome._tag === "Defect")
  const hangs = bad.filter(({ outcome }) => outcome._tag === "Hang")
  const peakRssMb = process.resourceUsage().maxRSS / 1024
  console.log(`pnpm fuzz --cases ${cases} --seed ${seed}${from === 0 ? "" : ` --from ${from}`}`)
  console.log(`cases run        ${pad(done, 8)}  (undici ${perTransport.undici}, fetch ${perTransport.fetch})`)
  console.log(`calls            ${pad(done * 2, 8)}  (one plain call and one stream per case)`)
  console.log(
    `successes        ${
      pad(successes.plain + successes.stream, 8)
    }  (plain ${successes.plain}, stream ${successes.stream})`
  )
  console.log(`typed errors     ${pad([...typed.values()].reduce((n, row) => n + row.plain + row.stream, 0), 8)}`)
  for (const [tag, row] of [...typed.entries()].sort(([, a], [, b]) => b.plain + b.stream - a.plain - a.stream)) {
    console.log(`  ${tag.padEnd(26)}${pad(row.plain + row.stream, 6)}  (plain ${row.plain}, stream ${row.stream})`)
  }
  console.log(`defects          ${pad(defects.length, 8)}`)
  console.log(`hangs            ${pad(hangs.length, 8)}`)
  console.log(`bytes served     ${pad((bytesServed / 2 ** 20).toFixed(1), 8)} MiB`)
  console.log(
    `elapsed          ${pad((elapsedMillis / 1000).toFixed(1), 8)} s  (${
      (elapsedMillis / done).toFixed(1)
    } ms per case, concurrency ${concurrency})`
  )
  console.log(`peak RSS         ${pad(peakRssMb.toFixed(0), 8)} MiB`)
  for (const { call, outcome, result } of bad) {
    console.log("")
    console.log(`${outcome._tag} in the ${call} call of case ${result.index} (${result.transport}), seed ${seed}`)
    console.log(`  answer: ${result.scenario[call].describe()}`)
    if (outcome._tag === "Defect") console.log(`  ${outcome.detail.split("\n").slice(0, 6).join("\n  ")}`)
    console.log(`  replay: pnpm fuzz --seed ${seed} --from ${result.index} --cases 1 --transport ${result.transport}`)
  }
  if (bad.length > 0) process.exitCode = 1
}

const started = performance.now()
console.error(`fuzz: ${cases} cases from seed ${seed}, case ${from} on, concurrency ${concurrency}`)
Effect.runPromise(
  Effect.forEach(
    Array.from({ length: cases }, (_, i) => from + i),
    (index) => Effect.map(runCase(index), count),
    { concurrency, discard: true }
  ).pipe(Logger.withMinimumLogLevel(LogLevel.None))
).then(() => report(performance.now() - started))
