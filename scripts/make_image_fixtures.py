#!/usr/bin/env python3
"""Writes the PyTorch reference values of __test__/image-ops.spec.ts:
__test__/fixtures/image-ops.json and __test__/fixtures/image-cnn.safetensors.

Every input and weight is a smooth hand-set pattern (no random generator, so the files do not
depend on PyTorch's RNG). Each case runs one functional op of torch.nn.functional in float64
(conv2d with stride/padding/dilation/groups, max_pool2d, avg_pool2d with both divisors,
adaptive_avg_pool2d, batch_norm in training and evaluation, layer_norm) and records its output
and the gradients of the loss sum(out * g) (g another pattern) with respect to every input and
parameter; batch norm in training also records the running statistics after the step.

image-cnn.safetensors is the float32 state dict (with BatchNorm's int64 num_batches_tracked) of a
small torchvision-style CNN built from torch.nn modules, written in the layout
`safetensors.torch.save_file(model.state_dict(), path)` produces (the header, then the raw
little-endian tensors; written here so the script needs only torch); the JSON records its
key order and its outputs in evaluation mode, and in training mode with the running statistics
after that one step.

Run from the repository root with a Python that has torch:
    python scripts/make_image_fixtures.py
"""
import json
import math
import os
import struct

import torch
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "__test__", "fixtures")
torch.set_default_dtype(torch.float64)


def pattern(shape, seed, scale=1.0):
    """Smooth hand-set values in (-scale, scale): scale * sin(0.91 i + 0.37 seed) * cos(0.23 i + 0.11 seed)."""
    n = math.prod(shape)
    vals = [scale * math.sin(0.91 * i + 0.37 * seed) * math.cos(0.23 * i + 0.11 * seed) for i in range(n)]
    return torch.tensor(vals).reshape(shape)


def positive(shape, seed):
    """Hand-set values in (0.5, 1.5), for variances."""
    return 1.0 + 0.5 * pattern(shape, seed)


def flat(t):
    return {"shape": list(t.shape), "data": t.detach().reshape(-1).tolist()}


def grads(out, leaves, seed):
    """Gradients of sum(out * g) for a pattern g, and g itself."""
    g = pattern(list(out.shape), seed)
    (out * g).sum().backward()
    return g, {k: flat(v.grad) for k, v in leaves.items() if v.grad is not None}


def conv_cases():
    cases = []
    specs = [
        # x shape, w shape, stride, padding, dilation, groups, bias
        ([2, 3, 6, 5], [4, 3, 3, 3], 1, 0, 1, 1, True),
        ([1, 3, 7, 7], [2, 3, 3, 2], 2, 1, 1, 1, True),
        ([1, 2, 7, 6], [3, 2, 3, 3], 1, [2, 1], 2, 1, False),
        ([2, 4, 5, 5], [6, 2, 3, 3], [1, 2], 1, 1, 2, True),
        ([1, 4, 6, 6], [4, 1, 3, 3], 2, 1, [1, 2], 4, True),
    ]
    for k, (xs, ws, stride, padding, dilation, groups, bias) in enumerate(specs):
        x = pattern(xs, 10 + k).requires_grad_(True)
        w = pattern(ws, 20 + k, 0.5).requires_grad_(True)
        b = pattern([ws[0]], 30 + k).requires_grad_(True) if bias else None
        y = F.conv2d(x, w, b, stride=stride, padding=padding, dilation=dilation, groups=groups)
        leaves = {"x": x, "weight": w}
        if bias:
            leaves["bias"] = b
        g, gr = grads(y, leaves, 40 + k)
        pair = lambda v: v if isinstance(v, list) else [v, v]
        case = {"x": flat(x), "weight": flat(w), "stride": pair(stride), "padding": pair(padding),
                "dilation": pair(dilation), "groups": groups, "y": flat(y), "g": flat(g), "grads": gr}
        if bias:
            case["bias"] = flat(b)
        cases.append(case)
    return cases


def pool_cases():
    cases = []
    specs = [
        ("max", [2, 2, 6, 6], 2, None, 0, True),
        ("max", [1, 3, 7, 5], 3, 2, 1, True),
        ("max", [1, 2, 6, 7], [3, 2], [1, 2], [1, 1], True),
        ("avg", [2, 2, 6, 6], 2, None, 0, True),
        ("avg", [1, 3, 7, 5], 3, 2, 1, True),
        ("avg", [1, 3, 7, 5], 3, 2, 1, False),
        ("avg", [1, 2, 6, 7], [3, 2], [1, 2], [1, 1], False),
    ]
    for k, (kind, xs, kernel, stride, padding, include_pad) in enumerate(specs):
        x = pattern(xs, 50 + k).requires_grad_(True)
        if kind == "max":
            y = F.max_pool2d(x, kernel, stride, padding)
        else:
            y = F.avg_pool2d(x, kernel, stride, padding, count_include_pad=include_pad)
        g, gr = grads(y, {"x": x}, 60 + k)
        pair = lambda v: v if isinstance(v, list) else [v, v]
        cases.append({"kind": kind, "x": flat(x), "kernel": pair(kernel),
                      "stride": None if stride is None else pair(stride), "padding": pair(padding),
                      "countIncludePad": include_pad, "y": flat(y), "g": flat(g), "grads": gr})
    for k, (xs, size) in enumerate([([2, 2, 7, 5], [3, 2]), ([1, 3, 4, 6], [4, 6]), ([1, 2, 3, 4], [5, 7]), ([2, 3, 5, 5], [1, 1])]):
        x = pattern(xs, 70 + k).requires_grad_(True)
        y = F.adaptive_avg_pool2d(x, size)
        g, gr = grads(y, {"x": x}, 80 + k)
        cases.append({"kind": "adaptive", "x": flat(x), "outputSize": size, "y": flat(y), "g": flat(g), "grads": gr})
    return cases


def batch_norm_cases():
    cases = []
    for k, (xs, training, affine) in enumerate([([3, 2, 3, 4], True, True), ([3, 2, 3, 4], False, True),
                                                ([4, 3, 2, 2], True, False), ([2, 3, 5, 1], False, False)]):
        c = xs[1]
        x = (2.0 * pattern(xs, 90 + k) + 0.3).requires_grad_(True)
        w = pattern([c], 100 + k).requires_grad_(True) if affine else None
        b = pattern([c], 110 + k).requires_grad_(True) if affine else None
        rm = pattern([c], 120 + k, 0.3)
        rv = positive([c], 130 + k)
        rm0, rv0 = rm.clone(), rv.clone()
        y = F.batch_norm(x, rm, rv, w, b, training=training, momentum=0.1, eps=1e-5)
        leaves = {"x": x}
        if affine:
            leaves.update(weight=w, bias=b)
        g, gr = grads(y, leaves, 140 + k)
        case = {"x": flat(x), "training": training, "momentum": 0.1, "eps": 1e-5,
                "runningMean": flat(rm0), "runningVar": flat(rv0), "y": flat(y), "g": flat(g), "grads": gr,
                "runningMeanAfter": flat(rm), "runningVarAfter": flat(rv)}
        if affine:
            case.update(weight=flat(w), bias=flat(b))
        cases.append(case)
    return cases


def layer_norm_cases():
    cases = []
    for k, (xs, ns, affine) in enumerate([([2, 3, 5], [5], True), ([2, 3, 4], [3, 4], True), ([4, 6], [6], False)]):
        x = (1.5 * pattern(xs, 150 + k) - 0.2).requires_grad_(True)
        w = pattern(ns, 160 + k).requires_grad_(True) if affine else None
        b = pattern(ns, 170 + k).requires_grad_(True) if affine else None
        y = F.layer_norm(x, ns, w, b, eps=1e-5)
        leaves = {"x": x}
        if affine:
            leaves.update(weight=w, bias=b)
        g, gr = grads(y, leaves, 180 + k)
        case = {"x": flat(x), "normalizedShape": ns, "eps": 1e-5, "y": flat(y), "g": flat(g), "grads": gr}
        if affine:
            case.update(weight=flat(w), bias=flat(b))
        cases.append(case)
    return cases


def small_cnn():
    torch.manual_seed(0)  # only for construction; every value is then set by hand below
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, padding=1),
        torch.nn.BatchNorm2d(4),
        torch.nn.ReLU(),
        torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(4, 6, 3, stride=2, padding=1, bias=False),
        torch.nn.BatchNorm2d(6),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(6, 5),
    ).float()
    with torch.no_grad():
        for k, (name, t) in enumerate(model.state_dict().items()):
            if name.endswith("num_batches_tracked"):
                t.fill_(7)
            elif name.endswith("running_var"):
                t.copy_(positive(list(t.shape), 200 + k).float())
            else:
                t.copy_(pattern(list(t.shape), 200 + k, 0.6).float())
    state = {k: v.clone() for k, v in model.state_dict().items()}
    x = pattern([2, 3, 8, 8], 300).float()
    model.eval()
    with torch.no_grad():
        y_eval = model(x)
    model.train()
    with torch.no_grad():
        y_train = model(x)
    after = {k: flat(v.double()) for k, v in model.state_dict().items() if "running" in k or "num_batches" in k}
    return model, state, x, y_eval, y_train, after


def write_safetensors(path, tensors):
    header = {"__metadata__": {"format": "pt"}}
    blobs = []
    offset = 0
    for name, t in tensors.items():
        if t.dtype == torch.int64:
            raw, dtype = t.contiguous().numpy().astype("<i8").tobytes(), "I64"
        else:
            raw, dtype = t.contiguous().numpy().astype("<f4").tobytes(), "F32"
        header[name] = {"dtype": dtype, "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for raw in blobs:
            f.write(raw)


def main():
    model, state, x, y_eval, y_train, after = small_cnn()
    write_safetensors(os.path.join(OUT, "image-cnn.safetensors"), state)
    out = {
        "generator": "scripts/make_image_fixtures.py",
        "torch": torch.__version__,
        "conv2d": conv_cases(),
        "pool": pool_cases(),
        "batchNorm2d": batch_norm_cases(),
        "layerNorm": layer_norm_cases(),
        "cnn": {"keys": list(state.keys()), "x": flat(x.double()), "yEval": flat(y_eval.double()),
                "yTrain": flat(y_train.double()), "stateAfterTrainStep": after},
    }
    with open(os.path.join(OUT, "image-ops.json"), "w") as f:
        json.dump(out, f, separators=(",", ":"))
        f.write("\n")
    print("wrote", os.path.join(OUT, "image-ops.json"), "and image-cnn.safetensors")


if __name__ == "__main__":
    main()
