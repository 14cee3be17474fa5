"""One command that proves the GPU path and records its figures (issue 17): run it on a CUDA machine.

    python benchmarks/device_check.py [--out DIR] [--budget 330]

Sections, each printed as it finishes (so a cut-off run still reports) and saved after each to
``DIR/device_check.json`` and ``DIR/device_check.md`` (DIR: ``--out``, else ``$OUT``, else
``benchmarks/device_check_out/``):

1. the suite's ``cuda``-marked tests (``pytest -m cuda``, in a subprocess);
2. the device's dense matmul peak, measured here: a square ``torch.mm`` in fp32, TF32 and bf16;
3. Poly-INR synthesis at the authors' size (n 1024, 10 levels, 256², batch 8): images/s and the fraction of
   the peaks beside the authors'-style reference implementation (``bench_synthesis.reference_synthesis``), in
   the same process, interleaved rounds; fp32, TF32, bf16 autocast and the fused bf16 level;
4. ``torchrun --nproc_per_node=1`` (the NCCL path) for a few steps, then an exact-resume check on CUDA;
5. a 16384² tiled render (the ``ffhq`` preset, n 512) to host memory: time and peak GPU memory;
6. every registered generator's paper presets rendering 256² images: images/s (too big presets are skipped
   with the reason);
7. training steps of the ``imagenet`` recipe (projected D with random backbones) at 32² and 64², fp32 / bf16,
   compile off / on: images/s, peak GPU memory and the share of step time spent waiting for data, from the
   run's ``stats.jsonl`` (first tick left out: it holds the warm-up and compilation).

Sections left when the time budget is spent are recorded as skipped. On a machine without CUDA it says so in
one line and exits 0.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(Path(__file__).resolve().parent)]

from bench_synthesis import reference_synthesis, relative_error  # noqa: E402
from polyinr.grid import Grid  # noqa: E402
from polyinr.models.generator import CANVAS, CONTINUOUS  # noqa: E402
from polyinr.models.poly_inr import fused_supported  # noqa: E402
from polyinr.models.registry import create, get_entry, list_models, resolve_config, state_bytes  # noqa: E402

MAX_PRESET_BYTES = 4 << 30  # presets with larger weights are skipped in section 7
ENV = {
    **os.environ,
    "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""),
    "PYTHONUNBUFFERED": "1",
}


def say(line: str) -> None:
    print(line, flush=True)


@contextlib.contextmanager
def tf32(enabled: bool) -> Iterator[None]:
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = enabled
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def cuda_seconds(fn: Callable[[], object]) -> float:
    torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    torch.cuda.synchronize()
    return time.perf_counter() - start


class Report:
    """Results by section, written as JSON and a Markdown table after every section."""

    def __init__(self, out: Path, budget: float) -> None:
        self.out, self.budget, self.start = out, budget, time.perf_counter()
        self.data: dict[str, Any] = {
            "device": torch.cuda.get_device_name(),
            "capability": ".".join(map(str, torch.cuda.get_device_capability())),
            "torch": torch.__version__,
            "cuda": torch.version.cuda,
            "load_average": os.getloadavg(),
            "sections": {},
        }
        self.rows: list[tuple[str, str, str]] = []  # (section, item, value)

    def left(self) -> float:
        return self.budget - (time.perf_counter() - self.start)

    def run(self, name: str, needs: float, fn: Callable[[dict[str, Any]], object]) -> None:
        """Run the section ``fn(result)`` if ``needs`` seconds are left; an error is recorded and the next
        section still runs."""
        result: dict[str, Any] = {}
        self.data["sections"][name] = result
        if self.left() < needs:
            result["skipped"] = f"time budget: {self.left():.0f} s left, the section needs about {needs:.0f} s"
            self.row(name, "skipped", result["skipped"])
            self.save()
            return
        say(f"== {name} ({self.left():.0f} s of the budget left)")
        begun = time.perf_counter()
        try:
            fn(result)
        except Exception as e:  # a failing section is a result too
            result["error"] = f"{type(e).__name__}: {e}"
            result["traceback"] = traceback.format_exc()
            self.row(name, "ERROR", result["error"].splitlines()[0][:200])
        result["seconds"] = round(time.perf_counter() - begun, 1)
        torch.cuda.empty_cache()
        self.save()

    def row(self, section: str, item: str, value: str) -> None:
        self.rows.append((section, item, value))
        say(f"   {item}: {value}")

    def save(self) -> None:
        self.data["total_seconds"] = round(time.perf_counter() - self.start, 1)
        (self.out / "device_check.json").write_text(json.dumps(self.data, indent=1, default=str), encoding="utf-8")
        lines = [
            f"# polyinr device check on {self.data['device']}",
            "",
            f"torch {self.data['torch']}, CUDA {self.data['cuda']}, compute capability "
            f"{self.data['capability']}, load average {self.data['load_average'][0]:.2f}, "
            f"{self.data['total_seconds']} s",
            "",
            "| section | item | value |",
            "|---|---|---|",
        ]
        lines += [f"| {s} | {i} | {v} |" for s, i, v in self.rows]
        (self.out / "device_check.md").write_text("\n".join(lines) + "\n", encoding="utf-8")


# ---------------------------------------------------------------------------------------------- sections


def cuda_tests(report: Report, result: dict[str, Any]) -> None:
    cmd = [sys.executable, "-m", "pytest", "-q", "-m", "cuda", "-p", "no:cacheprovider", "tests"]
    proc = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=max(30, report.left()))
    (report.out / "cuda_tests.log").write_text(proc.stdout + proc.stderr, encoding="utf-8")
    summary = (proc.stdout.strip().splitlines() or ["no output"])[-1]
    result.update(returncode=proc.returncode, summary=summary)
    report.row("cuda tests", "pytest -m cuda", f"{'pass' if proc.returncode == 0 else 'FAIL'}: {summary}")


def matmul_peaks(report: Report, result: dict[str, Any], size: int = 8192, rounds: int = 5) -> dict[str, float]:
    peaks = {}
    for name, dtype, allow_tf32 in (
        ("fp32", torch.float32, False),
        ("tf32", torch.float32, True),
        ("bf16", torch.bfloat16, False),
    ):
        a = torch.randn(size, size, device="cuda", dtype=dtype)
        b = torch.randn(size, size, device="cuda", dtype=dtype)
        with tf32(allow_tf32):
            torch.mm(a, b)
            best = min(cuda_seconds(lambda a=a, b=b: torch.mm(a, b)) for _ in range(rounds))
        peaks[name] = 2 * size**3 / best
        report.row("matmul peak", f"{name} {size}² mm", f"{peaks[name] / 1e12:.1f} TFLOP/s")
        del a, b
    result["tflops"] = {k: round(v / 1e12, 2) for k, v in peaks.items()}
    return peaks


def synthesis(
    report: Report, result: dict[str, Any], peaks: dict[str, float], B: int = 8, R: int = 256, rounds: int = 3
) -> None:
    torch.manual_seed(0)
    G = create("poly-inr", "imagenet").eval().requires_grad_(False).cuda()  # n 1024, 10 levels
    with torch.no_grad():
        ws = G.mapping(torch.randn(B, G.z_dim, device="cuda"), torch.randint(0, G.num_classes, (B,), device="cuda"))
    grid = Grid.frame(R)
    flops = 2 * G.macs_per_pixel() * R * R * B

    def bf16() -> torch.Tensor:
        with torch.autocast("cuda", dtype=torch.bfloat16):
            return G.synthesize(ws, grid)

    cases: dict[str, tuple[Callable[[], torch.Tensor], bool, str]] = {
        "reference fp32 (authors' way)": (lambda: reference_synthesis(G.synthesis, ws, R), False, "fp32"),
        "polyinr fp32": (lambda: G.synthesize(ws, grid), False, "fp32"),
        "polyinr TF32": (lambda: G.synthesize(ws, grid), True, "tf32"),
        "polyinr bf16 autocast": (bf16, False, "bf16"),
    }
    if fused_supported(torch.device("cuda")):
        cases["polyinr fused bf16 level"] = (lambda: G.synthesize_fused(ws, grid), False, "bf16")
    else:
        report.row("synthesis 256²", "fused level", "not supported here (needs compute capability ≥ 8.0 + Triton)")
    outputs, times = {}, {name: [] for name in cases}
    with torch.no_grad():
        for name, (fn, allow_tf32, _) in cases.items():  # warm-up (compiles the fused level)
            with tf32(allow_tf32):
                outputs[name] = fn().float()
        for _ in range(rounds):
            for name, (fn, allow_tf32, _) in cases.items():
                with tf32(allow_tf32):
                    times[name].append(cuda_seconds(fn))
    exact = outputs["polyinr fp32"]
    reference = min(times["reference fp32 (authors' way)"])
    result.update(batch=B, resolution=R, gflop_per_batch=round(flops / 1e9, 1), cases={})
    for name, (_, _, precision) in cases.items():
        best = min(times[name])
        entry = {
            "best_s": round(best, 4),
            "median_s": round(statistics.median(times[name]), 4),
            "images_per_s": round(B / best, 2),
            "tflops": round(flops / best / 1e12, 2),
            "frac_of_bf16_peak": round(flops / best / peaks["bf16"], 3),
            f"frac_of_{precision}_peak": round(flops / best / peaks[precision], 3),
            "x_reference": round(reference / best, 2),
            "rel_error_vs_fp32": float(f"{relative_error(outputs[name], exact):.2e}"),
        }
        result["cases"][name] = entry
        own = 100 * entry[f"frac_of_{precision}_peak"]
        report.row(
            f"synthesis {R}² n1024 b{B}",
            name,
            f"{entry['images_per_s']} img/s, {entry['tflops']} TFLOP/s = "
            f"{100 * entry['frac_of_bf16_peak']:.0f} % of bf16 peak ({own:.0f} % of {precision}), "
            f"{entry['x_reference']}x reference, rel. error {entry['rel_error_vs_fp32']:.1e}",
        )


def read_stats(run_parent: Path) -> list[dict[str, float]]:
    files = list(run_parent.glob("*/stats.jsonl"))
    if not files:
        return []
    return [json.loads(line) for line in files[0].read_text(encoding="utf-8").splitlines() if line.strip()]


def train_command(outdir: Path, *extra: str, launcher: tuple[str, ...] = ()) -> list[str]:
    return [
        *(launcher or (sys.executable,)),
        "-m",
        "polyinr",
        "train",
        "--outdir",
        str(outdir),
        "--metrics",
        "none",
        "--device",
        "cuda",
        *extra,
    ]


def training(report: Report, result: dict[str, Any], work: Path) -> None:
    runs = [
        (R, label, flags, needs)
        for label, flags, needs in (
            ("fp32", (), 40),
            ("bf16", ("--bf16",), 40),
            ("bf16 + compile", ("--bf16", "--compile"), 90),
        )
        for R in (32, 64)
    ]  # compiled runs last
    for R, label, flags, needs in runs:
        key = f"{R}² {label}"
        if report.left() < needs:
            result[key] = {"skipped": "time budget"}
            report.row("train imagenet recipe", key, "skipped (time budget)")
            continue
        outdir = work / f"train{R}-{label.replace(' + ', '-')}"
        cmd = train_command(
            outdir,
            "--recipe",
            "imagenet",
            "--data",
            "builtin:shapes",
            "--cond",
            "true",
            "--resolution",
            str(R),
            "--batch",
            "32",
            "--kimg",
            "0.64",
            "--tick",
            "0.128",
            "--snap",
            "100",
            "--features-pretrained",
            "false",
            "--pretrained-classes",
            "false",
            "--workers",
            "2",
            *flags,
        )
        begun = time.perf_counter()
        try:
            proc = subprocess.run(
                cmd, cwd=work, env=ENV, capture_output=True, text=True, timeout=max(30, report.left())
            )
        except subprocess.TimeoutExpired:
            result[key] = {"skipped": "time budget ran out during the run"}
            report.row("train imagenet recipe", key, "stopped: the time budget ran out during the run")
            continue
        (report.out / f"train{R}-{label.replace(' + ', '-')}.log").write_text(proc.stdout + proc.stderr)
        stats = read_stats(outdir)[1:]  # the first tick holds the warm-up / compilation
        if proc.returncode != 0 or not stats:
            tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            result[key] = {"error": tail, "returncode": proc.returncode}
            report.row("train imagenet recipe", key, f"ERROR: {tail[:200]}")
            continue
        entry = {
            "images_per_s": round(statistics.median(s["Timing/images_per_sec"] for s in stats), 1),
            "data_wait_frac": round(max(s.get("Timing/data_wait_frac", float("nan")) for s in stats), 4),
            "peak_gpu_mem_gib": round(max(s.get("Resources/peak_gpu_mem_gib", float("nan")) for s in stats), 2),
            "wall_s": round(time.perf_counter() - begun, 1),
        }
        result[key] = entry
        report.row(
            "train imagenet recipe (batch 32, projected D, random backbones)",
            key,
            f"{entry['images_per_s']} img/s, data wait {100 * entry['data_wait_frac']:.1f} % of step time, "
            f"peak {entry['peak_gpu_mem_gib']} GiB, run {entry['wall_s']} s",
        )


def torchrun_and_resume(report: Report, result: dict[str, Any], work: Path) -> None:
    from safetensors.torch import load_file

    from polyinr.checkpoint import STATE_WEIGHTS, latest_snapshot

    outdir = work / "torchrun"
    launcher = (sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=1")
    args = (
        "--data",
        "builtin:digits",
        "--cond",
        "true",
        "--resolution",
        "16",
        "--batch",
        "16",
        "--kimg",
        "0.128",
        "--tick",
        "0.032",
        "--snap",
        "1",
        "--keep",
        "5",
        "--workers",
        "2",
        "--seed",
        "1",
    )
    env = {**ENV, "CUBLAS_WORKSPACE_CONFIG": ":4096:8"}
    runs = []
    for attempt in ("first", "resumed"):
        proc = subprocess.run(
            train_command(outdir, *args, launcher=launcher),
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=max(30, report.left()),
        )
        (report.out / f"torchrun-{attempt}.log").write_text(proc.stdout + proc.stderr)
        if proc.returncode != 0:
            tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            result[attempt] = {"error": tail}
            report.row("torchrun NCCL", attempt, f"ERROR: {tail[:200]}")
            return
        run_dir = next(p for p in outdir.iterdir() if p.is_dir())
        final = latest_snapshot(run_dir)
        runs.append(load_file(str(final / STATE_WEIGHTS)))
        if attempt == "first":
            report.row("torchrun NCCL", "torchrun --nproc_per_node=1, 8 steps", f"ok, {final.name}")
            shutil.rmtree(final)  # resume from the snapshot before the last and train the last tick again
            (run_dir / "checkpoints" / "latest").unlink(missing_ok=True)
    first, resumed = runs
    differing = [k for k in first if not torch.equal(first[k], resumed[k])]
    max_diff = max((float((first[k].float() - resumed[k].float()).abs().max()) for k in differing), default=0.0)
    result.update(bit_identical=not differing, tensors_differing=len(differing), max_abs_diff=max_diff)
    report.row(
        "torchrun NCCL",
        "exact resume on CUDA",
        "bit-identical" if not differing else f"{len(differing)} tensors differ, max |diff| {max_diff:.2e}",
    )


def tiled_render(report: Report, result: dict[str, Any], size: int = 16384, tile: int = 2048) -> None:
    from polyinr.tools.render import to_uint8

    torch.manual_seed(0)
    G = create("poly-inr", "ffhq").eval().requires_grad_(False).cuda()  # n 512, 10 levels
    with torch.no_grad():
        ws = G.mapping(torch.randn(1, G.z_dim, device="cuda"))
    grid = Grid.window(0.0, 0.0, 1.0, 1.0, size, size)
    canvas = torch.empty(size, size, 3, dtype=torch.uint8).pin_memory()
    torch.cuda.reset_peak_memory_stats()
    begun = time.perf_counter()
    with torch.no_grad(), tf32(True):
        for r in range(0, size, tile):
            for c in range(0, size, tile):
                part = grid.crop((r, r + tile), (c, c + tile))
                canvas[r : r + tile, c : c + tile] = torch.as_tensor(to_uint8(G.synthesize(ws, part))[0])
    torch.cuda.synchronize()
    seconds = time.perf_counter() - begun
    peak = torch.cuda.max_memory_allocated() / 2**30
    result.update(
        size=size,
        tile=tile,
        preset="ffhq (n 512)",
        tf32=True,
        seconds=round(seconds, 1),
        peak_gpu_mem_gib=round(peak, 2),
    )
    report.row(
        "tiled render",
        f"{size}² poly-inr ffhq, {tile}² tiles, TF32, to host memory",
        f"{seconds:.1f} s, peak GPU memory {peak:.2f} GiB",
    )


def other_generators(report: Report, result: dict[str, Any], B: int = 8, R: int = 256, rounds: int = 3) -> None:
    for name in list_models():
        entry = get_entry(name)
        for preset in entry.presets:
            key = f"{name} {preset}"
            if preset == "cpu":
                continue
            if report.left() < 20:
                result[key] = {"skipped": "time budget"}
                report.row("synthesis 256² b8", key, "skipped (time budget)")
                continue
            try:
                cfg = resolve_config(name, preset)
                size = state_bytes(entry.generator_cls, cfg)
                if size > MAX_PRESET_BYTES:
                    raise ValueError(f"weights of {size / 2**30:.1f} GiB")
                continuous = entry.generator_cls.grid_support in (CONTINUOUS, CANVAS)  # any R×R window
                if cfg.img_resolution > R and not continuous:
                    raise ValueError(f"renders only its native {cfg.img_resolution}² frame")
                torch.manual_seed(0)
                G = create(name, preset).eval().requires_grad_(False)
                if G.img_resolution < R and not continuous:  # a progressively grown model: grow it to R
                    G = G.next_stage(R) or G
                    if G.img_resolution != R:
                        raise ValueError(f"renders {G.img_resolution}² and does not grow to {R}²")
                G = G.eval().requires_grad_(False).cuda()
                if G.grid_support is CANVAS:  # R×R pixels of the infinite canvas, on the model's lattice
                    step = 1.0 / (G.img_resolution - 1)
                    grid = Grid.window(0.0, 0.0, (R - 1) * step, (R - 1) * step, R, R)
                else:
                    grid = Grid.frame(R) if G.grid_support is CONTINUOUS else None
                with torch.no_grad(), tf32(False):
                    c = torch.randint(0, max(G.num_classes, 1), (B,), device="cuda") if G.num_classes else None
                    ws = G.mapping(torch.randn(B, G.z_dim, device="cuda"), c)
                    G.synthesize(ws, grid)
                    best = min(
                        cuda_seconds(lambda G=G, ws=ws, grid=grid: G.synthesize(ws, grid)) for _ in range(rounds)
                    )
                result[key] = {"images_per_s": round(B / best, 2), "resolution": R, "weights_mib": size >> 20}
                report.row("synthesis 256² b8 fp32", key, f"{B / best:.2f} img/s")
                del G
                torch.cuda.empty_cache()
            except Exception as e:  # a preset that cannot run here is skipped with the reason
                reason = " ".join(str(e).split())[:200]
                result[key] = {"skipped": reason}
                report.row("synthesis 256² b8 fp32", key, f"skipped: {reason}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default_out = Path(os.environ["OUT"]) if os.environ.get("OUT") else ROOT / "benchmarks" / "device_check_out"
    parser.add_argument("--out", type=Path, default=default_out, help="where the JSON, Markdown and logs go")
    parser.add_argument("--budget", type=float, default=330.0, help="seconds; sections beyond it are skipped")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        say("device check: no CUDA device on this machine; nothing to check (run it on a GPU machine)")
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    report = Report(args.out, args.budget)
    say(
        f"device check on {report.data['device']} (torch {torch.__version__}, CUDA {torch.version.cuda}), "
        f"load average {report.data['load_average'][0]:.2f}; results in {args.out}"
    )
    with tempfile.TemporaryDirectory(prefix="polyinr-device-check-") as tmp:
        work = Path(tmp)
        peaks: dict[str, float] = {}
        report.run("cuda tests", 30, lambda result: cuda_tests(report, result))
        report.run("matmul peak", 10, lambda result: peaks.update(matmul_peaks(report, result)))
        report.run("synthesis", 40, lambda result: synthesis(report, result, peaks))
        report.run("torchrun", 40, lambda result: torchrun_and_resume(report, result, work))
        report.run("tiled render", 30, lambda result: tiled_render(report, result))
        report.run("other generators", 20, lambda result: other_generators(report, result))
        report.run("training", 40, lambda result: training(report, result, work))
    report.save()
    say(f"done in {report.data['total_seconds']} s: {args.out / 'device_check.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
