"""ADA's cost beside DiffAugment, and StyleGAN-XL's CPU preset training speed (issue 13).

Part 1: one forward + backward of D's input augmentation on a batch of 32 images of 32² (ADA ``bgc`` at p = 1,
every transform drawn; DiffAugment ``color,translation,cutout``), interleaved in rounds; best and median.
Part 2: ``polyinr train --model stylegan-xl`` with the cpu recipe and preset, a 2-stage schedule (16² stem, grown to
32²), seconds per kimg of each stage from the run's own ``Timing/images_per_sec``.

    python benchmarks/bench_ada_xl.py --rounds 5
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time

import torch

from polyinr.discriminators.ada import AdaptiveAugment
from polyinr.discriminators.augment import diff_augment
from polyinr.training.loop import training_loop
from polyinr.training.options import resolve_options


def _time(fn, images) -> float:
    x = images.clone().requires_grad_(True)
    start = time.perf_counter()
    fn(x).square().sum().backward()
    return time.perf_counter() - start


def augmentation(rounds: int) -> None:
    images = torch.rand(32, 3, 32, 32) * 2 - 1
    ada = AdaptiveAugment(p=1.0)
    paths = {"ADA bgc, p = 1": ada, "DiffAugment color,translation,cutout": diff_augment}
    times: dict[str, list[float]] = {name: [] for name in paths}
    for _ in range(rounds):
        for name, fn in paths.items():
            times[name].append(_time(fn, images))
    base = min(times["DiffAugment color,translation,cutout"])
    for name, t in times.items():
        print(
            f"{name:<40} best {min(t) * 1e3:7.1f} ms  median {statistics.median(t) * 1e3:7.1f} ms  "
            f"{min(t) / base:5.2f}× DiffAugment"
        )


def xl_training(kimg: float) -> None:
    with tempfile.TemporaryDirectory() as outdir:
        options = resolve_options(
            "cpu",
            model="stylegan-xl",
            data="builtin:digits",
            schedule=f"16:{kimg},32:{kimg}",
            tick_kimg=kimg / 2,
            snap_ticks=100,
            workers=0,
            device="cpu",
            outdir=outdir,
        )
        run_dir = training_loop(options)
        for line in (run_dir / "stats.jsonl").read_text().splitlines():
            stats = json.loads(line)
            print(f"kimg {stats['kimg']:.3f}: {1000 / stats['Timing/images_per_sec']:.1f} s/kimg")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--kimg", type=float, default=0.256, help="kimg per stage of the StyleGAN-XL run")
    args = parser.parse_args()
    print(f"load average at start: {os.getloadavg()[0]:.2f}; torch threads: {torch.get_num_threads()}")
    augmentation(args.rounds)
    xl_training(args.kimg)
    print(f"load average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
