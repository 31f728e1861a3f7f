/**
 * A concurrency slot is held until the request is really gone. Calls interrupted
 * at random moments (waiting for a slot, waiting for the answer, reading it,
 * streaming) and streams left early never leave the client with more requests
 * on the wire than `maxConcurrency`: a slot is given back only once undici has
 * answered the request in full or failed it (an abort closes its connection).
 *
 * The server sees the same: the simulator's per-project limit equals
 * `maxConcurrency`, and not one request is refused with a 429. The simulator,
 * as a server should, frees a slot as soon as it learns that a request is over
 * (its answer written, or the client's end of the connection closed), in the
 * order those events reach it.
 */
import * as UndiciHttpClient from "@effect-inference/client/UndiciHttpClient"
import * as undici from "@effect/platform-node/Undici"
import * as HttpClient from "@effect/platform/HttpClient"
import { assert, describe, it } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import * as InferenceSimulator from "../../src/InferenceSimulator.js"
import { ask, chatLog, chatRequest, clientLayer, streamChat, withSimulatorOnly } from "../utils/Integration.js"

const LIMIT = 8
const CALLS = 1_000

/** Answers of 8-40 tokens at 2 ms a token, so that calls overlap and interruptions land at every stage. */
const simulatorOptions: InferenceSimulator.Options = {
  concurrencyLimit: LIMIT,
  firstByte: "10 millis",
  perToken: "2 millis"
}

/** A small seeded generator (mulberry32), so that a failure can be replayed. */
const prng = (seed: number) => {
  let state = seed >>> 0
  return (): number => {
    state = (state + 0x6D2B79F5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

type Kind = "call" | "stream" | "left early"

interface Plan {
  readonly kind: Kind
  /** Chunks read before a stream left early stops. */
  readonly chunks: number
  /** When the call is interrupted, from its start. */
  readonly interruptAfterMillis: number
}

const plans = (seed: number): ReadonlyArray<Plan> => {
  const random = prng(seed)
  return Array.from({ length: CALLS }, () => {
    const draw = random()
    return {
      kind: draw < 1 / 3 ? "call" : draw < 2 / 3 ? "stream" : "left early",
      chunks: 1 + Math.floor(random() * 5),
      interruptAfterMillis: Math.floor(random() * 80)
    }
  })
}

const run = (plan: Plan, i: number) => {
  const request = chatRequest({}, `question ${i}`)
  switch (plan.kind) {
    case "call":
      return Effect.asVoid(ask(`question ${i}`))
    case "stream":
      return Stream.runDrain(streamChat(request))
    case "left early":
      return Stream.runDrain(Stream.take(streamChat(request), plan.chunks))
  }
}

/**
 * An undici `Agent` that counts the requests on the wire: from the moment undici
 * puts one on a connection until it has answered it in full or failed it (an
 * abort closes its connection). A request aborted before it was put on a
 * connection is never sent, and is not counted.
 */
class CountingAgent extends undici.Agent {
  onWire = 0
  peakOnWire = 0

  override dispatch(options: undici.Dispatcher.DispatchOptions, handler: undici.Dispatcher.DispatchHandler): boolean {
    let counted = false
    let finished = false
    const done = () => {
      finished = true
      if (counted) this.onWire--
      counted = false
    }
    return super.dispatch(options, {
      onConnect: (abort: (error?: Error) => void, ...rest: Array<unknown>) => {
        Reflect.apply(handler.onConnect!, handler, [abort, ...rest])
        // A request aborted while it waited for a connection is failed here, before undici writes a byte of it.
        if (!counted && !finished) {
          counted = true
          this.peakOnWire = Math.max(this.peakOnWire, ++this.onWire)
        }
      },
      onHeaders: (...args) => handler.onHeaders!(...args),
      onData: (chunk) => handler.onData!(chunk),
      onComplete: (trailers) => {
        done()
        handler.onComplete!(trailers)
      },
      onError: (error) => {
        done()
        handler.onError!(error)
      }
    })
  }
}

/**
 * Runs the seeded plans against a client of the simulator over `agent`: their
 * exits, and the requests still on the wire once every interruption completed.
 */
const interruptAll = (agent: CountingAgent) =>
  Effect.provide(
    Effect.gen(function*() {
      // Warms the call path first: a cold one takes longer than many of the interruptions wait.
      yield* Effect.forEach(plans(7).slice(0, 8 * LIMIT), (plan, i) => Effect.ignore(run(plan, i)), {
        concurrency: LIMIT
      })
      const exits = yield* Effect.forEach(
        plans(13),
        (plan, i) =>
          Effect.gen(function*() {
            const fiber = yield* Effect.fork(run(plan, i))
            yield* Effect.sleep(plan.interruptAfterMillis)
            // Waits for the interruption to complete: the call's own finalizers (its slot) included.
            return yield* Fiber.interrupt(fiber)
          }),
        { concurrency: LIMIT }
      )
      return { exits, leftOnWire: agent.onWire }
    }),
    clientLayer(
      { maxConcurrency: LIMIT, retry: false, circuitBreaker: false },
      Layer.succeed(HttpClient.HttpClient, UndiciHttpClient.make(agent))
    )
  )

describe("interruptions", () => {
  it.live(
    `${CALLS} calls, streams and streams left early, interrupted at random: never more than maxConcurrency on the wire`,
    () =>
      withSimulatorOnly(
        Effect.gen(function*() {
          const agent = new CountingAgent()
          const { exits, leftOnWire } = yield* Effect.ensuring(
            interruptAll(agent),
            Effect.promise(() => agent.destroy())
          )
          const log = yield* chatLog
          // Every call ended: interrupted, or done before its interruption came.
          const failures = exits.flatMap((exit) =>
            Exit.isFailure(exit) ? Option.toArray(Cause.failureOption(exit.cause)).map((error) => error._tag) : []
          )
          assert.deepStrictEqual(failures, [], "failures")
          assert.deepStrictEqual(log.filter((entry) => entry.status === 429).map((entry) => entry.id), [], "429s")
          assert.isAtMost(agent.peakOnWire, LIMIT, "requests on the wire at once")
          // Each interruption completed after its request was gone: none is left once the calls are over.
          assert.strictEqual(leftOnWire, 0, "requests left on the wire")
          assert.isAtMost(InferenceSimulator.peakInFlight(log), LIMIT, "answered requests at once")
          // The interruptions did land while requests were at the server, in every kind of call.
          const aborted = log.filter((entry) => entry.outcome === "aborted")
          assert.isAbove(aborted.filter((entry) => entry.stream).length, 50, "streams cut off by the client")
          assert.isAbove(aborted.filter((entry) => !entry.stream).length, 50, "calls cut off by the client")
        }),
        simulatorOptions
      ),
    60_000
  )
})
