"""The comparison's plots: the curve metric against training images and time, and rendering speed against quality.

Figures are drawn with matplotlib's object interface (:class:`~matplotlib.figure.Figure`), which needs no
backend or global pyplot state.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import NamedTuple

from matplotlib.figure import Figure

from polyinr.tools.compare.cell import Cell


class CurvePoint(NamedTuple):
    kimg: float  # training images shown at the snapshot
    minutes: float | None  # training time at the snapshot (snapshots and their metrics aside); None: not recorded
    value: float  # the metric


def curve_points(run_dir: Path, metric: str) -> list[CurvePoint]:
    """``metric`` at each snapshot of the run (``metric-<name>.jsonl``), with the training time the run had spent
    by then (``Progress/train_seconds`` in ``stats.jsonl``)."""
    path = run_dir / f"metric-{metric}.jsonl"
    if not path.is_file():
        return []
    seconds = _training_seconds(run_dir)
    points = []
    for line in path.read_text(encoding="utf-8").splitlines():
        entry = json.loads(line)
        value = entry["results"].get(metric)
        if value is not None:
            kimg = float(entry["snapshot"])
            spent = seconds.get(round(kimg, 3))
            points.append(CurvePoint(kimg, None if spent is None else spent / 60, float(value)))
    return sorted(points)


def _training_seconds(run_dir: Path) -> dict[float, float]:
    """``{kimg: training seconds}`` at each tick of the run that recorded them."""
    seconds = {}
    for line in (run_dir / "stats.jsonl").read_text(encoding="utf-8").splitlines():
        try:
            tick = json.loads(line)
        except ValueError:
            continue
        if "Progress/train_seconds" in tick:
            seconds[round(tick["kimg"], 3)] = tick["Progress/train_seconds"]
    return seconds


def curve_scale(values: list[float]) -> str:
    """``"log"`` for a curve whose values are all positive and span more than a factor of 10 (an FID falling from
    hundreds to single figures: on a linear axis the end of training, where models differ, is a flat line), else
    ``"linear"``."""
    finite = [v for v in values if math.isfinite(v)]
    if finite and min(finite) > 0 and max(finite) / min(finite) > 10:
        return "log"
    return "linear"


def write_plots(
    outdir: Path,
    curves: dict[str, dict[int, list[CurvePoint]]],
    metric: str | None,
    rows: dict[str, dict[str, Cell]],
) -> list[Path]:
    """``curve.png`` (the curve metric of each model's run, one line per training seed in the model's colour,
    against training images and against training time) and ``speed_quality.png`` (rendering megapixels/s at 1×
    against the curve metric); returns the files written."""
    written = []
    if metric is None:
        return written
    fig = Figure(figsize=(11, 4))
    by_kimg, by_time = fig.subplots(1, 2, sharey=True)
    for index, (model, by_seed) in enumerate(curves.items()):
        style = {"color": f"C{index % 10}", "marker": "o", "markersize": 3}
        for n, points in enumerate(by_seed.values()):
            label = model if n == 0 else None  # one legend entry a model, whatever its seeds
            if points:
                by_kimg.plot([p.kimg for p in points], [p.value for p in points], label=label, **style)
            timed = [p for p in points if p.minutes is not None]
            if timed:
                by_time.plot([p.minutes for p in timed], [p.value for p in timed], label=label, **style)
    values = [p.value for by_seed in curves.values() for points in by_seed.values() for p in points]
    for ax in (by_kimg, by_time):
        ax.set_yscale(curve_scale(values))
    by_kimg.set_xlabel("training images shown (kimg)")
    by_time.set_xlabel("training time (minutes; snapshots and their metrics aside)")
    by_kimg.set_ylabel(metric)
    fig.suptitle(f"{metric} over training")
    for ax in (by_kimg, by_time):
        if ax.lines:
            ax.legend()
    fig.tight_layout()
    fig.savefig(outdir / "curve.png", dpi=100)
    written.append(outdir / "curve.png")
    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    for model, cells in rows.items():
        speed, quality = cells.get("render_1x"), cells.get(metric)
        if speed and quality and isinstance(speed.value, float) and isinstance(quality.value, float):
            ax.scatter([speed.value], [quality.value])
            ax.annotate(model, (speed.value, quality.value))
    ax.set_xscale("log")
    ax.set_xlabel("rendering speed at native density (megapixels/s)")
    ax.set_ylabel(f"{metric} (the table's value)")
    ax.set_title("speed vs quality")
    fig.tight_layout()
    fig.savefig(outdir / "speed_quality.png", dpi=100)
    written.append(outdir / "speed_quality.png")
    return written
