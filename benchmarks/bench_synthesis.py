"""Poly-INR synthesis speed on CPU beside a naive reference of the same maths, as a fraction of the matmul peak.

The configuration is the authors' ImageNet network (n 1024, 10 levels, w 512) rendering 32×32 images in batches
of 8. The reference is the synthesis written the authors' way (``training/networks_gmgan.py``): the whole image
at once, ``torch.bmm`` for the per-sample grid and coordinate affines, ``nn.Linear`` for ``W_i``, every operation
out of place. Both run in this process on the same weights, interleaved round by round, so load from other
processes hits both alike; the best round of each is reported (and the median, to show the noise).

The peak is this machine's fp32 matmul rate: a square ``torch.mm`` at the same thread count. FLOPs of one
synthesis are ``2 · macs_per_pixel · pixels · batch``. The bf16 path is ours under ``torch.autocast('cpu',
dtype=torch.bfloat16)``; it is only fast on CPUs with bf16 matmul units (avx512_bf16 / amx_bf16).

    python benchmarks/bench_synthesis.py [--batch 8] [--resolution 32] [--rounds 5] [--bf16-rounds 2] [--threads N]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from polyinr.grid import Grid
from polyinr.models.poly_inr import PIXEL_ALIGN, PolyINRSynthesis, pixel_budget
from polyinr.models.registry import create


def reference_synthesis(synthesis: PolyINRSynthesis, ws: torch.Tensor, resolution: int) -> torch.Tensor:
    """The authors' forward pass: ``ws [B, L, w_dim]`` → ``[B, 3, R, R]``, the whole grid at once, out of place."""
    B, n = ws.shape[0], synthesis.cfg.channels
    a = torch.arange(resolution, dtype=torch.float32, device=ws.device) / (resolution - 1)
    grid = torch.stack(torch.meshgrid(a, a, indexing="ij"), dim=-1).view(1, -1, 2).repeat(B, 1, 1)  # [B, P, 2]
    x = None
    for i, level in enumerate(synthesis.levels):
        s = ws[:, i] if level.style is None else level.style(ws[:, i])  # [B, 512] or [B, n]
        grid = torch.bmm(grid, level.grid_matrix(s).view(B, 2, 2)) + level.grid_shift(s).view(B, 1, 2)
        g = torch.bmm(grid, level.coord_weight(s).view(B, 2, n)) + level.coord_bias(s).view(B, 1, n)  # [B, P, n]
        h = g if x is None else x * F.leaky_relu(g, 0.2)
        x = torch.clamp(F.leaky_relu(level.linear(h), 0.2), -256, 256)  # [B, P, n]
    x = x.transpose(1, 2).reshape(B, n, resolution, resolution)  # [B, n, R, R]
    rgb = synthesis.to_rgb
    return F.conv2d(x, rgb.weight[:, :, None, None], rgb.bias)  # the authors' 1×1 convolution


def seconds(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def bf16(fn: Callable[[], torch.Tensor]) -> torch.Tensor:
    """``fn()`` under CPU bf16 autocast."""
    with torch.autocast("cpu", dtype=torch.bfloat16):
        return fn()


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    """``max |a − b| / max |b|``."""
    return float((a.float() - b.float()).abs().max() / b.float().abs().max())


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--resolution", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=5, help="interleaved timing rounds; the best is reported")
    parser.add_argument("--bf16-rounds", type=int, default=2, help="rounds that also time bf16 (it is slow)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--peak-size", type=int, default=4096, help="edge of the square matmul for the peak")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    load_start = os.getloadavg()[0]

    G = create("poly-inr", "imagenet").eval().requires_grad_(False)
    synthesis = G.synthesis
    B, R = args.batch, args.resolution
    with torch.no_grad():
        ws = G.mapping(torch.randn(B, G.z_dim), torch.randint(0, G.num_classes, (B,)))
    flops = 2 * G.macs_per_pixel() * R * R * B
    grid = Grid.frame(R)
    k = args.peak_size
    a, b, c = torch.randn(k, k), torch.randn(k, k), torch.empty(k, k)
    n = G.cfg.channels
    chunk = -(-min(R * R, max(1, pixel_budget(torch.device("cpu")) // (B * n))) // PIXEL_ALIGN) * PIXEL_ALIGN
    M = B * chunk  # rows of the GEMM of one of our default pixel chunks
    xa, wa, ba, oa = torch.randn(M, n), torch.randn(n, n), torch.randn(n), torch.empty(M, n)

    cases: dict[str, tuple[Callable[[], object], float]] = {
        "peak": (lambda: torch.mm(a, b, out=c), 2 * k**3),
        "gemm": (lambda: torch.addmm(ba, xa, wa.t(), out=oa), 2 * M * n * n),
        "reference": (lambda: reference_synthesis(synthesis, ws, R), flops),
        "ours": (lambda: synthesis(ws, grid), flops),
        "ours-bf16": (lambda: bf16(lambda: synthesis(ws, grid)), flops),
    }
    with torch.no_grad():
        ref = reference_synthesis(synthesis, ws, R)
        ours = synthesis(ws, grid)
        ours_bf16 = bf16(lambda: synthesis(ws, grid))
        times: dict[str, list[float]] = {name: [] for name in cases}
        for fn, _ in cases.values():
            fn()  # warm up
        for round_ in range(args.rounds):
            for name, (fn, _) in cases.items():
                if name != "ours-bf16" or round_ < args.bf16_rounds:
                    times[name].append(seconds(fn))

    flags = cpu_flags()
    bf16_units = sorted(flags & {"avx512_bf16", "amx_bf16"}) or ["none"]
    print(
        f"machine: {cpu_model()}, {torch.get_num_threads()} threads, torch {torch.__version__}, "
        f"CPU capability {torch.backends.cpu.get_cpu_capability()}, bf16 units: {', '.join(bf16_units)}"
    )
    print(
        f"config: n {G.cfg.channels}, {G.cfg.num_levels} levels, {R}x{R}, batch {B}; "
        f"{G.macs_per_pixel():,} MACs/pixel, {flops / 1e9:.1f} GFLOP per batch; {args.rounds} interleaved rounds"
    )
    peak = cases["peak"][1] / min(times["peak"])
    print(f"fp32 matmul peak ({k}x{k} mm): {peak / 1e9:.1f} GFLOP/s")
    print()
    print("| path | best s/batch | median s/batch | images/s | GFLOP/s | % of fp32 matmul peak |")
    print("|---|---|---|---|---|---|")
    labels = {
        "gemm": f"one {M}x{n}x{n} addmm (our chunk's GEMM)",
        "reference": "naive reference (authors' way)",
        "ours": "polyinr fp32",
        "ours-bf16": "polyinr bf16 autocast",
    }
    for name, label in labels.items():
        best, median = min(times[name]), statistics.median(times[name])
        rate = cases[name][1] / best
        per_s = f"{B / best:.2f}" if name != "gemm" else "-"
        print(f"| {label} | {best:.3f} | {median:.3f} | {per_s} | {rate / 1e9:.1f} | {100 * rate / peak:.0f} % |")
    print()
    speedup = min(times["reference"]) / min(times["ours"])
    bf16_ratio = min(times["ours"]) / min(times["ours-bf16"])
    print(
        f"polyinr vs reference: {speedup:.2f}x faster; max relative difference {relative_error(ours, ref):.2e} "
        "(max |ours - ref| / max |ref|; target <= 1e-4)"
    )
    print(
        f"bf16 autocast: {bf16_ratio:.2f}x the fp32 speed; max relative error vs fp32 "
        f"{relative_error(ours_bf16, ours):.2e} (target <= 1e-2)"
    )
    print(f"load average (1 min) at start {load_start:.2f}, at end {os.getloadavg()[0]:.2f} (other processes)")


if __name__ == "__main__":
    main()
