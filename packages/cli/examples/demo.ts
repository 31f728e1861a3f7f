/**
 * `pnpm demo`: each practice of robust inference error handling, working, in order.
 *
 * With no WANDB_API_KEY it starts the W&B Inference simulator in this process and
 * runs against it; with the key set it runs the fault-free parts against the real
 * service (WANDB_PROJECT and WANDB_INFERENCE_BASE_URL are read too). It shows the
 * usage report of the `UsageTracker` every client records into, and, against the
 * simulator, ends with a batch of 50 rows run by `Batch.run`, the engine of the
 * `effect-inference batch` command, with the command's progress bar and summary.
 *
 * It lives in the cli package, the top of the packages' graph, because it uses all
 * of them: the cli package already depends on the testing one.
 */
import { InferenceClient, type InferenceError, ResponseCache, UsageTracker } from "@effect-inference/client"
import * as UndiciHttpClient from "@effect-inference/client/UndiciHttpClient"
import { Fault, InferenceSimulator } from "@effect-inference/testing"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import {
  Chunk,
  Config,
  Duration,
  Effect,
  HashMap,
  Layer,
  Logger,
  LogLevel,
  Option,
  Queue,
  Redacted,
  Stream
} from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as Batch from "../src/Batch.js"
import * as Report from "../src/internal/report.js"

const MODEL = "meta-llama/Llama-3.1-8B-Instruct"
const PROJECT = "demo-team/demo"
const started = Date.now()

const stamp = () => {
  const now = new Date()
  return `${now.toISOString().slice(11, 23)} +${((now.getTime() - started) / 1000).toFixed(2).padStart(5)}s`
}
const say = (text: string) => Effect.sync(() => console.log(`${stamp()}  ${text}`))
const section = (title: string) => Effect.sync(() => console.log(`\n${stamp()}  ── ${title}`))

/**
 * Prints the client's retry warnings as one readable line each. The client's usage lines log at Debug, below
 * the default minimum level, so none reach it: the demo sums usage up itself, in the report at the end.
 */
const demoLogger = Logger.make(({ annotations }) => {
  const get = (key: string) => Option.getOrUndefined(HashMap.get(annotations, key))
  if (get("tag") === undefined) return
  const status = get("status") === "none" ? "" : ` (HTTP ${String(get("status"))})`
  const next = get("retryIn") === "none" ? "not retried" : `retrying in ${String(get("retryIn"))}`
  console.log(`${stamp()}    attempt ${String(get("attempt"))} failed: ${String(get("tag"))}${status}; ${next}`)
})

const call = (client: InferenceClient.InferenceClient.Service, content: string) =>
  client.chatCompletion({ model: MODEL, messages: [{ role: "user", content }] })

const preview = (text: string | null) => {
  const t = text ?? ""
  return JSON.stringify(t.length > 60 ? `${t.slice(0, 57)}...` : t)
}

const timed = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.map(Effect.timed(effect), ([elapsed, a]) => [`${Math.round(Duration.toMillis(elapsed))} ms`, a] as const)

const described = (e: InferenceError.InferenceError) => `${e._tag} after ${e.attempts} attempt(s)`

const plainCall = (client: InferenceClient.InferenceClient.Service) =>
  Effect.gen(function*() {
    yield* section("1. A plain call")
    const [took, plain] = yield* timed(call(client, "Say hello in five words."))
    yield* say(`answer ${preview(plain.choices[0].message.content)} in ${took}, ${plain.usage?.total_tokens} tokens`)
  })

const REASONING_MODEL = "Qwen/Qwen3.6-35B-A3B"

/**
 * A reasoning model's stream: its thinking as it arrives, then its answer. The
 * thinking counts as output, so a long think does not trip `firstChunkTimeout`.
 */
const reasoningStream = (client: InferenceClient.InferenceClient.Service, note = "") =>
  Effect.gen(function*() {
    yield* section(`2. A reasoning model (${REASONING_MODEL}) streams its thinking, then its answer`)
    const thinking: Array<string> = []
    const answer: Array<string> = []
    const [took] = yield* timed(
      client.streamChatCompletion({
        model: REASONING_MODEL,
        messages: [{ role: "user", content: "Is 391 a prime number?" }]
      }).pipe(
        Stream.runForEach((chunk) =>
          Effect.gen(function*() {
            const delta = chunk.choices[0]?.delta
            if (delta?.reasoning) {
              if (thinking.length === 0) yield* say("thinking…")
              thinking.push(delta.reasoning)
            }
            if (delta?.content) {
              if (answer.length === 0) {
                yield* say(`thought ${thinking.join("").length} characters: ${preview(thinking.join(""))}`)
              }
              answer.push(delta.content)
            }
          })
        )
      )
    )
    yield* say(`answer ${preview(answer.join(""))} after ${took}${note}`)
  })

const concurrentCalls = (client: InferenceClient.InferenceClient.Service, n: number) =>
  Effect.forEach(
    Array.from({ length: n }, (_, i) => `Question number ${i + 1}?`),
    (q) => Effect.either(call(client, q)),
    { concurrency: "unbounded" }
  )

const cached = (client: InferenceClient.InferenceClient.Service) =>
  Effect.gen(function*() {
    yield* section("8. A response cache: the same question at temperature 0, twice")
    const ask = client.chatCompletion({
      model: MODEL,
      messages: [{ role: "user", content: "Name a prime number." }],
      temperature: 0
    })
    const [first] = yield* timed(ask)
    const [second, answer] = yield* timed(ask)
    yield* say(`asked in ${first}; answered from the cache in ${second}: ${preview(answer.choices[0].message.content)}`)
  })

const budgeted = (client: InferenceClient.InferenceClient.Service, alerts: Effect.Effect<ReadonlyArray<string>>) =>
  Effect.gen(function*() {
    yield* section("9. A budget of 200 tokens: alerts at 50% and 80%, then a call that would not fit is refused")
    for (let i = 1; i <= 10; i++) {
      const outcome = yield* Effect.either(
        client.chatCompletion({
          model: MODEL,
          messages: [{ role: "user", content: `Tell me fact ${i}.` }],
          max_tokens: 48
        })
      )
      for (const alert of yield* alerts) yield* say(`  alert: ${alert}`)
      if (outcome._tag === "Left") {
        yield* say(`call ${i}: ${outcome.left._tag}: ${outcome.left.message}`)
        break
      }
      yield* say(`call ${i}: ${outcome.right.usage?.total_tokens} tokens`)
    }
  })

/**
 * A client whose calls count against a budget of its own (200 tokens), and its
 * alerts so far, as lines, from `alerts`.
 */
const withBudget = <E, R>(make: Effect.Effect<InferenceClient.InferenceClient.Service, E, R>) =>
  Effect.gen(function*() {
    const tracker = yield* UsageTracker.make({ budget: { tokens: 200 } })
    const queue = yield* tracker.subscribeAlerts
    const client = yield* Effect.provideService(make, UsageTracker.UsageTracker, tracker)
    const alerts = Effect.map(
      Queue.takeAll(queue),
      (all) =>
        Chunk.toReadonlyArray(all).map((alert) =>
          alert._tag === "BudgetAlert"
            ? `${alert.threshold * 100}% of the ${alert.dimension} budget reached (${alert.spent} of ${alert.limit})`
            : `quota: ${alert.message}`
        )
    )
    return { client, alerts }
  })

const report = Effect.gen(function*() {
  yield* section("10. Usage, from the UsageTracker")
  const tracker = yield* UsageTracker.UsageTracker
  for (const line of (yield* tracker.report).split("\n")) yield* say(line)
  yield* say(
    "(each call's own usage line logs at Debug, so none was printed: UsageTracker.layer({ logLevel: \"Info\" }) shows them)"
  )
})

const BATCH_ROWS = 50

/** A batch file of `BATCH_ROWS` rows in the OpenAI Batch API's input format, in a directory removed at the end. */
const batchFiles = Effect.acquireRelease(
  Effect.sync(() => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "effect-inference-demo-"))
    const input = path.join(dir, "questions.jsonl")
    const rows = Array.from({ length: BATCH_ROWS }, (_, i) =>
      JSON.stringify({
        custom_id: `question-${i + 1}`,
        method: "POST",
        url: "/v1/chat/completions",
        body: { model: MODEL, messages: [{ role: "user", content: `What is ${i + 1} squared?` }], max_tokens: 32 }
      }))
    fs.writeFileSync(input, `${rows.join("\n")}\n`)
    return { dir, input, output: path.join(dir, "answers.jsonl") }
  }),
  ({ dir }) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
)

/**
 * The progress as the command shows it: on a terminal, its bar redrawn in place; otherwise one line per
 * report, so that a log keeps each.
 */
const showProgress = (progress: Batch.Progress) =>
  Effect.sync(() => {
    if (process.stdout.isTTY) {
      process.stdout.write(`\r\x1b[2K${stamp()}  ${Report.progressBar(progress, (process.stdout.columns || 100) - 28)}`)
    } else console.log(`${stamp()}  ${Report.progressBar(progress, 140)}`)
  })

/**
 * `effect-inference batch questions.jsonl --output answers.jsonl`, as an Effect: 50 rows through a client
 * with its defaults (adaptive concurrency finds the project's limit of 4 from its 429s), one 503 retried and
 * one 400 that fails its row; then the same run again, which finds every row done and sends nothing.
 */
const batch = (client: InferenceClient.InferenceClient.Service, simulator: InferenceSimulator.Service) =>
  Effect.gen(function*() {
    yield* section(`11. A batch of ${BATCH_ROWS} rows (Batch.run, the engine of \`effect-inference batch\`)`)
    const files = yield* batchFiles
    yield* say(`${BATCH_ROWS} questions in ${files.input}; one answer a line to ${path.basename(files.output)}`)
    yield* simulator.script(Fault.overloaded, Fault.badRequest)
    const run = (options: Partial<Batch.RunOptions>) =>
      Batch.run({ input: files.input, output: files.output, ...options }).pipe(
        Effect.provideService(InferenceClient.InferenceClient, client),
        // As the command does: each row's retries are in its attempts, not a warning line each.
        Logger.withMinimumLogLevel(LogLevel.Error)
      )
    const summary = yield* run({ onProgress: showProgress, progressInterval: "300 millis" })
    if (process.stdout.isTTY) process.stdout.write("\n")
    const resume = `effect-inference batch ${files.input} --output ${files.output}`
    for (const line of Report.summary(summary, resume).split("\n")) yield* say(line)
    const failure = fs.readFileSync(Batch.defaultErrors(files.output), "utf8").split("\n")[0] ?? ""
    yield* say(`the failed row's line: ${failure.length > 160 ? `${failure.slice(0, 157)}...` : failure}`)

    yield* section("12. The same batch again: every row is done, so nothing is sent (a resume)")
    const again = yield* run({})
    yield* say(
      `${again.alreadySucceeded} rows already succeeded, ${again.alreadyFailed} failed and kept ` +
        `(--retry-failed would try it again); ${again.attempts} requests sent`
    )
  }).pipe(Effect.scoped)

const simulated = Effect.gen(function*() {
  yield* say("No WANDB_API_KEY: running against the W&B Inference simulator, in this process, on 127.0.0.1")
  const simulator = yield* InferenceSimulator.InferenceSimulator
  const clientWith = (options: Partial<InferenceClient.Options>) =>
    InferenceClient.make({
      apiKey: simulator.apiKey,
      baseUrl: simulator.url,
      project: PROJECT,
      retry: { baseDelay: "250 millis", jitter: false },
      ...options
    })
  const client = yield* clientWith({})
  yield* say(`simulator at ${simulator.url}; client retries 3 times from 250 ms, doubling`)

  yield* plainCall(client)
  // The simulator's reasoning models think for 1.5 s here; the first thought arrives at once, so 1 s is enough.
  yield* simulator.clearLog
  yield* reasoningStream(
    yield* clientWith({ firstChunkTimeout: "1 second" }),
    ": a think longer than the 1 s firstChunkTimeout, in 1 request, as thinking is output"
  )
  yield* say(`requests sent: ${(yield* simulator.log).length}`)

  yield* section("3. A 503 (engine overloaded), twice: retried with exponential backoff")
  yield* simulator.script(Fault.overloaded, Fault.overloaded)
  const [took2] = yield* timed(call(client, "Are you busy?"))
  yield* say(`succeeded on attempt 3 after ${took2} (waits of 250 ms and 500 ms)`)

  yield* section("4. A 429 (concurrency limit) with Retry-After: 2 — obeyed")
  yield* simulator.script(Fault.rateLimited({ seconds: 2 }))
  const [took3] = yield* timed(call(client, "May I?"))
  yield* say(`succeeded after ${took3}: the server asked for 2 s, longer than the 250 ms backoff`)

  yield* section("5. A quota error and an authentication error: caught by tag, not retried")
  yield* simulator.script(Fault.quotaExceeded)
  yield* call(client, "One more?").pipe(
    Effect.catchTag("QuotaExceededError", (e) => say(`caught ${described(e)}: ${e.message}`))
  )
  const wrongKey = yield* clientWith({ apiKey: Redacted.make("not-the-key") })
  yield* call(wrongKey, "Let me in").pipe(
    Effect.catchTag("AuthenticationError", (e) => say(`caught ${described(e)}: ${e.message}`))
  )

  yield* section("6. A call that times out: each attempt is cut at 1 s, one retry, then TimeoutError")
  yield* simulator.script(Fault.hang, Fault.hang)
  const impatient = yield* clientWith({ timeout: "1 second", retry: { maxRetries: 1, baseDelay: "250 millis" } })
  yield* call(impatient, "Are you there?").pipe(
    Effect.catchTag("TimeoutError", (e) => say(`caught ${described(e)} (phase ${e.phase}); the sockets were closed`))
  )

  yield* section("7. 20 concurrent calls; the project allows 4 in flight, the client's maxConcurrency is 4")
  yield* simulator.clearLog
  const limited = yield* clientWith({ maxConcurrency: 4 })
  const [took6, results] = yield* timed(concurrentCalls(limited, 20))
  const log = yield* simulator.log
  const refused = log.filter((e) => e.outcome === "concurrency-limited").length
  yield* say(
    `${results.filter((r) => r._tag === "Right").length}/20 succeeded in ${took6}; peak in flight ${
      InferenceSimulator.peakInFlight(log)
    }; 429s from the server: ${refused}`
  )

  yield* cached(client)
  const budget = yield* withBudget(clientWith({}))
  yield* budgeted(budget.client, budget.alerts)
  yield* report
  yield* batch(yield* clientWith({}), simulator)
}).pipe(
  Effect.scoped,
  Effect.provide(
    InferenceSimulator.layer({
      firstByte: "40 millis",
      perToken: "3 millis",
      thinkingTime: "1500 millis",
      concurrencyLimit: 4
    })
  )
)

const real = Effect.gen(function*() {
  yield* say("WANDB_API_KEY is set: running the fault-free parts against W&B Inference")
  const client = yield* InferenceClient.InferenceClient
  yield* plainCall(client)
  yield* reasoningStream(client)
  yield* section("7. 8 concurrent calls, at most 4 in flight (maxConcurrency)")
  const [took, results] = yield* timed(concurrentCalls(client, 8))
  yield* say(`${results.filter((r) => r._tag === "Right").length}/8 succeeded in ${took}`)
  for (const r of results) if (r._tag === "Left") yield* say(`  ${r.left._tag}: ${r.left.message}`)
  yield* cached(client)
  const budget = yield* withBudget(
    Effect.flatMap(InferenceClient.config, (fromEnv) => InferenceClient.make({ ...fromEnv, maxConcurrency: 4 }))
  )
  yield* budgeted(budget.client, budget.alerts)
  yield* report
}).pipe(Effect.scoped, Effect.provide(InferenceClient.layerConfig({ maxConcurrency: 4 })))

const main = Effect.gen(function*() {
  const key = yield* Config.option(Config.redacted("WANDB_API_KEY"))
  yield* Option.isSome(key) ? real : simulated
}).pipe(
  Effect.catchAll((error) =>
    Effect.zipRight(
      say(`stopped: ${"message" in error ? error.message : String(error)}`),
      Effect.sync(() => process.exitCode = 1)
    )
  ),
  // One tracker for every client of the demo (but the budgeted one), and one cache.
  Effect.provide(Layer.mergeAll(UndiciHttpClient.layer, UsageTracker.layer(), ResponseCache.layerMemory())),
  Effect.provide(Logger.replace(Logger.defaultLogger, demoLogger))
)

// The demo prints its own lines; the runtime's pretty logger would print every retry warning in full.
NodeRuntime.runMain(main, { disablePrettyLogger: true })
