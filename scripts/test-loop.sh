#!/usr/bin/env bash
# Flakiness check: runs `npm test` N times in a row (default 20) with a CPU-bound process beside
# it for the whole loop, keeps every run's log, and prints one line per run and the tally.
# Usage: bash scripts/test-loop.sh [N]      (logs in .tmp/test-loop/, git-ignored)
#        LOOP_FIRST=K bash scripts/test-loop.sh N   continues a loop stopped after run K-1
#        (the earlier runs' logs and summary lines are kept).
# Exit status 0 only when every run of this invocation passed.
set -uo pipefail
cd "$(dirname "$0")/.."
runs=${1:-20}
dir=.tmp/test-loop
first=${LOOP_FIRST:-1}
mkdir -p "$dir"
[ "$first" -eq 1 ] && rm -f "$dir"/run-*.log "$dir/summary.txt"

# The competing load: one busy thread for the whole loop (on a 2-core machine, half of it).
node -e 'for (;;) {}' &
hog=$!
trap 'kill $hog 2>/dev/null' EXIT

say() { echo "$*" | tee -a "$dir/summary.txt"; }
say "test loop: runs $first to $runs of npm test beside a CPU-bound process (pid $hog); $(nproc) cores; $(date -u +%FT%TZ); commit $(git rev-parse --short HEAD)"
passed=0
for k in $(seq "$first" "$runs"); do
  log="$dir/run-$k.log"
  t0=$(date +%s)
  npm test >"$log" 2>&1
  rc=$?
  secs=$(( $(date +%s) - t0 ))
  counts=$(node scripts/test-summary.mjs "$log" | grep '^total' | sed 's/^total *//; s/  */ /g')
  if [ "$rc" -eq 0 ]; then
    passed=$((passed + 1))
    say "run $k/$runs: pass in ${secs}s ($counts); load $(cut -d' ' -f1-3 /proc/loadavg)"
  else
    say "run $k/$runs: FAIL (exit $rc) in ${secs}s ($counts); log $log"
    grep -E '✘|panicked|FAILED|failed' "$log" | head -n 20 | sed 's/^/    /' | tee -a "$dir/summary.txt"
  fi
done
say "test loop: $passed of $((runs - first + 1)) runs (runs $first to $runs) passed; $(date -u +%FT%TZ)"
[ "$passed" -eq "$((runs - first + 1))" ]
