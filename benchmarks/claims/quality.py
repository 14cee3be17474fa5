"""Poly-INR's claim: as good as convolutional generators, with far fewer parameters and no convolution.

The evidence is the published comparisons in ``benchmarks/compare/``: each is one ``polyinr compare`` command
(listed below), every model trained with the shared ``cpu`` recipe until its curve metric flattens or its budget
runs out, and measured at its best snapshot. This script gathers their reports into one table and one figure:
for each dataset, each model's FID in that dataset's offline feature space (the range over training seeds where
several were run) and, on the labelled digits, the share of samples recognised as their class; with each model's
parameters and multiply-adds per pixel. Writes ``table.md``, ``results.json`` and ``figure.png``.

    python benchmarks/claims/quality.py --out benchmarks/claims/quality

``--run RUNS`` first trains and measures the comparisons (hours of a core each; every one resumes where it was
stopped) into ``RUNS/``, and copies each report, its plots and sample sheets into ``benchmarks/compare/``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from claimlib import machine, markdown_table
from matplotlib.figure import Figure

PUBLISHED = Path(__file__).resolve().parent.parent / "compare"
MODELS = ("poly-inr", "inr-gan", "stylegan3-t", "stylegan3-r", "stylegan-xl", "infinitygan")
BUDGET = ("--kimg", "120", "--minutes", "90", "--snap-kimg", "4")  # the plateau rule aside (Comparison.plateau)
DIGITS_REST = (
    "pr_digits,cas_digits,scaleinv_fid0.5k_S2_digits,scaleinv_fid0.5k_S4_digits,eqt0.05k_int,eqt0.05k_frac,eqr0.05k"
)
DIGITS_METRICS = ("--metrics", f"fid_digits,{DIGITS_REST}")
DIGITS32_METRICS = ("--metrics", f"fid_digits,kid_digits,{DIGITS_REST}")  # the 32² comparison also measures KID
TEXTURES_METRICS = (
    "--metrics",
    "fid_textures,pr_textures,scaleinv_fid_S2_textures,scaleinv_fid_S4_textures,scaleinv_fid_S8_textures,"
    "eqt0.05k_int,eqt0.05k_frac,eqr0.05k",
)


@dataclasses.dataclass(frozen=True)
class Metric:
    name: str  # a report cell, e.g. "fid_digits"
    label: str  # its row in the table
    higher_is_better: bool = False
    percent: bool = False


@dataclasses.dataclass(frozen=True)
class Comparison:
    """One published ``polyinr compare`` run: its report lands in ``benchmarks/compare/<folder>/``; comparisons that
    share a ``dataset`` label are one row of the table (a seeds run adds training seeds to its models' cells)."""

    folder: str
    dataset: str
    runs: str  # the --outdir under RUNS (a seeds run shares its comparison's, so finished trainings are reused)
    models: tuple[str, ...]
    flags: tuple[str, ...]  # the rest of the command: data, budget, metrics
    metrics: tuple[Metric, ...]
    plateau: int | None = None  # stop a model when its last this many snapshots bring no more than 2 %
    train_seeds: tuple[int, ...] = (0,)

    @property
    def args(self) -> tuple[str, ...]:
        """The ``polyinr compare`` arguments, ``--outdir`` aside."""
        seeds = ("--train-seeds", ",".join(map(str, self.train_seeds))) if self.train_seeds != (0,) else ()
        rule = () if self.plateau is None else ("--until-plateau", "--plateau-snapshots", str(self.plateau))
        return ("--models", ",".join(self.models), *seeds, *self.flags, *rule)

    def second_seed(self, *models: str) -> Comparison:
        """The same comparison of ``models`` with training seeds 0 and 1, published in ``<folder>-seeds``."""
        return dataclasses.replace(self, folder=f"{self.folder}-seeds", models=models, train_seeds=(0, 1))

    def trained_on(
        self, folder: str, runs: str, how: str, *models: str, train_seeds: tuple[int, ...] = (0,)
    ) -> Comparison:
        """``models`` of this comparison trained on without the plateau rule, ``how`` far, in ``runs``: continued
        from copies of the comparison's runs (copy them there first, or they train from scratch), measured at their
        last snapshot, a row of their own."""
        dataset = f"{self.dataset}, {how} (its last snapshot)"
        return dataclasses.replace(
            self, folder=folder, dataset=dataset, runs=runs, models=models, plateau=None, train_seeds=train_seeds
        )


FID = {name: Metric(f"fid_{name}", "FID") for name in ("digits", "faces", "textures")}
CAS = Metric("cas_digits", "recognised as their class", higher_is_better=True, percent=True)
DIGITS16 = Comparison(
    "digits16",
    "digits 16²",
    "digits16",
    MODELS,
    ("--data", "builtin:digits", "--resolution", "16", "--cond", *BUDGET, *DIGITS_METRICS),
    (FID["digits"], CAS),
    plateau=5,
)
DIGITS32 = Comparison(  # InfinityGAN joins once trained (its run is under way in the same outdir)
    "digits32",
    "digits 32²",
    "digits32",
    tuple(m for m in MODELS if m != "infinitygan"),
    ("--data", "builtin:digits", "--resolution", "32", "--cond", *BUDGET, *DIGITS32_METRICS),
    (FID["digits"], CAS),
    plateau=5,
)
FACES16 = Comparison(
    "faces16",
    "faces 16²",
    "faces16",
    MODELS,
    ("--data", "builtin:faces", "--resolution", "16", *BUDGET),
    (FID["faces"],),
    plateau=10,
)
TEXTURES32 = Comparison(
    "textures32",
    "textures 32²",
    "textures32",
    ("poly-inr", "inr-gan", "infinitygan"),
    ("--data", "builtin:textures", "--resolution", "32", "--kimg", "60", "--snap-kimg", "4", *TEXTURES_METRICS),
    (FID["textures"],),
    plateau=10,
)
COMPARISONS = (
    DIGITS16,
    DIGITS16.second_seed("poly-inr", "inr-gan", "stylegan3-t"),
    DIGITS16.trained_on(
        "digits16-infinitygan-90min",
        "digits16-infinitygan-on",
        "trained on to 90 min without the plateau rule",
        "infinitygan",
    ),
    DIGITS32,
    DIGITS32.second_seed("poly-inr", "stylegan3-t"),
    DIGITS32.trained_on(
        "digits32-poly-inr-120kimg",
        "digits32-noplateau",
        "trained on to 120 kimg without the plateau rule",
        "poly-inr",
        train_seeds=(0, 1),
    ),
    FACES16,
    FACES16.second_seed("poly-inr", "inr-gan"),
    TEXTURES32,
    TEXTURES32.trained_on("textures32-poly-inr-60kimg", "textures32-noplateau", "trained on to 60 kimg", "poly-inr"),
)


def run(comparison: Comparison, runs: Path) -> None:
    """Train and measure ``comparison`` into ``runs`` (resuming), then publish its report and pictures."""
    outdir = runs / comparison.runs
    command = [sys.executable, "-m", "polyinr", "compare", *comparison.args, "--outdir", str(outdir)]
    print("$ polyinr", " ".join(command[3:]), flush=True)
    status = subprocess.run(command).returncode
    if status != 0:
        raise SystemExit(f"the {comparison.folder} comparison stopped (exit status {status}); run again to resume it")
    report = json.loads((outdir / "report.json").read_text())
    sheets = [cells["sample_sheet"]["value"] for cells in report["models"].values() if "sample_sheet" in cells]
    published = PUBLISHED / comparison.folder
    published.mkdir(parents=True, exist_ok=True)
    for name in ("report.md", "report.json", *report["plots"], *sheets):  # the outdir may hold other reports' sheets
        shutil.copy2(outdir / name, published / name)


def seed_values(cell: dict[str, Any]) -> list[float]:
    """A report cell's value for each training seed (one value when the model was trained once)."""
    if cell.get("per_seed"):
        return [float(v) for _, v in sorted(cell["per_seed"].items(), key=lambda kv: int(kv[0]))]
    return [] if cell.get("value") is None else [float(cell["value"])]


def report_path(comparison: Comparison) -> Path:
    return PUBLISHED / comparison.folder / "report.json"


def gather(comparisons: tuple[Comparison, ...]) -> dict[str, dict[str, Any]]:
    """Per dataset: its metrics, each model's values over its training seeds, and its cost (from its reports)."""
    rows: dict[str, dict[str, Any]] = {}
    for comparison in comparisons:
        report = json.loads(report_path(comparison).read_text())
        row = rows.setdefault(
            comparison.dataset, {"metrics": comparison.metrics, "values": {}, "cost": {}, "reports": []}
        )
        row["reports"].append(comparison.folder)
        for model, cells in report["models"].items():
            for metric in comparison.metrics:
                values = seed_values(cells.get(metric.name, {}))
                known = row["values"].setdefault(metric.name, {}).get(model, [])
                if len(values) > len(known):  # a seeds report holds the first seed's value and more
                    row["values"][metric.name][model] = values
            if "parameters" in cells:
                row["cost"][model] = (cells["parameters"]["value"], cells["macs_per_pixel"]["value"])
    return rows


def cell_text(values: list[float], metric: Metric) -> str:
    if not values:
        return "—"
    number = (lambda v: f"{100 * v:.1f}") if metric.percent else (lambda v: f"{v:,.1f}" if v >= 100 else f"{v:.2f}")
    text = number(values[0]) if len(values) == 1 else f"{number(min(values))}–{number(max(values))}"
    return text + (" %" if metric.percent else "") + (f" ({len(values)} seeds)" if len(values) > 1 else "")


def clear_lead(values: dict[str, list[float]], metric: Metric) -> str | None:
    """The model every one of whose seeds beats every seed of every other model, if there is one."""
    measured = {model: v for model, v in values.items() if v}
    if len(measured) < 2:
        return None
    sign = -1 if metric.higher_is_better else 1  # lower signed values are better
    for model, own in measured.items():
        worst = max(sign * v for v in own)
        if all(worst < min(sign * v for v in other) for m, other in measured.items() if m != model):
            return model
    return None


def table(rows: dict[str, dict[str, Any]], models: list[str]) -> str:
    lines = []
    for dataset, row in rows.items():
        for metric in row["metrics"]:
            values = row["values"].get(metric.name, {})
            lead = clear_lead(values, metric)
            cells = [cell_text(values.get(m, []), metric) for m in models]
            cells = [f"**{c}**" if m == lead else c for m, c in zip(models, cells, strict=True)]
            lines.append([f"{dataset}: {metric.label}", *cells])
    dataset, row = next((dataset, row) for dataset, row in rows.items() if row["cost"])
    for label, index in (("parameters", 0), ("multiply-adds per pixel", 1)):
        cost = row["cost"]
        lines.append([f"{label}, {dataset}", *(f"{cost[m][index]:,}" if m in cost else "—" for m in models)])
    return markdown_table(["", *models], lines)


def figure(rows: dict[str, dict[str, Any]], models: list[str], path: Path) -> bool:
    """One panel per dataset where two models or more were measured: each model's FID, a dot per training seed and
    a bar at their mean; False (and no figure) when there is no such dataset."""
    panels = {
        d: row for d, row in rows.items() if sum(bool(v) for v in row["values"][row["metrics"][0].name].values()) > 1
    }
    if not panels:
        return False
    fig = Figure(figsize=(3.2 * len(panels), 3.6))
    fig.suptitle("FID in each dataset's own feature space (lower is better); dots: training seeds", fontsize=9)
    for ax, (dataset, row) in zip(fig.subplots(1, len(panels), squeeze=False)[0], panels.items(), strict=True):
        fid = row["metrics"][0]
        for x, model in enumerate(models):
            values = row["values"][fid.name].get(model, [])
            if values:
                flagship = model == MODELS[0]
                ax.bar(x, statistics.fmean(values), color="#f2c49b" if flagship else "#c8d7ea", width=0.7)
                ax.plot([x] * len(values), values, "o", color="#1f4e8c", markersize=4)
        ax.set_xticks(range(len(models)), models, rotation=60, ha="right", fontsize=8)
        ax.set_title(dataset, fontsize=9)
        ax.set_ylabel(fid.name, fontsize=8)
        ax.tick_params(axis="y", labelsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="where table.md, results.json and figure.png go")
    parser.add_argument("--run", type=Path, metavar="RUNS", help="train and measure the comparisons here first")
    parser.add_argument("--only", help="comma-separated report folders (default: all)")
    args = parser.parse_args()
    chosen = COMPARISONS
    if args.only:
        names = args.only.split(",")
        unknown = sorted(set(names) - {c.folder for c in COMPARISONS})
        if unknown:
            parser.error(f"unknown comparison {', '.join(unknown)}; known: {', '.join(c.folder for c in COMPARISONS)}")
        chosen = tuple(c for c in COMPARISONS if c.folder in names)
    if args.run:
        for comparison in chosen:
            run(comparison, args.run)
    missing = [c.folder for c in chosen if not report_path(c).is_file()]
    if missing:
        print(f"not published yet, left out: {', '.join(missing)} (--run RUNS trains and publishes them)")
    chosen = tuple(c for c in chosen if c.folder not in missing)
    if not chosen:
        raise SystemExit("none of the chosen comparisons is published: run them with --run RUNS")
    rows = gather(chosen)
    models = [m for m in MODELS if any(m in v for row in rows.values() for v in row["values"].values())]
    reports = ", ".join(f"[{c.folder}](../../compare/{c.folder}/report.md)" for c in chosen)
    markdown = (
        table(rows, models)
        + "\n\nEach model at its best snapshot (its curve metric's best before the plateau rule stopped it), in each"
        " dataset's offline feature space; a range spans the training"
        " seeds. **Bold**: a lead that every seed of the model holds over every seed of the others. — : not run"
        " (or, for parameters, not in that comparison). Reports: " + reports + "."
    )
    args.out.mkdir(parents=True, exist_ok=True)
    drawn = figure(rows, models, args.out / "figure.png")
    (args.out / "table.md").write_text(markdown + "\n")
    results = {
        "machine": machine(),
        "reports": {dataset: row["reports"] for dataset, row in rows.items()},
        "values": {dataset: row["values"] for dataset, row in rows.items()},
        "commands": {c.folder: "polyinr compare " + " ".join(c.args) + f" --outdir RUNS/{c.runs}" for c in chosen},
    }
    (args.out / "results.json").write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    print(markdown)
    print(
        f"\nwrote {args.out}/table.md, results.json"
        + (" and figure.png" if drawn else " (no dataset with two models: no figure)")
    )


if __name__ == "__main__":
    main()
