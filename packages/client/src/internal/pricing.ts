/**
 * Where a call is priced: the example prices, and what tokens cost by a
 * model's price.
 */
import type * as UsageTracker from "../UsageTracker.js"

/**
 * Prices by model id.
 *
 * @internal
 */
export type Prices = Readonly<Record<string, UsageTracker.Price>>

/**
 * Example prices (USD per million tokens) for W&B's catalogue as of late 2026:
 * made up to be plausible, with cached input at about a quarter of input. Not
 * W&B's prices; users pass their own.
 *
 * @internal
 */
export const DEFAULT_PRICES: Readonly<Record<string, UsageTracker.Price>> = {
  "deepseek-ai/DeepSeek-V4.1-Flash": { input: 0.2, cachedInput: 0.05, output: 0.8 },
  "deepseek-ai/DeepSeek-V4-Flash-0731": { input: 0.2, cachedInput: 0.05, output: 0.8 },
  "deepseek-ai/DeepSeek-V4-Pro-0813": { input: 0.6, cachedInput: 0.15, output: 2.2 },
  "deepseek-ai/DeepSeek-V3.1": { input: 0.55, cachedInput: 0.14, output: 1.65 },
  "google/gemma-4-31B-it": { input: 0.15, cachedInput: 0.04, output: 0.45 },
  "google/gemma-4-26B-A4B-it": { input: 0.08, cachedInput: 0.02, output: 0.3 },
  "moonshotai/Kimi-K2.6": { input: 0.6, cachedInput: 0.15, output: 2.5 },
  "moonshotai/Kimi-K2.7-Code": { input: 0.6, cachedInput: 0.15, output: 2.5 },
  "zai-org/GLM-5.2": { input: 0.55, cachedInput: 0.11, output: 2 },
  "MiniMaxAI/MiniMax-M3": { input: 0.3, cachedInput: 0.06, output: 1.2 },
  "openai/gpt-oss-120b": { input: 0.15, cachedInput: 0.04, output: 0.6 },
  "openai/gpt-oss-20b": { input: 0.05, cachedInput: 0.01, output: 0.2 },
  "Qwen/Qwen3.6-35B-A3B": { input: 0.1, cachedInput: 0.025, output: 0.4 },
  "ibm-granite/granite-4.2-8b": { input: 0.03, cachedInput: 0.01, output: 0.1 },
  "nvidia/NVIDIA-Nemotron-3-Ultra-550B-A55B": { input: 0.9, cachedInput: 0.225, output: 3 },
  "meta-llama/Llama-3.3-70B-Instruct": { input: 0.71, cachedInput: 0.18, output: 0.71 },
  "meta-llama/Llama-3.1-8B-Instruct": { input: 0.22, cachedInput: 0.055, output: 0.22 }
}

/**
 * The cost of a call by a price: cached prompt tokens (at most the prompt) at
 * `cachedInput`, the rest of the prompt at `input`, the completion at `output`.
 *
 * @internal
 */
export const priceTokens = (
  price: UsageTracker.Price,
  promptTokens: number,
  completionTokens: number,
  cachedTokens = 0
): number => {
  const cached = Math.min(Math.max(0, cachedTokens), promptTokens)
  return ((promptTokens - cached) * price.input + cached * (price.cachedInput ?? price.input) +
    completionTokens * price.output) / 1_000_000
}

/** @internal */
export const priceOf = (prices: Prices, model: string): UsageTracker.Price | undefined =>
  Object.hasOwn(prices, model) ? prices[model] : undefined

/** @internal */
export const costOf = (
  prices: Prices,
  model: string,
  promptTokens: number,
  completionTokens: number,
  cachedTokens?: number
): number | undefined => {
  const price = priceOf(prices, model)
  return price === undefined ? undefined : priceTokens(price, promptTokens, completionTokens, cachedTokens)
}

/**
 * The most a call can cost: its whole prompt at the dearer of the two input rates.
 *
 * @internal
 */
export const upperCostOf = (
  prices: Prices,
  model: string,
  promptTokens: number,
  completionTokens: number
): number | undefined => {
  const price = priceOf(prices, model)
  return price === undefined
    ? undefined
    : priceTokens(
      { input: Math.max(price.input, price.cachedInput ?? price.input), output: price.output },
      promptTokens,
      completionTokens
    )
}
