import { Batch } from "@effect-inference/cli"
import type { ChatCompletion } from "@effect-inference/client"
import { InferenceError } from "@effect-inference/client"
import { TestInferenceClient } from "@effect-inference/testing"
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as path from "node:path"
import * as Output from "../src/internal/output.js"
import * as Files from "./utils/Files.js"

const completion = (): ChatCompletion.ChatCompletion => ({
  ...TestInferenceClient.completion("Four."),
  id: "chatcmpl-abc"
})

const LINE_ID = /^batch_req_[0-9a-f]{24}$/

describe("Output", () => {
  describe("lines", () => {
    it("writes a success in the Batch API's output format", () => {
      const line = Batch.successLine("q1", completion())
      const parsed = JSON.parse(line)
      assert.deepStrictEqual(Object.keys(parsed), ["id", "custom_id", "response", "error"])
      assert.match(parsed.id, LINE_ID)
      assert.deepStrictEqual(parsed, {
        id: parsed.id,
        custom_id: "q1",
        response: { status_code: 200, request_id: "chatcmpl-abc", body: JSON.parse(JSON.stringify(completion())) },
        error: null
      })
      assert.notInclude(line, "\n")
      assert.notStrictEqual(JSON.parse(Batch.successLine("q1", completion())).id, parsed.id)
    })

    it("writes a failure the service answered with its status and scrubbed error body, code the error's tag", () => {
      const error = new InferenceError.RateLimitError({
        status: 429,
        serverMessage: "concurrency limit reached for requests",
        type: "rate_limit_error",
        code: "rate_limit_exceeded",
        attempts: 2
      })
      const parsed = JSON.parse(Batch.failureLine("q2", error))
      assert.deepStrictEqual(Object.keys(parsed), ["id", "custom_id", "response", "error"])
      assert.match(parsed.id, LINE_ID)
      assert.deepStrictEqual(parsed, {
        id: parsed.id,
        custom_id: "q2",
        response: {
          status_code: 429,
          body: {
            error: {
              message: "concurrency limit reached for requests",
              type: "rate_limit_error",
              code: "rate_limit_exceeded",
              param: null
            }
          }
        },
        error: { code: "RateLimitError", message: error.message }
      })
    })

    it("writes a failure with no answer (a reset connection) with a null response", () => {
      const error = new InferenceError.ConnectionError({ description: "socket hang up", sent: true, attempts: 1 })
      const parsed = JSON.parse(Batch.failureLine("q3", error))
      assert.deepStrictEqual(parsed, {
        id: parsed.id,
        custom_id: "q3",
        response: null,
        error: { code: "ConnectionError", message: error.message }
      })
    })
  })

  describe("retryableCode", () => {
    it("tries again the failures that may pass another time, and only those", () => {
      const table: ReadonlyArray<readonly [string, number | undefined, boolean]> = [
        ["RateLimitError", 429, true],
        ["InternalServerError", 500, true],
        ["ServiceUnavailableError", 503, true],
        ["ConflictError", 409, true],
        ["ConnectionError", undefined, true],
        ["TimeoutError", undefined, true],
        ["CircuitOpenError", undefined, true],
        ["CoordinationError", undefined, true],
        ["UnexpectedStatusError", 408, true],
        ["UnexpectedStatusError", 599, true],
        ["UnexpectedStatusError", 418, false],
        ["UnexpectedStatusError", undefined, false],
        ["BadRequestError", 400, false],
        ["InvalidRequestError", undefined, false],
        ["NotFoundError", 404, false],
        ["UnprocessableEntityError", 422, false],
        ["PermissionDeniedError", 403, false],
        ["ResponseDecodeError", 200, false],
        ["SomethingNew", 500, false]
      ]
      for (const [code, status, expected] of table) {
        assert.strictEqual(Output.retryableCode(code, status), expected, `${code} ${status}`)
      }
    })

    it("agrees with the lines failureLine writes: what readPrior reads is what the client would retry", () => {
      const errors = [
        new InferenceError.InternalServerError({ status: 502, attempts: 1 }),
        new InferenceError.ServiceUnavailableError({ status: 503, attempts: 1 }),
        new InferenceError.BadRequestError({ status: 400, attempts: 1 }),
        new InferenceError.NotFoundError({ status: 404, attempts: 1 }),
        new InferenceError.ConnectionError({ description: "reset", sent: true, attempts: 1 })
      ]
      for (const error of errors) {
        const line = JSON.parse(Batch.failureLine("x", error))
        assert.strictEqual(
          Output.retryableCode(line.error.code, line.response?.status_code),
          InferenceError.isRetryable(error),
          error._tag
        )
      }
    })
  })

  describe("readPrior", () => {
    it.scoped("reads succeeded, failed (retryable or not) and unfinished rows, ignoring torn last lines", () =>
      Effect.gen(function*() {
        const dir = yield* Files.tempDir
        const output = path.join(dir, "out.jsonl")
        const errors = path.join(dir, "out.jsonl.errors.jsonl")
        const journal = path.join(dir, "out.jsonl.journal")
        const rateLimited = new InferenceError.RateLimitError({ status: 429, attempts: 2 })
        const badRequest = new InferenceError.BadRequestError({ status: 400, attempts: 1 })
        yield* Files.writeText(
          output,
          `${Batch.successLine("a", completion())}\n${Batch.successLine("b", completion())}\n` +
            Batch.successLine("torn", completion()).slice(0, 40)
        )
        yield* Files.writeText(
          errors,
          [
            Batch.failureLine("c", rateLimited),
            Batch.failureLine("d", badRequest),
            // b failed once, then succeeded: a success wins
            Batch.failureLine("b", rateLimited),
            "not a result line"
          ].map((line) => `${line}\n`).join("") + Batch.failureLine("torn2", badRequest).slice(0, 30)
        )
        yield* Files.writeText(
          journal,
          ["a", "b", "c", "d", "e", "e", "f"].map((id) => `${JSON.stringify(id)}\n`).join("") + "\"g"
        )
        const prior = yield* Output.readPrior({ output, errors, journal })
        assert.deepStrictEqual([...prior.succeeded].sort(), ["a", "b"])
        assert.deepStrictEqual([...prior.failed.entries()].sort(), [
          ["c", { code: "RateLimitError", retryable: true }],
          ["d", { code: "BadRequestError", retryable: false }]
        ])
        // e and f were taken and have no result; e is counted once, the torn "g" not at all
        assert.strictEqual(prior.unfinished, 2)
        assert.deepStrictEqual([...prior.repaired].sort(), [errors, journal, output].sort())
        // the files now end on whole lines, so appending goes on cleanly
        assert.strictEqual(Files.readLines(output).length, 2)
        assert.strictEqual(Files.readLines(errors).length, 4)
      }))

    it.scoped("finds nothing when no earlier run wrote anything", () =>
      Effect.gen(function*() {
        const dir = yield* Files.tempDir
        const prior = yield* Output.readPrior({
          output: path.join(dir, "o"),
          errors: path.join(dir, "e"),
          journal: path.join(dir, "j")
        })
        assert.strictEqual(prior.succeeded.size, 0)
        assert.strictEqual(prior.failed.size, 0)
        assert.strictEqual(prior.unfinished, 0)
        assert.deepStrictEqual(prior.repaired, [])
      }))
  })
})
