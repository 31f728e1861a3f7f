/**
 * Where a streamed body becomes server-sent events.
 *
 * The parser is `eventsource-parser` (maintained, spec-compliant, used by the
 * Vercel AI SDK). It is linear in the input: under 1 µs per event whether a network
 * read holds 1 or 1,024 events, where `@effect/experimental`'s `Sse` rescans its
 * buffer after every line and reached ~0.7 ms per event at 1,024 events per read
 * (`pnpm --filter @effect-inference/benchmarks sse`; figures in docs/streaming.md).
 */
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import { createParser } from "eventsource-parser"
import type { EventSourceMessage } from "eventsource-parser"

/** A line longer than this (no newline in 8 MiB) is not an event stream any more. */
const MAX_BUFFER = 8 * 1024 * 1024

/** @internal */
export type Event = EventSourceMessage

/** @internal */
export class Overflow {
  readonly _tag = "Overflow"
  constructor(readonly size: number) {}
}

/**
 * The events of an SSE body, in order. Comments (`: keep-alive`) produce no
 * event; a batch of bytes with no complete event produces an empty chunk.
 *
 * @internal
 */
export const events = <E, R>(bytes: Stream.Stream<Uint8Array, E, R>): Stream.Stream<Event, E | Overflow, R> =>
  Stream.suspend(() => {
    const pending: Array<Event> = []
    let overflow: Overflow | undefined
    const parser = createParser({
      maxBufferSize: MAX_BUFFER,
      onEvent: (event) => pending.push(event),
      onError: (error) => {
        // Unknown fields and bad `retry:` values are ignored, as the SSE spec says; only an overflow is fatal.
        if (error.type === "max-buffer-size-exceeded") overflow = new Overflow(MAX_BUFFER)
      }
    })
    return bytes.pipe(
      Stream.decodeText(),
      Stream.mapChunksEffect((texts) => {
        for (const text of texts) {
          try {
            parser.feed(text)
          } catch {
            overflow ??= new Overflow(MAX_BUFFER)
          }
          if (overflow !== undefined) return Effect.fail(overflow)
        }
        return Effect.succeed(Chunk.unsafeFromArray(pending.splice(0)))
      })
    )
  })
