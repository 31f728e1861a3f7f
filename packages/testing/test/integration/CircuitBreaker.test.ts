/**
 * The client's circuit breaker against a simulator that goes down (every call a
 * 503) and comes back: calls fail fast during the outage, without reaching the
 * server, and the client recovers by itself within one break after the service does.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fault from "../../src/Fault.js"
import * as InferenceSimulator from "../../src/InferenceSimulator.js"
import { ask, chatLog, withSimulator } from "../utils/Integration.js"

const BREAK = 300

describe("circuit breaker against the simulator", () => {
  it.live("an outage: fail fast while it lasts, recover within one break after it ends", () =>
    withSimulator(
      Effect.gen(function*() {
        const simulator = yield* InferenceSimulator.InferenceSimulator
        yield* ask() // healthy
        yield* simulator.setFaultRate(1, [Fault.overloaded])

        // 3 failures in a row open the breaker; the next calls never reach the server
        const during = yield* Effect.forEach(Array.from({ length: 10 }), () => Effect.flip(ask()))
        assert.deepStrictEqual(during.slice(0, 3).map((e) => e._tag), Array(3).fill("ServiceUnavailableError"))
        assert.deepStrictEqual(during.slice(3).map((e) => e._tag), Array(7).fill("CircuitOpenError"))
        const requestsDuring = (yield* chatLog).length
        assert.strictEqual(requestsDuring, 1 + 3, "fail fast: no request while open")

        // the service comes back; within one break the breaker lets a probe through and closes
        yield* simulator.setFaultRate(0)
        const recovered = Date.now()
        let answer: string | undefined
        while (answer === undefined && Date.now() - recovered < BREAK * 3) {
          answer = yield* ask().pipe(
            Effect.map((c) => c.choices[0].message.content ?? ""),
            Effect.catchTag("CircuitOpenError", () => Effect.as(Effect.sleep("20 millis"), undefined))
          )
        }
        const took = Date.now() - recovered
        assert.isDefined(answer)
        assert.isAtMost(
          took,
          BREAK + 200,
          `recovered ${took} ms after the service did (one break, plus slack for a busy event loop)`
        )
        // closed again: the next calls all go through
        const after = yield* Effect.forEach(Array.from({ length: 3 }), () => Effect.either(ask()))
        assert.isTrue(after.every((r) => r._tag === "Right"))
      }),
      {},
      {
        retry: false,
        circuitBreaker: {
          consecutiveFailures: 3,
          failureRate: false,
          breakDuration: `${BREAK} millis`,
          halfOpenProbes: 1
        }
      }
    ))
})
