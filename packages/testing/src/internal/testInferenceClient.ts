/**
 * Where a scripted reply is picked for a call and turned into its completion or failure.
 */
import { ChatCompletion, ChatCompletionChunk, InferenceClient, InferenceError, Model } from "@effect-inference/client"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Ref from "effect/Ref"
import * as Stream from "effect/Stream"
import type * as TestInferenceClient from "../TestInferenceClient.js"
import * as generate from "./generate.js"

type Reply = TestInferenceClient.Reply
type Request = ChatCompletion.ChatCompletionRequest

/** @internal */
export const DEFAULT_MODELS: ReadonlyArray<string> = [
  "meta-llama/Llama-3.1-8B-Instruct",
  "deepseek-ai/DeepSeek-V3.1",
  "Qwen/Qwen3-235B-A22B-Instruct-2507",
  "openai/gpt-oss-120b"
]

const DEFAULT_MODEL = DEFAULT_MODELS[0]

// ---------------------------------------------------------------------------
// Completions
// ---------------------------------------------------------------------------

// Counted exactly as the simulator counts (a word or a punctuation mark each), so the two fakes agree on usage.
const countTokens = generate.countTokens

type Content = Request["messages"][number]["content"]

const textOf = (content: Content): string =>
  content === undefined || content === null
    ? ""
    : typeof content === "string"
    ? content
    : content.flatMap((part) => part.type === "text" ? [part.text] : []).join("\n")

const promptTokens = (request: Request): number => generate.promptTokens(request.messages)

const build = (
  content: string,
  options: TestInferenceClient.CompletionOptions | undefined,
  id: string
): ChatCompletion.ChatCompletion => {
  const prompt = options?.usage?.promptTokens ?? 0
  const completion = options?.usage?.completionTokens ?? countTokens(content)
  return new ChatCompletion.ChatCompletion({
    id,
    object: "chat.completion",
    created: 0,
    model: options?.model ?? DEFAULT_MODEL,
    choices: [
      new ChatCompletion.Choice({
        index: 0,
        message: new ChatCompletion.ResponseMessage({ role: "assistant", content }),
        finish_reason: options?.finishReason ?? "stop"
      })
    ],
    usage: new ChatCompletion.Usage({
      prompt_tokens: prompt,
      completion_tokens: completion,
      total_tokens: prompt + completion
    })
  })
}

/** @internal */
export const completion = (
  content: string,
  options?: TestInferenceClient.CompletionOptions
): ChatCompletion.ChatCompletion => build(content, options, "chatcmpl-test")

// A string reply knows the request, so it takes its model and counts its prompt, and
// its id carries the call number so that two answers of one test can be told apart.
const answerText = (content: string, request: Request, n: number): ChatCompletion.ChatCompletion =>
  build(content, { model: request.model, usage: { promptTokens: promptTokens(request) } }, `chatcmpl-test-${n}`)

// The default echoes the last user message: deterministic, yet it differs with the input,
// so an application that drops or garbles the user's text fails its test even unscripted.
const echo = (request: Request): string => {
  const users = request.messages.filter((message) => message.role === "user")
  const last = users.length > 0 ? users[users.length - 1] : request.messages[request.messages.length - 1]
  return textOf(last.content)
}

// ---------------------------------------------------------------------------
// Script
// ---------------------------------------------------------------------------

interface State {
  /** Replies not used yet, in order. */
  readonly pending: ReadonlyArray<Reply>
  /** The reply used last; it answers again while `pending` is empty. */
  readonly last: Option.Option<Reply>
  readonly requests: ReadonlyArray<Request>
}

// A queue plus the last reply, rather than an index into the script: replies appended
// after the script ran out must be used next, not skipped over by a call count.
const take = (state: State, request: Request): readonly [readonly [Option.Option<Reply>, number], State] => {
  const requests = [...state.requests, request]
  const n = requests.length
  if (state.pending.length === 0) return [[state.last, n], { ...state, requests }]
  const [next, ...pending] = state.pending
  return [[Option.some(next), n], { pending, last: Option.some(next), requests }]
}

const answer = (
  reply: Option.Option<Reply>,
  request: Request,
  n: number
): Effect.Effect<ChatCompletion.ChatCompletion, InferenceError.InferenceError> => {
  if (Option.isNone(reply)) return Effect.succeed(answerText(echo(request), request, n))
  const value = reply.value
  if (typeof value === "string") return Effect.succeed(answerText(value, request, n))
  // Suspended so that a function that throws is a defect of this call, not of the test's setup.
  if (typeof value === "function") return Effect.suspend(() => value(request, n))
  if (InferenceError.isInferenceError(value)) return Effect.fail(value)
  return Effect.succeed(value)
}

const toModel = (model: Model.Model | string): Model.Model =>
  typeof model === "string"
    ? new Model.Model({
      id: model,
      object: "model",
      created: 0,
      owned_by: model.includes("/") ? model.split("/")[0] : ""
    })
    : model

/** @internal */
export const make = (options?: TestInferenceClient.Options): Effect.Effect<{
  readonly client: InferenceClient.InferenceClient.Service
  readonly test: TestInferenceClient.TestInferenceClient.Service
}> =>
  Effect.gen(function*() {
    const state = yield* Ref.make<State>({ pending: options?.replies ?? [], last: Option.none(), requests: [] })
    const models = (options?.models ?? DEFAULT_MODELS).map(toModel)

    // Picking the reply and recording the request are one `Ref.modify`, so concurrent
    // calls each get a reply of their own and their numbers match `requests`.
    // `streamChatCompletion` takes its answer the same way and sends it in chunks.
    const next = (request: Request) =>
      Effect.flatMap(Ref.modify(state, (s) => take(s, request)), ([reply, n]) => answer(reply, request, n))

    const client: InferenceClient.InferenceClient.Service = {
      chatCompletion: (input) => Effect.flatMap(InferenceClient.validateRequest(input), next),
      streamChatCompletion: (input) =>
        Stream.unwrap(
          Effect.map(
            Effect.flatMap(
              InferenceClient.validateRequest(input),
              (request) => Effect.map(next(request), (completion) => ({ completion, request }))
            ),
            ({ completion, request }) =>
              Stream.fromIterable(
                ChatCompletionChunk.fromCompletion(completion, {
                  includeUsage: request.stream_options?.include_usage ?? true
                })
              )
          )
        ),
      listModels: () => Effect.succeed(models)
    }

    const test: TestInferenceClient.TestInferenceClient.Service = {
      requests: Effect.map(Ref.get(state), (s) => s.requests),
      reply: (...replies) => Ref.update(state, (s) => ({ ...s, pending: [...s.pending, ...replies] })),
      calls: Effect.map(Ref.get(state), (s) => s.requests.length)
    }

    return { client, test }
  })
