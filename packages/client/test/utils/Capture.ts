/**
 * Captures what a program writes to its logger and its tracer, so tests can
 * look for things that must never appear there (the API key).
 */
import * as Effect from "effect/Effect"
import * as HashMap from "effect/HashMap"
import * as Inspectable from "effect/Inspectable"
import * as Layer from "effect/Layer"
import * as List from "effect/List"
import * as Logger from "effect/Logger"
import * as Option from "effect/Option"
import * as Tracer from "effect/Tracer"

export interface CapturedLog {
  readonly level: string
  readonly message: string
  readonly annotations: Readonly<Record<string, unknown>>
  readonly spans: ReadonlyArray<string>
  /** The whole line as the default logfmt logger would print it. */
  readonly line: string
}

export interface CapturedSpan {
  readonly name: string
  readonly attributes: Map<string, unknown>
  readonly events: Array<{ readonly name: string; readonly attributes: Readonly<Record<string, unknown>> }>
  ended: boolean
}

export interface Capture {
  readonly logs: Array<CapturedLog>
  readonly spans: Array<CapturedSpan>
  /** Replaces the default logger and installs a recording tracer. */
  readonly layer: Layer.Layer<never>
  /** Everything captured, as one string to search. */
  readonly dump: () => string
}

let nextId = 0

export const make = (): Capture => {
  const logs: Array<CapturedLog> = []
  const spans: Array<CapturedSpan> = []
  const logger = Logger.make((options) => {
    logs.push({
      level: options.logLevel.label,
      message: Inspectable.toStringUnknown(options.message),
      annotations: Object.fromEntries(HashMap.toEntries(options.annotations)),
      spans: List.toArray(options.spans).map((s) => s.label),
      line: Logger.logfmtLogger.log(options)
    })
  })
  const tracer = Tracer.make({
    span(name, parent, context, links, _startTime, kind) {
      const captured: CapturedSpan = { name, attributes: new Map(), events: [], ended: false }
      spans.push(captured)
      const id = String(++nextId)
      const span: Tracer.Span = {
        _tag: "Span",
        name,
        spanId: id,
        traceId: Option.match(parent, { onNone: () => id, onSome: (p) => p.traceId }),
        parent,
        context,
        status: { _tag: "Started", startTime: 0n },
        attributes: captured.attributes,
        links: [...links],
        sampled: true,
        kind,
        end() {
          captured.ended = true
        },
        attribute(key, value) {
          captured.attributes.set(key, value)
        },
        event(eventName, _time, attributes) {
          captured.events.push({ name: eventName, attributes: attributes ?? {} })
        },
        addLinks() {}
      }
      return span
    },
    context: (f) => f()
  })
  return {
    logs,
    spans,
    layer: Layer.merge(Logger.replace(Logger.defaultLogger, logger), Layer.setTracer(tracer)),
    dump: () =>
      JSON.stringify({
        logs,
        spans: spans.map((s) => ({ ...s, attributes: Object.fromEntries(s.attributes) }))
      }, (_k, v) => (typeof v === "bigint" ? String(v) : v))
  }
}

export const withCapture = <A, E, R>(capture: Capture, effect: Effect.Effect<A, E, R>) =>
  Effect.provide(effect, capture.layer)
