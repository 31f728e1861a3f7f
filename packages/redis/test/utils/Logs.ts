/**
 * Captures the log lines a program writes, to count them and to look for what
 * must never be in them (a password).
 */
import * as Effect from "effect/Effect"
import * as HashMap from "effect/HashMap"
import * as Inspectable from "effect/Inspectable"
import * as Logger from "effect/Logger"

export interface Line {
  readonly level: string
  readonly message: string
  readonly annotations: Readonly<Record<string, unknown>>
}

export interface Logs {
  readonly lines: Array<Line>
  /** Runs `effect` with every line it logs (from any fiber it forks) captured here. */
  readonly capture: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
  /** Everything captured, as one string to search. */
  readonly dump: () => string
}

export const make = (): Logs => {
  const lines: Array<Line> = []
  const logger = Logger.make((options) => {
    lines.push({
      level: options.logLevel.label,
      message: Inspectable.toStringUnknown(options.message),
      annotations: Object.fromEntries(HashMap.toEntries(options.annotations))
    })
  })
  return {
    lines,
    capture: (effect) => Effect.provide(effect, Logger.replace(Logger.defaultLogger, logger)),
    dump: () => JSON.stringify(lines)
  }
}
