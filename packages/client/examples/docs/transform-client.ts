import { InferenceClient } from "@effect-inference/client"
import { HttpClient, HttpClientRequest } from "@effect/platform"
import { Redacted } from "effect"

export const tagged = InferenceClient.layer({
  apiKey: Redacted.make("my-key"),
  transformClient: HttpClient.mapRequest(HttpClientRequest.setHeader("x-app", "demo"))
})
