/**
 * Summarises a V8 CPU profile (`node --cpu-prof`, or `runner.ts --cpu-profile`):
 * the frames with the most self time, and self time by package, as Markdown
 * tables. Shares are of the CPU time: the time V8 was idle is left out.
 *
 *   tsx src/profile.ts <file.cpuprofile> [top]
 */
import * as fs from "node:fs"

interface Node {
  readonly id: number
  readonly callFrame: { readonly functionName: string; readonly url: string; readonly lineNumber: number }
  readonly hitCount?: number
  readonly children?: ReadonlyArray<number>
}

interface Profile {
  readonly nodes: ReadonlyArray<Node>
  readonly samples: ReadonlyArray<number>
  readonly timeDeltas: ReadonlyArray<number>
}

/** Where a frame's code comes from: a package, this repository's code, Node itself or V8. */
export const packageOf = (url: string): string => {
  if (url === "") return "(V8: gc, idle, native)"
  if (url.startsWith("node:")) return "node"
  const store = url.match(/node_modules\/\.pnpm\/[^/]+\/node_modules\/((?:@[^/]+\/)?[^/]+)/)
  if (store !== null) return store[1]!
  const plain = url.match(/node_modules\/((?:@[^/]+\/)?[^/]+)/)
  if (plain !== null) return plain[1]!
  const own = url.match(/packages\/([^/]+)\/src\/(.+)$/)
  if (own !== null) return `@effect-inference/${own[1]} ${own[2]}`
  return url
}

/** A frame's file, short: the package and the path inside it. */
export const fileOf = (url: string): string => {
  const inPackage = url.match(/node_modules\/(?:\.pnpm\/[^/]+\/node_modules\/)?((?:@[^/]+\/)?[^/]+)\/(.+)$/)
  if (inPackage !== null) return `${inPackage[1]}/${inPackage[2]!.replace(/^(dist\/(esm|cjs)|src)\//, "")}`
  const own = url.match(/packages\/([^/]+)\/(.+)$/)
  if (own !== null) return `${own[1]}/${own[2]}`
  return url.replace(/^file:\/\//, "")
}

/** The CPU time of the profiled run per unit of work (a request, a chunk), to give each share in µs too. */
export interface PerUnit {
  readonly unit: string
  readonly micros: number
}

/** Self time per frame and per package, in percent of the CPU time (and in µs per unit, given `perUnit`). */
export const summarise = (profile: Profile, top: number, perUnit?: PerUnit) => {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]))
  const self = new Map<number, number>()
  profile.samples.forEach((id, i) => self.set(id, (self.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)))
  // Idle is waiting, not work: a stream paced by its server spends most of its wall time there.
  for (const [id, node] of byId) {
    if (node.callFrame.functionName === "(idle)" && node.callFrame.url === "") self.delete(id)
  }
  let total = 0
  for (const t of self.values()) total += t
  const frames = new Map<string, number>()
  const packages = new Map<string, number>()
  for (const [id, time] of self) {
    const frame = byId.get(id)!.callFrame
    const where = frame.url === "" ? "" : ` (${fileOf(frame.url)}:${frame.lineNumber + 1})`
    const key = `${frame.functionName === "" ? "(anonymous)" : frame.functionName}${where}`
    frames.set(key, (frames.get(key) ?? 0) + time)
    const pkg = packageOf(frame.url)
    packages.set(pkg, (packages.get(pkg) ?? 0) + time)
  }
  const micros = (t: number) => perUnit === undefined ? "" : ` ${(perUnit.micros * t / total).toFixed(2)} |`
  const rows = (map: Map<string, number>) =>
    [...map].sort((a, b) => b[1] - a[1]).slice(0, top).map(([k, t]) =>
      `| ${k} | ${(100 * t / total).toFixed(1)}% |${micros(t)}`
    )
  const head = (what: string) =>
    perUnit === undefined
      ? [`| ${what} (self time) | share |`, "|---|---|"]
      : [`| ${what} (self time) | share | µs per ${perUnit.unit} |`, "|---|---|--:|"]
  return [...head("frame"), ...rows(frames), "", ...head("package"), ...rows(packages)].join("\n")
}

if (process.argv[1]?.endsWith("profile.ts")) {
  const file = process.argv[2]
  if (file === undefined) {
    process.stderr.write("usage: tsx src/profile.ts <file.cpuprofile> [top]\n")
    process.exit(2)
  }
  const profile = JSON.parse(fs.readFileSync(file, "utf8")) as Profile
  process.stdout.write(`${summarise(profile, Number(process.argv[3] ?? 25))}\n`)
}
