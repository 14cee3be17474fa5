"""Parameter efficiency at the papers' sizes: every registered model's paper presets, side by side.

For each paper preset, the network a 256² run of it trains (StyleGAN-XL grown from its stem by ×2 stages, the
others sized to 256², InfinityGAN's patch network painting a 256² canvas window; random weights):

- parameters (all, mapping, synthesis);
- multiply-adds per pixel of one 256² image, mapping included (``polyinr.metrics.cost.count_macs``: PyTorch's
  FlopCounterMode, matrix products and convolutions), and the model's own analytic count where it has one;
- CPU synthesis time of one 256² image (batch 1, ``G.synthesize(ws, grid)``, ws mapped beforehand), every
  network in turn each round (``--rounds``), best and median, the load average before and after;
- beside them, what the papers report, with the source of each figure.

A preset whose network renders only a larger native frame (StyleGAN3's paper-512 and paper-1024) is measured
at its native resolution (parameters, multiply-adds per pixel) and not timed: its 256² layout is paper-256.

    python benchmarks/claims/parameter_efficiency.py --out benchmarks/claims/parameter_efficiency [--rounds 3]
    python benchmarks/claims/parameter_efficiency.py --out /tmp/pe --resolution 32 --models inr-gan --rounds 1
"""

from __future__ import annotations

import argparse
import fnmatch
from pathlib import Path
from typing import Any

import torch
from claimlib import (
    image_grid,
    interleaved,
    machine,
    markdown_table,
    native_resolution,
    network_for,
    one_ws,
    paper_presets,
    write_outputs,
)

from polyinr.metrics.cost import count_macs

# What each paper reports, as the project holds its text (specs/ and seeds/); None: no figure for the network.
REPORTED: dict[str, tuple[str, str] | None] = {
    "poly-inr": (
        "≈45.8 M parameters at n = 1024, mapping included; ≈10.5 M MACs/pixel (≈10·n²)",
        "specs/poly-inr.md; the paper's ImageNet and FFHQ tables are not held as text",
    ),
    "inr-gan": (
        "Multi-Scale INR decoder: 107.03 M parameters, 38.76 GMACs per 256² image (≈591 k MACs/pixel); "
        "117.3 M, 47.35 GMACs at 1024²",
        "INR-GAN paper, decoder comparison table (LSUN 256², FFHQ 1024²), seeds/inr-gan.review.ko.txt",
    ),
    "stylegan3-t": None,
    "stylegan3-r": (
        "no absolute count; config R has 56 % fewer trainable parameters than T",
        "StyleGAN3 paper, config R, seeds/stylegan3.review.ko.txt",
    ),
    "stylegan-xl": (
        "no absolute count; three times the parameters of StyleGAN3",
        "StyleGAN-XL paper, abstract, seeds/stylegan-xl.review.ko.txt",
    ),
    "infinitygan": None,
}

NOTES = """\
"not reported": the paper text the project holds (specs/, specs/notes/, seeds/) gives no figure for this network.
Estimates that are not the papers' (specs/notes/inrgan-infinitygan-code.md, marked [est] there): INR-GAN's released
256² config ≈72 M parameters and ≈14.85 GMACs per image (≈227 k MACs/pixel; the paper-era network above differs);
InfinityGAN's 101² patch ≈78 GMACs, ≈8.5 M MACs per new canvas pixel at a 96-pixel stride."""


def measure(model: str, preset: str, resolution: int) -> tuple[dict[str, Any], Any]:
    """The row of one preset and the synthesis call to time (None when it does not render ``resolution``²)."""
    size = max(resolution, native_resolution(model, preset))
    G = network_for(model, preset, size)
    own = G.macs_per_pixel()
    row = {
        "model": model,
        "preset": preset,
        "resolution": size,
        "parameters": G.parameter_count(),
        "mapping_parameters": sum(p.numel() for p in G.mapping.parameters()),
        "synthesis_parameters": sum(p.numel() for p in G.synthesis.parameters()),
        "macs_per_pixel_counted": count_macs(G, size) / size**2,
        "macs_per_pixel_model": own,
    }
    if size != resolution:
        return row, None
    ws, grid = one_ws(G), image_grid(G, size)
    return row, lambda: G.synthesize(ws, grid)


def reported_cell(model: str) -> str:
    figure = REPORTED.get(model)
    return "not reported" if figure is None else f"{figure[0]} ({figure[1]})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="folder for parameter_efficiency.md and .json")
    parser.add_argument("--resolution", type=int, default=256, help="image side in pixels (the claim: 256)")
    parser.add_argument("--rounds", type=int, default=3, help="timing rounds (each times every network once)")
    parser.add_argument("--models", default="*", help="comma-separated model names or patterns (default: all)")
    args = parser.parse_args()
    patterns = args.models.split(",")
    presets = [(m, p) for m, p in paper_presets() if any(fnmatch.fnmatch(m, pat) for pat in patterns)]
    before = machine()
    rows, calls = [], {}
    with torch.no_grad():
        for model, preset in presets:
            row, call = measure(model, preset, args.resolution)
            rows.append(row)
            if call is not None:
                calls[f"{model} {preset}"] = call
            print(f"{model} {preset}: {row['parameters']:,} parameters", flush=True)
        times = interleaved(calls, args.rounds)
    after = machine()["load_average"]
    for row in rows:
        row["synthesis_s"] = times.get(f"{row['model']} {row['preset']}")
        row["reported"] = REPORTED.get(row["model"])
    R = args.resolution
    header = [
        "model",
        "preset",
        "measured at",
        "parameters (mapping + synthesis)",
        "MACs/pixel (counted)",
        "MACs/pixel (model's count)",
        f"synthesis s at {R}², batch 1: best / median",
        "paper reports",
    ]
    cells = [
        [
            row["model"],
            row["preset"],
            f"{row['resolution']}²",
            f"{row['parameters'] / 1e6:.2f} M ({row['mapping_parameters'] / 1e6:.2f} + "
            f"{row['synthesis_parameters'] / 1e6:.2f})",
            f"{row['macs_per_pixel_counted']:,.0f}",
            "—" if row["macs_per_pixel_model"] is None else f"{row['macs_per_pixel_model']:,}",
            (
                f"{row['synthesis_s']['best_s']:.3f} / {row['synthesis_s']['median_s']:.3f}"
                if row["synthesis_s"]
                else f"not timed: its network is {row['resolution']}²"
            ),
            reported_cell(row["model"]),
        ]
        for row in rows
    ]
    markdown = "\n\n".join(
        [
            f"# Parameter efficiency at the papers' sizes ({R}², batch 1, CPU)",
            f"{before['cpu']}, {before['cpus']} CPUs, {before['torch_threads']} torch threads, "
            f"torch {before['torch']}; "
            f"{args.rounds} interleaved rounds; load average {before['load_average']} before, {after} after. "
            "Random weights (cost does not depend on them).",
            markdown_table(header, cells),
            NOTES,
        ]
    )
    report = {"machine": before, "load_average_after": after, "resolution": R, "rounds": args.rounds, "rows": rows}
    write_outputs(args.out, "parameter_efficiency", markdown, report)


if __name__ == "__main__":
    main()
