/**
 * Automatic prefix caching as vLLM does it, for `usage.prompt_tokens_details.cached_tokens`.
 *
 * A prompt is cut into blocks of {@link BLOCK_TOKENS} tokens; a block is cached
 * when an earlier prompt of the same model and `cache_salt` began with the same
 * tokens up to the end of that block. The cached part of a prompt is its leading
 * run of cached blocks, never the whole prompt (vLLM always computes the last
 * token, so at most the whole blocks before it). Deterministic: it depends only on
 * the prompts seen before, in arrival order.
 */
import { hash } from "./generate.js"

/** Tokens per cache block, vLLM's default. */
export const BLOCK_TOKENS = 16

/** Block keys kept before the oldest are dropped (a long-running simulator must not grow without bound). */
const MAX_KEYS = 200_000

/** @internal */
export class PrefixCache {
  private readonly keys = new Map<string, true>()

  /** The cached tokens of `tokens` for `scope` (model and salt), then remembers its blocks for later prompts. */
  lookupAndStore(scope: string, tokens: ReadonlyArray<string>): number {
    const blocks = Math.floor(tokens.length / BLOCK_TOKENS)
    let chain = `${scope}\u0000`
    let hits = 0
    let missed = false
    for (let b = 0; b < blocks; b++) {
      const text = tokens.slice(b * BLOCK_TOKENS, (b + 1) * BLOCK_TOKENS).join("\u0001")
      // Two 32-bit hashes of the block and the chain before it: the key names the whole prefix.
      chain = `${hash(text, hash(chain, 1)).toString(36)}.${hash(text, hash(chain, 2)).toString(36)}`
      const key = `${scope}\u0000${chain}`
      if (!missed && this.keys.has(key)) hits++
      else missed = true
      this.keys.delete(key)
      this.keys.set(key, true)
    }
    if (this.keys.size > MAX_KEYS) {
      let drop = this.keys.size - MAX_KEYS + Math.ceil(MAX_KEYS / 10)
      for (const key of this.keys.keys()) {
        if (drop-- <= 0) break
        this.keys.delete(key)
      }
    }
    return Math.max(0, Math.min(hits * BLOCK_TOKENS, Math.floor((tokens.length - 1) / BLOCK_TOKENS) * BLOCK_TOKENS))
  }
}
