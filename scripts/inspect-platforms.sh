#!/usr/bin/env bash
# Checks the cross-built addons in .tmp/platforms/<key>/recurrent.<key>.node (from
# scripts/build-platforms.sh) without running them: for each it prints the architecture, the
# shared libraries it needs (ELF NEEDED, PE DLL imports) and, for glibc builds, the newest
# GLIBC_x.y symbol version it binds to. Fails when a binary is for the wrong architecture or
# format, a linux-*-gnu binary needs a glibc newer than 2.17, a musl binary needs glibc (or
# carries its own libc instead of needing musl's libc.so), a Windows binary imports a DLL that a
# stock Windows with the official node.exe lacks, or the Node-API entry point is not exported.
# Usage: scripts/inspect-platforms.sh [key ...]; no key = every binary that is there.
set -uo pipefail
cd "$(dirname "$0")/.."

# RECURRENT_PLATFORMS_DIR: another folder of <key>/recurrent.<key>.node (to check the checks).
ROOT=${RECURRENT_PLATFORMS_DIR:-.tmp/platforms}
MAX_GLIBC=2.17

keys=("$@")
if [ ${#keys[@]} -eq 0 ]; then
  for d in "$ROOT"/*/; do
    k=$(basename "$d")
    [ -f "$d/recurrent.$k.node" ] && keys+=("$k")
  done
fi
[ ${#keys[@]} -gt 0 ] || { echo "inspect-platforms: no binary under $ROOT (run scripts/build-platforms.sh)" >&2; exit 1; }
for tool in readelf objdump; do
  command -v $tool >/dev/null || { echo "inspect-platforms: $tool not found (Debian: binutils)" >&2; exit 1; }
done
# PE imports: the MinGW objdump when installed, else the host one (Debian's reads pei-x86-64).
PE_OBJDUMP=objdump
command -v x86_64-w64-mingw32-objdump >/dev/null && PE_OBJDUMP=x86_64-w64-mingw32-objdump

# a ≤ b for dotted versions
version_le() { [ "$(printf '%s\n%s\n' "$1" "$2" | sort -V | head -n1)" = "$1" ]; }

status=0
problems=()
fail() {
  problems+=("$1: $2")
  status=1
  echo "  FAIL: $2"
}

for k in "${keys[@]}"; do
  f=$ROOT/$k/recurrent.$k.node
  echo "== $k ($f, $(stat -c %s "$f" 2>/dev/null || echo '?') bytes)"
  if [ ! -f "$f" ]; then
    fail "$k" "not built"
    continue
  fi
  command -v file >/dev/null && echo "  file: $(file -b "$f")"
  case "$k" in
    *-x64-*) want_elf='Advanced Micro Devices X86-64' want_pe='i386:x86-64' ;;
    *-arm64-*) want_elf='AArch64' want_pe='aarch64' ;;
    *) fail "$k" "unknown key, cannot tell the expected architecture"; continue ;;
  esac

  if [[ $k == win32-* ]]; then
    head=$($PE_OBJDUMP -f "$f" 2>&1)
    fmt=$(sed -n 's/.*file format \(.*\)/\1/p' <<<"$head" | head -n1)
    arch=$(sed -n 's/^architecture: \([^,]*\),.*/\1/p' <<<"$head" | head -n1)
    echo "  format: ${fmt:-?}, architecture: ${arch:-?}"
    [[ $fmt == pei-* ]] || fail "$k" "not a PE image (format '${fmt:-?}')"
    [ "$arch" = "$want_pe" ] || fail "$k" "architecture '$arch', expected '$want_pe'"
    pe=$($PE_OBJDUMP -p "$f" 2>&1)
    grep -q '^Characteristics.*DLL' <<<"$pe" || grep -q 'DLL$' <<<"$(grep -A12 '^Characteristics' <<<"$pe")" ||
      fail "$k" "the PE image is not a DLL"
    dlls=$(sed -n 's/^[[:space:]]*DLL Name: //p' <<<"$pe" | sort -fu)
    echo "  DLL imports: $(tr '\n' ' ' <<<"$dlls")"
    while read -r dll; do
      [ -n "$dll" ] || continue
      case "${dll,,}" in
        # Node-API comes from the host process at load time (napi-sys dyn-symbols): an import
        # of node.exe or libnode.dll would tie the addon to one executable name, or to a DLL
        # the official Windows Node does not have.
        node.exe | libnode.dll | node.dll) fail "$k" "imports $dll (Node-API must be resolved at run time)" ;;
        # MinGW runtime DLLs are not on a stock Windows: they must be linked statically.
        libgcc_s*.dll | libwinpthread*.dll | libstdc++*.dll | libunwind*.dll) fail "$k" "imports the MinGW runtime DLL $dll" ;;
      esac
    done <<<"$dlls"
    if sed -n '/^The Export Tables/,/^$/p;/\[Ordinal\/Name Pointer\] Table/,/^$/p' <<<"$pe" | grep -q 'napi_register_module_v1'; then
      echo "  exports napi_register_module_v1"
    else
      fail "$k" "does not export napi_register_module_v1"
    fi
    continue
  fi

  # ELF (readelf reads every architecture, so no cross binutils are needed)
  hdr=$(readelf -h "$f" 2>&1)
  class=$(sed -n 's/^ *Class: *//p' <<<"$hdr")
  type=$(sed -n 's/^ *Type: *//p' <<<"$hdr")
  machine=$(sed -n 's/^ *Machine: *//p' <<<"$hdr")
  echo "  ELF: $class, $type, machine: $machine"
  [ "$class" = ELF64 ] || fail "$k" "ELF class '$class', expected ELF64"
  [[ $type == DYN* ]] || fail "$k" "ELF type '$type', expected a shared object (DYN)"
  [ "$machine" = "$want_elf" ] || fail "$k" "machine '$machine', expected '$want_elf'"
  needed=$(readelf -d "$f" 2>/dev/null | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
  echo "  NEEDED: $(tr '\n' ' ' <<<"$needed")"
  # Undefined dynamic symbols bound to a glibc version: the `objdump -T` view, for any arch.
  glibc_syms=$(readelf -W --dyn-syms "$f" 2>/dev/null | awk '$7 == "UND" && $8 ~ /@GLIBC_[0-9]/ {print $8}')
  if readelf -W --dyn-syms "$f" | grep -q ' FUNC .* napi_register_module_v1$'; then
    echo "  exports napi_register_module_v1"
  else
    fail "$k" "does not export napi_register_module_v1"
  fi
  case "$k" in
    *-gnu)
      max=$(grep -o 'GLIBC_[0-9][0-9.]*' <<<"$glibc_syms" | sed 's/GLIBC_//' | sort -uV | tail -n1)
      if [ -z "$max" ]; then
        fail "$k" "binds to no GLIBC_ symbol version (not linked against glibc?)"
      else
        at_max=$(grep "@GLIBC_$max\$" <<<"$glibc_syms" | sed 's/@.*//' | sort -u | head -n5 | tr '\n' ' ')
        echo "  newest glibc symbol version: GLIBC_$max (e.g. $at_max)"
        version_le "$max" "$MAX_GLIBC" || fail "$k" "needs GLIBC_$max, above $MAX_GLIBC"
      fi
      grep -q 'musl' <<<"$needed" && fail "$k" "a glibc build needs musl ($needed)"
      ;;
    *-musl)
      # musl's libc.so is its own dynamic loader, which answers for the name libc.so itself
      # (zig links against that name; Alpine's gcc writes libc.musl-<arch>.so.1).
      grep -q '^libc\.musl-.*\.so\.1$\|^libc\.so$' <<<"$needed" ||
        fail "$k" "does not need musl's libc.so (libc linked into the addon? build with -C target-feature=-crt-static)"
      glibc_libs=$(grep -E '^(libc\.so\.6|libm\.so\.6|libpthread\.so\.0|libdl\.so\.2|librt\.so\.1|libgcc_s\.so\.1|ld-linux.*)$' <<<"$needed" | tr '\n' ' ')
      [ -z "$glibc_libs" ] || fail "$k" "a musl build needs glibc libraries: $glibc_libs"
      if [ -n "$glibc_syms" ]; then
        fail "$k" "a musl build binds to GLIBC_ symbol versions"
      elif [ -z "$glibc_libs" ]; then
        echo "  glibc: none"
      fi
      ;;
  esac
done

echo
if [ $status -eq 0 ]; then
  echo "inspect-platforms: ${#keys[@]} binaries OK (${keys[*]})"
else
  echo "inspect-platforms: ${#problems[@]} problem(s):"
  printf '  %s\n' "${problems[@]}"
fi
exit $status
