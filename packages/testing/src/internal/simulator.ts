/**
 * The simulator's HTTP server.
 *
 * It is written on `node:http` rather than @effect/platform's HttpServer because
 * its job is to misbehave at the socket level: send headers and then nothing,
 * send half a body, destroy a connection mid-stream. Those need the raw socket
 * and response objects, which a well-behaved server framework rightly hides. The
 * public module wraps this class in Effect (a scoped resource and a service).
 * Its length is one request's life on the server (limits, faults, the answer,
 * the stream, the log); the request checks, replies and generated text live in
 * modules of their own.
 */
import * as http from "node:http"
import type { Socket } from "node:net"
import type { Fault } from "../Fault.js"
import type { LogEntry, Outcome, Thinking } from "../InferenceSimulator.js"
import * as FaultDraw from "./faultDraw.js"
import * as generate from "./generate.js"
import { PrefixCache } from "./prefixCache.js"
import * as replies from "./replies.js"
import type { StatusReply } from "./replies.js"
import * as Request from "./request.js"

/** A model as the simulator runs it. @internal */
export interface Model {
  readonly id: string
  readonly created: number
  readonly owned_by: string
  readonly thinking: Thinking
  readonly thinkingMillis: number
}

/** @internal */
export interface Config {
  readonly host: string
  readonly port: number
  readonly apiKeys: ReadonlyArray<string>
  readonly models: ReadonlyArray<Model>
  readonly seed: number
  readonly firstByteMillis: number
  readonly perTokenMillis: number
  readonly answerTokens: readonly [number, number]
  readonly reasoningTokens: readonly [number, number]
  readonly reasoningField: "reasoning" | "reasoning_content"
  readonly concurrencyLimit: number
  readonly modelConcurrencyLimits: Readonly<Record<string, number>>
  readonly faultRate: number
  readonly faults: ReadonlyArray<Fault>
  readonly maxLogEntries: number
  readonly onLogEntry: ((entry: LogEntry) => void) | undefined
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] }

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

/** How many event-loop polls a request refused for concurrency waits for closes that already arrived. */
const CLOSE_POLLS = 5

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

/** @internal */
export class Simulator {
  private readonly server: http.Server
  private readonly sockets = new Set<Socket>()
  private readonly pending = new Set<AbortController>()
  private readonly inFlightByProject = new Map<string, number>()
  /** In flight per project and model (`<project>\0<model>`), for `modelConcurrencyLimits`. */
  private readonly inFlightByModel = new Map<string, number>()
  /** `modelConcurrencyLimits`, changed at run time by `setModelConcurrencyLimit`. */
  private readonly modelLimits: Map<string, number>
  private readonly cache = new PrefixCache()
  private draw: FaultDraw.State
  private readonly entries: Array<Mutable<LogEntry>> = []
  private readonly queue: Array<Fault | "ok"> = []
  private faults: ReadonlyArray<Fault>
  private readonly chaos: () => number
  private nextId = 1
  port = 0

  constructor(private readonly config: Config) {
    this.faults = config.faults
    this.modelLimits = new Map(Object.entries(config.modelConcurrencyLimits))
    this.draw = FaultDraw.initial(config.faultRate)
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
    this.draw = FaultDraw.initial(rate)
    if (faults !== undefined) this.faults = faults
  }

  /** Requests in flight keep their slots: a lower limit refuses new requests until enough of them have ended. */
  setModelConcurrencyLimit(model: string, limit: number): void {
    if (limit === Infinity) this.modelLimits.delete(model)
    else this.modelLimits.set(model, limit)
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
      admittedAt: undefined,
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
    // The slots this request holds, freed when its connection closes.
    let held: { readonly projectKey: string; readonly modelKey: string } | undefined
    const acquire = (model: string): "ok" | "model" | "project" => {
      const projectKey = project ?? ""
      const modelKey = `${projectKey}\u0000${model}`
      const modelLimit = this.modelLimits.get(model) ?? Infinity
      if ((this.inFlightByModel.get(modelKey) ?? 0) >= modelLimit) return "model"
      if ((this.inFlightByProject.get(projectKey) ?? 0) >= this.config.concurrencyLimit) return "project"
      this.inFlightByProject.set(projectKey, (this.inFlightByProject.get(projectKey) ?? 0) + 1)
      this.inFlightByModel.set(modelKey, (this.inFlightByModel.get(modelKey) ?? 0) + 1)
      held = { projectKey, modelKey }
      entry.admittedAt = Date.now()
      return "ok"
    }
    // A slot is freed as soon as the server knows the request is over: its answer was written in full, or the
    // client closed its end of the connection. Node reports the response's own "close" a loop iteration or more
    // after the client's FIN arrives; counting until then would refuse a request the client sent only once its
    // earlier one was gone.
    const free = () => {
      if (held === undefined) return
      const { modelKey, projectKey } = held
      held = undefined
      entry.endedAt ??= Date.now()
      this.inFlightByProject.set(projectKey, (this.inFlightByProject.get(projectKey) ?? 1) - 1)
      const left = (this.inFlightByModel.get(modelKey) ?? 1) - 1
      if (left > 0) this.inFlightByModel.set(modelKey, left)
      else this.inFlightByModel.delete(modelKey)
    }
    const socket = req.socket
    const clientGone = () => {
      entry.endedAt ??= Date.now()
      free()
    }
    socket.once("end", clientGone)
    socket.once("error", clientGone)
    socket.once("close", clientGone)
    res.once("finish", free)
    res.on("close", () => {
      socket.off("end", clientGone)
      socket.off("error", clientGone)
      socket.off("close", clientGone)
      free()
      controller.abort()
      this.pending.delete(controller)
      entry.endedAt ??= Date.now()
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

  private model(id: string): Model | undefined {
    return this.config.models.find((m) => m.id === id)
  }

  private async route(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    entry: Mutable<LogEntry>,
    body: unknown,
    parsed: boolean,
    acquire: (model: string) => "ok" | "model" | "project",
    signal: AbortSignal
  ): Promise<void> {
    const auth = req.headers["authorization"]
    if (typeof auth !== "string" || !this.config.apiKeys.some((key) => auth === `Bearer ${key}`)) {
      return this.finish(res, entry, "unauthorized", replies.statusReply({ _tag: "Unauthorized" }, "", Date.now())!)
    }
    if (req.method === "GET" && entry.path === "/v1/models") {
      return this.finish(
        res,
        entry,
        "ok",
        replies.json(200, {
          object: "list",
          data: this.config.models.map((m) => ({ id: m.id, object: "model", created: m.created, owned_by: m.owned_by }))
        })
      )
    }
    if (req.method !== "POST" || entry.path !== "/v1/chat/completions") {
      return this.finish(
        res,
        entry,
        "not-found",
        replies.json(404, replies.errorBody(replies.MESSAGES.notFound, "not_found_error"))
      )
    }
    entry.stream = typeof body === "object" && body !== null && (body as { stream?: unknown }).stream === true
    const checked = Request.check(body, parsed, (id) => this.model(id) !== undefined)
    if (checked._tag === "Invalid") return this.finish(res, entry, checked.outcome, checked.reply)
    const request = checked.request
    // A request whose client left while its body was read is not counted: nobody is there to answer.
    if (signal.aborted) return
    let slot = acquire(request.model)
    if (slot !== "ok") {
      // A connection the client closed before it sent this request may not have been reported yet. Node reads a
      // socket once per loop iteration and stops at a short read, so the end of a connection that came right
      // behind its last bytes is seen only in a later iteration's poll, after requests on other connections that
      // arrived after it (on a loaded machine, two polls later). Look again after each of the next few polls, as a
      // server that counts closes in the order they arrive would; a client really over the limit is still refused.
      for (let turn = 0; turn < CLOSE_POLLS && slot !== "ok"; turn++) {
        await new Promise<void>((resolve) => setImmediate(resolve))
        if (signal.aborted) return
        slot = acquire(request.model)
      }
    }
    if (slot !== "ok") {
      return this.finish(
        res,
        entry,
        "concurrency-limited",
        replies.concurrencyLimited(slot === "model" ? request.model : null)
      )
    }
    const fault = this.pickFault()
    if (fault !== undefined) {
      entry.fault = fault._tag
      const reply = replies.statusReply(fault, request.model, Date.now())
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
      if (fault._tag === "SseErrorFrame" && !request.stream) {
        return this.finish(
          res,
          entry,
          "fault",
          replies.json(
            fault.status,
            replies.errorBody(fault.message, replies.typeOfStatus(fault.status), fault.code ?? null)
          )
        )
      }
    }
    const model = this.model(request.model)!
    return request.stream
      ? this.stream(res, entry, request, model, fault, signal)
      : this.complete(res, entry, request, model, fault, signal)
  }

  private pickFault(): Fault | undefined {
    const next = this.queue.shift()
    if (next !== undefined) return next === "ok" ? undefined : next
    if (this.faults.length === 0) return undefined
    const [draw, faulty] = FaultDraw.step(this.draw, this.chaos)
    this.draw = draw
    return faulty ? this.faults[Math.floor(this.chaos() * this.faults.length)] : undefined
  }

  /** The choices of an answer, and the cached part of its prompt (looked up, and remembered, as the engine starts). */
  private answer(request: Request.ChatRequest, model: Model) {
    const thinks = model.thinking === "always" ||
      (model.thinking === "default-on" && request.enableThinking !== false) ||
      (model.thinking === "default-off" && request.enableThinking === true)
    const n = typeof request.n === "number" && request.n >= 1 ? Math.floor(request.n) : 1
    const choices = Array.from({ length: n }, (_, i) =>
      generate.answer(request, this.config.seed, i, {
        shape: request.shape,
        thinks,
        answerTokens: this.config.answerTokens,
        reasoningTokens: this.config.reasoningTokens
      }))
    const cached = this.cache.lookupAndStore(
      `${request.model}\u0000${request.cacheSalt ?? ""}`,
      generate.promptSequence(request.messages)
    )
    return { choices, cached, thinkingMillis: thinks ? model.thinkingMillis : 0 }
  }

  private usage(
    request: Request.ChatRequest,
    choices: ReadonlyArray<generate.Generated>,
    cached: number,
    entry: Mutable<LogEntry>
  ) {
    const prompt = generate.promptTokens(request.messages)
    const completion = choices.reduce((sum, c) => sum + generate.completionTokens(c), 0)
    const usage = {
      prompt_tokens: prompt,
      completion_tokens: completion,
      total_tokens: prompt + completion,
      prompt_tokens_details: { cached_tokens: cached },
      completion_tokens_details: { reasoning_tokens: choices.reduce((sum, c) => sum + c.reasoning.length, 0) }
    }
    entry.usage = usage
    return usage
  }

  private message(choice: generate.Generated) {
    const reasoning = choice.reasoning.length > 0 ? choice.reasoning.join("") : null
    const text = choice.tokens.join("")
    return {
      role: "assistant",
      content: choice.toolCall === undefined ? text : null,
      [this.config.reasoningField]: reasoning,
      refusal: null,
      ...(choice.toolCall === undefined ? {} : {
        tool_calls: [{
          id: choice.toolCall.id,
          type: "function",
          function: { name: choice.toolCall.name, arguments: text }
        }]
      })
    }
  }

  private async complete(
    res: http.ServerResponse,
    entry: Mutable<LogEntry>,
    request: Request.ChatRequest,
    model: Model,
    fault: Fault | undefined,
    signal: AbortSignal
  ): Promise<void> {
    const { cached, choices, thinkingMillis } = this.answer(request, model)
    const longest = Math.max(...choices.map((c) => generate.completionTokens(c)))
    await sleep(this.config.firstByteMillis + thinkingMillis + this.config.perTokenMillis * longest, signal)
    if (signal.aborted) return
    const id = `chatcmpl-sim-${entry.id}`
    const text = JSON.stringify({
      id,
      object: "chat.completion",
      created: Math.floor(Date.now() / 1000),
      model: request.model,
      system_fingerprint: null,
      choices: choices.map((c, index) => ({
        index,
        message: this.message(c),
        logprobs: null,
        finish_reason: c.finishReason
      })),
      usage: this.usage(request, choices, cached, entry)
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
    request: Request.ChatRequest,
    model: Model,
    fault: Fault | undefined,
    signal: AbortSignal
  ): Promise<void> {
    const { cached, choices, thinkingMillis } = this.answer(request, model)
    const id = `chatcmpl-sim-${entry.id}`
    const created = Math.floor(Date.now() / 1000)
    const chunk = (index: number, delta: Record<string, unknown>, finishReason: string | null) => ({
      id,
      object: "chat.completion.chunk",
      created,
      model: request.model,
      system_fingerprint: null,
      choices: [{ index, delta, logprobs: null, finish_reason: finishReason }],
      ...(request.includeUsage ? { usage: null } : {})
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
    /** One token's chunk, unless the fault breaks the stream here; `false` once the stream is over. */
    const token = async (index: number, delta: Record<string, unknown>, pause: number): Promise<boolean> => {
      if (signal.aborted) return false
      if (fault !== undefined && sent === faultAfter(fault)) {
        await this.breakStream(res, fault, signal)
        return false
      }
      await write(res, sse(chunk(index, delta, null)), signal)
      sent++
      await sleep(pause, signal)
      return true
    }
    for (let index = 0; index < choices.length; index++) {
      const choice = choices[index]!
      const call = choice.toolCall
      await write(res, sse(chunk(index, { role: "assistant", content: call === undefined ? "" : null }, null)), signal)
      // The thinking time is spread over the thinking tokens, so it shows as a slow start of the content.
      const thinkPause = this.config.perTokenMillis + thinkingMillis / Math.max(1, choice.reasoning.length)
      for (const piece of choice.reasoning) {
        if (!(await token(index, { [this.config.reasoningField]: piece }, thinkPause))) return
      }
      if (call !== undefined) {
        const header = { index: 0, id: call.id, type: "function", function: { name: call.name, arguments: "" } }
        await write(res, sse(chunk(index, { tool_calls: [header] }, null)), signal)
      }
      for (const piece of choice.tokens) {
        const delta = call === undefined
          ? { content: piece }
          : { tool_calls: [{ index: 0, function: { arguments: piece } }] }
        if (!(await token(index, delta, this.config.perTokenMillis))) return
      }
    }
    if (fault !== undefined) return this.breakStream(res, fault, signal)
    for (let index = 0; index < choices.length; index++) {
      await write(res, sse(chunk(index, {}, choices[index]!.finishReason)), signal)
    }
    if (request.includeUsage) {
      await write(
        res,
        sse({
          id,
          object: "chat.completion.chunk",
          created,
          model: request.model,
          system_fingerprint: null,
          choices: [],
          usage: this.usage(request, choices, cached, entry)
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
        await write(res, replies.errorFrame(fault), signal)
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

/** How many token chunks (thinking, content or arguments) a body-breaking fault lets through. */
const faultAfter = (fault: Fault): number =>
  fault._tag === "StallMidBody" || fault._tag === "SseErrorFrame" || fault._tag === "SseCutBeforeDone"
    ? fault.afterChunks
    : fault._tag === "ConnectionReset"
    ? 2
    : 0
