/**
 * What every script shares: how numbers cross between JavaScript and Lua, and
 * how a script reads the time.
 *
 * The scripts mirror the client's pure cores step for step, so their
 * arithmetic must give the same doubles. Lua's numbers are the same IEEE
 * doubles as JavaScript's, and `+ - * /`, `math.floor`, `math.min` and
 * `math.max` on finite numbers round the same way; what can differ is only the
 * text in between. Redis turns a Lua number into text with `%.14g` (it loses
 * the last digits), so every number a script stores or returns goes through
 * `str` (`%.17g`, which round-trips every double), and every number it reads
 * through `num`. The values JavaScript allows and `%.17g` does not spell the
 * same way (`NaN`, `Infinity`, `-0`) have a spelling of their own both sides
 * agree on, so that an input the core would count as nothing, or refuse, is
 * counted or refused here the same way.
 */

import * as Effect from "effect/Effect"
import { RedisError } from "./connection.js"

/**
 * The Lua helpers every script begins with.
 *
 * - `num(s)`, `str(x)`: a number from and to the text both sides agree on.
 * - `now_ms(arg)`: the time in epoch milliseconds: the server's (`TIME`) when
 *   `arg` is empty, as it always is outside the tests, which pass a time to
 *   compare a script with the memory store at the same instants.
 * - `extend(key, ttl)`: makes `key` live at least `ttl` milliseconds more,
 *   plus a minute, and never less than it already would (several limits of
 *   different lengths may share a key). An expiry only collects what nobody
 *   uses: every script drops what expired by the time it reads, so no
 *   decision depends on when a key goes, and the minute spares a key whose
 *   server's clock steps, or whose last call is late, from going too soon.
 */
export const prelude = `
if redis.replicate_commands then redis.replicate_commands() end
local function num(s)
  if s == 'nan' then return 0 / 0 end
  if s == 'inf' then return math.huge end
  if s == '-inf' then return -math.huge end
  return tonumber(s)
end
local function str(x)
  if x ~= x then return 'nan' end
  if x == math.huge then return 'inf' end
  if x == -math.huge then return '-inf' end
  return string.format('%.17g', x)
end
local function now_ms(arg)
  if arg ~= '' then return num(arg) end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function extend(key, ttl)
  if not (ttl >= 0) then return end
  ttl = math.ceil(ttl) + 60000
  local current = redis.call('PTTL', key)
  if current == -2 then return end
  if current < ttl then redis.call('PEXPIRE', key, str(ttl)) end
end
`

/**
 * A number as a script reads it (see `num` above).
 *
 * @internal
 */
export const encode = (n: number): string => {
  if (Number.isNaN(n)) return "nan"
  if (n === Infinity) return "inf"
  if (n === -Infinity) return "-inf"
  if (Object.is(n, -0)) return "-0"
  return String(n)
}

/**
 * An optional number: the empty string for `undefined`, which the scripts read
 * as "no limit" or "no period".
 *
 * @internal
 */
export const encodeOptional = (n: number | undefined): string => n === undefined ? "" : encode(n)

/**
 * A number a script wrote with `str`, or an integer reply.
 *
 * @internal
 */
export const decode = (reply: unknown): number => {
  if (typeof reply === "number") return reply
  if (reply === "nan" || reply === "-nan") return NaN
  if (reply === "inf") return Infinity
  if (reply === "-inf") return -Infinity
  return Number(reply)
}

/**
 * A script's reply as the array of texts it returns; anything else (which no
 * script of this package returns) is an error, not a guess.
 *
 * @internal
 */
export const texts = (reply: unknown): Effect.Effect<ReadonlyArray<string>, RedisError> =>
  Array.isArray(reply) && reply.every((item): item is string => typeof item === "string")
    ? Effect.succeed(reply)
    : unexpected(reply)

/**
 * A reply no script of this package gives.
 *
 * @internal
 */
export const unexpected = (reply: unknown): Effect.Effect<never, RedisError> =>
  Effect.fail(new RedisError({ reason: "refused", detail: `unexpected reply from a script: ${JSON.stringify(reply)}` }))
