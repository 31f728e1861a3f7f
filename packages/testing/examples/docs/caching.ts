import { InferenceClient, ResponseCache } from "@effect-inference/client"
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import * as NodePath from "@effect/platform-node/NodePath"
import { Effect, Layer } from "effect"

// Answers kept on disk for a day, in a directory of the cache's own: they survive restarts.
export const Cache = (directory: string) =>
  ResponseCache.layerFileSystem(directory, { ttl: "1 day" }).pipe(
    Layer.provide(Layer.merge(NodeFileSystem.layer, NodePath.layer))
  )

const request = (text: string) => ({
  model: "meta-llama/Llama-3.1-8B-Instruct",
  messages: [
    { role: "system" as const, content: "Answer positive, negative or neutral." },
    { role: "user" as const, content: text }
  ],
  temperature: 0 // the same question gets the same answer, so the cache may give it
})

export const sentiment = (text: string) =>
  Effect.flatMap(InferenceClient.InferenceClient, (client) => client.chatCompletion(request(text)))

// This call asks the server whatever the cache holds, and stores the fresh answer.
export const freshSentiment = (text: string) =>
  Effect.flatMap(
    InferenceClient.InferenceClient,
    (client) => client.chatCompletion(request(text), { cache: "no-cache" })
  )
