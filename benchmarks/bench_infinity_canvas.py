"""InfinityGAN canvases: megapixels/s and peak memory of ``polyinr render`` at growing sizes, and the speed-up
of batching patches.

A ``cpu``-preset InfinityGAN checkpoint is created with ``polyinr create``; ``polyinr render --seed 0 --size S``
(tile 512, streamed PNG) runs in a child process per size, and its peak resident set size is read from the
kernel when it exits (``os.wait4``'s ``ru_maxrss``: the child alone). A size runs only if the time extrapolated
from the previous one fits ``--budget-min`` minutes. Then, in this process, one 512×512 lattice window is
synthesized with 1, 4 and 16 patches per call, interleaved over ``--rounds`` rounds (best and median).

    python benchmarks/bench_infinity_canvas.py [--sizes 1024x1024,4096x4096,4096x16384] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

CLI = [sys.executable, "-c", "import sys; from polyinr.cli import main; sys.exit(main())"]


def run_cli(args: list[str], log: Path, env: dict[str, str]) -> tuple[float, int]:
    """Run ``polyinr ARGS`` in a child process: ``(wall seconds, peak RSS in bytes)``."""
    start = time.perf_counter()
    with open(log, "w+b") as f:
        child = subprocess.Popen([*CLI, *args], stdout=f, stderr=subprocess.STDOUT, env=env)
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - start
        if os.waitstatus_to_exitcode(status) != 0:
            f.seek(0)
            raise SystemExit(f"polyinr {' '.join(args)} failed:\n{f.read().decode()[-2000:]}")
    return wall, usage.ru_maxrss * 1024


def batched_speedup(ckpt: Path, rounds: int, threads: int | None) -> None:
    import polyinr
    from polyinr.checkpoint import load_generator

    if threads:
        torch.set_num_threads(threads)
    G = load_generator(ckpt)
    ws = G.mapping(polyinr.latents_from_seeds([0], G.z_dim))
    step = 1.0 / (G.img_resolution - 1)
    grid = polyinr.Grid.window(0.0, 0.0, 511 * step, 511 * step, 512, 512)
    times: dict[int, list[float]] = {1: [], 4: [], 16: []}
    with torch.no_grad():
        G.synthesize(ws, grid)  # warm-up
        for _ in range(rounds):
            for batch in times:
                start = time.perf_counter()
                G.synthesize(ws, grid, patch_batch=batch)
                times[batch].append(time.perf_counter() - start)
    base = min(times[1])
    print("\n| patches per call | best s | median s | MP/s (best) | speed-up vs 1 |\n|---|---|---|---|---|")
    for batch, ts in times.items():
        print(
            f"| {batch} | {min(ts):.3f} | {statistics.median(ts):.3f} | {0.262144 / min(ts):.3f} | "
            f"{base / min(ts):.2f}x |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1024x1024,4096x4096,4096x16384", help="HxW sizes, smallest first")
    parser.add_argument("--budget-min", type=float, default=15.0, help="skip sizes estimated to take longer")
    parser.add_argument("--threads", type=int, default=None, help="OMP_NUM_THREADS (default: torch's)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the batched-patch comparison")
    parser.add_argument("--preset", default="cpu", help="the InfinityGAN preset rendered (cpu or paper)")
    parser.add_argument("--no-batched", action="store_true", help="skip the batched-patch comparison")
    parser.add_argument("--keep", default=None, help="write the checkpoint and PNGs here instead of a temp dir")
    args = parser.parse_args()
    env = dict(os.environ)
    if args.threads:
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(args.threads)
    print(f"load average at start: {os.getloadavg()[0]:.2f}; threads: {args.threads or torch.get_num_threads()}")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.keep or tmp)
        work.mkdir(parents=True, exist_ok=True)
        ckpt = work / f"infinitygan-{args.preset}"
        run_cli(
            ["create", "--model", "infinitygan", "--preset", args.preset, "--seed", "0", str(ckpt)], work / "c.log", env
        )
        base_wall, base_rss = run_cli(["list"], work / "list.log", env)
        print("| size | pixels | wall s | MP/s | peak RSS | PNG MiB |\n|---|---|---|---|---|---|")
        print(f"| baseline: `polyinr list` | - | {base_wall:.1f} | - | {base_rss / 2**30:.2f} GiB | - |")
        per_pixel = None
        for size in args.sizes.split(","):
            H, W = (int(v) for v in size.split("x"))
            if per_pixel is not None and base_wall + per_pixel * H * W > args.budget_min * 60:
                print(
                    f"| {size} | {H * W / 1e6:.1f} M | not run (extrapolated {base_wall + per_pixel * H * W:.0f} s)"
                    " | | | |"
                )
                continue
            out = work / f"canvas{size}.png"
            wall, rss = run_cli(
                ["render", "--network", str(ckpt), "--seed", "0", "--size", size, "--out", str(out)],
                work / f"r{size}.log",
                env,
            )
            per_pixel = max(wall - base_wall, 1e-3) / (H * W)
            print(
                f"| {size} | {H * W / 1e6:.1f} M | {wall:.1f} | {H * W / 1e6 / (wall - base_wall):.3f} | "
                f"{rss / 2**30:.2f} GiB | {out.stat().st_size / 2**20:.1f} |",
                flush=True,
            )
        if not args.no_batched:
            batched_speedup(ckpt, args.rounds, args.threads)
    print(f"load average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
