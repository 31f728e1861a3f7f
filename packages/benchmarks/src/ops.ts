/**
 * The client's work per call counted rather than timed: Effect runtime
 * operations (each step the fiber runtime dispatches: a sync, a flatMap's
 * continuation, an async, a runtime-flags change, ...) and bytes allocated,
 * per plain call through a transport that answers from memory, for the client
 * in its default configuration and with each feature off. On a small shared
 * machine CPU time per call varies by ±30% from run to run, which hides a 5%
 * change; these counts do not vary, so two trees (two worktrees, each running
 * this script) compare exactly.
 *
 *   tsx src/ops.ts [calls] [variant ...]
 *
 * The operations are counted by wrapping the fiber runtime's dispatch methods
 * (`FiberRuntime.prototype`, from Effect's own internal module: a benchmark's
 * view only). Allocation is V8's sampling heap profiler (every 256 bytes on
 * average), objects collected by the GC included.
 */
import { InferenceClient } from "@effect-inference/client"
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import * as Effect from "effect/Effect"
import * as Logger from "effect/Logger"
import * as Redacted from "effect/Redacted"
import * as inspector from "node:inspector/promises"
import { createRequire } from "node:module"
import * as path from "node:path"
import { pathToFileURL } from "node:url"
import { variants } from "./clients.js"
import { completionJson } from "./measure.js"

const calls = Number(process.argv[2] ?? 2_000)
const only = process.argv.slice(3)

/** The op codes the fiber runtime dispatches through methods of the same name. */
const OPERATIONS = [
  "Sync",
  "Success",
  "Failure",
  "Tag",
  "WithRuntime",
  "UpdateRuntimeFlags",
  "OnSuccess",
  "OnFailure",
  "OnSuccessAndFailure",
  "Async",
  "Yield",
  "While",
  "Iterator",
  "Commit"
]

let operations = 0

/** Counts each dispatch of the runtime this process's `effect` runs on; the op codes it found no method for. */
const countOperations = async (): Promise<ReadonlyArray<string>> => {
  const effectDir = path.dirname(createRequire(import.meta.url).resolve("effect/package.json"))
  const runtime = await import(pathToFileURL(path.join(effectDir, "dist/esm/internal/fiberRuntime.js")).href) as {
    readonly FiberRuntime: { readonly prototype: Record<string, unknown> }
  }
  const prototype = runtime.FiberRuntime.prototype
  const missing: Array<string> = []
  for (const name of OPERATIONS) {
    const original = prototype[name]
    if (typeof original !== "function") {
      missing.push(name)
      continue
    }
    prototype[name] = function(this: unknown, ...args: Array<unknown>) {
      operations++
      return Reflect.apply(original, this, args)
    }
  }
  return missing
}

const transport = HttpClient.makeWith<never, never, never, never>(
  (request) =>
    Effect.map(request, (request) =>
      HttpClientResponse.fromWeb(
        request,
        new Response(completionJson, {
          status: 200,
          headers: { "content-type": "application/json", "content-length": String(Buffer.byteLength(completionJson)) }
        })
      )),
  Effect.succeed
)

const body = {
  model: "meta-llama/Llama-3.1-8B-Instruct",
  messages: [{ role: "user" as const, content: "Say something short about benchmarks." }],
  max_tokens: 20
}

/** Bytes allocated while `effect` runs, from V8's sampling heap profiler. */
const allocated = <A, E>(effect: Effect.Effect<A, E>): Effect.Effect<number, E> =>
  Effect.acquireUseRelease(
    Effect.promise(async () => {
      const session = new inspector.Session()
      session.connect()
      await session.post("HeapProfiler.startSampling", {
        samplingInterval: 256,
        includeObjectsCollectedByMajorGC: true,
        includeObjectsCollectedByMinorGC: true
      })
      return session
    }),
    (session) =>
      Effect.zipRight(
        effect,
        Effect.promise(async () => {
          const { profile } = await session.post("HeapProfiler.stopSampling")
          let total = 0
          const walk = (node: typeof profile.head) => {
            total += node.selfSize
            for (const child of node.children) walk(child)
          }
          walk(profile.head)
          return total
        })
      ),
    (session) => Effect.sync(() => session.disconnect())
  )

const main = Effect.gen(function*() {
  const missing = yield* Effect.promise(countOperations)
  if (missing.length > 0) {
    return yield* Effect.fail(
      `the fiber runtime has no method to count for ${missing.join(", ")}: another Effect version?`
    )
  }
  const rows: Array<string> = []
  for (const [name, options] of Object.entries(variants)) {
    if (only.length > 0 && !only.includes(name)) continue
    const client = yield* InferenceClient.make({
      apiKey: Redacted.make("bench-key"),
      baseUrl: "http://127.0.0.1:1/v1",
      ...options
    })
    const run = (n: number) =>
      Effect.forEach(Array.from({ length: n }), () => client.chatCompletion(body), { concurrency: 1, discard: true })
    // Warm: the first calls build what later calls reuse (a model's breaker, its adaptive limit, metric keys).
    yield* run(200)
    operations = 0
    yield* run(calls)
    const perCall = operations / calls
    const bytes = yield* allocated(run(calls))
    rows.push(`| ${name} | ${perCall.toFixed(1)} | ${(bytes / calls / 1024).toFixed(1)} |`)
  }
  process.stdout.write(
    `Per plain call, ${calls} calls one after another, a transport answering from memory:\n\n` +
      "| client | runtime operations | KB allocated |\n|---|--:|--:|\n" + rows.join("\n") + "\n"
  )
}).pipe(
  Effect.provideService(HttpClient.HttpClient, transport),
  Effect.provide(Logger.remove(Logger.defaultLogger))
)

Effect.runPromise(main)
