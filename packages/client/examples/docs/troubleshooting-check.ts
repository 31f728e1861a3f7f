import { InferenceClient } from "@effect-inference/client"
import { Effect } from "effect"

// A first check that spends no tokens: the key, the project, the base URL and the network, in one request.
export const checkSetup = Effect.flatMap(InferenceClient.InferenceClient, (client) => client.listModels()).pipe(
  Effect.map((models) => `OK: ${models.length} models, ${models[0]?.id ?? "none"} first`),
  Effect.catchTags({
    AuthenticationError: () => Effect.succeed("The key or the project is wrong: check WANDB_API_KEY and WANDB_PROJECT"),
    PermissionDeniedError: (e) => Effect.succeed(`Not allowed (${e.reason}): ${e.serverMessage ?? e.message}`),
    // listModels names no model, so its 404 always says the URL is wrong.
    NotFoundError: (e) => Effect.succeed(`No API at ${e.baseUrl ?? "the base URL"}: it should end in /v1`),
    ConnectionError: (e) => Effect.succeed(`${e.sent ? "The connection broke" : "Nothing was sent"}: ${e.message}`)
  }),
  Effect.catchAll((e) => Effect.succeed(`${e._tag}: ${e.message}`))
)
