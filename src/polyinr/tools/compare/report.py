"""Writing a comparison's report: ``report.md`` (read by people) and ``report.json`` (every cell, for tools)."""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

import torch

from polyinr.atomic import atomic_write_json
from polyinr.metrics import metric_goal
from polyinr.tools.compare.cell import Cell
from polyinr.tools.compare.reading import reading_the_table
from polyinr.tools.compare.settings import CPU, CompareSettings, describe_budget
from polyinr.tools.compare.table import markdown_table

# ------------------------------------------------------------------------------------------------ the report

COLUMN_TITLES = {
    "resolution": "resolution",
    "parameters": "parameters",
    "macs_per_pixel": "multiply-adds / pixel",
    "train_speed": "training speed",
    "trained_kimg": "trained",
    "training_time": "training time",
    "render_1x": "rendering, 1× density",
    "render_4x": "rendering, 4× density (4× per side)",
    "big_render_memory": "peak memory of a {big}² render",
    "sample_sheet": "sample sheet",
}


def _environment(device: str) -> dict[str, Any]:
    return {
        "torch": torch.__version__,
        "device": device,
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "cpus": os.cpu_count(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def _lower_is_better(metrics: Sequence[str], name: str) -> bool | None:
    """Whether a lower value of table entry ``name`` is better, for the metrics of the comparison (None: neither,
    or not a metric)."""
    goal = metric_goal(name) if name in metrics else None
    return None if goal is None or goal[0] != name else goal[1]


def _seeds_sentence(seeds: Sequence[int]) -> str:
    """What the reading's numbers are: one run's, or the mean of several seeds' runs."""
    if len(seeds) == 1:
        return (
            f"One training run per model (seed {seeds[0]}): a lead within run-to-run noise may not hold on another "
            "seed."
        )
    return (
        f"Each number of a measurement that differs between runs is the mean of {len(seeds)} training runs per model "
        f"(seeds {', '.join(map(str, seeds))}); the ranges are their lowest and highest values."
    )


def _training_line(model: str, training: dict[str, Any]) -> str:
    """The report's line on ``model``'s training runs (or why it did not train)."""
    if "refused" in training:
        return f"- {model}: not trained: {training['refused']}"
    runs = training["runs"]
    kind = f"{training['recipe']} recipe, {training['preset']} preset"
    if len(runs) == 1:
        (run,) = runs.values()
        return f"- {model}: `{run['run_dir']}` ({kind}, {run['kimg']:g} kimg)"
    each = "; ".join(f"seed {seed}: `{run['run_dir']}` ({run['kimg']:g} kimg)" for seed, run in runs.items())
    return f"- {model} ({kind}): {each}"


def write_report(
    outdir: Path,
    settings: CompareSettings,
    rows: dict[str, dict[str, Cell]],
    command: str | None,
    training: dict[str, dict[str, Any]],
    plots: list[Path],
) -> tuple[Path, Path]:
    """``report.md`` (the table with its footnotes, a paragraph reading it, the runs, plots and sample sheets) and
    ``report.json`` (every cell with its unit and note)."""
    environment = _environment(settings.device)
    names: list[str] = []
    for cells in rows.values():
        names += [n for n in cells if n not in names]
    lines = ["# Generator comparison", ""]
    if command:
        lines += ["```", command, "```", ""]
    recipe = (
        "each model's own recipe"
        if settings.native_recipes
        else f"the shared recipe `{settings.recipe or ('cpu' if settings.preset == CPU else 'stylegan3')}`"
    )
    lines += [
        f"Data `{settings.data}`, {settings.preset} presets, {recipe}; {describe_budget(settings)}; "
        f"device {settings.device}, torch {environment['torch']}, load average "
        f"{', '.join(map(str, environment['load_average']))} at the end ({environment['cpus']} CPUs).",
        "",
    ]
    titles = {name: title.format(big=settings.big_render) for name, title in COLUMN_TITLES.items()}
    lines += markdown_table(rows, names, titles)
    reading = reading_the_table(rows, names, partial(_lower_is_better, settings.metrics), titles)
    if reading or len(settings.train_seeds) > 1:
        lines += ["", "Reading the table: " + " ".join([*reading, _seeds_sentence(settings.train_seeds)])]
    lines += ["", "Training runs:", ""]
    lines += [_training_line(model, runs) for model, runs in training.items()]
    lines += ["", "Plots: " + ", ".join(f"![{p.stem}]({p.name})" for p in plots) if plots else "Plots: none", ""]
    if any(p.name == "samples.png" for p in plots):
        lines += [
            f"Samples: one block per model (seeds {', '.join(map(str, settings.seeds))}, class seed mod classes "
            f"where conditional); in each block the native frame, then 4× denser and 2× wider where the model "
            f"can render them (its own sheet: samples-MODEL.png)."
        ]
    md = outdir / "report.md"
    md.write_text("\n".join(lines) + "\n", encoding="utf-8")
    js = outdir / "report.json"
    atomic_write_json(
        js,
        {
            "command": command,
            "settings": settings.to_json(),
            "environment": environment,
            "training": training,
            "plots": [p.name for p in plots],
            "models": {m: {n: dataclasses.asdict(c) for n, c in cells.items()} for m, cells in rows.items()},
        },
    )
    return md, js
