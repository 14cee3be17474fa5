"""What compare's curve metric costs on a user's own photos, against the training between two snapshots.

Makes a folder of real photo crops (random squares of six colour photographs scikit-image ships, resized to the
training resolution, PNG), resolves ``polyinr compare --data FOLDER --models poly-inr`` with the cpu preset as a
new user would, and times, with an empty cache:

(a) fitting the data's feature space (decoding the data at the space's input size included);
(b) the curve metric at the first snapshot (the real images' statistics included) and at a later one (those
    statistics cached), for the cpu Poly-INR at the training resolution;
(c) training: images/s of the compare's run of that model (its recipe, batch and discriminator), and from it the
    training time of one snapshot interval, the recipe's default and the one of ``--kimg K`` (a single snapshot,
    at the end);

and for reference one Inception pass (``rfid0.5k_full``, the curve metric before: random weights, no download),
extrapolated from a timed batch. Prints the load average before and after, and each share of training. Then what
the space sees: FID in it between a random half of the real crops and the other half, that half blurred, greyed,
its crops of two photographs of the six (dropped modes), and noise.

    python benchmarks/bench_curve_metric.py --images 2400 --resolution 48 --kimg 0.3
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import skimage.data
import torch
import torch.nn.functional as F
from PIL import Image

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry")


def make_crops(folder: Path, count: int, resolution: int, seed: int = 0) -> None:
    """``count`` PNG crops of :data:`PHOTOS`, in turn: random squares of a side between ``resolution`` and half
    the photo's shorter side, at random places, LANCZOS-resized to ``resolution``²."""
    rng = np.random.default_rng(seed)
    photos = [getattr(skimage.data, name)() for name in PHOTOS]  # uint8 [H, W, 3]
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        photo = photos[i % len(photos)]
        h, w = photo.shape[:2]
        side = int(rng.integers(resolution, min(h, w) // 2 + 1))
        top, left = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
        crop = Image.fromarray(photo[top : top + side, left : left + side])
        crop.resize((resolution, resolution), Image.LANCZOS).save(folder / f"{i:05d}-{PHOTOS[i % len(PHOTOS)]}.png")


def timed(fn):
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def load() -> str:
    return ", ".join(f"{v:.2f}" for v in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=2400)
    parser.add_argument("--resolution", type=int, default=48)
    parser.add_argument("--kimg", type=float, default=0.3, help="the user's --kimg (one snapshot, at the end)")
    parser.add_argument("--train-kimg", type=float, default=0.256, help="kimg trained to time images/s")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        os.environ["POLYINR_CACHE_DIR"] = str(Path(scratch) / "cache")  # an empty cache, the user's untouched
        run(Path(scratch), args)


def run(scratch: Path, args: argparse.Namespace) -> None:
    from polyinr.checkpoint import latest_snapshot, load_generator
    from polyinr.metrics import compute_metric
    from polyinr.metrics.feature_spaces import fit_data_space
    from polyinr.metrics.features import load_detector
    from polyinr.tools.compare import CompareSettings, check_settings, training_options
    from polyinr.training.loop import training_loop
    from polyinr.training.setup import open_training_data

    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), {os.cpu_count()} cores, load average {load()}"
    )
    folder = scratch / "photos"
    _, seconds = timed(lambda: make_crops(folder, args.images, args.resolution))
    print(f"{args.images} crops of {len(PHOTOS)} photographs at {args.resolution}² written in {seconds:.1f} s")

    settings = check_settings(
        CompareSettings(data=str(folder), models=("poly-inr",), resolution=args.resolution, kimg=args.kimg)
    )
    curve = settings.curve_metric
    print(f"compare's metrics: {', '.join(settings.metrics)}; curve metric: {curve}")
    options = training_options(settings, "poly-inr", scratch / "run")
    dataset = open_training_data(options).unmirrored()  # the reals the snapshot metrics use

    space, fit_seconds = timed(lambda: fit_data_space(dataset))
    print(
        f"(a) fitting the data space ({space.recipe.input_size}², {space.recipe.channels} channels, "
        f"{min(len(dataset), space.recipe.max_images)} images, {space.recipe.epochs} epochs): {fit_seconds:.1f} s, "
        f"held-out accuracy {space.held_out_accuracy:.3f}"
    )

    timing = dataclasses.replace(options, kimg=args.train_kimg, tick_kimg=args.train_kimg / 4, snap_ticks=1000)
    run_dir, _ = timed(lambda: training_loop(timing, resume="new"))
    speeds = [json.loads(line).get("Timing/images_per_sec") for line in (run_dir / "stats.jsonl").open()]
    speed = float(np.median([s for s in speeds[1:] if s is not None]))  # the first tick warms up
    interval = options.tick_kimg * options.snap_ticks
    G = load_generator(latest_snapshot(run_dir), "cpu")

    values, first = timed(lambda: compute_metric(curve, G, dataset))
    later = timed(lambda: compute_metric(curve, G, dataset))[1]
    print(
        f"(b) {curve} of the cpu Poly-INR at {args.resolution}² ({values[curve]:.4g} after "
        f"{args.train_kimg:g} kimg): {first:.1f} s at the first snapshot (real statistics included), "
        f"{later:.1f} s at each later one"
    )

    inception = load_detector("inception-random")
    batch = torch.stack([dataset[i][0] for i in range(32)])
    inception(batch)  # warm-up
    per_image = timed(lambda: inception(batch))[1] / len(batch)
    inception_pass = per_image * (500 + len(dataset))
    print(
        f"    for reference, rfid0.5k_full (Inception, random weights): {per_image * 1e3:.0f} ms an image, about "
        f"{inception_pass:.0f} s for 500 samples and the {len(dataset)} reals at the first snapshot"
    )

    print(f"(c) training: {speed:.1f} img/s (median tick of {args.train_kimg} kimg)")
    for label, kimg in (
        (f"the cpu recipe's snapshot interval, {interval:g} kimg", interval),
        (f"--kimg {args.kimg:g}: one snapshot, at the end", args.kimg),
    ):
        train = kimg * 1000 / speed
        print(
            f"    {label}: {train:.0f} s of training; {curve} costs {later / train:.1%} of it at a later "
            f"snapshot, {first / train:.1%} at the first; fitting the space, once: {fit_seconds / train:.1%}"
        )
    print(f"load average after: {load()}")
    what_the_space_sees(space, dataset)


def what_the_space_sees(space, dataset) -> None:
    """FID in ``space`` between a random half of the real crops and the other half, altered."""
    from polyinr.metrics.fid import frechet_distance

    real = torch.stack([dataset[i][0] for i in range(len(dataset))])  # uint8 [N, 3, R, R]
    photo = torch.arange(len(real)) % len(PHOTOS)  # make_crops cycles through the photographs, in file-name order
    order = torch.randperm(len(real), generator=torch.Generator().manual_seed(0))
    half, other = order[: len(real) // 2], order[len(real) // 2 :]
    rest = real[other]
    blurred = F.interpolate(F.avg_pool2d(rest.float(), 2), scale_factor=2, mode="bilinear")
    altered = {
        "the other half": rest,
        "the other half, blurred (2x box down, bilinear up)": blurred.round().clamp(0, 255).to(torch.uint8),
        "the other half, grey": rest.float().mean(1, keepdim=True).expand_as(rest).round().to(torch.uint8),
        f"the other half's crops of {PHOTOS[0]} and {PHOTOS[1]} only": rest[photo[other] < 2],
        "uniform noise": torch.randint(
            0, 256, rest.shape, generator=torch.Generator().manual_seed(0), dtype=torch.uint8
        ),
    }

    def moments(images: torch.Tensor):
        with torch.no_grad():
            f = space(images)["features"].double()
        return f.mean(0).numpy(), torch.cov(f.T).numpy()

    reference = moments(real[half])
    print(f"| against a random half of the real crops ({len(half)}) | FID in the data space |")
    print("|---|---|")
    for label, images in altered.items():
        print(f"| {label} | {frechet_distance(*moments(images), *reference):.4g} |")


if __name__ == "__main__":
    main()
