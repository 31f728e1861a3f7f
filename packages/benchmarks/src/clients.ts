/** The clients the benchmarks compare, in the order the tables list them. */
export const clients = [
  "undici",
  "openai",
  "platform",
  "client",
  "client: no retry",
  "client: no breaker",
  "client: no usage tracking",
  "client: no concurrency limit",
  "client: all off"
] as const

export type ClientName = typeof clients[number]
