/* global console, process */
// Import cycles between the modules of packages/*/src (part of `pnpm test`), found by madge as Effect's own CI
// does. A cycle makes the order in which modules load matter: a class or a constant read while its module is
// still loading is `undefined`, which no type check sees. Type-only imports (`import type`) are erased and load
// nothing, so they are skipped: a public module and its internal may name each other's types freely.
//
//   pnpm circular        print every cycle, and fail if there is one
//
// Relative imports end in `.js` and name a `.ts` file: madge resolves them with TypeScript's own resolution, under
// the project's compiler options (tsconfig.base.json). A workspace package (`@effect-inference/client`) is mapped
// to its `src`, as the workspace's source condition does for tsc: madge's resolver does not apply custom
// conditions, and would otherwise find the built `dist` or, in a fresh clone, nothing. An import it cannot
// resolve would hide the cycles that go through it, so that fails the check too. This script lives in .ci/ because the top level takes no new folders.
import madge from "madge"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"

const root = Path.resolve(Path.dirname(fileURLToPath(import.meta.url)), "..")
const packagesDir = Path.join(root, "packages")

/** Every package's `src`, relative to the root (madge names modules relative to `baseDir`). */
const sources = Fs.readdirSync(packagesDir, { withFileTypes: true })
  .filter((entry) => entry.isDirectory() && Fs.existsSync(Path.join(packagesDir, entry.name, "src")))
  .map((entry) => Path.join("packages", entry.name, "src"))
  .sort()

/** `paths` from each workspace package's name (and its subpaths) to its `src`. */
const workspacePaths = Object.fromEntries(
  sources.flatMap((dir) => {
    const manifest = JSON.parse(Fs.readFileSync(Path.join(root, dir, "..", "package.json"), "utf8"))
    return [
      [manifest.name, [`${dir}/index.ts`]],
      [`${manifest.name}/*`, [`${dir}/*.ts`]]
    ]
  })
)
const base = JSON.parse(Fs.readFileSync(Path.join(root, "tsconfig.base.json"), "utf8"))

const result = await madge(sources.map((dir) => Path.join(root, dir)), {
  baseDir: root,
  fileExtensions: ["ts"],
  tsConfig: { compilerOptions: { ...base.compilerOptions, baseUrl: root, paths: workspacePaths } },
  detectiveOptions: { ts: { skipTypeImports: true }, tsx: { skipTypeImports: true } }
})

const graph = result.obj()
const modules = Object.keys(graph).length
const imports = Object.values(graph).reduce((n, dependencies) => n + dependencies.length, 0)
console.log(`${sources.join(", ")}: ${modules} modules, ${imports} value imports between them`)

let failed = false
const { skipped } = result.warnings()
if (skipped.length > 0) {
  failed = true
  console.error(`Imports that could not be resolved (cycles through them would go unseen):`)
  for (const file of skipped) console.error(`  ${file}`)
}
// Nothing found at all means the files were not read (a wrong path or extension), not that there is no cycle.
if (modules === 0 || imports === 0) {
  failed = true
  console.error("No modules or no imports found: the check saw nothing")
}
const cycles = result.circular()
if (cycles.length > 0) {
  failed = true
  console.error(`${cycles.length} import cycle(s); move the values both sides need to a module that imports neither:`)
  for (const cycle of cycles) console.error(`  ${[...cycle, cycle[0]].join(" -> ")}`)
} else {
  console.log("No import cycles")
}
if (failed) process.exit(1)
