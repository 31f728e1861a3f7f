import { assert, describe, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Stream from "effect/Stream"
import * as TestClock from "effect/TestClock"
import * as ChatCompletionChunk from "../src/ChatCompletionChunk.js"
import type * as InferenceClient from "../src/InferenceClient.js"
import type * as InferenceError from "../src/InferenceError.js"
import * as Capture from "./utils/Capture.js"
import { hello, withClient } from "./utils/Client.js"
import * as Fake from "./utils/FakeTransport.js"

const stream = (fake: Fake.Fake, options: Partial<InferenceClient.Options> = {}) =>
  withClient(fake, (client) => Stream.runCollect(client.streamChatCompletion(hello)), options)

const contentOf = (chunks: Chunk.Chunk<ChatCompletionChunk.ChatCompletionChunk>): string =>
  ChatCompletionChunk.toCompletion(chunks).choices[0]?.message.content ?? ""

const words = Array.from({ length: 1024 }, (_, i) => ` w${i}`)

/** Collects a stream's chunks and its end: the failure, if it failed. */
const collectEither = <A, E>(s: Stream.Stream<A, E>) =>
  Effect.gen(function*() {
    const seen: Array<A> = []
    const exit = yield* Stream.runForEach(s, (a) => Effect.sync(() => seen.push(a))).pipe(Effect.either)
    return { seen, failure: Either.isLeft(exit) ? exit.left : undefined }
  })

describe("streamChatCompletion", () => {
  describe("SSE parsing", () => {
    it.effect("1,024 events in a single read are each parsed exactly once", () =>
      Effect.gen(function*() {
        const fake = Fake.make([Fake.body(Fake.reads(Fake.sseAnswer(words)))])
        const chunks = yield* stream(fake)
        // role chunk + 1,024 words + finish chunk + usage chunk
        assert.strictEqual(Chunk.size(chunks), 1024 + 3)
        assert.strictEqual(contentOf(chunks), words.join(""))
      }))

    it.effect(
      "events split across reads at every byte boundary are each parsed exactly once",
      () =>
        Effect.gen(function*() {
          // multibyte text and CRLF line ends, so splits land inside characters and between \r and \n
          const text = Fake.sseAnswer([" héllo", " wörld", " 🚀"]).replace(/\n/g, "\r\n")
          const bytes = new TextEncoder().encode(text)
          // one client for every cut: request n gets the body cut at byte n
          const fake = Fake.make((cut) => Fake.body(Stream.make(bytes.slice(0, cut), bytes.slice(cut))))
          yield* withClient(
            fake,
            (client) =>
              Effect.forEach(
                Array.from({ length: bytes.length - 1 }, (_, i) => i + 1),
                (cut) =>
                  Effect.map(Stream.runCollect(client.streamChatCompletion(hello)), (chunks) => {
                    assert.strictEqual(contentOf(chunks), " héllo wörld 🚀", `cut at byte ${cut}`)
                    assert.strictEqual(Chunk.size(chunks), 6, `cut at byte ${cut}`)
                  })
              )
          )
          assert.strictEqual(fake.requests.length, bytes.length - 1)
          const oneByteReads = Stream.fromIterable(Array.from(bytes, (b) => Uint8Array.of(b)))
          assert.strictEqual(contentOf(yield* stream(Fake.make([Fake.body(oneByteReads)]))), " héllo wörld 🚀")
        }),
      30_000
    )

    it.effect("the request asks for a stream with usage, and the usage arrives in the last chunk", () =>
      Effect.gen(function*() {
        const fake = Fake.make([Fake.body(Fake.reads(Fake.sseAnswer([" a", " b"])))])
        const chunks = yield* stream(fake)
        assert.deepInclude(fake.requests[0].body as object, { stream: true, stream_options: { include_usage: true } })
        assert.strictEqual(ChatCompletionChunk.toCompletion(chunks).usage?.total_tokens, 5)
      }))

    it.effect("a body that ends after a finish_reason but without [DONE] is complete", () =>
      Effect.gen(function*() {
        const body = Fake.sseAnswer([" a", " b"]).replace("data: [DONE]\n\n", "")
        const chunks = yield* stream(Fake.make([Fake.body(Fake.reads(body))]))
        assert.strictEqual(contentOf(chunks), " a b")
      }))
  })

  describe("failures before the first content", () => {
    it.effect("a 503 is retried and the stream restarts cleanly", () =>
      Effect.gen(function*() {
        const fake = Fake.make([
          Fake.json(503, Fake.errorBody("The engine is currently overloaded, please try again later")),
          Fake.body(Fake.reads(Fake.sseAnswer([" once"])))
        ])
        const exit = yield* Fake.runWithClock(stream(fake))
        assert.isTrue(Exit.isSuccess(exit))
        if (Exit.isSuccess(exit)) assert.strictEqual(contentOf(exit.value), " once")
        assert.strictEqual(fake.requests.length, 2)
      }))

    it.effect("an error frame before content is classified and retried; the opening chunk is not seen twice", () =>
      Effect.gen(function*() {
        const opening = Fake.sseEvent(Fake.chunkBody({ role: "assistant", content: "" }))
        const frame = Fake.sseEvent({
          error: { message: "Concurrency limit reached for requests", type: "rate_limit_error" }
        }, "error")
        const fake = Fake.make([
          Fake.body(Fake.reads(opening, frame)),
          Fake.body(Fake.reads(Fake.sseAnswer([" ok"])))
        ])
        const exit = yield* Fake.runWithClock(stream(fake))
        assert.isTrue(Exit.isSuccess(exit))
        if (Exit.isSuccess(exit)) {
          const roles = Chunk.filter(exit.value, (c) => c.choices[0]?.delta.role === "assistant")
          assert.strictEqual(Chunk.size(roles), 1)
        }
        assert.strictEqual(fake.requests.length, 2)
      }))

    it.effect("a 401 fails at once with AuthenticationError", () =>
      Effect.gen(function*() {
        const fake = Fake.make([Fake.json(401, Fake.errorBody("Authentication failed"))])
        const error = yield* Effect.flip(stream(fake))
        assert.strictEqual(error._tag, "AuthenticationError")
        assert.strictEqual(fake.requests.length, 1)
      }))

    it.effect("no content within firstChunkTimeout is TimeoutError (firstChunk), retried", () =>
      Effect.gen(function*() {
        const silent = Fake.body(Stream.concat(Fake.reads(": keep-alive\n\n"), Stream.never))
        const fake = Fake.make([silent])
        const fiber = yield* Effect.fork(stream(fake, { firstChunkTimeout: "10 seconds" }))
        yield* TestClock.adjust("9 seconds")
        assert.strictEqual(fake.requests.length, 1, "still waiting")
        yield* TestClock.adjust("1 hour")
        const error = yield* Effect.flip(Fiber.join(fiber))
        assert.strictEqual(error._tag, "TimeoutError")
        if (error._tag === "TimeoutError") assert.strictEqual(error.phase, "firstChunk")
        assert.strictEqual(fake.requests.length, 4)
        assert.isTrue(fake.requests.every((r) => r.signal.aborted))
      }))
  })

  describe("failures after content", () => {
    const started = Fake.sseEvent(Fake.chunkBody({ role: "assistant", content: "" })) +
      [" one", " two", " three"].map((w) => Fake.sseEvent(Fake.chunkBody({ content: w }))).join("")

    const frames: ReadonlyArray<readonly [string, unknown, InferenceError.InferenceError["_tag"]]> = [
      ["type rate_limit_error", { error: { message: "Slow down", type: "rate_limit_error" } }, "RateLimitError"],
      ["W&B's concurrency message", { error: { message: "Concurrency limit reached for requests" } }, "RateLimitError"],
      ["code 503", { error: { message: "busy", code: 503 } }, "ServiceUnavailableError"],
      ["insufficient_quota", { error: { message: "no credits", code: "insufficient_quota" } }, "QuotaExceededError"],
      ["an unknown error", { error: { message: "boom" } }, "InternalServerError"]
    ]
    for (const [name, frame, tag] of frames) {
      it.effect(`an error frame (${name}) ends the stream with ${tag}, chunksDelivered set, not retried`, () =>
        Effect.gen(function*() {
          const fake = Fake.make([Fake.body(Fake.reads(started, Fake.sseEvent(frame, "error")))])
          const { failure, seen } = yield* Fake.runWithClock(
            withClient(fake, (client) => collectEither(client.streamChatCompletion(hello)))
          ).pipe(Effect.flatten)
          assert.strictEqual(failure?._tag, tag)
          assert.strictEqual(
            failure !== undefined && "chunksDelivered" in failure ? failure.chunksDelivered : -1,
            seen.length
          )
          assert.strictEqual(seen.length, 4)
          assert.strictEqual(fake.requests.length, 1)
        }))
    }

    it.effect("an error in the same read as the first content comes after that content: delivered, then failed", () =>
      Effect.gen(function*() {
        const frame = Fake.sseEvent({ error: { message: "Concurrency limit reached for requests" } }, "error")
        const fake = Fake.make([Fake.body(Fake.reads(started + frame))])
        const { failure, seen } = yield* withClient(fake, (client) => collectEither(client.streamChatCompletion(hello)))
        assert.strictEqual(seen.length, 4)
        assert.strictEqual(failure?._tag, "RateLimitError")
        assert.strictEqual(failure !== undefined && "chunksDelivered" in failure ? failure.chunksDelivered : -1, 4)
        assert.strictEqual(fake.requests.length, 1, "not retried")
      }))

    it.effect("a body cut before [DONE] without a finish_reason is ResponseDecodeError (truncated)", () =>
      Effect.gen(function*() {
        const fake = Fake.make([Fake.body(Fake.reads(started))])
        const { failure, seen } = yield* withClient(fake, (client) => collectEither(client.streamChatCompletion(hello)))
        assert.strictEqual(failure?._tag, "ResponseDecodeError")
        assert.include(failure?.message ?? "", "truncated")
        assert.strictEqual(seen.length, 4)
        assert.strictEqual(fake.requests.length, 1)
      }))

    it.effect("an SSE line over 8 MiB is ResponseDecodeError, after the chunks that came before it", () =>
      Effect.gen(function*() {
        const fake = Fake.make([Fake.body(Fake.reads(started, `data: ${"x".repeat(9 * 1024 * 1024)}`))])
        const { failure, seen } = yield* withClient(fake, (client) => collectEither(client.streamChatCompletion(hello)))
        assert.strictEqual(failure?._tag, "ResponseDecodeError")
        assert.include(failure?.message ?? "", "exceeded")
        assert.strictEqual(seen.length, 4)
        assert.strictEqual(fake.requests.length, 1, "not retried")
      }))

    it.effect("a stall after content is TimeoutError (idle) even with keep-alive comments flowing", () =>
      Effect.gen(function*() {
        const keepAlive = Stream.repeatEffect(
          Effect.as(Effect.sleep("1 second"), new TextEncoder().encode(": ping\n\n"))
        )
        const fake = Fake.make([Fake.body(Stream.concat(Fake.reads(started), keepAlive))])
        const fiber = yield* Effect.fork(
          withClient(fake, (client) => collectEither(client.streamChatCompletion(hello)), { idleTimeout: "5 seconds" })
        )
        yield* TestClock.adjust("4 seconds")
        assert.isNull(fiber.unsafePoll(), "not yet")
        yield* TestClock.adjust("2 seconds")
        const { failure, seen } = yield* Fiber.join(fiber)
        assert.strictEqual(failure?._tag, "TimeoutError")
        if (failure?._tag === "TimeoutError") {
          assert.strictEqual(failure.phase, "idle")
          assert.strictEqual(failure.chunksDelivered, 4)
        }
        assert.strictEqual(seen.length, 4)
      }))
  })

  describe("idle timeout and a slow consumer", () => {
    it.effect("a consumer slower than idleTimeout is not a stall: every chunk arrives", () =>
      Effect.gen(function*() {
        const fake = Fake.make([Fake.body(Fake.reads(...Fake.sseAnswer(["a", "b", "c", "d"]).split(/(?<=\n\n)/)))])
        const fiber = yield* Effect.fork(
          withClient(
            fake,
            (client) =>
              collectEither(
                client.streamChatCompletion(hello).pipe(Stream.tap(() => Effect.sleep("10 seconds")))
              ),
            { idleTimeout: "5 seconds" }
          )
        )
        yield* TestClock.adjust("2 minutes")
        const { failure, seen } = yield* Fiber.join(fiber)
        assert.isUndefined(failure)
        assert.strictEqual(seen.length, 7)
      }))

    it.effect("the stall is measured from when the next read began, not from the last chunk taken", () =>
      Effect.gen(function*() {
        const slow = Stream.concat(
          Fake.reads(Fake.sseEvent(Fake.chunkBody({ role: "assistant", content: "Hi" }))),
          Stream.fromEffect(Effect.as(Effect.sleep("4 seconds"), new TextEncoder().encode(Fake.sseAnswer(["x"]))))
        )
        const fake = Fake.make([Fake.body(slow)])
        const fiber = yield* Effect.fork(
          withClient(fake, (client) => collectEither(client.streamChatCompletion(hello)), { idleTimeout: "5 seconds" })
        )
        yield* TestClock.adjust("10 seconds")
        const { failure } = yield* Fiber.join(fiber)
        // 4 seconds between reads is within the 5 second bound
        assert.isUndefined(failure)
      }))
  })

  describe("edge cases", () => {
    it.effect("with n = 2, a body that ends with one choice unfinished is truncated, not complete", () =>
      Effect.gen(function*() {
        const choice = (index: number, delta: Record<string, unknown>, finish: string | null = null) =>
          Fake.sseEvent({ ...Fake.chunkBody(delta, finish), choices: [{ index, delta, finish_reason: finish }] })
        const body = choice(0, { role: "assistant", content: "" }) + choice(1, { role: "assistant", content: "" }) +
          choice(0, { content: "Hello" }) + choice(1, { content: "Hal" }) + choice(0, {}, "stop")
        const fake = Fake.make([Fake.body(Fake.reads(body))])
        const { failure } = yield* withClient(
          fake,
          (client) => collectEither(client.streamChatCompletion({ ...hello, n: 2 }))
        )
        assert.strictEqual(failure?._tag, "ResponseDecodeError")
        assert.include(failure?.message ?? "", "truncated")
      }))

    it.effect("with n = 2, a stream that only ever sends choice 0 (finished) and [DONE] is truncated", () =>
      Effect.gen(function*() {
        const body = Fake.sseEvent(Fake.chunkBody({ role: "assistant", content: "" })) +
          Fake.sseEvent(Fake.chunkBody({ content: "only one" })) +
          Fake.sseEvent(Fake.chunkBody({}, "stop")) +
          "data: [DONE]\n\n"
        const fake = Fake.make([Fake.body(Fake.reads(body))])
        const { failure } = yield* withClient(
          fake,
          (client) => collectEither(client.streamChatCompletion({ ...hello, n: 2 }))
        )
        assert.strictEqual(failure?._tag, "ResponseDecodeError")
        assert.include(failure?.message ?? "", "truncated")
        const whole = yield* withClient(
          Fake.make([Fake.body(Fake.reads(body))]),
          (client) => collectEither(client.streamChatCompletion(hello))
        )
        assert.isUndefined(whole.failure, "with n = 1 the same stream is complete")
      }))

    it.effect("a stream that ends before any content is a ConnectionError, retried", () =>
      Effect.gen(function*() {
        const fake = Fake.make([
          Fake.body(Fake.reads(Fake.sseEvent(Fake.chunkBody({ role: "assistant", content: "" })))),
          Fake.body(Fake.reads("data: [DONE]\n\n")),
          Fake.body(Fake.reads(Fake.sseAnswer([" ok"])))
        ])
        const exit = yield* Fake.runWithClock(stream(fake))
        assert.isTrue(Exit.isSuccess(exit))
        if (Exit.isSuccess(exit)) assert.strictEqual(contentOf(exit.value), " ok")
        assert.strictEqual(fake.requests.length, 3)
      }))

    it.effect("a stream waiting for a concurrency slot can be interrupted (a timeout around it fires on time)", () =>
      Effect.gen(function*() {
        const fake = Fake.make([
          Fake.body(Stream.concat(Fake.reads(Fake.sseEvent(Fake.chunkBody({ content: "holding" }))), Stream.never))
        ])
        const outcome = yield* withClient(fake, (client) =>
          Effect.gen(function*() {
            const holder = yield* Effect.fork(Stream.runDrain(client.streamChatCompletion(hello)))
            yield* TestClock.adjust("1 second")
            const waiting = yield* Effect.fork(
              Stream.runDrain(client.streamChatCompletion(hello)).pipe(Effect.timeout("2 seconds"), Effect.either)
            )
            yield* TestClock.adjust("2 seconds")
            const result = yield* Fiber.join(waiting)
            yield* Fiber.interrupt(holder)
            return result
          }), { maxConcurrency: 1, idleTimeout: "1 hour" })
        assert.isTrue(Either.isLeft(outcome))
        if (Either.isLeft(outcome)) assert.strictEqual(outcome.left._tag, "TimeoutException")
        assert.strictEqual(fake.requests.length, 1, "the second stream never got a slot")
      }))
  })

  describe("tracing", () => {
    it.effect("a stream runs in a span with the model, attempts and outcome", () =>
      Effect.gen(function*() {
        const capture = Capture.make()
        const fake = Fake.make([
          Fake.json(503, Fake.errorBody("busy")),
          Fake.body(Fake.reads(Fake.sseAnswer([" a"])))
        ])
        yield* Fake.runWithClock(Capture.withCapture(capture, stream(fake)))
        const span = capture.spans.find((s) => s.name === "InferenceClient.streamChatCompletion")
        assert.strictEqual(span?.attributes.get("inference.model"), hello.model)
        assert.strictEqual(span?.attributes.get("inference.attempts"), 2)
        assert.strictEqual(span?.attributes.get("inference.outcome"), "success")
        assert.isTrue(span?.ended)
      }))
  })

  describe("consumers", () => {
    it.effect("interrupting the consumer (Stream.take) aborts the request", () =>
      Effect.gen(function*() {
        const endless = Stream.concat(
          Fake.reads(Fake.sseEvent(Fake.chunkBody({ role: "assistant", content: "" }))),
          Stream.repeatEffect(
            Effect.as(
              Effect.sleep("10 millis"),
              new TextEncoder().encode(Fake.sseEvent(Fake.chunkBody({ content: " more" })))
            )
          )
        )
        const fake = Fake.make([Fake.body(endless)])
        const fiber = yield* Effect.fork(
          withClient(fake, (client) => Stream.runCollect(Stream.take(client.streamChatCompletion(hello), 3)))
        )
        yield* TestClock.adjust("1 second")
        const chunks = yield* Fiber.join(fiber)
        assert.strictEqual(Chunk.size(chunks), 3)
        assert.isTrue(fake.requests[0].signal.aborted)
      }))

    it.effect("an invalid request fails the stream with InvalidRequestError and sends nothing", () =>
      Effect.gen(function*() {
        const fake = Fake.make([Fake.body(Fake.reads(Fake.sseAnswer([" a"])))])
        const error = yield* Effect.flip(
          withClient(fake, (client) => Stream.runCollect(client.streamChatCompletion({ ...hello, temperature: 9 })))
        )
        assert.strictEqual(error._tag, "InvalidRequestError")
        assert.strictEqual(fake.requests.length, 0)
      }))
  })

  describe("answers of other servers", () => {
    it.effect("a stream request asks for text/event-stream; a plain call asks for JSON", () =>
      Effect.gen(function*() {
        const fake = Fake.make((n) => n === 1 ? Fake.body(Fake.reads(Fake.sseAnswer([" a"]))) : Fake.completion())
        yield* withClient(fake, (client) =>
          Effect.zipRight(Stream.runDrain(client.streamChatCompletion(hello)), client.chatCompletion(hello)))
        assert.deepStrictEqual(
          fake.requests.map((r) =>
            r.headers["accept"]
          ),
          ["text/event-stream", "application/json"]
        )
      }))

    it.effect("a JSON completion answering a stream request is delivered as a stream, with one request", () =>
      Effect.gen(function*() {
        const fake = Fake.make([Fake.completion("Hello from JSON")])
        const chunks = yield* stream(fake)
        assert.strictEqual(contentOf(chunks), "Hello from JSON")
        assert.strictEqual(ChatCompletionChunk.toCompletion(chunks).usage?.total_tokens, 7)
        assert.strictEqual(fake.requests.length, 1)
      }))

    it.effect("a JSON answer without usage asked for has no usage chunk", () =>
      Effect.gen(function*() {
        const fake = Fake.make([Fake.completion("Hi")])
        const chunks = yield* withClient(fake, (client) =>
          Stream.runCollect(client.streamChatCompletion({ ...hello, stream_options: { include_usage: false } })))
        assert.isTrue(Chunk.every(chunks, (c) =>
          c.usage === undefined))
        assert.strictEqual(contentOf(chunks), "Hi")
      }))

    it.effect("a non-SSE answer that is not a completion is ResponseDecodeError: not retried, not counted by the breaker", () =>
      Effect.gen(function*() {
        const fake = Fake.make(() => Fake.json(200, { hello: "world" }))
        const errors = yield* withClient(
          fake,
          (client) => Effect.forEach([1, 2], () => Effect.flip(Stream.runCollect(client.streamChatCompletion(hello)))),
          { circuitBreaker: { consecutiveFailures: 1, failureRate: false } }
        )
        assert.deepStrictEqual(errors.map((e) => e._tag), ["ResponseDecodeError", "ResponseDecodeError"])
        assert.include(errors[0].message, "not text/event-stream")
        // one request per call: no retry, and the second call found the breaker closed
        assert.strictEqual(fake.requests.length, 2)
      }))

    it.effect("an SSE body sent as text/plain is not read as events", () =>
      Effect.gen(function*() {
        const fake = Fake.make(() => Fake.text(200, Fake.sseAnswer([" a"])))
        const error = yield* Effect.flip(stream(fake))
        assert.strictEqual(error._tag, "ResponseDecodeError")
        assert.strictEqual(fake.requests.length, 1)
      }))

    const started = Fake.sseEvent(Fake.chunkBody({ role: "assistant", content: "" })) +
      Fake.sseEvent(Fake.chunkBody({ content: " one" }))
    const frames: ReadonlyArray<readonly [string, unknown, InferenceError.InferenceError["_tag"]]> = [
      ["vLLM's data-only frame, code 400", {
        error: { message: "bad", type: "BadRequestError", code: 400 }
      }, "BadRequestError"],
      ["vLLM's data-only frame, code 503", {
        error: { message: "The engine is currently overloaded, please try again later", code: 503 }
      }, "ServiceUnavailableError"],
      ["older vLLM's top-level error object", {
        object: "error",
        message: "too long",
        type: "BadRequestError",
        param: null,
        code: 400
      }, "BadRequestError"]
    ]
    for (const [name, frame, tag] of frames) {
      it.effect(`${name} after content ends the stream with ${tag}, not a decode error`, () =>
        Effect.gen(function*() {
          const fake = Fake.make([Fake.body(Fake.reads(started, Fake.sseEvent(frame), "data: [DONE]\n\n"))])
          const { failure, seen } = yield* withClient(
            fake,
            (client) => collectEither(client.streamChatCompletion(hello))
          )
          assert.strictEqual(failure?._tag, tag)
          assert.strictEqual(seen.length, 2)
          assert.strictEqual(fake.requests.length, 1)
        }))
    }

    it.effect("a data-only 400 frame before any content fails at once, not retried", () =>
      Effect.gen(function*() {
        const frame = Fake.sseEvent({
          error: { message: "max_tokens is too large", type: "BadRequestError", code: 400 }
        })
        const fake = Fake.make(() => Fake.body(Fake.reads(frame, "data: [DONE]\n\n")))
        const error = yield* Effect.flip(Fake.runWithClock(stream(fake)).pipe(Effect.flatten))
        assert.strictEqual(error._tag, "BadRequestError")
        if (error._tag === "BadRequestError") assert.strictEqual(error.serverMessage, "max_tokens is too large")
        assert.strictEqual(fake.requests.length, 1)
      }))
  })

  describe("reasoning", () => {
    const opening = Fake.sseEvent(Fake.chunkBody({ role: "assistant", content: "" }))
    const thinking = (text: string) => Fake.sseEvent(Fake.chunkBody({ reasoning: text }))
    const after = (delay: Duration.DurationInput, ...texts: ReadonlyArray<string>) =>
      Stream.concat(Stream.drain(Stream.fromEffect(Effect.sleep(delay))), Fake.reads(...texts))

    it.effect("reasoning deltas are output: they satisfy firstChunkTimeout, and the answer follows", () =>
      Effect.gen(function*() {
        // thinking starts at once; the first content token comes 50 s later, past the 10 s firstChunkTimeout
        const body = Stream.concat(
          Fake.reads(opening, thinking("Let me think.")),
          after(
            "50 seconds",
            thinking(" Done."),
            Fake.sseEvent(Fake.chunkBody({ content: "42" })),
            Fake.sseEvent(Fake.chunkBody({}, "stop")),
            "data: [DONE]\n\n"
          )
        )
        const fake = Fake.make([Fake.body(body)])
        const exit = yield* Fake.runWithClock(
          stream(fake, { firstChunkTimeout: "10 seconds", idleTimeout: "2 minutes" })
        )
        assert.isTrue(Exit.isSuccess(exit), String(exit))
        if (Exit.isSuccess(exit)) {
          const message = ChatCompletionChunk.toCompletion(exit.value).choices[0]?.message
          assert.strictEqual(message?.reasoning, "Let me think. Done.")
          assert.strictEqual(message?.content, "42")
        }
        assert.strictEqual(fake.requests.length, 1)
      }))

    it.effect("a stream that has shown thinking is never restarted: a failure after it ends the stream", () =>
      Effect.gen(function*() {
        const fake = Fake.make(() => Fake.body(Fake.reads(opening, thinking("Hmm"))))
        const { failure, seen } = yield* Fake.runWithClock(
          withClient(fake, (client) => collectEither(client.streamChatCompletion(hello)))
        ).pipe(Effect.flatten)
        assert.strictEqual(failure?._tag, "ResponseDecodeError")
        assert.strictEqual(failure !== undefined && "chunksDelivered" in failure ? failure.chunksDelivered : -1, 2)
        assert.strictEqual(seen.length, 2)
        assert.strictEqual(fake.requests.length, 1)
      }))

    it.effect("thinking resets idleTimeout: a long think in short steps is not a stall", () =>
      Effect.gen(function*() {
        const steps = Array.from({ length: 6 }, (_, i) => after("8 seconds", thinking(` step ${i}`)))
        const body = Stream.concat(
          Stream.concat(
            Fake.reads(opening, Fake.sseEvent(Fake.chunkBody({ content: "A" }))),
            Stream.concatAll(Chunk.unsafeFromArray(steps))
          ),
          Fake.reads(Fake.sseEvent(Fake.chunkBody({}, "stop")), "data: [DONE]\n\n")
        )
        const fake = Fake.make([Fake.body(body)])
        const exit = yield* Fake.runWithClock(stream(fake, { idleTimeout: "10 seconds" }))
        assert.isTrue(Exit.isSuccess(exit), String(exit))
        if (Exit.isSuccess(exit)) {
          assert.include(ChatCompletionChunk.toCompletion(exit.value).choices[0]?.message.reasoning ?? "", " step 5")
        }
      }))
  })
})
