/**
 * A faithful stand-in for W&B Inference on loopback: the same endpoints, catalogue,
 * statuses, bodies, request checks and concurrency limits, with deterministic
 * answers (thinking, tool calls and structured output included), prefix caching
 * and scriptable faults.
 * Use it for integration tests and demos of code that calls the service.
 *
 * @since 0.1.0
 */
import { InferenceClient } from "@effect-inference/client"
import type * as HttpClient from "@effect/platform/HttpClient"
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import * as Fault from "./Fault.js"
import { Simulator } from "./internal/simulator.js"

/**
 * Whether a model thinks before it answers: never, always, or unless
 * (`"default-on"`) / only when (`"default-off"`) the request says otherwise with
 * `chat_template_kwargs: {"enable_thinking": false | true}`.
 *
 * @since 0.2.0
 * @category models
 */
export type Thinking = "never" | "always" | "default-on" | "default-off"

/**
 * A model in the simulator's catalogue. `GET /v1/models` lists its `id`,
 * `created` and `owned_by`; `thinking` (default `"never"`) and `thinkingTime`
 * (default the simulator's `thinkingTime`) say how it answers.
 *
 * @since 0.1.0
 * @category models
 */
export interface ModelEntry {
  readonly id: string
  readonly created: number
  readonly owned_by: string
  readonly thinking?: Thinking | undefined
  readonly thinkingTime?: Duration.DurationInput | undefined
}

/**
 * What became of a request: answered normally (`"ok"`), given a fault
 * (`"fault"`, see `fault`), refused for a wrong key, over a concurrency limit
 * (the project's or a model's), refused by the request checks (`"invalid-request"`:
 * a 400 or 422), for a model or path that does not exist, or
 * closed by the client before the answer was complete (`"aborted"`). `"pending"` while it runs.
 *
 * @since 0.1.0
 * @category models
 */
export type Outcome =
  | "pending"
  | "ok"
  | "fault"
  | "unauthorized"
  | "concurrency-limited"
  | "invalid-request"
  | "unknown-model"
  | "not-found"
  | "aborted"

/**
 * One request as the simulator saw it. `authorization` is logged as `<redacted>`.
 *
 * @since 0.1.0
 * @category models
 */
export interface LogEntry {
  readonly id: number
  /** Arrival, in epoch milliseconds. */
  readonly at: number
  /** When the connection for this request finished or closed. */
  readonly endedAt: number | undefined
  /**
   * When the request took its concurrency slot, in epoch milliseconds (undefined if it never took one). A request
   * refused at arrival looks again for a few event-loop polls, so this can be later than `at`.
   */
  readonly admittedAt: number | undefined
  readonly method: string
  readonly path: string
  readonly headers: Readonly<Record<string, string>>
  /** The `OpenAI-Project` header. */
  readonly project: string | undefined
  /** The JSON body (or its text when it is not JSON). */
  readonly body: unknown
  readonly stream: boolean
  readonly outcome: Outcome
  /** The fault played, scripted or drawn. */
  readonly fault: Fault.Tag | undefined
  /** The status sent, if headers were sent. */
  readonly status: number | undefined
  /** The connection closed before the response was complete (a reset, a timeout, an abort). */
  readonly closedEarly: boolean
  /** The usage the answer reported (a JSON answer, or a stream asked for `include_usage`), if it got that far. */
  readonly usage:
    | {
      readonly prompt_tokens: number
      readonly completion_tokens: number
      readonly total_tokens: number
      readonly prompt_tokens_details?: { readonly cached_tokens: number } | undefined
      readonly completion_tokens_details?: { readonly reasoning_tokens: number } | undefined
    }
    | undefined
}

/**
 * How the simulator is set up. Everything has a default.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** 0 (the default) picks a free port. */
  readonly port?: number | undefined
  /** Default `127.0.0.1`. */
  readonly host?: string | undefined
  /** Keys accepted as `Authorization: Bearer <key>`. Default `["sim-key"]`. */
  readonly apiKeys?: ReadonlyArray<string> | undefined
  /**
   * The catalogue of `GET /v1/models`; other model ids get 404. Default {@link DEFAULT_MODELS},
   * W&B's own. An id given as a string takes its entry from {@link DEFAULT_MODELS} when it is
   * there (so it thinks as the real model does), and otherwise never thinks.
   */
  readonly models?: ReadonlyArray<string | ModelEntry> | undefined
  /** Seeds the answers and the fault draws. Default 42. */
  readonly seed?: number | undefined
  /** Delay before the first byte of an answer. Default 0. */
  readonly firstByte?: Duration.DurationInput | undefined
  /** Delay per generated token. Default 0. */
  readonly perToken?: Duration.DurationInput | undefined
  /**
   * How long answers are, in tokens, before `max_tokens` cuts them: each request's
   * length is drawn (from the seed and the request) between the two bounds. Default `[8, 40]`.
   */
  readonly answerTokens?: readonly [min: number, max: number] | undefined
  /**
   * How long a thinking model thinks before its first content token, spread over its
   * thinking tokens (a model's own `thinkingTime` wins). Default 10 ms, so tests stay fast;
   * real models can think for minutes.
   */
  readonly thinkingTime?: Duration.DurationInput | undefined
  /** How long the thinking is, in tokens, drawn per request between the bounds. Default `[16, 48]`. */
  readonly reasoningTokens?: readonly [min: number, max: number] | undefined
  /**
   * The field the thinking arrives in, in messages and stream deltas. Default `"reasoning"`, as
   * W&B sends it; `"reasoning_content"` plays an older deployment (vLLM before late 2025).
   */
  readonly reasoningField?: "reasoning" | "reasoning_content" | undefined
  /**
   * Most requests in flight per project (by `OpenAI-Project`); more get a 429 in the
   * real service's words, `concurrency limit reached for requests: project limit reached`.
   * Default no limit.
   */
  readonly concurrencyLimit?: number | undefined
  /**
   * Most requests in flight per project for a model, by model id, beside the
   * project's own limit (W&B was observed to allow one request at a time for
   * `zai-org/GLM-5.2` and eight for DeepSeek). More get the observed 429,
   * `concurrency limit reached for requests: <model>-project limit reached`.
   */
  readonly modelConcurrencyLimits?: Readonly<Record<string, number>> | undefined
  /**
   * Share of chat requests given a fault drawn from `faults`. Default 0. The draw is
   * stratified: of every 10 requests, as close to `faultRate × 10` as the running total
   * allows get a fault, at shuffled positions, so even a short run sees the rate.
   */
  readonly faultRate?: number | undefined
  /** The mix drawn from at `faultRate`. Default `Fault.transient`. */
  readonly faults?: ReadonlyArray<Fault.Fault> | undefined
  /** Entries kept in the request log, oldest dropped first. Default 100,000. */
  readonly maxLogEntries?: number | undefined
  /** Called with each log entry when its request ends (for printing). */
  readonly onLogEntry?: ((entry: LogEntry) => void) | undefined
}

/**
 * The simulator could not listen on its address (the port is taken, say).
 *
 * @since 0.1.0
 * @category errors
 */
export class ListenError extends Data.TaggedError("@effect-inference/testing/ListenError")<{
  readonly host: string
  readonly port: number
  readonly reason: string
}> {
  /**
   * @since 0.1.0
   */
  override get message(): string {
    return `The simulator cannot listen on ${this.host}:${this.port}: ${this.reason}`
  }
}

/**
 * The default catalogue: the models W&B Inference lists (late 2026), with how each
 * thinks. DeepSeek-V4.x, Kimi-K2.x, GLM-5.2, Qwen3.6 and Nemotron-3 think unless
 * told not to; gpt-oss and MiniMax-M3 always think; the others never do.
 *
 * @since 0.1.0
 * @category constants
 */
export const DEFAULT_MODELS: ReadonlyArray<ModelEntry> = [
  { id: "deepseek-ai/DeepSeek-V4.1-Flash", created: 1_788_220_800, owned_by: "deepseek-ai", thinking: "default-on" },
  { id: "deepseek-ai/DeepSeek-V4-Flash-0731", created: 1_785_456_000, owned_by: "deepseek-ai", thinking: "default-on" },
  { id: "deepseek-ai/DeepSeek-V4-Pro-0813", created: 1_786_579_200, owned_by: "deepseek-ai", thinking: "default-on" },
  { id: "deepseek-ai/DeepSeek-V3.1", created: 1_755_648_000, owned_by: "deepseek-ai", thinking: "never" },
  { id: "google/gemma-4-31B-it", created: 1_775_001_600, owned_by: "google", thinking: "never" },
  { id: "google/gemma-4-26B-A4B-it", created: 1_775_001_600, owned_by: "google", thinking: "never" },
  { id: "moonshotai/Kimi-K2.6", created: 1_781_049_600, owned_by: "moonshotai", thinking: "default-on" },
  { id: "moonshotai/Kimi-K2.7-Code", created: 1_789_862_400, owned_by: "moonshotai", thinking: "default-on" },
  { id: "zai-org/GLM-5.2", created: 1_787_097_600, owned_by: "zai-org", thinking: "default-on" },
  { id: "MiniMaxAI/MiniMax-M3", created: 1_784_246_400, owned_by: "MiniMaxAI", thinking: "always" },
  { id: "openai/gpt-oss-120b", created: 1_754_352_000, owned_by: "openai", thinking: "always" },
  { id: "openai/gpt-oss-20b", created: 1_754_352_000, owned_by: "openai", thinking: "always" },
  { id: "Qwen/Qwen3.6-35B-A3B", created: 1_782_950_400, owned_by: "Qwen", thinking: "default-on" },
  { id: "ibm-granite/granite-4.2-8b", created: 1_780_272_000, owned_by: "ibm-granite", thinking: "never" },
  {
    id: "nvidia/NVIDIA-Nemotron-3-Ultra-550B-A55B",
    created: 1_783_555_200,
    owned_by: "nvidia",
    thinking: "default-on"
  },
  { id: "meta-llama/Llama-3.3-70B-Instruct", created: 1_733_443_200, owned_by: "meta-llama", thinking: "never" },
  { id: "meta-llama/Llama-3.1-8B-Instruct", created: 1_721_260_800, owned_by: "meta-llama", thinking: "never" }
]

/**
 * A running simulator.
 *
 * @since 0.1.0
 * @category models
 */
export interface Service {
  /** The base URL to give the client, `http://127.0.0.1:<port>/v1`. */
  readonly url: string
  readonly port: number
  /** The first accepted key. */
  readonly apiKey: Redacted.Redacted<string>
  /**
   * Queues faults for the next chat requests, one each, in order; `"ok"` lets one
   * through. "The next three calls get 503, then succeed" is
   * `script(Fault.overloaded, Fault.overloaded, Fault.overloaded)`.
   */
  readonly script: (...faults: ReadonlyArray<Fault.Fault | "ok">) => Effect.Effect<void>
  /** Chat requests not already scripted get a fault drawn from `faults` with probability `rate`. */
  readonly setFaultRate: (rate: number, faults?: ReadonlyArray<Fault.Fault>) => Effect.Effect<void>
  /**
   * Sets a model's limit of requests in flight per project while the simulator runs, as W&B changes its
   * unpublished limits without notice (`Infinity` lifts it). Requests in flight keep their slots: a lower
   * limit refuses new requests until enough of them have ended.
   */
  readonly setModelConcurrencyLimit: (model: string, limit: number) => Effect.Effect<void>
  /** Every request so far (up to `maxLogEntries`), oldest first. */
  readonly log: Effect.Effect<ReadonlyArray<LogEntry>>
  readonly clearLog: Effect.Effect<void>
  /** TCP connections open now. */
  readonly openConnections: Effect.Effect<number>
  /** Chat requests being answered now, all projects. */
  readonly inFlight: Effect.Effect<number>
}

/**
 * @since 0.1.0
 * @category tags
 */
export class InferenceSimulator extends Context.Tag("@effect-inference/testing/InferenceSimulator")<
  InferenceSimulator,
  Service
>() {}

const millis = (input: Duration.DurationInput | undefined): number =>
  input === undefined ? 0 : Duration.toMillis(Duration.decode(input))

/**
 * The most requests the simulator was answering at once, from a log: the time
 * each request answered normally took its slot (`admittedAt`) and its end. A close and an arrival in the same
 * millisecond count as the close first (the slot is freed on close).
 *
 * @example
 * ```ts
 * import { InferenceSimulator } from "@effect-inference/testing"
 * import { Effect } from "effect"
 *
 * // After a batch: did the client keep under the concurrency it was given?
 * const peak = Effect.flatMap(InferenceSimulator.InferenceSimulator, (simulator) =>
 *   Effect.map(simulator.log, InferenceSimulator.peakInFlight))
 * ```
 *
 * @since 0.1.0
 * @category utils
 */
export const peakInFlight = (log: ReadonlyArray<LogEntry>): number => {
  const events = log
    .filter((entry) => entry.outcome === "ok")
    .flatMap((entry) => [[entry.admittedAt ?? entry.at, 1], [entry.endedAt ?? Infinity, -1]] as const)
    .sort(([a, da], [b, db]) => a - b || da - db)
  let current = 0
  let peak = 0
  for (const [, delta] of events) {
    current += delta
    peak = Math.max(peak, current)
  }
  return peak
}

/**
 * Starts a simulator for the life of the scope; closing the scope closes every
 * connection, hung ones included.
 *
 * @example
 * ```ts
 * import { InferenceSimulator } from "@effect-inference/testing"
 * import { Effect } from "effect"
 *
 * // A simulator for the length of the scope, on a free port, failing a fifth of the calls.
 * const program = Effect.gen(function*() {
 *   const simulator = yield* InferenceSimulator.make({ seed: 1, faultRate: 0.2 })
 *   yield* Effect.log(`simulator at ${simulator.url}`)
 * }).pipe(Effect.scoped)
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: Options = {}): Effect.Effect<Service, ListenError, Scope.Scope> =>
  Effect.gen(function*() {
    const apiKeys = options.apiKeys ?? ["sim-key"]
    const rate = options.faultRate ?? 0
    if (apiKeys.length === 0) return yield* Effect.dieMessage("InferenceSimulator: apiKeys must hold at least one key")
    if (!(rate >= 0 && rate <= 1)) {
      return yield* Effect.dieMessage(`InferenceSimulator: faultRate must be within 0..1, got ${rate}`)
    }
    const answerTokens = options.answerTokens ?? [8, 40]
    if (!(Number.isInteger(answerTokens[0]) && answerTokens[0] >= 1 && answerTokens[1] >= answerTokens[0])) {
      return yield* Effect.dieMessage(`InferenceSimulator: answerTokens must be whole numbers, 1 <= min <= max`)
    }
    const reasoningTokens = options.reasoningTokens ?? [16, 48]
    if (
      !(Number.isInteger(reasoningTokens[0]) && reasoningTokens[0] >= 1 && reasoningTokens[1] >= reasoningTokens[0])
    ) {
      return yield* Effect.dieMessage(`InferenceSimulator: reasoningTokens must be whole numbers, 1 <= min <= max`)
    }
    const modelConcurrencyLimits = options.modelConcurrencyLimits ?? {}
    for (const [model, limit] of Object.entries(modelConcurrencyLimits)) {
      if (!(Number.isInteger(limit) && limit >= 1)) {
        return yield* Effect.dieMessage(
          `InferenceSimulator: modelConcurrencyLimits["${model}"] must be a whole number of at least 1, got ${limit}`
        )
      }
    }
    const thinkingMillis = millis(options.thinkingTime ?? "10 millis")
    const host = options.host ?? "127.0.0.1"
    const requestedPort = options.port ?? 0
    const simulator = new Simulator({
      host,
      port: requestedPort,
      apiKeys,
      models: (options.models ?? DEFAULT_MODELS).map((m) => {
        const entry = typeof m === "string"
          ? DEFAULT_MODELS.find((known) => known.id === m) ??
            { id: m, created: 1_700_000_000, owned_by: m.split("/")[0] ?? "simulator" }
          : m
        return {
          id: entry.id,
          created: entry.created,
          owned_by: entry.owned_by,
          thinking: entry.thinking ?? "never",
          thinkingMillis: entry.thinkingTime === undefined ? thinkingMillis : millis(entry.thinkingTime)
        }
      }),
      seed: options.seed ?? 42,
      firstByteMillis: millis(options.firstByte),
      perTokenMillis: millis(options.perToken),
      answerTokens,
      reasoningTokens,
      reasoningField: options.reasoningField ?? "reasoning",
      concurrencyLimit: options.concurrencyLimit ?? Infinity,
      modelConcurrencyLimits,
      faultRate: rate,
      faults: options.faults ?? Fault.transient,
      maxLogEntries: options.maxLogEntries ?? 100_000,
      onLogEntry: options.onLogEntry
    })
    const port = yield* Effect.acquireRelease(
      Effect.tryPromise({
        try: () => simulator.start(),
        catch: (error) =>
          new ListenError({
            host,
            port: requestedPort,
            reason: error instanceof Error ? error.message : String(error)
          })
      }),
      () => Effect.promise(() => simulator.close())
    )
    return {
      url: `http://${host}:${port}/v1`,
      port,
      apiKey: Redacted.make(apiKeys[0]!),
      script: (...faults) => Effect.sync(() => simulator.script(faults)),
      setFaultRate: (rate, faults) =>
        rate >= 0 && rate <= 1
          ? Effect.sync(() => simulator.setChaos(rate, faults))
          : Effect.dieMessage(`InferenceSimulator: fault rate must be within 0..1, got ${rate}`),
      setModelConcurrencyLimit: (model, limit) =>
        limit === Infinity || (Number.isInteger(limit) && limit >= 1)
          ? Effect.sync(() => simulator.setModelConcurrencyLimit(model, limit))
          : Effect.dieMessage(
            `InferenceSimulator: the limit of "${model}" must be a whole number of at least 1 or Infinity, got ${limit}`
          ),
      log: Effect.sync(() => simulator.log()),
      clearLog: Effect.sync(() => simulator.clearLog()),
      openConnections: Effect.sync(() => simulator.openConnections()),
      inFlight: Effect.sync(() => simulator.inFlight())
    } satisfies Service
  })

/**
 * The simulator as a scoped `Layer`: a free port, closed with the layer.
 *
 * @example
 * ```ts
 * import { InferenceSimulator } from "@effect-inference/testing"
 * import { FetchHttpClient } from "@effect/platform"
 * import { Layer } from "effect"
 *
 * const TestLive = InferenceSimulator.clientLayer().pipe(
 *   Layer.provideMerge(InferenceSimulator.layer({ seed: 7 })),
 *   Layer.provide(FetchHttpClient.layer)
 * )
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options?: Options): Layer.Layer<InferenceSimulator, ListenError> =>
  Layer.scoped(InferenceSimulator, make(options))

/**
 * An `InferenceClient` pointed at the simulator in context (its URL and key);
 * `options` override the rest.
 *
 * @example
 * ```ts
 * import { InferenceSimulator } from "@effect-inference/testing"
 * import { FetchHttpClient } from "@effect/platform"
 * import { Layer } from "effect"
 *
 * // A client of the simulator without retries, to see each fault as it comes.
 * const TestLive = InferenceSimulator.clientLayer({ retry: false }).pipe(
 *   Layer.provideMerge(InferenceSimulator.layer({ faultRate: 0.5 })),
 *   Layer.provide(FetchHttpClient.layer)
 * )
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const clientLayer = (
  options: Partial<InferenceClient.Options> = {}
): Layer.Layer<InferenceClient.InferenceClient, never, InferenceSimulator | HttpClient.HttpClient> =>
  Layer.unwrapEffect(
    Effect.map(
      InferenceSimulator,
      (simulator) => InferenceClient.layer({ apiKey: simulator.apiKey, baseUrl: simulator.url, ...options })
    )
  )
