/**
 * @since 0.2.0
 */

/**
 * The client's four stores (concurrency, rate limits, budgets, circuit
 * breakers) on Redis, shared by several processes.
 *
 * @since 0.2.0
 */
export * as RedisStores from "./RedisStores.js"
