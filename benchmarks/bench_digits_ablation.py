"""Why does the main job's recipe half-collapse? Train variants of the `cpu` recipe on builtin:digits, score each.

Each variant is the demo's run (class-conditional, 16×16, `cpu` preset) with some training options changed. Scores
on the final snapshot: CAS (samples recognised as their digit), within-class diversity vs real (8×8 grey, see
``polyinr.metrics.diversity``), and the digits-space FID / precision / recall when ``--feature-metrics`` is on.
One JSON line per variant goes to ``--log`` (and stdout), with the load average during the run.

    python benchmarks/bench_digits_ablation.py --kimg 20 --variants base,gamma1,dlr_half --log /tmp/ablation.jsonl
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import time

import numpy as np
import torch

from polyinr.checkpoint import latest_snapshot, list_snapshots, load_generator
from polyinr.data.datasets import open_dataset
from polyinr.grid import Grid
from polyinr.image_io import quantize_rgb
from polyinr.metrics.cas import classification_accuracy_score, small_gray
from polyinr.metrics.diversity import class_diversity
from polyinr.metrics.sampling import dataset_batches
from polyinr.sampling import iter_ws
from polyinr.tools.demo import DEMO_RESOLUTION
from polyinr.training.loop import training_loop
from polyinr.training.options import resolve_options

AUGMENT = {"diffaug": "color,translation,cutout"}
# Each variant: options over the `cpu` recipe (loss_options / disc_options merge with the recipe's own settings).
VARIANTS: dict[str, dict] = {
    "base": {},
    "gamma0.01": {"loss_options": {"gamma": 0.01}},
    "gamma1": {"loss_options": {"gamma": 1.0}},
    "dlr_half": {"dlr": 0.00125},
    "lr_half": {"glr": 0.00125, "dlr": 0.00125},
    "glr_half": {"glr": 0.00125},
    "d_wide": {"disc_options": {"channel_max": 128, "channel_base": 2048}},
    "d_narrow": {"disc_options": {"channel_max": 32, "channel_base": 512}},
    "mbstd2": {"disc_options": {"mbstd_group": 2}},
    "map4": {"model_overrides": {"mapping.num_layers": 4}},
    "map_lr1": {"model_overrides": {"mapping.lr_multiplier": 1.0}},
    "batch16": {"batch": 16},
    "batch64": {"batch": 64},
    "ema_short": {"ema_kimg": 1.0},
    "diffaug": {"disc_options": AUGMENT},
    "diffaug_tc": {"disc_options": {"diffaug": "translation,cutout"}},
    "gamma1_diffaug": {"loss_options": {"gamma": 1.0}, "disc_options": AUGMENT},
    "map_lr1_mbstd_class": {
        "model_overrides": {"mapping.lr_multiplier": 1.0},
        "disc_options": {"mbstd_by_class": True},
    },
    "map_lr1_ema0.5": {"model_overrides": {"mapping.lr_multiplier": 1.0}, "ema_kimg": 0.5},
    "map_lr1_diffaug": {"model_overrides": {"mapping.lr_multiplier": 1.0}, "disc_options": AUGMENT},
    "lr_quarter": {"glr": 0.000625, "dlr": 0.000625},
    "lr_half_ema_short": {"glr": 0.00125, "dlr": 0.00125, "ema_kimg": 1.0},
    "kimg_x2": {},
    "ms1": {"loss_options": {"diversity_weight": 1.0}},
    "ms0.3": {"loss_options": {"diversity_weight": 0.3}},
    "ms0.5": {"loss_options": {"diversity_weight": 0.5}},
    "ms0.7": {"loss_options": {"diversity_weight": 0.7}},
    "ms0.85": {"loss_options": {"diversity_weight": 0.85}},  # run with --kimg 80: the same recipe, twice the budget
}


def scores(G, dataset, num_per_class: int) -> dict:
    """CAS on 2,000 samples and within-class diversity at 8×8 grey (``num_per_class`` samples per class)."""
    cas = classification_accuracy_score(G, dataset, 2000)
    n = num_per_class * G.num_classes
    labels = np.arange(n) % G.num_classes
    gen = torch.cat(
        [
            torch.from_numpy(small_gray(quantize_rgb(G.synthesize(ws, Grid.frame(dataset.resolution))), 8))
            for ws in iter_ws(G, range(n), labels, batch_size=100)
        ]
    )
    real, real_labels = [], []
    for images, y in dataset_batches(dataset, np.arange(len(dataset)), 256, 0):
        real.append(torch.from_numpy(small_gray(images, 8)))
        real_labels.append(y.numpy())
    div = class_diversity(gen, labels, torch.cat(real), np.concatenate(real_labels), G.num_classes)
    return {
        "cas": cas["cas"],
        "diversity": float(np.mean(list(div.values()))),
        "diversity_min": float(min(div.values())),
    }


def raw_generator(snapshot, G_ema):
    """The snapshot's raw (not averaged) generator weights, from its training state."""
    from polyinr.training.snapshot import load_module_state

    G = copy.deepcopy(G_ema)
    load_module_state(snapshot, "G", G)
    return G


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kimg", type=float, default=20.0)
    parser.add_argument("--variants", default="base")
    parser.add_argument("--outdir", default="/tmp/polyinr-ablation")
    parser.add_argument("--log", default="/tmp/polyinr-ablation.jsonl")
    parser.add_argument("--set", default="", help="extra JSON overrides applied to every variant")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 is far faster on a loaded machine)")
    parser.add_argument("--feature-metrics", action="store_true", help="also fid_digits and pr_digits")
    args = parser.parse_args()
    extra = json.loads(args.set) if args.set else {}
    torch.set_num_threads(args.threads)
    dataset = open_dataset("builtin:digits", resolution=DEMO_RESOLUTION, cond=True)
    for name in args.variants.split(","):
        overrides = {**extra, **VARIANTS[name]}
        settings = {"snap_ticks": 1, "keep_snapshots": 100, **overrides}
        options = resolve_options(
            "cpu",
            data="builtin:digits",
            cond=True,
            resolution=DEMO_RESOLUTION,
            outdir=os.path.join(args.outdir, name),
            kimg=args.kimg,
            workers=0,
            **settings,
        )
        load_before = os.getloadavg()
        start = time.time()
        with torch.random.fork_rng(devices=[]):
            run_dir = training_loop(options, resume="new")
        seconds = time.time() - start
        G = load_generator(latest_snapshot(run_dir))
        row = {
            "variant": name,
            "overrides": overrides,
            "kimg": args.kimg,
            "train_s": round(seconds, 1),
            "load_before": [round(x, 2) for x in load_before],
            "load_after": [round(x, 2) for x in os.getloadavg()],
            "run": str(run_dir),
            **scores(G, dataset, 100),
        }
        raw = raw_generator(latest_snapshot(run_dir), G)
        row["raw_G"] = scores(raw, dataset, 100)
        row["trajectory"] = {s.name: scores(load_generator(s), dataset, 50) for s in list_snapshots(run_dir)[:-1]}
        if args.feature_metrics:
            from polyinr.metrics import compute_metric

            for metric in ("fid_digits", "pr_digits"):
                row.update(compute_metric(metric, G, dataset))
                row["raw_G"].update(compute_metric(metric, raw, dataset))
        line = json.dumps(row)
        print(line, flush=True)
        with open(args.log, "a") as f:
            f.write(line + "\n")


if __name__ == "__main__":
    main()
