/**
 * The client's own transport, `UndiciHttpClient`, against the simulator over
 * loopback HTTP: the response's headers and every way of reading its body, the
 * errors it maps, the abort of an interrupted read; and the same answers from
 * the client over @effect/platform's transports, so that it depends on none.
 */
import { InferenceClient } from "@effect-inference/client"
import * as UndiciHttpClient from "@effect-inference/client/UndiciHttpClient"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import { assert, describe, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import type * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as Stream from "effect/Stream"
import * as InferenceSimulator from "../../src/InferenceSimulator.js"
import { chatRequest, clientLayer, eventually, withSimulatorOnly } from "../utils/Integration.js"

/** A request to the simulator in context, with its key. */
const simulatorRequest = (build: (url: string) => HttpClientRequest.HttpClientRequest) =>
  Effect.map(
    InferenceSimulator.InferenceSimulator,
    (simulator) => build(simulator.url).pipe(HttpClientRequest.bearerToken(Redacted.value(simulator.apiKey)))
  )

const chatBody = (stream: boolean) => ({ ...chatRequest({ max_tokens: 40 }), stream })

/** Runs `effect` with the simulator and `UndiciHttpClient.layer` in context. */
const withUndici = <A, E>(
  effect: Effect.Effect<A, E, HttpClient.HttpClient | InferenceSimulator.InferenceSimulator>
) => withSimulatorOnly(Effect.provide(effect, UndiciHttpClient.layer))

describe("UndiciHttpClient", () => {
  it.live("a JSON answer: status, headers read once, text read twice, json", () =>
    withUndici(Effect.gen(function*() {
      const client = yield* HttpClient.HttpClient
      const request = yield* simulatorRequest((url) =>
        HttpClientRequest.bodyUnsafeJson(HttpClientRequest.post(`${url}/chat/completions`), chatBody(false))
      )
      const response = yield* client.execute(request)
      assert.strictEqual(response.status, 200)
      assert.match(response.headers["x-request-id"] ?? "", /^sim-/)
      assert.strictEqual(response.headers, response.headers, "the headers are converted once")
      const text = yield* response.text
      assert.strictEqual(yield* response.text, text, "a second read gives the same text")
      const json = (yield* response.json) as { choices: Array<{ message: { content: string } }> }
      assert.strictEqual(JSON.parse(text).id, (json as unknown as { id: string }).id)
      assert.isAbove(json.choices[0]!.message.content.length, 0)
    })))

  it.live("arrayBuffer and urlParamsBody read the same bytes; formData of JSON is a decode error", () =>
    withUndici(Effect.gen(function*() {
      const client = yield* HttpClient.HttpClient
      const get = yield* simulatorRequest((url) => HttpClientRequest.get(`${url}/models`))
      const bytes = yield* Effect.flatMap(client.execute(get), (response) => response.arrayBuffer)
      const text = yield* Effect.flatMap(client.execute(get), (response) => response.text)
      assert.strictEqual(new TextDecoder().decode(bytes), text)
      const params = yield* Effect.flatMap(client.execute(get), (response) => response.urlParamsBody)
      assert.isAbove(params.length, 0)
      // Form data of a JSON body cannot be read: a ResponseError, not a defect.
      const form = yield* Effect.flip(Effect.flatMap(client.execute(get), (response) => response.formData))
      assert.strictEqual(form._tag, "ResponseError")
      assert.strictEqual(form._tag === "ResponseError" ? form.reason : undefined, "Decode")
    })))

  it.live("a streamed answer arrives whole through response.stream", () =>
    withUndici(Effect.gen(function*() {
      const client = yield* HttpClient.HttpClient
      const request = yield* simulatorRequest((url) =>
        HttpClientRequest.bodyUnsafeJson(HttpClientRequest.post(`${url}/chat/completions`), chatBody(true))
      )
      const response = yield* client.execute(request)
      const text = yield* response.stream.pipe(Stream.decodeText(), Stream.mkString)
      assert.isTrue(text.trimEnd().endsWith("data: [DONE]"), text.slice(-80))
      assert.isAbove(text.split("\n\n").length, 10)
    })))

  it.live("leaving a body stream early closes its connection", () =>
    withSimulatorOnly(
      Effect.gen(function*() {
        const simulator = yield* InferenceSimulator.InferenceSimulator
        const request = yield* simulatorRequest((url) =>
          HttpClientRequest.bodyUnsafeJson(HttpClientRequest.post(`${url}/chat/completions`), {
            ...chatRequest({ max_tokens: 400 }),
            stream: true
          })
        )
        yield* Effect.scoped(Effect.gen(function*() {
          // Slow enough that the answer is still being written when the reader leaves.
          const client = yield* UndiciHttpClient.makeScoped()
          const response = yield* client.execute(request)
          const first = yield* Stream.runHead(response.stream)
          assert.isTrue(first._tag === "Some" && first.value.length > 0)
          const closed = yield* eventually(Effect.map(simulator.log, (log) => log[0]?.endedAt !== undefined))
          assert.isTrue(closed, "the connection was not closed")
          const log = yield* simulator.log
          assert.isTrue(log[0]!.closedEarly, "the server saw the connection close before the answer ended")
        }))
      }),
      { perToken: "5 millis" }
    ))

  it.live("an unreachable host is a RequestError of reason Transport; a bad URL of reason InvalidUrl", () =>
    Effect.gen(function*() {
      const client = yield* HttpClient.HttpClient
      const refused = yield* Effect.flip(client.execute(HttpClientRequest.get("http://127.0.0.1:1/v1/models")))
      assert.strictEqual(refused._tag, "RequestError")
      assert.strictEqual(refused.reason, "Transport")
      const invalid = yield* Effect.flip(client.execute(HttpClientRequest.get("not a url")))
      assert.strictEqual(invalid.reason, "InvalidUrl")
    }).pipe(Effect.provide(UndiciHttpClient.layer)))
})

describe("the client over each transport", () => {
  const transports: ReadonlyArray<readonly [string, Layer.Layer<HttpClient.HttpClient>]> = [
    ["UndiciHttpClient.layer", UndiciHttpClient.layer],
    ["NodeHttpClient.layerUndici", NodeHttpClient.layerUndici],
    ["FetchHttpClient.layer", FetchHttpClient.layer]
  ]
  for (const [name, transport] of transports) {
    it.live(`${name}: the same answer called and streamed`, () =>
      withSimulatorOnly(Effect.provide(
        Effect.gen(function*() {
          const client = yield* InferenceClient.InferenceClient
          const request = chatRequest({ max_tokens: 30, seed: 7 })
          const called = yield* client.chatCompletion(request)
          const chunks = yield* Stream.runCollect(client.streamChatCompletion(request))
          const streamed = Chunk.toReadonlyArray(chunks).map((chunk) => chunk.choices[0]?.delta.content ?? "").join("")
          assert.isAbove(streamed.length, 0)
          assert.strictEqual(streamed, called.choices[0]!.message.content)
        }),
        clientLayer({}, transport)
      )))
  }
})
