/**
 * An `HttpClient` that keeps the JSON body of every request and answers with a
 * canned completion, or a canned SSE stream when the body asks for one: enough
 * for the client to finish its call, so the test sees exactly what it sent.
 *
 * (The client's own `test/utils/FakeTransport.ts` does more, but this package's
 * test project may import only the client's sources, so this is its own.)
 */
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"

export interface Captured {
  readonly method: string
  readonly url: string
  readonly body: unknown
}

const MODEL = "meta-llama/Llama-3.1-8B-Instruct"

const completion = {
  id: "chatcmpl-capture",
  object: "chat.completion",
  created: 1_700_000_000,
  model: MODEL,
  choices: [{
    index: 0,
    message: { role: "assistant", content: "Fine.", refusal: null },
    finish_reason: "stop",
    logprobs: null
  }],
  usage: { prompt_tokens: 5, completion_tokens: 2, total_tokens: 7 }
}

const chunk = (delta: Record<string, unknown>, finishReason: string | null, index = 0) => ({
  id: "chatcmpl-capture",
  object: "chat.completion.chunk",
  created: 1_700_000_000,
  model: MODEL,
  choices: [{ index, delta, finish_reason: finishReason, logprobs: null }]
})

/** A whole stream answering every one of the `n` choices asked for (the client waits for each to finish). */
const sse = (n: number) =>
  [
    ...Array.from({ length: n }, (_, i) => [
      chunk({ role: "assistant", content: "" }, null, i),
      chunk({ content: "Fine." }, null, i),
      chunk({}, "stop", i)
    ]).flat(),
    { ...chunk({}, null), choices: [], usage: { prompt_tokens: 5, completion_tokens: 2, total_tokens: 7 } }
  ].map((data) => `data: ${JSON.stringify(data)}\n\n`).join("") + "data: [DONE]\n\n"

const decoder = new TextDecoder()

export const make = () => {
  const requests: Array<Captured> = []
  const client = HttpClient.make((request, url) =>
    Effect.sync(() => {
      const body = request.body._tag === "Uint8Array" ? JSON.parse(decoder.decode(request.body.body)) : undefined
      requests.push({ method: request.method, url: url.toString(), body })
      const streaming = typeof body === "object" && body !== null && (body as { stream?: unknown }).stream === true
      return HttpClientResponse.fromWeb(
        request,
        streaming
          ? new Response(sse(Number((body as { n?: unknown }).n ?? 1)), {
            status: 200,
            headers: { "content-type": "text/event-stream" }
          })
          : new Response(JSON.stringify(completion), { status: 200, headers: { "content-type": "application/json" } })
      )
    })
  )
  return { layer: Layer.succeed(HttpClient.HttpClient, client), requests }
}
