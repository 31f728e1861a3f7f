import { InferenceClient } from "@effect-inference/client"
import * as UndiciHttpClient from "@effect-inference/client/UndiciHttpClient"
import { Layer } from "effect"

// On Node: the client's own transport over undici (keep-alive, the least CPU per request).
export const InferenceNode = InferenceClient.layerConfig().pipe(Layer.provide(UndiciHttpClient.layer))

// The same over a pool of at most 16 connections to W&B Inference.
export const InferencePooled = InferenceClient.layerConfig().pipe(
  Layer.provide(UndiciHttpClient.layerWith({ connections: 16 }))
)
