"""Metric names → computations: parsing, dispatch, and the ``metric-<name>.jsonl`` result files.

Names follow NVIDIA's tools, with the number of generated images ``N`` in thousands (a decimal such as ``0.1``
is allowed for quick checks): ``fid{N}k_full``, ``kid{N}k_full``, ``is{N}k``, ``pr{N}k{K}_full`` (K = neighbourhood
size), ``sfid{N}k_full``, ``rfid{N}k_full``, ``eqt{N}k_int``, ``eqt{N}k_frac``, ``eqr{N}k``,
``scaleinv_fid{N}k_S{S}`` (S = integer zoom-out factor; InfinityGAN's bilinear shrink), ``scaleinv_box_fid{N}k_S{S}``
(the same with a box-filter shrink) and ``cas`` / ``cas{N}k`` (10k samples by default).
``_full`` compares with every real image (KID: at most 1M, precision/recall: at most 200k, as StyleGAN3).

On the built-in datasets the same computations run in an offline feature space (a small network trained on that
dataset's real images, :mod:`polyinr.metrics.feature_spaces`), named by the space instead of ``_full``:
``fid_digits``, ``kid_digits``, ``pr_digits`` (k = 3), ``cas_digits`` (recognised by the space's classifier),
``div_digits`` (within-class diversity vs real, :mod:`polyinr.metrics.diversity`) and ScaleInv FID
``scaleinv_fid_S4_digits`` / ``scaleinv_box_fid_S4_digits``, 2k samples unless a count is given
(``fid10k_digits``, ``pr2k5_digits``, ``scaleinv_fid10k_S4_digits``). Without a dataset they compare with the
built-in data itself. The ``photos``, ``faces`` and ``textures`` spaces have no labels (their classes are the
source images, or the quarter turns of a face): no CAS or diversity there.

On any other data, the ``data`` space is fitted to the images the metric is measured against (the training data of
a run; ``--data`` of ``polyinr metrics``): ``fid_data``, ``kid_data``, ``pr_data``, ``scaleinv_fid_S4_data``,
``fid0.5k_data`` … (a dataset is needed; no CAS or diversity: its classes are quarter turns).
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from polyinr._version import __version__
from polyinr.errors import PolyinrError
from polyinr.grid import Grid
from polyinr.image_io import quantize_rgb
from polyinr.metrics.feature_spaces import DATA_SPACE
from polyinr.metrics.sampling import Progress, sample_labels
from polyinr.models.generator import GridRefused
from polyinr.sampling import iter_ws

_N = r"(\d+(?:\.\d+)?)k"
_PATTERNS: tuple[tuple[str, str], ...] = (
    ("fid", rf"fid{_N}_full"),
    ("kid", rf"kid{_N}_full"),
    ("sfid", rf"sfid{_N}_full"),
    ("rfid", rf"rfid{_N}_full"),
    ("is", rf"is{_N}"),
    ("pr", rf"pr{_N}(\d+)_full"),
    ("eqt_int", rf"eqt{_N}_int"),
    ("eqt_frac", rf"eqt{_N}_frac"),
    ("eqr", rf"eqr{_N}"),
    ("scaleinv_fid", rf"scaleinv_fid{_N}_S(\d+)"),
    ("scaleinv_box_fid", rf"scaleinv_box_fid{_N}_S(\d+)"),
    ("cas", rf"cas(?:{_N})?"),
)
_SPACE_PATTERN = r"(fid|kid|pr|cas|div)(?:(\d+(?:\.\d+)?)k(\d+)?)?_([a-z][a-z0-9]*)"
_SPACE_SCALEINV_PATTERN = r"(scaleinv_fid|scaleinv_box_fid)(?:(\d+(?:\.\d+)?)k)?_S(\d+)_([a-z][a-z0-9]*)"
VALID_FORMS = (
    "fid{N}k_full, kid{N}k_full, is{N}k, pr{N}k{K}_full, sfid{N}k_full, rfid{N}k_full, eqt{N}k_int, eqt{N}k_frac, "
    "eqr{N}k, scaleinv_fid{N}k_S{S}, scaleinv_box_fid{N}k_S{S}, cas, cas{N}k (N in thousands, e.g. 50 or 0.1); in a "
    "built-in dataset's feature space D (digits, shapes, photos, faces or textures): fid_D, kid_D, pr_D, cas_D, div_D, "
    "scaleinv_fid_S{S}_D, scaleinv_box_fid_S{S}_D (fid{N}k_D, pr{N}k{K}_D, scaleinv_fid{N}k_S{S}_D; no cas or div "
    "for photos, faces, textures); in a space fitted to the measured data: the same with D = data (fid_data, "
    "fid0.5k_data, pr_data; no cas or div)"
)
SPACE_DEFAULT_SAMPLES = 2_000
CAS_DEFAULT_SAMPLES = 10_000
KID_MAX_REAL, PR_MAX_REAL = 1_000_000, 200_000
KID_SUBSETS, KID_SUBSET_SIZE, IS_SPLITS = 100, 1000, 10

# kind → (detector, feature, real images kept: None = no real data, "moments" or "all", cap on real images)
_FEATURE_METRICS: dict[str, tuple[str, str, str | None, int | None]] = {
    "fid": ("inception", "pool", "moments", None),
    "sfid": ("inception", "spatial", "moments", None),
    "rfid": ("inception-random", "pool", "moments", None),
    "scaleinv_fid": ("inception", "pool", "moments", None),
    "scaleinv_box_fid": ("inception", "pool", "moments", None),
    "kid": ("inception", "pool", "all", KID_MAX_REAL),
    "pr": ("vgg16", "vgg16_fc2", "all", PR_MAX_REAL),
    "is": ("inception", "logits", None, None),
}


# kind → (suffix of the result that ranks snapshots, whether lower is better). Kinds absent have no single better
# direction: precision against recall, and within-class diversity (1 = as diverse as the reals, either side worse).
_GOALS: dict[str, tuple[str, bool]] = {
    **{kind: ("", True) for kind in ("fid", "kid", "sfid", "rfid", "scaleinv_fid", "scaleinv_box_fid")},
    **{kind: ("", False) for kind in ("eqt_int", "eqt_frac", "eqr", "cas")},  # PSNR in dB, accuracy
    "is": ("_mean", False),
}


@dataclass(frozen=True)
class MetricSpec:
    name: str  # as written, e.g. 'fid50k_full'
    kind: str  # 'fid', 'kid', 'is', 'pr', 'sfid', 'rfid', 'eqt_int', 'eqt_frac', 'eqr', 'scaleinv_fid', …
    num_gen: int  # generated images
    nhood: int = 3  # precision/recall neighbourhood size
    scale: int = 1  # ScaleInv FID zoom-out factor
    space: str | None = None  # offline feature space (a built-in dataset's name, or 'data'); None = the standard ones

    @property
    def needs_real_data(self) -> bool:
        if self.space is not None:
            return self.space == DATA_SPACE  # a built-in space: the built-in data itself when no dataset is given
        return self.kind == "cas" or (self.kind in _FEATURE_METRICS and _FEATURE_METRICS[self.kind][2] is not None)


def _count(thousands: str, name: str) -> int:
    value = float(thousands) * 1000
    if value < 1 or not math.isclose(value, round(value), abs_tol=1e-6):
        raise PolyinrError(f"metric {name!r}: {thousands}k is not a whole positive number of images")
    return round(value)


def parse_metric(name: str) -> MetricSpec:
    """Parse one metric name; an unknown one → a one-line error listing the valid forms."""
    for kind, pattern in _PATTERNS:
        match = re.fullmatch(pattern, name)
        if match is None:
            continue
        groups = match.groups()
        if kind == "cas":
            return MetricSpec(name, kind, _count(groups[0], name) if groups[0] else CAS_DEFAULT_SAMPLES)
        num_gen = _count(groups[0], name)
        if kind == "pr":
            if int(groups[1]) < 1:
                raise PolyinrError(f"metric {name!r}: the neighbourhood size must be at least 1")
            return MetricSpec(name, kind, num_gen, nhood=int(groups[1]))
        if kind in ("scaleinv_fid", "scaleinv_box_fid"):
            if int(groups[1]) < 1:
                raise PolyinrError(f"metric {name!r}: the scale must be at least 1")
            return MetricSpec(name, kind, num_gen, scale=int(groups[1]))
        return MetricSpec(name, kind, num_gen)
    match = re.fullmatch(_SPACE_SCALEINV_PATTERN, name)
    if match is not None:
        kind, thousands, scale, space = match.groups()
        _check_space(name, kind, space)
        if int(scale) < 1:
            raise PolyinrError(f"metric {name!r}: the scale must be at least 1")
        num_gen = _count(thousands, name) if thousands else SPACE_DEFAULT_SAMPLES
        return MetricSpec(name, kind, num_gen, scale=int(scale), space=space)
    match = re.fullmatch(_SPACE_PATTERN, name)
    if match is not None:
        kind, thousands, nhood, space = match.groups()
        _check_space(name, kind, space)
        if nhood is not None and (kind != "pr" or int(nhood) < 1):
            raise PolyinrError(f"metric {name!r}: only pr takes a neighbourhood size, and it must be at least 1")
        num_gen = _count(thousands, name) if thousands else SPACE_DEFAULT_SAMPLES
        return MetricSpec(name, kind, num_gen, nhood=int(nhood) if nhood else 3, space=space)
    raise PolyinrError(f"unknown metric {name!r}; valid metrics: {VALID_FORMS}")


def _check_space(name: str, kind: str, space: str) -> None:
    """Refuse, in one line, a feature space that does not exist or a metric its classes cannot give."""
    from polyinr.metrics.feature_spaces import RECIPES, UNLABELLED

    if space not in RECIPES and space != DATA_SPACE:
        raise PolyinrError(
            f"unknown metric {name!r}: no feature space {space!r} (the built-in datasets "
            f"{', '.join(sorted(RECIPES))} have one, and {DATA_SPACE} is fitted to the measured "
            f"data); valid metrics: {VALID_FORMS}"
        )
    if kind in ("cas", "div") and space in UNLABELLED:
        raise PolyinrError(
            f"metric {name!r}: {kind} needs class labels, and {UNLABELLED[space]}; measure "
            f"fid_{space}, kid_{space}, pr_{space} or scaleinv_fid_S{{S}}_{space} there"
        )


def parse_metrics(spec: str) -> list[str]:
    """``'fid50k_full,kid50k_full'`` → validated names in order, without repeats; ``'none'`` or ``''`` → ``[]``."""
    names: list[str] = []
    for part in spec.split(","):
        part = part.strip()
        if part in ("", "none"):
            continue
        parse_metric(part)
        if part not in names:
            names.append(part)
    return names


def metric_goal(name: str) -> tuple[str, bool] | None:
    """``(result key, lower is better)`` by which metric ``name`` ranks training snapshots, or None where no
    single direction is better (precision/recall, within-class diversity). FID, KID and their variants: the
    lowest; IS (its mean), EQ-T/EQ-R (dB) and CAS: the highest."""
    spec = parse_metric(name)
    if spec.kind not in _GOALS:
        return None
    suffix, lower = _GOALS[spec.kind]
    return f"{spec.name}{suffix}", lower


def metric_detector(name: str, detectors: dict[str, Any] | None = None, dataset: Any = None) -> str:
    """The feature network (and weights file) metric ``name`` uses, or ``'none'``; one that ``detectors`` puts in
    its place (see :func:`compute_metric`) by its own name. The ``data`` space is the one fitted to ``dataset``
    (the dataset the metric was computed against)."""
    spec = parse_metric(name)
    key = f"space:{spec.space}" if spec.space is not None else _FEATURE_METRICS.get(spec.kind, ("none",))[0]
    if key in (detectors or {}):
        return getattr(detectors[key], "name", key)
    if spec.space == DATA_SPACE:
        from polyinr.metrics.feature_spaces import describe_data_space

        return describe_data_space(dataset)
    if spec.space is not None:
        from polyinr.metrics.feature_spaces import describe_space

        return describe_space(spec.space)
    if spec.kind not in _FEATURE_METRICS:
        return "none"
    from polyinr.metrics.features import detector_description

    return detector_description(_FEATURE_METRICS[spec.kind][0])


# ---------------------------------------------------------------------------- computing


@torch.no_grad()
def compute_metric(
    name: str,
    G: Any,
    dataset: Any,
    device: torch.device | str = "cpu",
    batch_size: int = 32,
    num_workers: int = 0,
    on_progress: Progress | None = None,
    *,
    label_sampling: str = "dataset",
    seed: int = 0,
    detectors: dict[str, Any] | None = None,
    use_cache: bool = True,
    download: bool = True,
) -> dict[str, float]:
    """Compute metric ``name`` of generator ``G`` (on ``device``, not modified) against ``dataset``.

    ``dataset`` (see :mod:`polyinr.data.datasets`) gives the real images, their resolution (generated images are
    rendered at it) and the label distribution; it may be None for IS and the equivariance metrics, and a
    class-conditional generator then samples its classes uniformly.
    ``on_progress(stage, done, total)`` reports progress. Generated sample ``i`` uses seed ``seed + i`` and a
    label drawn as ``label_sampling`` says (``'dataset'`` distribution, StyleGAN3; or ``'uniform'``,
    StyleGAN-XL). ``detectors`` replaces the named detectors (``'inception'``, ``'inception-random'``,
    ``'vgg16'``), e.g. with small random networks in tests; ``use_cache`` reads and writes the real-data
    statistics cache; ``download`` allows fetching missing detector weights. The ``data`` space is fitted to
    ``dataset`` as given (before a patch-trained generator's resize), or taken from ``detectors['space:data']``.

    Returns ``{name: value}``; precision/recall give ``{name}_precision`` and ``{name}_recall``, IS
    ``{name}_mean`` and ``{name}_std``, CAS ``{name}`` and ``{name}_real`` (held-out accuracy on real images).
    """
    spec = parse_metric(name)
    device = torch.device(device)
    if batch_size < 1:
        raise PolyinrError(f"batch size must be positive, got {batch_size}")
    if spec.space == DATA_SPACE and dataset is None:
        raise PolyinrError(f"metric {name} is measured in a feature space fitted to the real images: give a dataset")
    if spec.space == DATA_SPACE and f"space:{DATA_SPACE}" not in (detectors or {}):
        from polyinr.metrics.feature_spaces import fit_data_space

        fitted = fit_data_space(dataset, device, use_cache, on_progress)
        detectors = {**(detectors or {}), f"space:{DATA_SPACE}": fitted}
    dataset = patch_sized(G, dataset)
    if spec.kind in ("scaleinv_fid", "scaleinv_box_fid"):  # a model that cannot paint the wider field: say so first
        from polyinr.metrics.scale_inv import zoomed_out_grid

        G.check_grid(zoomed_out_grid(dataset.resolution if dataset is not None else G.img_resolution, spec.scale))
    if spec.space is not None:
        return _space_metric(
            spec,
            G,
            dataset,
            device,
            batch_size,
            num_workers,
            on_progress,
            label_sampling,
            seed,
            detectors or {},
            use_cache,
        )
    if spec.needs_real_data and dataset is None:
        raise PolyinrError(f"metric {name} compares with real images: give a dataset")
    if spec.kind == "cas":
        from polyinr.metrics.cas import classification_accuracy_score

        cas = classification_accuracy_score(
            G,
            dataset,
            spec.num_gen,
            device=device,
            seed=seed,
            batch_size=batch_size,
            num_workers=num_workers,
            on_progress=on_progress,
        )
        return {name: cas["cas"], f"{name}_real": cas["cas_real"]}
    if dataset is None and not spec.needs_real_data and G.num_classes:
        label_sampling = "uniform"  # nothing gives a label distribution: every class equally (StyleGAN-XL's way)
    labels = sample_labels(G.num_classes, spec.num_gen, label_sampling, dataset, seed)
    if spec.kind in ("eqt_int", "eqt_frac", "eqr"):
        from polyinr.metrics.equivariance import equivariance_psnr

        return {name: equivariance_psnr(G, spec.kind, spec.num_gen, labels, device, seed, on_progress=on_progress)}
    from polyinr.metrics.features import load_detector

    detector_name, feature, keep, max_real = _FEATURE_METRICS[spec.kind]
    detectors = detectors or {}
    detector = (
        detectors[detector_name] if detector_name in detectors else load_detector(detector_name, device, download)
    )
    return _feature_metric(
        spec,
        G,
        dataset,
        device,
        batch_size,
        num_workers,
        on_progress,
        labels,
        seed,
        detector,
        feature,
        keep,
        max_real,
        use_cache,
    )


def patch_sized(G: Any, dataset: Any) -> Any:
    """The real images a generator is measured against: a patch-trained generator (its training grid smaller than
    the images, e.g. InfinityGAN) renders its patch, so it is compared with the images resized to the patch's
    size, as InfinityGAN's evaluation does; every other generator with ``dataset`` as it is."""
    if dataset is None:
        return None
    try:
        side = G.training_grid(dataset.resolution).shape[0]
    except GridRefused:
        return dataset  # the metric's own grid check says why, in one line
    return dataset if side == dataset.resolution else dataset.with_resolution(side)


def _feature_metric(
    spec: MetricSpec,
    G: Any,
    dataset: Any,
    device: torch.device,
    batch_size: int,
    num_workers: int,
    on_progress: Progress | None,
    labels: Any,
    seed: int,
    detector: Any,
    feature: str,
    keep: str | None,
    max_real: int | None,
    use_cache: bool,
) -> dict[str, float]:
    """FID / KID / precision-recall / IS of ``G``'s samples in ``detector``'s ``feature`` space."""
    from polyinr.metrics import fid as maths
    from polyinr.metrics.scale_inv import render_zoomed_out
    from polyinr.metrics.stats_cache import real_feature_stats

    detector.check((feature,))
    resolution = dataset.resolution if dataset is not None else G.img_resolution
    capture_all = keep == "all" or spec.kind == "is"

    gen = maths.FeatureStats(capture_moments=not capture_all, capture_all=capture_all)
    grid = Grid.frame(resolution)
    for ws in iter_ws(G, range(seed, seed + spec.num_gen), labels, device=device, batch_size=batch_size):
        if spec.kind in ("scaleinv_fid", "scaleinv_box_fid"):
            resize = "box" if spec.kind == "scaleinv_box_fid" else "bilinear"
            images = render_zoomed_out(G, ws, resolution, spec.scale, resize)
        else:
            images = G.synthesize(ws, grid)
        gen.append(detector(quantize_rgb(images), (feature,))[feature])
        if on_progress is not None:
            on_progress("generated images", gen.num_items, spec.num_gen)
    if spec.kind == "is":
        mean, std = maths.inception_score(gen.all_features(), IS_SPLITS)
        return {f"{spec.name}_mean": mean, f"{spec.name}_std": std}

    real = real_feature_stats(
        dataset, detector, feature, max_real, capture_all, batch_size, num_workers, device, on_progress, use_cache
    )
    if spec.kind == "kid":
        kid = maths.kernel_inception_distance(
            real.all_features(), gen.all_features(), KID_SUBSETS, KID_SUBSET_SIZE, seed
        )
        return {spec.name: kid}
    if spec.kind == "pr":
        precision, recall = maths.precision_recall(
            real.all_features().to(device), gen.all_features().to(device), spec.nhood
        )
        return {f"{spec.name}_precision": precision, f"{spec.name}_recall": recall}
    return {spec.name: maths.frechet_distance(*gen.mean_cov(), *real.mean_cov())}


def _space_metric(
    spec: MetricSpec,
    G: Any,
    dataset: Any,
    device: torch.device,
    batch_size: int,
    num_workers: int,
    on_progress: Progress | None,
    label_sampling: str,
    seed: int,
    detectors: dict[str, Any],
    use_cache: bool,
) -> dict[str, float]:
    """A metric in an offline feature space (``spec.space``); ``dataset`` None = that built-in data."""
    from polyinr.metrics.feature_spaces import load_feature_space

    if dataset is None:
        from polyinr.data.datasets import open_dataset

        dataset = open_dataset(f"builtin:{spec.space}", resolution=G.img_resolution, cond=G.num_classes > 0)
    key = f"space:{spec.space}"
    detector = detectors[key] if key in detectors else load_feature_space(spec.space, device, use_cache, on_progress)
    if spec.kind in ("fid", "kid", "pr", "scaleinv_fid", "scaleinv_box_fid"):
        labels = sample_labels(G.num_classes, spec.num_gen, label_sampling, dataset, seed)
        keep = "all" if spec.kind in ("kid", "pr") else "moments"
        return _feature_metric(
            spec,
            G,
            dataset,
            device,
            batch_size,
            num_workers,
            on_progress,
            labels,
            seed,
            detector,
            "features",
            keep,
            None,
            use_cache,
        )
    if G.num_classes and getattr(dataset, "num_classes", 0) != G.num_classes:
        raise PolyinrError(f"metric {spec.name} needs labelled data with the generator's {G.num_classes} classes")
    if spec.kind == "cas" and G.num_classes == 0:
        raise PolyinrError(f"metric {spec.name} needs a class-conditional generator")
    labels = np.arange(spec.num_gen) % G.num_classes if G.num_classes else None  # an equal number of each class
    grid = Grid.frame(dataset.resolution)
    gen = []
    for ws in iter_ws(G, range(seed, seed + spec.num_gen), labels, device=device, batch_size=batch_size):
        images = quantize_rgb(G.synthesize(ws, grid))
        gen.append(
            detector(images, ("logits",))["logits"].argmax(1).cpu()
            if spec.kind == "cas"
            else detector.input_vectors(images).cpu()
        )
        if on_progress is not None:
            on_progress("generated images", sum(map(len, gen)), spec.num_gen)
    if spec.kind == "cas":
        return {spec.name: float((torch.cat(gen).numpy() == labels).mean())}
    from polyinr.metrics.diversity import class_diversity
    from polyinr.metrics.sampling import dataset_batches

    real, real_labels = [], []
    for images, y in dataset_batches(dataset, np.arange(len(dataset)), batch_size, num_workers):
        real.append(detector.input_vectors(images.to(device)).cpu())
        real_labels.append(y.numpy())
    ratios = class_diversity(torch.cat(gen), labels, torch.cat(real), np.concatenate(real_labels), G.num_classes)
    return {
        spec.name: float(np.mean(list(ratios.values()))),
        f"{spec.name}_min": min(ratios.values()),
        **{f"{spec.name}_class{k}": v for k, v in ratios.items()},
    }


# ---------------------------------------------------------------------------- results


def evaluate_snapshot(
    names: Sequence[str],
    G: Any,
    dataset: Any,
    run_dir: str | Path,
    snapshot: Path,
    device: torch.device | str,
    *,
    detectors: dict[str, Any] | None = None,
    download: bool = True,
    on_progress: Progress | None = None,
) -> dict[str, dict[str, Any]]:
    """Compute the metrics ``names`` of a new training snapshot's generator ``G`` on the training ``dataset``.

    The reals are the training images without their x-flipped copies, whatever the run's mirroring: the
    ``_full`` metrics compare with the dataset itself, as StyleGAN's ``calc_metrics`` does by default. Each
    result is appended to ``run_dir/metric-<name>.jsonl`` as it is computed (see :func:`append_metric_result`);
    returns, by name, ``{"results": {key: value}, "detector": the feature network}`` (as those lines hold
    them). The training loop's ``evaluate`` hook. ``detectors`` and ``download`` as in :func:`compute_metric`;
    ``on_progress(stage, done, total)`` follows each metric's passes, each stage named after its metric
    (``'fid_digits: generated images'``).
    """
    if dataset is not None and hasattr(dataset, "unmirrored"):
        dataset = dataset.unmirrored()
    records = {}
    for name in names:
        results = compute_metric(
            name,
            G,
            dataset,
            device=device,
            detectors=detectors,
            download=download,
            on_progress=named_progress(name, on_progress),
        )
        records[name] = {"results": results, "detector": metric_detector(name, detectors, dataset)}
        append_metric_result(run_dir, name, records[name]["results"], snapshot.name, records[name]["detector"])
    return records


def named_progress(name: str, on_progress: Progress | None) -> Progress | None:
    """``on_progress`` with each stage named after metric ``name`` (``'fid_digits: generated images'``)."""
    if on_progress is None:
        return None
    return lambda stage, done, total: on_progress(f"{name}: {stage}", done, total)


def append_metric_result(
    run_dir: str | Path, name: str, results: dict[str, float], snapshot: str, detector: str | None = None
) -> Path:
    """Append one JSON line to ``run_dir/metric-<name>.jsonl``: metric, results, snapshot, time, detector."""
    path = Path(run_dir) / f"metric-{name}.jsonl"
    line = {
        "metric": name,
        "results": results,
        "snapshot": snapshot,
        "timestamp": time.time(),
        "detector": detector if detector is not None else metric_detector(name),
        "polyinr_version": __version__,
    }
    try:
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(line, sort_keys=True) + "\n")
    except OSError as e:
        raise PolyinrError(f"cannot append to {path}: {e.strerror or e}") from None
    return path


RUN_MARKERS = ("training_options.json", "stats.jsonl")


def find_run_dir(checkpoint: str | Path) -> Path | None:
    """The run directory holding ``checkpoint``, or None.

    That is the checkpoint's parent, or the parent's parent (``<run>/checkpoints/<snapshot>``), whichever first
    has a training run's files (``training_options.json`` or ``stats.jsonl``).
    """
    from polyinr.checkpoint import resolve_checkpoint

    for folder in resolve_checkpoint(checkpoint).resolve().parents[:2]:
        if any((folder / marker).is_file() for marker in RUN_MARKERS):
            return folder
    return None
