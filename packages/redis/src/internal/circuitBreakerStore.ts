/**
 * Breakers' state on Redis: one hash per breaker key, `circuit-breaker:<key>`,
 * with the state as JSON (`state`, encoded with the client's `BreakerState`
 * schema) and its version (`version`). `compareAndSet` is one Lua script that
 * reads the version, compares and writes; `get` is one too, as it also keeps
 * the entry alive.
 *
 * An entry lives `entryMillis` after it was last read or written: a breaker
 * in use is read at every call, so only the entries of breakers nobody uses
 * expire (an entry forgotten hands out versions from 0 again, which the
 * contract allows only for breakers no longer in use).
 */
import * as CircuitBreakerStore from "@effect-inference/client/CircuitBreakerStore"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import { type Connection, RedisError, type Script } from "./connection.js"
import * as Lua from "./lua.js"

/** The same operations as `CircuitBreakerStore.Service`, failing with what Redis said. */
export interface RedisCircuitBreakerStore {
  readonly get: (key: string) => Effect.Effect<Option.Option<CircuitBreakerStore.Entry>, RedisError>
  readonly compareAndSet: (
    key: string,
    expectedVersion: number,
    state: CircuitBreakerStore.BreakerState
  ) => Effect.Effect<boolean, RedisError>
}

/** The store's name in its keys. */
export const NAME = "circuit-breaker"

/** KEYS[1]: the entry. ARGV[1]: how long it lives. Replies `{ version, state }`, or an empty array. */
const get: Script = {
  name: "effectInferenceCircuitBreakerGet",
  keys: 1,
  lua: `
local entry = redis.call('HMGET', KEYS[1], 'version', 'state')
if not entry[1] or not entry[2] then return {} end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return entry
`
}

/** KEYS[1]: the entry. ARGV[1]: the version expected, [2]: the state, [3]: how long it lives. 1: written. */
const compareAndSet: Script = {
  name: "effectInferenceCircuitBreakerCompareAndSet",
  keys: 1,
  lua: `
local version = tonumber(redis.call('HGET', KEYS[1], 'version') or '0')
if version ~= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'version', string.format('%d', version + 1), 'state', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
`
}

const encodeState = Schema.encode(Schema.parseJson(CircuitBreakerStore.BreakerState))
const decodeState = Schema.decodeUnknown(Schema.parseJson(CircuitBreakerStore.BreakerState))

/** The store on `connection`. */
export const make = (
  connection: Connection,
  settings: { readonly entryMillis: number }
): RedisCircuitBreakerStore => {
  const ttl = Lua.encode(settings.entryMillis)
  return {
    get: (key) =>
      connection.run(get, [connection.key(NAME, key)], [ttl]).pipe(
        Effect.flatMap(Lua.texts),
        Effect.flatMap((reply) => {
          if (reply.length === 0) return Effect.succeed(Option.none())
          const [version, state] = reply
          return decodeState(state).pipe(
            Effect.map((decoded) => Option.some({ version: Lua.decode(version), state: decoded })),
            Effect.mapError(() =>
              new RedisError({ reason: "refused", detail: `the entry under "${key}" is not a breaker's state` })
            )
          )
        })
      ),
    compareAndSet: (key, expectedVersion, state) =>
      encodeState(state).pipe(
        Effect.mapError(() =>
          new RedisError({ reason: "refused", detail: `the state for "${key}" is not a breaker's state` })
        ),
        Effect.flatMap((json) =>
          connection.run(compareAndSet, [connection.key(NAME, key)], [Lua.encode(expectedVersion), json, ttl])
        ),
        Effect.map((reply) => reply === 1)
      )
  }
}
