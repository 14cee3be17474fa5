"""StyleGAN3's texture-sticking claim, measured on trained checkpoints: how much fine detail survives averaging.

For each checkpoint, ``polyinr.tools.sticking.texture_sticking`` averages frames of a small random walk in w around
each seed, and frames of the seed's image translated by up to ``--max-shift`` pixels. The number is the energy
above half the Nyquist rate of the average over that of one frame (0: every detail moves with the content,
1: every detail is stuck to the pixels), averaged over seeds. StyleGAN3's paper shows StyleGAN2's averages keeping
sharp detail and StyleGAN3's blurring; Poly-INR and INR-GAN paint from coordinates, so the claim predicts that
they blur too. Writes ``table.md`` (+ ``results.json``) and ``figure.png``: a row per model with one frame, the
walk's average and the translated average of the first seed.

    python benchmarks/claims/texture_sticking.py --out /tmp/sticking \\
        stylegan2=runs/sg2/final stylegan3-t=runs/sg3t/final stylegan3-r=runs/sg3r/final \\
        poly-inr=runs/poly/final inr-gan=runs/inr/final
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

import numpy as np
from claimlib import panel_figure

from polyinr.checkpoint import load_generator
from polyinr.device import resolve_device
from polyinr.image_io import save_image, to_uint8
from polyinr.sampling import parse_range_list
from polyinr.tools.sticking import HALF_NYQUIST, Sticking, texture_sticking

LABEL_WIDTH = 120  # pixels of the figure's left column, holding each row's model name
PANEL = 256  # pixels of each panel's side in the figure (images are resized to it, nearest neighbour)


def figure(results: dict[str, Sticking]) -> np.ndarray:
    """uint8 ``[rows, cols, 3]``: a header, then a row per model (frame, walk average, translated average)."""
    rows = {}
    for name, result in results.items():
        first = result.seeds[0]
        panels = (first.frame, first.walk_average, first.translation_average)
        rows[name] = [None if image is None else to_uint8(image[None])[0] for image in panels]
    return panel_figure(("one frame", "average, walk in w", "average, translated"), rows, PANEL, LABEL_WIDTH)


def table(results: dict[str, Sticking], frames: int) -> str:
    """A Markdown table: model, the walk's ratio, the translated frames' ratio (— where the model cannot translate)."""
    lines = [
        f"Fine detail kept by averaging {frames} frames: energy above {HALF_NYQUIST:g} cycles/pixel of the average "
        "over that of one frame, mean over seeds (0 = every detail moves, 1 = every detail sticks).",
        "",
        "The change columns say how much the content moved: the mean absolute difference between one frame and the",
        "average, in the images' [-1, 1] units (a model whose frames do not change keeps its detail trivially).",
        "",
        "| model | latent walk in w | change (walk) | translation | change (translation) |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, r in results.items():
        translation = "—" if r.translation_ratio is None else f"{r.translation_ratio:.3f}"
        moved = "—" if r.translation_ratio is None else f"{mean_change(r, 'translation_average'):.3f}"
        lines.append(
            f"| {name} | {r.walk_ratio:.3f} | {mean_change(r, 'walk_average'):.3f} | {translation} | {moved} |"
        )
    return "\n".join(lines) + "\n"


def mean_change(result: Sticking, average: str) -> float:
    """Mean over seeds of the mean absolute difference between one frame and its ``average`` (an attribute name)."""
    return float(np.mean([(s.frame - getattr(s, average)).abs().mean().item() for s in result.seeds]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("networks", nargs="+", metavar="NAME=CHECKPOINT", help="trained checkpoints, named")
    parser.add_argument("--seeds", default="0-15", help="seeds averaged over")
    parser.add_argument("--class", dest="class_idx", type=int, default=None, help="class, for conditional models")
    parser.add_argument("--frames", type=int, default=64, help="frames per average")
    parser.add_argument("--radius", type=float, default=0.25, help="the walk's reach, in standard deviations of w")
    parser.add_argument("--max-shift", type=float, default=2.0, help="largest translation, pixels")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    args = parser.parse_args()

    if not all("=" in spec for spec in args.networks):
        parser.error("name each checkpoint: NAME=CHECKPOINT")
    checkpoints = dict(spec.split("=", 1) for spec in args.networks)
    seeds = list(parse_range_list(args.seeds))
    device = resolve_device(args.device)
    args.out.mkdir(parents=True, exist_ok=True)
    results = {}
    for name, path in checkpoints.items():
        G = load_generator(path, device)
        results[name] = texture_sticking(G, seeds, args.class_idx, args.frames, args.radius, args.max_shift, device)
        print(f"{name}: done", flush=True)
    (args.out / "table.md").write_text(table(results, args.frames))
    summary = {
        "settings": {k: v for k, v in vars(args).items() if k not in ("networks", "out")},
        "checkpoints": checkpoints,
        "machine": platform.node(),
        "results": {
            n: {
                "walk_ratio": r.walk_ratio,
                "translation_ratio": r.translation_ratio,
                "per_seed": [[s.seed, s.walk_ratio, s.translation_ratio] for s in r.seeds],
            }
            for n, r in results.items()
        },
    }
    (args.out / "results.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    save_image(figure(results), args.out / "figure.png")
    print((args.out / "table.md").read_text(), end="")
    print(f"wrote {args.out / 'table.md'}, {args.out / 'results.json'}, {args.out / 'figure.png'}")


if __name__ == "__main__":
    main()
