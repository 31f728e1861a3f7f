/**
 * The one connection to Redis that the four stores share: made and closed
 * with the layer, every command bounded in time, every failure classified and
 * stripped of the password before anyone sees it.
 *
 * The client library is ioredis (6.x) rather than node-redis: it runs a Lua
 * script by its SHA (`EVALSHA`) and sends the script itself only when the
 * server does not know it (`defineCommand`), which is how every store
 * operation runs; and it has the three settings a store that must never hang
 * needs, each one option: `enableOfflineQueue: false` (a command sent while
 * disconnected fails at once instead of waiting for the connection),
 * `maxRetriesPerRequest: 0` with `autoResendUnfulfilledCommands: false` (a
 * command lost with its connection is not sent again: a script that took a
 * slot or charged a window may have run, and running it twice would count
 * twice) and `commandTimeout`; while it reconnects in the background with a
 * `retryStrategy`. It has no dependency that builds a native addon.
 */
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Predicate from "effect/Predicate"
import * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import { Redis } from "ioredis"

/**
 * Redis could not be asked (`"unavailable"`: no connection, no answer in
 * time, a server loading or failing over), or answered with an error
 * (`"refused"`: a key of another type, a script error, out of memory). The
 * detail never holds the password.
 *
 * @internal
 */
export class RedisError extends Data.TaggedError("RedisError")<{
  readonly reason: "unavailable" | "refused"
  readonly detail: string
}> {
  override get message(): string {
    return this.reason === "unavailable"
      ? `Redis could not answer: ${this.detail}`
      : `Redis answered with an error: ${this.detail}`
  }
}

/**
 * A Lua script, run by its SHA; `name` is the command ioredis defines for it.
 *
 * @internal
 */
export interface Script {
  readonly name: string
  readonly lua: string
  readonly keys: number
}

/**
 * What a connection is made from.
 *
 * @internal
 */
export interface Settings {
  readonly url: Redacted.Redacted<string>
  readonly keyPrefix: string
  /** The most any command may take, connecting included. */
  readonly timeout: Duration.Duration
}

/** @internal */
export interface Connection {
  /** Where the server is, without credentials: for log lines. */
  readonly server: string
  readonly keyPrefix: string
  /** The key of a store's entry: the prefix, the store's name, the key the client gave. */
  readonly key: (store: string, key: string) => string
  /** Runs a script, bounded by the timeout. */
  readonly run: (
    script: Script,
    keys: ReadonlyArray<string>,
    args: ReadonlyArray<string>
  ) => Effect.Effect<unknown, RedisError>
  /** `PING`, bounded by the timeout: whether the server answers. */
  readonly ping: Effect.Effect<void, RedisError>
  /** Waits until the connection is ready, for the timeout at most; fails with why it is not. */
  readonly ready: Effect.Effect<void, RedisError>
}

/** A command ioredis defined for a script: keys, then arguments. */
type Command = (this: Redis, ...args: Array<string>) => unknown

const isCommand = (u: unknown): u is Command => typeof u === "function"

/** Reconnecting: 100 ms after the first failure, then up to every second, for ever. */
const retryStrategy = (times: number): number => Math.min(times * 100, 1000)

/** Replies from a server that cannot serve now but will: the store is unavailable, not refused. */
const TRANSIENT_REPLY = /^(LOADING|BUSY|MASTERDOWN|TRYAGAIN|CLUSTERDOWN|READONLY)\b/

/**
 * Cuts the password (as written in the URL, and decoded) and the URL itself out
 * of a text that is about to become a log line or an error message.
 *
 * @internal
 */
export const scrubber = (url: string): (text: string) => string => {
  const secrets: Array<string> = [url]
  if (URL.canParse(url)) {
    const parsed = new URL(url)
    const password = parsed.password
    if (password !== "") {
      secrets.push(password)
      try {
        secrets.push(decodeURIComponent(password))
      } catch {
        // Not valid percent-encoding: the text as written is cut out already.
      }
    }
  }
  // Longest first, so that a secret containing another is cut out whole.
  const ordered = [...new Set(secrets)].filter((s) => s.length > 0).sort((a, b) => b.length - a.length)
  return (text) => ordered.reduce((scrubbed, secret) => scrubbed.split(secret).join("<redacted>"), text)
}

/**
 * Where the server is, for a log line: scheme, host, port and database,
 * never the user or the password.
 *
 * @internal
 */
export const describeServer = (url: string): string => {
  if (!URL.canParse(url)) return "redis"
  const parsed = new URL(url)
  return `${parsed.protocol}//${parsed.host}${parsed.pathname === "/" ? "" : parsed.pathname}`
}

/** The message of whatever ioredis rejected with, classified; the caller scrubs it. */
const classify = (error: unknown, scrub: (text: string) => string): RedisError => {
  const name = Predicate.hasProperty(error, "name") && typeof error.name === "string" ? error.name : "Error"
  const message = Predicate.hasProperty(error, "message") && typeof error.message === "string"
    ? error.message
    : String(error)
  const detail = scrub(message)
  if (name === "ReplyError" && !TRANSIENT_REPLY.test(message)) return new RedisError({ reason: "refused", detail })
  return new RedisError({ reason: "unavailable", detail })
}

/**
 * The ioredis options: commands fail at once while disconnected and are
 * never sent twice, each waits `timeout` at most, and the client reconnects
 * in the background for as long as it is open.
 */
const clientOptions = (timeoutMillis: number) => ({
  enableOfflineQueue: false,
  maxRetriesPerRequest: 0,
  autoResendUnfulfilledCommands: false,
  commandTimeout: timeoutMillis,
  connectTimeout: Math.max(timeoutMillis, 1000),
  retryStrategy,
  // RESP2: the replies the scripts make (arrays of strings and integers) read the same on every server version.
  protocol: 2 as const,
  connectionName: "effect-inference"
})

/**
 * Opens the connection (it connects in the background: a server that is down
 * now is no error) and closes it with the scope.
 *
 * @internal
 */
export const make = (settings: Settings): Effect.Effect<Connection, never, Scope.Scope> =>
  Effect.gen(function*() {
    const url = Redacted.value(settings.url)
    const scrub = scrubber(url)
    const timeoutMillis = Math.max(1, Math.round(Duration.toMillis(settings.timeout)))
    const redis = yield* Effect.acquireRelease(
      Effect.sync(() => {
        const client = new Redis(url, clientOptions(timeoutMillis))
        // Without a listener ioredis prints every failed reconnection to the console. The failures reach the
        // stores as the errors of their commands, and the log as one line when Redis goes away.
        client.on("error", () => {})
        return client
      }),
      (client) =>
        Effect.promise(() => client.quit().then(() => undefined, () => undefined)).pipe(
          Effect.timeout(settings.timeout),
          Effect.ignore,
          Effect.zipRight(Effect.sync(() => client.disconnect()))
        )
    )
    const unanswered = new RedisError({
      reason: "unavailable",
      detail: `no answer within ${Duration.format(settings.timeout)}`
    })
    const bounded = <A>(promise: () => Promise<A>): Effect.Effect<A, RedisError> =>
      Effect.tryPromise({ try: promise, catch: (error) => classify(error, scrub) }).pipe(
        Effect.timeoutFail({ duration: settings.timeout, onTimeout: () => unanswered })
      )

    const defined = new Set<string>()
    /** The script's command, defined on first use: ioredis then sends `EVALSHA`, and `EVAL` once after a `NOSCRIPT`. */
    const command = (script: Script): Command => {
      if (!defined.has(script.name)) {
        redis.defineCommand(script.name, { lua: script.lua, numberOfKeys: script.keys })
        defined.add(script.name)
      }
      const method: unknown = Reflect.get(redis, script.name)
      return isCommand(method) ? method : () => Promise.reject(new Error(`ioredis did not define ${script.name}`))
    }

    const ready: Effect.Effect<void, RedisError> = Effect.async<void, RedisError>((resume) => {
      if (redis.status === "ready") return resume(Effect.void)
      const stop = () => {
        redis.off("ready", onReady)
        redis.off("error", onError)
      }
      const onReady = () => {
        stop()
        resume(Effect.void)
      }
      const onError = (error: unknown) => {
        stop()
        resume(Effect.fail(classify(error, scrub)))
      }
      redis.on("ready", onReady)
      redis.on("error", onError)
      return Effect.sync(stop)
    }).pipe(Effect.timeoutFail({ duration: settings.timeout, onTimeout: () => unanswered }))

    return {
      server: describeServer(url),
      keyPrefix: settings.keyPrefix,
      key: (store, key) => `${settings.keyPrefix}${store}:${key}`,
      run: (script, keys, args) => bounded(() => Promise.resolve(command(script).apply(redis, [...keys, ...args]))),
      ping: Effect.asVoid(bounded(() => redis.ping())),
      ready
    }
  })
