/**
 * The simulator's HTTP server.
 *
 * It is written on `node:http` rather than @effect/platform's HttpServer because
 * its job is to misbehave at the socket level: send headers and then nothing,
 * send half a body, destroy a connection mid-stream. Those need the raw socket
 * and response objects, which a well-behaved server framework rightly hides. The
 * public module wraps this class in Effect (a scoped resource and a service).
 */
import * as http from "node:http"
import type { Socket } from "node:net"
import type { Fault } from "../Fault.js"
import type { LogEntry, ModelEntry, Outcome } from "../InferenceSimulator.js"
import * as generate from "./generate.js"

/** @internal */
export interface Config {
  readonly host: string
  readonly port: number
  readonly apiKeys: ReadonlyArray<string>
  readonly models: ReadonlyArray<ModelEntry>
  readonly seed: number
  readonly firstByteMillis: number
  readonly perTokenMillis: number
  readonly answerTokens: readonly [number, number]
  readonly concurrencyLimit: number
  readonly faultRate: number
  readonly faults: ReadonlyArray<Fault>
  readonly maxLogEntries: number
  readonly onLogEntry: ((entry: LogEntry) => void) | undefined
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] }

const MESSAGES = {
  unauthorized: "Authentication failed",
  quota: "You exceeded your current quota, please check your plan and billing details",
  region: "Country, region, or territory not supported",
  notEnabled: "The inference gateway is not enabled for your organization",
  notFound: "The requested resource was not found",
  concurrency: "Concurrency limit reached for requests",
  personal: "W&B Inference isn't available for personal accounts",
  internal: "The server had an error while processing your request",
  overloaded: "The engine is currently overloaded, please try again later"
} as const

const errorBody = (message: string, type: string, code: string | null = null, param: string | null = null) => ({
  error: { message, type, param, code }
})

const html = (status: number, title: string) =>
  `<html>\r\n<head><title>${status} ${title}</title></head>\r\n<body>\r\n<center><h1>${status} ${title}</h1></center>\r\n</body>\r\n</html>\r\n`

interface StatusReply {
  readonly status: number
  readonly body: string
  readonly contentType: string
  readonly headers?: Record<string, string>
}

const json = (status: number, body: unknown, headers?: Record<string, string>): StatusReply => ({
  status,
  body: JSON.stringify(body),
  contentType: "application/json",
  ...(headers === undefined ? {} : { headers })
})

/** The status and body W&B answers for each status fault. */
const statusReply = (fault: Fault, now: number): StatusReply | undefined => {
  switch (fault._tag) {
    case "BadRequest":
      return json(
        400,
        errorBody(
          "Invalid value for 'max_tokens': must be a positive integer",
          "invalid_request_error",
          null,
          "max_tokens"
        )
      )
    case "Unauthorized":
      return json(401, errorBody(MESSAGES.unauthorized, "authentication_error"))
    case "QuotaExceeded":
      return json(402, errorBody(MESSAGES.quota, "insufficient_quota", "insufficient_quota"))
    case "RegionNotSupported":
      return json(403, errorBody(MESSAGES.region, "permission_error", "unsupported_country_region_territory"))
    case "GatewayNotEnabled":
      return json(403, errorBody(MESSAGES.notEnabled, "permission_error"))
    case "ModelNotFound":
      return json(404, errorBody(MESSAGES.notFound, "not_found_error", "model_not_found"))
    case "Unprocessable":
      return json(422, {
        detail: [{
          loc: ["body", "temperature"],
          msg: "Input should be less than or equal to 2",
          type: "less_than_equal"
        }]
      })
    case "RateLimited": {
      const headers: Record<string, string> = {}
      const wait = fault.retryAfter
      if (wait?.seconds !== undefined) headers["retry-after"] = String(wait.seconds)
      if (wait?.millis !== undefined) headers["retry-after-ms"] = String(wait.millis)
      if (wait?.httpDateIn !== undefined) headers["retry-after"] = new Date(now + wait.httpDateIn * 1000).toUTCString()
      return json(429, errorBody(MESSAGES.concurrency, "rate_limit_error"), headers)
    }
    case "QuotaExceeded429":
      return json(429, errorBody(MESSAGES.quota, "insufficient_quota", "insufficient_quota"))
    case "PersonalAccount":
      return json(429, errorBody(MESSAGES.personal, "permission_error"))
    case "InternalError":
      return json(500, errorBody(MESSAGES.internal, "server_error"))
    case "BadGateway":
      return { status: 502, body: html(502, "Bad Gateway"), contentType: "text/html" }
    case "Overloaded":
      return json(503, errorBody(MESSAGES.overloaded, "server_error", "engine_overloaded"))
    case "GatewayTimeout":
      return { status: 504, body: html(504, "Gateway Time-out"), contentType: "text/html" }
    case "NonJsonBody":
      return { status: 200, body: "<html><body>Service is up</body></html>", contentType: "text/html" }
    case "WrongShapeBody":
      return json(200, { result: "ok", choices: "none" })
    default:
      return undefined
  }
}

/** The OpenAI error `type` for a status. */
const typeOfStatus = (status: number): string => {
  switch (status) {
    case 400:
      return "invalid_request_error"
    case 401:
      return "authentication_error"
    case 402:
      return "insufficient_quota"
    case 403:
      return "permission_error"
    case 404:
      return "not_found_error"
    case 429:
      return "rate_limit_error"
    case 503:
      return "overloaded_error"
    default:
      return "server_error"
  }
}

const sleep = (ms: number, signal: AbortSignal): Promise<void> =>
  ms <= 0 || signal.aborted ? Promise.resolve() : new Promise((resolve) => {
    const timer = setTimeout(done, ms)
    function done() {
      clearTimeout(timer)
      signal.removeEventListener("abort", done)
      resolve()
    }
    signal.addEventListener("abort", done, { once: true })
  })

/** Writes and waits for the socket to drain when its buffer is full, so a slow reader slows the stream. */
const write = (res: http.ServerResponse, chunk: string, signal: AbortSignal): Promise<void> =>
  res.destroyed || signal.aborted ?
    Promise.resolve() :
    res.write(chunk) ?
    Promise.resolve() :
    new Promise((resolve) => {
      const done = () => {
        res.off("drain", done)
        signal.removeEventListener("abort", done)
        resolve()
      }
      res.once("drain", done)
      signal.addEventListener("abort", done, { once: true })
    })

const sse = (data: unknown): string => `data: ${JSON.stringify(data)}\n\n`

interface ChatRequest extends generate.GenerateRequest {
  readonly stream?: boolean | undefined
  readonly stream_options?: { readonly include_usage?: boolean | undefined } | undefined
}

const isChatRequest = (u: unknown): u is ChatRequest =>
  typeof u === "object" && u !== null && typeof (u as { model?: unknown }).model === "string" &&
  Array.isArray((u as { messages?: unknown }).messages) && (u as { messages: Array<unknown> }).messages.length > 0

/** @internal */
export class Simulator {
  private readonly server: http.Server
  private readonly sockets = new Set<Socket>()
  private readonly pending = new Set<AbortController>()
  private readonly inFlightByProject = new Map<string, number>()
  private readonly entries: Array<Mutable<LogEntry>> = []
  private readonly queue: Array<Fault | "ok"> = []
  private faultRate: number
  private faults: ReadonlyArray<Fault>
  private readonly chaos: () => number
  private nextId = 1
  port = 0

  constructor(private readonly config: Config) {
    this.faultRate = config.faultRate
    this.faults = config.faults
    this.chaos = generate.prng(config.seed ^ 0x9E3779B9)
    this.server = http.createServer({ keepAliveTimeout: 5_000 }, (req, res) => this.handle(req, res))
    this.server.on("connection", (socket) => {
      this.sockets.add(socket)
      socket.on("close", () => this.sockets.delete(socket))
    })
    // A client that resets its own connection must not take the process down.
    this.server.on("clientError", (_error, socket) => socket.destroy())
  }

  start(): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.once("error", reject)
      this.server.listen(this.config.port, this.config.host, () => {
        this.server.off("error", reject)
        const address = this.server.address()
        this.port = typeof address === "object" && address !== null ? address.port : this.config.port
        resolve(this.port)
      })
    })
  }

  close(): Promise<void> {
    for (const controller of this.pending) controller.abort()
    return new Promise((resolve) => {
      this.server.close(() => resolve())
      this.server.closeAllConnections()
    })
  }

  script(faults: ReadonlyArray<Fault | "ok">): void {
    this.queue.push(...faults)
  }

  setChaos(rate: number, faults: ReadonlyArray<Fault> | undefined): void {
    this.faultRate = rate
    if (faults !== undefined) this.faults = faults
  }

  log(): ReadonlyArray<LogEntry> {
    const from = Math.max(0, this.entries.length - this.config.maxLogEntries)
    return this.entries.slice(from).map((entry) => ({ ...entry }))
  }

  clearLog(): void {
    this.entries.length = 0
  }

  openConnections(): number {
    return this.sockets.size
  }

  inFlight(): number {
    let total = 0
    for (const n of this.inFlightByProject.values()) total += n
    return total
  }

  scripted(): number {
    return this.queue.length
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const controller = new AbortController()
    this.pending.add(controller)
    const headers: Record<string, string> = {}
    for (const [name, value] of Object.entries(req.headers)) {
      if (value === undefined) continue
      headers[name] = name === "authorization" ? "<redacted>" : Array.isArray(value) ? value.join(", ") : value
    }
    const project = typeof req.headers["openai-project"] === "string" ? req.headers["openai-project"] : undefined
    const entry: Mutable<LogEntry> = {
      id: this.nextId++,
      at: Date.now(),
      endedAt: undefined,
      method: req.method ?? "GET",
      path: (req.url ?? "/").split("?")[0]!,
      headers,
      project,
      body: undefined,
      stream: false,
      outcome: "pending",
      fault: undefined,
      status: undefined,
      closedEarly: false,
      usage: undefined
    }
    this.entries.push(entry)
    // Trim in batches so a full log costs amortised O(1) per request, not a copy of the array each time.
    const max = this.config.maxLogEntries
    if (this.entries.length > max + Math.ceil(max / 10)) this.entries.splice(0, this.entries.length - max)
    let released = true
    const acquire = (): boolean => {
      const key = project ?? ""
      const current = this.inFlightByProject.get(key) ?? 0
      if (current >= this.config.concurrencyLimit) return false
      this.inFlightByProject.set(key, current + 1)
      released = false
      return true
    }
    res.on("close", () => {
      if (!released) {
        released = true
        const key = project ?? ""
        this.inFlightByProject.set(key, (this.inFlightByProject.get(key) ?? 1) - 1)
      }
      controller.abort()
      this.pending.delete(controller)
      entry.endedAt = Date.now()
      entry.closedEarly = !res.writableFinished
      // An answer cut off by the client (a timeout, an interrupted stream) was not given, whatever was sent of it.
      if (entry.outcome === "pending" || (entry.outcome === "ok" && entry.closedEarly)) entry.outcome = "aborted"
      this.config.onLogEntry?.({ ...entry })
    })
    const chunks: Array<Buffer> = []
    req.on("data", (chunk: Buffer) => chunks.push(chunk))
    req.on("error", () => res.destroy())
    req.on("end", () => {
      const text = Buffer.concat(chunks).toString("utf8")
      let body: unknown = undefined
      let parsed = text === ""
      if (text !== "") {
        try {
          body = JSON.parse(text)
          parsed = true
        } catch {
          body = text.length > 1000 ? `${text.slice(0, 1000)}…` : text
        }
      }
      entry.body = body
      this.route(req, res, entry, body, parsed, acquire, controller.signal).catch(() => res.destroy())
    })
  }

  private finish(res: http.ServerResponse, entry: Mutable<LogEntry>, outcome: Outcome, reply: StatusReply): void {
    entry.outcome = outcome
    entry.status = reply.status
    if (res.destroyed) return
    res.writeHead(reply.status, {
      "content-type": reply.contentType,
      "x-request-id": `sim-${entry.id}`,
      ...reply.headers
    })
    res.end(reply.body)
  }

  private async route(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    entry: Mutable<LogEntry>,
    body: unknown,
    parsed: boolean,
    acquire: () => boolean,
    signal: AbortSignal
  ): Promise<void> {
    const auth = req.headers["authorization"]
    if (typeof auth !== "string" || !this.config.apiKeys.some((key) => auth === `Bearer ${key}`)) {
      return this.finish(res, entry, "unauthorized", statusReply({ _tag: "Unauthorized" }, Date.now())!)
    }
    if (req.method === "GET" && entry.path === "/v1/models") {
      return this.finish(
        res,
        entry,
        "ok",
        json(200, {
          object: "list",
          data: this.config.models.map((m) => ({ id: m.id, object: "model", created: m.created, owned_by: m.owned_by }))
        })
      )
    }
    if (req.method !== "POST" || entry.path !== "/v1/chat/completions") {
      return this.finish(res, entry, "not-found", json(404, errorBody(MESSAGES.notFound, "not_found_error")))
    }
    if (!parsed || !isChatRequest(body)) {
      return this.finish(
        res,
        entry,
        "invalid-request",
        json(
          400,
          errorBody("Invalid request: 'model' and a non-empty 'messages' are required", "invalid_request_error")
        )
      )
    }
    entry.stream = body.stream === true
    if (!acquire()) {
      return this.finish(res, entry, "concurrency-limited", statusReply({ _tag: "RateLimited" }, Date.now())!)
    }
    const fault = this.pickFault()
    if (fault !== undefined) {
      entry.fault = fault._tag
      const reply = statusReply(fault, Date.now())
      if (reply !== undefined) return this.finish(res, entry, "fault", reply)
      if (fault._tag === "Hang") {
        entry.outcome = "fault"
        return
      }
      if (fault._tag === "ConnectionReset" && !fault.midBody) {
        entry.outcome = "fault"
        res.destroy()
        return
      }
      if (fault._tag === "SseErrorFrame" && !entry.stream) {
        return this.finish(
          res,
          entry,
          "fault",
          json(fault.status, errorBody(fault.message, typeOfStatus(fault.status), fault.code ?? null))
        )
      }
    }
    if (!this.config.models.some((m) => m.id === body.model)) {
      return this.finish(res, entry, "unknown-model", statusReply({ _tag: "ModelNotFound" }, Date.now())!)
    }
    return entry.stream
      ? this.stream(res, entry, body, fault, signal)
      : this.complete(res, entry, body, fault, signal)
  }

  private pickFault(): Fault | undefined {
    const next = this.queue.shift()
    if (next !== undefined) return next === "ok" ? undefined : next
    if (this.faultRate > 0 && this.faults.length > 0 && this.chaos() < this.faultRate) {
      return this.faults[Math.floor(this.chaos() * this.faults.length)]
    }
    return undefined
  }

  private choices(body: ChatRequest): ReadonlyArray<generate.Generated> {
    const n = typeof body.n === "number" && body.n >= 1 ? Math.floor(body.n) : 1
    return Array.from({ length: n }, (_, i) => generate.generate(body, this.config.seed, i, this.config.answerTokens))
  }

  private usage(body: ChatRequest, choices: ReadonlyArray<generate.Generated>, entry: Mutable<LogEntry>) {
    const prompt = generate.promptTokens(body.messages)
    const completion = choices.reduce((sum, c) => sum + generate.completionTokens(c), 0)
    const usage = { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion }
    entry.usage = usage
    return usage
  }

  private async complete(
    res: http.ServerResponse,
    entry: Mutable<LogEntry>,
    body: ChatRequest,
    fault: Fault | undefined,
    signal: AbortSignal
  ): Promise<void> {
    const choices = this.choices(body)
    const longest = Math.max(...choices.map((c) => c.tokens.length))
    await sleep(this.config.firstByteMillis + this.config.perTokenMillis * longest, signal)
    if (signal.aborted) return
    const id = `chatcmpl-sim-${entry.id}`
    const text = JSON.stringify({
      id,
      object: "chat.completion",
      created: Math.floor(Date.now() / 1000),
      model: body.model,
      choices: choices.map((c, index) => ({
        index,
        message: { role: "assistant", content: c.tokens.join("") },
        finish_reason: c.finishReason,
        logprobs: null
      })),
      usage: this.usage(body, choices, entry)
    })
    if (fault !== undefined) {
      // The body-breaking faults: half the JSON, then a stall, a reset, or a clean end.
      entry.outcome = "fault"
      entry.status = 200
      res.writeHead(200, { "content-type": "application/json", "x-request-id": `sim-${entry.id}` })
      await write(res, text.slice(0, Math.floor(text.length / 2)), signal)
      if (fault._tag === "ConnectionReset") res.destroy()
      else if (fault._tag === "SseCutBeforeDone") res.end()
      return
    }
    this.finish(res, entry, "ok", { status: 200, body: text, contentType: "application/json" })
  }

  private async stream(
    res: http.ServerResponse,
    entry: Mutable<LogEntry>,
    body: ChatRequest,
    fault: Fault | undefined,
    signal: AbortSignal
  ): Promise<void> {
    const choices = this.choices(body)
    const id = `chatcmpl-sim-${entry.id}`
    const created = Math.floor(Date.now() / 1000)
    const includeUsage = body.stream_options?.include_usage === true
    const chunk = (index: number, delta: Record<string, unknown>, finishReason: string | null) => ({
      id,
      object: "chat.completion.chunk",
      created,
      model: body.model,
      choices: [{ index, delta, finish_reason: finishReason, logprobs: null }],
      ...(includeUsage ? { usage: null } : {})
    })
    entry.status = 200
    entry.outcome = fault === undefined ? "ok" : "fault"
    res.writeHead(200, {
      "content-type": "text/event-stream",
      "cache-control": "no-cache",
      "x-request-id": `sim-${entry.id}`
    })
    res.flushHeaders()
    await sleep(this.config.firstByteMillis, signal)
    let sent = 0
    for (let index = 0; index < choices.length; index++) {
      await write(res, sse(chunk(index, { role: "assistant", content: "" }, null)), signal)
      for (const token of choices[index]!.tokens) {
        if (signal.aborted) return
        if (fault !== undefined && sent === faultAfter(fault)) return this.breakStream(res, fault, signal)
        await write(res, sse(chunk(index, { content: token }, null)), signal)
        sent++
        await sleep(this.config.perTokenMillis, signal)
      }
    }
    if (fault !== undefined) return this.breakStream(res, fault, signal)
    for (let index = 0; index < choices.length; index++) {
      await write(res, sse(chunk(index, {}, choices[index]!.finishReason)), signal)
    }
    if (includeUsage) {
      await write(
        res,
        sse({
          id,
          object: "chat.completion.chunk",
          created,
          model: body.model,
          choices: [],
          usage: this.usage(body, choices, entry)
        }),
        signal
      )
    }
    await write(res, "data: [DONE]\n\n", signal)
    if (!res.destroyed) res.end()
  }

  private async breakStream(res: http.ServerResponse, fault: Fault, signal: AbortSignal): Promise<void> {
    switch (fault._tag) {
      case "SseErrorFrame":
        await write(
          res,
          // The type names the status, as OpenAI's do; the code is the status itself, as vLLM sends it.
          `event: error\n${
            sse(errorBody(fault.message, typeOfStatus(fault.status), fault.code ?? String(fault.status)))
          }`,
          signal
        )
        if (!res.destroyed) res.end()
        return
      case "SseCutBeforeDone":
        if (!res.destroyed) res.end()
        return
      case "ConnectionReset":
        res.destroy()
        return
      case "StallMidBody": {
        const every = fault.keepAliveEveryMillis
        while (!signal.aborted) {
          await sleep(every ?? 60_000, signal)
          if (every !== undefined) await write(res, ": keep-alive\n\n", signal)
        }
        return
      }
      default:
        return
    }
  }
}

/** How many content chunks a body-breaking fault lets through. */
const faultAfter = (fault: Fault): number =>
  fault._tag === "StallMidBody" || fault._tag === "SseErrorFrame" || fault._tag === "SseCutBeforeDone"
    ? fault.afterChunks
    : fault._tag === "ConnectionReset"
    ? 2
    : 0
