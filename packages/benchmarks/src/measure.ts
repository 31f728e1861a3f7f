/**
 * In-process measurement for the no-network scripts: each effect is run
 * `calls` times at 64 in flight, round after round, interleaved, and reported as
 * the median µs of CPU per call.
 */
import * as Effect from "effect/Effect"

/** A chat completion as the simulator answers one. */
export const completionJson = JSON.stringify({
  id: "chatcmpl-1",
  object: "chat.completion",
  created: 1,
  model: "meta-llama/Llama-3.1-8B-Instruct",
  choices: [{ index: 0, message: { role: "assistant", content: "A short answer." }, finish_reason: "stop" }],
  usage: { prompt_tokens: 12, completion_tokens: 4, total_tokens: 16 }
})

/**
 * The same answer in the shape real OpenAI-compatible servers (vLLM, W&B) send: token details in the usage,
 * `reasoning`, `refusal` and `logprobs` as `null`, a `system_fingerprint`.
 */
export const realCompletionJson = JSON.stringify({
  id: "chatcmpl-1",
  object: "chat.completion",
  created: 1,
  model: "meta-llama/Llama-3.1-8B-Instruct",
  choices: [{
    index: 0,
    message: { role: "assistant", content: "A short answer.", refusal: null, reasoning: null, tool_calls: [] },
    logprobs: null,
    finish_reason: "stop",
    stop_reason: null
  }],
  system_fingerprint: null,
  usage: {
    prompt_tokens: 12,
    completion_tokens: 4,
    total_tokens: 16,
    prompt_tokens_details: { cached_tokens: 0 },
    completion_tokens_details: { reasoning_tokens: 0 }
  }
})

const runMany = (effect: Effect.Effect<unknown, unknown>, n: number) =>
  Effect.forEach(Array.from({ length: n }), () => effect, { concurrency: 64, discard: true })

/** µs of CPU per call of each effect, one figure per round. */
export const measureRounds = (
  effects: Record<string, Effect.Effect<unknown, unknown>>,
  options: { readonly calls: number; readonly rounds: number }
): Effect.Effect<Record<string, Array<number>>, unknown> =>
  Effect.gen(function*() {
    const results: Record<string, Array<number>> = {}
    for (let round = 0; round < options.rounds; round++) {
      for (const [name, effect] of Object.entries(effects)) {
        yield* runMany(effect, Math.ceil(options.calls / 5)) // warm-up
        const before = process.cpuUsage()
        yield* runMany(effect, options.calls)
        const used = process.cpuUsage(before)
        ;(results[name] ??= []).push((used.user + used.system) / options.calls)
      }
    }
    return results
  })

/** Prints the median and the range of each effect's figures. */
export const printRounds = (results: Record<string, Array<number>>) => {
  for (const [name, values] of Object.entries(results)) {
    const sorted = [...values].sort((a, b) => a - b)
    const median = sorted[Math.floor(sorted.length / 2)]!
    process.stdout.write(
      `${name.padEnd(28)} ${median.toFixed(1).padStart(7)} µs/call  (${sorted[0]!.toFixed(0)}–${
        sorted.at(-1)!.toFixed(0)
      })\n`
    )
  }
}
