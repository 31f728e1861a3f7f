/**
 * `streamChatCompletion` against the simulator over loopback HTTP: the chunks fold
 * into what `chatCompletion` returns, failures before content are retried from
 * scratch, failures after content end the stream with what was delivered, and a
 * stream holds its concurrency slot and its socket exactly as long as it runs.
 */
import type { ChatCompletion } from "@effect-inference/client"
import { ChatCompletionChunk, InferenceClient, InferenceError } from "@effect-inference/client"
import { assert, describe, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Stream from "effect/Stream"
import * as Fault from "../../src/Fault.js"
import * as InferenceSimulator from "../../src/InferenceSimulator.js"
import {
  chatLog,
  chatRequest,
  eventually,
  noOpenConnections,
  observedRetry,
  runStream,
  streamChat,
  withClient,
  withSimulator,
  withSimulatorOnly
} from "../utils/Integration.js"

const chat = (request: ChatCompletion.ChatCompletionRequestInput) =>
  Effect.flatMap(InferenceClient.InferenceClient, (client) => client.chatCompletion(request))

/** What a streamed and a non-streamed answer must share: everything but `id` and `created`. */
const summary = (completion: ChatCompletion.ChatCompletion) => ({
  model: completion.model,
  choices: completion.choices.map((choice) => ({
    index: choice.index,
    role: choice.message.role,
    content: choice.message.content,
    finish_reason: choice.finish_reason
  })),
  usage: completion.usage === undefined ? undefined : {
    prompt_tokens: completion.usage.prompt_tokens,
    completion_tokens: completion.usage.completion_tokens,
    total_tokens: completion.usage.total_tokens
  }
})

/** The chunks a complete answer arrives in: per choice a role chunk and a token each, a finish per choice, usage. */
const expectedChunkCount = (completion: ChatCompletion.ChatCompletion, withUsage = true) =>
  2 * completion.choices.length + (completion.usage?.completion_tokens ?? 0) + (withUsage ? 1 : 0)

const chunksDelivered = (error: InferenceError.InferenceError | undefined) =>
  error !== undefined && "chunksDelivered" in error ? error.chunksDelivered : undefined

const timeoutPhase = (error: InferenceError.InferenceError | undefined) =>
  error?._tag === "TimeoutError" ? error.phase : undefined

/** The request bodies the simulator logged, for the streamed requests. */
const streamedBodies = Effect.map(
  chatLog,
  (log) => log.filter((entry) => entry.stream).map((entry) => entry.body as Record<string, unknown>)
)

describe("streaming against the simulator", () => {
  describe("the fold of the chunks equals the non-streamed answer", () => {
    const cases: ReadonlyArray<readonly [string, Partial<ChatCompletion.ChatCompletionRequestInput>]> = [
      ["a plain request", {}],
      ["n: 2", { n: 2 }],
      ["max_tokens: 3 (finish_reason length)", { max_tokens: 3 }]
    ]
    for (const [name, overrides] of cases) {
      it.live(`${name}: same choices, model and usage`, () =>
        withSimulator(
          Effect.gen(function*() {
            const request = chatRequest(overrides)
            const { chunks, error } = yield* runStream(streamChat(request))
            const whole = yield* chat(request)
            assert.isUndefined(error)
            const streamed = ChatCompletionChunk.toCompletion(chunks)
            assert.deepStrictEqual(summary(streamed), summary(whole))
            assert.strictEqual(chunks.length, expectedChunkCount(whole), "chunks received")
            assert.isTrue(chunks.length >= 3 + (overrides.n ?? 1), "the answer came in several chunks")
            assert.isDefined(streamed.usage, "usage arrives in the last chunk by default")
            assert.isDefined(chunks[chunks.length - 1]!.usage)
            assert.strictEqual(streamed.choices.length, overrides.n ?? 1)
            if (overrides.max_tokens !== undefined) {
              assert.strictEqual(streamed.choices[0].finish_reason, "length")
              assert.strictEqual(streamed.usage?.completion_tokens, overrides.max_tokens)
            } else {
              assert.isTrue(streamed.choices.every((choice) => choice.finish_reason === "stop"))
            }
            if (overrides.n === 2) {
              assert.notStrictEqual(streamed.choices[0].message.content, streamed.choices[1].message.content)
            }
            const log = yield* chatLog
            assert.deepStrictEqual(log.map((entry) => [entry.stream, entry.outcome]), [[true, "ok"], [false, "ok"]])
          })
        ))
    }

    it.live("ChatCompletionChunk.collect folds the live stream as toCompletion does", () =>
      withSimulator(
        Effect.gen(function*() {
          const request = chatRequest({ n: 2 })
          const collected = yield* ChatCompletionChunk.collect(streamChat(request))
          const whole = yield* chat(request)
          assert.deepStrictEqual(summary(collected), summary(whole))
          assert.strictEqual(collected.id, "chatcmpl-sim-1", "the id of the streamed call")
        })
      ))

    it.live("by default the request asks for a stream with usage (stream: true, include_usage: true)", () =>
      withSimulator(
        Effect.gen(function*() {
          yield* ChatCompletionChunk.collect(streamChat(chatRequest()))
          const [body] = yield* streamedBodies
          assert.isDefined(body)
          assert.strictEqual(body!.stream, true)
          assert.deepStrictEqual(body!.stream_options, { include_usage: true })
        })
      ))

    it.live("stream_options.include_usage false: sent as such, and no chunk carries usage", () =>
      withSimulator(
        Effect.gen(function*() {
          const request = chatRequest({ stream_options: { include_usage: false } })
          const { chunks, error } = yield* runStream(streamChat(request))
          const whole = yield* chat(request)
          assert.isUndefined(error)
          assert.isTrue(chunks.every((chunk) => chunk.usage === undefined), "a chunk carried usage")
          const streamed = ChatCompletionChunk.toCompletion(chunks)
          assert.isUndefined(streamed.usage)
          assert.isDefined(whole.usage)
          assert.deepStrictEqual(summary(streamed), { ...summary(whole), usage: undefined })
          assert.strictEqual(chunks.length, expectedChunkCount(whole, false), "chunks received")
          const [body] = yield* streamedBodies
          assert.strictEqual(body!.stream, true)
          assert.deepStrictEqual(body!.stream_options, { include_usage: false })
        })
      ))
  })

  describe("a failure before the first content is retried, and the stream starts over cleanly", () => {
    const cases: ReadonlyArray<
      readonly [string, Fault.Fault, string, Partial<InferenceClient.Options>]
    > = [
      ["503 overloaded", Fault.overloaded, "ServiceUnavailableError", {}],
      ["429 with retry-after-ms", Fault.rateLimited({ millis: 30 }), "RateLimitError", {}],
      ["a connection reset before the response", Fault.connectionReset(), "ConnectionError", {}],
      [
        "an SSE error frame (429) after the role chunk, before content",
        Fault.sseErrorFrame({ afterChunks: 0, status: 429, message: "Concurrency limit reached for requests" }),
        "RateLimitError",
        {}
      ],
      ["a hang past firstChunkTimeout", Fault.hang, "TimeoutError", { firstChunkTimeout: "200 millis" }]
    ]
    for (const [name, fault, tag, options] of cases) {
      it.live(`${name} → ${tag} retried; each chunk reaches the consumer once`, () => {
        const { retry, seen } = observedRetry()
        return withSimulator(
          Effect.gen(function*() {
            const simulator = yield* InferenceSimulator.InferenceSimulator
            yield* simulator.script(fault)
            const request = chatRequest()
            const { chunks, error } = yield* runStream(streamChat(request))
            const whole = yield* chat(request)
            assert.isUndefined(error)
            assert.deepStrictEqual(summary(ChatCompletionChunk.toCompletion(chunks)), summary(whole))
            // The content alone would not show a second role chunk from the failed attempt: count them all.
            assert.strictEqual(chunks.length, expectedChunkCount(whole), "chunks received")
            assert.strictEqual(chunks.filter((chunk) => chunk.choices[0]?.delta.role === "assistant").length, 1)
            assert.deepStrictEqual(seen.map((e) => e._tag), [tag], "errors the retry policy was asked about")
            assert.isUndefined(chunksDelivered(seen[0]), "nothing had been delivered when it failed")
            if (tag === "TimeoutError") assert.strictEqual(timeoutPhase(seen[0]), "firstChunk")
            const log = yield* chatLog
            assert.deepStrictEqual(
              log.map((entry) => [entry.stream, entry.outcome, entry.fault]),
              [[true, "fault", fault._tag], [true, "ok", undefined], [false, "ok", undefined]]
            )
          }),
          {},
          { retry, ...options }
        )
      })
    }

    it.live("a hang with retries off → TimeoutError phase firstChunk after firstChunkTimeout", () =>
      withSimulator(
        Effect.gen(function*() {
          const simulator = yield* InferenceSimulator.InferenceSimulator
          yield* simulator.script(Fault.hang)
          const started = Date.now()
          const { chunks, error } = yield* runStream(streamChat(chatRequest()))
          const elapsed = Date.now() - started
          assert.strictEqual(chunks.length, 0)
          assert.strictEqual(error?._tag, "TimeoutError")
          assert.strictEqual(timeoutPhase(error), "firstChunk")
          assert.isTrue(error?._tag === "TimeoutError" && Duration.equals(error.timeout, Duration.millis(200)))
          assert.strictEqual(error?.attempts, 1)
          assert.isTrue(elapsed >= 190 && elapsed < 1_000, `failed after ${elapsed} ms`)
          assert.strictEqual((yield* chatLog).length, 1)
        }),
        {},
        { retry: false, firstChunkTimeout: "200 millis" }
      ))

    const fatal: ReadonlyArray<readonly [Fault.Fault, string]> = [
      [Fault.quotaExceeded, "QuotaExceededError"],
      [Fault.unauthorized, "AuthenticationError"]
    ]
    for (const [fault, tag] of fatal) {
      it.live(`${fault._tag} → ${tag} after exactly 1 request, no chunk`, () => {
        const { retry, seen } = observedRetry()
        return withSimulator(
          Effect.gen(function*() {
            const simulator = yield* InferenceSimulator.InferenceSimulator
            yield* simulator.script(fault, fault)
            const { chunks, error } = yield* runStream(streamChat(chatRequest()))
            assert.strictEqual(chunks.length, 0)
            assert.isTrue(InferenceError.isInferenceError(error))
            assert.strictEqual(error?._tag, tag)
            assert.strictEqual(error?.attempts, 1)
            assert.isUndefined(chunksDelivered(error))
            assert.deepStrictEqual(seen.map((e) => e._tag), [tag])
            assert.strictEqual((yield* chatLog).length, 1, "requests the simulator received")
          }),
          {},
          { retry }
        )
      })
    }
  })

  describe("a failure after content ends the stream, is not retried and says how far it got", () => {
    // With no delay the content and the error frame usually come in one network read; 20 ms apart, in reads of their own.
    const timings: ReadonlyArray<readonly [string, InferenceSimulator.Options]> = [
      ["sent at once", {}],
      ["20 ms apart", { perToken: "20 millis" }]
    ]
    for (const [timing, simulatorOptions] of timings) {
      it.live(`an SSE error frame after 3 tokens (${timing}) → InternalServerError with chunksDelivered`, () =>
        withSimulator(
          Effect.gen(function*() {
            const simulator = yield* InferenceSimulator.InferenceSimulator
            yield* simulator.script(Fault.sseErrorFrame({ afterChunks: 3 }))
            const { chunks, error } = yield* runStream(streamChat(chatRequest()))
            assert.strictEqual((yield* chatLog).length, 1, "requests the simulator received (a retry: chunks dropped)")
            assert.strictEqual(error?._tag, "InternalServerError")
            assert.strictEqual(chunks.length, 4, "the role chunk and 3 tokens")
            assert.strictEqual(chunksDelivered(error), chunks.length)
            assert.strictEqual(error?.attempts, 1)
            assert.include(error?.message ?? "", "after 4 streamed chunks")
          }),
          simulatorOptions
        ))

      it.live(`an SSE error frame 429 "Concurrency limit reached" after content (${timing}) → RateLimitError, not retried`, () =>
        withSimulator(
          Effect.gen(function*() {
            const simulator = yield* InferenceSimulator.InferenceSimulator
            yield* simulator.script(
              Fault.sseErrorFrame({ afterChunks: 3, status: 429, message: "Concurrency limit reached for requests" })
            )
            const { chunks, error } = yield* runStream(streamChat(chatRequest()))
            assert.strictEqual((yield* chatLog).length, 1, "requests the simulator received (a retry: chunks dropped)")
            assert.isTrue(InferenceError.isInferenceError(error), "a typed InferenceError")
            assert.strictEqual(error?._tag, "RateLimitError")
            assert.strictEqual(
              error?._tag === "RateLimitError" ? error.serverMessage : undefined,
              "Concurrency limit reached for requests"
            )
            assert.strictEqual(chunks.length, 4)
            assert.strictEqual(chunksDelivered(error), chunks.length)
          }),
          simulatorOptions
        ))
    }

    it.live("a body that ends before [DONE] → ResponseDecodeError (truncated) with chunksDelivered", () =>
      withSimulator(
        Effect.gen(function*() {
          const simulator = yield* InferenceSimulator.InferenceSimulator
          yield* simulator.script(Fault.sseCutBeforeDone({ afterChunks: 3 }))
          const { chunks, error } = yield* runStream(streamChat(chatRequest()))
          assert.strictEqual(error?._tag, "ResponseDecodeError")
          assert.include(error?._tag === "ResponseDecodeError" ? error.description : "", "truncated")
          assert.strictEqual(chunks.length, 4)
          assert.strictEqual(chunksDelivered(error), chunks.length)
          assert.strictEqual((yield* chatLog).length, 1, "requests the simulator received")
        })
      ))

    it.live("a connection reset mid-body → ConnectionError with chunksDelivered", () =>
      withSimulator(
        Effect.gen(function*() {
          const simulator = yield* InferenceSimulator.InferenceSimulator
          yield* simulator.script(Fault.connectionReset({ midBody: true }))
          const { chunks, error } = yield* runStream(streamChat(chatRequest()))
          assert.strictEqual(error?._tag, "ConnectionError")
          // The simulator resets after the role chunk and 2 tokens.
          assert.strictEqual(chunks.length, 3)
          assert.strictEqual(chunksDelivered(error), chunks.length)
          assert.strictEqual((yield* chatLog).length, 1, "requests the simulator received")
        }),
        // Tokens 20 ms apart, so the client has read them when the reset comes: a reset in the same read as
        // the content makes the transport drop the unread body, which the client rightly sees (and retries)
        // as a failure before any content.
        { perToken: "20 millis" }
      ))

    const stalls: ReadonlyArray<readonly [string, Fault.Fault]> = [
      ["a stall after 3 tokens", Fault.stallMidBody({ afterChunks: 3 })],
      [
        "a stall after 3 tokens with keep-alive comments every 50 ms (they do not reset the idle timer)",
        Fault.stallMidBody({ afterChunks: 3, keepAliveEveryMillis: 50 })
      ]
    ]
    for (const [name, fault] of stalls) {
      it.live(`${name} → TimeoutError phase idle after idleTimeout`, () =>
        withSimulator(
          Effect.gen(function*() {
            const simulator = yield* InferenceSimulator.InferenceSimulator
            yield* simulator.script(fault)
            const started = Date.now()
            // Cut off at 2 s, so a stream that never times out fails the assertions below instead of hanging.
            const { chunks, error } = yield* runStream(
              streamChat(chatRequest()).pipe(Stream.interruptAfter("2 seconds"))
            )
            const elapsed = Date.now() - started
            assert.strictEqual(error?._tag, "TimeoutError", `no idle timeout within ${elapsed} ms`)
            assert.strictEqual(timeoutPhase(error), "idle")
            assert.isTrue(error?._tag === "TimeoutError" && Duration.equals(error.timeout, Duration.millis(300)))
            assert.strictEqual(chunks.length, 4)
            assert.strictEqual(chunksDelivered(error), chunks.length)
            assert.isTrue(elapsed >= 290 && elapsed < 2_000, `failed after ${elapsed} ms`)
            assert.strictEqual((yield* chatLog).length, 1, "requests the simulator received")
            const closed = yield* eventually(Effect.map(chatLog, (log) => log[0]?.closedEarly === true))
            assert.isTrue(closed, "the stalled request's connection was closed")
          }),
          {},
          { idleTimeout: "300 millis" }
        ))
    }
  })

  describe("backpressure", () => {
    /** One label per chunk, in the order the simulator sends them. */
    const label = (chunk: ChatCompletionChunk.ChatCompletionChunk): string => {
      const choice = chunk.choices[0]
      if (choice === undefined) return chunk.usage === undefined ? "empty" : "usage"
      if (choice.finish_reason !== null) return `${choice.index} finish ${choice.finish_reason}`
      if (choice.delta.role !== undefined) return `${choice.index} role`
      return `${choice.index} ${choice.delta.content}`
    }

    /** The labels of an answer's chunks: each choice's role and tokens, then each finish, then usage. */
    const expectedLabels = (completion: ChatCompletion.ChatCompletion): ReadonlyArray<string> => [
      ...completion.choices.flatMap((choice) => [
        `${choice.index} role`,
        ...(choice.message.content?.match(/\s?\S+/g) ?? []).map((token) => `${choice.index} ${token}`)
      ]),
      ...completion.choices.map((choice) => `${choice.index} finish ${choice.finish_reason}`),
      "usage"
    ]

    const long: ReadonlyArray<
      readonly [string, Partial<ChatCompletion.ChatCompletionRequestInput>, InferenceSimulator.Options]
    > = [
      ["one answer of 600 tokens (603 chunks)", {}, { answerTokens: [600, 600] }],
      // Under seed 42, 20 choices of "Hello" at the default 8-40 tokens are 547 tokens, 588 chunks.
      ["20 choices one after another (588 chunks)", { n: 20 }, {}]
    ]
    for (const [name, overrides, simulatorOptions] of long) {
      it.live(`${name}, read by a slow consumer: every chunk once, in order; the fold is the answer`, () =>
        withSimulator(
          Effect.gen(function*() {
            const request = chatRequest(overrides)
            const { chunks, error } = yield* runStream(
              streamChat(request).pipe(Stream.tap(() => Effect.sleep("1 millis")))
            )
            const whole = yield* chat(request)
            assert.isUndefined(error)
            assert.isAtLeast(chunks.length, 500, "chunks received")
            assert.deepStrictEqual(chunks.map(label), expectedLabels(whole))
            assert.deepStrictEqual(summary(ChatCompletionChunk.toCompletion(chunks)), summary(whole))
          }),
          simulatorOptions,
          { idleTimeout: "1 second" }
        ))
    }

    it.live("a consumer that pauses longer than idleTimeout does not trip it (the server did not stall)", () =>
      withSimulator(
        Effect.gen(function*() {
          const plain = chatRequest()
          const { chunks, error } = yield* runStream(
            streamChat(plain).pipe(
              Stream.zipWithIndex,
              Stream.tap(([, i]) => i < 3 ? Effect.sleep("150 millis") : Effect.void),
              Stream.map(([chunk]) => chunk)
            )
          )
          const whole = yield* chat(plain)
          assert.isUndefined(error, `the stream failed: ${error?.message}`)
          assert.deepStrictEqual(summary(ChatCompletionChunk.toCompletion(chunks)), summary(whole))
        }),
        {},
        { idleTimeout: "100 millis" }
      ))
  })

  describe("resources", () => {
    it.live("Stream.take(2) ends the stream early: the request is aborted and its socket closed", () =>
      withSimulatorOnly(
        Effect.gen(function*() {
          const simulator = yield* InferenceSimulator.InferenceSimulator
          const result = yield* withClient()(
            Effect.gen(function*() {
              const taken = yield* Stream.runCollect(Stream.take(streamChat(chatRequest()), 2))
              const tookAt = Date.now()
              // Still inside the client's scope: the close comes from the stream's end, not from the pool closing.
              const closed = yield* eventually(Effect.map(simulator.log, (log) => log[0]?.endedAt !== undefined))
              assert.isTrue(closed, "the request's connection was never closed")
              return { taken, tookAt, log: yield* simulator.log }
            })
          )
          assert.strictEqual(result.taken.length, 2)
          assert.strictEqual(result.log.length, 1, "requests the simulator received")
          const entry = result.log[0]!
          assert.strictEqual(entry.outcome, "aborted")
          assert.isTrue(entry.closedEarly)
          assert.isTrue(entry.endedAt! - result.tookAt < 300, `closed ${entry.endedAt! - result.tookAt} ms after take`)
          // At 50 ms a token the answer needs at least 8 × 50 ms: it was cut long before its end.
          assert.isTrue(entry.endedAt! - entry.at < 350, `closed ${entry.endedAt! - entry.at} ms after arrival`)
          assert.isTrue(yield* noOpenConnections(), "connections left open after the client closed")
        }),
        { perToken: "50 millis" }
      ))

    it.live("maxConcurrency 2 holds for 6 concurrent streams: never more than 2 in flight at the simulator", () =>
      withSimulatorOnly(
        Effect.gen(function*() {
          const simulator = yield* InferenceSimulator.InferenceSimulator
          let peakSampled = 0
          const results = yield* withClient({ maxConcurrency: 2, retry: false })(
            Effect.raceFirst(
              Effect.forEach(
                Array.from({ length: 6 }, (_, i) => i),
                (i) => Effect.either(ChatCompletionChunk.collect(streamChat(chatRequest({}, `question ${i}`)))),
                { concurrency: "unbounded" }
              ),
              Effect.forever(
                Effect.zipRight(
                  Effect.map(simulator.inFlight, (n) => {
                    peakSampled = Math.max(peakSampled, n)
                  }),
                  Effect.sleep("5 millis")
                )
              )
            )
          )
          const log = yield* chatLog
          assert.strictEqual(results.filter(Either.isLeft).length, 0, "failed streams")
          assert.strictEqual(log.length, 6)
          assert.isTrue(log.every((entry) => entry.stream && entry.outcome === "ok"), "every stream answered")
          // The client kept both slots busy: the test did press against the limit.
          assert.strictEqual(InferenceSimulator.peakInFlight(log), 2, "streams answered at once, from the log")
          assert.isAtMost(peakSampled, 2, "streams answered at once, sampled")
        }),
        // The simulator refuses a third concurrent request with 429, which retry: false would surface.
        { perToken: "10 millis", concurrencyLimit: 2 }
      ))
  })
})
