#!/usr/bin/env bash
# Builds here, on a machine without a GPU, everything scripts/gpu-check.sh runs on a GPU
# machine (which builds nothing and needs no network): the release test binaries of
# recurrent-cuda (CPU-vs-CUDA parity, NVRTC kernel compile check) and the cuda_bench example,
# stripped, into .gpu-bundle/ (git-ignored; the kernels are embedded in the binaries, a copy of
# the sources rides along for inspection). Copy the repository with .gpu-bundle/ to the GPU
# machine and run scripts/gpu-check.sh there. The bundle is kept under 60 MiB.
set -euo pipefail
cd "$(dirname "$0")/.."
out=.gpu-bundle
export CARGO_TERM_COLOR=never

cargo build --release -p recurrent-cuda --example cuda_bench
# The test binaries' paths come from cargo's JSON messages (one line per artifact).
msgs=$(cargo test --release -p recurrent-cuda --no-run --message-format=json 2>/dev/null)
exe_of() {
  printf '%s\n' "$msgs" | grep '"reason":"compiler-artifact"' | grep "\"name\":\"$1\"" | grep -o '"executable":"[^"]*"' | head -n1 | cut -d'"' -f4
}
rm -rf "$out"
mkdir -p "$out/kernels"
for t in parity kernels_compile; do
  exe=$(exe_of "$t")
  [ -n "$exe" ] && [ -x "$exe" ] || { echo "build-gpu-bundle: no test binary for '$t'" >&2; exit 1; }
  cp "$exe" "$out/$t"
done
cp target/release/examples/cuda_bench "$out/cuda_bench"
cp crates/cuda/kernels/*.cu crates/cuda/kernels/*.cuh "$out/kernels/"
if command -v strip >/dev/null 2>&1; then
  strip "$out/parity" "$out/kernels_compile" "$out/cuda_bench"
fi
{
  echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' (with uncommitted changes)')"
  echo "built: $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(uname -sm), $(cargo --version)"
} >"$out/MANIFEST"
size=$(du -sb "$out" | cut -f1)
echo "gpu bundle: $out ($((size / 1024 / 1024)) MiB):"
ls -l "$out"
if [ "$size" -gt $((60 * 1024 * 1024)) ]; then
  echo "build-gpu-bundle: the bundle is over its 60 MiB limit" >&2
  exit 1
fi
