"""Quality of the README's main job, measured: train the `cpu` preset on builtin:digits, then score samples.

A logistic regression trained on the real digits (scikit-learn) classifies class-conditional samples
downsampled to 8×8 (the classification accuracy score, ``polyinr.metrics.classification_accuracy_score``).
Target: ≥ 80 % of samples recognised as their class after the main job's budget. Reports training images/s.

    python benchmarks/bench_digits_quality.py --kimg 60 --outdir /tmp/quality
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import torch

from polyinr.checkpoint import list_snapshots, load_generator
from polyinr.data.datasets import open_dataset
from polyinr.metrics.cas import classification_accuracy_score
from polyinr.tools.demo import DEMO_RESOLUTION
from polyinr.training.loop import training_loop
from polyinr.training.options import resolve_options


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kimg", type=float, default=None, help="training length (default: the cpu preset's)")
    parser.add_argument("--outdir", default="/tmp/polyinr-quality")
    parser.add_argument("--samples", type=int, default=2000, help="generated samples scored")
    parser.add_argument("--model", default="poly-inr", help="registered generator, trained from its cpu preset")
    args = parser.parse_args()

    options = resolve_options(
        "cpu",
        model=args.model,
        data="builtin:digits",
        cond=True,
        resolution=DEMO_RESOLUTION,
        outdir=args.outdir,
        kimg=args.kimg,
        workers=0,
    )
    start = time.time()
    run_dir = training_loop(options, resume="new")
    seconds = time.time() - start
    dataset = open_dataset("builtin:digits", cond=True)
    rows = []
    for snapshot in list_snapshots(run_dir):
        G = load_generator(snapshot)
        scores = classification_accuracy_score(G, dataset.with_resolution(G.img_resolution), args.samples)
        rows.append({"kimg": float(snapshot.name), **scores})
    result = {
        "model": args.model,
        "kimg": options.kimg,
        "train_seconds": round(seconds, 1),
        "train_images_per_sec": round(options.kimg * 1000 / seconds, 1),
        "threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        "snapshots": rows,
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
