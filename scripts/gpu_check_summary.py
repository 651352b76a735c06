#!/usr/bin/env python3
"""The one table of scripts/gpu-check.sh, from the logs in the folder given: parity per test
(tensors compared, max relative error of outputs and of gradients, pass/fail), the NVRTC
compile check, and the bench (ours vs cuDNN FP32, with the ratio, and cuDNN TF32)."""
import json
import re
import sys
from pathlib import Path

log = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/gpu-check")


def read(name):
    p = log / name
    return p.read_text(errors="replace") if p.exists() else ""


parity = read("parity.log")
rows = {}
order = []
current = "?"
skipped = False
for line in parity.splitlines():
    m = re.search(r"(?:device: .*|SKIP: .*|no CUDA device .*)\[(\w+)\]", line)
    if m:
        current = m.group(1)
        skipped = skipped or "SKIP:" in line
        if current not in rows:
            rows[current] = {"n": 0, "fwd": 0.0, "grad": 0.0, "fail": 0}
            order.append(current)
    m = re.search(r"PARITY (\S+)\s+max_abs\s+(\S+)\s+rel\s+(\S+)\s+tol\s+(\S+)\s+(ok|FAIL)", line)
    if m:
        r = rows.setdefault(current, {"n": 0, "fwd": 0.0, "grad": 0.0, "fail": 0})
        if current not in order:
            order.append(current)
        rel = float(m.group(3))
        # The column follows the tolerance: forward values (1e-5 / 1e-10) or gradients (1e-4 / 1e-9).
        key = "grad" if float(m.group(4)) in (1e-4, 1e-9) else "fwd"
        r[key] = max(r[key], rel)
        r["n"] += 1
        r["fail"] += m.group(5) == "FAIL"
failed_tests = set(re.findall(r"^test (\w+) \.\.\. FAILED", parity, re.M)) | set(re.findall(r"---- (\w+) stdout ----", parity))
result = re.findall(r"^test result: (.*)$", parity, re.M)

print("================ GPU check ================")
print(f"{'parity test':<40} {'tensors':>7} {'fwd rel':>9} {'grad rel':>9}  result")
for name in order:
    r = rows[name]
    bad = r["fail"] > 0 or name in failed_tests
    status = "SKIP" if skipped and r["n"] == 0 else ("FAIL" if bad else "pass")
    print(f"{name[:40]:<40} {r['n']:>7} {r['fwd']:>9.1e} {r['grad']:>9.1e}  {status}")
print(f"parity binary: {result[-1] if result else 'no result (crashed or timed out: see parity.log)'}")
k = read("kernels.log")
kres = re.findall(r"^test result: (.*)$", k, re.M)
nvrtc = re.search(r"NVRTC (\d+\.\d+)", k)
print(f"NVRTC compile check (sm_90, sm_80){' with NVRTC ' + nvrtc.group(1) if nvrtc else ''}: {kres[-1] if kres else 'no result (see kernels.log)'}")

ours = {}
for line in read("bench.log").splitlines():
    if line.startswith("BENCH "):
        r = json.loads(line[6:])
        ours[(r["cell"], r["H"], r["B"], r["T"])] = r
ref = {}
for line in read("cudnn.jsonl").splitlines():
    try:
        r = json.loads(line)
    except ValueError:
        continue
    if "cell" in r:
        ref[(r["precision"], r["cell"], r["H"], r["B"], r["T"])] = r
if ours:
    print(f"\n{'bench (fwd+bwd ms)':<24} {'ours':>8} {'cuDNN':>8} {'ours/cuDNN':>10} {'cuDNN tf32':>10}   {'fwd ours':>8} {'fwd cuDNN':>9}")
    for key, r in ours.items():
        c = ref.get(("fp32",) + key)
        t = ref.get(("tf32",) + key)
        name = f"{key[0]} H{key[1]} B{key[2]} T{key[3]}"
        cd = f"{c['fwdbwd_ms']:>8.3f}" if c else f"{'-':>8}"
        ratio = f"{r['fwdbwd_ms'] / c['fwdbwd_ms']:>10.2f}" if c else f"{'-':>10}"
        td = f"{t['fwdbwd_ms']:>10.3f}" if t else f"{'-':>10}"
        cf = f"{c['fwd_ms']:>9.3f}" if c else f"{'-':>9}"
        print(f"{name:<24} {r['fwdbwd_ms']:>8.3f} {cd} {ratio} {td}   {r['fwd_ms']:>8.3f} {cf}")
else:
    b = read("bench.log").strip().splitlines()
    print(f"\nbench: {b[-1] if b else 'no output'}")
if not ref:
    e = read("cudnn.err").strip().splitlines()
    print(f"cuDNN reference: {e[-1] if e else 'not run'}")
