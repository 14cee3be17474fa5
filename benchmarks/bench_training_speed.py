"""Seconds per kimg of training, side by side in one process, for each discriminator.

CPU: the `cpu` preset on builtin:digits (16² by default, as the main job) with the residual discriminator and
with the projected one (one small randomly initialised backbone, as offline). With CUDA: the `imagenet` preset
at 32² with bf16 versus fp32 (the projected D's backbones randomly initialised unless their weights are cached).

    python benchmarks/bench_training_speed.py --kimg 1
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import torch

from polyinr.training.loop import training_loop
from polyinr.training.options import resolve_options


def seconds_per_kimg(kimg: float, **overrides) -> float:
    with tempfile.TemporaryDirectory() as outdir:
        options = resolve_options(outdir=outdir, kimg=kimg, workers=0, tick_kimg=kimg, snap_ticks=1000, **overrides)
        start = time.time()
        training_loop(options, resume="new")
        return (time.time() - start) / kimg


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kimg", type=float, default=1.0)
    parser.add_argument("--resolution", type=int, default=16, help="CPU runs: training resolution of the digits")
    args = parser.parse_args()
    digits = dict(data="builtin:digits", cond=True, resolution=args.resolution)
    results = {
        "cpu/residual": seconds_per_kimg(args.kimg, preset="cpu", **digits),
        "cpu/projected": seconds_per_kimg(
            args.kimg,
            preset="cpu",
            disc="projected",
            loss="hinge",
            **digits,
            disc_options={"backbones": ["tf_efficientnet_lite0"], "pretrained": False, "interp224": False},
        ),
    }
    if torch.cuda.is_available():
        gpu = dict(
            preset="imagenet",
            data="builtin:shapes",
            cond=False,
            resolution=32,
            device="cuda",
            disc_options={"pretrained": False},
        )
        results["imagenet32/fp32"] = seconds_per_kimg(args.kimg, **gpu)
        results["imagenet32/bf16"] = seconds_per_kimg(args.kimg, bf16=True, **gpu)
    print(
        json.dumps(
            {
                "seconds_per_kimg": results,
                "cpu_resolution": args.resolution,
                "threads": torch.get_num_threads(),
                "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
