/**
 * What the pieces of a call cost, one at a time, with no network: µs of CPU per
 * use at 64 in flight, the median of interleaved rounds in one process. The
 * figures behind "What stands in the way" in docs/benchmarks.md.
 *
 *   tsx src/costs.ts [calls] [rounds] [substring ...]
 *
 * With substrings, only the pieces whose names have one of them.
 */
import { ChatCompletion } from "@effect-inference/client"
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Logger from "effect/Logger"
import * as Schema from "effect/Schema"
import { decodeCompletion } from "../../client/src/internal/decode.js"
import * as Slots from "../../client/src/internal/slots.js"
import { timeoutFail } from "../../client/src/internal/timeout.js"
import { validateRequest } from "../../client/src/internal/validate.js"
import { completionJson, measureRounds, printRounds } from "./measure.js"

const calls = Number(process.argv[2] ?? 20_000)
const rounds = Number(process.argv[3] ?? 5)
const only = process.argv.slice(4)

const answer = (request: HttpClientRequest.HttpClientRequest) =>
  HttpClientResponse.fromWeb(request, new Response(completionJson, { status: 200 }))
/** Through `HttpClient.make`, as @effect/platform's transports are. */
const made = HttpClient.make((request) => Effect.succeed(answer(request)))
/** Through `HttpClient.makeWith` only, as `UndiciHttpClient` is. */
const lean = HttpClient.makeWith<never, never, never, never>((request) => Effect.map(request, answer), Effect.succeed)

const request = HttpClientRequest.bodyUnsafeJson(HttpClientRequest.post("http://127.0.0.1:1/v1/chat/completions"), {})
const exchange = (client: HttpClient.HttpClient) =>
  Effect.flatMap(client.execute(request), (response) => Effect.map(response.text, JSON.parse))

const json = JSON.parse(completionJson) as unknown
const bySchema = Schema.decodeUnknownEither(ChatCompletion.ChatCompletion)
const minute = Duration.minutes(1)
const annotations = {
  model: "meta-llama/Llama-3.1-8B-Instruct",
  outcome: "success",
  attempts: 1,
  promptTokens: 12,
  completionTokens: 4,
  totalTokens: 16,
  usage: "reported",
  costUsd: 0.0001,
  latencyMs: 3,
  cached: false,
  stream: false,
  requestId: "sim-1"
}

// A call's concurrency slot at `maxConcurrency: 64` with 64 in flight (no one waits): what it costs when free.
const semaphore = Effect.unsafeMakeSemaphore(64)
const slots = Slots.unsafeMake(64)

const all: Record<string, Effect.Effect<unknown, unknown>> = {
  "exchange, HttpClient.make": exchange(made),
  "exchange, HttpClient.makeWith": exchange(lean),
  "  + Effect.timeoutFail": Effect.timeoutFail(exchange(lean), { duration: minute, onTimeout: () => "timeout" }),
  "  + one-fiber timeout": timeoutFail(exchange(lean), { duration: minute, onTimeout: () => "timeout" }),
  "decode, Schema": Effect.suspend(() => bySchema(json)),
  "decode, direct": Effect.suspend(() => decodeCompletion(json)),
  "check the request": Effect.suspend(() =>
    validateRequest({
      model: "meta-llama/Llama-3.1-8B-Instruct",
      messages: [{ role: "user", content: "Say something short about benchmarks." }],
      max_tokens: 20
    })
  ),
  "log line, no annotations": Effect.logInfo("Inference usage"),
  "log line, 12 annotations": Effect.suspend(() => Effect.annotateLogs(Effect.logInfo("Inference usage"), annotations)),
  "slot, Effect Semaphore": semaphore.withPermits(1)(Effect.void),
  "slot, Slots": slots.withPermit(Effect.void)
}

const effects = Object.fromEntries(
  Object.entries(all).filter(([name]) => only.length === 0 || only.some((part) => name.includes(part)))
)

Effect.runPromise(
  measureRounds(effects, { calls, rounds }).pipe(Effect.provide(Logger.remove(Logger.defaultLogger)))
).then(printRounds)
