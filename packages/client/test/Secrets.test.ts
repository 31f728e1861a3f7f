/**
 * A server that echoes the `Authorization` header (whole, in part, in another
 * case, URL-encoded, HTML-escaped, in a request id or any other header) must
 * not get the key into anything the client keeps or shows: errors, their
 * messages and JSON, `Cause.pretty`, logs, usage events and span attributes.
 * The echoing server is a real one on loopback, behind each transport.
 */
import { FetchHttpClient } from "@effect/platform"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import type * as HttpClient from "@effect/platform/HttpClient"
import { assert, describe, it } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Queue from "effect/Queue"
import * as Stream from "effect/Stream"
import * as http from "node:http"
import type { AddressInfo } from "node:net"
import * as InferenceClient from "../src/InferenceClient.js"
import type * as InferenceError from "../src/InferenceError.js"
import * as classify from "../src/internal/classify.js"
import * as UndiciHttpClient from "../src/UndiciHttpClient.js"
import * as UsageTracker from "../src/UsageTracker.js"
import * as Capture from "./utils/Capture.js"
import { hello, SECRET, testOptions } from "./utils/Client.js"

// ---------------------------------------------------------------------------
// Echoes, and how a leak is found
// ---------------------------------------------------------------------------

const RUN = 8

const percent = (text: string, upper: boolean): string =>
  text.split("").map((c) => {
    const hex = c.charCodeAt(0).toString(16).padStart(2, "0")
    return `%${upper ? hex.toUpperCase() : hex}`
  }).join("")
const decimalEntities = (text: string): string => text.split("").map((c) => `&#${c.charCodeAt(0)};`).join("")
const hexEntities = (text: string): string => text.split("").map((c) => `&#x${c.charCodeAt(0).toString(16)};`).join("")

/** The text with one level of `%XX` and HTML escapes undone, written apart from the scrubber on purpose. */
const unescapeOnce = (text: string): string =>
  text
    .replace(/%([0-9a-f]{2})/gi, (_, hex: string) => String.fromCharCode(Number.parseInt(hex, 16)))
    .replace(/&#x([0-9a-f]+);?/gi, (_, hex: string) => String.fromCodePoint(Number.parseInt(hex, 16)))
    .replace(/&#([0-9]+);?/g, (_, dec: string) => String.fromCodePoint(Number.parseInt(dec, 10)))
    .replace(/&(amp|hyphen|lowbar|period);/gi, (_, name: string) =>
      ({ amp: "&", hyphen: "-", lowbar: "_", period: "." })[name.toLowerCase() as "amp"])

/** The runs of `RUN` characters of the key found in `text`, as sent or with up to two levels of escapes undone. */
const runsOfKey = (text: string, key = SECRET): Array<string> => {
  const found = new Set<string>()
  const lowerKey = key.toLowerCase()
  let level = text
  for (let depth = 0; depth < 3; depth++) {
    const lower = level.toLowerCase()
    for (let i = 0; i + RUN <= lowerKey.length; i++) {
      if (lower.includes(lowerKey.slice(i, i + RUN))) found.add(lowerKey.slice(i, i + RUN))
    }
    level = unescapeOnce(level)
  }
  return [...found]
}

const assertClean = (text: string, where: string): void => {
  const runs = runsOfKey(text)
  assert.deepStrictEqual(runs, [], `${where} holds part of the key: ${text.slice(0, 300)}`)
}

/** Everything an error shows of itself. */
const shownBy = (error: InferenceError.InferenceError): ReadonlyArray<readonly [string, string]> => [
  ["message", error.message],
  ["String", String(error)],
  ["JSON.stringify", JSON.stringify(error)],
  ["toJSON", JSON.stringify(error.toJSON())],
  ["Cause.pretty", Cause.pretty(Cause.fail(error))],
  ["requestId", error._tag === "InvalidRequestError" ? "" : String("requestId" in error ? error.requestId : "")]
]

// ---------------------------------------------------------------------------
// The scrubber
// ---------------------------------------------------------------------------

describe("the scrubber", () => {
  const key = SECRET
  const auth = `Bearer ${key}`
  const echoes: ReadonlyArray<readonly [string, string]> = [
    ["the whole header", `Invalid authorization: ${auth}`],
    ["the key twice", `${key} and ${key}`],
    ["a partial key, prefix…suffix", `key ${key.slice(0, 10)}…${key.slice(-8)} refused`],
    ["upper case", `KEY ${key.toUpperCase()}`],
    ["mixed case", key.split("").map((c, i) => i % 2 === 0 ? c.toUpperCase() : c).join("")],
    ["encodeURIComponent", `auth=${encodeURIComponent(auth)}`],
    ["%XX upper case", percent(key, true)],
    ["%XX lower case", percent(key, false)],
    ["%XX of a part", `x${percent(key.slice(3, 12), false)}y`],
    ["decimal entities", decimalEntities(auth)],
    ["hex entities", hexEntities(key)],
    ["an entity for the hyphen only", key.replace(/-/g, "&#45;")],
    ["double-encoded", percent(key, true).replace(/%/g, "%25")],
    ["HTML-escaped entities", decimalEntities(key).replace(/&/g, "&amp;")],
    ["a run of 8", `model ${key.slice(5, 13)} limit`],
    ["a run of 8 upper case", `model ${key.slice(9, 17).toUpperCase()} limit`]
  ]

  for (const [name, text] of echoes) {
    it(`removes ${name}`, () => {
      assert.isAbove(runsOfKey(text).length, 0, "the echo holds part of the key")
      const scrubbed = classify.scrub(text, key)
      assertClean(scrubbed, name)
      assert.include(scrubbed, "<redacted>")
    })
  }

  it("leaves text without the key alone, runs of 7 and words that share letters with it", () => {
    for (
      const text of [
        "Concurrency limit reached for requests",
        `a run of 7: ${key.slice(2, 9)}!`,
        "100% & 50%; &amp; %zz &#xZZ; &#99999999;",
        "secret wandb 4f9c"
      ]
    ) {
      assert.strictEqual(classify.scrub(text, key), text)
    }
  })

  it("clips to 1000 characters after cutting, so no echo is cut in half at the end", () => {
    const long = `${"x".repeat(995)}${percent(key, true)} ${"z".repeat(5000)}`
    const scrubbed = classify.scrub(long, key)
    assertClean(scrubbed, "a clipped text")
    assert.isTrue(scrubbed.endsWith("…"))
    assert.isAtMost(scrubbed.length, 1001)
  })

  it("scrubs a body of megabytes full of escaped echoes without a quadratic cost", () => {
    const body = `<p>${hexEntities(key)}</p> &amp; %41 `.repeat(20_000)
    const start = performance.now()
    const scrubbed = classify.scrub(body, key)
    // Generous for a shared machine: the point is linear (well under a second), not quadratic (hours).
    assert.isBelow(performance.now() - start, 2000)
    assertClean(scrubbed, "a long body")
    assert.isTrue(scrubbed.endsWith("…"))
  })

  it("keeps a request id only if short, visible ASCII and clean", () => {
    const of = (value: string) => classify.requestIdOf({ "x-request-id": value }, key)
    assert.strictEqual(of("req-7f3a"), "req-7f3a")
    assert.strictEqual(of("3f1c2b1e-8a9d-4c3e-9b7a-1d2e3f4a5b6c"), "3f1c2b1e-8a9d-4c3e-9b7a-1d2e3f4a5b6c")
    for (
      const bad of [
        auth,
        key,
        key.toUpperCase(),
        encodeURIComponent(auth),
        hexEntities(key.slice(0, 12)),
        `req-${key.slice(4, 12)}`,
        "x".repeat(129),
        "req\u00e9",
        "req 1",
        ""
      ]
    ) {
      assert.isUndefined(of(bad), bad)
    }
    assert.strictEqual(
      classify.requestIdOf({ "x-request-id": auth, "request-id": "req-2" }, key),
      "req-2",
      "the first clean one"
    )
    assert.isUndefined(classify.requestIdOf({ "request-id": key }, key))
  })
})

// ---------------------------------------------------------------------------
// Over the wire
// ---------------------------------------------------------------------------

interface Answer {
  readonly status: number
  readonly headers: Readonly<Record<string, string>>
  readonly body: string
}

interface Variant {
  readonly name: string
  readonly stream: boolean
  /** The answer to a request with `auth` as its Authorization header, `key` the key in it. */
  readonly answer: (auth: string, key: string) => Answer
  /** Whether the call fails. */
  readonly fails: boolean
  /** Where the echo shows, scrubbed, so that the test can tell the server really echoed. */
  readonly shows?: "serverMessage" | "description" | undefined
}

const json = "application/json"
const error = (message: string, code: string | null = null) =>
  JSON.stringify({ error: { message, type: "invalid_request_error", param: null, code } })
const completion = JSON.stringify({
  id: "c",
  object: "chat.completion",
  created: 1,
  model: "m",
  choices: [{ index: 0, message: { role: "assistant", content: "Hi" }, finish_reason: "stop" }],
  usage: { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 }
})
const chunk = (delta: Record<string, unknown>, finish: string | null = null) =>
  `data: ${
    JSON.stringify({
      id: "c",
      object: "chat.completion.chunk",
      created: 1,
      model: "m",
      choices: [{ index: 0, delta, finish_reason: finish }]
    })
  }\n\n`

const variants: ReadonlyArray<Variant> = [
  {
    name: "the whole header in x-request-id (retried: the retry log)",
    stream: false,
    fails: true,
    answer: (auth) => ({ status: 503, headers: { "content-type": json, "x-request-id": auth }, body: error("busy") })
  },
  {
    name: "the key in request-id",
    stream: false,
    fails: true,
    answer: (_, key) => ({ status: 500, headers: { "content-type": json, "request-id": key }, body: error("oops") })
  },
  {
    name: "the whole header in x-request-id of a stream",
    stream: true,
    fails: true,
    answer: (auth) => ({ status: 401, headers: { "content-type": json, "x-request-id": auth }, body: error("no") })
  },
  {
    name: "a partial key (prefix...suffix) in the body and x-request-id",
    stream: false,
    fails: true,
    shows: "serverMessage",
    answer: (_, key) => ({
      status: 401,
      headers: { "content-type": json, "x-request-id": `${key.slice(0, 10)}...${key.slice(-8)}` },
      body: error(`Invalid key ${key.slice(0, 10)}…${key.slice(-8)}`)
    })
  },
  {
    name: "the key upper-cased",
    stream: false,
    fails: true,
    shows: "serverMessage",
    answer: (auth, key) => ({
      status: 401,
      headers: { "content-type": json, "x-request-id": key.toUpperCase() },
      body: error(`Invalid ${auth.toUpperCase()}`, key.toUpperCase())
    })
  },
  {
    name: "the key URL-encoded",
    stream: false,
    fails: true,
    shows: "serverMessage",
    answer: (auth, key) => ({
      status: 403,
      headers: { "content-type": json, "x-request-id": encodeURIComponent(auth) },
      body: error(`denied ${encodeURIComponent(auth)}&lower=${percent(key, false)}&upper=${percent(key, true)}`)
    })
  },
  {
    name: "the key HTML-escaped in a plain-text page",
    stream: false,
    fails: true,
    shows: "serverMessage",
    answer: (auth, key) => ({
      status: 400,
      headers: { "content-type": "text/html", "x-request-id": hexEntities(key.slice(0, 12)) },
      body: `<html><p>Authorization: ${decimalEntities(auth)}</p><p>${key.replace(/-/g, "&#45;")}</p><p>${
        hexEntities(key)
      }</p></html>`
    })
  },
  {
    name: "a run of 8 of the key as the model of a rate limit (retried)",
    stream: false,
    fails: true,
    shows: "serverMessage",
    answer: (_, key) => ({
      status: 429,
      headers: { "content-type": json, "x-request-id": `req-${key.slice(5, 13)}` },
      body: error(
        `concurrency limit reached for requests: ${key.slice(3, 12)}-user limit reached`,
        "rate_limit_exceeded"
      )
    })
  },
  {
    name: "the key in a body that is not a completion",
    stream: false,
    fails: true,
    shows: "description",
    answer: (auth) => ({
      status: 200,
      headers: { "content-type": json },
      body: JSON.stringify({ id: "c", object: "chat.completion", created: 1, model: "m", choices: auth })
    })
  },
  {
    name: "an error frame echoing the key in a stream",
    stream: true,
    fails: true,
    shows: "serverMessage",
    answer: (auth, key) => ({
      status: 200,
      headers: { "content-type": "text/event-stream", "x-request-id": auth },
      body: chunk({ role: "assistant", content: "Hi" }) +
        `data: ${
          JSON.stringify({
            error: { message: `bad key ${encodeURIComponent(auth)}`, type: "server_error", code: key.toUpperCase() }
          })
        }\n\n`
    })
  },
  {
    name: "the key in the content-type of a stream's answer",
    stream: true,
    fails: true,
    shows: "description",
    answer: (_, key) => ({ status: 200, headers: { "content-type": `application/x-${key}` }, body: "not json" })
  },
  {
    name: "the key in x-request-id, request-id and another header of an answer",
    stream: false,
    fails: false,
    answer: (auth, key) => ({
      status: 200,
      headers: { "content-type": json, "x-request-id": auth, "request-id": key, "x-echo": key },
      body: completion
    })
  },
  {
    name: "the key in another header of a streamed answer",
    stream: true,
    fails: false,
    answer: (auth) => ({
      status: 200,
      headers: { "content-type": "text/event-stream", "x-echo": auth, "x-request-id": auth },
      body: chunk({ role: "assistant", content: "Hi" }) + chunk({}, "stop") + "data: [DONE]\n\n"
    })
  }
]

/** A loopback server that answers as the variant named by the request's model. */
const server = Effect.acquireRelease(
  Effect.async<{ readonly url: string; readonly server: http.Server }>((resume) => {
    const server = http.createServer((request, response) => {
      const chunks: Array<Buffer> = []
      request.on("data", (data: Buffer) => chunks.push(data))
      request.on("end", () => {
        const { model } = JSON.parse(Buffer.concat(chunks).toString("utf8")) as { readonly model: string }
        const auth = request.headers.authorization ?? ""
        const variant = variants.find((v) => v.name === model)!
        const answer = variant.answer(auth, auth.replace(/^Bearer /, ""))
        response.writeHead(answer.status, answer.headers)
        response.end(answer.body)
      })
    })
    server.listen(
      0,
      "127.0.0.1",
      () => resume(Effect.succeed({ url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`, server }))
    )
  }),
  ({ server }) =>
    Effect.async<void>((resume) => {
      server.closeAllConnections()
      server.close(() => resume(Effect.void))
    })
)

const transports: ReadonlyArray<readonly [string, Layer.Layer<HttpClient.HttpClient>, boolean]> = [
  ["UndiciHttpClient", UndiciHttpClient.layer, false],
  ["NodeHttpClient.layerUndici", NodeHttpClient.layerUndici, true],
  ["FetchHttpClient", FetchHttpClient.layer, true]
]

/** Response headers a span may show (the client's allow-list). */
const SHOWN_HEADERS = new Set(["content-length"])

describe("a server that echoes the key", () => {
  for (const [transport, transportLayer, httpSpans] of transports) {
    describe(`over ${transport}`, () => {
      for (const variant of variants) {
        it.live(variant.name, () =>
          Effect.scoped(Effect.gen(function*() {
            const { url } = yield* server
            const capture = Capture.make()
            const client = InferenceClient.layer({
              ...testOptions,
              baseUrl: url,
              retry: { maxRetries: 1, baseDelay: "1 millis", jitter: false },
              circuitBreaker: false
            }).pipe(Layer.provideMerge(UsageTracker.layer({ logLevel: "Info" })), Layer.provide(transportLayer))
            const request = { ...hello, model: variant.name }
            const { events, exit } = yield* Capture.withCapture(
              capture,
              Effect.scoped(Effect.gen(function*() {
                const inference = yield* InferenceClient.InferenceClient
                const events = yield* (yield* UsageTracker.UsageTracker).subscribe
                const exit = yield* Effect.exit(
                  variant.stream
                    ? Stream.runDrain(inference.streamChatCompletion(request))
                    : inference.chatCompletion(request)
                )
                return { events: Chunk.toReadonlyArray(yield* Queue.takeAll(events)), exit }
              })).pipe(Effect.provide(client))
            )
            assert.strictEqual(exit._tag === "Failure", variant.fails, String(exit))
            if (exit._tag === "Failure") {
              const failure = Cause.failureOption(exit.cause)
              assert.strictEqual(failure._tag, "Some", Cause.pretty(exit.cause))
              if (failure._tag === "Some") {
                const error = failure.value
                for (const [what, text] of shownBy(error)) assertClean(text, `the error's ${what}`)
                if (variant.shows !== undefined) {
                  const shown = (error as unknown as Record<string, unknown>)[variant.shows]
                  assert.include(String(shown), "<redacted>", `the echo reached the error, scrubbed: ${error.message}`)
                }
                assert.isTrue(
                  !("requestId" in error) || error.requestId === undefined,
                  `no request id was clean: ${"requestId" in error ? error.requestId : ""}`
                )
              }
            }
            // The usage event, and the usage line in the logs.
            assert.strictEqual(events.length, 1)
            assert.isUndefined(events[0]!.requestId)
            assertClean(JSON.stringify(events), "the usage event")
            assert.isTrue(capture.logs.some((log) => log.message.includes("Inference usage")), "the usage line")
            if (variant.name.includes("retried")) {
              assert.isTrue(capture.logs.some((log) => log.message.includes("retrying")), "the retry log")
            }
            // Logs and spans, whole.
            assertClean(capture.dump(), "the logs and spans")
            const http = capture.spans.filter((span) => span.name.startsWith("http.client"))
            assert.strictEqual(http.length > 0, httpSpans, "@effect/platform's spans")
            for (const span of http) {
              for (const [name, value] of span.attributes) {
                const header = /^http\.response\.header\.(.+)$/.exec(name)
                if (header !== null && !SHOWN_HEADERS.has(header[1]!)) {
                  assert.strictEqual(String(value), "<redacted>", name)
                }
              }
              if (span.attributes.has("http.response.header.x-request-id")) {
                assert.strictEqual(String(span.attributes.get("http.response.header.x-request-id")), "<redacted>")
              }
            }
          })))
      }

      it.live("a clean request id is kept on the error, the usage event and the retry log", () =>
        Effect.scoped(Effect.gen(function*() {
          const echo = http.createServer((request, response) => {
            request.resume()
            request.on("end", () => {
              response.writeHead(503, { "content-type": json, "x-request-id": "req-clean-1" })
              response.end(error("busy"))
            })
          })
          yield* Effect.acquireRelease(
            Effect.async<void>((resume) => {
              echo.listen(0, "127.0.0.1", () => resume(Effect.void))
            }),
            () =>
              Effect.async<void>((resume) => {
                echo.closeAllConnections()
                echo.close(() => resume(Effect.void))
              })
          )
          const capture = Capture.make()
          const client = InferenceClient.layer({
            ...testOptions,
            baseUrl: `http://127.0.0.1:${(echo.address() as AddressInfo).port}/v1`,
            retry: false
          }).pipe(Layer.provideMerge(UsageTracker.layer({ logLevel: "Info" })), Layer.provide(transportLayer))
          const exit = yield* Capture.withCapture(
            capture,
            Effect.exit(Effect.flatMap(InferenceClient.InferenceClient, (c) => c.chatCompletion(hello))).pipe(
              Effect.provide(client)
            )
          )
          assert.strictEqual(exit._tag, "Failure")
          if (exit._tag === "Failure") {
            const failure = Cause.failureOption(exit.cause)
            assert.strictEqual(
              failure._tag === "Some" && "requestId" in failure.value && failure.value.requestId,
              "req-clean-1"
            )
          }
          const logged = capture.logs.filter((log) => log.annotations["requestId"] === "req-clean-1")
          assert.isAtLeast(logged.length, 2, "the failure log and the usage line")
        })))
    })
  }
})
