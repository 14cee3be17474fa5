"""Peak memory and wall time of a huge tiled render through the command line (``polyinr render`` → PNG).

A ``cpu``-preset checkpoint is created with ``polyinr create``; then ``polyinr render --size S`` runs in a child
process for each size, and its peak resident set size is read from the kernel when it exits (``os.wait4``'s
``ru_maxrss``: the child alone, whatever ran before it). The render streams one strip of tiles at a time into
the PNG, so the peak should not grow with the output size.

The full 16384² render is 268 M pixels; it runs only if the time extrapolated from the previous size (start-up
plus a time ∝ pixels) fits ``--budget-min`` minutes; otherwise the extrapolated figure is printed, labelled.

    python benchmarks/bench_render_memory.py [--sizes 2048,16384] [--tile 512] [--budget-min 10] [--threads N]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

CLI = [sys.executable, "-c", "import sys; from polyinr.cli import main; sys.exit(main())"]


def run_cli(args: list[str], log: Path, env: dict[str, str] | None = None) -> tuple[float, int]:
    """Run ``polyinr ARGS`` in a child process (output to ``log``): ``(wall seconds, peak RSS in bytes)``."""
    start = time.perf_counter()
    with open(log, "w+b") as f:
        child = subprocess.Popen([*CLI, *args], stdout=f, stderr=subprocess.STDOUT, env=env)
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - start
        child.returncode = os.waitstatus_to_exitcode(status)
        if child.returncode != 0:
            f.seek(0)
            raise SystemExit(f"polyinr {' '.join(args)} failed ({child.returncode}):\n{f.read().decode()[-2000:]}")
    return wall, usage.ru_maxrss * 1024  # ru_maxrss is in KiB on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="2048,16384", help="square output sizes, smallest first")
    parser.add_argument("--tile", type=int, default=512)
    parser.add_argument("--budget-min", type=float, default=10.0, help="skip sizes estimated to take longer")
    parser.add_argument("--threads", type=int, default=None, help="OMP_NUM_THREADS of the renders (default: all)")
    parser.add_argument("--keep", default=None, help="write the checkpoint and PNGs here instead of a temp dir")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    load_start = os.getloadavg()[0]
    env = dict(os.environ)
    if args.threads:
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.keep or tmp)
        work.mkdir(parents=True, exist_ok=True)
        ckpt = work / "cpu-preset"
        log = work / "cli.log"
        run_cli(["create", "--preset", "cpu", "--seed", "0", str(ckpt)], log)
        threads = args.threads or torch.get_num_threads()
        print(f"torch {torch.__version__}, {threads} threads; checkpoint: poly-inr cpu preset")
        print("| size | pixels | wall s | peak RSS | PNG MiB | note |")
        print("|---|---|---|---|---|---|")
        startup, rss = run_cli(["list"], log, env)  # start-up time is not proportional to the pixels
        print(f"| - | - | {startup:.1f} | {rss / 2**30:.2f} GiB | - | baseline: `polyinr list` (imports only) |")
        rate = None  # seconds per pixel beyond start-up, from the last run
        for size in sizes:
            pixels = size * size
            if rate is not None and startup + rate * pixels > args.budget_min * 60:
                estimate = startup + rate * pixels
                print(
                    f"| {size}² | {pixels / 1e6:.0f} M | ~{estimate:.0f} (extrapolated, not run) | - | - | "
                    f"estimated {estimate / 60:.1f} min > {args.budget_min:g} min budget |"
                )
                continue
            out = work / f"render-{size}.png"
            wall, rss = run_cli(
                [
                    "render",
                    "--network",
                    str(ckpt),
                    "--seed",
                    "0",
                    "--window",
                    "-0.5,-0.5,1.5,1.5",
                    "--size",
                    f"{size}x{size}",
                    "--tile",
                    str(args.tile),
                    "--out",
                    str(out),
                    "--device",
                    "cpu",
                ],
                log,
                env,
            )
            rate = max(wall - startup, 0.0) / pixels
            mib = out.stat().st_size / 2**20
            print(
                f"| {size}² | {pixels / 1e6:.1f} M | {wall:.1f} | {rss / 2**30:.2f} GiB | {mib:.1f} | measured |",
                flush=True,
            )
            if not args.keep:
                out.unlink()
    print(f"load average (1 min) at start {load_start:.2f}, at end {os.getloadavg()[0]:.2f} (other processes)")


if __name__ == "__main__":
    main()
