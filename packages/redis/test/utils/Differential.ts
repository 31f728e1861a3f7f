/**
 * Comparing a Redis store with the client's memory store, the contract's
 * reference, decision by decision: both are given the same operations at the
 * same times (a `FakeTime`, which the memory store reads as its `Clock` and
 * the scripts are given as their `now`), and must answer the same.
 */
import { assert } from "@effect/vitest"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as RedisBudget from "../../src/internal/budgetStore.js"
import * as RedisConcurrency from "../../src/internal/concurrencyStore.js"
import * as Connection from "../../src/internal/connection.js"
import * as Lua from "../../src/internal/lua.js"
import * as RedisRateLimit from "../../src/internal/rateLimitStore.js"
import { layer as serverLayer, Server } from "./RedisServer.js"
import { uniquePrefix } from "./Stores.js"

/**
 * A clock whose time moves only when a test says so. Cheaper than a
 * `TestClock` here: nothing sleeps on it (its `sleep` is the live clock's,
 * for the connection's timeouts).
 */
export interface FakeTime {
  now: number
  readonly clock: Clock.Clock
}

const live = Clock.make()

export const fakeTime = (start = 0): FakeTime => {
  const time: { now: number; clock?: Clock.Clock } = { now: start }
  const clock: Clock.Clock = {
    [Clock.ClockTypeId]: Clock.ClockTypeId,
    unsafeCurrentTimeMillis: () => time.now,
    currentTimeMillis: Effect.sync(() => time.now),
    unsafeCurrentTimeNanos: () => BigInt(time.now) * 1_000_000n,
    currentTimeNanos: Effect.sync(() => BigInt(time.now) * 1_000_000n),
    sleep: (duration) => live.sleep(duration)
  }
  return Object.assign(time, { clock })
}

/** Runs both, and asserts that they answered the same. */
export const same = <A>(
  label: string,
  onRedis: Effect.Effect<A, unknown>,
  inMemory: Effect.Effect<A, unknown>
): Effect.Effect<void, unknown> =>
  Effect.flatMap(
    Effect.all([onRedis, inMemory]),
    ([a, b]) => Effect.sync(() => assert.deepStrictEqual(a, b, label))
  )

/**
 * The Redis stores as scripts on a connection, before the routing to memory:
 * their scripts take the time from the `Clock` of the fiber that runs each
 * operation instead of the server's. Under a `FakeTime` that is the time the
 * memory stores read too, so that the two can be compared decision by
 * decision. One connection for a whole `describe` block: each property run
 * uses keys of its own (`runKeys`). No reservation or hold is ever abandoned.
 */
export interface Scripts {
  readonly concurrency: RedisConcurrency.RedisConcurrencyStore
  readonly rateLimit: RedisRateLimit.RedisRateLimitStore
  readonly budget: RedisBudget.RedisBudgetStore
}

export class OnClock extends Context.Tag("test/OnClock")<OnClock, Scripts>() {}

export const layer: Layer.Layer<OnClock | Server> = Layer.scoped(
  OnClock,
  Effect.gen(function*() {
    const server = yield* Server
    const connection = yield* Connection.make({
      url: Redacted.make(server.url),
      keyPrefix: uniquePrefix(),
      timeout: Duration.seconds(5)
    })
    yield* Effect.orDie(connection.ready)
    const now = Effect.map(Clock.currentTimeMillis, Lua.encode)
    const holdMillis = Duration.toMillis(Duration.days(1000))
    return {
      concurrency: RedisConcurrency.make(connection, now),
      rateLimit: RedisRateLimit.make(connection, now, { holdMillis, pollMillis: 100 }),
      budget: RedisBudget.make(connection, now, { holdMillis })
    }
  })
).pipe(Layer.provideMerge(serverLayer()))

let runs = 0

/** Keys for one property run: `key` made unique to it. */
export const runKeys = (): (key: string) => string => {
  const run = ++runs
  return (key) => `run-${run} ${key}`
}
