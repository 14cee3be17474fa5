"""Training throughput on a shared CPU: quiet vs one competing busy process, 1 and 2 torch threads, two OpenMP
wait policies (issue 17).

The work is a training step of the ``cpu`` recipe's networks (Poly-INR ``cpu`` preset, 16², the residual D,
the non-saturating loss with R1, batch 8): D and G phases, Adam. The competitor is a subprocess spinning in a
Python loop (one busy core). OpenMP reads its wait policy when it starts, so each policy is measured in its own
child process (``OMP_WAIT_POLICY`` unset = the runtime's default, or ``PASSIVE``); inside a child, quiet and
contended measurements alternate round by round for each thread count, so load from other processes hits them
alike. Reported: best and median steps/s, and contended / quiet ratios of the medians.

    python benchmarks/bench_contention.py [--rounds 3] [--seconds 4]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

SPIN = "while True: pass"
POLICIES = ("default", "PASSIVE")


def measure(rounds: int, seconds: float) -> dict[str, list[float]]:
    """In this process: steps/s for each (threads, quiet|busy), ``rounds`` interleaved rounds."""
    import torch

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from polyinr.discriminators import create_discriminator
    from polyinr.models.registry import create
    from polyinr.training.losses import NonSaturatingConfig, NonSaturatingLoss

    torch.manual_seed(0)
    G = create("poly-inr", "cpu", num_classes=10).train()
    R = G.img_resolution
    D = create_discriminator("residual", R, 10)
    loss = NonSaturatingLoss(G, D, NonSaturatingConfig(gamma=1.0))
    opt = {"G": torch.optim.Adam(G.parameters(), lr=1e-4), "D": torch.optim.Adam(D.parameters(), lr=1e-4)}
    B = 8
    real, real_c = torch.rand(B, 3, R, R) * 2 - 1, torch.randint(0, 10, (B,))
    z, gen_c = torch.randn(B, G.z_dim), torch.randint(0, 10, (B,))

    def step() -> None:
        for phase in loss.phases():
            net = opt[phase.network]
            net.zero_grad(set_to_none=True)
            loss.accumulate_gradients(phase.name, real, real_c, z, gen_c, gain=1.0, cur_nimg=0)
            net.step()

    def rate() -> float:
        steps, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            step()
            steps += 1
        return steps / (time.perf_counter() - start)

    times: dict[str, list[float]] = {}
    for threads in (1, 2):
        torch.set_num_threads(threads)
        step()  # warm-up
    for _ in range(rounds):
        for threads in (1, 2):
            torch.set_num_threads(threads)
            for busy in (False, True):
                spinner = subprocess.Popen([sys.executable, "-c", SPIN]) if busy else None
                try:
                    if spinner is not None:
                        time.sleep(0.2)  # let it start spinning
                    times.setdefault(f"{threads} {'busy' if busy else 'quiet'}", []).append(rate())
                finally:
                    if spinner is not None:
                        spinner.kill()
                        spinner.wait()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=4.0, help="length of one measurement")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.rounds, args.seconds)))
        return
    print(f"{os.cpu_count()} CPUs; load average at start {os.getloadavg()}", flush=True)
    results = {}
    for policy in POLICIES:
        env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS")}
        if policy != "default":
            env["OMP_WAIT_POLICY"] = policy
        cmd = [sys.executable, __file__, "--child", "--rounds", str(args.rounds), "--seconds", str(args.seconds)]
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
        results[policy] = json.loads(out.strip().splitlines()[-1])
        print(f"OMP_WAIT_POLICY={policy}: measured; load average {os.getloadavg()}", flush=True)
    print()
    print(
        "| OMP_WAIT_POLICY | torch threads | quiet steps/s (best / median) | busy steps/s (best / median) | "
        "busy / quiet (medians) |"
    )
    print("|---|---|---|---|---|")
    for policy, times in results.items():
        for threads in (1, 2):
            quiet, busy = times[f"{threads} quiet"], times[f"{threads} busy"]
            q, b = statistics.median(quiet), statistics.median(busy)
            print(f"| {policy} | {threads} | {max(quiet):.2f} / {q:.2f} | {max(busy):.2f} / {b:.2f} | {b / q:.0%} |")
    print(f"\nload average at end {os.getloadavg()} (other processes on the machine)")


if __name__ == "__main__":
    main()
