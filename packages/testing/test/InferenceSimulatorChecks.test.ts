/**
 * What the simulator refuses and when: W&B's request checks (422 from its
 * gateway, 400 from vLLM, 404 for a model it does not serve), its concurrency
 * limits per project and per model, and the draw of faults at a rate.
 */
import { assert, describe, it } from "@effect/vitest"
import { Ajv2020 } from "ajv/dist/2020.js"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as JSONSchema from "effect/JSONSchema"
import * as Schema from "effect/Schema"
import * as Fault from "../src/Fault.js"
import * as FaultDraw from "../src/internal/faultDraw.js"
import * as generate from "../src/internal/generate.js"
import * as jsonSchema from "../src/internal/jsonSchema.js"
import { chat, MESSAGES, MODEL, request, withSimulator } from "./utils/Simulator.js"

const GLM = "zai-org/GLM-5.2"
const DEEPSEEK = "deepseek-ai/DeepSeek-V4.1-Flash"

describe("InferenceSimulator checks", () => {
  describe("request checks", () => {
    const cases: ReadonlyArray<readonly [string, Record<string, unknown>, number, unknown]> = [
      ["temperature above 2", { temperature: 2.5 }, 422, {
        detail: [{
          loc: ["body", "temperature"],
          msg: "Input should be less than or equal to 2",
          type: "less_than_equal"
        }]
      }],
      ["temperature below 0", { temperature: -0.1 }, 422, {
        detail: [{
          loc: ["body", "temperature"],
          msg: "Input should be greater than or equal to 0",
          type: "greater_than_equal"
        }]
      }],
      ["top_p 0", { top_p: 0 }, 422, {
        detail: [{ loc: ["body", "top_p"], msg: "Input should be greater than 0", type: "greater_than" }]
      }],
      ["top_p above 1", { top_p: 1.5 }, 422, {
        detail: [{ loc: ["body", "top_p"], msg: "Input should be less than or equal to 1", type: "less_than_equal" }]
      }],
      ["an unknown role", { messages: [{ role: "wizard", content: "hi" }] }, 422, {
        detail: [{
          loc: ["body", "messages", 0, "role"],
          msg: "Input should be 'system', 'developer', 'user', 'assistant', 'tool' or 'function'",
          type: "literal_error"
        }]
      }],
      ["two bad fields at once", { temperature: 3, top_p: 2 }, 422, {
        detail: [
          { loc: ["body", "temperature"], msg: "Input should be less than or equal to 2", type: "less_than_equal" },
          { loc: ["body", "top_p"], msg: "Input should be less than or equal to 1", type: "less_than_equal" }
        ]
      }],
      ["max_tokens 0", { max_tokens: 0 }, 400, {
        error: {
          message: "Invalid value for 'max_tokens': must be a positive integer",
          type: "invalid_request_error",
          param: "max_tokens",
          code: null
        }
      }],
      ["max_tokens -1", { max_tokens: -1 }, 400, undefined],
      ["stream_options without stream: true", { stream_options: { include_usage: true } }, 400, {
        error: {
          message: "Stream options can only be defined when `stream=True`.",
          type: "invalid_request_error",
          param: "stream_options",
          code: null
        }
      }],
      ["an empty cache_salt", { cache_salt: "" }, 400, undefined],
      [
        "tool_choice naming a tool not offered",
        {
          tools: [{ type: "function", function: { name: "a" } }],
          tool_choice: { type: "function", function: { name: "b" } }
        },
        400,
        undefined
      ],
      ["a model that does not exist", { model: "acme/nope" }, 404, {
        error: {
          message: "The requested resource was not found",
          type: "not_found_error",
          param: null,
          code: "model_not_found"
        }
      }]
    ]

    for (const [name, body, status, expected] of cases) {
      it.live(`${name} → ${status} with W&B's body`, () =>
        withSimulator((simulator) =>
          Effect.gen(function*() {
            // a scripted fault stays queued: a refused request never reaches the engine
            yield* simulator.script(Fault.overloaded)
            const reply = yield* chat(simulator, body)
            assert.strictEqual(reply.status, status, reply.text)
            if (expected !== undefined) assert.deepStrictEqual(JSON.parse(reply.text), expected)
            const [entry] = yield* simulator.log
            assert.strictEqual(entry!.outcome, status === 404 ? "unknown-model" : "invalid-request")
            assert.strictEqual((yield* chat(simulator)).status, 503)
          })
        ))
    }

    it.live("the extra body fields W&B documents, and values at their bounds, are accepted", () =>
      withSimulator((simulator) =>
        Effect.gen(function*() {
          const reply = yield* chat(simulator, {
            chat_template_kwargs: { enable_thinking: false },
            cache_salt: "tenant-a",
            top_k: 20,
            min_p: 0.05,
            repetition_penalty: 1.1,
            frequency_penalty: -2,
            presence_penalty: 2,
            temperature: 2,
            top_p: 1,
            logprobs: false,
            top_logprobs: 0,
            seed: 1,
            n: 1,
            stop: ["\n\n"],
            parallel_tool_calls: false,
            user: "u-1",
            max_completion_tokens: 5,
            messages: [
              { role: "system", content: "Be brief." },
              { role: "developer", content: "Really." },
              ...MESSAGES
            ]
          })
          assert.strictEqual(reply.status, 200, reply.text)
        })
      ))
  })

  describe("concurrency limits", () => {
    /** `count` requests for `model` at once, each long enough to overlap; their statuses and bodies. */
    const burst = (simulator: Parameters<typeof chat>[0], model: string, count: number, project?: string) =>
      Effect.all(
        Array.from({ length: count }, (_, i) =>
          request(simulator, "/chat/completions", {
            body: { model, messages: [{ role: "user", content: `q${i}` }] },
            ...(project === undefined ? {} : { headers: { "openai-project": project } })
          })),
        { concurrency: "unbounded" }
      )

    it.live("modelConcurrencyLimits: one GLM-5.2 in flight, the rest get the observed 429; other models are not held", () =>
      withSimulator(
        (simulator) =>
          Effect.gen(function*() {
            const [glm, deepseek] = yield* Effect.all([burst(simulator, GLM, 3), burst(simulator, DEEPSEEK, 3)], {
              concurrency: "unbounded"
            })
            assert.deepStrictEqual(glm.map((r) => r.status).sort(), [200, 429, 429])
            for (const reply of glm.filter((r) => r.status === 429)) {
              assert.deepStrictEqual(JSON.parse(reply.text), {
                error: {
                  message: "concurrency limit reached for requests: zai-org/GLM-5.2-project limit reached",
                  type: "rate_limit_error",
                  param: null,
                  code: "rate_limit_exceeded"
                }
              })
            }
            assert.deepStrictEqual(deepseek.map((r) => r.status), [200, 200, 200])
            // once the first is answered, its slot is free again
            assert.strictEqual((yield* chat(simulator, { model: GLM })).status, 200)
            // each project has its own slots for a model
            const [a, b] = yield* Effect.all([burst(simulator, GLM, 1, "acme/a"), burst(simulator, GLM, 1, "acme/b")], {
              concurrency: "unbounded"
            })
            assert.deepStrictEqual([...a, ...b].map((r) => r.status), [200, 200])
          }),
        { modelConcurrencyLimits: { [GLM]: 1 }, perToken: "10 millis", answerTokens: [10, 10] }
      ))

    it.live("setModelConcurrencyLimit: a lower limit refuses new requests while those in flight finish", () =>
      withSimulator(
        (simulator) =>
          Effect.gen(function*() {
            const first = yield* Effect.fork(burst(simulator, GLM, 3))
            while ((yield* simulator.inFlight) < 3) yield* Effect.sleep("2 millis")
            yield* simulator.setModelConcurrencyLimit(GLM, 1)
            // the three in flight keep their slots; a new request, which the old limit of 4 let in, is refused
            assert.strictEqual((yield* chat(simulator, { model: GLM })).status, 429)
            assert.deepStrictEqual((yield* Fiber.join(first)).map((r) => r.status), [200, 200, 200])
            assert.deepStrictEqual((yield* burst(simulator, GLM, 3)).map((r) => r.status).sort(), [200, 429, 429])
          }),
        { modelConcurrencyLimits: { [GLM]: 4 }, perToken: "10 millis", answerTokens: [10, 10] }
      ))

    it.live("setModelConcurrencyLimit: raises, sets, and with Infinity lifts a model's limit; a bad one is refused", () =>
      withSimulator(
        (simulator) =>
          Effect.gen(function*() {
            yield* simulator.setModelConcurrencyLimit(GLM, 2)
            assert.deepStrictEqual((yield* burst(simulator, GLM, 3)).map((r) => r.status).sort(), [200, 200, 429])
            // a model that had no limit gets one
            yield* simulator.setModelConcurrencyLimit(DEEPSEEK, 1)
            assert.deepStrictEqual((yield* burst(simulator, DEEPSEEK, 2)).map((r) => r.status).sort(), [200, 429])
            yield* simulator.setModelConcurrencyLimit(GLM, Infinity)
            assert.deepStrictEqual((yield* burst(simulator, GLM, 4)).map((r) => r.status), [200, 200, 200, 200])
            const exit = yield* Effect.exit(simulator.setModelConcurrencyLimit(GLM, 0.5))
            assert.isTrue(exit._tag === "Failure" && String(exit.cause).includes(GLM))
          }),
        { modelConcurrencyLimits: { [GLM]: 1 }, perToken: "10 millis", answerTokens: [10, 10] }
      ))

    it.live("the project's limit answers in the same lower-case shape", () =>
      withSimulator(
        (simulator) =>
          Effect.gen(function*() {
            const replies = yield* burst(simulator, MODEL, 3)
            const limited = replies.filter((r) => r.status === 429)
            assert.strictEqual(limited.length, 1)
            assert.deepStrictEqual(JSON.parse(limited[0]!.text), {
              error: {
                message: "concurrency limit reached for requests: project limit reached",
                type: "rate_limit_error",
                param: null,
                code: "rate_limit_exceeded"
              }
            })
          }),
        { concurrencyLimit: 2, perToken: "10 millis", answerTokens: [10, 10] }
      ))

    it.live("a bad modelConcurrencyLimits entry is refused, naming the model", () =>
      Effect.gen(function*() {
        const exit = yield* Effect.exit(withSimulator(() => Effect.void, { modelConcurrencyLimits: { [GLM]: 0 } }))
        assert.isTrue(exit._tag === "Failure" && String(exit.cause).includes(GLM))
      }))

    it.live("Fault.rateLimited: the docs' sentence by default, the observed shape with scope model or project", () =>
      withSimulator((simulator) =>
        Effect.gen(function*() {
          yield* simulator.script(
            Fault.rateLimited(),
            Fault.rateLimited({ scope: "model" }),
            Fault.rateLimited({ scope: "project", millis: 20 })
          )
          const docs = yield* chat(simulator, { model: GLM })
          const model = yield* chat(simulator, { model: GLM })
          const project = yield* chat(simulator)
          const message = (text: string) => (JSON.parse(text) as { error: { message: string } }).error.message
          assert.deepStrictEqual([docs.status, model.status, project.status], [429, 429, 429])
          assert.strictEqual(message(docs.text), "Concurrency limit reached for requests")
          assert.strictEqual(
            message(model.text),
            "concurrency limit reached for requests: zai-org/GLM-5.2-project limit reached"
          )
          assert.strictEqual(message(project.text), "concurrency limit reached for requests: project limit reached")
          assert.deepStrictEqual(Fault.fromString("RateLimited:model"), Fault.rateLimited({ scope: "model" }))
        })
      ))
  })

  describe("fault draw", () => {
    const rates = [0.02, 0.05, 0.1, 0.2, 0.25, 0.3, 0.5, 0.8]

    it("for every seed, the first 50 requests see the configured rate within 2 points, and every prefix is close", () => {
      for (let seed = 0; seed < 500; seed++) {
        for (const rate of rates) {
          const random = generate.prng(seed)
          let state = FaultDraw.initial(rate)
          let faults = 0
          for (let i = 1; i <= 50; i++) {
            const [next, fault] = FaultDraw.step(state, random)
            state = next
            if (fault) faults++
            // within a block the count strays by at most that block's faults
            assert.isAtMost(
              Math.abs(faults - rate * i),
              Math.ceil(rate * FaultDraw.BLOCK) + 0.5,
              `seed ${seed} rate ${rate}`
            )
          }
          assert.isAtMost(Math.abs(faults / 50 - rate), 0.02, `seed ${seed} rate ${rate}: ${faults} faults in 50`)
        }
      }
    })

    it("the positions differ between seeds (the faults are shuffled, not evenly spaced)", () => {
      const pattern = (seed: number) => {
        const random = generate.prng(seed)
        let state = FaultDraw.initial(0.2)
        return Array.from({ length: 20 }, () => {
          const [next, fault] = FaultDraw.step(state, random)
          state = next
          return fault ? "x" : "."
        }).join("")
      }
      assert.isAbove(new Set(Array.from({ length: 20 }, (_, seed) => pattern(seed))).size, 10)
    })

    it.live("--fault-rate 0.2 with the default seed: 10 faults in the first 50 requests, some in the first 10", () =>
      withSimulator(
        (simulator) =>
          Effect.gen(function*() {
            const statuses: Array<number> = []
            for (let i = 0; i < 50; i++) statuses.push((yield* chat(simulator, { user: `call-${i}` })).status)
            const log = yield* simulator.log
            assert.strictEqual(log.filter((e) => e.fault !== undefined).length, 10)
            assert.isAbove(log.slice(0, 10).filter((e) => e.fault !== undefined).length, 0)
            assert.strictEqual(statuses.filter((s) => s !== 200).length, 10)
          }),
        { faultRate: 0.2, faults: [Fault.overloaded] }
      ))

    it.live("the default mix sends no Retry-After or retry-after-ms (W&B documents none); the fault stays available", () =>
      withSimulator(
        (simulator) =>
          Effect.gen(function*() {
            assert.isTrue(Fault.transient.every((f) => f._tag !== "RateLimited" || f.retryAfter === undefined))
            const headers = yield* Effect.promise(async () => {
              const seen: Array<string> = []
              for (let i = 0; i < 30; i++) {
                const response = await fetch(`${simulator.url}/chat/completions`, {
                  method: "POST",
                  headers: { authorization: "Bearer sim-key", "content-type": "application/json" },
                  body: JSON.stringify({ model: MODEL, messages: MESSAGES })
                }).catch(() => undefined)
                for (const name of ["retry-after", "retry-after-ms"]) {
                  if (response?.headers.has(name)) seen.push(name)
                }
                await response?.text().catch(() => "")
              }
              return seen
            })
            assert.deepStrictEqual(headers, [])
            assert.isTrue(Fault.all.some((f) => f._tag === "RateLimited" && f.retryAfter?.millis !== undefined))
          }),
        { faultRate: 1 }
      ))
  })

  describe("JSON schema instances", () => {
    const ajv = new Ajv2020({ strict: false })
    const Person = Schema.Struct({
      name: Schema.String.pipe(Schema.minLength(2)),
      age: Schema.Int.pipe(Schema.between(0, 130)),
      role: Schema.Literal("admin", "user"),
      tags: Schema.Array(Schema.String),
      manager: Schema.optional(Schema.NullOr(Schema.Struct({ name: Schema.String })))
    })
    const schemas: ReadonlyArray<object> = [
      { type: "string" },
      { type: "string", minLength: 30, maxLength: 32 },
      { type: "string", maxLength: 2 },
      { type: "string", format: "date-time" },
      { type: "integer", minimum: 5, maximum: 5 },
      { type: "integer", exclusiveMinimum: 0, exclusiveMaximum: 2 },
      { type: "number", minimum: 0.5, maximum: 0.75 },
      { type: "number", exclusiveMinimum: 1 },
      { type: "number", maximum: -1000 },
      { type: "integer", multipleOf: 7, minimum: 10 },
      { type: "boolean" },
      { type: "null" },
      { type: ["string", "null"] },
      { enum: ["red", "green", 3] },
      { const: { fixed: true } },
      { type: "array", items: { type: "integer", minimum: 0, maximum: 3 }, minItems: 3, uniqueItems: true },
      { type: "array", items: { type: "boolean" }, maxItems: 0 },
      { type: "array", prefixItems: [{ type: "string" }, { type: "number" }], items: false },
      { anyOf: [{ type: "null" }, { type: "object", properties: { a: { type: "string" } }, required: ["a"] }] },
      { oneOf: [{ type: "integer", minimum: 3 }] },
      {
        allOf: [{ type: "object", properties: { a: { type: "string" } }, required: ["a"] }, {
          properties: { b: { type: "integer" } },
          required: ["b"]
        }]
      },
      {
        $defs: {
          Node: {
            type: "object",
            properties: {
              value: { type: "integer" },
              children: { type: "array", items: { $ref: "#/$defs/Node" }, maxItems: 1 }
            },
            required: ["value"]
          }
        },
        $ref: "#/$defs/Node"
      },
      {
        type: "object",
        properties: {
          a: {
            type: "object",
            properties: {
              b: { type: "array", items: { type: "object", properties: { c: { enum: ["x"] } }, required: ["c"] } }
            },
            required: ["b"]
          }
        },
        required: ["a"],
        additionalProperties: false
      },
      { type: "object", required: ["undeclared"] },
      // Effect's own schemas, as @effect/ai hands them to a model (its draft-07 `$schema` left to Ajv's default draft)
      { ...JSONSchema.make(Person), $schema: undefined }
    ]

    it("every simple schema gets an instance that satisfies it, the same for the same seed", () => {
      for (const schema of schemas) {
        for (let seed = 0; seed < 25; seed++) {
          const value = jsonSchema.instance(schema, generate.prng(seed), ["alpha", "beta", "gamma"])
          const validate = ajv.compile(schema)
          assert.isTrue(
            validate(value),
            `${JSON.stringify(schema)} → ${JSON.stringify(value)}: ${ajv.errorsText(validate.errors)}`
          )
          assert.deepStrictEqual(jsonSchema.instance(schema, generate.prng(seed), ["alpha", "beta", "gamma"]), value)
        }
      }
    })
  })
})
