/**
 * A rate limiter's windows on Redis, one Lua script per operation, each the
 * client's `rateLimitCore` step (`admit`, `settle`) written again in Lua over
 * four keys:
 *
 * - `rate-limit:<key>`, a hash: the sums of the two logs (`requests.charged`,
 *   `tokens.charged`), the tokens reserved by calls in flight
 *   (`tokens.reserved`), the next reservation id (`nextId`) and each
 *   reservation's tokens (`hold:<id>`);
 * - `rate-limit-requests:<key>` and `rate-limit-tokens:<key>`, lists: each
 *   window's log, oldest first, one entry `"<at> <amount>"` per instant;
 * - `rate-limit-holds:<key>`, a sorted set: each reservation id, scored by
 *   when the store ends it if it is never settled.
 *
 * What the core does not have: a reservation not settled within
 * `holdMillis` (far above the longest call: its process died, or its
 * settlement failed) is given back as a settlement of nothing would give it
 * back. And, as the contract asks of a store shared by several processes, a
 * caller is never told to wait for a settlement alone (`WaitForSettlement`),
 * which it would hear of only from its own process: while reservations stand
 * in the way it is told to ask again after `pollMillis` at most.
 *
 * Every key lives as long as the latest charge counts or reservation is held,
 * and at least one interval.
 */
import type * as RateLimitStore from "@effect-inference/client/RateLimitStore"
import * as Effect from "effect/Effect"
import type { Connection, RedisError, Script } from "./connection.js"
import * as Lua from "./lua.js"

type Options<K extends keyof RateLimitStore.RateLimitStore.Service> = Parameters<
  RateLimitStore.RateLimitStore.Service[K]
>[0]

/** The same operations as `RateLimitStore.Service`, failing with what Redis said. */
export interface RedisRateLimitStore {
  readonly admit: (options: Options<"admit">) => Effect.Effect<RateLimitStore.Admission, RedisError>
  readonly settle: (options: Options<"settle">) => Effect.Effect<void, RedisError>
  /**
   * The core's own decision, before it is adapted to a shared store, and the
   * tokens reserved after it: what the tests compare with the memory store.
   */
  readonly admitExactly: (
    options: Options<"admit">
  ) => Effect.Effect<readonly [RateLimitStore.Admission, number], RedisError>
}

/** The store's names in its keys. */
export const NAMES = {
  state: "rate-limit",
  requests: "rate-limit-requests",
  tokens: "rate-limit-tokens",
  holds: "rate-limit-holds"
} as const

/**
 * KEYS: state, requests log, tokens log, holds. ARGV[1]: the time ('' for the
 * server's); [2], [3]: the requests limit and interval ('' without a limit);
 * [4], [5]: the tokens limit and interval; [6]: how long a reservation lives.
 */
const common = `
local state, holds = KEYS[1], KEYS[4]
local now = now_ms(ARGV[1])
local limits = {}
if ARGV[2] ~= '' then limits.requests = { limit = num(ARGV[2]), interval = num(ARGV[3]) } end
if ARGV[4] ~= '' then limits.tokens = { limit = num(ARGV[4]), interval = num(ARGV[5]) } end
local hold_millis = num(ARGV[6])
local BATCH = 100

local function field(name, default)
  local value = redis.call('HGET', state, name)
  if value then return num(value) end
  return default
end

-- A window: its log's key, the sum of the log, what calls in flight reserved (always 0 for requests).
local windows = {
  requests = { log = KEYS[2], charged = field('requests.charged', 0), reserved = 0 },
  tokens = { log = KEYS[3], charged = field('tokens.charged', 0), reserved = field('tokens.reserved', 0) }
}

local function entry(text)
  local space = string.find(text, ' ', 1, true)
  return num(string.sub(text, 1, space - 1)), num(string.sub(text, space + 1))
end

-- rateLimitCore.bounded
local function bounded(amount, limit)
  if amount > 0 then return math.min(amount, limit) end
  return 0
end

-- rateLimitCore.expire: drops the charges that expired by now, oldest first; an empty log has nothing charged.
local function expire(w, limit)
  local start, charged = 0, w.charged
  while true do
    local entries = redis.call('LRANGE', w.log, start, start + BATCH - 1)
    local stopped = false
    for i = 1, #entries do
      local at, amount = entry(entries[i])
      if not (at + limit.interval <= now) then
        stopped = true
        break
      end
      charged = charged - amount
      start = start + 1
    end
    if stopped or #entries < BATCH then break end
  end
  if start == 0 then return end
  if start == redis.call('LLEN', w.log) then
    redis.call('DEL', w.log)
    w.charged = 0
  else
    redis.call('LTRIM', w.log, start, -1)
    w.charged = charged
  end
end

-- rateLimitCore.fitsAt: now, when enough of the oldest charges will have expired, or math.huge.
local function fits_at(w, amount, limit)
  local used = w.reserved + w.charged
  if used + amount <= limit.limit then return now end
  local start = 0
  while true do
    local entries = redis.call('LRANGE', w.log, start, start + BATCH - 1)
    for i = 1, #entries do
      local at, charge = entry(entries[i])
      used = used - charge
      if used + amount <= limit.limit then return at + limit.interval end
    end
    if #entries < BATCH then return math.huge end
    start = start + BATCH
  end
end

-- rateLimitCore.charge: a charge made at or before the newest one is added to it.
local function charge(w, amount, limit)
  local charged = bounded(amount, limit.limit)
  if charged == 0 then return end
  local last = redis.call('LINDEX', w.log, -1)
  if last then
    local at, previous = entry(last)
    if at >= now then
      redis.call('LSET', w.log, -1, str(at) .. ' ' .. str(previous + charged))
      w.charged = w.charged + charged
      return
    end
  end
  redis.call('RPUSH', w.log, str(now) .. ' ' .. str(charged))
  w.charged = w.charged + charged
end

-- rateLimitCore.settle's giving back of reservation id (with a tokens limit); false if it is not held.
local function give_back(id)
  redis.call('ZREM', holds, id)
  local hold = redis.call('HGET', state, 'hold:' .. id)
  if not hold then return false end
  redis.call('HDEL', state, 'hold:' .. id)
  local tokens = windows.tokens
  expire(tokens, limits.tokens)
  local left = tokens.reserved - num(hold)
  if redis.call('ZCARD', holds) == 0 or not (left > 0) then tokens.reserved = 0 else tokens.reserved = left end
  return true
end

-- Reservations never settled (a process that died) are given back after hold_millis.
local function end_abandoned()
  if not limits.tokens then return end
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', holds, '-inf', str(now))) do give_back(id) end
end

local function save()
  redis.call('HSET', state, 'requests.charged', str(windows.requests.charged),
    'tokens.charged', str(windows.tokens.charged), 'tokens.reserved', str(windows.tokens.reserved))
  local ttl = 0
  for name, limit in pairs(limits) do
    ttl = math.max(ttl, limit.interval)
    local last = redis.call('LINDEX', windows[name].log, -1)
    if last then ttl = math.max(ttl, entry(last) + limit.interval - now) end
  end
  local latest = redis.call('ZRANGE', holds, -1, -1, 'WITHSCORES')
  if latest[2] then ttl = math.max(ttl, num(latest[2]) - now) end
  for _, key in ipairs(KEYS) do extend(key, ttl) end
end
`

/**
 * ARGV[7]: the call's tokens. Replies `{ tag, id or millis, tokens reserved }`
 * (`Admitted`, `Wait` or `WaitForSettlement`).
 */
const admit: Script = {
  name: "effectInferenceRateLimitAdmit",
  keys: 4,
  lua: `${Lua.prelude}${common}
end_abandoned()
local requests, tokens = windows.requests, windows.tokens
if limits.requests then expire(requests, limits.requests) end
if limits.tokens then expire(tokens, limits.tokens) end
local amount = 0
if limits.tokens then amount = bounded(num(ARGV[7]), limits.tokens.limit) end
local at = now
if limits.requests then at = math.max(at, fits_at(requests, 1, limits.requests)) end
if limits.tokens then at = math.max(at, fits_at(tokens, amount, limits.tokens)) end
if at <= now then
  local id = field('nextId', 1)
  if limits.requests then charge(requests, 1, limits.requests) end
  tokens.reserved = tokens.reserved + amount
  if limits.tokens then
    redis.call('HSET', state, 'hold:' .. str(id), str(amount))
    redis.call('ZADD', holds, str(now + hold_millis), str(id))
  end
  redis.call('HSET', state, 'nextId', str(id + 1))
  save()
  return { 'Admitted', str(id), str(tokens.reserved) }
end
save()
if at == math.huge then return { 'WaitForSettlement', '', str(tokens.reserved) } end
return { 'Wait', str(at - now), str(tokens.reserved) }
`
}

/** ARGV[7]: the reservation id, [8]: the tokens used. */
const settle: Script = {
  name: "effectInferenceRateLimitSettle",
  keys: 4,
  lua: `${Lua.prelude}${common}
if not limits.tokens then return 0 end
end_abandoned()
if give_back(ARGV[7]) then charge(windows.tokens, num(ARGV[8]), limits.tokens) end
save()
return 0
`
}

/** What a store shared by several processes answers for the core's decision (see the module's comment). */
const shared = (
  admission: RateLimitStore.Admission,
  reserved: number,
  pollMillis: number
): RateLimitStore.Admission => {
  switch (admission._tag) {
    case "Admitted":
      return admission
    case "WaitForSettlement":
      return { _tag: "Wait", millis: pollMillis }
    case "Wait":
      return reserved > 0 && admission.millis > pollMillis ? { _tag: "Wait", millis: pollMillis } : admission
  }
}

const decision = (
  reply: ReadonlyArray<string>
): Effect.Effect<readonly [RateLimitStore.Admission, number], RedisError> => {
  const [tag, value, reserved] = reply
  const tokens = Lua.decode(reserved)
  switch (tag) {
    case "Admitted":
      return Effect.succeed([{ _tag: "Admitted", id: Lua.decode(value) }, tokens])
    case "Wait":
      return Effect.succeed([{ _tag: "Wait", millis: Lua.decode(value) }, tokens])
    case "WaitForSettlement":
      return Effect.succeed([{ _tag: "WaitForSettlement" }, tokens])
    default:
      return Lua.unexpected(reply)
  }
}

/**
 * The store on `connection`; `now` is the time to pass the scripts, `""` for
 * the server's (the tests pass the time they compare the memory store at).
 */
export const make = (
  connection: Connection,
  now: Effect.Effect<string>,
  settings: { readonly holdMillis: number; readonly pollMillis: number }
): RedisRateLimitStore => {
  const run = (script: Script, key: string, limits: RateLimitStore.Limits, args: ReadonlyArray<string>) =>
    Effect.flatMap(now, (time) =>
      connection.run(
        script,
        [
          connection.key(NAMES.state, key),
          connection.key(NAMES.requests, key),
          connection.key(NAMES.tokens, key),
          connection.key(NAMES.holds, key)
        ],
        [
          time,
          Lua.encodeOptional(limits.requests?.limit),
          Lua.encodeOptional(limits.requests?.intervalMillis),
          Lua.encodeOptional(limits.tokens?.limit),
          Lua.encodeOptional(limits.tokens?.intervalMillis),
          Lua.encode(settings.holdMillis),
          ...args
        ]
      ))
  const admitExactly: RedisRateLimitStore["admitExactly"] = ({ key, limits, tokens }) =>
    run(admit, key, limits, [Lua.encode(tokens)]).pipe(Effect.flatMap(Lua.texts), Effect.flatMap(decision))
  return {
    admitExactly,
    admit: (options) =>
      Effect.map(admitExactly(options), ([admission, reserved]) => shared(admission, reserved, settings.pollMillis)),
    settle: ({ id, key, limits, used }) =>
      // The core changes nothing without a token limit: no round trip.
      limits.tokens === undefined
        ? Effect.void
        : Effect.asVoid(run(settle, key, limits, [Lua.encode(id), Lua.encode(used)]))
  }
}
