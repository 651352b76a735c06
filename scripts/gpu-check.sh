#!/usr/bin/env bash
# The GPU check, for the lent GPU machine (no registries there, maybe no node, nothing built
# there): runs what scripts/build-gpu-bundle.sh put in .gpu-bundle/ and prints ONE short table
# at the end: op parity (max relative error per test, pass/fail), the NVRTC compile check, and
# our forward+backward times against cuDNN's (torch, if installed) with the ratio.
#
#   here:  scripts/build-gpu-bundle.sh
#          scripts/build-gpu-js-bundle.sh [--with-node]   (optional: the JS spec, see below)
#   there: bash scripts/gpu-check.sh          (device tool: carry [".gpu-bundle"])
#
# The JS step runs __test__/cuda.spec.ts (the TypeScript API on cuda:0 against the CPU) with
# ava from .gpu-bundle/js/ when that was built, using the machine's `node`, or the one
# carried with --with-node; otherwise it says why it did not run.
#
# Logs go to $OUT (the device tool's returned folder) or /tmp/gpu-check.
set -uo pipefail
cd "$(dirname "$0")/.."
B=.gpu-bundle
LOG=${OUT:-/tmp/gpu-check}
mkdir -p "$LOG"
[ -x "$B/parity" ] || { echo "gpu-check: no $B/ bundle: run scripts/build-gpu-bundle.sh first and carry .gpu-bundle" >&2; exit 2; }
cat "$B/MANIFEST" 2>/dev/null

# CUDA libraries: the driver, NVRTC 13 and cuBLAS 13, from the toolkit or from pip wheels.
libdirs=""
for d in /usr/local/nvidia/lib64 /usr/local/nvidia/lib /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib; do
  [ -d "$d" ] && libdirs="$libdirs:$d"
done
if command -v python3 >/dev/null 2>&1; then
  wheel_dirs=$(python3 - <<'PY' 2>/dev/null
import glob, os
try:
    import nvidia
    paths = list(nvidia.__path__)
except Exception:
    paths = []
out = []
for p in paths:
    out += [d for d in glob.glob(os.path.join(p, "*", "lib")) if glob.glob(os.path.join(d, "lib*.so*"))]
print(":".join(sorted(set(out))))
PY
)
  [ -n "$wheel_dirs" ] && libdirs="$libdirs:$wheel_dirs"
fi
export LD_LIBRARY_PATH="${libdirs#:}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader

echo "== parity (CPU oracle vs cuda:0) =="
timeout 300 "$B/parity" --test-threads 1 --nocapture >"$LOG/parity.log" 2>&1
echo "parity exit: $?"
grep -E "^test result|FAIL|panicked" "$LOG/parity.log" | head -20

echo "== NVRTC kernel compile check =="
RECURRENT_REQUIRE_NVRTC=1 timeout 180 "$B/kernels_compile" --test-threads 1 --nocapture >"$LOG/kernels.log" 2>&1
echo "kernels exit: $?"
grep -E "^NVRTC|^test result|failed" "$LOG/kernels.log" | head -10

echo "== bench: ours =="
timeout 240 "$B/cuda_bench" >"$LOG/bench.log" 2>&1
echo "bench exit: $?"
grep -v '^BENCH' "$LOG/bench.log"

echo "== bench: cuDNN (torch) =="
if command -v python3 >/dev/null 2>&1 && python3 -c "import torch" >/dev/null 2>&1; then
  PYTHONUNBUFFERED=1 timeout 240 python3 bench/cudnn_reference.py >"$LOG/cudnn.jsonl" 2>"$LOG/cudnn.err"
  echo "cudnn exit: $?"
  cat "$LOG/cudnn.err" | tail -14
else
  echo "torch not importable: no cuDNN reference" | tee "$LOG/cudnn.err"
fi

echo "== JS API on CUDA (__test__/cuda.spec.ts with ava) =="
# Decompresses an .xz file with xz, or with Python's lzma where xz is missing.
unxz_to() {
  if command -v xz >/dev/null 2>&1; then xz -dc "$1" >"$2"
  else python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' "$1" "$2"; fi
}
JS=$B/js
js_note=""
if [ ! -f "$JS/app.tar.xz" ]; then
  js_note="not run: no $JS/app.tar.xz (build it here with scripts/build-gpu-js-bundle.sh)"
else
  NODE=$(command -v node 2>/dev/null || true)
  if [ -z "$NODE" ] && [ -f "$JS/node.xz" ]; then
    mkdir -p /tmp/gpu-node && unxz_to "$JS/node.xz" /tmp/gpu-node/node && chmod +x /tmp/gpu-node/node && NODE=/tmp/gpu-node/node
  fi
  if [ -z "$NODE" ]; then
    js_note="not run: no node on this machine and none carried (scripts/build-gpu-js-bundle.sh --with-node)"
  elif ! "$NODE" --version >/dev/null 2>&1; then
    js_note="not run: $NODE does not start here"
  else
    rm -rf /tmp/gpu-js && mkdir -p /tmp/gpu-js
    unxz_to "$JS/app.tar.xz" /tmp/gpu-js/app.tar && tar -C /tmp/gpu-js -xf /tmp/gpu-js/app.tar
    echo "node $("$NODE" --version) ($NODE)"
    (cd /tmp/gpu-js/app && timeout 300 "$NODE" node_modules/ava/entrypoints/cli.mjs --verbose) >"$LOG/cuda-spec.log" 2>&1
    echo "cuda.spec exit: $?"
    grep -E "✘|SKIP|max rel diff|CUDA devices|tests? (passed|failed)|known failure|skipped" "$LOG/cuda-spec.log" | uniq | head -24
    js_note=$(grep -E "tests? (passed|failed)" "$LOG/cuda-spec.log" | sed 's/^ *//' | paste -sd ';' -)
    [ -n "$js_note" ] || js_note="no result line: see $LOG/cuda-spec.log"
    grep -q "SKIP: no CUDA device" "$LOG/cuda-spec.log" && js_note="$js_note (GPU tests SKIPPED: no CUDA device)"
  fi
fi
[ -f "$LOG/cuda-spec.log" ] || echo "$js_note" >"$LOG/cuda-spec.log"

echo
if command -v python3 >/dev/null 2>&1; then
  python3 scripts/gpu_check_summary.py "$LOG"
else
  echo "== GPU check summary (no python3: raw lines) =="
  grep -E "^test result" "$LOG/parity.log" "$LOG/kernels.log"
  grep -c "FAIL" "$LOG/parity.log"
  grep '^BENCH' "$LOG/bench.log"
fi
echo "JS API on CUDA (cuda.spec.ts): $js_note"
