/**
 * A run stopped from outside, as a user or a machine stops it: SIGKILL at a
 * random moment, SIGINT once (stop taking rows, let those in flight finish),
 * SIGINT twice (exit at once); then the same command again, to the end. Real
 * processes of the command against the simulator in this process.
 */
import { Fault, InferenceSimulator } from "@effect-inference/testing"
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Files from "../utils/Files.js"
import { idOf } from "../utils/Simulator.js"
import * as Cli from "./utils/Cli.js"

/** A bound far above what each test takes, for a machine shared with other work. */
const TIMEOUT = 60_000

const chatLog = (simulator: InferenceSimulator.Service) =>
  Effect.map(simulator.log, (log) => log.filter((entry) => entry.path === "/v1/chat/completions"))

/** How many requests the simulator saw for each row. */
const sentById = (log: ReadonlyArray<InferenceSimulator.LogEntry>): Map<string, number> => {
  const counts = new Map<string, number>()
  for (const entry of log) counts.set(idOf(entry), (counts.get(idOf(entry)) ?? 0) + 1)
  return counts
}

/** The rows of a result file. */
const idsIn = (file: string): Set<string> => new Set(Files.readResults(file).map((result) => result.custom_id))

/** Every row of `n` exactly once in the union of the files (which must have no torn line). */
const exactlyOnce = (n: number, ...files: ReadonlyArray<string>) => {
  const counts = Files.countIds(...files)
  const twice = [...counts].filter(([, count]) => count > 1).map(([id]) => id)
  const missing = Files.ids(n).filter((id) => !counts.has(id))
  assert.deepStrictEqual({ twice, missing }, { twice: [], missing: [] })
  assert.strictEqual(counts.size, n)
}

describe("effect-inference batch, stopped from outside", () => {
  // 200 rows at 16 in flight, each answered in about 90 ms: about 1.1 s of sending, so that a kill up to 0.8 s
  // after the first request lands in the middle of the run. A tenth of the rows fail for good (400, 422), so both
  // files are written; those failures are not retried by the resumed run, so each row is sent once but for the
  // rows in flight at the kill.
  for (const seed of [1, 2, 3]) {
    it.scopedLive(
      `SIGKILL at a random moment (seed ${seed}), then the same command again: every row once, none torn, ` +
        "none sent twice but the rows in flight at the kill, as the summary says",
      () =>
        Effect.gen(function*() {
          const n = 200
          const concurrency = 16
          const simulator = yield* InferenceSimulator.make({
            seed,
            firstByte: "40 millis",
            perToken: "2 millis",
            faultRate: 0.1,
            faults: [Fault.badRequest, Fault.unprocessable]
          })
          const { errors, input, output } = yield* Files.batchFiles(n)
          const args = [
            "batch",
            input,
            "--output",
            output,
            "--base-url",
            simulator.url,
            "--concurrency",
            `${concurrency}`
          ]
          const delay = Math.floor(Cli.random(seed)() * 800)

          const first = yield* Effect.scoped(Effect.gen(function*() {
            const running = yield* Cli.start(args)
            yield* Cli.eventually(
              "the first request",
              Effect.map(chatLog(simulator), (log) => log.length > 0 || running.hasExited())
            )
            yield* Effect.sleep(delay)
            yield* running.kill("SIGKILL")
            return yield* running.exited
          }))
          // Killed in the middle of the run, not after it.
          assert.strictEqual(first.signal, "SIGKILL", Cli.report(first))
          const beforeResume = yield* chatLog(simulator)
          // Read before the resume, which would cut a torn last line off: `readResults` fails on one.
          const finished = new Set([...idsIn(output), ...idsIn(errors)])
          assert.isBelow(finished.size, n, "rows finished before the kill")
          // The rows the simulator saw whose results were not written: in flight at the kill.
          const inFlightAtKill = [...sentById(beforeResume).keys()].filter((id) => !finished.has(id))

          const second = yield* Cli.run(args)
          assert.strictEqual(second.code, 1, Cli.report(second)) // the 400s and 422s are failures for good
          exactlyOnce(n, output, errors)
          assert.match(second.stdout, /done before\s+[\d,]+ succeeded, [\d,]+ failed/)

          const sent = sentById(yield* chatLog(simulator))
          assert.strictEqual(sent.size, n, "every row was sent")
          const sentTwice = [...sent].filter(([, count]) => count > 1).map(([id]) => id).sort()
          // Sent again: exactly the rows in flight at the kill, and no more than the summary says were.
          assert.deepStrictEqual(sentTwice, [...inFlightAtKill].sort())
          assert.isTrue([...sent.values()].every((count) => count <= 2), "no row sent three times")
          const reported = Cli.figure(second.stdout, /sent twice\?/)
          assert.isAtLeast(reported, sentTwice.length, Cli.report(second))
          // The journal counts rows taken and not written: those in flight, and at most as many answered and waiting
          // to be written; not every row it names.
          assert.isAtMost(reported, 2 * concurrency, Cli.report(second))
          if (sentTwice.length > 0) {
            assert.match(second.stdout, /rows were in flight when the last run stopped: sent again/)
          }
        }),
      TIMEOUT
    )
  }

  it.scopedLive(
    "SIGINT: no more rows are taken, rows in flight finish and are written, the summary says how to go on, exit 1; " +
      "the same command again finishes the rest",
    () =>
      Effect.gen(function*() {
        const n = 80
        // About 150 ms a row at 8 in flight: some 1.5 s to do them all; the signal comes after the first 16.
        const simulator = yield* InferenceSimulator.make({ firstByte: "100 millis", perToken: "2 millis" })
        const { errors, input, output } = yield* Files.batchFiles(n)
        const grace = 10
        const args = [
          "batch",
          input,
          "--output",
          output,
          "--base-url",
          simulator.url,
          "--concurrency",
          "8",
          "--grace",
          `${grace}`
        ]

        const { exited, signalled } = yield* Effect.scoped(Effect.gen(function*() {
          const running = yield* Cli.start(args)
          yield* Cli.eventually("16 rows done", Effect.sync(() => Files.readLines(output).length >= 16))
          const signalled = Date.now()
          yield* running.kill("SIGINT")
          return { exited: yield* running.exited, signalled }
        }))
        assert.strictEqual(exited.code, 1, Cli.report(exited))
        assert.include(exited.stderr, "SIGINT: taking no more rows")
        // The rows in flight took a few hundred milliseconds to finish: the run did not wait out its grace.
        assert.isBelow(Date.now() - signalled, (grace - 2) * 1000, "time from the signal to the exit")
        const done = Files.readResults(output).length
        assert.isBelow(done, n, "rows done before the stop")
        assert.strictEqual(Files.readLines(errors).length, 0)
        // Every row sent was let finish and written: none abandoned, none sent without a result.
        const sent = sentById(yield* chatLog(simulator))
        assert.deepStrictEqual([...sent.keys()].sort(), [...idsIn(output)].sort())
        assert.notMatch(exited.stdout, /abandoned/)
        assert.match(exited.stdout, /^batch summary\n/)
        assert.include(exited.stdout, `${n - done} rows not done. To go on, run the same command again:`)
        assert.include(exited.stdout, `effect-inference batch ${input} --output ${output}`)

        const second = yield* Cli.run(args)
        assert.strictEqual(second.code, 0, Cli.report(second))
        exactlyOnce(n, output, errors)
        assert.strictEqual(Files.readLines(errors).length, 0)
        assert.match(second.stdout, new RegExp(`done before +${done} succeeded, 0 failed`))
        assert.notMatch(second.stdout, /sent twice\?/)
        const all = sentById(yield* chatLog(simulator))
        assert.strictEqual(all.size, n)
        assert.deepStrictEqual([...all].filter(([, count]) => count > 1), [], "rows sent twice")
      }),
    TIMEOUT
  )

  it.scopedLive(
    "a second SIGINT exits at once with code 130, every line written whole; the same command again finishes",
    () =>
      Effect.gen(function*() {
        const n = 100
        // Half the requests hang: the 8 slots soon hold hung rows only, which the first SIGINT's grace would wait for.
        const simulator = yield* InferenceSimulator.make({ faultRate: 0.5, faults: [Fault.hang] })
        const { errors, input, output } = yield* Files.batchFiles(n)
        const args = ["batch", input, "--output", output, "--base-url", simulator.url, "--concurrency", "8"]

        const exited = yield* Effect.scoped(Effect.gen(function*() {
          const running = yield* Cli.start(args)
          yield* Cli.eventually(
            "8 hung requests",
            Effect.map(simulator.inFlight, (inFlight) => inFlight >= 8 || running.hasExited())
          )
          yield* running.kill("SIGINT")
          yield* Cli.eventually("the first signal taken", Effect.sync(() => running.stderr().includes("Ctrl-C again")))
          const signalled = Date.now()
          yield* running.kill("SIGINT")
          const exited = yield* running.exited
          // At once: not after the grace (30 s by default), nor after the hung requests.
          assert.isBelow(Date.now() - signalled, 5_000, "time from the second signal to the exit")
          return exited
        }))
        assert.strictEqual(exited.code, 130, Cli.report(exited))
        assert.include(exited.stderr, "SIGINT again: exiting now")
        // Whole lines only (`readResults` fails on a torn one), and the rows answered before the signals are there.
        const done = Files.readResults(output).length
        assert.isAbove(done, 0)
        assert.isBelow(done, n)

        yield* simulator.setFaultRate(0)
        const second = yield* Cli.run(args)
        assert.strictEqual(second.code, 0, Cli.report(second))
        exactlyOnce(n, output, errors)
        // The hung rows were taken and never finished: the summary counts them as perhaps paid twice.
        assert.isAtLeast(Cli.figure(second.stdout, /sent twice\?/), 8, Cli.report(second))
      }),
    TIMEOUT
  )
})
