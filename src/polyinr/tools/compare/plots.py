"""The comparison's plots: the curve metric over training, and rendering speed against quality.

Figures are drawn with matplotlib's object interface (:class:`~matplotlib.figure.Figure`), which needs no
backend or global pyplot state.
"""

from __future__ import annotations

import json
from pathlib import Path

from matplotlib.figure import Figure

from polyinr.tools.compare.cell import Cell


def curve_points(run_dir: Path, metric: str) -> list[tuple[float, float]]:
    """``(kimg, value)`` of ``metric`` at each snapshot of the run (``metric-<name>.jsonl``)."""
    path = run_dir / f"metric-{metric}.jsonl"
    points = []
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            entry = json.loads(line)
            value = entry["results"].get(metric)
            if value is not None:
                points.append((float(entry["snapshot"]), float(value)))
    return sorted(points)


def write_plots(outdir: Path, curves: dict[str, list[tuple[float, float]]], metric: str | None,
                rows: dict[str, dict[str, Cell]]) -> list[Path]:  # fmt: skip
    """``curve.png`` (the curve metric over training images per model) and ``speed_quality.png`` (rendering
    megapixels/s at 1× against the curve metric); returns the files written."""
    written = []
    if metric is None:
        return written
    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    for model, points in curves.items():
        if points:
            ax.plot([k for k, _ in points], [v for _, v in points], marker="o", label=model)
    ax.set_xlabel("training images shown (kimg)")
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} over training")
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
    ax.set_ylabel(f"{metric} (last snapshot)")
    ax.set_title("speed vs quality")
    fig.tight_layout()
    fig.savefig(outdir / "speed_quality.png", dpi=100)
    written.append(outdir / "speed_quality.png")
    return written
