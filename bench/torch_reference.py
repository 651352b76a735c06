#!/usr/bin/env python3
"""PyTorch CPU side of bench/vs-torch.ts: a long-lived process that reads one JSON command per
line on stdin and answers one JSON line on stdout, so that the bench can alternate rounds between
recurrent and PyTorch on the same, already loaded, model.

Commands:
  {"cmd": "hello", "threads": 2}
      -> versions and CPU capability; sets torch.set_num_threads(threads)
  {"cmd": "load", "case": id, "kind": "train" | "infer", "cell": "lstm" | "gru" | "rnn",
   "layers": L, "bidirectional": bool, "input": I, "hidden": H, "path": file, "check": file}
      -> builds torch.nn.LSTM / GRU / RNN (tanh) with batch_first, loads the weights and the
         data from `path` (a safetensors file: recurrent's state dict under PyTorch's names,
         plus "bench.input" and "bench.target"), runs the computation once, and compares it
         with recurrent's results in `check` ("output", "loss", "grad.<parameter>"): relative
         errors ||a - b|| / ||b|| of the output, the loss and all gradients together
  {"cmd": "time", "case": id, "reps": n, "warm_ms": w}
      -> {"ms": mean milliseconds per call over n back-to-back calls, after untimed calls
          for w ms (at least one when w > 0)}
  {"cmd": "drop", "case": id}, {"cmd": "quit"}

A training call is zero_grad + forward + MSE + backward + Adam(lr 1e-3) step + loss.item();
an inference call is the forward pass under torch.no_grad(). Errors answer {"error": "..."}.

Reads safetensors itself (a JSON header and raw little-endian data) so that the venv needs
only torch and numpy.
"""
import json
import struct
import sys
import time
import traceback

import numpy as np
import torch
import torch.nn.functional as F

DTYPES = {"F32": np.float32, "F64": np.float64, "I32": np.int32, "I64": np.int64}


def read_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        arr = np.frombuffer(raw, dtype=DTYPES[info["dtype"]], count=(end - begin) // np.dtype(DTYPES[info["dtype"]]).itemsize, offset=base + begin)
        out[name] = torch.from_numpy(arr.reshape(info["shape"]).copy())
    return out


def rel_err(a, b):
    a = a.detach().double().reshape(-1)
    b = b.detach().double().reshape(-1)
    den = torch.linalg.vector_norm(b).item()
    num = torch.linalg.vector_norm(a - b).item()
    return num / den if den > 0 else num


class Case:
    def __init__(self, c):
        cls = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN}[c["cell"]]
        kw = dict(num_layers=c["layers"], bidirectional=c["bidirectional"], batch_first=True)
        if c["cell"] == "rnn":
            kw["nonlinearity"] = "tanh"
        self.kind = c["kind"]
        self.module = cls(c["input"], c["hidden"], **kw)
        tensors = read_safetensors(c["path"])
        self.x = tensors.pop("bench.input")
        self.y = tensors.pop("bench.target", None)
        self.module.load_state_dict(tensors, strict=True)
        self.opt = torch.optim.Adam(self.module.parameters(), lr=1e-3) if self.kind == "train" else None

    def check(self, path):
        ref = read_safetensors(path)
        m = self.module
        if self.kind == "infer":
            with torch.no_grad():
                out, _ = m(self.x)
            return {"output": rel_err(out, ref["output"])}
        m.zero_grad(set_to_none=True)
        out, _ = m(self.x)
        loss = F.mse_loss(out, self.y)
        loss.backward()
        names = [n for n, _ in m.named_parameters()]
        ours = torch.cat([p.grad.reshape(-1) for _, p in m.named_parameters()])
        theirs = torch.cat([ref["grad." + n].reshape(-1) for n in names])
        res = {"output": rel_err(out, ref["output"]), "loss": rel_err(loss, ref["loss"]), "grads": rel_err(ours, theirs)}
        m.zero_grad(set_to_none=True)
        return res

    def run(self):
        m = self.module
        if self.kind == "infer":
            with torch.no_grad():
                m(self.x)
            return
        self.opt.zero_grad()
        out, _ = m(self.x)
        loss = F.mse_loss(out, self.y)
        loss.backward()
        self.opt.step()
        loss.item()


def main():
    cases = {}
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            c = json.loads(line)
            cmd = c["cmd"]
            if cmd == "hello":
                torch.set_num_threads(int(c["threads"]))
                reply = {
                    "torch": torch.__version__,
                    "numpy": np.__version__,
                    "python": sys.version.split()[0],
                    "threads": torch.get_num_threads(),
                    "cpuCapability": torch.backends.cpu.get_cpu_capability(),
                    "mkldnn": torch.backends.mkldnn.is_available(),
                }
            elif cmd == "load":
                cases[c["case"]] = case = Case(c)
                reply = {"check": case.check(c["check"])}
            elif cmd == "time":
                case = cases[c["case"]]
                reps = int(c["reps"])
                warm_s = float(c.get("warm_ms", 0)) / 1e3
                if warm_s > 0:
                    w0 = time.perf_counter()
                    case.run()
                    while time.perf_counter() - w0 < warm_s:
                        case.run()
                t0 = time.perf_counter()
                for _ in range(reps):
                    case.run()
                reply = {"ms": (time.perf_counter() - t0) * 1e3 / reps}
            elif cmd == "drop":
                cases.pop(c["case"], None)
                reply = {}
            elif cmd == "quit":
                break
            else:
                reply = {"error": f"unknown command {cmd!r}"}
        except Exception as e:  # answered, so that the bench can report it and go on
            reply = {"error": f"{type(e).__name__}: {e}", "trace": traceback.format_exc(limit=3)}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
