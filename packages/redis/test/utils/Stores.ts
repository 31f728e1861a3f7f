/**
 * The Redis stores on the test server, each made under a key prefix of its
 * own so that tests sharing a server never see each other's keys.
 */
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import * as RedisStores from "../../src/RedisStores.js"
import { Server } from "./RedisServer.js"

let made = 0

/** A key prefix no other store made in this run uses. */
export const uniquePrefix = (): string => `test-${process.pid}-${++made}:`

export const make = (
  options: Partial<RedisStores.Options> = {}
): Effect.Effect<RedisStores.RedisStores, never, Scope.Scope | Server> =>
  Effect.flatMap(Server, (server) => RedisStores.make({ url: server.url, keyPrefix: uniquePrefix(), ...options }))
