#!/usr/bin/env python3
"""cuDNN reference for crates/cuda/examples/cuda_bench.rs: torch.nn.LSTM / GRU, one layer,
I = H, forward and forward + backward (gradient seeded into the output, as ours), on cuda:0,
at the same sizes. Timed with CUDA events after warm-up; the median of --reps runs.

FP32 rows run with TF32 off (torch.backends.cudnn.allow_tf32 = False and
torch.backends.cuda.matmul.allow_tf32 = False); "tf32" rows with both on. Prints one JSON
object per line, and a short table on stderr.

    python3 bench/cudnn_reference.py [--reps 20]
"""
import argparse
import json
import sys

SIZES = [
    ("lstm", 512, 16, 25),
    ("lstm", 512, 64, 25),
    ("lstm", 1024, 16, 25),
    ("lstm", 1024, 64, 25),
    ("lstm", 256, 32, 150),
    ("gru", 1024, 32, 100),
]


def median(v):
    v = sorted(v)
    return v[len(v) // 2]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=20)
    args = ap.parse_args()
    try:
        import torch
    except ImportError:
        print(json.dumps({"skip": "torch is not installed"}))
        return
    if not torch.cuda.is_available():
        print(json.dumps({"skip": "torch sees no CUDA device"}))
        return
    dev = torch.device("cuda:0")
    torch.backends.cudnn.benchmark = False
    print(f"device: {torch.cuda.get_device_name(0)}, torch {torch.__version__}, cuDNN {torch.backends.cudnn.version()}", file=sys.stderr)
    for precision in ("fp32", "tf32"):
        tf32 = precision == "tf32"
        torch.backends.cudnn.allow_tf32 = tf32
        torch.backends.cuda.matmul.allow_tf32 = tf32
        for cell, h, b, t in SIZES:
            torch.manual_seed(0)
            mod = (torch.nn.LSTM if cell == "lstm" else torch.nn.GRU)(h, h, num_layers=1).to(dev)
            x = torch.randn(t, b, h, device=dev, requires_grad=True)
            h0 = (0.5 * torch.randn(1, b, h, device=dev)).requires_grad_()
            c0 = (0.5 * torch.randn(1, b, h, device=dev)).requires_grad_()
            dy = torch.randn(t, b, h, device=dev)
            state = (h0, c0) if cell == "lstm" else h0

            def fwd():
                with torch.no_grad():
                    mod(x, state)

            def train():
                y, _ = mod(x, state)
                y.backward(dy)
                mod.zero_grad(set_to_none=True)
                x.grad = None
                h0.grad = None
                c0.grad = None

            def timed(fn):
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                torch.cuda.synchronize()
                start.record()
                fn()
                end.record()
                end.synchronize()
                return start.elapsed_time(end)

            for _ in range(3):
                fwd()
                train()
            f_ms = median([timed(fwd) for _ in range(args.reps)])
            t_ms = median([timed(train) for _ in range(args.reps)])
            row = {"impl": "cudnn", "precision": precision, "cell": cell, "H": h, "B": b, "T": t, "fwd_ms": round(f_ms, 4), "fwdbwd_ms": round(t_ms, 4)}
            print(json.dumps(row), flush=True)
            print(f"{precision} {cell:<5} H={h:<5} B={b:<3} T={t:<4} fwd {f_ms:8.3f} ms  fwd+bwd {t_ms:8.3f} ms", file=sys.stderr)


if __name__ == "__main__":
    main()
