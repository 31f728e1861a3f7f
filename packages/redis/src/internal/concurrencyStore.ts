/**
 * Concurrency slots on Redis: the leases of a key in one sorted set (member:
 * the lease id, score: when it expires, in epoch milliseconds on the server's
 * clock), and one Lua script per operation, each the client's
 * `concurrencyCore` step: drop the leases expired at or before now
 * (`ZREMRANGEBYSCORE`), then act.
 *
 * The set lives as long as its latest lease, and a minute (see `extend` in
 * `lua.ts`): the slots of a process that died go, and so does their key.
 */
import type * as ConcurrencyStore from "@effect-inference/client/ConcurrencyStore"
import * as Effect from "effect/Effect"
import type { Connection, RedisError, Script } from "./connection.js"
import * as Lua from "./lua.js"

type Options<K extends keyof ConcurrencyStore.ConcurrencyStore.Service> = Parameters<
  ConcurrencyStore.ConcurrencyStore.Service[K]
>[0]

/** The same operations as `ConcurrencyStore.Service`, failing with what Redis said. */
export interface RedisConcurrencyStore {
  readonly tryAcquire: (options: Options<"tryAcquire">) => Effect.Effect<boolean, RedisError>
  readonly renew: (options: Options<"renew">) => Effect.Effect<boolean, RedisError>
  readonly release: (options: Options<"release">) => Effect.Effect<void, RedisError>
  readonly held: (key: string) => Effect.Effect<number, RedisError>
}

/** The store's name in its keys. */
export const NAME = "concurrency"

/** KEYS[1]: the leases. ARGV[1]: the time ('' for the server's). */
const expired = `
local leases = KEYS[1]
local now = now_ms(ARGV[1])
redis.call('ZREMRANGEBYSCORE', leases, '-inf', str(now))
local function keep_until_last()
  local last = redis.call('ZRANGE', leases, -1, -1, 'WITHSCORES')
  if last[2] then extend(leases, num(last[2]) - now) end
end
`

/** ARGV[2]: lease id, ARGV[3]: limit, ARGV[4]: lease millis. 1: held, 0: refused. */
const tryAcquire: Script = {
  name: "effectInferenceConcurrencyTryAcquire",
  keys: 1,
  lua: `${Lua.prelude}${expired}
local id, limit, lease = ARGV[2], num(ARGV[3]), num(ARGV[4])
if not redis.call('ZSCORE', leases, id) and redis.call('ZCARD', leases) >= limit then return 0 end
redis.call('ZADD', leases, str(now + lease), id)
keep_until_last()
return 1
`
}

/** ARGV[2]: lease id, ARGV[3]: lease millis. 1: renewed, 0: the lease had expired. */
const renew: Script = {
  name: "effectInferenceConcurrencyRenew",
  keys: 1,
  lua: `${Lua.prelude}${expired}
local id, lease = ARGV[2], num(ARGV[3])
if not redis.call('ZSCORE', leases, id) then return 0 end
redis.call('ZADD', leases, str(now + lease), id)
keep_until_last()
return 1
`
}

/** ARGV[2]: lease id. */
const release: Script = {
  name: "effectInferenceConcurrencyRelease",
  keys: 1,
  lua: `${Lua.prelude}${expired}
redis.call('ZREM', leases, ARGV[2])
return 0
`
}

/** The number of live leases. */
const held: Script = {
  name: "effectInferenceConcurrencyHeld",
  keys: 1,
  lua: `${Lua.prelude}${expired}
return redis.call('ZCARD', leases)
`
}

/**
 * The store on `connection`; `now` is the time to pass the scripts, `""` for
 * the server's (the tests pass the time they compare the memory store at).
 */
export const make = (connection: Connection, now: Effect.Effect<string>): RedisConcurrencyStore => {
  const run = (script: Script, key: string, args: ReadonlyArray<string>) =>
    Effect.flatMap(now, (time) => connection.run(script, [connection.key(NAME, key)], [time, ...args]))
  return {
    tryAcquire: ({ key, leaseId, leaseMillis, limit }) =>
      Effect.map(run(tryAcquire, key, [leaseId, Lua.encode(limit), Lua.encode(leaseMillis)]), (reply) => reply === 1),
    renew: ({ key, leaseId, leaseMillis }) =>
      Effect.map(run(renew, key, [leaseId, Lua.encode(leaseMillis)]), (reply) => reply === 1),
    release: ({ key, leaseId }) => Effect.asVoid(run(release, key, [leaseId])),
    held: (key) => Effect.map(run(held, key, []), Lua.decode)
  }
}
