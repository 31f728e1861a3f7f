/**
 * What the client leaves behind on the wire: a timed-out or interrupted request
 * closes its connection at once, and closing the client closes every other one.
 * The simulator outlives the client here, so it can count what is left open.
 */
import { InferenceError } from "@effect-inference/client"
import { assert, describe, it } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Redacted from "effect/Redacted"
import * as Fault from "../../src/Fault.js"
import * as InferenceSimulator from "../../src/InferenceSimulator.js"
import {
  ask,
  eventually,
  noOpenConnections,
  withClient,
  withSimulator,
  withSimulatorOnly
} from "../utils/Integration.js"

const TIMEOUT_MILLIS = 200

/** The only request in the log, once the simulator has seen its connection close. */
const closedEntry = Effect.gen(function*() {
  const simulator = yield* InferenceSimulator.InferenceSimulator
  const closed = yield* eventually(Effect.map(simulator.log, (log) => log[0]?.endedAt !== undefined))
  assert.isTrue(closed, "the request's connection was never closed")
  const log = yield* simulator.log
  assert.strictEqual(log.length, 1, "requests the simulator received")
  return log[0]!
})

describe("connections", () => {
  for (const fault of [Fault.hang, Fault.stallMidBody()]) {
    it.live(`${fault._tag}: TimeoutError after the attempt timeout, and the socket is closed at once`, () =>
      withSimulatorOnly(
        Effect.gen(function*() {
          const simulator = yield* InferenceSimulator.InferenceSimulator
          yield* simulator.script(fault)
          const started = Date.now()
          const entry = yield* withClient({ retry: false, timeout: `${TIMEOUT_MILLIS} millis` })(
            Effect.gen(function*() {
              const error = yield* Effect.flip(ask())
              assert.strictEqual(error._tag, "TimeoutError")
              assert.strictEqual(error._tag === "TimeoutError" ? error.phase : undefined, "attempt")
              assert.isTrue(
                error._tag === "TimeoutError" && Duration.equals(error.timeout, Duration.millis(TIMEOUT_MILLIS))
              )
              // Still inside the client's scope: the close comes from the aborted request, not from the pool closing.
              return yield* closedEntry
            })
          )
          assert.strictEqual(entry.fault, fault._tag)
          assert.isTrue(entry.closedEarly, "the log entry is closedEarly")
          // Timed from the start of the call, on the clock the simulator logs with; timers run on the event
          // loop's cached clock, which can lag Date.now() by a few milliseconds.
          const closedAfter = entry.endedAt! - started
          assert.isTrue(
            closedAfter >= TIMEOUT_MILLIS - 20 && closedAfter < TIMEOUT_MILLIS + 500,
            `connection closed ${closedAfter} ms after the call began; timeout ${TIMEOUT_MILLIS} ms`
          )
          assert.isTrue(yield* noOpenConnections(), "connections left open after the client closed")
        })
      ))
  }

  it.live("interrupting a call (Effect.timeout) aborts its request", () =>
    withSimulatorOnly(
      Effect.gen(function*() {
        const result = yield* withClient()(
          Effect.gen(function*() {
            const error = yield* Effect.flip(Effect.timeout(ask(), "100 millis"))
            return { error, entry: yield* closedEntry }
          })
        )
        assert.isTrue(Cause.isTimeoutException(result.error), "Effect.timeout interrupted the call")
        assert.strictEqual(result.entry.outcome, "aborted")
        assert.isTrue(result.entry.closedEarly)
        assert.isTrue(result.entry.endedAt! - result.entry.at < 800, "closed long before the answer was due")
        assert.isTrue(yield* noOpenConnections())
      }),
      { firstByte: "1 second" }
    ))

  it.live("interrupting a call (Fiber.interrupt) aborts its request", () =>
    withSimulatorOnly(
      Effect.gen(function*() {
        const simulator = yield* InferenceSimulator.InferenceSimulator
        const entry = yield* withClient()(
          Effect.gen(function*() {
            const fiber = yield* Effect.fork(ask())
            assert.isTrue(
              yield* eventually(Effect.map(simulator.inFlight, (n) => n === 1)),
              "the request never arrived"
            )
            const exit = yield* Fiber.interrupt(fiber)
            assert.strictEqual(exit._tag, "Failure")
            return yield* closedEntry
          })
        )
        assert.strictEqual(entry.outcome, "aborted")
        assert.isTrue(entry.closedEarly)
        assert.isTrue(entry.endedAt! - entry.at < 800, "closed long before the answer was due")
        assert.isTrue(yield* noOpenConnections())
      }),
      { firstByte: "1 second" }
    ))

  it.live("sequential calls reuse keep-alive connections, closed with the client", () =>
    withSimulatorOnly(
      Effect.gen(function*() {
        const simulator = yield* InferenceSimulator.InferenceSimulator
        const open = yield* withClient()(
          Effect.zipRight(Effect.repeatN(ask(), 29), simulator.openConnections)
        )
        assert.strictEqual((yield* simulator.log).length, 30)
        // undici may open a second socket when the next call is sent before the first socket is back in its
        // pool; what matters is that the count does not grow with the calls.
        assert.isTrue(open >= 1 && open <= 2, `${open} connections open for 30 sequential calls`)
        assert.isTrue(yield* noOpenConnections(), "connections left open after the client closed")
      })
    ))

  it.live("a wrong API key → AuthenticationError after exactly 1 request; the log redacts the key", () =>
    withSimulator(
      Effect.gen(function*() {
        const simulator = yield* InferenceSimulator.InferenceSimulator
        const error = yield* Effect.flip(ask())
        const log = yield* simulator.log
        assert.isTrue(InferenceError.isInferenceError(error))
        assert.strictEqual(error._tag, "AuthenticationError")
        assert.strictEqual(error.attempts, 1)
        assert.strictEqual(log.length, 1, "requests the simulator received")
        const [entry] = log
        assert.strictEqual(entry!.outcome, "unauthorized")
        assert.strictEqual(entry!.status, 401)
        assert.strictEqual(entry!.headers["authorization"], "<redacted>")
        assert.strictEqual(entry!.project, "acme/chatbot")
        assert.notInclude(JSON.stringify(log), "wrong-key-1234")
      }),
      {},
      { apiKey: Redacted.make("wrong-key-1234"), project: "acme/chatbot" }
    ))
})
