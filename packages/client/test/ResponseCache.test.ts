import * as KeyValueStore from "@effect/platform/KeyValueStore"
import { assert, describe, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import * as TestClock from "effect/TestClock"
import { ChatCompletion, ChatCompletionRequest, Choice, ResponseMessage } from "../src/ChatCompletion.js"
import type { ChatCompletionRequestInput } from "../src/ChatCompletion.js"
import * as ChatCompletionChunk from "../src/ChatCompletionChunk.js"
import * as InferenceClient from "../src/InferenceClient.js"
import * as internal from "../src/internal/responseCache.js"
import * as ResponseCache from "../src/ResponseCache.js"
import * as UsageTracker from "../src/UsageTracker.js"
import { hello, layer as clientLayer, MODEL } from "./utils/Client.js"
import * as Fake from "./utils/FakeTransport.js"
import { refusesEach } from "./utils/Options.js"

const deterministic: ChatCompletionRequestInput = { ...hello, temperature: 0 }

const keyOf = (request: unknown, baseUrl = "http://inference.test/v1", project: string | undefined = "team/project") =>
  ResponseCache.key({ baseUrl, project, request })

/** Runs `f` with a client over `fake`, with `cache` and a quiet usage tracker in context. */
const run = <A, E>(
  fake: Fake.Fake,
  cache: Layer.Layer<ResponseCache.ResponseCache>,
  f: (
    client: InferenceClient.InferenceClient.Service,
    tracker: UsageTracker.UsageTracker.Service,
    cache: ResponseCache.ResponseCache.Service
  ) => Effect.Effect<A, E>,
  options: Partial<InferenceClient.Options> = {}
) =>
  Effect.gen(function*() {
    return yield* f(
      yield* InferenceClient.InferenceClient,
      yield* UsageTracker.UsageTracker,
      yield* ResponseCache.ResponseCache
    )
  }).pipe(
    Effect.provide(
      clientLayer(fake, options).pipe(
        Layer.provideMerge(Layer.merge(UsageTracker.layer({ logLevel: "None" }), cache))
      )
    )
  )

const answering = (...contents: ReadonlyArray<string>) => {
  let n = 0
  return Fake.make(() => Fake.completion(contents[Math.min(n++, contents.length - 1)]))
}

/** A store in memory that outlives the caches made over it, as a directory outlives a process. */
const sharedStore = Effect.map(Effect.provide(KeyValueStore.KeyValueStore, KeyValueStore.layerMemory), (store) => ({
  store,
  layer: Layer.succeed(KeyValueStore.KeyValueStore, store)
}))

/** A completion to store by hand. */
const someCompletion = Effect.provide(
  Effect.flatMap(InferenceClient.InferenceClient, (client) => client.chatCompletion(hello)),
  clientLayer(Fake.make(() => Fake.completion("x")))
)

const contentOf = (
  completion: { readonly choices: ReadonlyArray<{ readonly message: { readonly content?: unknown } }> }
) => completion.choices[0]?.message.content

describe("ResponseCache", () => {
  describe("key", () => {
    const base: ChatCompletionRequestInput = {
      model: MODEL,
      messages: [{ role: "system", content: "Be brief." }, { role: "user", content: "Hello" }],
      temperature: 0,
      max_tokens: 64
    }
    const changes: ReadonlyArray<readonly [string, ChatCompletionRequestInput]> = [
      ["model", { ...base, model: "meta-llama/Llama-3.3-70B-Instruct" }],
      ["a message's text", { ...base, messages: [base.messages[0]!, { role: "user", content: "Hello!" }] }],
      ["a message's role", { ...base, messages: [base.messages[0]!, { role: "assistant", content: "Hello" }] }],
      ["the order of messages", { ...base, messages: [...base.messages].reverse() }],
      ["temperature", { ...base, temperature: 0.1 }],
      ["max_tokens", { ...base, max_tokens: 65 }],
      ["seed", { ...base, seed: 1 }],
      ["top_p", { ...base, top_p: 0.9 }],
      ["stop", { ...base, stop: ["\n"] }],
      ["tools", {
        ...base,
        tools: [{ type: "function", function: { name: "f", parameters: { type: "object" } } }]
      }],
      ["response_format", { ...base, response_format: { type: "json_object" } }],
      ["user", { ...base, user: "u-1" }]
    ]
    for (const [name, changed] of changes) {
      it(`changes with ${name}`, () => {
        assert.notStrictEqual(keyOf(base), keyOf(changed))
      })
    }

    it("changes with the stream flag, the base URL and the project", () => {
      const key = keyOf(base)
      assert.notStrictEqual(key, keyOf({ ...base, stream: true }))
      assert.notStrictEqual(key, keyOf(base, "http://other.test/v1"))
      assert.notStrictEqual(key, keyOf(base, "http://inference.test/v1", "team/other"))
      assert.notStrictEqual(
        key,
        ResponseCache.key({ baseUrl: "http://inference.test/v1", project: undefined, request: base })
      )
    })

    it("is the same for the same request written with its keys in another order", () => {
      const reordered = { max_tokens: 64, temperature: 0, messages: base.messages, model: MODEL }
      assert.strictEqual(keyOf(base), keyOf(reordered))
      assert.match(keyOf(base), /^[0-9a-f]{64}$/)
    })
  })

  describe("options", () => {
    refusesEach(ResponseCache.makeMemory, [
      ["a capacity of 0", { capacity: 0 }, "capacity"],
      ["a negative ttl", { ttl: -5 }, "ttl"],
      ["an unknown policy", { policy: "some" as "all" }, "policy"]
    ])
  })

  it("entries survive the store's encoding as the exported classes", () => {
    const completion = new ChatCompletion({
      id: "chatcmpl-1",
      created: 0,
      model: MODEL,
      choices: [
        new Choice({ index: 0, message: new ResponseMessage({ content: "Hello there" }), finish_reason: "stop" })
      ]
    })
    const codec = Schema.parseJson(ResponseCache.Entry)
    const roundTrip = (entry: ResponseCache.Entry) => Schema.decodeSync(codec)(Schema.encodeSync(codec)(entry))
    const stream = new ResponseCache.CachedStream({ chunks: ChatCompletionChunk.fromCompletion(completion) })
    const replayed = roundTrip(stream)
    assert.instanceOf(replayed, ResponseCache.CachedStream)
    assert.deepStrictEqual(replayed, stream)
    assert.instanceOf(replayed._tag === "CachedStream" && replayed.chunks[0], ChatCompletionChunk.ChatCompletionChunk)
    const stored = new ResponseCache.CachedCompletion({ completion })
    assert.instanceOf(roundTrip(stored), ResponseCache.CachedCompletion)
    assert.deepStrictEqual(roundTrip(stored), stored)
  })

  describe("use", () => {
    const request = (input: Partial<ChatCompletionRequestInput> = {}) =>
      Schema.decodeSync(ChatCompletionRequest)({ ...hello, ...input })
    /** The use a call makes of the cache, which must be allowed. */
    const useOf = (
      cache: ResponseCache.ResponseCache.Service | undefined,
      input: Partial<ChatCompletionRequestInput>,
      directive?: ResponseCache.Directive
    ) => Either.getOrThrow(internal.use(cache, request(input), directive))
    /** The path and the issue of a directive that must be refused. */
    const refusal = (cache: ResponseCache.ResponseCache.Service | undefined, directive: unknown) => {
      const result = internal.use(cache, request({ temperature: 0 }), directive as ResponseCache.Directive)
      assert.isTrue(Either.isLeft(result), `${String(directive)} was allowed`)
      return Either.isLeft(result) ? { path: result.left.path, issue: result.left.issue } : undefined
    }
    const memory = (options?: ResponseCache.Options) => ResponseCache.makeMemory({ ttl: "10 minutes", ...options })

    it.effect("under the default policy, only requests with temperature 0 or a seed use the cache", () =>
      Effect.gen(function*() {
        const cache = yield* memory()
        assert.deepStrictEqual(useOf(cache, { temperature: 0 }), { cache, read: true, ttl: Duration.minutes(10) })
        assert.deepStrictEqual(useOf(cache, { seed: 7, temperature: 0.8 }), {
          cache,
          read: true,
          ttl: Duration.minutes(10)
        })
        assert.isUndefined(useOf(cache, {}))
        assert.isUndefined(useOf(cache, { temperature: 0.2 }))
      }))

    it.effect("under the \"all\" policy, every request uses the cache", () =>
      Effect.gen(function*() {
        const cache = yield* memory({ policy: "all" })
        assert.deepStrictEqual(useOf(cache, { temperature: 0.9 }), { cache, read: true, ttl: Duration.minutes(10) })
        assert.deepStrictEqual(useOf(cache, {}), { cache, read: true, ttl: Duration.minutes(10) })
      }))

    it.effect("{ ttl } uses the cache for that ttl whatever the policy", () =>
      Effect.gen(function*() {
        const cache = yield* memory()
        assert.deepStrictEqual(useOf(cache, { temperature: 0.9 }, { ttl: "1 day" }), {
          cache,
          read: true,
          ttl: Duration.days(1)
        })
        assert.deepStrictEqual(useOf(cache, { temperature: 0 }, { ttl: 5000 }), {
          cache,
          read: true,
          ttl: Duration.seconds(5)
        })
      }))

    it.effect("\"no-cache\" stores the fresh answer without serving a stored one, where the policy caches", () =>
      Effect.gen(function*() {
        const cache = yield* memory()
        assert.deepStrictEqual(useOf(cache, { temperature: 0 }, "no-cache"), {
          cache,
          read: false,
          ttl: Duration.minutes(10)
        })
        assert.isUndefined(useOf(cache, { temperature: 0.9 }, "no-cache"))
      }))

    it.effect("\"no-store\" leaves the cache alone, even under the \"all\" policy", () =>
      Effect.gen(function*() {
        assert.isUndefined(useOf(yield* memory(), { temperature: 0 }, "no-store"))
        assert.isUndefined(useOf(yield* memory({ policy: "all" }), {}, "no-store"))
      }))

    it("without a cache, a call leaves the cache alone whatever its directive", () => {
      assert.isUndefined(useOf(undefined, { temperature: 0 }))
      assert.isUndefined(useOf(undefined, { temperature: 0 }, { ttl: "1 hour" }))
      assert.isUndefined(useOf(undefined, { temperature: 0 }, "no-cache"))
    })

    it.effect("a ttl that is not a positive, finite duration is refused at cache.ttl, with or without a cache", () =>
      Effect.gen(function*() {
        const cache = yield* memory()
        for (const ttl of [0, -1, "soon", Infinity, "Infinity"]) {
          for (const target of [cache, undefined]) {
            const refused = refusal(target, { ttl })
            assert.strictEqual(refused?.path, "cache.ttl")
            assert.include(refused?.issue, "positive, finite duration")
          }
        }
      }))

    it.effect("a directive that is none of the three is refused at cache, with or without a cache", () =>
      Effect.gen(function*() {
        const cache = yield* memory()
        for (const directive of ["always", "", 10, null]) {
          for (const target of [cache, undefined]) {
            const refused = refusal(target, directive)
            assert.deepStrictEqual(refused, {
              path: "cache",
              issue: `must be "no-cache", "no-store" or { ttl }, got ${String(directive)}`
            })
          }
        }
      }))
  })

  describe("with the client", () => {
    it.effect("answers a deterministic request from the cache the second time, at no cost", () =>
      Effect.gen(function*() {
        const fake = answering("first", "second")
        const hitsBefore = (yield* Metric.value(Metric.tagged(ResponseCache.metrics.lookups, "result", "hit"))).count
        const result = yield* run(
          fake,
          ResponseCache.layerMemory(),
          (client, tracker) =>
            Effect.scoped(Effect.gen(function*() {
              const events = yield* tracker.subscribe
              const a = yield* client.chatCompletion(deterministic)
              const b = yield* client.chatCompletion(deterministic)
              return { a, b, events: Chunk.toReadonlyArray(yield* Queue.takeAll(events)) }
            }))
        )
        assert.strictEqual(fake.requests.length, 1)
        assert.strictEqual(contentOf(result.a), "first")
        assert.strictEqual(contentOf(result.b), "first")
        assert.deepInclude(result.events[0], { cached: false, totalTokens: 7 })
        assert.deepInclude(result.events[1], { cached: true, costUsd: 0, totalTokens: 0, attempts: 0 })
        const hitsAfter = (yield* Metric.value(Metric.tagged(ResponseCache.metrics.lookups, "result", "hit"))).count
        assert.strictEqual(hitsAfter - hitsBefore, 1)
      }))

    it.effect("a seed makes a request deterministic; other requests are not cached by default", () =>
      Effect.gen(function*() {
        const fake = answering("a", "b", "c", "d")
        const contents = yield* run(fake, ResponseCache.layerMemory(), (client) =>
          Effect.forEach([
            { ...hello, seed: 7 },
            { ...hello, seed: 7 },
            hello,
            hello,
            { ...hello, temperature: 0.7 }
          ], (r) => Effect.map(client.chatCompletion(r), contentOf)))
        assert.deepStrictEqual(contents, ["a", "a", "b", "c", "d"])
      }))

    it.effect("the policy \"all\" caches every request", () =>
      Effect.gen(function*() {
        const fake = answering("a", "b")
        const contents = yield* run(fake, ResponseCache.layerMemory({ policy: "all" }), (client) =>
          Effect.forEach([hello, hello], (r) =>
            Effect.map(client.chatCompletion(r), contentOf)))
        assert.deepStrictEqual(contents, ["a", "a"])
      }))

    it.effect("a call's { ttl } caches it whatever the policy, for that long", () =>
      Effect.gen(function*() {
        const fake = answering("a", "b", "c")
        const contents = yield* run(fake, ResponseCache.layerMemory(), (client) =>
          Effect.gen(function*() {
            const ask = Effect.map(client.chatCompletion(hello, { cache: { ttl: "1 minute" } }), contentOf)
            const first = [yield* ask, yield* ask]
            yield* TestClock.adjust("61 seconds")
            return [...first, yield* ask, yield* ask]
          }))
        assert.deepStrictEqual(contents, ["a", "a", "b", "b"])
      }))

    it.effect("entries expire after the cache's ttl", () =>
      Effect.gen(function*() {
        const fake = answering("a", "b")
        const contents = yield* run(fake, ResponseCache.layerMemory({ ttl: "10 minutes" }), (client) =>
          Effect.gen(function*() {
            const first = yield* client.chatCompletion(deterministic)
            yield* TestClock.adjust("9 minutes")
            const second = yield* client.chatCompletion(deterministic)
            yield* TestClock.adjust("2 minutes")
            return [first, second, yield* client.chatCompletion(deterministic)].map(contentOf)
          }))
        assert.deepStrictEqual(contents, ["a", "a", "b"])
      }))

    it.effect("\"no-cache\" asks the server again and stores the fresh answer; \"no-store\" leaves the cache alone", () =>
      Effect.gen(function*() {
        const fake = answering("a", "b", "c")
        const contents = yield* run(fake, ResponseCache.layerMemory(), (client) =>
          Effect.forEach(
            [undefined, "no-cache", undefined, "no-store", undefined] as const,
            (cache) => Effect.map(client.chatCompletion(deterministic, { cache }), contentOf)
          ))
        assert.deepStrictEqual(contents, ["a", "b", "b", "c", "b"])
      }))

    it.effect("errors are never cached", () =>
      Effect.gen(function*() {
        const fake = Fake.make([Fake.json(400, Fake.errorBody("bad")), Fake.completion("ok")])
        const result = yield* run(fake, ResponseCache.layerMemory(), (client) =>
          Effect.gen(function*() {
            const first = yield* Effect.flip(client.chatCompletion(deterministic))
            const second = yield* client.chatCompletion(deterministic)
            return { first, second }
          }))
        assert.strictEqual(result.first._tag, "BadRequestError")
        assert.strictEqual(contentOf(result.second), "ok")
        assert.strictEqual(fake.requests.length, 2)
      }))

    it.effect("concurrent identical calls send one request and share its answer", () =>
      Effect.gen(function*() {
        const fake = Fake.make(() => ({ _tag: "Delay", delay: "1 second", then: () => Fake.completion("shared") }))
        const contents = yield* Fake.runWithClock(run(fake, ResponseCache.layerMemory(), (client) =>
          Effect.forEach(
            Array.from({ length: 20 }, () => deterministic),
            (r) => Effect.map(client.chatCompletion(r), contentOf),
            { concurrency: "unbounded" }
          ))).pipe(Effect.flatten)
        assert.strictEqual(fake.requests.length, 1)
        assert.deepStrictEqual(contents, Array.from({ length: 20 }, () => "shared"))
      }))

    it.effect("concurrent identical calls share a failure too, and the next call asks again", () =>
      Effect.gen(function*() {
        let n = 0
        const fake = Fake.make(() =>
          n++ === 0
            ? { _tag: "Delay", delay: "1 second", then: () => Fake.json(400, Fake.errorBody("bad")) }
            : Fake.completion("later")
        )
        const result = yield* Fake.runWithClock(
          run(fake, ResponseCache.layerMemory(), (client) =>
            Effect.gen(function*() {
              const exits = yield* Effect.forEach(
                Array.from({ length: 5 }, () => deterministic),
                (r) => Effect.exit(client.chatCompletion(r)),
                { concurrency: "unbounded" }
              )
              return { exits, next: yield* client.chatCompletion(deterministic) }
            }))
        ).pipe(Effect.flatten)
        assert.isTrue(result.exits.every((exit) => Exit.isFailure(exit) && String(exit.cause).includes("BadRequest")))
        assert.strictEqual(contentOf(result.next), "later")
        assert.strictEqual(fake.requests.length, 2)
      }))

    it.effect("a waiting call gets the answer even if the call that asked first is interrupted", () =>
      Effect.gen(function*() {
        const fake = Fake.make(() => ({ _tag: "Delay", delay: "1 second", then: () => Fake.completion("fresh") }))
        const content = yield* run(fake, ResponseCache.layerMemory(), (client) =>
          Effect.gen(function*() {
            const first = yield* Effect.fork(client.chatCompletion(deterministic))
            yield* TestClock.adjust("100 millis")
            const second = yield* Effect.fork(client.chatCompletion(deterministic))
            yield* TestClock.adjust("100 millis")
            yield* Fiber.interrupt(first)
            yield* TestClock.adjust("2 seconds")
            return contentOf(yield* Fiber.join(second))
          }))
        assert.strictEqual(content, "fresh")
        assert.strictEqual(fake.requests.length, 2)
      }))

    it.effect("keeps at most `capacity` entries, the least recently used going first", () =>
      Effect.gen(function*() {
        const fake = answering("a", "b", "c", "d")
        const ask = (content: string) => ({ ...deterministic, messages: [{ role: "user" as const, content }] })
        const contents = yield* run(fake, ResponseCache.layerMemory({ capacity: 1 }), (client) =>
          Effect.forEach([ask("x"), ask("y"), ask("y"), ask("x")], (r) =>
            Effect.map(client.chatCompletion(r), contentOf)))
        assert.deepStrictEqual(contents, ["a", "b", "b", "c"])
      }))

    it.effect("a bad cache option is an InvalidRequestError and sends nothing", () =>
      Effect.gen(function*() {
        const fake = answering("a")
        const errors = yield* run(fake, ResponseCache.layerMemory(), (client) =>
          Effect.forEach([{ ttl: "soon" }, { ttl: 0 }, "always"] as const, (cache) =>
            Effect.flip(client.chatCompletion(deterministic, { cache: cache as ResponseCache.Directive }))))
        assert.deepStrictEqual(
          errors.map((e) =>
            e._tag === "InvalidRequestError" && e.path
          ),
          [
            "cache.ttl",
            "cache.ttl",
            "cache"
          ]
        )
        assert.strictEqual(fake.requests.length, 0)
      }))

    it.effect("a streamed request is stored once read to its end and replayed chunk by chunk", () =>
      Effect.gen(function*() {
        const fake = Fake.make(() => Fake.sse(Fake.sseAnswer(["Hel", "lo", "!"])))
        const result = yield* run(
          fake,
          ResponseCache.layerMemory(),
          (client, tracker) =>
            Effect.scoped(Effect.gen(function*() {
              const events = yield* tracker.subscribe
              const live = yield* Stream.runCollect(client.streamChatCompletion(deterministic))
              const replayed = yield* Stream.runCollect(client.streamChatCompletion(deterministic))
              // a streamed request and a plain one are different entries
              yield* client.chatCompletion(deterministic).pipe(Effect.ignore)
              return { live, replayed, events: Chunk.toReadonlyArray(yield* Queue.takeAll(events)) }
            }))
        )
        assert.strictEqual(fake.requests.length, 2)
        assert.strictEqual(Chunk.size(result.replayed), Chunk.size(result.live))
        assert.isAbove(Chunk.size(result.replayed), 3)
        assert.deepStrictEqual(
          Chunk.toReadonlyArray(result.replayed).map((c) => c.choices[0]?.delta.content ?? null),
          Chunk.toReadonlyArray(result.live).map((c) => c.choices[0]?.delta.content ?? null)
        )
        assert.deepInclude(result.events[1], { cached: true, stream: true, costUsd: 0 })
      }))

    it.effect("a stream the consumer left early is not stored", () =>
      Effect.gen(function*() {
        const fake = Fake.make(() => Fake.sse(Fake.sseAnswer(["a", "b", "c"])))
        yield* run(fake, ResponseCache.layerMemory(), (client) =>
          Effect.gen(function*() {
            yield* Stream.runDrain(Stream.take(client.streamChatCompletion(deterministic), 2))
            yield* Stream.runDrain(client.streamChatCompletion(deterministic))
          }))
        assert.strictEqual(fake.requests.length, 2)
      }))

    it.effect("without a cache in context, nothing is cached", () =>
      Effect.gen(function*() {
        const fake = answering("a", "b")
        const contents = yield* Effect.provide(
          Effect.flatMap(
            InferenceClient.InferenceClient,
            (client) =>
              Effect.forEach([deterministic, deterministic], (r) => Effect.map(client.chatCompletion(r), contentOf))
          ),
          clientLayer(fake)
        )
        assert.deepStrictEqual(contents, ["a", "b"])
      }))
  })

  describe("persistent", () => {
    it.effect("an entry survives a new cache over the same store", () =>
      Effect.gen(function*() {
        const { layer: storeLayer, store } = yield* sharedStore
        const first = answering("stored")
        yield* run(first, ResponseCache.layerPersistent().pipe(Layer.provide(storeLayer)), (client) =>
          client.chatCompletion(deterministic))
        const second = answering("fresh")
        const content = yield* run(second, ResponseCache.layerPersistent().pipe(Layer.provide(storeLayer)), (client) =>
          Effect.map(client.chatCompletion(deterministic), contentOf))
        assert.strictEqual(content, "stored")
        assert.strictEqual(second.requests.length, 0)
        assert.strictEqual(yield* store.size, 1)
      }))

    it.effect("a stored entry expires by the time written with it, even in a new cache", () =>
      Effect.gen(function*() {
        const { layer: storeLayer } = yield* sharedStore
        const layer = ResponseCache.layerPersistent({ ttl: "5 minutes" }).pipe(Layer.provide(storeLayer))
        yield* run(answering("old"), layer, (client) => client.chatCompletion(deterministic))
        yield* TestClock.adjust("6 minutes")
        const fake = answering("new")
        const content = yield* run(fake, layer, (client) => Effect.map(client.chatCompletion(deterministic), contentOf))
        assert.strictEqual(content, "new")
        assert.strictEqual(fake.requests.length, 1)
      }))

    it.effect("an entry that cannot be read back is a miss, and the fresh answer replaces it", () =>
      Effect.gen(function*() {
        const { layer: storeLayer, store } = yield* sharedStore
        const key = keyOf({ ...deterministic, stream: false })
        yield* store.set(key, "{\"version\":1,\"expiresAt\":")
        const fake = answering("fresh")
        const content = yield* run(
          fake,
          ResponseCache.layerPersistent().pipe(Layer.provide(storeLayer)),
          (client) => Effect.map(client.chatCompletion(deterministic), contentOf)
        )
        assert.strictEqual(content, "fresh")
        assert.include(Option.getOrElse(yield* store.get(key), () => ""), "fresh")
      }))

    it.effect("a streamed entry is stored and replayed from the store", () =>
      Effect.gen(function*() {
        const { layer: storeLayer } = yield* sharedStore
        const layer = ResponseCache.layerPersistent().pipe(
          Layer.provide(storeLayer)
        )
        const live = yield* run(
          Fake.make(() => Fake.sse(Fake.sseAnswer(["x", "y"]))),
          layer,
          (client) => Stream.runCollect(client.streamChatCompletion(deterministic))
        )
        const fake = Fake.make(() => Fake.sse(Fake.sseAnswer(["other"])))
        const replayed = yield* run(fake, layer, (client) =>
          Stream.runCollect(client.streamChatCompletion(deterministic)))
        assert.strictEqual(fake.requests.length, 0)
        assert.deepStrictEqual(
          Chunk.toReadonlyArray(replayed).map((c) =>
            c.choices[0]?.delta.content ?? null
          ),
          Chunk.toReadonlyArray(live).map((c) => c.choices[0]?.delta.content ?? null)
        )
      }))

    it.effect("invalidate and invalidateAll remove entries from memory and from the store", () =>
      Effect.gen(function*() {
        const { layer: storeLayer, store } = yield* sharedStore
        const cache = yield* Effect.provide(
          ResponseCache.makePersistent(),
          storeLayer
        )
        const completion = yield* someCompletion
        const entry = new ResponseCache.CachedCompletion({ completion })
        yield* cache.set("k1", entry, Duration.minutes(1))
        yield* cache.set("k2", entry, Duration.minutes(1))
        assert.isTrue(Option.isSome(yield* cache.get("k1")))
        yield* cache.invalidate("k1")
        assert.isTrue(Option.isNone(yield* cache.get("k1")))
        assert.strictEqual(yield* store.size, 1)
        yield* cache.invalidateAll
        assert.isTrue(Option.isNone(yield* cache.get("k2")))
        assert.strictEqual(yield* store.size, 0)
      }))
  })

  describe("getOrCompute", () => {
    it.effect("says whether the entry was a hit", () =>
      Effect.gen(function*() {
        const cache = yield* ResponseCache.makeMemory()
        const completion = yield* someCompletion
        const gate = yield* Deferred.make<void>()
        const compute = Effect.as(Deferred.await(gate), new ResponseCache.CachedCompletion({ completion }))
        const first = yield* Effect.fork(cache.getOrCompute("k", compute, Duration.minutes(1)))
        const second = yield* Effect.fork(cache.getOrCompute("k", compute, Duration.minutes(1)))
        yield* Deferred.succeed(gate, undefined)
        assert.isFalse((yield* Fiber.join(first)).hit)
        assert.isTrue((yield* Fiber.join(second)).hit)
        assert.isTrue((yield* cache.getOrCompute("k", compute, Duration.minutes(1))).hit)
      }))
  })
})
