"""StyleGAN3 synthesis speed on CPU: ours against NVIDIA's pure-PyTorch reference path, same weights, one process.

The reference is ``tests/importers/stylegan3_reference.py``, a re-implementation of ``networks_stylegan3.py`` with
the ops their code runs without CUDA (``impl='ref'``: zero insertion, full-rate filtering, then discarding
samples). Both synthesise from the same ``ws`` with the same weights (their random initialisation, biases and
magnitude averages randomised so every term matters); rounds alternate reference / ours. Prints images/s
(best and median of the rounds), the speed-up, the largest difference relative to the largest output value,
and the load average. ``--train-kimg K`` also times K kimg of training of each model's ``cpu`` preset (32² on
``builtin:digits``, the residual discriminator of the ``cpu`` recipe) and reports seconds per kimg.

    python benchmarks/bench_stylegan3.py --resolution 256 --batch 1 --rounds 3
    python benchmarks/bench_stylegan3.py --rounds 0 --train-kimg 0.128
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "importers"))
import stylegan3_reference as reference

from polyinr.models.registry import resolve_config
from polyinr.models.stylegan3 import StyleGAN3Synthesis, layer_schedule
from polyinr.training.loop import training_loop
from polyinr.training.options import resolve_options


def pair(name: str, resolution: int) -> tuple[torch.nn.Module, torch.nn.Module]:
    """Their synthesis and ours with the same weights, for the paper preset of ``name`` at ``resolution``."""
    cfg = resolve_config(name, f"paper-{resolution}")
    torch.manual_seed(0)
    theirs = (
        reference.SynthesisNetwork(
            w_dim=cfg.w_dim,
            img_resolution=resolution,
            img_channels=3,
            channel_base=cfg.channel_base,
            channel_max=cfg.channel_max,
            conv_kernel=cfg.conv_kernel,
            use_radial_filters=cfg.use_radial_filters,
        )
        .eval()
        .requires_grad_(False)
    )
    state = {k: v for k, v in theirs.state_dict().items() if not k.endswith(("up_filter", "down_filter", "transform"))}
    for key, value in state.items():
        if key.endswith("magnitude_ema"):
            value.uniform_(0.5, 2.0)
        elif key.endswith(".bias") and ".affine." not in key:
            value.normal_(0, 0.1)
    theirs.load_state_dict(state, strict=False)
    ours = StyleGAN3Synthesis(layer_schedule(cfg), cfg.w_dim, resolution).eval().requires_grad_(False)
    ours.load_state_dict(state, strict=True)
    return theirs, ours


def seconds_per_kimg(model: str, kimg: float) -> float:
    with tempfile.TemporaryDirectory() as outdir:
        options = resolve_options(
            preset="cpu",
            model=model,
            data="builtin:digits",
            resolution=32,
            outdir=outdir,
            kimg=kimg,
            workers=0,
            tick_kimg=kimg,
            snap_ticks=1000,
        )
        start = time.time()
        training_loop(options, resume="new")
        return (time.time() - start) / kimg


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--resolution", type=int, default=256, choices=[256, 512, 1024])
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--models", default="stylegan3-t,stylegan3-r")
    parser.add_argument("--train-kimg", type=float, default=0.0, help="also time this much cpu-preset training")
    args = parser.parse_args()
    results = {}
    for name in args.models.split(",") if args.rounds > 0 else []:
        theirs, ours = pair(name, args.resolution)
        ws = torch.randn(args.batch, ours.num_ws, 512, generator=torch.Generator().manual_seed(1))
        times: dict[str, list[float]] = {"reference": [], "ours": []}
        with torch.no_grad():
            expected, got = theirs(ws), ours(ws)  # warm-up, and the comparison
            for _ in range(args.rounds):
                for label, net in (("reference", theirs), ("ours", ours)):
                    start = time.perf_counter()
                    net(ws)
                    times[label].append(time.perf_counter() - start)
        rate = {k: {"best": args.batch / min(v), "median": args.batch / statistics.median(v)} for k, v in times.items()}
        results[name] = {
            "images_per_s": rate,
            "speedup_best": rate["ours"]["best"] / rate["reference"]["best"],
            "speedup_median": rate["ours"]["median"] / rate["reference"]["median"],
            "max_abs_diff_rel": float((got - expected).abs().max() / expected.abs().max()),
            "loadavg": os.getloadavg(),
        }
        print(name, json.dumps(results[name]), flush=True)
    if args.train_kimg > 0:
        for name in args.models.split(","):
            results[f"{name}/cpu-train"] = {
                "seconds_per_kimg": seconds_per_kimg(name, args.train_kimg),
                "loadavg": os.getloadavg(),
            }
            print(name, json.dumps(results[f"{name}/cpu-train"]), flush=True)
    print(
        json.dumps(
            dict(
                resolution=args.resolution,
                batch=args.batch,
                rounds=args.rounds,
                threads=torch.get_num_threads(),
                results=results,
            ),
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
