#!/usr/bin/env bash
# The GPU check: runs, on a Linux machine with an NVIDIA GPU and driver >= 580, what
# scripts/build-gpu-bundle.sh (and scripts/build-gpu-js-bundle.sh) built into .gpu-bundle/
# elsewhere. That machine needs no network, no Rust, no CUDA toolkit build step; Node.js and
# torch are optional. Build the bundle, copy the repository with .gpu-bundle/ to the machine,
# and run:
#
#   bash scripts/gpu-check.sh             the check (about 8 minutes at most)
#   bash scripts/gpu-check.sh --dry-run   the plan, budgets, libraries and bundle size; no GPU work
#   bash scripts/gpu-check.sh --emulator  parity through the host emulator of the kernels (no GPU
#                                         needed: rehearses the per-test runs; needs a C++ compiler)
#
# Bounded: the whole run stops by a global deadline (CHECK_DEADLINE_S, 480 s) measured with
# $SECONDS, and each step gets min(its budget, the time left): parity 150 s, kernel compile
# 45 s, JS spec 120 s, our bench 90 s, cuDNN comparison 90 s. The summary table is printed
# from an EXIT trap, so it appears whatever happens (a step timing out, a crash, Ctrl-C).
#
# Parity runs one test per process (`parity --list`, then `--exact NAME`), so a fault that
# poisons a CUDA context costs one test, not all. The first pass runs with synchronous launches
# (RECURRENT_CUDA_SYNC=1): a fault names its kernel, the op that launched it and the test. A
# second pass runs the real asynchronous path when time is left.
#
# Libraries: NVRTC and cuBLAS (with cuBLASLt) come from ONE folder, the first that holds all
# three of the 13 series among RECURRENT_CUDA_LIB_DIR, the pip wheels (nvidia/cu13/lib) and the
# toolkit folders; it goes first on LD_LIBRARY_PATH (through a folder of links that also gives
# the unversioned names cudarc tries first) and into RECURRENT_CUDA_LIB_DIR. The files loaded
# and their versions are printed in the parity header.
#
# The test binaries were built on a machine without a GPU, where cargo marks the GPU and NVRTC
# tests as ignored: they run here with --include-ignored, and RECURRENT_REQUIRE_CUDA=1 makes
# the JS spec fail, not skip, without a device. A missing device is a failure of the check.
#
# Logs go to $OUT when set, else /tmp/gpu-check.
set -uo pipefail
cd "$(dirname "$0")/.."
export RECURRENT_REQUIRE_CUDA=1
B=.gpu-bundle
LOG=${OUT:-/tmp/gpu-check}
DEADLINE=${CHECK_DEADLINE_S:-480}
MODE=check
for a in "$@"; do
  case "$a" in
    --dry-run) MODE=dry ;;
    --emulator) MODE=emulator ;;
    *) echo "usage: $0 [--dry-run | --emulator]" >&2; exit 2 ;;
  esac
done
mkdir -p "$LOG"
STEPS="$LOG/steps.tsv"
: >"$STEPS"

# step NAME STATUS SECONDS NOTE: one row of the summary table.
step() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >>"$STEPS"; }
left() { echo $((DEADLINE - SECONDS)); }
# budget B: min(B, time left before the deadline), at least 0.
budget() { local l; l=$(left); [ "$l" -lt "$1" ] && echo $((l > 0 ? l : 0)) || echo "$1"; }

summary() {
  local rc=$?
  trap - EXIT INT TERM
  echo
  echo "================ GPU check ($MODE, ${SECONDS}s of ${DEADLINE}s) ================"
  printf '%-22s %-8s %6s  %s\n' step result time note
  for s in header parity kernels js bench cudnn; do
    if grep -q "^$s	" "$STEPS" 2>/dev/null; then
      grep "^$s	" "$STEPS" | while IFS=$'\t' read -r n st t note; do printf '%-22s %-8s %5ss  %s\n' "$n" "$st" "$t" "$note"; done
    else
      printf '%-22s %-8s %6s  %s\n' "$s" "NOT RUN" "-" "stopped before this step (exit $rc)"
    fi
  done
  if [ -s "$LOG/parity-tests.tsv" ]; then
    echo
    printf '%-44s %-8s %-8s\n' "parity test" sync async
    awk -F'\t' '{ r[$1 FS $2] = $3; if (!($1 in seen)) { seen[$1] = 1; order[++n] = $1 } }
      END { for (i = 1; i <= n; i++) { t = order[i]; s = r[t FS "sync"]; a = r[t FS "async"];
            printf "%-44s %-8s %-8s\n", t, (s == "" ? "-" : s), (a == "" ? "-" : a) } }' "$LOG/parity-tests.tsv"
  fi
  if [ "$MODE" = check ] && command -v python3 >/dev/null 2>&1 && [ -f "$LOG/parity.log" ]; then
    echo
    timeout 10 python3 scripts/gpu_check_summary.py "$LOG" 2>/dev/null || true
  fi
  echo "logs: $LOG"
}
trap summary EXIT
trap 'exit 130' INT TERM

# ---- libraries: one folder for NVRTC and cuBLAS ---------------------------------------------
has13() { compgen -G "$1/$2.so.13*" >/dev/null; }
lib_candidates() {
  [ -n "${RECURRENT_CUDA_LIB_DIR:-}" ] && echo "$RECURRENT_CUDA_LIB_DIR"
  if command -v python3 >/dev/null 2>&1; then
    timeout 10 python3 - <<'PY' 2>/dev/null
import glob, os
try:
    import nvidia
    for p in nvidia.__path__:
        for d in sorted(glob.glob(os.path.join(p, "*", "lib"))):
            print(d)
except Exception:
    pass
PY
  fi
  # .tmp/nvrtc-wheel: where .ci/run installs the NVRTC wheel for the compile check.
  for d in .tmp/nvrtc-wheel/nvidia/*/lib /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib /usr/local/cuda-13*/lib64 /usr/lib/x86_64-linux-gnu; do
    [ -d "$d" ] && echo "$d"
  done
}
LIBDIR=""
NVRTC_DIR=""
CUBLAS_DIR=""
LIBNOTE=""
pick_libs() {
  local d
  while IFS= read -r d; do
    [ -d "$d" ] || continue
    if has13 "$d" libnvrtc && has13 "$d" libcublas && has13 "$d" libcublasLt; then LIBDIR=$d; break; fi
    [ -z "$NVRTC_DIR" ] && has13 "$d" libnvrtc && NVRTC_DIR=$d
    [ -z "$CUBLAS_DIR" ] && has13 "$d" libcublas && has13 "$d" libcublasLt && CUBLAS_DIR=$d
  done < <(lib_candidates)
  if [ -n "$LIBDIR" ]; then
    NVRTC_DIR=$LIBDIR; CUBLAS_DIR=$LIBDIR
    LIBNOTE="NVRTC and cuBLAS from one folder: $LIBDIR"
  elif [ -n "$NVRTC_DIR" ] && [ -n "$CUBLAS_DIR" ]; then
    LIBDIR=$CUBLAS_DIR
    LIBNOTE="no folder holds both: NVRTC from $NVRTC_DIR, cuBLAS+cuBLASLt from $CUBLAS_DIR"
  else
    LIBNOTE="NVRTC 13 ${NVRTC_DIR:-not found}; cuBLAS 13 with cuBLASLt ${CUBLAS_DIR:-not found}"
  fi
}
# A folder of links to the chosen files, with the unversioned names cudarc tries first, so that
# no other copy on the loader's default paths is picked.
link_libs() {
  local L=/tmp/gpu-check-libs f lib
  rm -rf "$L" && mkdir -p "$L"
  for f in "$NVRTC_DIR"/libnvrtc*.so* "$CUBLAS_DIR"/libcublas*.so*; do [ -e "$f" ] && ln -sf "$(readlink -f "$f")" "$L/$(basename "$f")"; done
  for lib in libnvrtc libcublas libcublasLt; do
    f=$(ls "$L/$lib.so.13"* 2>/dev/null | head -n1)
    [ -n "$f" ] && ln -sf "$(readlink -f "$f")" "$L/$lib.so"
  done
  local drv=""
  for d in /usr/local/nvidia/lib64 /usr/local/nvidia/lib; do [ -d "$d" ] && drv="$drv:$d"; done
  export LD_LIBRARY_PATH="$L$drv${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  export RECURRENT_CUDA_LIB_DIR="$LIBDIR"
}

# ---- header ---------------------------------------------------------------------------------
t0=$SECONDS
echo "== GPU check: $MODE, deadline ${DEADLINE}s =="
echo "plan: parity (one process per test; RECURRENT_CUDA_SYNC=1 first, then async) $(budget 150)s, NVRTC kernel compile $(budget 45)s, JS spec $(budget 120)s, bench $(budget 90)s, cuDNN comparison $(budget 90)s (each: min(budget, time left))"
size="not built (run scripts/build-gpu-bundle.sh)"
[ -d "$B" ] && size="$(du -sb "$B" | cut -f1) bytes ($(( $(du -sb "$B" | cut -f1) / 1024 / 1024 )) MiB)"
echo "bundle: $B: $size"
cat "$B/MANIFEST" "$B/js/MANIFEST" 2>/dev/null
pick_libs
echo "libraries: $LIBNOTE"
for f in "$NVRTC_DIR"/libnvrtc.so.13* "$CUBLAS_DIR"/libcublas.so.13* "$CUBLAS_DIR"/libcublasLt.so.13*; do [ -e "$f" ] && echo "  would load $(readlink -f "$f")"; done
driver="none"
if command -v nvidia-smi >/dev/null 2>&1; then
  driver=$(timeout 15 nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | head -n4 | paste -sd ';' -)
fi
echo "GPU: $driver"

if [ "$MODE" = dry ]; then
  step header PASS $((SECONDS - t0)) "dry run; bundle $size"
  for s in parity kernels js bench cudnn; do step "$s" SKIP 0 "dry run"; done
  exit 0
fi
[ -x "$B/parity" ] || { step header FAIL $((SECONDS - t0)) "no $B/parity: run scripts/build-gpu-bundle.sh first and copy .gpu-bundle"; exit 2; }
if [ "$MODE" = emulator ]; then
  export RECURRENT_CUDA_EMULATOR=1
  [ -n "$NVRTC_DIR" ] && export LD_LIBRARY_PATH="$NVRTC_DIR${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  step header PASS $((SECONDS - t0)) "host emulator of the kernels as cuda:0"
else
  link_libs
  echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
  step header PASS $((SECONDS - t0)) "$LIBNOTE; GPU: $driver"
fi

# ---- parity: one test per process -----------------------------------------------------------
t0=$SECONDS
PB=$(budget 150)
p_end=$((SECONDS + PB))
: >"$LOG/parity.log"
: >"$LOG/parity-tests.tsv"
mapfile -t TESTS < <(timeout 20 "$B/parity" --list 2>/dev/null | sed -n 's/: test$//p')
# The library report first: it is the header of the parity log.
ordered=()
for t in "${TESTS[@]}"; do [ "$t" = libraries_are_one_installation ] && ordered=("$t"); done
for t in "${TESTS[@]}"; do [ "$t" != libraries_are_one_installation ] && ordered+=("$t"); done
fails=0; timeouts=0; ran=0
run_pass() { # run_pass sync|async
  local pass=$1 t rc lim
  for t in "${ordered[@]}"; do
    lim=$((p_end - SECONDS))
    [ "$lim" -gt 60 ] && lim=60
    if [ "$lim" -le 2 ]; then printf '%s\t%s\tNOT RUN\n' "$t" "$pass" >>"$LOG/parity-tests.tsv"; continue; fi
    echo "---- $t ($pass, limit ${lim}s)" >>"$LOG/parity.log"
    if [ "$pass" = sync ]; then
      RECURRENT_CUDA_SYNC=1 timeout -k 5 "$lim" "$B/parity" --exact "$t" --include-ignored --test-threads 1 --nocapture >>"$LOG/parity.log" 2>&1
    else
      timeout -k 5 "$lim" "$B/parity" --exact "$t" --include-ignored --test-threads 1 --nocapture >>"$LOG/parity.log" 2>&1
    fi
    rc=$?
    ran=$((ran + 1))
    case $rc in
      0) r=pass ;;
      124|137) r=TIMEOUT; timeouts=$((timeouts + 1)) ;;
      *) r=FAIL; fails=$((fails + 1)) ;;
    esac
    printf '%s\t%s\t%s\n' "$t" "$pass" "$r" >>"$LOG/parity-tests.tsv"
  done
}
if [ "${#ordered[@]}" -eq 0 ]; then
  step parity FAIL $((SECONDS - t0)) "parity --list gave no tests (see $LOG/parity.log)"
else
  run_pass sync
  [ $((p_end - SECONDS)) -gt 10 ] && run_pass async
  sed -n 's/^LIB /  /p' "$LOG/parity.log" | sort -u
  grep -h "device fault in" "$LOG/parity.log" | head -5
  note="${#ordered[@]} tests, $ran runs, $fails failed, $timeouts timed out"
  if [ "$fails" -gt 0 ] || [ "$timeouts" -gt 0 ]; then st=FAIL; note="$note; $(grep -m1 'no CUDA device' "$LOG/parity.log")"
  else st=PASS; fi
  step parity "$st" $((SECONDS - t0)) "$note"
fi

# ---- NVRTC kernel compile check -------------------------------------------------------------
t0=$SECONDS
KB=$(budget 45)
if [ "$KB" -le 2 ]; then step kernels "NOT RUN" 0 "deadline reached"
else
  RECURRENT_REQUIRE_NVRTC=1 timeout -k 5 "$KB" "$B/kernels_compile" --include-ignored --test-threads 1 --nocapture >"$LOG/kernels.log" 2>&1
  rc=$?
  case $rc in 0) st=PASS ;; 124|137) st=TIMEOUT ;; *) st=FAIL ;; esac
  step kernels "$st" $((SECONDS - t0)) "$(grep -m1 -E '^NVRTC' "$LOG/kernels.log") $(grep -E '^test result' "$LOG/kernels.log" | tail -n1)"
fi

if [ "$MODE" = emulator ]; then
  for s in js bench cudnn; do step "$s" SKIP 0 "needs a GPU (emulator mode; the JS spec on the emulator is npm run test:cuda-emu)"; done
  exit 0
fi

# ---- JS API on CUDA (__test__/cuda.spec.ts with ava) ----------------------------------------
t0=$SECONDS
JB=$(budget 120)
unxz_to() {
  if command -v xz >/dev/null 2>&1; then xz -dc "$1" >"$2"
  else python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' "$1" "$2"; fi
}
JS=$B/js
if [ "$JB" -le 5 ]; then step js "NOT RUN" 0 "deadline reached"
elif [ ! -f "$JS/app.tar.xz" ]; then step js SKIP 0 "no $JS/app.tar.xz (scripts/build-gpu-js-bundle.sh)"
else
  NODE=$(command -v node 2>/dev/null || true)
  if [ -z "$NODE" ] && [ -f "$JS/node.xz" ]; then
    mkdir -p /tmp/gpu-node && unxz_to "$JS/node.xz" /tmp/gpu-node/node && chmod +x /tmp/gpu-node/node && NODE=/tmp/gpu-node/node
  fi
  if [ -z "$NODE" ]; then step js SKIP $((SECONDS - t0)) "no node here and none in the bundle (scripts/build-gpu-js-bundle.sh --with-node)"
  elif ! "$NODE" --version >/dev/null 2>&1; then step js SKIP $((SECONDS - t0)) "$NODE does not start here"
  else
    rm -rf /tmp/gpu-js && mkdir -p /tmp/gpu-js
    unxz_to "$JS/app.tar.xz" /tmp/gpu-js/app.tar && tar -C /tmp/gpu-js -xf /tmp/gpu-js/app.tar
    lim=$(budget $((JB - (SECONDS - t0))))
    (cd /tmp/gpu-js/app && timeout -k 5 "$lim" "$NODE" node_modules/ava/entrypoints/cli.mjs --verbose) >"$LOG/cuda-spec.log" 2>&1
    rc=$?
    grep -E "✘|SKIP|max rel diff|CUDA devices|libraries" "$LOG/cuda-spec.log" | uniq | head -16
    note="node $("$NODE" --version): $(grep -E 'tests? (passed|failed)' "$LOG/cuda-spec.log" | sed 's/^ *//' | paste -sd ';' -)"
    case $rc in 0) st=PASS ;; 124|137) st=TIMEOUT ;; *) st=FAIL ;; esac
    step js "$st" $((SECONDS - t0)) "$note"
  fi
fi

# ---- bench: ours, then cuDNN (torch) --------------------------------------------------------
t0=$SECONDS
BB=$(budget 90)
if [ "$BB" -le 5 ]; then step bench "NOT RUN" 0 "deadline reached"
else
  timeout -k 5 "$BB" "$B/cuda_bench" >"$LOG/bench.log" 2>&1
  rc=$?
  case $rc in 0) st=PASS ;; 124|137) st=TIMEOUT ;; *) st=FAIL ;; esac
  step bench "$st" $((SECONDS - t0)) "$(grep -c '^BENCH' "$LOG/bench.log") configurations timed"
fi
t0=$SECONDS
CB=$(budget 90)
if [ "$CB" -le 5 ]; then step cudnn "NOT RUN" 0 "deadline reached"
elif command -v python3 >/dev/null 2>&1 && timeout 30 python3 -c "import torch" >/dev/null 2>&1; then
  PYTHONUNBUFFERED=1 timeout -k 5 "$(budget "$CB")" python3 bench/cudnn_reference.py >"$LOG/cudnn.jsonl" 2>"$LOG/cudnn.err"
  rc=$?
  case $rc in 0) st=PASS ;; 124|137) st=TIMEOUT ;; *) st=FAIL ;; esac
  step cudnn "$st" $((SECONDS - t0)) "$(grep -c '"cell"' "$LOG/cudnn.jsonl") reference timings"
else
  echo "torch not importable: no cuDNN reference" >"$LOG/cudnn.err"
  step cudnn SKIP $((SECONDS - t0)) "torch not importable here"
fi
