/**
 * Where a client is made: its environment built once from the options and the
 * services in context (`environment.ts`), and its three methods, each a check
 * of the call (`request.ts`) followed by the plain path (`completion.ts`) or
 * the streaming one (`stream.ts`). The order of the policies on both paths is
 * in `pipeline.ts`.
 */
import type * as HttpClient from "@effect/platform/HttpClient"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Stream from "effect/Stream"
import type * as InferenceClient from "../InferenceClient.js"
import * as completion from "./completion.js"
import * as Environment from "./environment.js"
import * as request from "./request.js"
import * as stream from "./stream.js"

export {
  /** @internal */
  config,
  /** @internal */
  DEFAULT_BASE_URL,
  /** @internal */
  DEFAULT_FALLBACK_ON,
  /** @internal */
  resolveOptions
} from "./clientOptions.js"

/** @internal */
export const make = (
  options: InferenceClient.Options
): Effect.Effect<InferenceClient.InferenceClient.Service, never, HttpClient.HttpClient> =>
  Effect.map(Environment.make(options), (env) => ({
    chatCompletion: (input, callOptions) =>
      Either.match(request.check(input, callOptions, env.cache), {
        onLeft: Effect.fail,
        onRight: (checked) => completion.chatCompletion(env, checked)
      }),
    streamChatCompletion: (input, callOptions) =>
      Either.match(request.check(input, callOptions, env.cache), {
        onLeft: Stream.fail,
        onRight: (checked) => stream.streamChatCompletion(env, checked)
      }),
    listModels: () => completion.listModels(env)
  }))
