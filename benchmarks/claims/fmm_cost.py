"""INR-GAN's claim that factorized multiplicative modulation (FMM) is cheap, against the convolutional decoders.

At each resolution (``--resolutions``, default 64, 128, 256) every decoder is built for that image size as a
run of its paper preset trains it (INR-GAN ``paper-256``'s layout sized to R, StyleGAN3-T ``paper-256``'s
layout sized to R, StyleGAN-XL ``imagenet`` grown from its 16² stem by ×2 stages; random weights), then:

- multiply-adds per pixel of one R² image, mapping included (``polyinr.metrics.cost.count_macs``);
- CPU rendering time per pixel of one R² image (batch 1, ``G.synthesize(ws, grid)``, ws mapped beforehand),
  every network of that resolution in turn each round (``--rounds``), best and median, load average recorded;
- each convolutional decoder's multiply-adds and time relative to INR-GAN's.

The paper's own comparison (INR-GAN paper, decoder comparison table, seeds/inr-gan.review.ko.txt) is printed
beside: at 256², the Multi-Scale INR decoder 38.76 GMACs per image against StyleGAN2's 84.36. StyleGAN2 is not a
registered model here, so it is measured only if one is registered under ``stylegan2``.

    python benchmarks/claims/fmm_cost.py --out benchmarks/claims/fmm_cost [--rounds 3]
    python benchmarks/claims/fmm_cost.py --out /tmp/fmm --resolutions 32 --rounds 1
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from claimlib import image_grid, interleaved, machine, markdown_table, network_for, one_ws, write_outputs

from polyinr.metrics.cost import count_macs
from polyinr.models.registry import list_models

INR_GAN = ("inr-gan", "paper-256")
CONVOLUTIONAL = (("stylegan3-t", "paper-256"), ("stylegan-xl", "imagenet"), ("stylegan2", "paper-256"))
PAPER_GMACS_256 = {"inr-gan": 38.76, "stylegan2": 84.36}  # per 256² image, the INR-GAN paper's table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="folder for fmm_cost.md and .json")
    parser.add_argument("--resolutions", default="64,128,256", help="comma-separated image sides in pixels")
    parser.add_argument("--rounds", type=int, default=3, help="timing rounds (each times every network once)")
    args = parser.parse_args()
    resolutions = [int(r) for r in args.resolutions.split(",")]
    registered = set(list_models())
    decoders = [INR_GAN, *(d for d in CONVOLUTIONAL if d[0] in registered)]
    missing = [m for m, _ in CONVOLUTIONAL if m not in registered]
    before = machine()
    rows = []
    with torch.no_grad():
        for R in resolutions:
            calls, measured = {}, []
            for model, preset in decoders:
                G = network_for(model, preset, R)
                ws, grid = one_ws(G), image_grid(G, R)
                calls[model] = lambda G=G, ws=ws, grid=grid: G.synthesize(ws, grid)
                macs_per_pixel = count_macs(G, R) / R**2
                measured.append(
                    {
                        "model": model,
                        "preset": preset,
                        "resolution": R,
                        "parameters": G.parameter_count(),
                        "macs_per_pixel": macs_per_pixel,
                    }
                )
                print(f"{R}²: {model} counted", flush=True)
            times = interleaved(calls, args.rounds)
            base = measured[0]
            for row in measured:
                t = times[row["model"]]
                row["seconds_per_megapixel"] = {k: v / (R * R) * 1e6 for k, v in t.items()}
                row["macs_vs_inr_gan"] = row["macs_per_pixel"] / base["macs_per_pixel"]
                row["time_vs_inr_gan"] = t["best_s"] / times[base["model"]]["best_s"]
            rows += measured
    after = machine()["load_average"]
    header = [
        "resolution",
        "decoder",
        "parameters",
        "MACs/pixel",
        "× INR-GAN's MACs",
        "s per megapixel: best / median",
        "× INR-GAN's time",
    ]
    cells = [
        [
            f"{row['resolution']}²",
            f"{row['model']} {row['preset']}",
            f"{row['parameters'] / 1e6:.2f} M",
            f"{row['macs_per_pixel']:,.0f}",
            f"{row['macs_vs_inr_gan']:.2f}",
            f"{row['seconds_per_megapixel']['best_s']:.3f} / {row['seconds_per_megapixel']['median_s']:.3f}",
            f"{row['time_vs_inr_gan']:.2f}",
        ]
        for row in rows
    ]
    paper = ", ".join(f"{m} {g} GMACs ({g * 1e9 / 256**2:,.0f} MACs/pixel)" for m, g in PAPER_GMACS_256.items())
    markdown = "\n\n".join(
        [
            "# Factorized multiplicative modulation is cheap: INR-GAN against the convolutional decoders (CPU)",
            f"{before['cpu']}, {before['cpus']} CPUs, {before['torch_threads']} torch threads, "
            f"torch {before['torch']}; "
            f"{args.rounds} interleaved rounds per resolution; load average {before['load_average']} before, {after} "
            "after. Random weights; batch 1; multiply-adds of matrix products and convolutions, mapping included.",
            markdown_table(header, cells),
            f"The INR-GAN paper reports at 256² (decoder comparison table, seeds/inr-gan.review.ko.txt): {paper}.",
            *([f"Not registered here, so not measured: {', '.join(missing)}."] if missing else []),
        ]
    )
    report = {
        "machine": before,
        "load_average_after": after,
        "rounds": args.rounds,
        "rows": rows,
        "paper_gmacs_per_image_256": PAPER_GMACS_256,
        "not_registered": missing,
    }
    write_outputs(args.out, "fmm_cost", markdown, report)


if __name__ == "__main__":
    main()
