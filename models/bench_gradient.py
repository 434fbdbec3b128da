"""Benchmark: milliseconds per input-gradient step, onnxruntime-training vs torch autograd.

Run: python -m models.bench_gradient [--sizes 128 256] [--repeat 10] [--threads N]

One "step" is what model inversion does each iteration: forward and backward of
loss = sum(dy * f(x)) w.r.t. the image x, for a 17-layer 64-channel DnCNN with
random weights (BN in inference form).  Both runtimes use the same thread count.
Prints a Markdown table and writes it as JSON with --json PATH.  Not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from models.torch_archs import DnCNN
from verifier import load_model


def _median_ms(step, repeat: int) -> float:
    step()
    step()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        step()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def bench(size: int, repeat: int, threads: int, folder: Path) -> dict:
    """Time one gradient step at `size` x `size` for both runtimes; check they agree."""
    torch.manual_seed(0)
    net = DnCNN(channels=3).eval()
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 1.5)
    x = torch.rand(1, 3, size, size)
    path = folder / f"dncnn_{size}.onnx"
    torch.onnx.export(net, (x,), str(path), dynamo=False, opset_version=17,
                      input_names=["x"], output_names=["y"], dynamic_axes={"x": {2: "h", 3: "w"}})
    model = load_model(path, threads=threads)
    x_np = x.numpy()
    dy = np.random.default_rng(0).random(x_np.shape, dtype=np.float32)
    dy_t = torch.from_numpy(dy)

    def torch_step() -> torch.Tensor:
        xt = x.clone().requires_grad_(True)
        (net(xt) * dy_t).sum().backward()
        return xt.grad

    grad_ort = model.vjp(x_np, dy)
    grad_torch = torch_step().numpy()
    ort_ms = _median_ms(lambda: model.vjp(x_np, dy), repeat)
    torch_ms = _median_ms(torch_step, repeat)
    return {
        "size": size,
        "ort_ms": round(ort_ms, 2),
        "torch_ms": round(torch_ms, 2),
        "ratio": round(ort_ms / torch_ms, 3),
        "max_rel_diff": float(np.abs(grad_ort - grad_torch).max() / np.abs(grad_torch).max()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as folder:
        rows = [bench(size, args.repeat, args.threads, Path(folder)) for size in args.sizes]
    print(f"DnCNN-17x64, 3 channels, {args.threads} threads, median of {args.repeat} steps")
    print("| size | ORT ms/step | torch ms/step | ORT/torch | max rel. grad diff |")
    print("|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['size']} | {row['ort_ms']} | {row['torch_ms']} | {row['ratio']}x | {row['max_rel_diff']:.1e} |")
    if args.json:
        args.json.write_text(json.dumps({"threads": args.threads, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
