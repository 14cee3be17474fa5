"""What every model of a comparison shares: :class:`CompareSettings`, its default metrics and its validation."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from polyinr.errors import PolyinrError
from polyinr.metrics import metric_goal, parse_metric
from polyinr.metrics.feature_spaces import UNLABELLED, builtin_space
from polyinr.models.registry import list_models
from polyinr.training.plateau import PlateauRule

CPU, PAPER = "cpu", "paper"
SHEET_SEEDS = 6  # default seeds of the sample sheets
# The curve metric of the cpu preset on data without a built-in space: FID on 500 samples in a space fitted to the
# data (seconds a snapshot on a CPU, where one Inception pass over the data takes minutes).
OWN_DATA_CURVE = "fid0.5k_data"


@dataclass(frozen=True)
class CompareSettings:
    """What every model of a comparison shares."""

    data: str
    models: tuple[str, ...]
    preset: str = CPU  # 'cpu' or 'paper': the size class of each model's preset
    kimg: float = (
        10.0  # training budget (with minutes or plateau: its upper bound), thousands of real images shown to D
    )
    minutes: float | None = (
        None  # each model's budget of training time (snapshots and their metrics aside); None = none
    )
    plateau: PlateauRule | None = None  # stop a model when its curve metric stops improving; None = train on
    metrics: tuple[str, ...] = ()  # metric names (polyinr.metrics); empty = default_metrics(preset, data, cond)
    seeds: tuple[int, ...] = tuple(range(SHEET_SEEDS))  # seeds of the sample sheets
    native_recipes: bool = False  # each model's own recipe instead of the shared one
    recipe: str | None = None  # the shared recipe; None = 'cpu' for cpu presets, 'stylegan3' for paper ones
    resolution: int | None = None  # training resolution; None = the data's
    batch: int | None = None  # None = the recipe's
    cond: bool = False  # class-conditional on the data's labels
    curve_metric: str | None = None  # metric computed at every snapshot (None = default_curve_metric)
    snap_kimg: float | None = None  # snapshot (and curve point) interval in kimg; None = the recipe's
    big_render: int = 4096  # side of the render whose peak memory is measured
    workers: int = 0
    device: str = "cpu"
    train_seeds: tuple[int, ...] = (0,)  # each model trains once per seed; the table gives their mean
    model_overrides: dict[str, dict[str, Any]] = field(default_factory=dict)  # model → generator config fields

    def to_json(self) -> dict[str, Any]:
        values = dataclasses.asdict(self)
        for name in ("models", "metrics", "seeds", "train_seeds"):
            values[name] = list(values[name])
        return values

    def one_model_json(self) -> dict[str, Any]:
        """What one model's training refusal and its measurements depend on: the settings but the lists of models
        and training seeds (one process per model trains one; a model refused with one seed is refused with any;
        a model is measured alike whatever it is compared with)."""
        return {k: v for k, v in self.to_json().items() if k not in ("models", "train_seeds")}


def default_metrics(preset: str, data: str | None = None, cond: bool = False) -> tuple[str, ...]:
    """The metrics of a comparison when none are named.

    On a built-in dataset (``builtin:digits``, ``shapes``, ``photos``, ``faces``, ``textures``): FID,
    precision/recall, CAS (labelled data, class-conditional models) and ScaleInv FID at ×2 and ×4 in that
    dataset's offline feature space, 2,000 samples each. Elsewhere, for ``cpu``: FID and precision/recall in a
    space fitted to the data (``fid0.5k_data``, ``pr0.5k_data``), then the standard detectors', 500 samples each;
    for ``paper`` the standard detectors with the papers' sample counts. Then the equivariance metrics (50 samples
    for ``cpu``, 50k for ``paper``).
    """
    eq = ("eqt0.05k_int", "eqt0.05k_frac", "eqr0.05k") if preset == CPU else ("eqt50k_int", "eqt50k_frac", "eqr50k")
    space = builtin_space(data)
    if space is not None:
        cas = (f"cas_{space}",) if cond and space not in UNLABELLED else ()
        return (f"fid_{space}", f"pr_{space}", *cas, f"scaleinv_fid_S2_{space}", f"scaleinv_fid_S4_{space}", *eq)
    if preset == CPU:
        return (OWN_DATA_CURVE, "pr0.5k_data", "rfid0.5k_full", "fid0.5k_full", "kid0.5k_full", "pr0.5k3_full", *eq)
    return (
        "fid50k_full",
        "kid50k_full",
        "rfid50k_full",
        "pr50k3_full",
        *eq,
        "scaleinv_fid50k_S2",
        "scaleinv_fid50k_S4",
    )


def default_curve_metric(preset: str, data: str | None, metrics: tuple[str, ...]) -> str | None:
    """The metric computed at every snapshot when none is named: with the ``cpu`` preset on data without a
    built-in space, :data:`OWN_DATA_CURVE` (whatever the table's metrics: those are measured once, at the end);
    otherwise the first quality metric of ``metrics`` (None when there is none)."""
    if preset == CPU and builtin_space(data) is None:
        return OWN_DATA_CURVE
    return next((m for m in metrics if not parse_metric(m).kind.startswith("eq")), None)


def check_settings(settings: CompareSettings) -> CompareSettings:
    """Validate model names, the preset and metric names (one-line errors); fill in the default metrics and the
    curve metric (put first in the table when it is not among the metrics)."""
    known = list_models()
    if not settings.models:
        raise PolyinrError("name at least one model to compare")
    for name in settings.models:
        if name not in known:
            raise PolyinrError(f"unknown model {name!r}; registered models: {', '.join(known)}")
    if len(set(settings.models)) != len(settings.models):
        raise PolyinrError("each model may be named only once")
    if settings.preset not in (CPU, PAPER):
        raise PolyinrError(f"the comparison preset must be {CPU!r} or {PAPER!r}, got {settings.preset!r}")
    if not settings.kimg > 0:
        raise PolyinrError(f"the training budget must be positive, got {settings.kimg} kimg")
    if settings.minutes is not None and not settings.minutes > 0:
        raise PolyinrError(f"the time budget must be positive, got {settings.minutes} minutes")
    if not settings.train_seeds or len(set(settings.train_seeds)) != len(settings.train_seeds):
        raise PolyinrError(f"name one or more different training seeds, got {list(settings.train_seeds)}")
    if min(settings.train_seeds) < 0:
        raise PolyinrError(f"training seeds are 0 or more, got {list(settings.train_seeds)}")
    if settings.big_render < 1:
        raise PolyinrError(f"the big render's size must be positive, got {settings.big_render}")
    metrics = settings.metrics or default_metrics(settings.preset, settings.data, settings.cond)
    for name in metrics:
        parse_metric(name)
    curve = settings.curve_metric
    if curve is not None:
        parse_metric(curve)
    else:
        curve = default_curve_metric(settings.preset, settings.data, tuple(metrics))
    if curve is not None and curve not in metrics:
        metrics = (curve, *metrics)  # the table holds the curve's last point, and the speed-quality plot its value
    if settings.plateau is not None and (curve is None or metric_goal(curve) is None):
        raise PolyinrError(
            f"stopping at a plateau needs a curve metric with a better direction (FID, KID, CAS, …), "
            f"not {curve or 'none'}"
        )
    return dataclasses.replace(settings, metrics=tuple(metrics), curve_metric=curve)


def describe_budget(settings: CompareSettings) -> str:
    """When each model's training ends, in words (``settings`` checked by :func:`check_settings`)."""
    ends = [f"{settings.kimg:g} kimg"]
    if settings.minutes is not None:
        ends.append(f"{settings.minutes:g} min of training (snapshots and their {settings.curve_metric} aside)")
    if settings.plateau is not None:
        key, lower = metric_goal(settings.curve_metric)
        ends.append(
            f"a plateau of {settings.curve_metric}, checked at each snapshot: {settings.plateau.describe(key, lower)}"
        )
    seeds = settings.train_seeds
    runs = "" if len(seeds) == 1 else f", once with each training seed ({', '.join(map(str, seeds))})"
    if len(ends) == 1:
        return f"each model trains {ends[0]}{runs}"
    return f"each model trains{runs} until the first of: " + "; ".join(ends)
