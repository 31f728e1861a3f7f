/**
 * Hostile HTTP answers: fast-check arbitraries of the raw bytes a broken server,
 * proxy or network could send back (malformed status lines and headers, wrong
 * framing, early closes, bodies nesting thousands deep, huge numbers, invalid
 * UTF-8, NUL bytes, `Retry-After` garbage, SSE streams of every odd shape), and
 * the outcome of running a call against one.
 *
 * `test/Hostile.test.ts` and the fuzz script (`pnpm fuzz`, in
 * `packages/benchmarks`) share this module and `RawServer.ts`; each wires the
 * client itself. Neither file imports the client, so that the benchmarks'
 * project can compile them without compiling the client's sources as its own.
 */
import * as Cause from "effect/Cause"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as fc from "effect/FastCheck"
import * as Option from "effect/Option"

// ---------------------------------------------------------------------------
// Answers
// ---------------------------------------------------------------------------

/** What the server does once the last piece is written. */
export type End = "close" | "reset" | "hang"

/**
 * One answer: raw bytes written in pieces, `pace` milliseconds apart, then the
 * socket closed, reset, or left open (the client's timeouts must end the call).
 * fast-check prints it by its label: the bytes can be megabytes.
 */
export class Answer {
  constructor(
    readonly label: string,
    readonly pieces: ReadonlyArray<Uint8Array>,
    readonly pace: number,
    readonly end: End
  ) {}
  get size(): number {
    return this.pieces.reduce((total, piece) => total + piece.length, 0)
  }
  describe(): string {
    return `${this.label}, ${this.size} bytes in ${this.pieces.length} pieces, pace ${this.pace} ms, ${this.end}`
  }
  [fc.toStringMethod](): string {
    return `Answer(${this.describe()})`
  }
}

/** What the server answers to the plain request and to the streaming one. */
export interface Scenario {
  readonly plain: Answer
  readonly stream: Answer
}

// ---------------------------------------------------------------------------
// JSON fragments
// ---------------------------------------------------------------------------

/** A depth, mostly past where a recursive walk of the value overflows the stack (a few thousand frames). */
const depth = fc.oneof(
  fc.integer({ min: 1, max: 50 }),
  fc.integer({ min: 2_000, max: 12_000 }),
  fc.integer({ min: 12_000, max: 200_000 })
)

const nested = (open: string, leaf: string, close: string, name: string) =>
  depth.map((n) => ({ text: open.repeat(n) + leaf + close.repeat(n), name: `${name}(${n})` }))

/** JSON text for one slot of a body, named for the label. Each is under ~1 MB. */
const fragment: fc.Arbitrary<{ readonly text: string; readonly name: string }> = fc.oneof(
  // Where a fold merges objects key by key, a "__proto__" key must stay data.
  fc.constant({ text: "{\"__proto__\":{\"polluted\":\"yes\"},\"a\":{\"__proto__\":{\"polluted\":1}}}", name: "proto" }),
  nested("[", "", "]", "deep-array"),
  nested("{\"a\":", "1", "}", "deep-object"),
  nested("[{\"error\":", "null", "}]", "deep-mixed"),
  // Not JSON at all: opened thousands deep and never closed.
  depth.map((n) => ({ text: "[".repeat(n), name: `unclosed(${n})` })),
  fc.constantFrom(
    "1e400",
    "-1e400",
    "1".repeat(400),
    `0.${"0".repeat(400)}1`,
    "1e-400",
    "-0",
    "9007199254740993",
    "1.5",
    "-1"
  ).map((text) => ({ text, name: `number(${text.slice(0, 12)})` })),
  fc.integer({ min: 0, max: 1_000_000 }).map((n) => ({ text: `"${"x".repeat(n)}"`, name: `long-string(${n})` })),
  fc.constantFrom("\"\\u0000\"", "\"\\ud800\"", "\"\\udfff\\ud800\"", "\"\u2028\u2029\"", "\"\\\"\"", "\"\u0000\"").map(
    (
      text
    ) => ({ text, name: "odd-string" })
  ),
  fc.integer({ min: 0, max: 20_000 }).map((n) => ({
    text: `{${Array.from({ length: n }, (_, i) => `"k${i}":${i}`).join(",")}}`,
    name: `wide-object(${n})`
  })),
  fc.integer({ min: 0, max: 100_000 }).map((n) => ({ text: `[${"0,".repeat(n)}0]`, name: `wide-array(${n})` })),
  fc.constantFrom(
    "null",
    "true",
    "0",
    "\"\"",
    "{}",
    "[]",
    "\"__proto__\"",
    "{\"__proto__\":{\"polluted\":\"yes\"}}",
    "{\"constructor\":{\"prototype\":{\"polluted\":\"yes\"}}}"
  ).map((text) => ({ text, name: `scalar(${text.slice(0, 16)})` }))
)

const SLOT = "@@SLOT@@"

/** `template` with the value at `path` replaced by `fragment`'s text (or added, where the path is new). */
const withSlot = (
  template: unknown,
  path: ReadonlyArray<string | number>,
  piece: { readonly text: string }
): string => {
  const copy: unknown = JSON.parse(JSON.stringify(template))
  if (path.length === 0) return piece.text
  let at = copy as Record<string | number, unknown>
  path.slice(0, -1).forEach((key, i) => {
    if (typeof at[key] !== "object" || at[key] === null) at[key] = typeof path[i + 1] === "number" ? [] : {}
    at = at[key] as Record<string | number, unknown>
  })
  // A key named "__proto__" must become a field of the text, not the copy's prototype.
  Object.defineProperty(at, path[path.length - 1], {
    value: SLOT,
    enumerable: true,
    writable: true,
    configurable: true
  })
  return JSON.stringify(copy).replace(`"${SLOT}"`, () => piece.text)
}

const completion = {
  id: "chatcmpl-1",
  object: "chat.completion",
  created: 1,
  model: "m",
  choices: [{ index: 0, message: { role: "assistant", content: "Hi" }, finish_reason: "stop" }],
  usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 }
}

const completionPaths: ReadonlyArray<ReadonlyArray<string | number>> = [
  [],
  ["id"],
  ["created"],
  ["model"],
  ["object"],
  ["choices"],
  ["choices", 0],
  ["choices", 0, "index"],
  ["choices", 0, "message"],
  ["choices", 0, "message", "content"],
  ["choices", 0, "message", "reasoning_content"],
  ["choices", 0, "message", "tool_calls"],
  ["choices", 0, "message", "tool_calls", 0],
  ["choices", 0, "message", "tool_calls", 0, "function", "arguments"],
  ["choices", 0, "logprobs"],
  ["choices", 0, "finish_reason"],
  ["usage"],
  ["usage", "total_tokens"],
  ["usage", "prompt_tokens_details", "cached_tokens"],
  ["system_fingerprint"],
  ["extra"],
  ["__proto__"]
]

const chunk = (delta: unknown, finish: string | null = null, extra: Record<string, unknown> = {}) => ({
  id: "chatcmpl-1",
  object: "chat.completion.chunk",
  created: 1,
  model: "m",
  choices: [{ index: 0, delta, finish_reason: finish }],
  ...extra
})

/** A piece of a tool call of a type the client keeps whole, so that streamed pieces are merged. */
const customCall = { index: 0, type: "custom", id: "call-1", custom: { input: "x" } }

const chunkTemplates: ReadonlyArray<readonly [unknown, ReadonlyArray<ReadonlyArray<string | number>>]> = [
  [chunk({ content: "Hi" }), [
    [],
    ["id"],
    ["created"],
    ["model"],
    ["choices"],
    ["choices", 0, "delta"],
    ["choices", 0, "delta", "content"],
    ["choices", 0, "delta", "reasoning"],
    ["choices", 0, "logprobs"],
    ["choices", 0, "index"],
    ["usage"],
    ["__proto__"]
  ]],
  [chunk({ tool_calls: [customCall] }), [
    ["choices", 0, "delta", "tool_calls"],
    ["choices", 0, "delta", "tool_calls", 0, "custom"],
    ["choices", 0, "delta", "tool_calls", 0, "custom", "input"],
    ["choices", 0, "delta", "tool_calls", 0, "__proto__"],
    ["choices", 0, "delta", "tool_calls", 0, "index"]
  ]],
  [chunk({}, null, { choices: [], usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 } }), [
    ["usage", "total_tokens"],
    ["usage", "prompt_tokens"],
    ["usage", "completion_tokens_details"]
  ]]
]

const hostileCompletion = fc.tuple(fc.constantFrom(...completionPaths), fragment).map(([path, piece]) => ({
  text: withSlot(completion, path, piece),
  name: `completion.${path.join(".") || "(body)"}=${piece.name}`
}))

/** Pieces of tool calls come often: the fold merges them, walking whatever they hold. */
const hostileChunk = fc.tuple(
  fc.oneof(
    { weight: 2, arbitrary: fc.constant(chunkTemplates[0]) },
    { weight: 3, arbitrary: fc.constant(chunkTemplates[1]) },
    { weight: 1, arbitrary: fc.constant(chunkTemplates[2]) }
  ).chain(([template, paths]) => fc.constantFrom(...paths).map((path) => [template, path] as const)),
  fragment
).map(([[template, path], piece]) => ({
  text: withSlot(template, path, piece),
  name: `chunk.${path.join(".") || "(body)"}=${piece.name}`
}))

const errorBody: fc.Arbitrary<{ readonly text: string; readonly name: string }> = fc.oneof(
  fragment.map((piece) => ({ text: `{"error":${piece.text}}`, name: `error=${piece.name}` })),
  fragment.map((piece) => ({
    text: `{"error":{"message":${piece.text},"type":"server_error","code":${piece.text.slice(0, 20_000)}}}`,
    name: `error.message=${piece.name}`
  })),
  fragment.map((piece) => ({ text: `{"detail":${piece.text}}`, name: `detail=${piece.name}` })),
  fragment.map((piece) => ({ text: `{"object":"error","message":${piece.text}}`, name: `object-error=${piece.name}` })),
  fc.integer({ min: 0, max: 50_000 }).map((n) => ({
    text: `{"detail":[${
      Array.from({ length: n }, (_, i) => `{"loc":["body",${i}],"msg":"field required"}`).join(",")
    }]}`,
    name: `detail-list(${n})`
  })),
  fc.constantFrom(
    "",
    "Internal Server Error",
    "<html><body>502 Bad Gateway</body></html>",
    "{\"error\":{\"message\":\"Rate limit\",\"code\":\"rate_limit_exceeded\"}}",
    "{\"error\":{\"message\":\"quota\",\"code\":1e400}}",
    "{\"error\":{\"message\":{\"nested\":true},\"code\":[1]}}",
    "\"just a string\"",
    "null"
  ).map((text) => ({ text, name: `error-text(${text.slice(0, 16)})` }))
)

// ---------------------------------------------------------------------------
// Server-sent events
// ---------------------------------------------------------------------------

/** One event as its field lines (without line endings). */
type EventLines = ReadonlyArray<string>

const data = (json: unknown): EventLines => [`data: ${JSON.stringify(json)}`]

const sseEvent: fc.Arbitrary<{ readonly lines: EventLines; readonly name: string }> = fc.oneof(
  {
    weight: 16,
    arbitrary: fc.constantFrom(
      { lines: data(chunk({ role: "assistant", content: "" })), name: "role" },
      { lines: data(chunk({ content: "Hi" })), name: "content" },
      { lines: data(chunk({ reasoning: "hmm" })), name: "reasoning" },
      { lines: data(chunk({ tool_calls: [customCall] })), name: "custom-call" },
      { lines: data(chunk({}, "stop")), name: "finish" },
      {
        lines: data(
          chunk({}, null, { choices: [], usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 } })
        ),
        name: "usage"
      }
    )
  },
  { weight: 5, arbitrary: hostileChunk.map(({ name, text }) => ({ lines: [`data: ${text}`], name })) },
  { weight: 2, arbitrary: fc.constant({ lines: ["data: [DONE]"], name: "done" }) },
  {
    weight: 2,
    arbitrary: errorBody.map(({ name, text }) => ({ lines: [`data: ${text.replace(/[\r\n]/g, " ")}`], name }))
  },
  {
    weight: 2,
    arbitrary: fc.constantFrom(
      { lines: ["event: error", "data: upstream exploded"], name: "event-error-text" },
      { lines: ["event: error", "data: {\"error\":{\"message\":\"overloaded\"}}"], name: "event-error-json" },
      { lines: ["event: error", `data: ${JSON.stringify(chunk({ content: "Hi" }))}`], name: "event-error-chunk" },
      { lines: ["event: error", "data:"], name: "event-error-empty" },
      { lines: ["event: error"], name: "event-error-no-data" },
      { lines: ["data: {\"error\":null,\"choices\":[]}"], name: "error-null" },
      { lines: ["data: {\"object\":\"error\"}"], name: "object-error-bare" },
      { lines: ["data: hello"], name: "not-json" },
      { lines: ["data:"], name: "empty-data" },
      { lines: ["data:{\"id\":\"x\",\"created\":1,\"model\":\"m\",\"choices\":[]}"], name: "no-space" },
      { lines: ["data: {\"id\":\"x\",", "data: \"created\":1,\"model\":\"m\",\"choices\":[]}"], name: "split-data" },
      { lines: [": keep-alive"], name: "comment" },
      { lines: ["retry: abc", "id: \u0000x"], name: "retry-id" },
      { lines: ["event: ping", "data: {}"], name: "ping" },
      { lines: ["data: \u0000\u0000"], name: "nul" },
      { lines: ["data: [DONE] "], name: "done-space" },
      { lines: ["DATA: [DONE]"], name: "upper-field" }
    )
  },
  {
    weight: 1,
    arbitrary: fc.integer({ min: 1, max: 300_000 }).map((n) => ({
      lines: [`data: ${"x".repeat(n)}`],
      name: `line(${n})`
    }))
  }
)

const lineEnding = fc.constantFrom("\n", "\r\n", "\r")

const sseBody: fc.Arbitrary<{ readonly text: string; readonly name: string }> = fc.record({
  events: fc.array(sseEvent, { minLength: 0, maxLength: 8 }),
  // Most streams end as a server ends them, so that some cases reach the end of the stream.
  tail: fc.constantFrom(["finish", "done"], ["finish", "usage", "done"], ["done"], [], ["finish"]),
  eol: lineEnding,
  bom: fc.oneof({ weight: 8, arbitrary: fc.constant(false) }, { weight: 1, arbitrary: fc.constant(true) }),
  trailingBlank: fc.oneof({ weight: 5, arbitrary: fc.constant(true) }, { weight: 1, arbitrary: fc.constant(false) })
}).map(({ bom, eol, events, tail, trailingBlank }) => {
  const tailEvents = tail.map((name) =>
    name === "done" ? ["data: [DONE]"] : name === "finish" ? data(chunk({}, "stop")) : data(chunk({}, null, {
      choices: [],
      usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 }
    }))
  )
  const all = [...events.map((event) => event.lines), ...tailEvents]
  const text = all.map((lines, i) => lines.join(eol) + eol + (i < all.length - 1 || trailingBlank ? eol : "")).join("")
  return {
    text: bom ? `\ufeff${text}` : text,
    name: `${bom ? "bom-" : ""}sse[${events.map((event) => event.name).join(",")}|${tail.join(",")}]${
      JSON.stringify(eol)
    }`
  }
})

// ---------------------------------------------------------------------------
// Status lines, headers, framing
// ---------------------------------------------------------------------------

const status = fc.oneof(
  { weight: 12, arbitrary: fc.constant(200) },
  {
    weight: 6,
    arbitrary: fc.constantFrom(
      100,
      101,
      103,
      201,
      204,
      206,
      299,
      301,
      304,
      400,
      401,
      402,
      403,
      404,
      409,
      413,
      422,
      429,
      500,
      502,
      503,
      504,
      599,
      600,
      999
    )
  }
)

const statusLine = (code: number): fc.Arbitrary<string> =>
  fc.oneof(
    { weight: 20, arbitrary: fc.constant(`HTTP/1.1 ${code} Reason\r\n`) },
    {
      weight: 1,
      arbitrary: fc.constantFrom(
        `HTTP/1.1 ${code}\r\n`,
        `HTTP/1.1 ${code} \u0000\r\n`,
        `HTTP/1.1 ${code} OK\n`,
        `HTTP/1.0 ${code} OK\r\n`,
        `HTTP/2 ${code} OK\r\n`,
        `HTTP/1.1 ${code * 10} OK\r\n`,
        "HTTP/1.1 20 OK\r\n",
        "HTTP/1.1 -200 OK\r\n",
        "HTTP/1.1 OK\r\n",
        "ICY 200 OK\r\n",
        "garbage\r\n",
        "",
        `HTTP/1.1 ${code} Reason\r\n`.repeat(2)
      )
    }
  )

const retryAfter = fc.oneof(
  { weight: 6, arbitrary: fc.constant<ReadonlyArray<string>>([]) },
  {
    weight: 4,
    arbitrary: fc.constantFrom(
      "0",
      "1",
      "0.001",
      "-1",
      "-0",
      "1e3",
      "1".repeat(400),
      "99999999999999999999",
      "NaN",
      "Infinity",
      "",
      "  ",
      "soon",
      "Wed, 21 Oct 2015 07:28:00 GMT",
      "Fri, 31 Dec 9999 23:59:59 GMT",
      "Mon, 32 Foo 2024 99:99:99 GMT",
      "Thu, 01 Jan 1970 00:00:00 GMT",
      "1, 2",
      "\u00ff\u00fe"
    ).chain((value) =>
      fc.constantFrom(
        [`Retry-After: ${value}`],
        [`retry-after-ms: ${value}`],
        [`Retry-After: ${value}`, `retry-after-ms: ${value}`],
        [`Retry-After: 1`, `Retry-After: ${value}`]
      )
    )
  }
)

const junkHeaders = fc.oneof(
  { weight: 12, arbitrary: fc.constant<ReadonlyArray<string>>([]) },
  {
    weight: 2,
    arbitrary: fc.constantFrom<ReadonlyArray<string>>(
      ["x-request-id: req-1"],
      ["x-request-id: a", "x-request-id: b"],
      [`x-request-id: ${"r".repeat(8_000)}`],
      ["x-request-id: \u00ff\u00e9\u0001"],
      ["X-Junk: \u0000"],
      ["NoColonLine"],
      [" folded-continuation"],
      [": empty-name"],
      [`X-Long: ${"a".repeat(20_000)}`],
      Array.from({ length: 200 }, (_, i) => `X-Many-${i}: ${i}`),
      ["Content-Encoding: gzip"],
      ["Content-Encoding: br, zstd"],
      ["Connection: keep-alive"],
      ["Upgrade: h2c", "Connection: Upgrade"],
      ["Content-Type: application/json", "Content-Type: text/event-stream"]
    )
  }
)

/** How the body's length is told: right, wrong, or not at all. */
type Framing =
  | "length"
  | "close"
  | "chunked"
  | "length-short"
  | "length-long"
  | "length-garbage"
  | "length-twice"
  | "chunked-broken"
  | "chunked-and-length"

const framing = fc.oneof(
  { weight: 8, arbitrary: fc.constantFrom<Framing>("length", "chunked", "close") },
  {
    weight: 3,
    arbitrary: fc.constantFrom<Framing>(
      "length-short",
      "length-long",
      "length-garbage",
      "length-twice",
      "chunked-broken",
      "chunked-and-length"
    )
  }
)

const latin1 = (text: string): Uint8Array => Uint8Array.from(text, (c) => c.charCodeAt(0) & 0xff)
const utf8 = (text: string): Uint8Array => new TextEncoder().encode(text)

const concat = (parts: ReadonlyArray<Uint8Array>): Uint8Array => {
  const out = new Uint8Array(parts.reduce((total, part) => total + part.length, 0))
  let at = 0
  for (const part of parts) {
    out.set(part, at)
    at += part.length
  }
  return out
}

/** Chunked encoding of `body` in `cuts` pieces, broken in one way if asked. */
const chunked = (body: Uint8Array, cuts: ReadonlyArray<number>, broken: number | undefined): Uint8Array => {
  const parts: Array<Uint8Array> = []
  let start = 0
  for (const end of [...cuts.map((cut) => Math.floor(cut * body.length)).sort((a, b) => a - b), body.length]) {
    if (end <= start) continue
    const piece = body.subarray(start, end)
    const size = broken === 0 ? "zz" : broken === 1 ? (piece.length + 5).toString(16) : piece.length.toString(16)
    parts.push(latin1(`${broken === 2 ? `${size};ext=1` : size}\r\n`), piece, latin1(broken === 3 ? "" : "\r\n"))
    start = end
  }
  parts.push(latin1(broken === 4 ? "" : broken === 5 ? "0\r\nX-Trailer: 1\r\n\r\n" : "0\r\n\r\n"))
  return concat(parts)
}

/** Raw bytes that are not UTF-8 (or only just), put into a body. */
const badBytes = fc.constantFrom(
  [0xff],
  [0xc3, 0x28],
  [0xe2, 0x82],
  [0xed, 0xa0, 0x80],
  [0xf0, 0x9f, 0x98],
  [0xc0, 0xaf],
  [0x00],
  [0xef, 0xbb, 0xbf]
)

const mutations = fc.oneof(
  { weight: 6, arbitrary: fc.constant<ReadonlyArray<readonly [number, ReadonlyArray<number>]>>([]) },
  { weight: 1, arbitrary: fc.array(fc.tuple(fc.double({ min: 0, max: 1, noNaN: true }), badBytes), { maxLength: 3 }) }
)

const mutate = (body: Uint8Array, edits: ReadonlyArray<readonly [number, ReadonlyArray<number>]>): Uint8Array => {
  let out = body
  for (const [where, bytes] of edits) {
    const at = Math.floor(where * out.length)
    out = concat([out.subarray(0, at), Uint8Array.from(bytes), out.subarray(at)])
  }
  return out
}

const contentType = (kind: "json" | "sse" | "error") =>
  fc.oneof(
    {
      weight: 10,
      arbitrary: fc.constant(kind === "sse" ? ["Content-Type: text/event-stream"] : ["Content-Type: application/json"])
    },
    {
      weight: 2,
      arbitrary: fc.constantFrom<ReadonlyArray<string>>(
        [],
        ["Content-Type: text/event-stream; charset=utf-8"],
        ["Content-Type: TEXT/EVENT-STREAM"],
        ["Content-Type: application/json; charset=latin1"],
        ["Content-Type: text/html"],
        ["Content-Type: text/event-stream\u0000"],
        ["Content-Type:"]
      )
    }
  )

/** A body for a request: what the endpoint should send, mostly, and sometimes what the other one would. */
const body = (code: number, stream: boolean) => {
  const errorish = code < 200 || code >= 300
  const json = fc.oneof(
    { weight: 2, arbitrary: fc.constant({ text: JSON.stringify(completion), name: "completion" }) },
    { weight: 5, arbitrary: hostileCompletion }
  )
  const kinds = errorish
    ? [{ weight: 4, arbitrary: errorBody.map((b) => ({ ...b, kind: "error" as const })) }]
    : stream
    ? [
      { weight: 6, arbitrary: sseBody.map((b) => ({ ...b, kind: "sse" as const })) },
      { weight: 1, arbitrary: json.map((b) => ({ ...b, kind: "json" as const })) }
    ]
    : [
      { weight: 6, arbitrary: json.map((b) => ({ ...b, kind: "json" as const })) },
      { weight: 1, arbitrary: sseBody.map((b) => ({ ...b, kind: "sse" as const })) }
    ]
  return fc.oneof(
    ...kinds,
    {
      weight: 1,
      arbitrary: fc.uint8Array({ maxLength: 64 }).map((bytes) => ({
        text: "",
        bytes,
        name: "random-bytes",
        kind: "json" as const
      }))
    }
  )
}

const endOf = fc.oneof(
  { weight: 30, arbitrary: fc.constant<End>("close") },
  { weight: 3, arbitrary: fc.constant<End>("reset") },
  { weight: 1, arbitrary: fc.constant<End>("hang") }
)

/** A whole answer to one request. */
export const answer = (stream: boolean): fc.Arbitrary<Answer> =>
  status.chain((code) =>
    fc.record({
      line: statusLine(code),
      body: body(code, stream),
      retryAfter,
      junk: junkHeaders,
      framing,
      mutations,
      cuts: fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 5 }),
      pace: fc.oneof({ weight: 6, arbitrary: fc.constant(0) }, {
        weight: 1,
        arbitrary: fc.integer({ min: 1, max: 30 })
      }),
      end: endOf,
      broken: fc.integer({ min: 0, max: 5 })
    }).chain((parts) => contentType(parts.body.kind).map((type) => ({ ...parts, type })))
  ).map(({ body, broken, cuts, end, framing, junk, line, mutations, pace, retryAfter, type }) => {
    const raw = mutate("bytes" in body ? body.bytes : utf8(body.text), mutations)
    const headers = [...type, ...retryAfter, ...junk]
    let payload = raw
    switch (framing) {
      case "length":
        headers.push(`Content-Length: ${raw.length}`)
        break
      case "close":
        headers.push("Connection: close")
        break
      case "chunked":
        headers.push("Transfer-Encoding: chunked")
        payload = chunked(raw, cuts, undefined)
        break
      case "length-short":
        headers.push(`Content-Length: ${Math.floor(raw.length / 2)}`)
        break
      case "length-long":
        headers.push(`Content-Length: ${raw.length + 10}`)
        break
      case "length-garbage":
        headers.push(`Content-Length: ${["-1", "1e3", "abc", "", "99999999999999999999", `${raw.length}, 0`][broken]}`)
        break
      case "length-twice":
        headers.push(`Content-Length: ${raw.length}`, `Content-Length: ${raw.length + 1}`)
        break
      case "chunked-broken":
        headers.push("Transfer-Encoding: chunked")
        payload = chunked(raw, cuts, broken)
        break
      case "chunked-and-length":
        headers.push("Transfer-Encoding: chunked", `Content-Length: ${raw.length}`)
        payload = chunked(raw, cuts, undefined)
        break
    }
    const whole = concat([latin1(`${line}${headers.map((header) => `${header}\r\n`).join("")}\r\n`), payload])
    const pieces: Array<Uint8Array> = []
    let start = 0
    for (const end of [...cuts.map((cut) => Math.floor(cut * whole.length)).sort((a, b) => a - b), whole.length]) {
      if (end > start) pieces.push(whole.subarray(start, end))
      start = Math.max(start, end)
    }
    const label = [
      JSON.stringify(line.slice(0, 24)),
      body.name.slice(0, 160),
      framing,
      ...(mutations.length > 0 ? [`bad-bytes(${mutations.length})`] : []),
      ...(retryAfter.length > 0 ? [retryAfter.join("+").slice(0, 60)] : []),
      ...(junk.length > 0 ? [junk[0].slice(0, 40)] : []),
      ...(type.length === 1 && /json|event-stream$/.test(type[0]) ? [] : [JSON.stringify(type)])
    ].join(" ")
    return new Answer(label, pieces, pace, end)
  })

/** Answers to both requests of a case. */
export const scenario: fc.Arbitrary<Scenario> = fc.record({ plain: answer(false), stream: answer(true) })

/**
 * The scenario of case `index` of a run seeded `seed`: each case has a seed of
 * its own, so one case is reproduced without generating those before it.
 */
export const scenarioAt = (seed: number, index: number): Scenario =>
  fc.sample(scenario, { seed: (seed ^ Math.imul(index + 1, 0x9e3779b1)) | 0, numRuns: 1 })[0]

// ---------------------------------------------------------------------------
// Outcomes
// ---------------------------------------------------------------------------

const prototypeKeys = new Set(Reflect.ownKeys(Object.prototype))

/**
 * Keys a body managed to add to `Object.prototype` (the generated bodies try,
 * with `"__proto__"` keys); removed once reported, so that one case does not
 * spoil the next.
 */
export const prototypePollution = (): ReadonlyArray<string> => {
  const added = Reflect.ownKeys(Object.prototype).filter((key) => !prototypeKeys.has(key))
  for (const key of added) Reflect.deleteProperty(Object.prototype, key)
  return added.map(String)
}

/** How one call against a hostile answer ended. Only the first two are allowed. */
export type Outcome =
  | { readonly _tag: "Success" }
  | { readonly _tag: "Typed"; readonly tag: string }
  | { readonly _tag: "Defect"; readonly detail: string }
  | { readonly _tag: "Hang" }

/**
 * Runs `call` and says how it ended: a value, a failure that `isTyped` accepts,
 * anything else (a defect, an interruption, a failure of another type), or
 * nothing within `hangAfter`. The call is disconnected from the timer, so that a
 * call that cannot even be interrupted is reported as a hang rather than hanging
 * the run.
 */
export const outcomeOf = <A, E, R>(
  call: Effect.Effect<A, E, R>,
  isTyped: (error: unknown) => error is { readonly _tag: string },
  hangAfter: Duration.DurationInput
): Effect.Effect<Outcome, never, R> =>
  Effect.map(
    Effect.timeoutOption(Effect.disconnect(Effect.exit(call)), hangAfter),
    Option.match({
      onNone: (): Outcome => ({ _tag: "Hang" }),
      onSome: Exit.match({
        onSuccess: (): Outcome => ({ _tag: "Success" }),
        onFailure: (cause): Outcome => {
          const failure = Cause.failureOption(cause)
          if (Option.isSome(failure) && isTyped(failure.value)) return { _tag: "Typed", tag: failure.value._tag }
          return { _tag: "Defect", detail: Cause.pretty(cause).slice(0, 2_000) }
        }
      })
    })
  )

/**
 * The client's limits for a hostile case, shared by the property tests and `pnpm fuzz`: short enough that
 * every call ends on its own well before `HANG_AFTER`, which then means a hang.
 */
export const clientLimits = {
  retry: { maxRetries: 1, baseDelay: "1 millis", maxRetryAfter: "10 millis" },
  timeout: "300 millis",
  firstChunkTimeout: "300 millis",
  idleTimeout: "300 millis",
  totalTimeout: "1 second"
} as const

export const HANG_AFTER = "4 seconds"
