/**
 * Where a streamed body becomes server-sent events.
 *
 * The parser is `eventsource-parser` (maintained, spec-compliant, used by the
 * Vercel AI SDK). It is linear in the input: under 1 µs per event whether a network
 * read holds 1 or 1,024 events, where `@effect/experimental`'s `Sse` rescans its
 * buffer after every line and reached ~0.7 ms per event at 1,024 events per read
 * (`pnpm --filter @effect-inference/benchmarks sse`; figures in docs/streaming.md).
 */
import { createParser } from "eventsource-parser"
import type { EventSourceMessage } from "eventsource-parser"

/** A line longer than this (no newline in 8 MiB) is not an event stream any more. */
const MAX_BUFFER = 8 * 1024 * 1024

/** @internal */
export type Event = EventSourceMessage

/** Bytes of a character split across reads are kept for the next read. */
const streaming: TextDecodeOptions = { stream: true }

/** @internal */
export class Overflow {
  readonly _tag = "Overflow"
  constructor(readonly size: number) {}
}

/**
 * A parser of one SSE body, fed its bytes as they arrive. `feed` gives the
 * events completed by those bytes (none for a comment such as `: keep-alive`,
 * or for bytes that end mid-event), in an array that the next `feed` reuses,
 * or an `Overflow`. It is fed straight from the body's reads, not as a stage
 * of a `Stream`: in a stream paced token by token each read holds one event,
 * and every stage costs a few µs per read.
 *
 * @internal
 */
export const makeParser = (): { readonly feed: (bytes: Uint8Array) => ReadonlyArray<Event> | Overflow } => {
  // One array for the events of every read: the caller is done with them before it feeds the next bytes.
  const pending: Array<Event> = []
  let overflow: Overflow | undefined
  const decoder = new TextDecoder()
  const parser = createParser({
    maxBufferSize: MAX_BUFFER,
    onEvent: (event) => pending.push(event),
    onError: (error) => {
      // Unknown fields and bad `retry:` values are ignored, as the SSE spec says; only an overflow is fatal.
      if (error.type === "max-buffer-size-exceeded") overflow = new Overflow(MAX_BUFFER)
    }
  })
  return {
    feed: (bytes) => {
      pending.length = 0
      try {
        parser.feed(decoder.decode(bytes, streaming))
      } catch {
        overflow ??= new Overflow(MAX_BUFFER)
      }
      return overflow ?? pending
    }
  }
}
