/**
 * One client process of the multi-process tests: an `InferenceClient` over
 * `UndiciHttpClient`, with the Redis stores in context, driven over stdin.
 *
 * Its first stdin line is its configuration (JSON, see `Config`): given there
 * rather than on the command line, so that the Redis URL (and its password)
 * is never in the process list. It then prints `{"_tag":"Ready"}` and, for
 * each further line (a `Batch`), makes that many calls with
 * `Effect.forEach(…, { concurrency })` and prints one line: how many
 * succeeded and the failures by `_tag` (`Defect` and `Interrupted` for calls
 * that did not end in a success or a typed error). It exits once stdin
 * closes. Log lines go to stderr; stdout holds only these JSON lines.
 *
 * Started as `node --conditions=@effect-inference/source --import tsx worker.ts`.
 */
import * as InferenceClient from "@effect-inference/client/InferenceClient"
import * as UndiciHttpClient from "@effect-inference/client/UndiciHttpClient"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Sink from "effect/Sink"
import * as Stream from "effect/Stream"
import * as Readline from "node:readline"
import * as RedisStores from "../../src/RedisStores.js"

/** The client's options that JSON can carry (durations as strings, no functions). */
export type ClientOptions = Omit<InferenceClient.Options, "apiKey" | "baseUrl" | "transformClient" | "fallbackOn">

export interface Config {
  /** Sent as each request's `user`, so that the simulator's log tells the processes apart. */
  readonly name: string
  readonly baseUrl: string
  readonly apiKey: string
  readonly redis: RedisStores.Options & { readonly url: string }
  readonly client: ClientOptions
  readonly model: string
  readonly maxTokens?: number | undefined
}

export interface Batch {
  readonly calls: number
  readonly concurrency: number
}

/** What a process prints. */
export type Message =
  | { readonly _tag: "Ready" }
  | {
    readonly _tag: "Done"
    readonly calls: number
    readonly succeeded: number
    /** Failed calls by the error's `_tag`. */
    readonly failures: Readonly<Record<string, number>>
    /** The message of the first failure of each tag, to explain a failed assertion. */
    readonly messages: Readonly<Record<string, string>>
  }

const print = (message: Message) => Effect.sync(() => process.stdout.write(`${JSON.stringify(message)}\n`))

/** A failed call's tag: its typed error's, or `Interrupted`, or `Defect` (which no call should end with). */
const failureOf = (
  cause: Cause.Cause<{ readonly _tag: string; readonly message: string }>
): { readonly tag: string; readonly message: string } => {
  const failure = Cause.failureOption(cause)
  if (Option.isSome(failure)) return { tag: failure.value._tag, message: failure.value.message }
  if (Cause.isInterruptedOnly(cause)) return { tag: "Interrupted", message: "interrupted" }
  return { tag: "Defect", message: Cause.pretty(cause) }
}

const runBatch = (client: InferenceClient.InferenceClient.Service, config: Config, batch: Batch) =>
  Effect.gen(function*() {
    const exits = yield* Effect.forEach(
      Array.from({ length: batch.calls }, (_, i) => i),
      (i) =>
        Effect.exit(client.chatCompletion({
          model: config.model,
          messages: [{ role: "user", content: `question ${i} from ${config.name}` }],
          user: config.name,
          ...(config.maxTokens === undefined ? {} : { max_tokens: config.maxTokens })
        })),
      { concurrency: batch.concurrency }
    )
    const failures: Record<string, number> = {}
    const messages: Record<string, string> = {}
    let succeeded = 0
    for (const exit of exits) {
      if (Exit.isSuccess(exit)) {
        succeeded++
        continue
      }
      const { message, tag } = failureOf(exit.cause)
      failures[tag] = (failures[tag] ?? 0) + 1
      messages[tag] ??= message
    }
    yield* print({ _tag: "Done", calls: batch.calls, succeeded, failures, messages })
  })

const lines = Stream.fromAsyncIterable(
  Readline.createInterface({ input: process.stdin, crlfDelay: Infinity }),
  (error) => new Error(`stdin: ${String(error)}`)
)

const serve = (config: Config, batches: Stream.Stream<string, Error>) =>
  Effect.gen(function*() {
    const client = yield* InferenceClient.make({
      ...config.client,
      apiKey: Redacted.make(config.apiKey),
      baseUrl: config.baseUrl
    })
    yield* print({ _tag: "Ready" })
    yield* Stream.runForEach(batches, (line) => runBatch(client, config, JSON.parse(line) as Batch))
  }).pipe(
    Effect.provide(Layer.merge(UndiciHttpClient.layer, RedisStores.layer(config.redis)))
  )

const program = Effect.gen(function*() {
  const [first, rest] = yield* Stream.peel(lines, Sink.head())
  if (Option.isNone(first)) return
  yield* serve(JSON.parse(first.value) as Config, rest)
}).pipe(
  Effect.scoped,
  // stdout is for the JSON lines alone.
  Effect.provide(Logger.replace(Logger.defaultLogger, Logger.withConsoleError(Logger.logfmtLogger)))
)

Effect.runPromise(program).then(
  () => process.exit(0),
  (error) => {
    process.stderr.write(`worker failed: ${String(error)}\n`)
    process.exit(1)
  }
)
