"""Poly-INR's and INR-GAN's claim: trained at a low resolution, a coordinate generator renders well at a higher one.

Each checkpoint was trained on real crops at ``--train-resolution`` (e.g. ``builtin:textures`` at 32²). For each
density factor ``f`` (2 and 4 by default) the script renders every sample's frame at ``f`` times the density, and
upsamples the same samples' native renders by nearest neighbour and by bicubic interpolation. Each is compared
with the real crops rendered from their sources at that density, by FID in a feature space trained on those real
crops at that density (a small LeNet that tells which source photograph a crop comes from, as ``fid_textures``
does at 32²; an ImageNet network cannot be downloaded here). The real crops' own native renders, upsampled the
same two ways, give the floor that upsampling alone reaches. Writes ``table.md``, ``results.json`` and
``figure.png`` (a row per model: native render, nearest, bicubic, the dense render; the real crops first).

    python benchmarks/claims/super_resolution.py --out benchmarks/claims/super_resolution \\
        poly-inr=RUN/checkpoints/latest inr-gan=RUN/checkpoints/latest
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from claimlib import machine, markdown_table, panel_figure

from polyinr.data.datasets import open_dataset
from polyinr.grid import Grid
from polyinr.image_io import from_uint8, quantize, save_image
from polyinr.metrics.feature_spaces import RECIPES, LeNet, network_input, train_feature_net
from polyinr.metrics.fid import FeatureStats, frechet_distance
from polyinr.models.generator import CapabilityMissing, GridRefused
from polyinr.pretrained import load_network
from polyinr.sampling import iter_ws

UPSAMPLERS = {"nearest": "nearest", "bicubic": "bicubic"}
PANEL = 128  # pixels of each figure panel's side
LABEL_WIDTH = 110


def real_images(data: str, resolution: int) -> torch.Tensor:
    """The dataset's images rendered at ``resolution``: uint8 ``[N, 3, R, R]``."""
    dataset = open_dataset(data, resolution=resolution)
    return torch.stack([dataset[i][0] for i in range(len(dataset))])


def upsample(images: torch.Tensor, factor: int, mode: str) -> torch.Tensor:
    """uint8 ``[N, 3, R, R]`` → uint8 ``[N, 3, fR, fR]`` by ``mode`` interpolation."""
    x = from_uint8(images)
    kwargs = {"align_corners": False} if mode == "bicubic" else {}
    return quantize(F.interpolate(x, scale_factor=factor, mode=mode, **kwargs))


class Space:
    """A feature network trained on the real crops at one density; FID of uint8 image sets against them."""

    def __init__(self, dataset: str, resolution: int, reals: torch.Tensor, width: int) -> None:
        base = RECIPES[dataset]
        self.recipe = dataclasses.replace(base, input_size=resolution, render_resolution=resolution, width=width)
        start = time.perf_counter()
        state, info = train_feature_net(self.recipe)
        self.train_seconds = time.perf_counter() - start
        self.accuracy = float(info["held_out_accuracy"])
        self.net = LeNet(self.recipe, int(info["num_classes"]))
        self.net.load_state_dict(state)
        self.net.eval().requires_grad_(False)
        self.real = self.moments(reals)

    def moments(self, images: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        stats = FeatureStats()
        with torch.no_grad():
            for batch in images.split(64):
                stats.append(self.net(network_input(batch, self.recipe))[0])
        return stats.mean_cov()

    def fid(self, images: torch.Tensor) -> float:
        return frechet_distance(*self.moments(images), *self.real)


def render(G: torch.nn.Module, seeds: list[int], resolution: int) -> torch.Tensor:
    """uint8 ``[N, 3, R, R]``: the frame of each seed at ``resolution``² (class 0 for a conditional model)."""
    grid = Grid.frame(resolution)
    out = []
    with torch.no_grad():
        for ws in iter_ws(G, seeds, 0 if G.num_classes else None, batch_size=32):
            out.append(quantize(G.synthesize(ws, grid).float()))
    return torch.cat(out)


def rendered_cell(name: str, fid: float | None) -> str:
    if name == "real crops":
        return "(the reference)"
    return "—" if fid is None else f"{fid:.1f}"


def figure(rows: dict[str, list[torch.Tensor | None]]) -> np.ndarray:
    """A row per entry (native, nearest, bicubic, dense): the first image of each, resized to the panel."""
    pixels = {
        name: [None if image is None else image.permute(1, 2, 0).numpy() for image in images]
        for name, images in rows.items()
    }
    titles = ("native", "nearest", "bicubic", "rendered dense / real dense")
    return panel_figure(titles, pixels, PANEL, LABEL_WIDTH)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("networks", nargs="+", metavar="NAME=CHECKPOINT", help="checkpoints trained on --data")
    parser.add_argument("--data", default="builtin:textures", help="the built-in set the checkpoints learned")
    parser.add_argument("--train-resolution", type=int, default=32, help="the resolution they were trained at")
    parser.add_argument("--factors", default="2,4", help="density factors")
    parser.add_argument("--samples", type=int, default=900, help="generated samples per model and density")
    parser.add_argument("--space-width", type=int, default=16, help="first-block channels of each feature network")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    if not all("=" in spec for spec in args.networks):
        parser.error("name each checkpoint: NAME=CHECKPOINT")
    checkpoints = dict(spec.split("=", 1) for spec in args.networks)
    dataset = args.data.removeprefix("builtin:")
    if dataset not in RECIPES:
        parser.error(f"--data must be a built-in set with a feature space: {', '.join(RECIPES)}")
    factors = [int(f) for f in args.factors.split(",")]
    low = args.train_resolution
    seeds = list(range(args.samples))
    print("machine:", machine(), flush=True)
    start = time.perf_counter()

    networks = {name: load_network(path, "cpu").eval() for name, path in checkpoints.items()}
    native = {name: render(G, seeds, low) for name, G in networks.items()}
    native["real crops"] = real_images(args.data, low)
    results: dict[str, dict] = {}
    figure_rows: dict[str, list] = {}
    for factor in factors:
        high = low * factor
        reals = real_images(args.data, high)
        space = Space(dataset, high, reals, args.space_width)
        print(
            f"×{factor}: feature space at {high}² trained in {space.train_seconds:.0f} s, "
            f"held-out accuracy {space.accuracy:.3f}",
            flush=True,
        )
        entry = {"space": {"input": high, "held_out_accuracy": space.accuracy, "train_s": space.train_seconds}}
        for name, images in native.items():
            scores = {mode: space.fid(upsample(images, factor, mode)) for mode in UPSAMPLERS}
            dense = None
            if name == "real crops":
                dense, scores["rendered"] = reals, None  # the reference itself
            else:
                try:
                    dense = render(networks[name], seeds, high)
                    scores["rendered"] = space.fid(dense)
                except (GridRefused, CapabilityMissing) as e:
                    scores["rendered"] = None
                    print(f"{name}: {e}", flush=True)
            entry[name] = scores
            print(f"×{factor} {name}: {scores}", flush=True)
            if factor == max(factors):
                figure_rows[name] = [
                    images[0],
                    *(upsample(images[:1], factor, m)[0] for m in UPSAMPLERS),
                    None if dense is None else dense[0],
                ]
        results[f"x{factor}"] = entry

    rows = []
    for name in native:
        cells = [name]
        for factor in factors:
            scores = results[f"x{factor}"][name]
            cells += [f"{scores['nearest']:.1f}", f"{scores['bicubic']:.1f}", rendered_cell(name, scores["rendered"])]
        rows.append(cells)
    header = ["samples"] + [f"×{f} {kind}" for f in factors for kind in ("nearest", "bicubic", "rendered")]
    spaces = "; ".join(
        f"×{f}: {low * f}² input, held-out accuracy {results[f'x{f}']['space']['held_out_accuracy']:.3f}"
        for f in factors
    )
    markdown = "\n".join(
        [
            f"FID (lower is better) against the {len(native['real crops'])} real crops of `{args.data}` rendered at "
            f"each density, in a feature space trained on them at that density ({spaces}). Models trained at {low}²; "
            f"{args.samples} samples each. 'real crops' are the real images at {low}², upsampled: the floor of "
            "upsampling alone.",
            "",
            markdown_table(header, rows),
        ]
    )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "table.md").write_text(markdown + "\n")
    report = {
        "settings": {k: str(v) for k, v in vars(args).items()},
        "checkpoints": checkpoints,
        "machine": machine(),
        "seconds": time.perf_counter() - start,
        "results": results,
    }
    (args.out / "results.json").write_text(json.dumps(report, indent=2) + "\n")
    save_image(figure(figure_rows), args.out / "figure.png")
    print(markdown)
    print(f"wrote {args.out / 'table.md'}, results.json, figure.png in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
