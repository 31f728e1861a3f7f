/**
 * The client against the simulator over loopback HTTP: every fault ends in the
 * right tagged error, or in success after the right number of attempts.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fault from "../../src/Fault.js"
import * as InferenceSimulator from "../../src/InferenceSimulator.js"
import { ask, withSimulator } from "../utils/Integration.js"

const cases: ReadonlyArray<readonly [Fault.Fault, string, boolean]> = [
  [Fault.badRequest, "BadRequestError", false],
  [Fault.unauthorized, "AuthenticationError", false],
  [Fault.quotaExceeded, "QuotaExceededError", false],
  [Fault.regionNotSupported, "PermissionDeniedError", false],
  [Fault.gatewayNotEnabled, "PermissionDeniedError", false],
  [Fault.modelNotFound, "NotFoundError", false],
  [Fault.unprocessable, "UnprocessableEntityError", false],
  [Fault.rateLimited(), "RateLimitError", true],
  [Fault.rateLimited({ millis: 30 }), "RateLimitError", true],
  [Fault.quotaExceeded429, "QuotaExceededError", false],
  [Fault.personalAccount, "PermissionDeniedError", false],
  [Fault.internalError, "InternalServerError", true],
  [Fault.badGateway, "InternalServerError", true],
  [Fault.overloaded, "ServiceUnavailableError", true],
  [Fault.gatewayTimeout, "InternalServerError", true],
  [Fault.hang, "TimeoutError", true],
  [Fault.stallMidBody(), "TimeoutError", true],
  [Fault.connectionReset(), "ConnectionError", true],
  [Fault.connectionReset({ midBody: true }), "ConnectionError", true],
  [Fault.nonJsonBody, "ResponseDecodeError", false],
  [Fault.wrongShapeBody, "ResponseDecodeError", false],
  [Fault.sseErrorFrame(), "InternalServerError", true],
  [Fault.sseCutBeforeDone(), "ResponseDecodeError", false]
]

describe("client against the simulator", () => {
  for (const [fault, tag, retried] of cases) {
    const name = `${fault._tag}${"midBody" in fault && fault.midBody ? " mid-body" : ""}`
    it.live(`${name}: every attempt fails → ${tag} after ${retried ? 4 : 1} attempt(s)`, () =>
      withSimulator(
        Effect.gen(function*() {
          const simulator = yield* InferenceSimulator.InferenceSimulator
          yield* simulator.script(fault, fault, fault, fault)
          const exit = yield* Effect.exit(ask())
          const log = yield* simulator.log
          assert.isTrue(Exit.isFailure(exit))
          const error = yield* Effect.flip(exit)
          assert.strictEqual(error._tag, tag)
          assert.strictEqual(error.attempts, retried ? 4 : 1)
          assert.strictEqual(log.length, retried ? 4 : 1, "requests the simulator received")
        }),
        {},
        { timeout: "300 millis" }
      ))

    if (retried) {
      it.live(`${name} twice, then success after 3 attempts`, () =>
        withSimulator(
          Effect.gen(function*() {
            const simulator = yield* InferenceSimulator.InferenceSimulator
            yield* simulator.script(fault, fault)
            const completion = yield* ask()
            assert.isTrue((completion.choices[0].message.content ?? "").length > 0)
            const log = yield* simulator.log
            assert.deepStrictEqual(log.map((e) => e.outcome), ["fault", "fault", "ok"])
          }),
          {},
          { timeout: "300 millis" }
        ))
    }
  }
})
