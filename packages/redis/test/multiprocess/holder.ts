/**
 * A process that holds concurrency slots in the Redis `ConcurrencyStore`, as
 * a client does while its calls run, but with a lease time of its own: the
 * client takes its leases for 30 seconds and has no option to change that,
 * so a test that waits for a killed process's slots to come back takes
 * them here, for a second or two.
 *
 * Its one stdin line is its configuration (JSON, see `Config`). It takes
 * `slots` leases under `key`, prints `{"_tag":"Holding","leases":[…]}`, and
 * renews them until it is killed: every sixth of their lease time (the
 * client renews every third), so that a stall of this process on a loaded
 * machine does not lose a lease before the test kills it.
 *
 * Started as `node --conditions=@effect-inference/source --import tsx holder.ts`.
 */
import * as Effect from "effect/Effect"
import * as Logger from "effect/Logger"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import * as Sink from "effect/Sink"
import * as Stream from "effect/Stream"
import * as Readline from "node:readline"
import * as RedisStores from "../../src/RedisStores.js"

export interface Config {
  readonly redis: RedisStores.Options & { readonly url: string }
  /** The client's key: `concurrency <baseUrl> <project>`. */
  readonly key: string
  readonly limit: number
  readonly slots: number
  readonly leaseMillis: number
}

export interface Holding {
  readonly _tag: "Holding"
  readonly leases: ReadonlyArray<string>
}

const hold = (config: Config) =>
  Effect.gen(function*() {
    const { concurrency } = yield* RedisStores.make({ ...config.redis, onUnavailable: "fail" })
    const leases = Array.from({ length: config.slots }, (_, i) => `holder-${process.pid}-${i}`)
    for (const leaseId of leases) {
      const taken = yield* concurrency.tryAcquire({
        key: config.key,
        leaseId,
        limit: config.limit,
        leaseMillis: config.leaseMillis
      })
      if (!taken) return yield* Effect.dieMessage(`holder: slot ${leaseId} was refused`)
    }
    const holding: Holding = { _tag: "Holding", leases }
    yield* Effect.sync(() => process.stdout.write(`${JSON.stringify(holding)}\n`))
    yield* Effect.forEach(
      leases,
      (leaseId) => concurrency.renew({ key: config.key, leaseId, leaseMillis: config.leaseMillis }),
      { discard: true }
    ).pipe(Effect.repeat(Schedule.spaced(config.leaseMillis / 6)))
  })

const program = Effect.gen(function*() {
  const lines = Stream.fromAsyncIterable(
    Readline.createInterface({ input: process.stdin, crlfDelay: Infinity }),
    (error) => new Error(`stdin: ${String(error)}`)
  )
  const first = yield* Stream.run(lines, Sink.head())
  if (Option.isNone(first)) return
  yield* hold(JSON.parse(first.value) as Config)
}).pipe(
  Effect.scoped,
  Effect.provide(Logger.replace(Logger.defaultLogger, Logger.withConsoleError(Logger.logfmtLogger)))
)

Effect.runPromise(program).then(
  () => process.exit(0),
  (error) => {
    process.stderr.write(`holder failed: ${String(error)}\n`)
    process.exit(1)
  }
)
