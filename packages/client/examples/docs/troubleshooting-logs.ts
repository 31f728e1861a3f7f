import { InferenceClient, UsageTracker } from "@effect-inference/client"
import type { Effect } from "effect"
import { Logger, LogLevel } from "effect"

// The usage line of every call at Info, where Effect's default logger prints it...
export const LoudClient = InferenceClient.layerConfig({ usage: { logLevel: "Info" } })

// ...or, with one tracker for the whole application, at Info there.
export const LoudUsage = UsageTracker.layer({ logLevel: "Info" })

// Or every Debug line of a program, the usage lines included.
export const withDebugLogs = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Logger.withMinimumLogLevel(effect, LogLevel.Debug)
