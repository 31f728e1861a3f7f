/**
 * The place where the `effect-inference` command is defined: its options, how
 * they become a client, a tracker and the Redis stores, the signals, the
 * progress output and the exit code. The work itself is `engine.run`.
 */
import { InferenceClient, UsageTracker } from "@effect-inference/client"
import * as UndiciHttpClient from "@effect-inference/client/UndiciHttpClient"
import { RedisStores } from "@effect-inference/redis"
import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import * as fs from "node:fs"
import * as Engine from "./engine.js"
import type { Shard } from "./input.js"
import * as Report from "./report.js"

/** Exit codes: every row succeeded; some rows failed or were not done; the run could not start. */
export const EXIT_OK = 0
export const EXIT_ROWS_FAILED = 1
export const EXIT_NOT_STARTED = 2

/** The key the simulator accepts by default, used against a loopback `--base-url` when no key is set. */
const SIMULATOR_KEY = "sim-key"

/** The key of a dry run without one: the client is made, never called. */
const DRY_RUN_KEY = "dry-run"

/** What the command writes to: the summary to `out`, progress and messages to `err` (both injectable for tests). */
export interface Io {
  readonly out: (text: string) => void
  readonly err: (text: string) => void
  /** Whether `err` is a terminal (a live bar) or not (a plain line every few seconds). */
  readonly tty: boolean
  readonly columns: number
  readonly env: Readonly<Record<string, string | undefined>>
}

export const nodeIo = (): Io => ({
  out: (text) => fs.writeSync(1, text),
  err: (text) => fs.writeSync(2, text),
  tty: process.stderr.isTTY === true,
  // 0 when the terminal does not say (a pseudo-terminal under `script`): a bar of 100 columns then.
  columns: process.stderr.columns || 100,
  env: process.env
})

/** A problem with the options: one line on stderr, exit code 2. */
class UsageError extends Schema.TaggedError<UsageError>()("UsageError", { message: Schema.String }) {}

const parseShard = (text: string): Either.Either<Shard, string> => {
  const match = /^(\d+)\/(\d+)$/.exec(text.trim())
  if (match === null) return Either.left(`--shard: "${text}" is not <i>/<n>, e.g. 1/3`)
  const index = Number(match[1])
  const count = Number(match[2])
  if (count < 1 || index < 1 || index > count) {
    return Either.left(`--shard: "${text}": i must be from 1 to n (shards are counted from 1)`)
  }
  return Either.right({ index, count })
}

const parseConcurrency = (text: string): Either.Either<number | "auto", string> => {
  if (text === "auto") return Either.right("auto")
  const n = Number(text)
  return Number.isInteger(n) && n >= 1 && n <= 10_000
    ? Either.right(n)
    : Either.left(`--concurrency: "${text}" is not "auto" or a whole number from 1 to 10000`)
}

const PriceTable = Schema.Record({
  key: Schema.String,
  value: Schema.Struct({
    input: Schema.NonNegative,
    cachedInput: Schema.optional(Schema.NonNegative),
    output: Schema.NonNegative
  })
})

const readPrices = (path: string): Effect.Effect<UsageTracker.Options["prices"], UsageError> =>
  Effect.gen(function*() {
    const text = yield* Effect.try({
      try: () => fs.readFileSync(path, "utf8"),
      catch: (error) => new UsageError({ message: `--prices: cannot read ${path}: ${(error as Error).message}` })
    })
    const json = yield* Effect.try({
      try: () => JSON.parse(text) as unknown,
      catch: (error) => new UsageError({ message: `--prices: ${path} is not JSON: ${(error as Error).message}` })
    })
    return yield* Schema.decodeUnknown(PriceTable)(json).pipe(
      Effect.mapError((error) =>
        new UsageError({
          message: `--prices: ${path} is not a price table ({"<model>": {"input": <usd per million>, ` +
            `"output": <usd per million>}}): ${error.message}`
        })
      )
    )
  })

const isLoopback = (url: string): boolean => {
  try {
    const host = new URL(url).hostname
    return host === "127.0.0.1" || host === "localhost" || host === "[::1]" || host === "::1"
  } catch {
    return false
  }
}

const isRedisUrl = (url: string): boolean => {
  try {
    const protocol = new URL(url).protocol
    return protocol === "redis:" || protocol === "rediss:"
  } catch {
    return false
  }
}

const options = {
  input: Args.file({ name: "input.jsonl", exists: "yes" }).pipe(
    Args.withDescription("the requests: the OpenAI Batch API's JSONL, one request a line")
  ),
  output: Options.file("output").pipe(
    Options.withAlias("o"),
    Options.withDescription("where succeeded rows are appended (the Batch API's output format)")
  ),
  errors: Options.file("errors").pipe(
    Options.optional,
    Options.withDescription("where failed rows are appended; default <output>.errors.jsonl")
  ),
  baseUrl: Options.text("base-url").pipe(
    Options.optional,
    Options.withDescription(`the service; default ${InferenceClient.DEFAULT_BASE_URL}, or WANDB_INFERENCE_BASE_URL`)
  ),
  project: Options.text("project").pipe(
    Options.optional,
    Options.withDescription("team/project to bill; default WANDB_PROJECT")
  ),
  concurrency: Options.text("concurrency").pipe(
    Options.withDefault("auto"),
    Options.withDescription("requests in flight: a number, or auto to find the provider's limit (default)")
  ),
  maxCost: Options.float("max-cost").pipe(
    Options.optional,
    Options.withDescription("a budget in US dollars: no row is sent whose estimate would pass it")
  ),
  dryRun: Options.boolean("dry-run").pipe(
    Options.withDescription("check every row and print the estimate; send nothing")
  ),
  retryFailed: Options.boolean("retry-failed").pipe(
    Options.withDescription("also try again rows an earlier run failed with an error that is not retryable")
  ),
  skipInvalid: Options.boolean("skip-invalid").pipe(
    Options.withDescription("run the valid rows of an input that has invalid ones")
  ),
  shard: Options.text("shard").pipe(
    Options.optional,
    Options.withDescription("i/n: only the rows whose custom_id hashes to shard i of n (1 to n)")
  ),
  redis: Options.text("redis").pipe(
    Options.optional,
    Options.withDescription("a Redis URL: share concurrency, budget and breakers with other runners")
  ),
  prices: Options.file("prices").pipe(
    Options.optional,
    Options.withDescription(`a JSON price table: {"<model>": {"input": 0.1, "output": 0.3}} in USD per million tokens`)
  ),
  grace: Options.float("grace").pipe(
    Options.withDefault(30),
    Options.withDescription("seconds rows in flight may take to finish after Ctrl-C (default 30)")
  ),
  quiet: Options.boolean("quiet").pipe(
    Options.withAlias("q"),
    Options.withDescription("no progress output; the summary is still printed")
  )
}

type Parsed = Command.Command.ParseConfig<typeof options>

/** The options as the engine and the layers want them. */
interface Settings {
  readonly run: Engine.RunOptions
  readonly concurrency: number | "auto"
  readonly apiKey: Redacted.Redacted<string>
  readonly baseUrl: string | undefined
  readonly project: string | undefined
  readonly maxCost: number | undefined
  readonly redis: string | undefined
  readonly quiet: boolean
}

const settings = (parsed: Parsed, io: Io) =>
  Effect.gen(function*() {
    const fail = (message: string) => Effect.fail(new UsageError({ message }))
    const concurrency = parseConcurrency(parsed.concurrency)
    if (Either.isLeft(concurrency)) return yield* fail(concurrency.left)
    const shard = Option.isSome(parsed.shard) ? parseShard(parsed.shard.value) : Either.right(undefined)
    if (Either.isLeft(shard)) return yield* fail(shard.left)
    if (Option.isSome(parsed.maxCost) && !(parsed.maxCost.value > 0 && Number.isFinite(parsed.maxCost.value))) {
      return yield* fail(`--max-cost: must be a positive number of US dollars, not ${parsed.maxCost.value}`)
    }
    if (!(parsed.grace >= 0 && Number.isFinite(parsed.grace))) {
      return yield* fail(`--grace: must be a number of seconds, 0 or more, not ${parsed.grace}`)
    }
    if (Option.isSome(parsed.redis) && !isRedisUrl(parsed.redis.value)) {
      // Checked here: the Redis layer dies on it, after the input has been read. The URL may hold a password.
      return yield* fail("--redis: not a redis:// or rediss:// URL, e.g. redis://localhost:6379")
    }
    const prices = Option.isSome(parsed.prices) ? yield* readPrices(parsed.prices.value) : undefined
    const baseUrl = Option.getOrUndefined(parsed.baseUrl) ?? io.env.WANDB_INFERENCE_BASE_URL
    const project = Option.getOrUndefined(parsed.project) ?? io.env.WANDB_PROJECT
    const key = io.env.WANDB_API_KEY
    let apiKey: Redacted.Redacted<string>
    if (key !== undefined && key !== "") apiKey = Redacted.make(key)
    else if (baseUrl !== undefined && isLoopback(baseUrl)) apiKey = Redacted.make(SIMULATOR_KEY)
    // A dry run sends nothing, so needs no key.
    else if (parsed.dryRun) apiKey = Redacted.make(DRY_RUN_KEY)
    else {
      return yield* fail(
        "WANDB_API_KEY is not set: export your W&B API key (https://wandb.ai/authorize) as WANDB_API_KEY"
      )
    }
    const settings: Settings = {
      run: {
        input: parsed.input,
        output: parsed.output,
        errors: Option.getOrUndefined(parsed.errors),
        concurrency: concurrency.right === "auto" ? undefined : concurrency.right,
        dryRun: parsed.dryRun,
        retryFailed: parsed.retryFailed,
        skipInvalid: parsed.skipInvalid,
        shard: shard.right,
        prices,
        grace: Duration.seconds(parsed.grace)
      },
      concurrency: concurrency.right,
      apiKey,
      baseUrl,
      project,
      maxCost: Option.getOrUndefined(parsed.maxCost),
      redis: Option.getOrUndefined(parsed.redis),
      quiet: parsed.quiet
    }
    return settings
  })

/** The most requests in flight `auto` lets adaptive concurrency reach. */
export const AUTO_MAX = 256

/** The client's options from the command's. */
const clientOptions = (s: Settings): InferenceClient.Options => ({
  apiKey: s.apiKey,
  ...(s.baseUrl === undefined ? {} : { baseUrl: s.baseUrl }),
  ...(s.project === undefined ? {} : { project: s.project }),
  ...(s.concurrency === "auto"
    ? { maxConcurrency: AUTO_MAX, adaptiveConcurrency: { max: AUTO_MAX } }
    : { maxConcurrency: s.concurrency, adaptiveConcurrency: false })
})

/**
 * The preflight's client: the same endpoint and key, no retries and nothing
 * else, so that a wrong URL or a bad key fails at once (the rows' client
 * retries a refused connection for seconds).
 */
const preflightClient = (s: Settings) =>
  InferenceClient.make({
    ...clientOptions(s),
    retry: false,
    circuitBreaker: false,
    adaptiveConcurrency: false,
    usage: false
  })

/** The client, its tracker (prices, the budget) and, with `--redis`, the stores they keep their state in. */
const layers = (s: Settings) => {
  const tracker = UsageTracker.layer({
    ...(s.run.prices === undefined ? {} : { prices: s.run.prices }),
    ...(s.maxCost === undefined ? {} : { budget: { usd: s.maxCost } }),
    logLevel: "None"
  })
  const client = InferenceClient.layer(clientOptions(s))
  const live = client.pipe(Layer.provideMerge(tracker), Layer.provideMerge(UndiciHttpClient.layer))
  return s.redis === undefined ? live : live.pipe(Layer.provide(RedisStores.layer({ url: Redacted.make(s.redis) })))
}

/**
 * Ctrl-C (or SIGTERM) once: stop taking rows, give those in flight the grace
 * period. A second Ctrl-C: exit at once, code 130 (143 for SIGTERM; every line
 * written so far is whole: lines are written synchronously).
 */
const signals = (io: Io, stop: Deferred.Deferred<void>) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      let count = 0
      const onSignal = (signal: NodeJS.Signals) => {
        count++
        if (count === 1) {
          io.err(
            `\n${signal}: taking no more rows; rows in flight may finish (Ctrl-C again to exit at once)\n`
          )
          Deferred.unsafeDone(stop, Effect.void)
        } else {
          io.err(`\n${signal} again: exiting now; run the same command again to go on\n`)
          // 128 + the signal's number, as a shell reports a process the signal ended.
          process.exit(signal === "SIGTERM" ? 143 : 130)
        }
      }
      process.on("SIGINT", onSignal)
      process.on("SIGTERM", onSignal)
      return onSignal
    }),
    (onSignal) =>
      Effect.sync(() => {
        process.off("SIGINT", onSignal)
        process.off("SIGTERM", onSignal)
      })
  )

/** Progress: a bar redrawn on a terminal, a plain line every 5 seconds otherwise; nothing with --quiet. */
const progressOutput = (io: Io, quiet: boolean) => {
  if (quiet) return {}
  if (io.tty) {
    return {
      progressInterval: Duration.millis(250),
      onProgress: (progress: Engine.Progress) =>
        Effect.sync(() => io.err(`\r\x1b[2K${Report.progressBar(progress, io.columns)}`)),
      end: () => io.err("\r\x1b[2K")
    }
  }
  return {
    progressInterval: Duration.seconds(5),
    onProgress: (progress: Engine.Progress) => Effect.sync(() => io.err(`${Report.progressLine(progress)}\n`)),
    end: () => {}
  }
}

const shellQuote = (word: string) => /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replaceAll("'", "'\\''")}'`

/** The batch command; `exit` receives the exit code. */
export const batch = (io: Io, argv: ReadonlyArray<string>, exit: (code: number) => void) =>
  Command.make("batch", options, (parsed) =>
    Effect.gen(function*() {
      const s = yield* settings(parsed, io)
      const stop = yield* Deferred.make<void>()
      yield* signals(io, stop)
      const progress = progressOutput(io, s.quiet || s.run.dryRun === true)
      const summary = yield* Effect.flatMap(preflightClient(s), (preflight) =>
        Engine.run({
          ...s.run,
          preflight,
          stop: Deferred.await(stop),
          ...(progress.onProgress === undefined ? {} : {
            onProgress: progress.onProgress,
            progressInterval: progress.progressInterval
          })
        })).pipe(
          Effect.ensuring(Effect.sync(() => progress.end?.())),
          Effect.provide(layers(s))
        )
      if (summary.dryRun) {
        io.out(`${Report.dryRun(summary)}\n`)
        return exit(EXIT_OK)
      }
      const resume = ["effect-inference", ...argv.slice(2)].map(shellQuote).join(" ")
      io.out(`${Report.summary(summary, resume)}\n`)
      const allDone = summary.succeeded + summary.alreadySucceeded === summary.inShard && summary.invalid === 0
      exit(allDone ? EXIT_OK : EXIT_ROWS_FAILED)
    }).pipe(
      Effect.scoped,
      Effect.catchAll((error) =>
        Effect.sync(() => {
          io.err(`effect-inference batch: ${error.message}\n`)
          exit(EXIT_NOT_STARTED)
        })
      )
    )).pipe(
      Command.withDescription(
        "Put a JSONL file of chat completion requests (the OpenAI Batch API's format) through W&B Inference: " +
          "resumable (run it again to go on), budgeted (--max-cost), with progress"
      )
    )

/** The whole command line: `effect-inference batch …`. */
export const main = (io: Io, argv: ReadonlyArray<string>, version: string, exit: (code: number) => void) =>
  Command.run(
    Command.make("effect-inference").pipe(Command.withSubcommands([batch(io, argv, exit)])),
    { name: "effect-inference", version }
  )(argv).pipe(
    Effect.provide(Logger.replace(Logger.defaultLogger, logger(io))),
    Logger.withMinimumLogLevel(LogLevel.Warning)
  )

/** The client's line for each failed attempt, which names its retry. */
const isAttemptLine = (message: unknown): boolean => {
  const first = Array.isArray(message) ? message[0] : message
  return typeof first === "string" && first.startsWith("Inference attempt failed")
}

/**
 * Log lines on stderr, from Warning up (a Redis outage, a usage the client did
 * not believe, a budget alert), but not the client's line for each failed
 * attempt: on a batch of thousands of rows they would bury the progress, and
 * each row's outcome is in the files. On a terminal the bar's line is cleared
 * first; the bar is drawn again at its next tick.
 */
const logger = (io: Io) => {
  const pretty = Logger.prettyLogger({ stderr: true, colors: false })
  return Logger.make((options) => {
    if (isAttemptLine(options.message)) return
    if (io.tty) io.err("\r\x1b[2K")
    pretty.log(options)
  })
}
