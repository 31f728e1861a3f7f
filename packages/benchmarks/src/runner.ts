/**
 * One benchmark run, in a process of its own: one client makes `requests` calls
 * at `concurrency` against the server at `url`, after a warm-up, and prints one
 * line of JSON with the CPU time of this process, the wall time, the peak RSS
 * and the heap retained after a full GC.
 *
 *   node --expose-gc --import tsx src/runner.ts --client undici --url http://127.0.0.1:8787/v1 \
 *     --concurrency 64 --requests 20000 [--stream] [--drive workers|forEach] [--warmup N] [--cpu-profile <file>]
 *
 * `--drive workers` (the default) has `concurrency` long-lived workers take the
 * calls one after another; `--drive forEach` hands all of them to
 * `Effect.forEach(…, { concurrency })`, a fiber a call, as most callers write it
 * (Effect clients only). `--cpu-profile <file>` writes a V8 CPU profile of the
 * measured calls only (not the start-up, not the warm-up) to `file`.
 */
import { ChatCompletion, InferenceClient } from "@effect-inference/client"
import * as UndiciHttpClient from "@effect-inference/client/UndiciHttpClient"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as Redacted from "effect/Redacted"
import * as Stream from "effect/Stream"
import { createParser } from "eventsource-parser"
import * as fs from "node:fs"
import * as inspector from "node:inspector/promises"
import OpenAI from "openai"
import * as undici from "undici"
import { type ClientName, clients, type Result, variants } from "./clients.js"

/** Stops the run: a benchmark that goes wrong has no figures to give. */
const fail = (message: string): never => {
  process.stderr.write(`${message}\n`)
  return process.exit(1)
}

const arg = (name: string): string | undefined => {
  const at = process.argv.indexOf(`--${name}`)
  return at === -1 ? undefined : process.argv[at + 1]
}

const name = arg("client") as ClientName
const url = arg("url")!
const concurrency = Number(arg("concurrency") ?? 64)
const requests = Number(arg("requests") ?? 20_000)
const stream = process.argv.includes("--stream")
const drive = arg("drive") ?? "workers"
const warmup = Number(arg("warmup") ?? Math.min(2_000, Math.ceil(requests / 5)))
const cpuProfile = arg("cpu-profile")
const API_KEY = "bench-key"
const MODEL = "meta-llama/Llama-3.1-8B-Instruct"

if (drive !== "workers" && drive !== "forEach") {
  process.stderr.write(`unknown --drive ${drive}; workers or forEach\n`)
  process.exit(2)
}

if (!clients.includes(name)) {
  process.stderr.write(`unknown client ${name}; one of ${clients.join(", ")}\n`)
  process.exit(2)
}

const body = {
  model: MODEL,
  messages: [{ role: "user" as const, content: "Say something short about benchmarks." }],
  max_tokens: stream ? 500 : 20
}

/** A call: resolves to the chunks it received (1 for a plain call). */
type Call = () => Promise<number>

// ---------------------------------------------------------------------------
// Promise clients
// ---------------------------------------------------------------------------

const headers = { "content-type": "application/json", authorization: `Bearer ${API_KEY}` }

const undiciCall: Call = async () => {
  const response = await undici.request(`${url}/chat/completions`, {
    method: "POST",
    headers,
    body: JSON.stringify(stream ? { ...body, stream: true, stream_options: { include_usage: true } } : body)
  })
  if (response.statusCode !== 200) fail(`status ${response.statusCode}`)
  if (!stream) {
    const completion = JSON.parse(await response.body.text()) as { choices: Array<unknown> }
    if (completion.choices.length !== 1) fail("no choice")
    return 1
  }
  // The floor for streaming: a linear SSE parser and JSON.parse per event.
  let chunks = 0
  const parser = createParser({
    onEvent: (event) => {
      if (event.data !== "[DONE]") {
        JSON.parse(event.data)
        chunks++
      }
    }
  })
  const decoder = new TextDecoder()
  for await (const bytes of response.body) parser.feed(decoder.decode(bytes as Uint8Array, { stream: true }))
  return chunks
}

const openai = new OpenAI({ apiKey: API_KEY, baseURL: url })

const openaiCall: Call = async () => {
  if (!stream) {
    const completion = await openai.chat.completions.create(body)
    if (completion.choices.length !== 1) fail("no choice")
    return 1
  }
  let chunks = 0
  const answer = await openai.chat.completions.create({
    ...body,
    stream: true,
    stream_options: { include_usage: true }
  })
  for await (const _ of answer) chunks++
  return chunks
}

// ---------------------------------------------------------------------------
// Effect clients
// ---------------------------------------------------------------------------

const decodeCompletion = HttpClientResponse.schemaBodyJson(ChatCompletion.ChatCompletion)

/** @effect/platform's HttpClient with the same Schema as the client, and nothing else. */
const platformCall = Effect.gen(function*() {
  const http = (yield* HttpClient.HttpClient).pipe(HttpClient.filterStatusOk)
  const request = HttpClientRequest.post(`${url}/chat/completions`).pipe(
    HttpClientRequest.bearerToken(API_KEY),
    HttpClientRequest.bodyUnsafeJson(body)
  )
  if (!stream) return Effect.map(Effect.flatMap(http.execute(request), decodeCompletion), () => 1)
  // The floor of an Effect stream: the response body as a `Stream`, split into SSE lines, each `data:` parsed,
  // counted by `Stream.runCount`; no timeouts, no retry, no usage, no schema.
  const streamRequest = HttpClientRequest.post(`${url}/chat/completions`).pipe(
    HttpClientRequest.bearerToken(API_KEY),
    HttpClientRequest.bodyUnsafeJson({ ...body, stream: true, stream_options: { include_usage: true } })
  )
  return Stream.runCount(
    http.execute(streamRequest).pipe(
      Effect.map((response) => response.stream),
      Stream.unwrapScoped,
      Stream.decodeText(),
      Stream.splitLines,
      Stream.filter((line) => line.startsWith("data: ") && line !== "data: [DONE]"),
      Stream.map((line) => JSON.parse(line.slice(6)) as unknown)
    )
  )
})

/** "client: no retry" is the variant "no retry"; "client" (over any transport) is the defaults. */
const clientOptions = (client: ClientName): Partial<InferenceClient.Options> =>
  variants[client.slice("client: ".length) as keyof typeof variants] ?? variants.default

const clientCall = (client: ClientName) =>
  Effect.gen(function*() {
    const inference = yield* InferenceClient.make({
      apiKey: Redacted.make(API_KEY),
      baseUrl: url,
      ...clientOptions(client)
    })
    return stream
      ? Stream.runCount(inference.streamChatCompletion(body))
      : Effect.as(inference.chatCompletion(body), 1)
  })

// ---------------------------------------------------------------------------
// Load
// ---------------------------------------------------------------------------

/** `total` calls by `concurrency` workers; the chunks received. */
const loadPromise = async (call: Call, total: number): Promise<number> => {
  let started = 0
  let chunks = 0
  const worker = async () => {
    while (started < total) {
      started++
      const received = await call()
      chunks += received
    }
  }
  await Promise.all(Array.from({ length: concurrency }, worker))
  return chunks
}

/** `total` calls, a fiber each, at most `concurrency` at once: the chunks received. */
const loadForEach = (call: Effect.Effect<number, unknown>, total: number): Effect.Effect<number, unknown> =>
  Effect.map(
    Effect.forEach(Array.from({ length: total }), () => call, { concurrency }),
    (received) => received.reduce((sum, n) => sum + n, 0)
  )

const loadEffect = (call: Effect.Effect<number, unknown>, total: number): Effect.Effect<number, unknown> =>
  drive === "forEach" ? loadForEach(call, total) : Effect.suspend(() => {
    let started = 0
    let chunks = 0
    const worker = Effect.whileLoop({
      while: () => started < total,
      body: () => {
        started++
        return call
      },
      step: (n) => {
        chunks += n
      }
    })
    return Effect.map(
      Effect.all(Array.from({ length: concurrency }, () => worker), { concurrency: "unbounded", discard: true }),
      () => chunks
    )
  })

const gc = () => (globalThis as { gc?: () => void }).gc?.()

/**
 * Profiles this process until `stop`, which writes the profile to `file`. Starting the profiler takes a while of
 * its own (V8 lists the code compiled so far), sampled inside the inspector's `dispatch` as if it were the calls'
 * work: those samples are left out.
 */
const profiler = async (file: string) => {
  const session = new inspector.Session()
  session.connect()
  await session.post("Profiler.enable")
  await session.post("Profiler.start")
  return {
    stop: async () => {
      const { profile } = await session.post("Profiler.stop")
      const byId = new Map(profile.nodes.map((node) => [node.id, node]))
      const parents = new Map<number, number>()
      for (const node of profile.nodes) for (const child of node.children ?? []) parents.set(child, node.id)
      const inspecting = (id: number): boolean => {
        for (let at: number | undefined = id; at !== undefined; at = parents.get(at)) {
          const frame = byId.get(at)?.callFrame
          if (frame?.url.startsWith("node:inspector") === true) return true
        }
        return false
      }
      const samples: Array<number> = []
      const timeDeltas: Array<number> = []
      ;(profile.samples ?? []).forEach((id, i) => {
        if (inspecting(id)) return
        samples.push(id)
        timeDeltas.push(profile.timeDeltas?.[i] ?? 0)
      })
      fs.writeFileSync(file, JSON.stringify({ ...profile, samples, timeDeltas }))
      session.disconnect()
    }
  }
}

const measure = async (load: (total: number) => Promise<number>): Promise<Result> => {
  await load(warmup)
  gc()
  const profiling = cpuProfile === undefined ? undefined : await profiler(cpuProfile)
  const cpu = process.cpuUsage()
  const start = process.hrtime.bigint()
  const chunks = await load(requests)
  const wallMillis = Number(process.hrtime.bigint() - start) / 1e6
  const used = process.cpuUsage(cpu)
  if (profiling !== undefined) await profiling.stop()
  gc()
  return {
    client: name,
    requests,
    chunks,
    cpuMicros: used.user + used.system,
    wallMillis,
    peakRssMb: process.resourceUsage().maxRSS / 1024,
    heapAfterGcMb: process.memoryUsage().heapUsed / 1024 / 1024
  }
}

/** `platform` and the client's last row over @effect/platform's undici layer; the client over its own. */
const transport = name === "platform" || name === "client: over NodeHttpClient.layerUndici"
  ? NodeHttpClient.layerUndici
  : UndiciHttpClient.layer
const effectLayer = Layer.merge(transport, Logger.remove(Logger.defaultLogger))

const run = async (): Promise<Result> => {
  switch (name) {
    case "undici":
      return measure((total) => loadPromise(undiciCall, total))
    case "openai":
      return measure((total) => loadPromise(openaiCall, total))
    default: {
      // One runtime for the whole run, as an application has: the client is built once.
      const call = name === "platform" ? platformCall : clientCall(name)
      return Effect.runPromise(
        Effect.gen(function*() {
          const once = yield* call
          const runtime = yield* Effect.runtime<never>()
          const runLoad = (total: number) => Effect.runPromise(Effect.provide(loadEffect(once, total), runtime))
          return yield* Effect.promise(() => measure(runLoad))
        }).pipe(Effect.scoped, Effect.provide(effectLayer))
      )
    }
  }
}

run().then(
  (result) => {
    process.stdout.write(`${JSON.stringify(result)}\n`)
    process.exit(0)
  },
  (error) => {
    process.stderr.write(`${String(error)}\n`)
    process.exit(1)
  }
)
