/**
 * Budgets and the response cache against the simulator over loopback HTTP: a
 * budget holds under 100 concurrent calls with the server's real usage, and a
 * cache on disk merges concurrent calls, survives a new layer and replays
 * streams.
 */
import { InferenceClient, ResponseCache, UsageTracker } from "@effect-inference/client"
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import * as NodePath from "@effect/platform-node/NodePath"
import { assert, describe, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Stream from "effect/Stream"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import { chatLog, chatRequest, clientLayer, MODEL, streamChat, withSimulatorOnly } from "../utils/Integration.js"

const PRICES = { [MODEL]: { input: 1, output: 2 } }

/** A directory of its own for one test, removed when the test ends. */
const tempDirectory = Effect.acquireRelease(
  Effect.promise(() => fs.mkdtemp(path.join(os.tmpdir(), "effect-inference-cache-"))),
  (directory) => Effect.promise(() => fs.rm(directory, { recursive: true, force: true }))
)

const fileCache = (directory: string) =>
  ResponseCache.layerFileSystem(directory).pipe(Layer.provide(Layer.merge(NodeFileSystem.layer, NodePath.layer)))

/** Runs `effect` with a client of the simulator that has `extra` (a tracker, a cache) in context. */
const withClientOver = <ROut, E>(extra: Layer.Layer<ROut, E>) => <A, E2, R>(effect: Effect.Effect<A, E2, R>) =>
  Effect.provide(effect, clientLayer().pipe(Layer.provideMerge(extra)))

describe("budgets against the simulator", () => {
  it.live("100 concurrent calls against a budget of 10 calls' cost never spend past it", () =>
    withSimulatorOnly(
      Effect.gen(function*() {
        const tracker = yield* UsageTracker.make({ prices: PRICES, logLevel: "None" })
        const request = (i: number) => chatRequest({ max_tokens: 16 }, `Question ${i}`)
        // The tracker's own upper estimate of one call, times ten.
        const one = yield* tracker.reserve(request(10))
        const budget = { usd: 10 * one.usd, tokens: 10 * (one.promptTokens + one.completionTokens) }
        const result = yield* withClientOver(
          UsageTracker.layer({ prices: PRICES, logLevel: "None", budget })
        )(Effect.gen(function*() {
          const client = yield* InferenceClient.InferenceClient
          const exits = yield* Effect.forEach(
            Array.from({ length: 100 }, (_, i) => request(10 + i)),
            (r) => Effect.exit(client.chatCompletion(r)),
            { concurrency: "unbounded" }
          )
          const used = yield* UsageTracker.UsageTracker
          return { exits, budget: yield* used.budget, totals: yield* used.totals }
        }))
        const sent = (yield* chatLog).length
        const succeeded = result.exits.filter(Exit.isSuccess).length
        assert.strictEqual(succeeded, 10)
        assert.strictEqual(sent, 10)
        for (const status of result.budget) {
          assert.isAtMost(status.spent, status.limit * (1 + 1e-9), status.dimension)
          assert.strictEqual(status.reserved, 0)
        }
        assert.strictEqual(result.totals.overall.failed, 90)
      })
    ))
})

describe("the response cache against the simulator", () => {
  const deterministic = chatRequest({ temperature: 0, max_tokens: 24 }, "Tell me about caches")

  it.live("concurrent identical calls make one request; a new layer over the same directory makes none", () =>
    withSimulatorOnly(Effect.scoped(Effect.gen(function*() {
      const directory = yield* tempDirectory
      const first = yield* withClientOver(fileCache(directory))(Effect.gen(function*() {
        const client = yield* InferenceClient.InferenceClient
        return yield* Effect.forEach(
          Array.from({ length: 25 }, () => deterministic),
          (r) => client.chatCompletion(r),
          { concurrency: "unbounded" }
        )
      }))
      assert.strictEqual((yield* chatLog).length, 1)
      assert.isTrue(first.every((c) => c.choices[0]?.message.content === first[0]?.choices[0]?.message.content))
      assert.strictEqual((yield* Effect.promise(() => fs.readdir(directory))).length, 1)
      // A new client and a new cache, as after a restart.
      const again = yield* withClientOver(fileCache(directory))(
        Effect.flatMap(InferenceClient.InferenceClient, (client) => client.chatCompletion(deterministic))
      )
      assert.strictEqual((yield* chatLog).length, 1)
      assert.strictEqual(again.choices[0]?.message.content, first[0]?.choices[0]?.message.content)
      assert.strictEqual(again.id, first[0]?.id)
    }))))

  it.live("a streamed answer is replayed from disk chunk by chunk, as it came", () =>
    withSimulatorOnly(Effect.scoped(Effect.gen(function*() {
      const directory = yield* tempDirectory
      const live = yield* withClientOver(fileCache(directory))(Stream.runCollect(streamChat(deterministic)))
      const replayed = yield* withClientOver(fileCache(directory))(Stream.runCollect(streamChat(deterministic)))
      assert.strictEqual((yield* chatLog).length, 1)
      assert.isAbove(Chunk.size(live), 5)
      assert.deepStrictEqual(
        Chunk.toReadonlyArray(replayed).map((
          c
        ) => [c.choices[0]?.delta.content ?? null, c.usage?.total_tokens ?? null]),
        Chunk.toReadonlyArray(live).map((c) => [c.choices[0]?.delta.content ?? null, c.usage?.total_tokens ?? null])
      )
    }))))

  it.live("a directory that cannot be made fails the layer with a typed error", () =>
    Effect.scoped(Effect.gen(function*() {
      const directory = yield* tempDirectory
      const file = path.join(directory, "a-file")
      yield* Effect.promise(() => fs.writeFile(file, "not a directory"))
      const exit = yield* Effect.exit(Layer.build(fileCache(path.join(file, "cache"))))
      assert.isTrue(Exit.isFailure(exit))
      assert.include(String(Exit.isFailure(exit) ? exit.cause : ""), "SystemError")
    })))
})
