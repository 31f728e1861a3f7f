/**
 * `pnpm example`: the client against a fake W&B Inference that lives in this
 * process (no network, no API key). The fake replaces `fetch` under
 * `FetchHttpClient.layer`, the same way an application swaps the HTTP layer.
 *
 * It shows a plain call, a 503 retried with exponential backoff, a 429 whose
 * Retry-After is obeyed, a quota and an authentication error caught by tag and
 * not retried, and a call that times out.
 */
import { InferenceClient } from "@effect-inference/client"
import { FetchHttpClient } from "@effect/platform"
import { Effect, Logger, Redacted } from "effect"

const MODEL = "meta-llama/Llama-3.1-8B-Instruct"

const json = (status: number, body: unknown, headers: Record<string, string> = {}) =>
  new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json", ...headers } })

const error = (status: number, message: string, headers: Record<string, string> = {}) =>
  json(status, { error: { message, type: "error", param: null, code: null } }, headers)

// How many times the fake has seen each prompt, so "fail twice, then succeed" works.
const seen = new Map<string, number>()

/** The fake service: the prompt says what it should do. */
const fakeFetch = (async (_input: RequestInfo | URL, init?: RequestInit) => {
  const body = (await new Response(init?.body).json()) as { messages: Array<{ content: string }> }
  const prompt = body.messages[0].content
  const count = (seen.get(prompt) ?? 0) + 1
  seen.set(prompt, count)
  switch (prompt) {
    case "overloaded twice":
      if (count <= 2) return error(503, "The engine is currently overloaded, please try again later")
      break
    case "rate limited once":
      if (count === 1) return error(429, "Concurrency limit reached for requests", { "retry-after": "1" })
      break
    case "out of credits":
      return error(402, "You exceeded your current quota, please check your plan and billing details")
    case "wrong key":
      return error(401, "Authentication failed")
    case "too slow":
      await new Promise((resolve) => setTimeout(resolve, 2_000))
  }
  return json(200, {
    id: `chatcmpl-${count}`,
    object: "chat.completion",
    created: Math.floor(Date.now() / 1000),
    model: MODEL,
    choices: [{ index: 0, message: { role: "assistant", content: `Answer to "${prompt}"` }, finish_reason: "stop" }],
    usage: { prompt_tokens: 4, completion_tokens: 5, total_tokens: 9 }
  })
}) as typeof fetch

const ask = (title: string, prompt: string) =>
  Effect.gen(function*() {
    const client = yield* InferenceClient.InferenceClient
    const started = Date.now()
    yield* Effect.log(`▶ ${title}`)
    const outcome = yield* client.chatCompletion({ model: MODEL, messages: [{ role: "user", content: prompt }] }).pipe(
      Effect.map((completion) => `ok: ${completion.choices[0].message.content}`),
      Effect.catchTags({
        QuotaExceededError: (e) => Effect.succeed(`caught QuotaExceededError after ${e.attempts} attempt(s)`),
        AuthenticationError: (e) => Effect.succeed(`caught AuthenticationError after ${e.attempts} attempt(s)`),
        TimeoutError: (e) => Effect.succeed(`caught TimeoutError (${e.phase}) after ${e.attempts} attempt(s)`)
      }),
      Effect.catchAll((e) => Effect.succeed(`failed with ${e._tag}: ${e.message}`))
    )
    yield* Effect.log(`  ${outcome} (${Date.now() - started} ms)`)
  })

const program = Effect.gen(function*() {
  yield* Effect.log("Running against an in-process fake of W&B Inference (no network, no API key)")
  yield* ask("a plain call", "Hello")
  yield* ask("a 503 twice, retried with exponential backoff (200 ms, 400 ms)", "overloaded twice")
  yield* ask("a 429 with Retry-After: 1, obeyed", "rate limited once")
  yield* ask("a 402 quota error, caught by tag, not retried", "out of credits")
  yield* ask("a 401, caught by tag, not retried", "wrong key")
  yield* ask("an answer slower than the 500 ms timeout: every attempt is cut short", "too slow")
})

program.pipe(
  Effect.provide(InferenceClient.layer({
    apiKey: Redacted.make("demo-key"),
    timeout: "500 millis",
    retry: { baseDelay: "200 millis", maxRetries: 3, jitter: false }
  })),
  Effect.provide(FetchHttpClient.layer),
  Effect.provideService(FetchHttpClient.Fetch, fakeFetch),
  Effect.provide(Logger.pretty),
  Effect.runPromise
).then(
  () => process.exit(0),
  (cause) => {
    console.error(cause)
    process.exit(1)
  }
)
