#!/usr/bin/env python3
"""Writes __test__/fixtures/optim-torch.json: the reference trajectories of __test__/optim.spec.ts,
computed by torch.optim itself (float64), so that the optimizers are checked against PyTorch and
not against a transcription of its formulas that could share a misreading with the code.

Run once, by hand, with any Python that has torch (PyPI's `torch`; it is not a dependency of the
package, and the tests only read the JSON):

    python3 scripts/make_optim_fixtures.py [out.json]

The inputs are the spec's: two parameters (shapes [2, 3] and [4]) started from a small LCG and
given LCG gradients for 5 steps, parameter 1 having none at step 2 (torch skips a parameter whose
.grad is None, and its per-parameter step count does not advance). They are written into the file
too, and the spec checks that they equal its own.
"""
import json
import math
import sys
from pathlib import Path

import torch

STEPS = 5
SHAPES = [(2, 3), (4,)]


def numbers(seed, n):
    """The spec's LCG: s = 1664525·s + 1013904223 mod 2^32, value s / 2^31 − 1 (exact in float64)."""
    s = seed % 2**32
    out = []
    for _ in range(n):
        s = (s * 1664525 + 1013904223) % 2**32
        out.append(s / 2**31 - 1)
    return out


INIT = [[2 * v for v in numbers(1, 6)], numbers(2, 4)]


def grad_at(i, s):
    if i == 1 and s == 2:
        return None
    return [3 * v for v in numbers(100 * s + i + 7, 6 if i == 0 else 4)]


def trajectory(make, lrs=None):
    """The parameters after each of STEPS steps of the optimizer `make(params)` returns."""
    ps = [torch.tensor(v, dtype=torch.float64).reshape(shape).requires_grad_() for v, shape in zip(INIT, SHAPES)]
    opt = make(ps)
    out = []
    for s in range(1, STEPS + 1):
        if lrs is not None:
            for g in opt.param_groups:
                g["lr"] = lrs[s - 1]
        for i, p in enumerate(ps):
            g = grad_at(i, s)
            p.grad = None if g is None else torch.tensor(g, dtype=torch.float64).reshape(p.shape)
        opt.step()
        out.append([p.detach().reshape(-1).tolist() for p in ps])
    return out


O = torch.optim
# Keyed by the spec's case names; `torch` records the call, for the reader.
OPTIMIZERS = {
    "SGD": ("SGD(lr=0.1)", lambda ps: O.SGD(ps, lr=0.1)),
    "SGD momentum + dampening + weight decay": (
        "SGD(lr=0.05, momentum=0.9, dampening=0.1, weight_decay=0.01)",
        lambda ps: O.SGD(ps, lr=0.05, momentum=0.9, dampening=0.1, weight_decay=0.01),
    ),
    "SGD nesterov": (
        "SGD(lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.02)",
        lambda ps: O.SGD(ps, lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.02),
    ),
    "Adam": (
        "Adam(lr=0.01, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.05)",
        lambda ps: O.Adam(ps, lr=0.01, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.05),
    ),
    "AdamW (default weight decay 0.01)": ("AdamW(lr=0.02)", lambda ps: O.AdamW(ps, lr=0.02)),
    "RMSprop": ("RMSprop(lr=0.01)", lambda ps: O.RMSprop(ps, lr=0.01)),
    "RMSprop centered + momentum + weight decay": (
        "RMSprop(lr=0.005, alpha=0.9, eps=1e-6, weight_decay=0.1, momentum=0.7, centered=True)",
        lambda ps: O.RMSprop(ps, lr=0.005, alpha=0.9, eps=1e-6, weight_decay=0.1, momentum=0.7, centered=True),
    ),
    "Adagrad with lrDecay": (
        "Adagrad(lr=0.1, lr_decay=0.05, weight_decay=0.01, initial_accumulator_value=0.1)",
        lambda ps: O.Adagrad(ps, lr=0.1, lr_decay=0.05, weight_decay=0.01, initial_accumulator_value=0.1),
    ),
}
# The lr changed by hand before each step (what a schedule does).
LR_CHANGES = [0.1, 0.05, 0.2, 0.01, 0.1]


def lr_sequence(make_sched, base_lr, n, metrics=None):
    """The optimizer's lr at the schedule's construction and after each of n steps."""
    opt = O.SGD([torch.zeros(1, requires_grad=True)], lr=base_lr)
    sched = make_sched(opt)
    out = [opt.param_groups[0]["lr"]]
    for k in range(n):
        opt.step()
        if metrics is None:
            sched.step()
        else:
            sched.step(metrics[k])
        out.append(opt.param_groups[0]["lr"])
    return out


def cosine_with_warmup(warmup, total, min_ratio):
    """Hugging Face's get_cosine_schedule_with_warmup as a LambdaLR factor, with a floor of
    min_ratio·base (the project's minLr) and held at the floor from `total` on."""

    def factor(s):
        if s < warmup:
            return s / max(1, warmup)
        if s >= total:
            return min_ratio
        progress = (s - warmup) / max(1, total - warmup)
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return factor


PLATEAU_METRICS = [10, 9.5, 9.2, 9.1, 8] + [8] * 28
PLATEAU_MAX_METRICS = [0.5, 0.54, 0.56, 0.6, 0.62, 0.6, 0.6]
SCHEDULES = {
    "StepLR": {
        "options": {"lr": 0.1, "stepSize": 3, "gamma": 0.5},
        "lrs": lr_sequence(lambda o: O.lr_scheduler.StepLR(o, step_size=3, gamma=0.5), 0.1, 8),
    },
    "ExponentialLR": {
        "options": {"lr": 0.2, "gamma": 0.9},
        "lrs": lr_sequence(lambda o: O.lr_scheduler.ExponentialLR(o, gamma=0.9), 0.2, 4),
    },
    "CosineWithWarmup": {
        "options": {"lr": 1, "warmupSteps": 4, "totalSteps": 12, "minLr": 0.1},
        "lrs": lr_sequence(lambda o: O.lr_scheduler.LambdaLR(o, cosine_with_warmup(4, 12, 0.1)), 1, 14),
    },
    "ReduceLROnPlateau": {
        "options": {"lr": 1, "mode": "min", "factor": 0.5, "patience": 2, "threshold": 0.1, "cooldown": 1, "minLr": 0.01},
        "metrics": PLATEAU_METRICS,
        "lrs": lr_sequence(
            lambda o: O.lr_scheduler.ReduceLROnPlateau(
                o, mode="min", factor=0.5, patience=2, threshold=0.1, cooldown=1, min_lr=0.01
            ),
            1,
            len(PLATEAU_METRICS),
            PLATEAU_METRICS,
        ),
    },
    "ReduceLROnPlateau max abs": {
        "options": {"lr": 0.1, "mode": "max", "factor": 0.1, "patience": 1, "threshold": 0.05, "thresholdMode": "abs"},
        "metrics": PLATEAU_MAX_METRICS,
        "lrs": lr_sequence(
            lambda o: O.lr_scheduler.ReduceLROnPlateau(
                o, mode="max", factor=0.1, patience=1, threshold=0.05, threshold_mode="abs"
            ),
            0.1,
            len(PLATEAU_MAX_METRICS),
            PLATEAU_MAX_METRICS,
        ),
    },
}


def main():
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent / "__test__" / "fixtures" / "optim-torch.json"
    doc = {
        "generatedBy": f"scripts/make_optim_fixtures.py with torch {torch.__version__}",
        "steps": STEPS,
        "init": INIT,
        "grads": [[grad_at(i, s) for i in range(len(SHAPES))] for s in range(1, STEPS + 1)],
        "optimizers": {name: {"torch": call, "trajectory": trajectory(make)} for name, (call, make) in OPTIMIZERS.items()},
        "lrChanges": {
            "torch": "SGD(lr=0.1, momentum=0.9), lr set before each step",
            "lrs": LR_CHANGES,
            "trajectory": trajectory(lambda ps: O.SGD(ps, lr=0.1, momentum=0.9), LR_CHANGES),
        },
        "schedules": SCHEDULES,
    }
    out.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
