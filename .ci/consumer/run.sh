#!/usr/bin/env bash
# The consumer test: the packages as a user gets them.
#
#   bash .ci/consumer/run.sh            (with the `node` first on PATH: Node 20.19+, 22.12+ or 24)
#
# Builds and packs @effect-inference/client, @effect-inference/testing, @effect-inference/redis and
# @effect-inference/cli with pnpm, the tool a release uses (`changeset publish` runs `pnpm publish`: it turns
# `workspace:^` into a version range; npm would not, so the packages refuse `npm pack`), installs the four
# tarballs in one `npm install --engine-strict` into a fresh application outside the workspace, with the peers
# on the Effect 3.x line, then
#   - type-checks a program with moduleResolution NodeNext (declarations checked too), Bundler and Node10;
#   - runs it as an ES module and as CommonJS: a plain call, a stream and a 402 caught by tag, against
#     the packed simulator through the packed client; then a call with the client's limits on
#     `RedisStores.layer` while Redis is down (a port where nothing listens): answered from memory under
#     onUnavailable "local", failed with CoordinationError and nothing sent under "fail". No Redis is
#     needed; if `redis-server` and `redis-cli` are on PATH, one is started on a free port and a call
#     through it must leave the stores' keys there; and `Batch.run` of @effect-inference/cli on 3 rows;
#   - runs the `effect-inference-simulator` command from the installed tarball: --help, a server
#     answering GET /v1/models, and a port in use refused in one line;
#   - runs the `effect-inference` command from the installed tarball: `batch --help`, then `batch` on a
#     file of 5 rows against that simulator (exit code 0, 5 lines out, none in the errors file).
# Exits non-zero on the first failure. npm's cache persists between runs (npm_config_cache, default
# ~/.cache/effect-inference/npm) and installs prefer it, so a warm run needs no network.
# KEEP_CONSUMER_APP=1 keeps the temporary application for inspection.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
started=$(date +%s)
step() {
  local now
  now=$(date +%s)
  echo "consumer: [$((now - started))s] $*"
}
fail() {
  echo "consumer: FAILED: $*" >&2
  exit 1
}

export npm_config_cache="${npm_config_cache:-${XDG_CACHE_HOME:-$HOME/.cache}/effect-inference/npm}"
# npm settings a calling `pnpm run` may have exported would change how npm installs here
unset npm_config_node_linker npm_config_link_workspace_packages npm_config_shamefully_hoist || true

work="$(mktemp -d "${TMPDIR:-/tmp}/effect-inference-consumer.XXXXXX")"
simulator_pid=""
redis_pid=""
cleanup() {
  if [ -n "$simulator_pid" ]; then kill "$simulator_pid" 2>/dev/null || true; fi
  if [ -n "$redis_pid" ]; then kill "$redis_pid" 2>/dev/null || true; fi
  if [ "${KEEP_CONSUMER_APP:-}" = "1" ]; then echo "consumer: kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

step "node $(node --version), npm $(npm --version), pnpm $(pnpm --version); app in $work"

# 1. Build and pack, as a release does.
(cd "$root" && pnpm build >/dev/null) || fail "pnpm build"
mkdir -p "$work/packs"
for package in client testing redis cli; do
  (cd "$root/packages/$package" && pnpm pack --pack-destination "$work/packs" >"$work/pack-$package.log" 2>&1) ||
    { cat "$work/pack-$package.log" >&2; fail "pnpm pack of $package"; }
done
client_tgz="$(ls "$work"/packs/effect-inference-client-*.tgz)"
testing_tgz="$(ls "$work"/packs/effect-inference-testing-*.tgz)"
redis_tgz="$(ls "$work"/packs/effect-inference-redis-*.tgz)"
cli_tgz="$(ls "$work"/packs/effect-inference-cli-*.tgz)"
for tgz in "$client_tgz" "$testing_tgz" "$redis_tgz" "$cli_tgz"; do
  listing="$(tar tzf "$tgz")"
  for needed in package/package.json package/README.md package/LICENSE package/dist/index.js package/dist/index.d.ts; do
    grep -qx "$needed" <<<"$listing" || fail "$(basename "$tgz") lacks $needed"
  done
  if grep -E '^package/(test|build|examples)/|tsconfig|vitest|\.tsbuildinfo$' <<<"$listing" >/dev/null; then
    fail "$(basename "$tgz") holds files it should not: $(grep -E '^package/(test|build|examples)/|tsconfig|vitest|\.tsbuildinfo$' <<<"$listing" | head -3 | tr '\n' ' ')"
  fi
done
for tgz in "$testing_tgz" "$redis_tgz" "$cli_tgz"; do
  if tar xzf "$tgz" -O package/package.json | grep -q '"workspace:'; then fail "$(basename "$tgz") keeps a workspace: range"; fi
done
# The Redis client is the redis package's own dependency, and the client its peer, at the version packed here.
tar xzf "$redis_tgz" -O package/package.json | node -e '
  const manifest = JSON.parse(require("node:fs").readFileSync(0, "utf8"))
  const client = require("node:path").basename(process.argv[1]).replace(/^effect-inference-client-|\.tgz$/g, "")
  const peer = manifest.peerDependencies?.["@effect-inference/client"]
  if (manifest.dependencies?.ioredis === undefined) throw new Error("no ioredis in dependencies")
  if (peer === undefined || !peer.includes(client)) throw new Error(`peer @effect-inference/client is ${peer}, not of ${client}`)' \
  "$client_tgz" || fail "the manifest in $(basename "$redis_tgz")"
# The command: its bin in the packed manifest (pnpm moves publishConfig.bin there), and the file it names.
tar xzf "$cli_tgz" -O package/package.json | node -e '
  const manifest = JSON.parse(require("node:fs").readFileSync(0, "utf8"))
  if (manifest.bin?.["effect-inference"] !== "./dist/bin.js") throw new Error(`bin is ${JSON.stringify(manifest.bin)}`)' ||
  fail "the bin in $(basename "$cli_tgz")"
grep -qx package/dist/bin.js <<<"$(tar tzf "$cli_tgz")" || fail "$(basename "$cli_tgz") lacks package/dist/bin.js"
step "packed $(basename "$client_tgz") ($(tar tzf "$client_tgz" | wc -l) files), $(basename "$testing_tgz") ($(tar tzf "$testing_tgz" | wc -l) files), $(basename "$redis_tgz") ($(tar tzf "$redis_tgz" | wc -l) files), $(basename "$cli_tgz") ($(tar tzf "$cli_tgz" | wc -l) files)"

# 2. A fresh application outside the workspace, installed with npm.
app="$work/app"
mkdir -p "$app"
cp "$here/app/package.json" "$here"/app/tsconfig.*.json "$app/"
cp -r "$here/app/src" "$app/src"
cd "$app"
npm install --engine-strict --prefer-offline --no-audit --no-fund --loglevel=error \
  "$client_tgz" "$testing_tgz" "$redis_tgz" "$cli_tgz" \
  "effect@^3.22" "@effect/platform@^0.97" "@effect/platform-node@^0.108" \
  "typescript@~5.9.3" "@types/node@^20.19" >"$work/npm-install.log" 2>&1 ||
  { cat "$work/npm-install.log" >&2; fail "npm install --engine-strict of the tarballs"; }
for package in client testing redis cli; do
  [ -L "node_modules/@effect-inference/$package" ] && fail "npm linked $package instead of installing the tarball"
done
# The redis package's own ioredis (npm may hoist another: @effect/experimental names ioredis ^5 as an optional peer).
ioredis="$(node -p 'const from = require("node:path").dirname(require.resolve("@effect-inference/redis/package.json"))
  require(require.resolve("ioredis/package.json", { paths: [from] })).version')"
step "npm install --engine-strict: effect $(node -p 'require("effect/package.json").version'), @effect/platform $(node -p 'require("@effect/platform/package.json").version'), @effect/platform-node $(node -p 'require("@effect/platform-node/package.json").version'), ioredis $ioredis"

# `--engine-strict` checked the running Node; this checks the whole declared range against every installed
# package's engines, with npm's own semver.
npm_dir="$(cd "$(dirname "$(readlink -f "$(command -v npm)")")/.." && pwd)"
semver="$npm_dir/node_modules/semver"
if [ -f "$semver/package.json" ]; then
  node -e '
    const semver = require(process.argv[1]), fs = require("node:fs"), path = require("node:path")
    const declared = require("@effect-inference/client/package.json").engines.node
    for (const name of ["testing", "redis", "cli"]) {
      if (require(`@effect-inference/${name}/package.json`).engines.node !== declared) throw new Error(`@effect-inference/${name} declares other engines`)
    }
    const bad = []
    const walk = (dir) => {
      for (const name of fs.readdirSync(dir)) {
        const at = path.join(dir, name)
        if (name.startsWith(".")) continue
        if (name.startsWith("@")) { walk(at); continue }
        const file = path.join(at, "package.json")
        if (!fs.existsSync(file)) continue
        const manifest = JSON.parse(fs.readFileSync(file, "utf8"))
        const node = manifest.engines?.node
        if (node && !semver.subset(declared, node)) bad.push(`${manifest.name}@${manifest.version} (node ${node})`)
        if (fs.existsSync(path.join(at, "node_modules"))) walk(path.join(at, "node_modules"))
      }
    }
    walk("node_modules")
    if (bad.length > 0) { console.error(`engines "${declared}" is wider than: ${bad.join(", ")}`); process.exit(1) }
    console.log(`consumer: engines "${declared}" holds for every installed package`)' "$semver" ||
    fail "engines"
else
  echo "consumer: (npm's semver not found at $semver: the engines range check is skipped)"
fi

# 3. Type-check: NodeNext (and emit the programs), Bundler, Node10.
./node_modules/.bin/tsc -p tsconfig.nodenext.json || fail "tsc with moduleResolution NodeNext"
./node_modules/.bin/tsc -p tsconfig.bundler.json || fail "tsc with moduleResolution Bundler"
./node_modules/.bin/tsc -p tsconfig.node10.json || fail "tsc with moduleResolution Node10"
step "type-checked with NodeNext, Bundler and Node10"

# 4. Run the programs: ES module and CommonJS; through a real Redis too if one can be started here.
if command -v redis-server >/dev/null && command -v redis-cli >/dev/null; then
  redis_port="$(node -e '
    const server = require("node:net").createServer()
    server.listen(0, "127.0.0.1", () => { const { port } = server.address(); server.close(() => console.log(port)) })')"
  mkdir -p "$work/redis"
  redis-server --port "$redis_port" --bind 127.0.0.1 --dir "$work/redis" --save "" --appendonly no \
    >"$work/redis.log" 2>&1 &
  redis_pid=$!
  for _ in $(seq 1 100); do
    [ "$(redis-cli -p "$redis_port" ping 2>/dev/null)" = "PONG" ] && break
    kill -0 "$redis_pid" 2>/dev/null || break
    sleep 0.1
  done
  [ "$(redis-cli -p "$redis_port" ping 2>/dev/null)" = "PONG" ] ||
    { cat "$work/redis.log" >&2; fail "redis-server did not answer on port $redis_port"; }
  export CONSUMER_REDIS_URL="redis://127.0.0.1:$redis_port"
  step "$(redis-server --version | cut -d' ' -f1-3) on port $redis_port"
else
  echo "consumer: (no redis-server and redis-cli on PATH: the calls through a real Redis are skipped)"
fi
node out/esm.js || fail "the ES module program"
# Node 20 and 22 mark require() of an ES module experimental; the warning is expected, not a failure.
node --disable-warning=ExperimentalWarning out/cjs.cjs 2>&1 || fail "the CommonJS program"
if [ -n "$redis_pid" ]; then
  # Each program's call left its budget and its breaker on the server, under the program's own prefix.
  found=""
  for program in esm cjs; do
    keys="$(redis-cli -p "$redis_port" --scan --pattern "consumer-$program:*")"
    grep -q "^consumer-$program:budget:" <<<"$keys" && grep -q "^consumer-$program:circuit-breaker:" <<<"$keys" ||
      fail "the $program call through Redis left no budget and breaker keys: $(tr '\n' ',' <<<"$keys")"
    found="$found, $program $(grep -c . <<<"$keys")"
  done
  kill "$redis_pid" && wait "$redis_pid" 2>/dev/null || true
  redis_pid=""
  unset CONSUMER_REDIS_URL
  step "ran the ES module and the CommonJS programs; their calls through Redis left their keys (${found#, })"
else
  step "ran the ES module and the CommonJS programs"
fi

# 5. The command from the installed tarball.
help="$(npx --no -- effect-inference-simulator --help)" || fail "npx effect-inference-simulator --help"
grep -q "^Usage: effect-inference-simulator" <<<"$help" || fail "unexpected --help output: $help"
# The log exists before the loop reads it: the background job opens it in its own time (on a loaded machine,
# after the first read).
: >"$work/simulator.log"
./node_modules/.bin/effect-inference-simulator --port 0 --quiet >"$work/simulator.log" 2>&1 &
simulator_pid=$!
url=""
for _ in $(seq 1 100); do
  url="$(sed -n 's/.*listening on \(http:[^ ]*\).*/\1/p' "$work/simulator.log")"
  [ -n "$url" ] && break
  kill -0 "$simulator_pid" 2>/dev/null || break
  sleep 0.1
done
[ -n "$url" ] || { cat "$work/simulator.log" >&2; fail "effect-inference-simulator did not start"; }
models="$(node -e '
  fetch(process.argv[1] + "/models", { headers: { authorization: "Bearer sim-key" } })
    .then((r) => r.json())
    .then((body) => console.log(body.data.map((m) => m.id).length))
    .catch((e) => { console.error(e); process.exit(1) })' "$url")" || fail "GET $url/models"
[ "$models" -gt 0 ] || fail "GET $url/models listed no models"
port="${url#http://127.0.0.1:}"
port="${port%%/*}"
set +e
busy="$(npx --no -- effect-inference-simulator --port "$port" 2>&1)"
code=$?
set -e
[ "$code" = "1" ] || fail "a second simulator on port $port exited with $code: $busy"
[ "$busy" = "effect-inference-simulator: port $port is in use on 127.0.0.1; choose another with --port (0 picks a free one)" ] ||
  fail "a port in use should be one line, got: $busy"
step "npx effect-inference-simulator: --help, GET /v1/models ($models models) on port $port, a port in use refused in one line"

# 6. The batch command from the installed tarball, against that simulator: with no WANDB_API_KEY and a loopback
# --base-url, it uses the simulator's key.
help="$(npx --no -- effect-inference batch --help 2>&1)" || fail "npx effect-inference batch --help: $help"
grep -q -- "--max-cost" <<<"$help" || fail "unexpected batch --help output: $help"
mkdir -p "$work/batch"
node -e '
  const rows = ["q1", "q2", "q3", "q4", "q5"].map((id, i) => JSON.stringify({
    custom_id: id, method: "POST", url: "/v1/chat/completions",
    body: { model: "meta-llama/Llama-3.1-8B-Instruct", messages: [{ role: "user", content: `Question ${i + 1}?` }], max_tokens: 16 }
  }))
  require("node:fs").writeFileSync(process.argv[1], rows.join("\n") + "\n")' "$work/batch/prompts.jsonl"
set +e
summary="$(env -u WANDB_API_KEY npx --no -- effect-inference batch "$work/batch/prompts.jsonl" \
  --output "$work/batch/results.jsonl" --base-url "$url" 2>"$work/batch/stderr.log")"
code=$?
set -e
[ "$code" = "0" ] || { cat "$work/batch/stderr.log" >&2; fail "npx effect-inference batch exited with $code: $summary"; }
lines="$(wc -l <"$work/batch/results.jsonl")"
[ "$lines" -eq 5 ] || fail "npx effect-inference batch wrote $lines result lines, not 5: $summary"
failures="$(cat "$work/batch/results.jsonl.errors.jsonl" 2>/dev/null | wc -l)"
[ "$failures" -eq 0 ] || fail "npx effect-inference batch wrote $failures error lines"
grep -q "succeeded *5" <<<"$summary" || fail "unexpected batch summary: $summary"
kill "$simulator_pid" && wait "$simulator_pid" 2>/dev/null || true
simulator_pid=""
step "npx effect-inference batch: --help, 5 rows against the simulator, exit code 0, 5 result lines"

echo "consumer: OK on node $(node --version) in $(($(date +%s) - started))s"
