"""StyleGAN3's claim: an alias-free generator is equivariant to translation (T, R) and rotation (R) after training.

For each trained checkpoint, EQ-T (integer translations), EQ-T_frac (sub-pixel translations) and EQ-R (rotations)
are the PSNR in dB between the render of a transformed grid and the transformed render, as StyleGAN3's
``metrics/equivariance.py`` measures them (``polyinr.metrics.equivariance``); ``inf`` means exactly equal. A
model that cannot render a moved frame gets "—". Writes ``table.md``, ``results.json`` and ``figure.png``: per
model, seed 0, its frame, the render of the frame rotated by 30°, the same frame rotated as an image, and their
difference (×8).

    python benchmarks/claims/equivariance.py --out benchmarks/claims/equivariance \\
        stylegan3-t=RUN_T stylegan3-r=RUN_R poly-inr=RUN_P inr-gan=RUN_I
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
from claimlib import machine, markdown_table, panel_figure

from polyinr.grid import Grid
from polyinr.image_io import save_image, to_uint8
from polyinr.metrics.equivariance import equivariance_psnr, fractional_pseudo_rotation, fractional_rotation
from polyinr.models.generator import Generator, GridRefused
from polyinr.pretrained import load_network
from polyinr.sampling import iter_ws

KINDS = {"EQ-T": "eqt_int", "EQ-T_frac": "eqt_frac", "EQ-R": "eqr"}
FIGURE_ANGLE = math.pi / 6
PANEL = 128
LABEL_WIDTH = 110


def rotation_panels(G: Generator) -> list[torch.Tensor]:
    """Seed 0: its frame, the render of the rotated grid, the frame rotated as an image, |difference| × 8 (masked),
    each ``[3, R, R]`` in ``[-1, 1]``."""
    G = G.uniform_coordinates()
    base = Grid.frame(G.img_resolution)
    with torch.no_grad():
        ws = next(iter_ws(G, [0], 0 if G.num_classes else None, batch_size=1))
        frame = G.synthesize(ws, base).float()
        rendered, rendered_mask = fractional_pseudo_rotation(
            G.synthesize(ws, base.rotated(-FIGURE_ANGLE)).float(), FIGURE_ANGLE
        )
        rotated, mask = fractional_rotation(frame, FIGURE_ANGLE)
    difference = ((rendered - rotated).abs() * 8 * mask * rendered_mask).clamp(0, 2) - 1
    return [frame[0], rendered[0], rotated[0], difference[0]]


def figure(panels: dict[str, list[torch.Tensor] | None]) -> np.ndarray:
    rows = {name: [to_uint8(image[None])[0] for image in images or []] for name, images in panels.items()}
    titles = ("frame", "rotated grid", "rotated image", "|difference| x8")
    return panel_figure(titles, rows, PANEL, LABEL_WIDTH)


def cell(value: float | None) -> str:
    if value is None:
        return "—"
    return "∞ (exact)" if math.isinf(value) else f"{value:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("networks", nargs="+", metavar="NAME=CHECKPOINT", help="trained checkpoints, named")
    parser.add_argument("--samples", type=int, default=500, help="samples per metric")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    if not all("=" in spec for spec in args.networks):
        parser.error("name each checkpoint: NAME=CHECKPOINT")
    checkpoints = dict(spec.split("=", 1) for spec in args.networks)
    print("machine:", machine(), flush=True)
    start = time.perf_counter()
    results: dict[str, dict[str, float | None]] = {}
    panels: dict[str, list[torch.Tensor] | None] = {}
    for name, path in checkpoints.items():
        G = load_network(path, "cpu").eval()
        labels = np.zeros(args.samples, dtype=np.int64) if G.num_classes else None
        results[name] = {}
        for label, kind in KINDS.items():
            try:
                results[name][label] = equivariance_psnr(G, kind, args.samples, labels)
            except GridRefused as e:
                results[name][label] = None
                print(f"{name} {label}: {e}", flush=True)
        try:
            panels[name] = rotation_panels(G)
        except GridRefused:
            panels[name] = None
        print(f"{name}: {results[name]}", flush=True)

    markdown = "\n".join(
        [
            f"Equivariance in dB (PSNR between the render of a moved grid and the moved render; higher is better, "
            f"∞ = exact), {args.samples} samples each, as StyleGAN3's metrics compute it. — : the model cannot "
            "render a moved frame.",
            "",
            markdown_table(["model", *KINDS], [[name, *(cell(v) for v in r.values())] for name, r in results.items()]),
        ]
    )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "table.md").write_text(markdown + "\n")
    report = {
        "checkpoints": checkpoints,
        "samples": args.samples,
        "machine": machine(),
        "seconds": time.perf_counter() - start,
        "results": {
            n: {k: (None if v is None else str(v) if math.isinf(v) else v) for k, v in r.items()}
            for n, r in results.items()
        },
    }
    (args.out / "results.json").write_text(json.dumps(report, indent=2) + "\n")
    save_image(figure(panels), args.out / "figure.png")
    print(markdown)
    print(f"wrote {args.out / 'table.md'}, results.json, figure.png in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
