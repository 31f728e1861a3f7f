/**
 * The Redis stores on the test server, each made under a key prefix of its
 * own so that tests sharing a server never see each other's keys.
 */
import type * as CircuitBreakerStore from "@effect-inference/client/CircuitBreakerStore"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import * as RedisStores from "../../src/RedisStores.js"
import { Server } from "./RedisServer.js"

let made = 0

/** A key prefix no other store made in this run uses. */
export const uniquePrefix = (): string => `test-${process.pid}-${++made}:`

/** A breaker's state as a new breaker has it (closed, nothing counted), with `overrides`. */
export const breakerState = (
  overrides: Partial<CircuitBreakerStore.BreakerState> = {}
): CircuitBreakerStore.BreakerState => ({
  state: "closed",
  consecutiveFailures: 0,
  window: [],
  trips: 0,
  openUntil: null,
  openedAt: null,
  isolated: false,
  probes: 0,
  probesSucceeded: 0,
  generation: 0,
  ...overrides
})

export const make = (
  options: Partial<RedisStores.Options> = {}
): Effect.Effect<RedisStores.RedisStores, never, Scope.Scope | Server> =>
  Effect.flatMap(Server, (server) => RedisStores.make({ url: server.url, keyPrefix: uniquePrefix(), ...options }))
