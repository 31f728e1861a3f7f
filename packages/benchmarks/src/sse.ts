/**
 * SSE parsers, cost per event as the events per network read grow:
 *
 *   pnpm --filter @effect-inference/benchmarks sse
 *
 * A linear parser costs the same per event however many events one read holds;
 * a parser that rescans its buffer gets slower as a consumer falls behind and
 * reads pile up. Each figure is the median of 5 rounds, after a warm-up round.
 */
import { makeParser } from "@effect/experimental/Sse"
import { createParser } from "eventsource-parser"

const event = (i: number): string =>
  `data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":" word${i}"},"finish_reason":null}]}\n\n`

interface Parser {
  readonly feed: (text: string) => void
}

const parsers: ReadonlyArray<readonly [string, (onEvent: () => void) => Parser]> = [
  ["eventsource-parser", (onEvent) => createParser({ onEvent })],
  ["@effect/experimental Sse", (onEvent) => makeParser(() => onEvent())]
]

/** µs per event for one round: `total` events fed in reads of `perRead` events each. */
const round = (make: (onEvent: () => void) => Parser, perRead: number, total: number): number => {
  const reads: Array<string> = []
  for (let i = 0; i < total; i += perRead) {
    let read = ""
    for (let j = 0; j < perRead; j++) read += event(i + j)
    reads.push(read)
  }
  let count = 0
  const parser = make(() => count++)
  const start = process.hrtime.bigint()
  for (const read of reads) parser.feed(read)
  const elapsed = Number(process.hrtime.bigint() - start)
  if (count !== total) console.error(`parsed ${count} events of ${total}`)
  return elapsed / total / 1000
}

const median = (values: ReadonlyArray<number>): number => {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.floor(sorted.length / 2)]!
}

const perReads = [1, 16, 256, 1024]
console.log(`node ${process.version}, ${process.arch}`)
console.log(`| events per read | ${parsers.map(([name]) => `${name} (µs/event)`).join(" | ")} |`)
console.log(`|---|${parsers.map(() => "---").join("|")}|`)
for (const perRead of perReads) {
  const cells = parsers.map(([, make]) => {
    // Fewer events for the slow cases keeps the run short; the figure is per event either way.
    const total = Math.max(perRead, 4096)
    round(make, perRead, total)
    return median(Array.from({ length: 5 }, () => round(make, perRead, total))).toFixed(3)
  })
  console.log(`| ${perRead} | ${cells.join(" | ")} |`)
}
