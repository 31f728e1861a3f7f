/**
 * @since 0.1.0
 */

/**
 * The bodies of `POST /chat/completions` as `Schema`s.
 *
 * @since 0.1.0
 */
export * as ChatCompletion from "./ChatCompletion.js"

/**
 * The chunks of a streamed chat completion, and the fold back into one completion.
 *
 * @since 0.1.0
 */
export * as ChatCompletionChunk from "./ChatCompletionChunk.js"

/**
 * Where budgets keep their spending: in memory by default, or in a store that
 * outlives the process and is shared by several.
 *
 * @since 0.2.0
 */
export * as BudgetStore from "./BudgetStore.js"

/**
 * Where circuit breakers keep their state: in memory by default, or in a store
 * shared by several processes.
 *
 * @since 0.2.0
 */
export * as CircuitBreakerStore from "./CircuitBreakerStore.js"

/**
 * Where concurrency slots are held, as leases: in memory by default, or in a
 * store shared by several processes.
 *
 * @since 0.2.0
 */
export * as ConcurrencyStore from "./ConcurrencyStore.js"

/**
 * A circuit breaker for inference calls, per endpoint and model.
 *
 * @since 0.1.0
 */
export * as CircuitBreaker from "./CircuitBreaker.js"

/**
 * The client for W&B Inference.
 *
 * @since 0.1.0
 */
export * as InferenceClient from "./InferenceClient.js"

/**
 * Every way an inference call can fail, one tagged error per case.
 *
 * @since 0.1.0
 */
export * as InferenceError from "./InferenceError.js"

/**
 * The body of `GET /models`.
 *
 * @since 0.1.0
 */
export * as Model from "./Model.js"

/**
 * Client-side limits on requests and tokens per interval.
 *
 * @since 0.1.0
 */
export * as RateLimit from "./RateLimit.js"

/**
 * Where rate limits keep their windows: in memory by default, or in a store
 * shared by several processes.
 *
 * @since 0.2.0
 */
export * as RateLimitStore from "./RateLimitStore.js"

/**
 * A cache of successful responses, in memory or persistent.
 *
 * @since 0.1.0
 */
export * as ResponseCache from "./ResponseCache.js"

/**
 * When a failed call is tried again, and after how long.
 *
 * @since 0.1.0
 */
export * as RetryPolicy from "./RetryPolicy.js"

/**
 * Usage monitoring, metrics, cost and budgets.
 *
 * @since 0.1.0
 */
export * as UsageTracker from "./UsageTracker.js"
