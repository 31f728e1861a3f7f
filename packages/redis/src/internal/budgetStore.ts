/**
 * Budgets on Redis, one Lua script per operation, each the client's `budget`
 * step (`reserve`, `settle`, `status`, each after `roll`) written again in Lua
 * over two keys:
 *
 * - `budget:<key>`, a hash: when the periods count from (`origin`), the
 *   current period (`period`), the next hold id (`nextId`), per dimension
 *   what is spent, held and which thresholds fired (`usd.spent`,
 *   `usd.reserved`, `usd.fired`, and the same for `tokens`), and each hold's
 *   amounts (`hold:<id>`, `"<usd> <tokens>"`);
 * - `budget-holds:<key>`, a sorted set: each hold id, scored by when the store
 *   gives it back if it is never settled.
 *
 * The budget outlives the processes: it stays until the end of the period
 * after the current one (so a budget idle for less than a period keeps its
 * periods' start), and as long as a hold lasts; a budget without a period is
 * kept without an expiry, as expiring it would give its whole limit back.
 *
 * What the core does not have: a hold not settled within `holdMillis` (far
 * above the longest call: its process died, or its settlement failed) is
 * given back as its settlement would give it back, spending nothing.
 */
import type * as BudgetStore from "@effect-inference/client/BudgetStore"
import type * as UsageTracker from "@effect-inference/client/UsageTracker"
import * as Effect from "effect/Effect"
import type { Connection, RedisError, Script } from "./connection.js"
import * as Lua from "./lua.js"

type Options<K extends keyof BudgetStore.BudgetStore.Service> = Parameters<BudgetStore.BudgetStore.Service[K]>[0]

/** The same operations as `BudgetStore.Service`, failing with what Redis said. */
export interface RedisBudgetStore {
  readonly reserve: (options: Options<"reserve">) => Effect.Effect<BudgetStore.Reserve, RedisError>
  readonly settle: (
    options: Options<"settle">
  ) => Effect.Effect<ReadonlyArray<BudgetStore.ThresholdCrossed>, RedisError>
  readonly status: (options: Options<"status">) => Effect.Effect<ReadonlyArray<UsageTracker.BudgetStatus>, RedisError>
}

/** The store's names in its keys. */
export const NAMES = { state: "budget", holds: "budget-holds" } as const

/**
 * KEYS: state, holds. ARGV[1]: the time ('' for the server's); [2], [3]: the
 * usd and tokens limits ('' without one); [4]: the period ('' without one);
 * [5]: the origin for a new budget; [6]: the thresholds, space-separated;
 * [7]: how long a hold lives.
 */
const common = `
local state, holds = KEYS[1], KEYS[2]
local now = now_ms(ARGV[1])
local limits = {}
if ARGV[2] ~= '' then limits[#limits + 1] = { name = 'usd', limit = num(ARGV[2]) } end
if ARGV[3] ~= '' then limits[#limits + 1] = { name = 'tokens', limit = num(ARGV[3]) } end
local period_millis = nil
if ARGV[4] ~= '' then period_millis = num(ARGV[4]) end
local thresholds = {}
for t in string.gmatch(ARGV[6], '%S+') do thresholds[#thresholds + 1] = num(t) end
local hold_millis = num(ARGV[7])
local EPSILON = 1e-9
local MAX_VALUE = 1.7976931348623157e308

local function numbers(text)
  local list = {}
  if text then for t in string.gmatch(text, '%S+') do list[#list + 1] = num(t) end end
  return list
end
local function texts(list)
  local out = {}
  for i = 1, #list do out[i] = str(list[i]) end
  return table.concat(out, ' ')
end

-- The budget as kept, or budget.initial(origin).
local b
local kept = redis.call('HMGET', state, 'origin', 'period', 'nextId',
  'usd.spent', 'usd.reserved', 'usd.fired', 'tokens.spent', 'tokens.reserved', 'tokens.fired')
if kept[1] then
  b = {
    origin = num(kept[1]), period = num(kept[2]), nextId = num(kept[3]),
    usd = { spent = num(kept[4]), reserved = num(kept[5]), fired = numbers(kept[6]) },
    tokens = { spent = num(kept[7]), reserved = num(kept[8]), fired = numbers(kept[9]) }
  }
else
  b = {
    origin = num(ARGV[5]), period = 0, nextId = 1,
    usd = { spent = 0, reserved = 0, fired = {} },
    tokens = { spent = 0, reserved = 0, fired = {} }
  }
end

-- budget.roll: a later period starts spending from 0 and arms the thresholds again; holds stay.
local function roll()
  if not period_millis then return end
  local period = math.floor((now - b.origin) / period_millis)
  if not (period > b.period) then return end
  b.period = period
  b.usd = { spent = 0, reserved = b.usd.reserved, fired = {} }
  b.tokens = { spent = 0, reserved = b.tokens.reserved, fired = {} }
end

local function period_start()
  if not period_millis then return b.origin end
  return b.origin + b.period * period_millis
end

local function period_end()
  if not period_millis then return nil end
  return period_start() + period_millis
end

-- Takes hold id out; its amounts, or nil if it is not held.
local function take_hold(id)
  redis.call('ZREM', holds, id)
  local hold = redis.call('HGET', state, 'hold:' .. id)
  if not hold then return nil end
  redis.call('HDEL', state, 'hold:' .. id)
  local amounts = numbers(hold)
  return { usd = amounts[1], tokens = amounts[2] }
end

-- budget.settle's giving back: with no hold left, nothing stays reserved.
local function give_back(account, amount)
  local left = account.reserved - amount
  if redis.call('ZCARD', holds) == 0 or not (left > 0) then return 0 end
  return left
end

-- Holds never settled (a process that died) are given back after hold_millis.
local function end_abandoned()
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', holds, '-inf', str(now))) do
    local hold = take_hold(id)
    if hold then
      for _, d in ipairs(limits) do b[d.name].reserved = give_back(b[d.name], hold[d.name]) end
    end
  end
end

local function save()
  redis.call('HSET', state, 'origin', str(b.origin), 'period', str(b.period), 'nextId', str(b.nextId),
    'usd.spent', str(b.usd.spent), 'usd.reserved', str(b.usd.reserved), 'usd.fired', texts(b.usd.fired),
    'tokens.spent', str(b.tokens.spent), 'tokens.reserved', str(b.tokens.reserved),
    'tokens.fired', texts(b.tokens.fired))
  local ttl = 0
  local latest = redis.call('ZRANGE', holds, -1, -1, 'WITHSCORES')
  if latest[2] then ttl = num(latest[2]) - now end
  if period_millis then
    extend(state, math.max(ttl, period_end() + period_millis - now))
  else
    redis.call('PERSIST', state)
  end
  extend(holds, ttl)
end

end_abandoned()
roll()
`

/** ARGV[8], [9]: the amount in usd and tokens. Replies `{ 'Held', id }` or `{ 'Exceeded', dimension, spent, reserved, resetsInMillis or '' }`. */
const reserve: Script = {
  name: "effectInferenceBudgetReserve",
  keys: 2,
  lua: `${Lua.prelude}${common}
local amount = { usd = num(ARGV[8]), tokens = num(ARGV[9]) }
for _, d in ipairs(limits) do
  local account, requested = b[d.name], amount[d.name]
  if not (requested >= 0 and account.spent + account.reserved + requested <= d.limit * (1 + EPSILON)) then
    save()
    local ends = period_end()
    local resets = ''
    if ends then resets = str(ends - now) end
    return { 'Exceeded', d.name, str(account.spent), str(account.reserved), resets }
  end
end
local id = b.nextId
redis.call('HSET', state, 'hold:' .. str(id), str(amount.usd) .. ' ' .. str(amount.tokens))
redis.call('ZADD', holds, str(now + hold_millis), str(id))
b.nextId = id + 1
for _, d in ipairs(limits) do b[d.name].reserved = b[d.name].reserved + amount[d.name] end
save()
return { 'Held', str(id) }
`
}

/**
 * ARGV[8]: the hold id ('' for none); [9], [10]: what was used, in usd and
 * tokens. Replies `{ periodStart, dimension, threshold, spent, ... }`, one
 * triple per threshold crossed.
 */
const settle: Script = {
  name: "effectInferenceBudgetSettle",
  keys: 2,
  lua: `${Lua.prelude}${common}
local hold = nil
if ARGV[8] ~= '' then hold = take_hold(ARGV[8]) end
local used = { usd = num(ARGV[9]), tokens = num(ARGV[10]) }
local reply = { str(period_start()) }
for _, d in ipairs(limits) do
  local account = b[d.name]
  local reserved = account.reserved
  if hold then reserved = give_back(account, hold[d.name]) end
  local addable = 0
  if used[d.name] > 0 then addable = math.min(used[d.name], MAX_VALUE) end
  local spent = math.min(account.spent + addable, MAX_VALUE)
  local fired = account.fired
  for _, threshold in ipairs(thresholds) do
    local already = false
    for _, f in ipairs(fired) do if f == threshold then already = true end end
    if spent >= threshold * d.limit * (1 - EPSILON) and not already then
      fired[#fired + 1] = threshold
      reply[#reply + 1] = d.name
      reply[#reply + 1] = str(threshold)
      reply[#reply + 1] = str(spent)
    end
  end
  b[d.name] = { spent = spent, reserved = reserved, fired = fired }
end
save()
return reply
`
}

/** Replies `{ periodStart, periodEnd or '', usd spent, usd reserved, tokens spent, tokens reserved }`. */
const status: Script = {
  name: "effectInferenceBudgetStatus",
  keys: 2,
  lua: `${Lua.prelude}${common}
save()
local ends = period_end()
local period_end_text = ''
if ends then period_end_text = str(ends) end
return { str(period_start()), period_end_text, str(b.usd.spent), str(b.usd.reserved), str(b.tokens.spent),
  str(b.tokens.reserved) }
`
}

const isDimension = (text: string | undefined): text is "usd" | "tokens" => text === "usd" || text === "tokens"

const optional = (text: string | undefined): number | undefined =>
  text === undefined || text === "" ? undefined : Lua.decode(text)

/** The thresholds each with its own spelling, space-separated. */
const thresholds = (limits: BudgetStore.Limits): string => limits.thresholds.map(Lua.encode).join(" ")

/**
 * The store on `connection`; `now` is the time to pass the scripts, `""` for
 * the server's (the tests pass the time they compare the memory store at).
 */
export const make = (
  connection: Connection,
  now: Effect.Effect<string>,
  settings: { readonly holdMillis: number }
): RedisBudgetStore => {
  const run = (script: Script, key: string, limits: BudgetStore.Limits, args: ReadonlyArray<string>) =>
    Effect.flatMap(now, (time) =>
      connection.run(
        script,
        [connection.key(NAMES.state, key), connection.key(NAMES.holds, key)],
        [
          time,
          Lua.encodeOptional(limits.usd),
          Lua.encodeOptional(limits.tokens),
          Lua.encodeOptional(limits.periodMillis),
          Lua.encode(limits.origin),
          thresholds(limits),
          Lua.encode(settings.holdMillis),
          ...args
        ]
      ).pipe(Effect.flatMap(Lua.texts)))

  const limitOf = (limits: BudgetStore.Limits, dimension: "usd" | "tokens"): number => limits[dimension] ?? NaN

  return {
    reserve: ({ amount, key, limits }) =>
      Effect.flatMap(
        run(reserve, key, limits, [Lua.encode(amount.usd), Lua.encode(amount.tokens)]),
        (reply): Effect.Effect<BudgetStore.Reserve, RedisError> => {
          const [tag, first, spent, reserved, resets] = reply
          if (tag === "Held") return Effect.succeed({ _tag: "Held", id: Lua.decode(first) })
          if (tag !== "Exceeded" || !isDimension(first)) return Lua.unexpected(reply)
          return Effect.succeed({
            _tag: "Exceeded",
            dimension: first,
            limit: limitOf(limits, first),
            spent: Lua.decode(spent),
            reserved: Lua.decode(reserved),
            requested: amount[first],
            resetsInMillis: optional(resets)
          })
        }
      ),
    settle: ({ id, key, limits, used }) =>
      Effect.flatMap(
        run(settle, key, limits, [Lua.encodeOptional(id), Lua.encode(used.usd), Lua.encode(used.tokens)]),
        (reply): Effect.Effect<ReadonlyArray<BudgetStore.ThresholdCrossed>, RedisError> => {
          if (reply.length === 0 || (reply.length - 1) % 3 !== 0) return Lua.unexpected(reply)
          const periodStart = Lua.decode(reply[0])
          const crossed: Array<BudgetStore.ThresholdCrossed> = []
          for (let i = 1; i < reply.length; i += 3) {
            const dimension = reply[i]
            if (!isDimension(dimension)) return Lua.unexpected(reply)
            crossed.push({
              dimension,
              threshold: Lua.decode(reply[i + 1]),
              spent: Lua.decode(reply[i + 2]),
              limit: limitOf(limits, dimension),
              periodStart
            })
          }
          return Effect.succeed(crossed)
        }
      ),
    status: ({ key, limits }) =>
      Effect.flatMap(
        run(status, key, limits, []),
        (reply): Effect.Effect<ReadonlyArray<UsageTracker.BudgetStatus>, RedisError> => {
          if (reply.length !== 6) return Lua.unexpected(reply)
          const [start, end, usdSpent, usdReserved, tokensSpent, tokensReserved] = reply
          const figures = {
            usd: [Lua.decode(usdSpent), Lua.decode(usdReserved)],
            tokens: [Lua.decode(tokensSpent), Lua.decode(tokensReserved)]
          } as const
          const periodStart = Lua.decode(start)
          const periodEnd = optional(end)
          return Effect.succeed((["usd", "tokens"] as const).flatMap((dimension) => {
            const limit = limits[dimension]
            if (limit === undefined) return []
            const [spent, reserved] = figures[dimension]
            return [{
              dimension,
              limit,
              spent,
              reserved,
              remaining: Math.max(0, limit - spent - reserved),
              periodStart,
              periodEnd
            }]
          }))
        }
      )
  }
}
