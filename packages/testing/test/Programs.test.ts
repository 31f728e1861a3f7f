/**
 * The package's programs, run as a user runs them: the standalone simulator
 * (`pnpm simulator`) and the demo (`pnpm demo`, in packages/cli/examples: it
 * uses every package, the cli one too), each in its own process.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { spawn } from "node:child_process"
import * as net from "node:net"
import * as path from "node:path"

const root = path.resolve(__dirname, "..")
const tsx = path.join(root, "node_modules", ".bin", "tsx")

interface Run {
  readonly stdout: string
  readonly stderr: string
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
}

/**
 * Starts `tsx <file> <args>`. `interact` sees the output so far; once it returns a
 * promise, the process is interrupted (SIGINT) when that promise settles.
 */
const run = (
  file: string,
  args: ReadonlyArray<string>,
  env: NodeJS.ProcessEnv,
  interact?: (stdout: string) => Promise<unknown> | undefined
) =>
  Effect.async<Run>((resume) => {
    // as the package scripts run them: the workspace's packages from their sources (see package.json)
    const child = spawn(tsx, ["--conditions=@effect-inference/source", file, ...args], {
      cwd: root,
      env,
      stdio: ["ignore", "pipe", "pipe"]
    })
    let stdout = ""
    let stderr = ""
    let stopping = false
    child.stdout.on("data", (chunk: Buffer) => {
      stdout += chunk.toString()
      const interaction = stopping || interact === undefined ? undefined : interact(stdout)
      if (interaction !== undefined) {
        stopping = true
        interaction.finally(() => child.kill("SIGINT")).catch(() => {})
      }
    })
    child.stderr.on("data", (chunk: Buffer) => stderr += chunk.toString())
    child.on("error", (error) =>
      resume(Effect.succeed({ stdout, stderr: `${stderr}${error.message}`, code: -1, signal: null })))
    child.on("close", (code, signal) =>
      resume(Effect.succeed({ stdout, stderr, code, signal })))
    return Effect.sync(() => child.kill("SIGKILL"))
  })

const withoutKey = (): NodeJS.ProcessEnv => {
  const env = { ...process.env }
  delete env.WANDB_API_KEY
  return env
}

describe("programs", () => {
  it.live(
    "pnpm demo runs every practice in order against the embedded simulator and exits 0",
    () =>
      Effect.gen(function*() {
        const result = yield* run(path.join(root, "..", "cli", "examples", "demo.ts"), [], withoutKey())
        assert.strictEqual(result.code, 0, result.stderr)
        const lines = result.stdout.split("\n")
        assert.include(lines[0], "No WANDB_API_KEY: running against the W&B Inference simulator")
        const order = [
          "1. A plain call",
          "2. A reasoning model",
          "3. A 503",
          "4. A 429",
          "5. A quota error and an authentication error",
          "6. A call that times out",
          "7. 20 concurrent calls",
          "8. A response cache",
          "9. A budget of 200 tokens",
          "10. Usage, from the UsageTracker",
          "11. A batch of 50 rows",
          "12. The same batch again"
        ].map((title) => result.stdout.indexOf(title))
        assert.isTrue(order.every((at, i) => at >= 0 && (i === 0 || at > order[i - 1]!)), `sections in order: ${order}`)
        // the reasoning model's thinking came first, then its answer, from one request despite a 1 s firstChunkTimeout
        assert.match(result.stdout, /thinking…[\s\S]*thought \d+ characters[\s\S]*answer "[^"]+" after \d+ ms/)
        assert.include(result.stdout, "requests sent: 1")
        assert.include(result.stdout, "succeeded on attempt 3")
        assert.include(result.stdout, "retrying in 2s")
        assert.include(result.stdout, "caught QuotaExceededError after 1 attempt(s)")
        assert.include(result.stdout, "caught AuthenticationError after 1 attempt(s)")
        assert.include(result.stdout, "caught TimeoutError after 2 attempt(s)")
        assert.include(result.stdout, "20/20 succeeded")
        assert.include(result.stdout, "429s from the server: 0")
        assert.match(result.stdout, /answered from the cache in \d+ ms/)
        assert.include(result.stdout, "alert: 50% of the tokens budget reached")
        assert.include(result.stdout, "alert: 80% of the tokens budget reached")
        assert.match(result.stdout, /call \d+: BudgetExceededError: .*Nothing was sent/)
        // the report: one row per model and the total, with the one cache hit
        assert.match(result.stdout, /meta-llama\/Llama-3\.1-8B-Instruct\s+\d+\s+\d+\s+3\s+1\s+\d+/)
        assert.match(result.stdout, /total\s+\d+\s+\d+\s+3\s+1\s+\d+\s+[\d,]+\s+[\d,]+\s+\$\d+\.\d{6}/)
        // the batch: its progress bar, every row in one file (the scripted 503 retried, the 400 failing its row),
        // and a second run that sends nothing
        assert.match(result.stdout, /\[[█░]{24}\] \d+\/50 rows \(\d+%\) · [\d.]+ rows\/s · ETA/)
        assert.match(result.stdout, /batch summary\n.*input .*questions\.jsonl: 50 rows/)
        assert.match(result.stdout, /succeeded\s+49\n.*failed\s+1 \(BadRequestError 1\)/)
        assert.include(result.stdout, "49 rows already succeeded, 1 failed and kept")
        assert.include(result.stdout, "0 requests sent")
      }),
    60_000
  )

  it.live(
    "pnpm simulator serves the API on a free port until interrupted, printing each request",
    () =>
      Effect.gen(function*() {
        let models: unknown = undefined
        const result = yield* run("src/bin.ts", ["--port", "0", "--seed", "7"], withoutKey(), (stdout) => {
          const url = stdout.match(/listening on (\S+)/)?.[1]
          return url === undefined ?
            undefined :
            fetch(`${url}/models`, { headers: { authorization: "Bearer sim-key" } })
              .then((response) => response.json())
              .then((body) => {
                models = body
              })
        })
        assert.match(result.stdout, /listening on http:\/\/127\.0\.0\.1:\d+\/v1 \(API key: sim-key, fault rate 0\)/)
        assert.deepInclude(models as object, { object: "list" })
        assert.match(result.stdout, /GET \/v1\/models -> 200 ok/)
        // interrupted by SIGINT, it closes the server and ends without an error
        assert.isTrue(result.code === 0 || result.code === 130 || result.signal === "SIGINT", JSON.stringify(result))
      }),
    30_000
  )

  it.live("pnpm simulator refuses a bad option with the usage text and exit code 2", () =>
    Effect.gen(function*() {
      const result = yield* run("src/bin.ts", ["--fault-rate", "2"], withoutKey())
      assert.strictEqual(result.code, 2)
      assert.include(result.stderr, "--fault-rate")
      assert.include(result.stderr, "Usage: effect-inference-simulator")
    }), 30_000)

  it.live(
    "pnpm simulator on a port in use prints one line naming the port and exits 1, without a stack",
    () =>
      Effect.acquireUseRelease(
        Effect.async<net.Server>((resume) => {
          const server = net.createServer()
          server.listen(0, "127.0.0.1", () => resume(Effect.succeed(server)))
        }),
        (server) =>
          Effect.gen(function*() {
            const port = (server.address() as net.AddressInfo).port
            const result = yield* run("src/bin.ts", ["--port", String(port)], withoutKey())
            assert.strictEqual(result.code, 1, JSON.stringify(result))
            assert.strictEqual(
              result.stderr.trim(),
              `effect-inference-simulator: port ${port} is in use on 127.0.0.1; choose another with --port (0 picks a free one)`
            )
            assert.notInclude(result.stdout, "listening on")
          }),
        (server) => Effect.async<void>((resume) => void server.close(() => resume(Effect.void)))
      ),
    30_000
  )
})
