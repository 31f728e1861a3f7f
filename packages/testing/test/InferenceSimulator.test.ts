/**
 * The simulator on its own, driven with plain `fetch` as any OpenAI-compatible
 * client would drive W&B Inference: its endpoints, bodies, streams, faults and log.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fault from "../src/Fault.js"
import * as InferenceSimulator from "../src/InferenceSimulator.js"

import {
  chat,
  chunks,
  completion,
  content,
  contentChunks,
  errorMessage,
  events,
  MODEL,
  request,
  withSimulator
} from "./utils/Simulator.js"

describe("InferenceSimulator", () => {
  describe("GET /v1/models", () => {
    it.live("lists the default catalogue", () =>
      withSimulator((simulator) =>
        Effect.gen(function*() {
          const reply = yield* request(simulator, "/models")
          assert.strictEqual(reply.status, 200)
          assert.deepStrictEqual(JSON.parse(reply.text), {
            object: "list",
            data: InferenceSimulator.DEFAULT_MODELS.map((m) => ({
              id: m.id,
              object: "model",
              created: m.created,
              owned_by: m.owned_by
            }))
          })
          assert.isAbove(InferenceSimulator.DEFAULT_MODELS.length, 0)
        })
      ))

    it.live("lists a custom catalogue, and only its models answer", () =>
      withSimulator(
        (simulator) =>
          Effect.gen(function*() {
            const reply = yield* request(simulator, "/models")
            assert.deepStrictEqual(JSON.parse(reply.text), {
              object: "list",
              data: [
                { id: "acme/tiny", object: "model", created: 1_700_000_000, owned_by: "acme" },
                { id: "acme/big", object: "model", created: 1, owned_by: "Acme Inc." }
              ]
            })
            assert.strictEqual((yield* chat(simulator, { model: "acme/tiny" })).status, 200)
            assert.strictEqual((yield* chat(simulator, { model: MODEL })).status, 404)
          }),
        { models: ["acme/tiny", { id: "acme/big", created: 1, owned_by: "Acme Inc." }] }
      ))
  })

  describe("POST /v1/chat/completions", () => {
    it.live("answers with an OpenAI chat.completion whose usage adds up", () =>
      withSimulator((simulator) =>
        Effect.gen(function*() {
          const before = Math.floor(Date.now() / 1000)
          const body = yield* completion(simulator)
          assert.match(body.id, /^chatcmpl-/)
          assert.strictEqual(body.object, "chat.completion")
          assert.isTrue(body.created >= before && body.created <= Math.ceil(Date.now() / 1000))
          assert.strictEqual(body.model, MODEL)
          assert.strictEqual(body.choices.length, 1)
          const [choice] = body.choices
          assert.strictEqual(choice!.index, 0)
          assert.strictEqual(choice!.message.role, "assistant")
          assert.isAbove(choice!.message.content.length, 0)
          assert.oneOf(choice!.finish_reason, ["stop", "length"])
          // One token per word of the answer; the prompt is 3 per message + role + content + 3 for the reply.
          assert.strictEqual(body.usage.completion_tokens, choice!.message.content.split(" ").length)
          assert.strictEqual(body.usage.prompt_tokens, 3 + 3 + 1 + 1)
          assert.strictEqual(body.usage.prompt_tokens + body.usage.completion_tokens, body.usage.total_tokens)
        })
      ))

    it.live("the same request and seed give the same answer; another seed, another one", () =>
      Effect.gen(function*() {
        const answer = (seed: number, body: Record<string, unknown> = {}) =>
          withSimulator(
            (simulator) => Effect.map(completion(simulator, body), (c) => c.choices[0]!.message.content),
            { seed }
          )
        const first = yield* answer(1)
        assert.strictEqual(yield* answer(1), first, "same simulator seed")
        assert.notStrictEqual(yield* answer(2), first, "another simulator seed")
        assert.strictEqual(yield* answer(1, { seed: 5 }), yield* answer(1, { seed: 5 }), "same request seed")
        assert.notStrictEqual(yield* answer(1, { seed: 5 }), yield* answer(1, { seed: 6 }), "another request seed")
      }))

    it.live("max_tokens: 3 → 3 completion tokens and finish_reason \"length\"", () =>
      withSimulator((simulator) =>
        Effect.gen(function*() {
          const body = yield* completion(simulator, { max_tokens: 3 })
          assert.strictEqual(body.usage.completion_tokens, 3)
          assert.strictEqual(body.choices[0]!.message.content.split(" ").length, 3)
          assert.strictEqual(body.choices[0]!.finish_reason, "length")
        })
      ))

    it.live("a port already in use fails with ListenError, naming the address", () =>
      withSimulator((first) =>
        Effect.gen(function*() {
          const error = yield* Effect.flip(Effect.scoped(InferenceSimulator.make({ port: first.port })))
          assert.strictEqual(error._tag, "@effect-inference/testing/ListenError")
          assert.strictEqual(error.port, first.port)
          assert.include(error.message, `127.0.0.1:${first.port}`)
        })
      ))

    it.live("answerTokens sets the length of answers: 500 words, finish_reason \"stop\"", () =>
      withSimulator(
        (simulator) =>
          Effect.gen(function*() {
            const body = yield* completion(simulator)
            assert.strictEqual(body.usage.completion_tokens, 500)
            assert.strictEqual(body.choices[0]!.message.content.split(" ").length, 500)
            assert.strictEqual(body.choices[0]!.finish_reason, "stop")
          }),
        { answerTokens: [500, 500] }
      ))

    it.live("an unknown model → 404 \"The requested resource was not found\"", () =>
      withSimulator((simulator) =>
        Effect.gen(function*() {
          const reply = yield* chat(simulator, { model: "acme/no-such-model" })
          assert.strictEqual(reply.status, 404)
          assert.strictEqual(errorMessage(reply), "The requested resource was not found")
          assert.strictEqual((yield* simulator.log)[0]!.outcome, "unknown-model")
        })
      ))

    it.live("a wrong key → 401 \"Authentication failed\", for chat and models alike", () =>
      withSimulator((simulator) =>
        Effect.gen(function*() {
          const replies = [
            yield* chat(simulator, {}, "wrong-key"),
            yield* request(simulator, "/models", { key: "wrong-key" })
          ]
          for (const reply of replies) {
            assert.strictEqual(reply.status, 401)
            assert.strictEqual(errorMessage(reply), "Authentication failed")
          }
          assert.deepStrictEqual((yield* simulator.log).map((e) => e.outcome), ["unauthorized", "unauthorized"])
        })
      ))

    it.live("a body without model or messages → 400; an unknown path → 404", () =>
      withSimulator((simulator) =>
        Effect.gen(function*() {
          const invalid = yield* request(simulator, "/chat/completions", { body: { model: MODEL, messages: [] } })
          const unknown = yield* request(simulator, "/embeddings", { body: { model: MODEL, input: "x" } })
          assert.strictEqual(invalid.status, 400)
          assert.strictEqual(unknown.status, 404)
          assert.deepStrictEqual((yield* simulator.log).map((e) => e.outcome), ["invalid-request", "not-found"])
        })
      ))
  })

  describe("streaming", () => {
    it.live("streams the same answer as chunks, then finish_reason, usage and [DONE]", () =>
      withSimulator((simulator) =>
        Effect.gen(function*() {
          const whole = yield* completion(simulator, { seed: 3 })
          const reply = yield* chat(simulator, { seed: 3, stream: true, stream_options: { include_usage: true } })
          assert.strictEqual(reply.status, 200)
          assert.match(reply.contentType ?? "", /^text\/event-stream/)
          const all = events(reply.text)
          assert.isTrue(all.every((e) => e.event === undefined), "no named events")
          assert.strictEqual(all[all.length - 1]!.data, "[DONE]")
          const parsed = chunks(all)
          assert.strictEqual(all.length, parsed.length + 1, "every event but [DONE] is a JSON chunk")
          assert.isTrue(parsed.every((c) => c.object === "chat.completion.chunk" && c.id === parsed[0]!.id))
          assert.isTrue(parsed.every((c) => c.model === MODEL))
          assert.strictEqual(parsed[0]!.choices[0]!.delta.role, "assistant")
          assert.strictEqual(content(parsed), whole.choices[0]!.message.content)
          // The last two chunks: the finish_reason, then the usage with no choices.
          const [finish, usage] = parsed.slice(-2)
          assert.deepStrictEqual(finish!.choices[0]!.delta, {})
          assert.strictEqual(finish!.choices[0]!.finish_reason, whole.choices[0]!.finish_reason)
          assert.isTrue(
            parsed.slice(0, -2).every((c) => c.choices[0]!.finish_reason === null),
            "finish_reason only at the end"
          )
          assert.deepStrictEqual(usage!.choices, [])
          assert.deepStrictEqual(usage!.usage, whole.usage)
          const log = yield* simulator.log
          assert.deepStrictEqual(log.map((e) => e.stream), [false, true])
        })
      ))

    it.live("without include_usage, no usage chunk: finish_reason comes right before [DONE]", () =>
      withSimulator((simulator) =>
        Effect.gen(function*() {
          const all = events((yield* chat(simulator, { stream: true })).text)
          const parsed = chunks(all)
          assert.strictEqual(all[all.length - 1]!.data, "[DONE]")
          assert.notStrictEqual(parsed[parsed.length - 1]!.choices[0]!.finish_reason, null)
          assert.isTrue(parsed.every((c) => c.choices.length === 1 && c.usage === undefined))
        })
      ))

    it.live("Fault.sseErrorFrame: 2 content chunks, then vLLM's data-only error frame (numeric code) and [DONE]", () =>
      withSimulator((simulator) =>
        Effect.gen(function*() {
          yield* simulator.script(Fault.sseErrorFrame())
          const reply = yield* chat(simulator, { stream: true })
          assert.strictEqual(reply.status, 200)
          const all = events(reply.text)
          assert.isTrue(all.every((e) => e.event === undefined), "no `event:` line")
          assert.deepStrictEqual(all.slice(-2).map((e) => e.data === "[DONE]" ? e.data : JSON.parse(e.data)), [
            {
              error: {
                message: "The server had an error while processing your request",
                type: "server_error",
                param: null,
                code: 500
              }
            },
            "[DONE]"
          ])
          assert.strictEqual(contentChunks(chunks(all.slice(0, -2))), 2)
        })
      ))

    it.live("Fault.sseErrorFrame({ status: 503 }): the frame says what the HTTP 503 says, with code 503", () =>
      withSimulator((simulator) =>
        Effect.gen(function*() {
          yield* simulator.script(Fault.overloaded, Fault.sseErrorFrame({ status: 503, afterChunks: 0 }))
          const http = JSON.parse((yield* chat(simulator)).text) as { error: { message: string; type: string } }
          const all = events((yield* chat(simulator, { stream: true })).text)
          const frame = JSON.parse(all[all.length - 2]!.data) as { error: Record<string, unknown> }
          assert.deepStrictEqual(frame.error, {
            message: "The engine is currently overloaded, please try again later",
            type: http.error.type,
            param: null,
            code: 503
          })
          assert.strictEqual(frame.error.message, http.error.message)
        })
      ))

    it.live("Fault.sseErrorFrame formats: OpenAI's `event: error` without [DONE]; older vLLM's top-level error", () =>
      withSimulator((simulator) =>
        Effect.gen(function*() {
          yield* simulator.script(
            Fault.sseErrorFrame({ format: "openai", code: "server_error" }),
            Fault.sseErrorFrame({ format: "vllm-legacy", status: 400, message: "bad" })
          )
          const openai = events((yield* chat(simulator, { stream: true })).text)
          const last = openai[openai.length - 1]!
          assert.strictEqual(last.event, "error")
          assert.deepStrictEqual(JSON.parse(last.data), {
            error: {
              message: "The server had an error while processing your request",
              type: "server_error",
              param: null,
              code: "server_error"
            }
          })
          assert.isFalse(openai.some((e) => e.data === "[DONE]"))
          const legacy = events((yield* chat(simulator, { stream: true })).text)
          assert.deepStrictEqual(JSON.parse(legacy[legacy.length - 2]!.data), {
            object: "error",
            message: "bad",
            type: "invalid_request_error",
            param: null,
            code: 400
          })
          assert.strictEqual(legacy[legacy.length - 1]!.data, "[DONE]")
        })
      ))

    it.live("Fault.sseCutBeforeDone: the stream ends with no finish_reason and no [DONE]", () =>
      withSimulator((simulator) =>
        Effect.gen(function*() {
          yield* simulator.script(Fault.sseCutBeforeDone())
          const reply = yield* chat(simulator, { stream: true })
          assert.strictEqual(reply.status, 200)
          const all = events(reply.text)
          const parsed = chunks(all)
          assert.strictEqual(all.length, parsed.length, "only JSON chunks")
          assert.strictEqual(contentChunks(parsed), 2)
          assert.isTrue(parsed.every((c) => c.choices[0]!.finish_reason === null))
          const [entry] = yield* simulator.log
          assert.strictEqual(entry!.fault, "SseCutBeforeDone")
          assert.isFalse(entry!.closedEarly, "a clean end, not a reset")
        })
      ))
  })

  describe("faults and log", () => {
    it.live("script: the next three calls get 503, then the calls succeed", () =>
      withSimulator((simulator) =>
        Effect.gen(function*() {
          yield* simulator.script(Fault.overloaded, Fault.overloaded, Fault.overloaded)
          const statuses: Array<number> = []
          for (let i = 0; i < 5; i++) statuses.push((yield* chat(simulator)).status)
          assert.deepStrictEqual(statuses, [503, 503, 503, 200, 200])
          const log = yield* simulator.log
          assert.deepStrictEqual(log.map((e) => e.fault), [
            "Overloaded",
            "Overloaded",
            "Overloaded",
            undefined,
            undefined
          ])
        })
      ))

    it.live("script plays faults in order, \"ok\" letting one call through, and leaves GET /v1/models alone", () =>
      withSimulator((simulator) =>
        Effect.gen(function*() {
          yield* simulator.script(Fault.internalError, "ok", Fault.rateLimited({ seconds: 2 }))
          assert.strictEqual((yield* request(simulator, "/models")).status, 200)
          const first = yield* chat(simulator)
          const second = yield* chat(simulator)
          const third = yield* chat(simulator)
          assert.deepStrictEqual([first.status, second.status, third.status], [500, 200, 429])
          assert.strictEqual(errorMessage(first), "The server had an error while processing your request")
          assert.strictEqual(errorMessage(third), "Concurrency limit reached for requests")
        })
      ))

    it.live("setFaultRate(1, [overloaded]) fails every chat call with 503; setFaultRate(0) restores", () =>
      withSimulator((simulator) =>
        Effect.gen(function*() {
          yield* simulator.setFaultRate(1, [Fault.overloaded])
          for (let i = 0; i < 5; i++) {
            const reply = yield* chat(simulator)
            assert.strictEqual(reply.status, 503)
            assert.strictEqual(errorMessage(reply), "The engine is currently overloaded, please try again later")
          }
          assert.strictEqual((yield* request(simulator, "/models")).status, 200, "only chat calls get faults")
          yield* simulator.setFaultRate(0)
          for (let i = 0; i < 5; i++) assert.strictEqual((yield* chat(simulator)).status, 200)
          const invalid = yield* Effect.exit(simulator.setFaultRate(1.5))
          assert.isTrue(Exit.isFailure(invalid), "a rate above 1 is refused")
        })
      ))

    it.live("the log keeps the newest maxLogEntries entries, and clearLog empties it", () =>
      withSimulator(
        (simulator) =>
          Effect.gen(function*() {
            for (let i = 0; i < 5; i++) yield* chat(simulator, { user: `call-${i}` })
            const log = yield* simulator.log
            assert.deepStrictEqual(log.map((e) => e.id), [3, 4, 5])
            assert.deepStrictEqual(log.map((e) => (e.body as { user: string }).user), ["call-2", "call-3", "call-4"])
            assert.isTrue(log.every((e) => e.headers["authorization"] === "<redacted>"))
            yield* simulator.clearLog
            assert.deepStrictEqual(yield* simulator.log, [])
          }),
        { maxLogEntries: 3 }
      ))

    it("peakInFlight counts a request from when it took its slot, not from its arrival", () => {
      const entry = (id: number, at: number, admittedAt: number | undefined, endedAt: number) =>
        ({
          id,
          at,
          admittedAt,
          endedAt,
          method: "POST",
          path: "/v1/chat/completions",
          headers: {},
          project: undefined,
          body: undefined,
          stream: false,
          outcome: "ok",
          fault: undefined,
          status: 200,
          closedEarly: false,
          usage: undefined
        }) as const
      // The second arrived while the first ran, but waited for the first to end before it took a slot.
      assert.strictEqual(InferenceSimulator.peakInFlight([entry(1, 0, 0, 10), entry(2, 5, 10, 20)]), 1)
      // Admitted at once: both ran together.
      assert.strictEqual(InferenceSimulator.peakInFlight([entry(1, 0, 0, 10), entry(2, 5, 5, 20)]), 2)
      // An entry without admittedAt counts from its arrival.
      assert.strictEqual(InferenceSimulator.peakInFlight([entry(1, 0, 0, 10), entry(2, 5, undefined, 20)]), 2)
    })

    it.live("every answered request records when it took its slot: at or after its arrival, before its end", () =>
      withSimulator((simulator) =>
        Effect.gen(function*() {
          for (let i = 0; i < 3; i++) assert.strictEqual((yield* chat(simulator)).status, 200)
          const log = yield* simulator.log
          assert.strictEqual(log.length, 3)
          for (const e of log) {
            assert.isDefined(e.admittedAt)
            assert.isAtLeast(e.admittedAt!, e.at)
            assert.isAtMost(e.admittedAt!, e.endedAt!)
          }
        })
      ))
  })

  describe("Fault.fromString", () => {
    it("reads a tag, or a tag and its parameter", () => {
      assert.deepStrictEqual(Fault.fromString("Overloaded"), Fault.overloaded)
      assert.deepStrictEqual(Fault.fromString(" Hang "), Fault.hang)
      assert.deepStrictEqual(Fault.fromString("RateLimited"), Fault.rateLimited())
      assert.deepStrictEqual(Fault.fromString("RateLimited:2"), Fault.rateLimited({ seconds: 2 }))
      assert.deepStrictEqual(Fault.fromString("ConnectionReset"), Fault.connectionReset())
      assert.deepStrictEqual(Fault.fromString("ConnectionReset:midBody"), Fault.connectionReset({ midBody: true }))
      assert.deepStrictEqual(Fault.fromString("StallMidBody:5"), Fault.stallMidBody({ afterChunks: 5 }))
      assert.deepStrictEqual(Fault.fromString("SseErrorFrame:1"), Fault.sseErrorFrame({ afterChunks: 1 }))
    })

    it("reads every fault of Fault.all by its tag", () => {
      for (const fault of Fault.all) assert.strictEqual(Fault.fromString(fault._tag)?._tag, fault._tag)
    })

    it("rejects junk", () => {
      for (
        const junk of ["", "Nope", "overloaded", "Overloaded:3", "RateLimited:x", "RateLimited:-1", "Hang:midBody"]
      ) {
        assert.isUndefined(Fault.fromString(junk), junk)
      }
    })
  })
})
