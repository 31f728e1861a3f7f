/**
 * What the command tells its caller, as a shell script or CI sees it: the exit
 * code (0 every row succeeded, 1 some failed, 2 the run could not start), what
 * it says on stderr when it cannot start, and its progress off a terminal.
 * Real processes of the command against the simulator in this process.
 */
import { Fault, InferenceSimulator } from "@effect-inference/testing"
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as fs from "node:fs"
import * as net from "node:net"
import * as path from "node:path"
import * as Files from "../utils/Files.js"
import * as Cli from "./utils/Cli.js"

const TIMEOUT = 60_000

const chatRequests = (simulator: InferenceSimulator.Service) =>
  Effect.map(simulator.log, (log) => log.filter((entry) => entry.path === "/v1/chat/completions").length)

/** A port that was free a moment ago: a connection to it is refused. */
const freePort = Effect.promise(() =>
  new Promise<number>((resolve) => {
    const server = net.createServer().listen(0, "127.0.0.1", () => {
      const { port } = server.address() as net.AddressInfo
      server.close(() => resolve(port))
    })
  })
)

describe("effect-inference batch: exit codes and output", () => {
  it.scopedLive(
    "every row succeeds: exit 0, each row a line of the Batch API's output format",
    () =>
      Effect.gen(function*() {
        const simulator = yield* InferenceSimulator.make()
        const { errors, input, output } = yield* Files.batchFiles(20)
        const exited = yield* Cli.run(["batch", input, "--output", output, "--base-url", simulator.url])
        assert.strictEqual(exited.code, 0, Cli.report(exited))
        const results = Files.readResults(output)
        assert.deepStrictEqual(results.map((result) => result.custom_id).sort(), Files.ids(20).sort())
        for (const result of results) {
          assert.match(result.id, /^batch_req_[0-9a-f]{24}$/)
          assert.strictEqual(result.error, null)
          assert.strictEqual(result.response?.status_code, 200)
          const body = result.response?.body as { readonly id: string; readonly object: string }
          assert.strictEqual(body.object, "chat.completion")
          assert.strictEqual(result.response?.request_id, body.id)
        }
        assert.deepStrictEqual(Files.readLines(errors), [])
        assert.match(exited.stdout, /succeeded\s+20\n/)
        assert.match(exited.stdout, /failed\s+0\n/)
      }),
    TIMEOUT
  )

  it.scopedLive(
    "some rows fail for good: exit 1, each failure in the errors file with its tag and status",
    () =>
      Effect.gen(function*() {
        const n = 40
        const simulator = yield* InferenceSimulator.make({
          faultRate: 0.3,
          faults: [Fault.badRequest, Fault.unprocessable]
        })
        const { errors, input, output } = yield* Files.batchFiles(n)
        const exited = yield* Cli.run(["batch", input, "--output", output, "--base-url", simulator.url])
        assert.strictEqual(exited.code, 1, Cli.report(exited))
        const failures = Files.readResults(errors)
        // 30% of 40, as the simulator's draw is stratified.
        assert.strictEqual(failures.length, 12)
        for (const failure of failures) {
          const expected = failure.error?.code === "BadRequestError" ? 400 : 422
          assert.oneOf(failure.error?.code, ["BadRequestError", "UnprocessableEntityError"])
          assert.strictEqual(failure.response?.status_code, expected)
        }
        assert.strictEqual(Files.readResults(output).length, n - 12)
        assert.strictEqual(Files.countIds(output, errors).size, n)
        assert.match(exited.stdout, /failed\s+12 \((BadRequestError|UnprocessableEntityError) \d+/)
        assert.include(exited.stdout, "the others with --retry-failed")
      }),
    TIMEOUT
  )

  it.scopedLive(
    "off a terminal, progress is plain 'progress:' lines on stderr; the last says n/n rows",
    () =>
      Effect.gen(function*() {
        const simulator = yield* InferenceSimulator.make({ faultRate: 0.2, faults: [Fault.badRequest] })
        const { input, output } = yield* Files.batchFiles(30)
        const exited = yield* Cli.run(["batch", input, "--output", output, "--base-url", simulator.url])
        assert.strictEqual(exited.code, 1, Cli.report(exited))
        // Lines, not a bar redrawn in place: no carriage return, no escape sequence.
        assert.notInclude(exited.stderr, "\r")
        assert.notInclude(exited.stderr, "\u001b[")
        const lines = exited.stderr.split("\n").filter((line) => line.startsWith("progress: "))
        assert.isAtLeast(lines.length, 1, exited.stderr)
        const masked = (line: string) => line.replace(/\d[\d,]*(\.\d+)?/g, "N")
        // A run of a second or two prints only its last line; a longer run has the same shape every 5 s.
        for (const line of lines) {
          assert.strictEqual(
            masked(line),
            "progress: N/N rows (N%) · N rows/s · ETA Ns · N tokens · $N · limit N · N failed (BadRequestError N)"
          )
        }
        assert.match(lines[lines.length - 1]!, /^progress: 30\/30 rows \(100%\) · .* · 6 failed \(BadRequestError 6\)$/)
        // The summary goes to stdout, apart from the progress.
        assert.notInclude(exited.stdout, "progress:")
        assert.match(exited.stdout, /^batch summary\n/)
      }),
    TIMEOUT
  )

  it.scopedLive(
    "invalid rows: exit 2, stderr lists them by line number, nothing is sent or written",
    () =>
      Effect.gen(function*() {
        const simulator = yield* InferenceSimulator.make()
        const { dir, output } = yield* Files.batchFiles(0)
        const good = (i: number) => JSON.stringify(Files.request(i))
        const input = yield* Files.writeText(
          path.join(dir, "input.jsonl"),
          [
            good(1),
            "{not json",
            good(3),
            JSON.stringify({ ...Files.request(4), url: "/v1/embeddings" }),
            good(1),
            JSON.stringify({ ...Files.request(6), body: { model: Files.MODEL, messages: [] } }),
            ""
          ].join("\n")
        )
        const exited = yield* Cli.run(["batch", input, "--output", output, "--base-url", simulator.url])
        assert.strictEqual(exited.code, 2, Cli.report(exited))
        assert.include(exited.stderr, "4 invalid rows; nothing was sent")
        const listed = [...exited.stderr.matchAll(/^ {2}line (\d+): /gm)].map((match) => Number(match[1]))
        assert.deepStrictEqual(listed, [2, 4, 5, 6], exited.stderr)
        assert.include(exited.stderr, "line 5: custom_id \"row-1\" is also on line 1")
        assert.strictEqual((yield* simulator.log).length, 0, "requests sent")
        assert.isFalse(fs.existsSync(output))
        assert.strictEqual(exited.stdout, "")
      }),
    TIMEOUT
  )

  it.scopedLive(
    "a key the service refuses: exit 2 after the one preflight request, no row sent",
    () =>
      Effect.gen(function*() {
        const simulator = yield* InferenceSimulator.make()
        const { input, output } = yield* Files.batchFiles(20)
        const exited = yield* Cli.run(
          ["batch", input, "--output", output, "--base-url", simulator.url],
          { env: { WANDB_API_KEY: "not-the-key" } }
        )
        assert.strictEqual(exited.code, 2, Cli.report(exited))
        assert.match(exited.stderr, /^effect-inference batch: preflight failed: /m)
        assert.match(exited.stderr, /API key|authenticat/i)
        assert.notInclude(exited.stderr + exited.stdout, "not-the-key")
        // One request: the preflight's client does not retry.
        const log = yield* simulator.log
        assert.deepStrictEqual(log.map((entry) => [entry.path, entry.outcome]), [["/v1/models", "unauthorized"]])
        assert.isFalse(fs.existsSync(output))
      }),
    TIMEOUT
  )

  it.scopedLive(
    "a base URL where nothing listens: exit 2 after one attempt, not after the rows' retries",
    () =>
      Effect.gen(function*() {
        const { input, output } = yield* Files.batchFiles(5)
        const port = yield* freePort
        const exited = yield* Cli.run(["batch", input, "--output", output, "--base-url", `http://127.0.0.1:${port}/v1`])
        assert.strictEqual(exited.code, 2, Cli.report(exited))
        assert.match(exited.stderr, /preflight failed: Connection failed/)
        assert.notMatch(exited.stderr, /attempts\]/, "one attempt: the message counts attempts only above one")
        assert.isFalse(fs.existsSync(output))
      }),
    TIMEOUT
  )

  it.scopedLive(
    "warnings reach stderr (Redis down), the client's line per failed attempt does not",
    () =>
      Effect.gen(function*() {
        const simulator = yield* InferenceSimulator.make({
          faultRate: 0.5,
          faults: [Fault.overloaded],
          seed: 3
        })
        const { input, output } = yield* Files.batchFiles(10)
        const port = yield* freePort
        const exited = yield* Cli.run([
          "batch",
          input,
          "--output",
          output,
          "--base-url",
          simulator.url,
          "--redis",
          `redis://127.0.0.1:${port}`
        ])
        assert.include(exited.stderr, "Redis is unavailable", Cli.report(exited))
        assert.notInclude(exited.stderr, "Inference attempt failed")
        const retried = (yield* simulator.log).filter((entry) => entry.outcome !== "ok").length
        assert.isAbove(retried, 0, "some attempts failed, so there were attempt lines to leave out")
      }),
    TIMEOUT
  )

  it.scopedLive("a dry run needs no key and no service", () =>
    Effect.gen(function*() {
      const { input, output } = yield* Files.batchFiles(5)
      const exited = yield* Cli.run(["batch", input, "--output", output, "--dry-run"])
      assert.strictEqual(exited.code, 0, Cli.report(exited))
      assert.include(exited.stdout, "dry run: 5 rows")
      assert.isFalse(fs.existsSync(output))
    }), TIMEOUT)

  it.scopedLive("bad options: exit 2 with what is wrong, nothing sent", () =>
    Effect.gen(function*() {
      const simulator = yield* InferenceSimulator.make()
      const { input, output } = yield* Files.batchFiles(5)
      const cases: ReadonlyArray<readonly [ReadonlyArray<string>, string]> = [
        [["--shard", "0/3"], "--shard: \"0/3\": i must be from 1 to n"],
        [["--concurrency", "abc"], "--concurrency: \"abc\" is not \"auto\" or a whole number"],
        // Once a defect of the Redis layer, which ended the process with code 2 and not a word.
        [["--redis", "notaurl"], "--redis: not a redis:// or rediss:// URL"]
      ]
      const runs = yield* Effect.forEach(
        cases,
        ([extra]) => Cli.run(["batch", input, "--output", output, "--base-url", simulator.url, ...extra]),
        { concurrency: 3 }
      )
      runs.forEach((exited, i) => {
        assert.strictEqual(exited.code, 2, Cli.report(exited))
        assert.include(exited.stderr, cases[i]![1])
      })
      assert.strictEqual(yield* chatRequests(simulator), 0)
      assert.isFalse(fs.existsSync(output))
    }), TIMEOUT)
})
