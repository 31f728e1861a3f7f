/**
 * A scripted `InferenceClient` for an application's own tests: its layer stands
 * in for `InferenceClient.layer`, answers each call with the next scripted reply
 * (a text, a completion, an error or a function) and records what was asked,
 * without any HTTP.
 *
 * @since 0.1.0
 */
import type { ChatCompletion, InferenceError, Model } from "@effect-inference/client"
import { InferenceClient } from "@effect-inference/client"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as internal from "./internal/testInferenceClient.js"

/**
 * One scripted answer to a `chatCompletion` call:
 *
 * - a `string`: a completion with that content, for the request's model, with
 *   usage counted as the simulator counts tokens (see {@link completion});
 * - a `ChatCompletion`: returned as it is;
 * - an `InferenceError`: the call fails with it, so the application's
 *   `catchTag` for that error runs;
 * - a function: called with the decoded request and the 1-based number of the
 *   call; its success or failure is the call's.
 *
 * @since 0.1.0
 * @category models
 */
export type Reply =
  | string
  | ChatCompletion.ChatCompletion
  | InferenceError.InferenceError
  | ((
    request: ChatCompletion.ChatCompletionRequest,
    n: number
  ) => Effect.Effect<ChatCompletion.ChatCompletion, InferenceError.InferenceError>)

/**
 * The models `listModels` returns when no `models` are given: a few real W&B
 * Inference ids, so that an application's model picking has something to pick from.
 *
 * @since 0.1.0
 * @category constants
 */
export const DEFAULT_MODELS: ReadonlyArray<string> = internal.DEFAULT_MODELS

/**
 * The controls of the scripted client: what it was asked and what it answers next.
 * It comes with the `InferenceClient` from {@link layer}.
 *
 * @example
 * ```ts
 * import { InferenceClient } from "@effect-inference/client"
 * import { TestInferenceClient } from "@effect-inference/testing"
 * import { Effect } from "effect"
 *
 * const program = Effect.gen(function*() {
 *   const test = yield* TestInferenceClient.TestInferenceClient
 *   yield* test.reply("Hi")
 *   const client = yield* InferenceClient.InferenceClient
 *   yield* client.chatCompletion({
 *     model: "meta-llama/Llama-3.1-8B-Instruct",
 *     messages: [{ role: "user", content: "Hello" }]
 *   })
 *   return yield* test.requests
 * }).pipe(Effect.provide(TestInferenceClient.layer()))
 * ```
 *
 * @since 0.1.0
 * @category tags
 */
export class TestInferenceClient extends Context.Tag("@effect-inference/testing/TestInferenceClient")<
  TestInferenceClient,
  TestInferenceClient.Service
>() {}

/**
 * @since 0.1.0
 */
export declare namespace TestInferenceClient {
  /**
   * What a test can see and change of the scripted client.
   *
   * A call "reaches the script" once its request is valid: a request that fails
   * `InferenceClient.validateRequest` fails with `InvalidRequestError` as the
   * real client would, before anything is sent, so it is not recorded, not
   * counted and uses no reply.
   *
   * @since 0.1.0
   * @category models
   */
  export interface Service {
    /** The decoded requests that reached the script, oldest first. */
    readonly requests: Effect.Effect<ReadonlyArray<ChatCompletion.ChatCompletionRequest>>
    /**
     * Appends replies to the script. Replies are used in order; once the script
     * is used up the last reply answers every further call, and replies appended
     * after that are used next, in order.
     */
    readonly reply: (...replies: ReadonlyArray<Reply>) => Effect.Effect<void>
    /** How many calls reached the script (the length of `requests`). */
    readonly calls: Effect.Effect<number>
  }
}

/**
 * How the scripted client starts.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /**
   * The script, used in order; the last reply repeats once it is used up. With
   * no replies at all, each call answers a default completion: the text of the
   * request's last user message (an echo), for the request's model, with
   * `finish_reason` `"stop"` and usage counted as the simulator counts tokens
   * (a word or a punctuation mark each; a prompt adds each message's role and
   * 3 more per message, and 3 for the reply).
   */
  readonly replies?: ReadonlyArray<Reply> | undefined
  /**
   * What `listModels` returns; a string is a model id (its `owned_by` is the
   * part before `/`). Default {@link DEFAULT_MODELS}.
   */
  readonly models?: ReadonlyArray<Model.Model | string> | undefined
}

/**
 * A scripted `InferenceClient` and its controls, {@link TestInferenceClient}.
 * Each build of the layer has a script and a record of its own, so provide it
 * per test (`Effect.provide`) rather than sharing one build between tests.
 *
 * @example
 * ```ts
 * import { InferenceClient, InferenceError } from "@effect-inference/client"
 * import { TestInferenceClient } from "@effect-inference/testing"
 * import { Effect } from "effect"
 *
 * const ask = Effect.flatMap(InferenceClient.InferenceClient, (client) =>
 *   client.chatCompletion({
 *     model: "meta-llama/Llama-3.1-8B-Instruct",
 *     messages: [{ role: "user", content: "Hello" }]
 *   }))
 *
 * // The first call succeeds, every later one is rate limited.
 * const program = Effect.all([ask, Effect.either(ask)]).pipe(
 *   Effect.provide(TestInferenceClient.layer({
 *     replies: ["Hi there", new InferenceError.RateLimitError({ status: 429 })]
 *   }))
 * )
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options?: Options): Layer.Layer<InferenceClient.InferenceClient | TestInferenceClient> =>
  Layer.effectContext(
    Effect.map(
      internal.make(options),
      ({ client, test }) =>
        Context.make(InferenceClient.InferenceClient, client).pipe(Context.add(TestInferenceClient, test))
    )
  )

/**
 * How {@link completion} builds a completion.
 *
 * @since 0.1.0
 * @category models
 */
export interface CompletionOptions {
  /** Default `"meta-llama/Llama-3.1-8B-Instruct"`. */
  readonly model?: string | undefined
  /** Default `"stop"`. */
  readonly finishReason?: ChatCompletion.FinishReason | undefined
  /**
   * Token counts. By default `completionTokens` counts the content as the
   * simulator does (a word or a punctuation mark each) and `promptTokens` is 0, as the builder does not see the request;
   * `total_tokens` is always their sum.
   */
  readonly usage?: {
    readonly promptTokens?: number | undefined
    readonly completionTokens?: number | undefined
  } | undefined
}

/**
 * Builds a completion with one choice holding `content`, for a reply that needs
 * more than a string gives (another finish reason, exact usage). Everything is
 * fixed (`id` `"chatcmpl-test"`, `created` 0) so that results compare equal.
 *
 * @example
 * ```ts
 * import { TestInferenceClient } from "@effect-inference/testing"
 *
 * // A cut-off answer, as when max_tokens is reached.
 * const truncated = TestInferenceClient.completion("The answer is", { finishReason: "length" })
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const completion: (content: string, options?: CompletionOptions) => ChatCompletion.ChatCompletion =
  internal.completion
