/**
 * Waiting in line for one of 64 permits, with nothing else: `ops` operations
 * driven by `Effect.forEach(…, { concurrency: C })`, each holding a permit
 * across one turn of the event loop (as a call holds its slot across I/O), for
 * Effect's `Semaphore`, STM's `TSemaphore` and the client's `Slots`, at C = 64,
 * 256 and 1024. Each run is a process of its own (peak RSS is per process);
 * prints µs of CPU per operation, the waits each operation went through (a
 * thundering herd shows as more than one) and the peak RSS.
 *
 *   tsx src/slots.ts [--ops 10000] [--callers 64,256,1024] [--only semaphore|tsemaphore|slots] [--limit 60]
 *
 * A run that takes more than `--limit` seconds, or dies (out of memory), is
 * stopped and shown as such: the herd makes Effect's Semaphore at 1024 callers
 * run for minutes and exhaust the heap.
 */
import * as Effect from "effect/Effect"
import * as STM from "effect/STM"
import * as TSemaphore from "effect/TSemaphore"
import { spawn } from "node:child_process"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import * as Slots from "../../client/src/internal/slots.js"

const PERMITS = 64
const implementations = ["Effect Semaphore", "STM TSemaphore", "Slots"] as const
type Implementation = typeof implementations[number]

interface Figures {
  readonly implementation: Implementation
  readonly callers: number
  readonly ops: number
  readonly cpuMicrosPerOp: number
  readonly waitsPerOp: number
  readonly peakRssMb: number
  readonly maxHeld: number
}

const option = (name: string): string | undefined => {
  const at = process.argv.indexOf(`--${name}`)
  return at === -1 ? undefined : process.argv[at + 1]
}

/** One turn of the event loop, as an exchange with a server takes at least. */
const io = Effect.promise(() => new Promise<void>((resolve) => setImmediate(resolve)))

/** A gate and a count of the waits entered through it (more than one per operation is a herd). */
interface Gate {
  readonly withPermit: <A, E>(effect: Effect.Effect<A, E>) => Effect.Effect<A, E>
  readonly waits: () => number
}

const semaphoreGate = (): Gate => {
  const semaphore = Effect.unsafeMakeSemaphore(PERMITS)
  // effect 3.22 keeps its waiters in a public `Set`; counting its `add`s counts the waits (first and repeated).
  const internal = semaphore as unknown as { waiters: Set<() => void> }
  let waits = 0
  const waiters = internal.waiters
  const add = waiters.add.bind(waiters)
  waiters.add = (value) => {
    waits++
    return add(value)
  }
  return { withPermit: semaphore.withPermits(1), waits: () => waits }
}

const tsemaphoreGate = (): Gate => {
  const semaphore = Effect.runSync(STM.commit(TSemaphore.make(PERMITS)))
  let waits = 0
  // A transaction that finds no permit retries; each run of it after the first is a wait.
  const acquire = STM.commit(STM.suspend(() => {
    waits++
    return TSemaphore.acquire(semaphore)
  }))
  return {
    withPermit: <A, E>(effect: Effect.Effect<A, E>) =>
      Effect.uninterruptibleMask((restore) =>
        Effect.zipRight(
          Effect.zipRight(restore(acquire), Effect.sync(() => waits--)),
          Effect.ensuring(restore(effect), STM.commit(TSemaphore.release(semaphore)))
        )
      ),
    waits: () => waits
  }
}

const slotsGate = (): Gate => {
  const slots = Slots.unsafeMake(PERMITS)
  let waits = 0
  return {
    withPermit: <A, E>(effect: Effect.Effect<A, E>) =>
      Effect.suspend(() => {
        if (slots.available === 0) waits++
        return slots.withPermit(effect)
      }),
    waits: () => waits
  }
}

const gateOf = (implementation: Implementation): Gate =>
  implementation === "Effect Semaphore"
    ? semaphoreGate()
    : implementation === "STM TSemaphore"
    ? tsemaphoreGate()
    : slotsGate()

const gc = () => (globalThis as { gc?: () => void }).gc?.()

/** One run, in this process. */
const measureOne = (implementation: Implementation, callers: number, ops: number): Promise<Figures> => {
  const gate = gateOf(implementation)
  let held = 0
  let maxHeld = 0
  const op = gate.withPermit(Effect.zipRight(
    Effect.sync(() => {
      held++
      if (held > maxHeld) maxHeld = held
    }),
    Effect.ensuring(
      io,
      Effect.sync(() => {
        held--
      })
    )
  ))
  const drive = (n: number) =>
    Effect.forEach(Array.from({ length: n }), () => op, { concurrency: callers, discard: true })
  return Effect.runPromise(Effect.gen(function*() {
    yield* drive(Math.min(2_000, Math.ceil(ops / 5)))
    gc()
    const waitsBefore = gate.waits()
    const before = process.cpuUsage()
    yield* drive(ops)
    const used = process.cpuUsage(before)
    return {
      implementation,
      callers,
      ops,
      cpuMicrosPerOp: (used.user + used.system) / ops,
      waitsPerOp: (gate.waits() - waitsBefore) / ops,
      peakRssMb: process.resourceUsage().maxRSS / 1024,
      maxHeld
    }
  }))
}

const script = fileURLToPath(import.meta.url)

/** One run in a process of its own: its figures, or why there are none. */
const inChild = (
  implementation: Implementation,
  callers: number,
  ops: number,
  limitSeconds: number
): Promise<Figures | string> =>
  new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      [
        "--conditions=@effect-inference/source",
        "--expose-gc",
        "--import",
        "tsx",
        script,
        "--child",
        implementation,
        String(callers),
        String(ops)
      ],
      { cwd: path.dirname(script), stdio: ["ignore", "pipe", "pipe"] }
    )
    let output = ""
    let errors = ""
    let timedOut = false
    const timer = setTimeout(() => {
      timedOut = true
      child.kill("SIGKILL")
    }, limitSeconds * 1000)
    child.stdout.setEncoding("utf8")
    child.stdout.on("data", (text: string) => {
      output += text
    })
    child.stderr.setEncoding("utf8")
    child.stderr.on("data", (text: string) => {
      errors = (errors + text).slice(-20_000)
    })
    child.on("error", reject)
    child.on("close", (code, signal) => {
      clearTimeout(timer)
      if (timedOut) return resolve(`not done in ${limitSeconds} s`)
      if (code !== 0) {
        return resolve(
          /heap out of memory/.test(errors) ? "out of memory" : `failed (${signal ?? `exit code ${code}`})`
        )
      }
      resolve(JSON.parse(output.trim().split("\n").at(-1) ?? "") as Figures)
    })
  })

const main = async () => {
  const ops = Number(option("ops") ?? 10_000)
  const callers = (option("callers") ?? "64,256,1024").split(",").map(Number)
  const only = option("only")
  const limitSeconds = Number(option("limit") ?? 60)
  const chosen = implementations.filter((name) =>
    only === undefined || only.split(",").some((part) => name.toLowerCase().endsWith(part.toLowerCase()))
  )
  process.stdout.write(
    `${PERMITS} permits, ${ops} operations a run, each holding its permit across one setImmediate\n\n` +
      "| implementation | callers | CPU µs per operation | waits per operation | peak RSS MB | most held at once |\n" +
      "|---|--:|--:|--:|--:|--:|\n"
  )
  for (const c of callers) {
    for (const implementation of chosen) {
      const f = await inChild(implementation, c, ops, limitSeconds)
      if (typeof f === "string") {
        process.stdout.write(`| ${implementation} | ${c} | ${f} | | | |\n`)
        continue
      }
      process.stdout.write(
        `| ${f.implementation} | ${f.callers} | ${f.cpuMicrosPerOp.toFixed(1)} | ${f.waitsPerOp.toFixed(2)} | ${
          f.peakRssMb.toFixed(0)
        } | ${f.maxHeld} |\n`
      )
    }
  }
}

const child = process.argv.indexOf("--child")
if (child === -1) {
  main().catch((error) => {
    process.stderr.write(`slots: ${String(error)}\n`)
    process.exit(1)
  })
} else {
  const [implementation, callers, ops] = process.argv.slice(child + 1)
  measureOne(implementation as Implementation, Number(callers), Number(ops)).then((figures) => {
    process.stdout.write(`${JSON.stringify(figures)}\n`)
    process.exit(0)
  })
}
