"""INR-GAN beside Poly-INR in one process: multiply-adds, synthesis speed at 256², 4× super-resolution, training.

- cost: multiply-adds per 256² image of the whole generator (PyTorch's FlopCounterMode: matrix products and
  convolutions, mapping and per-sample affines included; Poly-INR's, affine in the pixel count, counted at 32²
  and 64² and extended to 256²) and of the synthesis by each model's own analytic count;
- speed: images/s of ``G.synthesize(ws)`` at 256², batch ``--batch``, INR-GAN ``paper-256`` and Poly-INR ``ffhq``
  interleaved round by round (random weights, no_grad), best and median of ``--rounds``;
- super-resolution: INR-GAN at 4× the pixels a side: one 256² tile of the 1024² frame (the full render is 16
  such tiles, bit for bit) interleaved with the native 256² render;
- training: seconds per kimg of the ``cpu`` preset through the training loop (``cpu`` recipe, builtin:digits at
  32², unconditional), INR-GAN and Poly-INR one after the other.

    python benchmarks/bench_inr_gan.py --rounds 3 --kimg 0.5
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from polyinr.grid import Grid
from polyinr.models.registry import create
from polyinr.training.loop import training_loop
from polyinr.training.options import resolve_options


def counted_macs(G, resolution: int) -> int:
    """Multiply-adds of one image (FLOPs / 2 as FlopCounterMode counts them), mapping included."""
    z = torch.randn(1, G.z_dim)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        G(z, grid=Grid.frame(resolution))
    return counter.get_total_flops() // 2


def affine_in_pixels(G, low: int, high: int, resolution: int) -> int:
    """Multiply-adds at ``resolution`` of a model whose cost is per-sample + per-pixel, from two counts."""
    a, b = counted_macs(G, low), counted_macs(G, high)
    per_pixel = (b - a) // (high**2 - low**2)
    return a + per_pixel * (resolution**2 - low**2)


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def interleaved(cases: dict, rounds: int) -> dict[str, dict[str, float]]:
    """Best and median seconds of each case, the cases run in turn each round (after one warm-up call each)."""
    for fn in cases.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(rounds):
        for name, fn in cases.items():
            times[name].append(timed(fn))
    return {name: {"best_s": min(t), "median_s": statistics.median(t)} for name, t in times.items()}


def seconds_per_kimg(model: str, kimg: float) -> float:
    with tempfile.TemporaryDirectory() as outdir:
        options = resolve_options(
            "cpu",
            model=model,
            outdir=outdir,
            kimg=kimg,
            workers=0,
            tick_kimg=kimg,
            snap_ticks=1000,
            data="builtin:digits",
            resolution=32,
        )
        start = time.time()
        training_loop(options, resume="new")
        return (time.time() - start) / kimg


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--kimg", type=float, default=0.5, help="training: kimg per model (0 = skip)")
    args = parser.parse_args()
    report: dict = {"load_at_start": os.getloadavg(), "threads": torch.get_num_threads()}
    torch.manual_seed(0)
    inr = create("inr-gan", "paper-256").eval().requires_grad_(False)
    poly = create("poly-inr", "ffhq").eval().requires_grad_(False)
    report["macs_per_image_256"] = {
        "inr-gan paper-256 (counted, whole G)": counted_macs(inr, 256),
        "inr-gan paper-256 (synthesis, analytic)": inr.synthesis.macs_per_image(),
        "poly-inr ffhq (counted, whole G)": affine_in_pixels(poly, 32, 64, 256),
        "poly-inr ffhq (synthesis, analytic)": poly.macs_per_pixel() * 256 * 256,
    }
    print(json.dumps(report), flush=True)
    z = torch.randn(args.batch, 512)
    with torch.no_grad():
        ws_inr, ws_poly = inr.mapping(z, None), poly.mapping(z[:, : poly.z_dim], None)
        speed = interleaved(
            {"inr-gan 256": lambda: inr.synthesize(ws_inr), "poly-inr 256": lambda: poly.synthesize(ws_poly)},
            args.rounds,
        )
        tile = Grid.frame(1024).crop((384, 640), (384, 640))  # a 256² tile of the 4× render
        sr = interleaved(
            {
                "inr-gan 256": lambda: inr.synthesize(ws_inr[:1]),
                "inr-gan 4x, one 256x256 tile of 1024x1024": lambda: inr.synthesize(ws_inr[:1], tile),
            },
            args.rounds,
        )
    for result in speed.values():
        result["images_per_s"] = args.batch / result["best_s"]
    report["synthesis_256_batch"] = args.batch
    report["synthesis_256"] = speed
    report["super_resolution_batch1"] = sr
    report["load_after_speed"] = os.getloadavg()
    print(json.dumps(report), flush=True)
    if args.kimg > 0:
        report["training_cpu_preset_32_s_per_kimg"] = {
            model: seconds_per_kimg(model, args.kimg) for model in ("inr-gan", "poly-inr")
        }
    report["load_at_end"] = os.getloadavg()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
