#!/usr/bin/env node
/**
 * The simulator as a standalone process, installed as the `effect-inference-simulator`
 * command (`pnpm simulator` in this repository):
 *
 *   npx effect-inference-simulator --port 8787 --fault-rate 0.2
 *
 * Runs until interrupted (Ctrl-C), printing one line per request. A port that cannot
 * be listened on (in use, not permitted) is one line on stderr and exit code 1.
 *
 * @since 0.1.0
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import { parseArgs } from "node:util"
import * as Fault from "./Fault.js"
import * as InferenceSimulator from "./InferenceSimulator.js"

const command = "effect-inference-simulator"

const usage = `Usage: ${command} [options]

  --port <n>               port to listen on (default 8787; 0 picks a free one)
  --host <addr>            address to bind (default 127.0.0.1)
  --key <key>              an accepted API key; repeat for more (default sim-key)
  --fault-rate <0..1>      share of chat requests given a random fault (default 0)
  --faults <list>          comma-separated faults to draw from (default: the transient mix), e.g.
                           Overloaded,RateLimited:2,InternalError,ConnectionReset,Hang
  --concurrency-limit <n>  requests in flight per project before W&B's 429 (default: none)
  --model-concurrency-limit <model>=<n>
                           requests in flight per project for one model before its 429; repeat
                           for more models, e.g. zai-org/GLM-5.2=1
  --seed <n>               seed of answers and fault draws (default 42)
  --first-byte-ms <n>      delay before the first byte of an answer (default 0)
  --per-token-ms <n>       delay per generated token (default 0)
  --thinking-ms <n>        how long a thinking model thinks before its content (default 10)
  --quiet                  do not print a line per request
  --help                   this text

Faults: ${Fault.all.map((f) => f._tag).filter((t, i, all) => all.indexOf(t) === i).join(", ")}`

type Parsed =
  | { readonly _tag: "Help" }
  | { readonly _tag: "Invalid"; readonly message: string }
  | { readonly _tag: "Run"; readonly options: InferenceSimulator.Options; readonly quiet: boolean }

const number = (name: string, text: string | undefined, check: (n: number) => boolean): number | string | undefined => {
  if (text === undefined) return undefined
  const n = Number(text)
  return text.trim() !== "" && Number.isFinite(n) && check(n) ? n : `--${name}: not a valid value: "${text}"`
}

const parse = (argv: ReadonlyArray<string>): Parsed => {
  let values
  try {
    values = parseArgs({
      args: [...argv],
      options: {
        port: { type: "string" },
        host: { type: "string" },
        key: { type: "string", multiple: true },
        "fault-rate": { type: "string" },
        faults: { type: "string" },
        "concurrency-limit": { type: "string" },
        "model-concurrency-limit": { type: "string", multiple: true },
        "thinking-ms": { type: "string" },
        seed: { type: "string" },
        "first-byte-ms": { type: "string" },
        "per-token-ms": { type: "string" },
        quiet: { type: "boolean" },
        help: { type: "boolean" }
      },
      allowPositionals: false
    }).values
  } catch (error) {
    return { _tag: "Invalid", message: error instanceof Error ? error.message : String(error) }
  }
  if (values.help) return { _tag: "Help" }
  const port = number("port", values.port ?? "8787", (n) => Number.isInteger(n) && n >= 0 && n < 65536)
  const rate = number("fault-rate", values["fault-rate"], (n) => n >= 0 && n <= 1)
  const limit = number("concurrency-limit", values["concurrency-limit"], (n) => Number.isInteger(n) && n >= 1)
  const seed = number("seed", values.seed, Number.isInteger)
  const firstByte = number("first-byte-ms", values["first-byte-ms"], (n) => n >= 0)
  const perToken = number("per-token-ms", values["per-token-ms"], (n) => n >= 0)
  const thinking = number("thinking-ms", values["thinking-ms"], (n) => n >= 0)
  for (const value of [port, rate, limit, seed, firstByte, perToken, thinking]) {
    if (typeof value === "string") return { _tag: "Invalid", message: value }
  }
  const modelLimits: Record<string, number> = {}
  for (const pair of values["model-concurrency-limit"] ?? []) {
    const at = pair.lastIndexOf("=")
    const n = Number(pair.slice(at + 1))
    if (at <= 0 || pair.slice(at + 1).trim() === "" || !Number.isInteger(n) || n < 1) {
      return { _tag: "Invalid", message: `--model-concurrency-limit: not <model>=<n>: "${pair}"` }
    }
    modelLimits[pair.slice(0, at)] = n
  }
  const faultNames = values.faults?.split(",").filter((s) => s.trim() !== "")
  const faults = faultNames?.map((name) => [name, Fault.fromString(name)] as const)
  const unknown = faults?.find(([, fault]) => fault === undefined)
  if (unknown !== undefined) return { _tag: "Invalid", message: `--faults: unknown fault "${unknown[0]}"` }
  return {
    _tag: "Run",
    quiet: values.quiet === true,
    options: {
      port: port as number,
      host: values.host,
      apiKeys: values.key,
      faultRate: rate as number | undefined,
      faults: faults?.map(([, fault]) => fault!),
      concurrencyLimit: limit as number | undefined,
      modelConcurrencyLimits: modelLimits,
      thinkingTime: thinking === undefined ? undefined : `${thinking as number} millis`,
      seed: seed as number | undefined,
      firstByte: firstByte === undefined ? undefined : `${firstByte as number} millis`,
      perToken: perToken === undefined ? undefined : `${perToken as number} millis`
    }
  }
}

const line = (entry: InferenceSimulator.LogEntry): string => {
  const model = typeof entry.body === "object" && entry.body !== null && "model" in entry.body
    ? ` ${String(entry.body.model)}`
    : ""
  const what = entry.fault === undefined ? entry.outcome : `fault ${entry.fault}`
  const ms = entry.endedAt === undefined ? "" : ` ${entry.endedAt - entry.at} ms`
  return `${new Date(entry.at).toISOString()} ${entry.method} ${entry.path}${model} -> ${
    entry.status ?? "-"
  } ${what}${ms}${entry.closedEarly ? " (closed early)" : ""}`
}

const main = (argv: ReadonlyArray<string>) => {
  const parsed = parse(argv)
  switch (parsed._tag) {
    case "Help":
      return Console.log(usage)
    case "Invalid":
      return Effect.zipRight(Console.error(`${parsed.message}\n\n${usage}`), Effect.sync(() => process.exitCode = 2))
    case "Run": {
      const options: InferenceSimulator.Options = {
        ...parsed.options,
        onLogEntry: parsed.quiet ? undefined : (entry) => console.log(line(entry))
      }
      return Effect.gen(function*() {
        const simulator = yield* InferenceSimulator.InferenceSimulator
        yield* Console.log(
          `W&B Inference simulator listening on ${simulator.url} (${
            // the default key is a public fixture; keys given on the command line are not echoed
            options.apiKeys === undefined
              ? `API key: ${Redacted.value(simulator.apiKey)}`
              : `${options.apiKeys.length} API key(s)`}, fault rate ${options.faultRate ?? 0}). Ctrl-C stops it.`
        )
        return yield* Effect.never
      }).pipe(
        Effect.provide(InferenceSimulator.layer(options)),
        // One line a person can act on, not a stack: the usual cause is a second simulator on the same port.
        Effect.catchTag("@effect-inference/testing/ListenError", (error) =>
          Effect.zipRight(
            Console.error(
              error.reason.includes("EADDRINUSE")
                ? `${command}: port ${error.port} is in use on ${error.host}; choose another with --port (0 picks a free one)`
                : `${command}: cannot listen on ${error.host}:${error.port}: ${error.reason}`
            ),
            Effect.sync(() => process.exitCode = 1)
          ))
      )
    }
  }
}

NodeRuntime.runMain(main(process.argv.slice(2)))
