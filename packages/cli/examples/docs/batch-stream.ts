import { Batch } from "@effect-inference/cli"
import { Stream } from "effect"

const questions = ["2 + 2?", "The capital of France?", "A prime above 100?"]

// Rows from anywhere (a database, a queue, another stream), results as they finish: no files involved.
const rows = Stream.fromIterable(questions).pipe(
  Stream.zipWithIndex,
  Stream.map(([content, i]) => ({
    customId: `q${i + 1}`,
    body: { model: "meta-llama/Llama-3.1-8B-Instruct", messages: [{ role: "user" as const, content }] }
  }))
)

// Needs an InferenceClient in context; a row's failure is a result, never the stream's error.
export const answers = Batch.stream(rows, { concurrency: 16 }).pipe(
  Stream.map((result) =>
    result._tag === "Succeeded"
      ? `${result.customId}: ${result.completion.choices[0].message.content}`
      : `${result.customId} failed: ${result.error._tag}`
  ),
  Stream.runCollect
)
