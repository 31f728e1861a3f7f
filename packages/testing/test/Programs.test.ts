/**
 * The package's program, run as a user runs it: the standalone simulator
 * (`pnpm simulator`), in its own process. The demo (`pnpm demo`), which uses
 * every package, is in packages/cli/examples, and its test beside it.
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
