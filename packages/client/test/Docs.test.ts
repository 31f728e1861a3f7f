/**
 * The docs' code is real code: every TypeScript block in README.md and docs/
 * is a file under examples/docs (type-checked with the tests), and the tests
 * below run those files.
 */
import type * as HttpClient from "@effect/platform/HttpClient"
import { assert, describe, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as fs from "node:fs"
import * as http from "node:http"
import type { AddressInfo } from "node:net"
import * as path from "node:path"
import { Adaptive, Cautious, Fixed } from "../examples/docs/adaptive-concurrency.js"
import { answer } from "../examples/docs/catching-errors.js"
import { Breakers, Client, drain } from "../examples/docs/circuit-breaker.js"
import { answer as fallbackAnswer, Resilient } from "../examples/docs/fallback.js"
import { InferenceLive, program as gettingStarted } from "../examples/docs/getting-started-layer.js"
import { InferenceNode, InferencePooled } from "../examples/docs/node-transport.js"
import { batch, Client as QuotaClient } from "../examples/docs/rate-limits.js"
import { program as readme } from "../examples/docs/readme.js"
import { quickAnswer, showThinking } from "../examples/docs/reasoning.js"
import { bounded, only503 } from "../examples/docs/retry-policy.js"
import { App, Chat, Summariser } from "../examples/docs/stores.js"
import { printAnswer, wholeAnswer } from "../examples/docs/streaming.js"
import { tagged } from "../examples/docs/transform-client.js"
import { checkSetup } from "../examples/docs/troubleshooting-check.js"
import { LoudClient, LoudUsage, withDebugLogs } from "../examples/docs/troubleshooting-logs.js"
import { ask, Client as UsageClient, report, watchAlerts } from "../examples/docs/usage-budget.js"
import * as BudgetStore from "../src/BudgetStore.js"
import * as ConcurrencyStore from "../src/ConcurrencyStore.js"
import * as InferenceClient from "../src/InferenceClient.js"
import * as UsageTracker from "../src/UsageTracker.js"
import * as Capture from "./utils/Capture.js"
import { hello, layer as clientLayer, MODEL, SECRET, testOptions } from "./utils/Client.js"
import * as Fake from "./utils/FakeTransport.js"

const root = path.resolve(__dirname, "../../..")
const pages = [
  "README.md",
  ...fs.readdirSync(path.join(root, "docs")).filter((f) => f.endsWith(".md")).map((f) => `docs/${f}`)
]

const env = (entries: Record<string, string>) => ConfigProvider.fromMap(new Map(Object.entries(entries)))

/** A request as the loopback server saw it. */
interface Seen {
  readonly method: string
  readonly path: string
  readonly headers: http.IncomingHttpHeaders
}

/**
 * A loopback server that answers each request with `answer(request)` (a status and a JSON body), for the
 * snippets that bring their own transport (`UndiciHttpClient.layer`), and the requests it saw.
 */
const loopback = (answer: (seen: Seen) => readonly [status: number, body: unknown]) =>
  Effect.acquireRelease(
    Effect.async<{ readonly url: string; readonly server: http.Server; readonly seen: Array<Seen> }>((resume) => {
      const seen: Array<Seen> = []
      const server = http.createServer((request, response) => {
        const entry = { method: request.method ?? "", path: request.url ?? "", headers: request.headers }
        seen.push(entry)
        request.resume()
        request.on("end", () => {
          const [status, body] = answer(entry)
          response.writeHead(status, { "content-type": "application/json" })
          response.end(JSON.stringify(body))
        })
      })
      server.listen(
        0,
        "127.0.0.1",
        () =>
          resume(
            Effect.succeed({ url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`, server, seen })
          )
      )
    }),
    ({ server }) =>
      Effect.async<void>((resume) => {
        server.closeAllConnections()
        server.close(() => resume(Effect.void))
      })
  )

const completionOf = (content: string) => ({
  id: "c",
  object: "chat.completion",
  created: 1,
  model: MODEL,
  choices: [{ index: 0, message: { role: "assistant", content }, finish_reason: "stop" }],
  usage: { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 }
})

/** The levels of the usage lines among captured logs. */
const usageLines = (capture: Capture.Capture) =>
  capture.logs.filter((log) => log.message.includes("Inference usage")).map((log) => log.level)

describe("docs", () => {
  describe("every TypeScript block is a checked example file", () => {
    for (const page of pages) {
      it(page, () => {
        const text = fs.readFileSync(path.join(root, page), "utf8")
        const blocks = [...text.matchAll(/(?:<!-- snippet: (\S+) -->\n)?```(ts|typescript)\n([\s\S]*?)```/g)]
        for (const [, file, , code] of blocks) {
          assert.isDefined(file, `${page}: a ts block has no <!-- snippet: path --> marker:\n${code.slice(0, 200)}`)
          const source = fs.readFileSync(path.join(root, file!), "utf8")
          assert.strictEqual(code.trim(), source.trim(), `${page}: the block differs from ${file}`)
        }
      })
    }
  })

  describe("README", () => {
    it.live("the example answers over undici, from the environment's key, project and base URL", () =>
      Effect.scoped(Effect.gen(function*() {
        const { seen, url } = yield* loopback(() => [200, completionOf("Hello there, nice to meet")])
        const result = yield* readme.pipe(
          Effect.withConfigProvider(
            env({ WANDB_API_KEY: SECRET, WANDB_PROJECT: "team/project", WANDB_INFERENCE_BASE_URL: url })
          )
        )
        assert.strictEqual(result, "Hello there, nice to meet")
        assert.deepStrictEqual(seen.map((s) => [s.method, s.path]), [["POST", "/v1/chat/completions"]])
        assert.strictEqual(seen[0].headers["openai-project"], "team/project")
        assert.strictEqual(seen[0].headers.authorization, `Bearer ${SECRET}`)
      })))

    it.live("the example turns a quota error into its message, sent once", () =>
      Effect.scoped(Effect.gen(function*() {
        const { seen, url } = yield* loopback(() => [402, Fake.errorBody("You exceeded your current quota")])
        const result = yield* readme.pipe(
          Effect.withConfigProvider(env({ WANDB_API_KEY: SECRET, WANDB_INFERENCE_BASE_URL: url })),
          Effect.provide(Logger.remove(Logger.defaultLogger))
        )
        assert.strictEqual(result, "Out of credits: check billing")
        assert.strictEqual(seen.length, 1)
      })))
  })

  describe("choose a transport", () => {
    for (const [name, layer] of [["InferenceNode", InferenceNode], ["InferencePooled", InferencePooled]] as const) {
      it.live(`${name} calls the configured endpoint over undici`, () =>
        Effect.scoped(Effect.gen(function*() {
          const { seen, url } = yield* loopback(() => [200, completionOf("Over undici.")])
          const completion = yield* Effect.flatMap(InferenceClient.InferenceClient, (client) =>
            client.chatCompletion(hello)).pipe(
              Effect.provide(layer),
              Effect.withConfigProvider(env({ WANDB_API_KEY: SECRET, WANDB_INFERENCE_BASE_URL: url })),
              Effect.provide(Logger.remove(Logger.defaultLogger))
            )
          assert.strictEqual(completion.choices[0].message.content, "Over undici.")
          assert.deepStrictEqual(
            seen.map((s) =>
              s.headers.authorization
            ),
            [`Bearer ${SECRET}`]
          )
        })))
    }
  })

  describe("getting started", () => {
    it.effect("lists models, then asks the first one, billed to the project", () =>
      Effect.gen(function*() {
        const fake = Fake.make([
          Fake.json(200, { object: "list", data: [{ id: MODEL, object: "model", created: 1, owned_by: "meta" }] }),
          Fake.completion("A hosted LLM API.")
        ])
        // `main` provides UndiciHttpClient.layer; the program with its layer runs over the fake transport here.
        const result = yield* gettingStarted.pipe(
          Effect.provide(InferenceLive),
          Effect.provide(fake.layer),
          Effect.withConfigProvider(env({ WANDB_API_KEY: SECRET }))
        )
        assert.strictEqual(result.answer, "A hosted LLM API.")
        assert.strictEqual(result.usage?.total_tokens, 7)
        assert.deepStrictEqual(fake.requests.map((r) => r.url), [
          `${InferenceClient.DEFAULT_BASE_URL}/models`,
          `${InferenceClient.DEFAULT_BASE_URL}/chat/completions`
        ])
        assert.deepInclude(fake.requests[1].body as object, { model: MODEL, temperature: 0, max_tokens: 100 })
        assert.strictEqual(fake.requests[1].headers["openai-project"], "my-team/my-project")
      }))
  })

  describe("streaming", () => {
    it.effect("printAnswer writes the text as it arrives, and wholeAnswer folds it", () =>
      Effect.gen(function*() {
        const fake = Fake.make(() => Fake.body(Fake.reads(Fake.sseAnswer(["Back", "pressure", " works."]))))
        const written: Array<string> = []
        yield* printAnswer((text) => written.push(text)).pipe(Effect.provide(clientLayer(fake)))
        assert.strictEqual(written.join(""), "Backpressure works.")
        const whole = yield* wholeAnswer.pipe(Effect.provide(clientLayer(fake)))
        assert.strictEqual(whole.choices[0].message.content, "Backpressure works.")
        assert.strictEqual(whole.usage?.completion_tokens, 3)
      }))

    it.effect("printAnswer reports a rate limit that arrives mid-answer", () =>
      Effect.gen(function*() {
        const body = Fake.sseAnswer(["Half"]).split("data: {\"id\"").slice(0, 3).join("data: {\"id\"") +
          Fake.sseEvent({ error: { message: "Concurrency limit reached for requests" } }, "error")
        const fake = Fake.make([Fake.body(Fake.reads(body))])
        const written: Array<string> = []
        yield* printAnswer((text) => written.push(text)).pipe(Effect.provide(clientLayer(fake)))
        assert.strictEqual(written.join(""), "Half\n[rate limited after 2 chunks]")
      }))
  })

  describe("reasoning", () => {
    it.effect("showThinking writes the thinking, then the answer", () =>
      Effect.gen(function*() {
        const body = [
          Fake.sseEvent(Fake.chunkBody({ role: "assistant", content: "" })),
          Fake.sseEvent(Fake.chunkBody({ reasoning: "391 = 17 × 23." })),
          Fake.sseEvent(Fake.chunkBody({ content: "No." })),
          Fake.sseEvent(Fake.chunkBody({}, "stop")),
          "data: [DONE]\n\n"
        ].join("")
        const fake = Fake.make([Fake.body(Fake.reads(body))])
        const written: Array<string> = []
        yield* showThinking((text) => written.push(text)).pipe(Effect.provide(clientLayer(fake)))
        assert.deepStrictEqual(written, ["[thinking] 391 = 17 × 23.", "No."])
      }))

    it.effect("quickAnswer turns thinking off in the request body", () =>
      Effect.gen(function*() {
        const fake = Fake.make([Fake.completion("No.")])
        const completion = yield* quickAnswer.pipe(Effect.provide(clientLayer(fake)))
        assert.strictEqual(completion.choices[0].message.content, "No.")
        assert.deepStrictEqual((fake.requests[0].body as Record<string, unknown>).chat_template_kwargs, {
          enable_thinking: false
        })
      }))
  })

  describe("circuit breaker", () => {
    it.effect("drain isolates the model: its calls fail fast, and the change was published", () =>
      Effect.gen(function*() {
        const fake = Fake.make([Fake.completion()])
        const { error, result } = yield* Effect.gen(function*() {
          const result = yield* drain(MODEL)
          const client = yield* InferenceClient.InferenceClient
          const error = yield* Effect.flip(client.chatCompletion(hello))
          return { error, result }
        }).pipe(Effect.provide(Client.pipe(Layer.provide(fake.layer), Layer.provideMerge(Breakers))))
        assert.strictEqual(result.state, "open")
        assert.deepStrictEqual(Chunk.toReadonlyArray(result.changes).map((c) => [c.from, c.to, c.reason]), [
          ["closed", "open", "isolated"]
        ])
        assert.strictEqual(error._tag, "CircuitOpenError")
        assert.strictEqual(fake.requests.length, 0)
      }))
  })

  describe("fallback and limits", () => {
    it.effect("answer falls back from Llama to DeepSeek and says so", () =>
      Effect.gen(function*() {
        const fake = Fake.make((n) =>
          n <= 4
            ? Fake.json(503, Fake.errorBody("busy"))
            : Fake.json(200, Fake.completionBody("news", "deepseek-ai/DeepSeek-V3.1"))
        )
        const exit = yield* Fake.runWithClock(
          fallbackAnswer.pipe(Effect.provide(Resilient.pipe(Layer.provide(fake.layer))))
        )
        assert.deepStrictEqual(exit, Exit.succeed({ model: "deepseek-ai/DeepSeek-V3.1", text: "news" }))
        assert.strictEqual((fake.requests[4]?.body as { model: string }).model, "deepseek-ai/DeepSeek-V3.1")
      }))

    it.effect("batch keeps to 60 requests a minute", () =>
      Effect.gen(function*() {
        const fake = Fake.make(() => Fake.completion())
        const exit = yield* Fake.runWithClock(
          batch(Array.from({ length: 150 }, (_, i) => `q${i}`)).pipe(
            Effect.provide(QuotaClient.pipe(Layer.provide(fake.layer)))
          ),
          "10 minutes"
        )
        assert.isTrue(Exit.isSuccess(exit))
        const minutes = fake.requests.map((r) => Math.floor(r.at / 60_000))
        assert.deepStrictEqual([0, 1, 2].map((m) => minutes.filter((x) => x === m).length), [60, 60, 30])
      }))
  })

  describe("transformClient", () => {
    it.effect("the example adds its header to every request", () =>
      Effect.gen(function*() {
        const fake = Fake.make([Fake.completion()])
        yield* Effect.flatMap(InferenceClient.InferenceClient, (c) => c.chatCompletion(hello)).pipe(
          Effect.provide(tagged.pipe(Layer.provide(fake.layer)))
        )
        assert.strictEqual(fake.requests[0].headers["x-app"], "demo")
        assert.strictEqual(fake.requests[0].headers["authorization"], "Bearer my-key")
      }))
  })

  describe("error handling", () => {
    const cases: ReadonlyArray<[string, Fake.Reply, string]> = [
      ["401", Fake.json(401, Fake.errorBody("Authentication failed")), "Check WANDB_API_KEY and WANDB_PROJECT"],
      ["402", Fake.json(402, Fake.errorBody("quota")), "Out of credits: top up or raise the spending cap"],
      ["404", Fake.json(404, Fake.errorBody("not found")), `Unknown model ${MODEL}: pick one from listModels()`],
      [
        "429 with a long Retry-After",
        Fake.json(429, Fake.errorBody("Concurrency limit reached for requests"), { "retry-after": "600" }),
        "Rate limited: try again in 10m"
      ]
    ]
    for (const [name, reply, expected] of cases) {
      it.effect(`catchTags handles a ${name}`, () =>
        Effect.gen(function*() {
          const fake = Fake.make([reply])
          const result = yield* answer("Hello").pipe(
            Effect.provide(clientLayer(fake, { retry: { maxRetryAfter: "1 minute", jitter: false } }))
          )
          assert.strictEqual(result, expected)
        }))
    }

    it.effect("the replacing policy retries 503s three times and nothing else", () =>
      Effect.gen(function*() {
        for (const [status, attempts] of [[503, 4], [500, 1]] as const) {
          const fake = Fake.make([Fake.json(status, Fake.errorBody("x"))])
          const exit = yield* Fake.runWithClock(
            Effect.flatMap(InferenceClient.InferenceClient, (c) => c.chatCompletion(hello)).pipe(
              Effect.provide(only503.pipe(Layer.provide(fake.layer)))
            )
          )
          assert.isTrue(Exit.isFailure(exit))
          assert.strictEqual(fake.requests.length, attempts)
          if (status === 503) assert.deepStrictEqual(fake.requests.map((r) => r.at), [0, 5000, 10_000, 15_000])
        }
      }))

    it.effect("the bounded policy stops retrying after 20 seconds", () =>
      Effect.gen(function*() {
        const fake = Fake.make([Fake.json(503, Fake.errorBody("busy"), { "retry-after": "12" })])
        yield* Fake.runWithClock(
          Effect.flatMap(InferenceClient.InferenceClient, (c) => c.chatCompletion(hello)).pipe(
            Effect.provide(bounded.pipe(Layer.provide(fake.layer)))
          )
        )
        // Retry-After 12 s beats the backoff: the 24 s failure is past the 20 s bound (unbounded: a 4th try at 36 s)
        assert.deepStrictEqual(fake.requests.map((r) => r.at), [0, 12_000, 24_000])
      }))
  })

  describe("usage and budgets", () => {
    it.effect("ask answers, and the report shows the call and the day's budget", () =>
      Effect.gen(function*() {
        const fake = Fake.make(() => Fake.completion("Fine, thanks"))
        const [answer, text] = yield* Effect.zip(ask("How are you?"), report).pipe(
          Effect.provide(UsageClient.pipe(Layer.provide(fake.layer))),
          Effect.provide(Logger.remove(Logger.defaultLogger))
        )
        assert.strictEqual(answer, "Fine, thanks")
        assert.match(text, /meta-llama\/Llama-3\.1-8B-Instruct\s+1\s+1\s+0/)
        assert.include(text, "budget (usd): $0.000002 spent of $25.000000")
      }))

    it.effect("ask says when the budget is spent, and nothing is sent", () =>
      Effect.gen(function*() {
        const fake = Fake.make(() => Fake.completion())
        const answer = yield* ask("Hello?").pipe(
          Effect.provide(
            clientLayer(fake, { usage: { budget: { tokens: 100, period: "1 day" }, logLevel: "None" } })
          )
        )
        assert.strictEqual(answer, "Today's budget is spent; back in 1d")
        assert.strictEqual(fake.requests.length, 0)
      }))

    it.effect("watchAlerts passes each threshold on as it is crossed", () =>
      Effect.gen(function*() {
        // Each call reserves 9 + 4 tokens and uses exactly that.
        const usage = { prompt_tokens: 9, completion_tokens: 4, total_tokens: 13 }
        const fake = Fake.make(() => Fake.json(200, { ...Fake.completionBody("Hi"), usage }))
        const notes: Array<string> = []
        const tracker = UsageTracker.layer({ budget: { tokens: 26 }, logLevel: "None" })
        yield* Effect.gen(function*() {
          const watcher = yield* Effect.fork(watchAlerts((text) => Effect.sync(() => notes.push(text))))
          yield* Effect.yieldNow()
          const client = yield* InferenceClient.InferenceClient
          for (let i = 0; i < 2; i++) yield* client.chatCompletion({ ...hello, max_tokens: 4 })
          yield* Effect.yieldNow()
          yield* Fiber.interrupt(watcher)
        }).pipe(
          Effect.provide(clientLayer(fake).pipe(Layer.provideMerge(tracker))),
          Effect.provide(Logger.remove(Logger.defaultLogger))
        )
        assert.deepStrictEqual(notes, [
          "50% of the tokens budget spent",
          "80% of the tokens budget spent",
          "100% of the tokens budget spent"
        ])
      }))
  })

  describe("troubleshooting", () => {
    const models = { object: "list", data: [{ id: MODEL, object: "model", created: 1, owned_by: "meta" }] }
    const cases: ReadonlyArray<[string, Fake.Reply, string]> = [
      ["a working setup", Fake.json(200, models), `OK: 1 models, ${MODEL} first`],
      [
        "a wrong key",
        Fake.json(401, Fake.errorBody("Authentication failed")),
        "The key or the project is wrong: check WANDB_API_KEY and WANDB_PROJECT"
      ],
      [
        "a wrong base URL",
        Fake.text(404, "<html><body><h1>Not Found</h1></body></html>", { "content-type": "text/html" }),
        `No API at ${testOptions.baseUrl}: it should end in /v1`
      ],
      [
        "a region block",
        Fake.json(403, Fake.errorBody("Country, region, or territory not supported")),
        "Not allowed (RegionNotSupported): Country, region, or territory not supported"
      ]
    ]
    for (const [name, reply, expected] of cases) {
      it.effect(`checkSetup reports ${name}, with one request`, () =>
        Effect.gen(function*() {
          const fake = Fake.make([reply])
          const result = yield* checkSetup.pipe(
            Effect.provide(clientLayer(fake)),
            Effect.provide(Logger.remove(Logger.defaultLogger))
          )
          assert.strictEqual(result, expected)
          assert.deepStrictEqual(fake.requests.map((r) => r.url), [`${testOptions.baseUrl}/models`])
        }))
    }

    const call = Effect.flatMap(InferenceClient.InferenceClient, (client) => client.chatCompletion(hello))

    it.effect("by default a call writes no usage line a default logger would print", () =>
      Effect.gen(function*() {
        const capture = Capture.make()
        yield* Capture.withCapture(capture, call.pipe(Effect.provide(clientLayer(Fake.make([Fake.completion()])))))
        assert.deepStrictEqual(usageLines(capture), [])
      }))

    it.effect("LoudClient and LoudUsage write the usage line at Info", () =>
      Effect.gen(function*() {
        const loudClient = Capture.make()
        yield* Capture.withCapture(
          loudClient,
          call.pipe(
            Effect.provide(LoudClient.pipe(Layer.provide(Fake.make([Fake.completion()]).layer))),
            Effect.withConfigProvider(env({ WANDB_API_KEY: SECRET }))
          )
        )
        assert.deepStrictEqual(usageLines(loudClient), ["INFO"])
        const loudUsage = Capture.make()
        yield* Capture.withCapture(
          loudUsage,
          call.pipe(Effect.provide(clientLayer(Fake.make([Fake.completion()])).pipe(Layer.provideMerge(LoudUsage))))
        )
        assert.deepStrictEqual(usageLines(loudUsage), ["INFO"])
      }))

    it.effect("withDebugLogs lets the Debug usage line through", () =>
      Effect.gen(function*() {
        const capture = Capture.make()
        yield* Capture.withCapture(
          capture,
          withDebugLogs(call.pipe(Effect.provide(clientLayer(Fake.make([Fake.completion()])))))
        )
        assert.deepStrictEqual(usageLines(capture), ["DEBUG"])
      }))
  })

  describe("adaptive concurrency", () => {
    it.effect("20 calls at once: all in flight by default (32 at first), 8 with the fixed limit, 4 then more with initial 4", () =>
      Effect.gen(function*() {
        const peak = (client: Layer.Layer<InferenceClient.InferenceClient, never, HttpClient.HttpClient>) =>
          Effect.gen(function*() {
            const fake = Fake.make(() => Fake.delayed("1 second", () => Fake.json(200, completionOf("Hi"))))
            yield* Fake.runWithClock(
              Effect.flatMap(
                InferenceClient.InferenceClient,
                (c) =>
                  Effect.forEach(Array.from({ length: 20 }), () => c.chatCompletion(hello), {
                    concurrency: "unbounded"
                  })
              ).pipe(Effect.provide(client.pipe(Layer.provide(fake.layer))))
            )
            assert.strictEqual(fake.requests.length, 20)
            return fake.maxInFlight()
          })
        const adaptive = yield* peak(Adaptive)
        assert.strictEqual(adaptive, 20)
        assert.strictEqual(yield* peak(Fixed), 8)
        const cautious = yield* peak(Cautious)
        assert.isAtLeast(cautious, 4)
        assert.isBelow(cautious, adaptive)
      }))
  })

  describe("stores", () => {
    it.effect("two clients of one project share its limit in flight through the stores", () =>
      Effect.gen(function*() {
        const fake = Fake.make(() => Fake.delayed("1 second", () => Fake.json(200, completionOf("Hi"))))
        yield* Fake.runWithClock(
          Effect.gen(function*() {
            const chat = yield* Chat
            const summariser = yield* Summariser
            yield* Effect.forEach(
              Array.from({ length: 10 }, (_, i) => i % 2 === 0 ? chat : summariser),
              (client) => client.chatCompletion(hello),
              { concurrency: "unbounded" }
            )
          }).pipe(Effect.provide(App.pipe(Layer.provide(fake.layer))))
        )
        // Five calls each, each client allowed 8: without the store, all ten would be in flight at once.
        assert.strictEqual(fake.maxInFlight(), 8)
        assert.strictEqual(fake.requests.length, 10)
      }))

    it.effect("and their budgets are one, under one key of the store", () =>
      Effect.gen(function*() {
        const keys = new Set<string>()
        const spy = Layer.effect(
          BudgetStore.BudgetStore,
          Effect.map(BudgetStore.makeMemory, (store) => ({
            ...store,
            reserve: (request: Parameters<typeof store.reserve>[0]) => {
              keys.add(request.key)
              return store.reserve(request)
            }
          }))
        )
        const fake = Fake.make(() => Fake.json(200, completionOf("Hi")))
        yield* Effect.gen(function*() {
          yield* (yield* Chat).chatCompletion(hello)
          yield* (yield* Summariser).chatCompletion(hello)
        }).pipe(
          Effect.provide(
            Layer.mergeAll(Chat.Default, Summariser.Default).pipe(
              Layer.provide(Layer.merge(ConcurrencyStore.layerMemory, spy)),
              Layer.provide(fake.layer)
            )
          )
        )
        assert.strictEqual(keys.size, 1)
      }))
  })
})
