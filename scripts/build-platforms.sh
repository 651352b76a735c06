#!/usr/bin/env bash
# Cross-builds the release addon (crates/node) for the platforms a Linux x86-64 machine can
# build with registry tools only, into .tmp/platforms/<key>/recurrent.<key>.node (napi-rs
# platform keys). Usage: scripts/build-platforms.sh [key ...]; no key = every key below.
#
#   linux-x64-gnu     x86_64-unknown-linux-gnu, linked against glibc 2.17 (zig's stubs)
#   linux-arm64-gnu   aarch64-unknown-linux-gnu, glibc 2.17
#   linux-x64-musl    x86_64-unknown-linux-musl, a dynamic library on musl's libc.so
#   linux-arm64-musl  aarch64-unknown-linux-musl, idem
#   win32-x64-gnu     x86_64-pc-windows-gnu (MinGW ABI), linked by zig
#
# The linker for every target is zig through cargo-zigbuild (pip packages `ziglang` and
# `cargo-zigbuild`): it brings the old-glibc and musl link stubs and a MinGW sysroot, so no
# system cross toolchain is needed. Missing rustup targets and pip packages are installed once;
# when everything is there, nothing touches the network.
#
# Each target builds on its own, in order (the machine's cores are shared); a failing target
# is reported with the end of its log and the others still build. The run ends with a table
# and exits non-zero if any requested target failed. The host dev build (`npm run
# build:native`, native/) is left alone: cross builds live in target/<triple>/.
set -uo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never

ALL_KEYS=(linux-x64-gnu linux-arm64-gnu linux-x64-musl linux-arm64-musl win32-x64-gnu)
OUT_ROOT=.tmp/platforms
LOG_DIR=$OUT_ROOT/logs

# key → rust target triple
triple_of() {
  case "$1" in
    linux-x64-gnu) echo x86_64-unknown-linux-gnu ;;
    linux-arm64-gnu) echo aarch64-unknown-linux-gnu ;;
    linux-x64-musl) echo x86_64-unknown-linux-musl ;;
    linux-arm64-musl) echo aarch64-unknown-linux-musl ;;
    win32-x64-gnu) echo x86_64-pc-windows-gnu ;;
    *) return 1 ;;
  esac
}

# The target cargo-zigbuild gets: gnu targets carry the glibc version to link against, so the
# binary loads on every distribution with glibc 2.17 or newer (CentOS 7 and later).
zig_target_of() {
  case "$1" in
    linux-*-gnu) echo "$(triple_of "$1").2.17" ;;
    *) triple_of "$1" ;;
  esac
}

# The library cargo writes for the crate (lib name recurrent_node).
artifact_of() {
  case "$1" in
    win32-*) echo "target/$(triple_of "$1")/release/recurrent_node.dll" ;;
    *) echo "target/$(triple_of "$1")/release/librecurrent_node.so" ;;
  esac
}

keys=("$@")
[ ${#keys[@]} -eq 0 ] && keys=("${ALL_KEYS[@]}")
for k in "${keys[@]}"; do
  triple_of "$k" >/dev/null || { echo "build-platforms: unknown key '$k' (known: ${ALL_KEYS[*]})" >&2; exit 2; }
done

# ---- tools (idempotent, quiet; network only for what is missing) ------------------------------
if ! command -v cargo >/dev/null 2>&1 && [ -f "$HOME/.cargo/env" ]; then
  . "$HOME/.cargo/env"
fi
command -v cargo >/dev/null || { echo "build-platforms: cargo not found (install Rust with rustup)" >&2; exit 1; }
command -v python3 >/dev/null || { echo "build-platforms: python3 not found (needed for zig and cargo-zigbuild)" >&2; exit 1; }
pip_install() {
  python3 -m pip install --quiet --disable-pip-version-check "$@" ||
    python3 -m pip install --quiet --disable-pip-version-check --break-system-packages "$@"
}
if ! python3 -m ziglang version >/dev/null 2>&1; then
  echo "build-platforms: installing zig (pip: ziglang)"
  pip_install ziglang || { echo "build-platforms: could not install ziglang" >&2; exit 1; }
fi
if ! command -v cargo-zigbuild >/dev/null 2>&1; then
  echo "build-platforms: installing cargo-zigbuild (pip)"
  pip_install cargo-zigbuild || { echo "build-platforms: could not install cargo-zigbuild" >&2; exit 1; }
  hash -r
  # pip --user puts scripts here when it is not on PATH
  command -v cargo-zigbuild >/dev/null 2>&1 || export PATH="$HOME/.local/bin:$PATH"
fi
command -v cargo-zigbuild >/dev/null || { echo "build-platforms: cargo-zigbuild installed but not on PATH" >&2; exit 1; }
if command -v rustup >/dev/null 2>&1; then
  installed=$(rustup target list --installed)
  for k in "${keys[@]}"; do
    t=$(triple_of "$k")
    if ! grep -qx "$t" <<<"$installed"; then
      echo "build-platforms: rustup target add $t"
      rustup target add "$t" >/dev/null || echo "build-platforms: could not add the rustup target $t (its build will fail)" >&2
    fi
  done
fi

# napi-build's Windows-GNU setup insists on a libnode.dll to pass `-lnode` to the linker (it
# targets MSYS2's shared Node). The addon does not need it: napi-sys resolves every Node-API
# function at load time from the host process (its `dyn-symbols` feature, on by default), and
# node.exe exports them. So the link gets an empty import archive, which the linker's search
# finds before any .dll, and nothing is imported from it (the inspect script checks that the
# DLL imports no node/libnode). The libnode.dll beside it only satisfies napi-build's check.
win_stub_dir() {
  local d=$PWD/$OUT_ROOT/.win-libnode-stub
  if [ ! -f "$d/libnode.a" ]; then
    mkdir -p "$d"
    printf '!<arch>\n' >"$d/libnode.a"
    printf 'placeholder for napi-build: never linked, see scripts/build-platforms.sh\n' >"$d/libnode.dll"
  fi
  echo "$d"
}

# ---- builds -----------------------------------------------------------------------------------
mkdir -p "$LOG_DIR"
declare -A result seconds
failed=0
for k in "${keys[@]}"; do
  t=$(triple_of "$k")
  zt=$(zig_target_of "$k")
  log=$LOG_DIR/$k.log
  out_dir=$OUT_ROOT/$k
  rm -rf "$out_dir"
  env_args=()
  case "$k" in
    # Rust's musl targets link libc statically by default (crt-static), and with it cargo
    # refuses the crate type ("cannot produce cdylib ... does not support these crate types").
    # Off, the addon is a shared object that needs musl's libc.so, the one Node runs on.
    *-musl) env_args+=("CARGO_TARGET_$(tr 'a-z-' 'A-Z_' <<<"$t")_RUSTFLAGS=-C target-feature=-crt-static") ;;
    win32-*) env_args+=("LIBNODE_PATH=$(win_stub_dir)") ;;
  esac
  echo "== $k: cargo zigbuild --release --locked -p recurrent-node --target $zt (log: $log)"
  start=$(date +%s)
  if env "${env_args[@]}" cargo zigbuild --release --locked -p recurrent-node --target "$zt" >"$log" 2>&1; then
    art=$(artifact_of "$k")
    if [ -f "$art" ]; then
      mkdir -p "$out_dir"
      cp "$art" "$out_dir/recurrent.$k.node"
      result[$k]=built
    else
      result[$k]="failed: cargo succeeded but $art is missing"
    fi
  else
    # The first compiler/linker error says why; the log has the rest.
    why=$(grep -m1 -E '^error|error:' "$log" | cut -c1-160)
    result[$k]="failed: ${why:-cargo exited non-zero}"
    echo "-- $k failed; end of $log:" >&2
    tail -n 25 "$log" >&2
  fi
  seconds[$k]=$(($(date +%s) - start))
  [ "${result[$k]}" = built ] || failed=1
  echo "== $k: ${result[$k]} (${seconds[$k]} s)"
done

echo
printf '%-18s %-8s %s\n' key seconds result
for k in "${keys[@]}"; do
  printf '%-18s %-8s %s\n' "$k" "${seconds[$k]}" "${result[$k]}"
  [ "${result[$k]}" = built ] && printf '%-18s %-8s %s\n' '' '' "$OUT_ROOT/$k/recurrent.$k.node"
done
exit $failed
