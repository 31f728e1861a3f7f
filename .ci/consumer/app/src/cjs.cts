/**
 * The same application as a CommonJS module: compiled to out/cjs.cjs, whose `require()` loads the
 * ES module packages (Node >= 20.19 and >= 22.12 do). One line per check; exit code 1 if any fails.
 */
import { Batch } from "@effect-inference/cli"
import { InferenceClient } from "@effect-inference/client"
import * as UndiciHttpClient from "@effect-inference/client/UndiciHttpClient"
import { RedisStores } from "@effect-inference/redis"
import { Fault, InferenceSimulator } from "@effect-inference/testing"
import { Effect, Either, Layer, Logger, Stream } from "effect"
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Os from "node:os"
import * as Path from "node:path"

const model = "meta-llama/Llama-3.1-8B-Instruct"
const messages = [{ role: "user" as const, content: "Say hello in five words" }]

const check = (ok: boolean, line: string): Effect.Effect<void, string> =>
  ok ? Effect.sync(() => console.log(`cjs: ${line}`)) : Effect.fail(line)

const program = Effect.gen(function*() {
  const simulator = yield* InferenceSimulator.InferenceSimulator
  const client = yield* InferenceClient.InferenceClient

  const completion = yield* client.chatCompletion({ model, messages })
  const content = completion.choices[0]?.message.content ?? ""
  yield* check(content.length > 0, `plain call answered ${JSON.stringify(content)}`)

  const chunks = yield* Stream.runCollect(client.streamChatCompletion({ model, messages }))
  const streamed = Array.from(chunks, (chunk) => chunk.choices[0]?.delta.content ?? "").join("")
  yield* check(
    chunks.length > 1 && streamed.length > 0,
    `stream delivered ${chunks.length} chunks: ${JSON.stringify(streamed)}`
  )

  yield* simulator.script(Fault.quotaExceeded)
  const caught = yield* client.chatCompletion({ model, messages }).pipe(
    Effect.as("no error"),
    Effect.catchTag("QuotaExceededError", (error) => Effect.succeed(`caught ${error._tag} (status ${error.status})`)),
    Effect.catchAll((error) => Effect.succeed(`wrong error ${error._tag}`))
  )
  yield* check(caught.startsWith("caught QuotaExceededError"), `typed error: ${caught}`)

  let internal = "importable"
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports -- what a CommonJS user would write
    require("@effect-inference/client/" + "internal/sse")
  } catch (error) {
    internal = (error as NodeJS.ErrnoException).code ?? String(error)
  }
  yield* check(internal === "ERR_PACKAGE_PATH_NOT_EXPORTED", `internal modules are not exported (${internal})`)
})

/** A loopback port where nothing listens: the OS picks it, and it is let go at once. */
const freePort = Effect.async<number>((resume) => {
  const server = Net.createServer()
  server.listen(0, "127.0.0.1", () => {
    const address = server.address()
    const port = typeof address === "object" && address !== null ? address.port : 0
    server.close(() => resume(Effect.succeed(port)))
  })
})

/**
 * One call through a client whose limits (4 in flight, a budget) keep their state in the Redis stores, set up
 * as a user of @effect-inference/redis would: its outcome, and what was logged meanwhile (kept off the console,
 * shown in the check's line).
 */
const callOnRedis = (options: RedisStores.Options) =>
  Effect.gen(function*() {
    const logged: Array<string> = []
    const logger = Logger.make(({ logLevel, message }) => {
      logged.push(`${logLevel.label} ${Array.isArray(message) ? message.join(" ") : String(message)}`)
    })
    const ClientOnRedis = InferenceSimulator.clientLayer({
      maxConcurrency: 4,
      usage: { budget: { usd: 5, period: "1 day" } }
    }).pipe(Layer.provide(RedisStores.layer(options)), Layer.provide(UndiciHttpClient.layer))
    const outcome = yield* InferenceClient.InferenceClient.pipe(
      Effect.flatMap((client) => client.chatCompletion({ model, messages })),
      Effect.provide(ClientOnRedis),
      Effect.either,
      Effect.provide(Logger.replace(Logger.defaultLogger, logger))
    )
    return { outcome, logged, warnings: logged.filter((line) => line.startsWith("WARN")) }
  })

/**
 * @effect-inference/redis with Redis down (a port where nothing listens): the call goes on in memory under
 * onUnavailable "local" and fails with CoordinationError, before anything is sent, under "fail". With
 * CONSUMER_REDIS_URL set (run.sh starts a redis-server when one is installed), a call through that server too.
 */
const redisChecks = Effect.gen(function*() {
  const simulator = yield* InferenceSimulator.InferenceSimulator
  const chatRequests = Effect.map(
    simulator.log,
    (log) => log.filter((entry) => entry.path === "/v1/chat/completions").length
  )
  const down = `redis://127.0.0.1:${yield* freePort}`

  const local = yield* callOnRedis({ url: down, onUnavailable: "local", timeout: "200 millis" })
  yield* check(
    Either.isRight(local.outcome) && local.warnings.length === 1,
    `Redis down, onUnavailable "local": ${
      Either.isRight(local.outcome) ? "answered on memory stores" : `failed with ${local.outcome.left._tag}`
    }, warned ${JSON.stringify(local.warnings)}`
  )

  const before = yield* chatRequests
  const strict = yield* callOnRedis({ url: down, onUnavailable: "fail", timeout: "200 millis" })
  const sent = (yield* chatRequests) - before
  const error = Either.isLeft(strict.outcome) ? strict.outcome.left : undefined
  yield* check(
    error?._tag === "CoordinationError" && sent === 0,
    `Redis down, onUnavailable "fail": ${
      error === undefined
        ? "answered"
        : error._tag === "CoordinationError"
        ? `failed with CoordinationError (store ${error.store})`
        : `failed with ${error._tag}`
    }, ${sent} requests sent`
  )

  const url = process.env.CONSUMER_REDIS_URL
  if (url !== undefined) {
    const shared = yield* callOnRedis({ url, keyPrefix: "consumer-cjs:", onUnavailable: "fail" })
    yield* check(
      Either.isRight(shared.outcome) && shared.logged.length === 0,
      `Redis at ${url}: ${
        Either.isRight(shared.outcome) ? "answered" : `failed with ${shared.outcome.left._tag}`
      } through it, logged ${JSON.stringify(shared.logged)}`
    )
  }
})

/**
 * @effect-inference/cli's Batch.run on a file of 3 rows in a temporary directory, through the client on the
 * simulator: every row answered, one success line each in the output file, nothing in the errors file.
 */
const batchChecks = Effect.acquireUseRelease(
  Effect.sync(() => Fs.mkdtempSync(Path.join(Os.tmpdir(), "consumer-cjs-batch-"))),
  (dir) =>
    Effect.gen(function*() {
      const input = Path.join(dir, "prompts.jsonl")
      const output = Path.join(dir, "results.jsonl")
      const row = (id: string) =>
        JSON.stringify({ custom_id: id, method: "POST", url: "/v1/chat/completions", body: { model, messages } })
      Fs.writeFileSync(input, `${["a", "b", "c"].map(row).join("\n")}\n`)
      const summary = yield* Batch.run({ input, output }).pipe(
        Effect.mapError((error) => `Batch.run failed: ${error.message}`)
      )
      const lines = (file: string) => Fs.existsSync(file) ? Fs.readFileSync(file, "utf8").split("\n").length - 1 : 0
      const written = lines(output)
      const failures = lines(Batch.defaultErrors(output))
      yield* check(
        summary.succeeded === 3 && written === 3 && failures === 0,
        `Batch.run: ${summary.succeeded} of 3 rows succeeded, ${written} lines in the output, ${failures} in the errors file`
      )
    }),
  (dir) => Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true }))
)

const TestLive = InferenceSimulator.clientLayer().pipe(
  Layer.provideMerge(InferenceSimulator.layer({ seed: 7 })),
  Layer.provide(UndiciHttpClient.layer)
)

Effect.runPromise(Effect.provide(Effect.zipRight(Effect.zipRight(program, redisChecks), batchChecks), TestLive)).then(
  () => console.log("cjs: ok"),
  (error: unknown) => {
    console.error(`cjs: FAILED: ${String(error)}`)
    process.exitCode = 1
  }
)
