#!/usr/bin/env bash
# Builds here, on a machine without a GPU, what scripts/gpu-check.sh needs to run the JS
# device spec (__test__/cuda.spec.ts) on a GPU machine, which builds nothing and needs no
# network: into .gpu-bundle/js/ (git-ignored; run scripts/build-gpu-bundle.sh FIRST, it
# clears .gpu-bundle/):
#
#   app.tar.xz  the API and the spec compiled to JavaScript (tsc), the native addon
#               (the .node file built by `npm run build:native`), a
#               package.json with the ava settings, and ava's own dependencies (no TypeScript
#               loader is needed: the spec is plain JS there)
#   node.xz     with --with-node only: this machine's `node` binary (x86-64 Linux, ~24 MiB
#               compressed), for a GPU machine without Node.js. gpu-check.sh prefers a `node`
#               found on the GPU machine's PATH.
#
#   here:  scripts/build-gpu-bundle.sh && scripts/build-gpu-js-bundle.sh [--with-node]
#   there: bash scripts/gpu-check.sh          (after copying the repository with .gpu-bundle/)
#
# The bundle plus the working tree is kept under 60 MiB, so the copy stays small; this checks it.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
out=.gpu-bundle/js
with_node=0
for a in "$@"; do
  case "$a" in
    --with-node) with_node=1 ;;
    *) echo "usage: $0 [--with-node]" >&2; exit 2 ;;
  esac
done
[ -d .gpu-bundle ] || { echo "build-gpu-js-bundle: run scripts/build-gpu-bundle.sh first (it makes .gpu-bundle/)" >&2; exit 1; }
ls native/*.node >/dev/null 2>&1 || npm run build:native

rm -rf "$out"
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
app="$stage/app"
mkdir -p "$app/native"

# 1. index.ts, src/ (not the CLI) and the spec, compiled as the package is (tsconfig.json).
cat >"$stage/tsconfig.json" <<EOF
{
  "extends": "$root/tsconfig.json",
  "compilerOptions": { "rootDir": "$root", "outDir": "$app", "declaration": false, "sourceMap": false, "typeRoots": ["$root/node_modules/@types"] },
  "include": ["$root/index.ts", "$root/src/**/*.ts", "$root/__test__/cuda.spec.ts"],
  "exclude": ["$root/src/cli/**"]
}
EOF
npx tsc -p "$stage/tsconfig.json"

# 2. The native addon, where src/platform.ts looks for a build from source (<package root>/native/).
cp native/*.node "$app/native/"

# 3. ava's settings: the compiled spec, no worker threads (the addon is per process). The name is
#    the package's own: the loader finds the package root by it.
cat >"$app/package.json" <<'EOF'
{
  "name": "recurrent-nn",
  "private": true,
  "type": "module",
  "ava": { "files": ["__test__/cuda.spec.js"], "workerThreads": false, "timeout": "5m" }
}
EOF

# 4. ava and everything it depends on, at the same paths under node_modules/.
node - "$root" "$app" <<'EOF'
const fs = require('fs')
const path = require('path')
const [root, app] = process.argv.slice(2)
const nm = path.join(root, 'node_modules')
const seen = new Set()
const find = (name, from) => {
  for (let d = from; ; d = path.dirname(d)) {
    const p = path.join(d, 'node_modules', name)
    if (fs.existsSync(path.join(p, 'package.json'))) return fs.realpathSync(p)
    if (path.dirname(d) === d) return null
  }
}
const walk = (dir) => {
  if (seen.has(dir)) return
  seen.add(dir)
  const pj = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8'))
  for (const dep of Object.keys({ ...pj.dependencies, ...pj.optionalDependencies })) {
    const d = find(dep, dir)
    if (d) walk(d)
  }
}
walk(fs.realpathSync(path.join(nm, 'ava')))
const dirs = [...seen].filter((d) => d.startsWith(nm + path.sep)).sort()
let copied = 0
for (const d of dirs) {
  // A package inside one already copied (a nested node_modules) came with it.
  if (dirs.some((p) => p !== d && d.startsWith(p + path.sep))) continue
  fs.cpSync(d, path.join(app, 'node_modules', path.relative(nm, d)), { recursive: true, dereference: true })
  copied++
}
console.log(`ava and ${seen.size - 1} dependencies (${copied} folders) copied`)
EOF

mkdir -p "$out"
tar -C "$stage" -cf - app | xz -6 -T0 >"$out/app.tar.xz"
if [ "$with_node" = 1 ]; then
  xz -6 -T0 -c "$(readlink -f "$(command -v node)")" >"$out/node.xz"
fi
{
  echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' (with uncommitted changes)')"
  echo "built: $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(uname -sm), node $(node --version)$([ "$with_node" = 1 ] && echo ' (included)')"
} >"$out/MANIFEST"

size=$(du -sb .gpu-bundle | cut -f1)
tree=$( (git ls-files; git ls-files --others --exclude-standard) | sort -u | while IFS= read -r f; do [ -f "$f" ] && stat -c %s "$f"; done | awk '{s += $1} END {print s + 0}')
echo "gpu js bundle: $out"
ls -l "$out"
echo "to copy in all: .gpu-bundle $size bytes ($((size / 1024 / 1024)) MiB) + working tree $((tree / 1024 / 1024)) MiB (limit 60 MiB)"
if [ $((size + tree)) -gt $((60 * 1024 * 1024)) ]; then
  echo "build-gpu-js-bundle: .gpu-bundle plus the working tree is over its 60 MiB limit" >&2
  exit 1
fi
