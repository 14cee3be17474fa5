"""Training snapshots: everything needed to continue a run bit for bit, written atomically.

``<run>/checkpoints/<kimg>/`` holds the EMA generator as a normal checkpoint (``config.json`` +
``model.safetensors``, loadable by ``polyinr generate``) plus ``training_state.safetensors`` (G, D, G_ema,
optimizer moments, RNG states) and ``training_state.json`` (counters, schedule position, options). Frozen
parts a module declares (``frozen_state_keys``: the projected discriminator's pretrained backbones, hundreds of
MB) are rebuilt with the module, so only their SHA-256 fingerprint is stored and checked on resume. The
directory is assembled under a temporary name and renamed, then ``checkpoints/latest`` is pointed at it, then
old snapshots beyond the newest K are removed: a crash or a full disk at any moment leaves the previous
snapshot intact and pointed to. The metrics computed at a snapshot are recorded beside it
(``training_metrics.json``) so that a stage's best snapshot can be found again, and that snapshot is kept from
pruning until its stage ends. A resumed run checks its snapshots first (:func:`read_training_state`): a damaged
one, newer than the newest intact one, is set aside as ``<name>.damaged`` and training resumes from the intact
one, saying so. Finding a run's snapshots (``list_snapshots``, ``latest_snapshot``) belongs
to the checkpoint format, :mod:`polyinr.checkpoint`, so loading never depends on the training package.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
from collections.abc import Collection
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open

from polyinr.atomic import WriteError, atomic_directory, atomic_write_json, atomic_write_text, save_tensor_file
from polyinr.checkpoint import (
    LATEST_NAME,
    SNAPSHOT_NAME,
    SNAPSHOTS_DIR,
    STATE_JSON,
    STATE_WEIGHTS,
    CheckpointError,
    list_snapshots,
    read_tensor_file,
    write_generator_files,
)
from polyinr.importers.unpickle import describe
from polyinr.small_files import read_small_text

METRICS_JSON = "training_metrics.json"  # the metrics computed at a snapshot, written after the snapshot
DAMAGED_SUFFIX = ".damaged"  # a damaged snapshot set aside: <name>.damaged is no snapshot name, so never resumed


def snapshot_name(cur_nimg: int) -> str:
    """``000060`` at 60 kimg; ``000000.512`` between whole kimg (sortable, unique per image count)."""
    kimg, rest = divmod(cur_nimg, 1000)
    return f"{kimg:06d}" if rest == 0 else f"{kimg:06d}.{rest:03d}"


def _frozen_keys(module: torch.nn.Module) -> set[str]:
    return module.frozen_state_keys() if hasattr(module, "frozen_state_keys") else set()


def frozen_fingerprint(module: torch.nn.Module) -> str | None:
    """SHA-256 over the names, dtypes, shapes and bytes of a module's frozen state (None: it has none)."""
    keys = sorted(_frozen_keys(module))
    if not keys:
        return None
    state = module.state_dict()
    digest = hashlib.sha256()
    for key in keys:
        value = state[key].detach().cpu().contiguous()
        digest.update(f"{key}:{value.dtype}:{tuple(value.shape)}".encode())
        digest.update(value.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _flatten_state(modules: dict[str, torch.nn.Module], optimizers: dict[str, torch.optim.Optimizer]) -> dict:
    tensors: dict[str, torch.Tensor] = {}
    for name, module in modules.items():
        frozen = _frozen_keys(module)
        for key, value in module.state_dict().items():
            if key not in frozen:
                tensors[f"{name}/{key}"] = value
    for name, opt in optimizers.items():
        for index, slots in opt.state_dict()["state"].items():
            for key, value in slots.items():
                tensors[f"optimizer/{name}/{index}/{key}"] = torch.as_tensor(value)
    tensors["rng/torch"] = torch.get_rng_state()
    if torch.cuda.is_available():
        for i, state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng/cuda/{i}"] = state
    return {k: v.detach().cpu().contiguous() for k, v in tensors.items()}


def save_snapshot(
    run_dir: Path,
    cur_nimg: int,
    G_ema: torch.nn.Module,
    modules: dict[str, torch.nn.Module],
    optimizers: dict[str, torch.optim.Optimizer],
    counters: dict[str, Any],
    keep: int,
    protect: Collection[str] = (),
) -> Path:
    """Write a snapshot for ``cur_nimg``, point ``latest`` at it, prune to the newest ``keep`` and the snapshots
    named in ``protect``."""
    root = run_dir / SNAPSHOTS_DIR
    root.mkdir(parents=True, exist_ok=True)
    tensors = _flatten_state(modules, optimizers)
    fingerprints = {name: fp for name, module in modules.items() if (fp := frozen_fingerprint(module))}
    counters = {**counters, "cur_nimg": cur_nimg, "frozen_fingerprints": fingerprints}

    def fill(tmp: Path) -> None:
        write_generator_files(G_ema, tmp, extra={"training": {"cur_nimg": cur_nimg}})
        save_tensor_file(tensors, tmp / STATE_WEIGHTS)
        (tmp / STATE_JSON).write_text(json.dumps(counters, indent=2, sort_keys=True) + "\n", encoding="utf-8")

    make_room(run_dir, needed=sum(t.numel() * t.element_size() for t in tensors.values()), protect=protect)
    try:
        path = atomic_directory(root / snapshot_name(cur_nimg), fill, what="snapshot")
    except WriteError as e:
        raise CheckpointError(str(e)) from None
    try:
        atomic_write_text(root / LATEST_NAME, path.name + "\n")
    except OSError as e:
        raise CheckpointError(f"cannot point {root / LATEST_NAME} at the new snapshot: {e.strerror or e}") from None
    for old in list_snapshots(run_dir)[:-keep]:
        if old.name not in protect:
            shutil.rmtree(old, ignore_errors=True)
    return path


def directory_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def make_room(run_dir: Path, needed: int, protect: Collection[str] = ()) -> list[Path]:
    """Before writing a snapshot of about ``needed`` bytes (plus its generator copy) where the disk is short of
    space, remove old snapshots, oldest first, never the newest complete one nor those named in ``protect``.
    Returns the removed snapshots."""
    snapshots = list_snapshots(run_dir)
    if snapshots:
        needed = max(needed, directory_bytes(snapshots[-1]))
    needed = int(needed * 1.1) + (1 << 20)  # the generator copy, JSON, file-system overhead
    removed = []
    for old in snapshots[:-1]:
        if shutil.disk_usage(run_dir).free >= needed:
            break
        if old.name in protect:
            continue
        shutil.rmtree(old, ignore_errors=True)
        removed.append(old)
    return removed


def clean_interrupted_snapshots(run_dir: Path) -> list[Path]:
    """Remove the temporaries a killed snapshot write leaves (``checkpoints/.NNNNNN.*.tmp`` and ``.old-*``);
    call only while holding the run's lock. Returns what was removed."""
    root = run_dir / SNAPSHOTS_DIR
    if not root.is_dir():
        return []
    leftovers = [p for p in root.iterdir() if p.name.startswith(".") and (p.name.endswith(".tmp") or ".old-" in p.name)]
    for path in leftovers:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    return leftovers


def read_training_state(path: Path, num_stages: int) -> dict[str, Any]:
    """The counters of snapshot ``path`` (its ``training_state.json``), validated as ``config.json`` is, once its
    ``training_state.safetensors`` is known to be whole (a header that covers the file and names the RNG state).

    ``num_stages`` is the run's number of resolution stages. A damaged snapshot is a one-line
    :class:`CheckpointError` naming the damaged file and what is wrong with it.
    """
    state_json = path / STATE_JSON
    try:
        counters = json.loads(read_small_text(state_json))
    except (OSError, ValueError, RecursionError) as e:  # RecursionError: JSON nested beyond the parser's depth
        raise CheckpointError(f"{state_json} is unreadable: {getattr(e, 'strerror', None) or e}") from None
    problem = _counters_problem(counters, num_stages)
    if problem is not None:
        raise CheckpointError(f"{state_json} is damaged: {problem}")
    weights = path / STATE_WEIGHTS
    try:
        with safe_open(str(weights), framework="pt") as f:
            keys = set(f.keys())
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{weights} is truncated or corrupt ({e})") from None
    if "rng/torch" not in keys:
        raise CheckpointError(f"{weights} is damaged: it holds no RNG state")
    return counters


def _counters_problem(counters: Any, num_stages: int) -> str | None:
    """What is wrong with a snapshot's parsed counters, or None when they are what :func:`save_snapshot` writes."""
    if not isinstance(counters, dict):
        return f"it holds {describe(counters)}, not a JSON object"
    for name in ("cur_nimg", "step"):
        if type(counters.get(name)) is not int or counters[name] < 0:
            return f"{name} is {describe(counters.get(name))}, not a count"
    stage = counters.get("stage")
    if type(stage) is not int or not 0 <= stage < num_stages:
        return f"stage is {describe(stage)}, but this run's stages are 0 to {num_stages - 1}"
    ends = counters.get("stage_ends")  # absent in snapshots of runs whose stages all ended by kimg
    if ends is not None and not _are_stage_ends(ends, stage, counters["cur_nimg"]):
        return f"stage_ends is {describe(ends)}, not the image counts at which the {stage} stage(s) before it ended"
    start = counters.get("stage_start")
    if start is not None and not _is_stage_start(start):
        return f"stage_start is {describe(start)}, not the record of a snapshot"
    fingerprints = counters.get("frozen_fingerprints", {})
    if not (isinstance(fingerprints, dict) and all(isinstance(v, str) for v in fingerprints.values())):
        return f"frozen_fingerprints is {describe(fingerprints)}, not a table of digests"
    return None


def _are_stage_ends(ends: Any, stage: int, cur_nimg: int) -> bool:
    """Whether ``ends`` is what the loop writes in stage ``stage``: one increasing image count for each stage
    before it, none past ``cur_nimg``."""
    if not (isinstance(ends, list) and len(ends) == stage and all(type(end) is int for end in ends)):
        return False
    return all(a < b for a, b in zip([0, *ends], [*ends, cur_nimg + 1], strict=True))


def _is_stage_start(start: Any) -> bool:
    """Whether ``start`` is the record ``_choose_stage_start`` of the loop writes: a snapshot's name, and the
    metric that chose it with its key and value (all None for a stage's last snapshot)."""
    if not (isinstance(start, dict) and isinstance(start.get("snapshot"), str)):
        return False
    if not SNAPSHOT_NAME.fullmatch(start["snapshot"]):
        return False
    if start.get("metric") is None:
        return True
    value = start.get("value")
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(start["metric"], str) and isinstance(start.get("key"), str) and number


def set_aside_damaged_snapshots(run_dir: Path, num_stages: int) -> list[str]:
    """Before resuming, holding the run's lock: find the newest intact snapshot, rename each newer, damaged one
    to ``<name>.damaged`` (kept for a look, but never resumed, listed or pruned as a snapshot) and point
    ``latest`` at the intact one. Returns one line per damaged snapshot, naming it and what is wrong. Where no
    snapshot is intact, nothing is renamed and the answer is a one-line :class:`CheckpointError`."""
    damaged: list[tuple[Path, str]] = []
    for path in reversed(list_snapshots(run_dir)):
        try:
            read_training_state(path, num_stages)
        except CheckpointError as e:
            damaged.append((path, str(e)))
            continue
        lines = []
        for bad, problem in damaged:
            aside = _free_name(bad.with_name(bad.name + DAMAGED_SUFFIX))
            bad.rename(aside)
            lines.append(f"{problem}; snapshot {bad.name} set aside as {aside.name}, resuming from {path.name}")
        if damaged:
            atomic_write_text(run_dir / SNAPSHOTS_DIR / LATEST_NAME, path.name + "\n")
        return lines
    if damaged:
        names = ", ".join(bad.name for bad, _ in damaged)
        raise CheckpointError(
            f"run {run_dir} has no intact snapshot to resume from (damaged: {names}; the newest: {damaged[0][1]})"
        )
    return []


def _free_name(path: Path) -> Path:
    """``path``, or ``path-2``, ``path-3`` … when it is taken."""
    candidate, n = path, 1
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.name}-{n}")
    return candidate


def load_snapshot(
    path: Path, modules: dict[str, torch.nn.Module], optimizers: dict[str, torch.optim.Optimizer]
) -> dict[str, Any]:
    """Restore modules, optimizer moments and RNG states from ``path``; return its counters. Check the snapshot
    with :func:`read_training_state` first: this reads it as it was written."""
    try:
        tensors = read_tensor_file(path / STATE_WEIGHTS)
        counters = json.loads(read_small_text(path / STATE_JSON))
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"snapshot {path} is unreadable ({e})") from None
    for name, module in modules.items():
        state = _module_state(tensors, name, module, path)
        saved_fingerprint = counters.get("frozen_fingerprints", {}).get(name)
        if frozen_fingerprint(module) != saved_fingerprint:
            raise CheckpointError(
                f"the frozen parts of {name} (e.g. pretrained feature networks) differ from the ones snapshot "
                f"{path.name} was trained with: resume with the same weights"
            )
        module.load_state_dict(state, strict=False)
    for name, opt in optimizers.items():
        saved = opt.state_dict()
        prefix = f"optimizer/{name}/"
        slots: dict[int, dict[str, torch.Tensor]] = {}
        for key, value in tensors.items():
            if key.startswith(prefix):
                index, slot = key[len(prefix) :].split("/")
                slots.setdefault(int(index), {})[slot] = value
        saved["state"] = slots
        opt.load_state_dict(saved)
    torch.set_rng_state(tensors["rng/torch"])
    cuda_states = [tensors[k] for k in sorted(tensors) if k.startswith("rng/cuda/")]
    if cuda_states and torch.cuda.is_available() and len(cuda_states) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda_states)
    return counters


def record_metrics(snapshot: Path, results: dict[str, dict[str, float]]) -> None:
    """Record the metric ``results`` computed at ``snapshot`` (by metric name) in the snapshot's directory."""
    try:
        atomic_write_json(snapshot / METRICS_JSON, results)
    except OSError as e:
        raise CheckpointError(f"cannot record the metrics of snapshot {snapshot.name}: {e.strerror or e}") from None


def recorded_metrics(snapshot: Path) -> dict[str, dict[str, float]] | None:
    """The metric results recorded at ``snapshot``, or None when none were (or the record is unreadable)."""
    try:
        results = json.loads((snapshot / METRICS_JSON).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return results if isinstance(results, dict) else None


def best_snapshot(run_dir: Path, stage: int, metric: str, key: str, lower: bool) -> tuple[Path, float] | None:
    """The snapshot of resolution stage ``stage`` whose recorded result ``key`` of ``metric`` is best (the
    lowest if ``lower``, else the highest), with that value; the earliest among equals, as a best-so-far
    record keeps the first. Snapshots without a finite recorded value are not candidates; None if none is."""
    best: tuple[Path, float] | None = None
    for path in list_snapshots(run_dir):
        try:
            counters = json.loads(read_small_text(path / STATE_JSON))
        except (OSError, ValueError, RecursionError):
            continue
        if not isinstance(counters, dict) or counters.get("stage") != stage:
            continue
        value = ((recorded_metrics(path) or {}).get(metric) or {}).get(key)
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            continue
        if best is None or (value < best[1] if lower else value > best[1]):
            best = (path, float(value))
    return best


def load_module_state(snapshot: Path, name: str, module: torch.nn.Module) -> None:
    """Load the weights and buffers that ``snapshot`` holds for ``name`` (e.g. ``'G_ema'``) into ``module``."""
    try:
        tensors = read_tensor_file(snapshot / STATE_WEIGHTS)
    except (SafetensorError, OSError) as e:
        raise CheckpointError(f"snapshot {snapshot} is unreadable ({e})") from None
    module.load_state_dict(_module_state(tensors, name, module, snapshot), strict=False)


def _module_state(
    tensors: dict[str, torch.Tensor], name: str, module: torch.nn.Module, path: Path
) -> dict[str, torch.Tensor]:
    """``name``'s entries of a snapshot's tensors, checked to cover ``module``'s state (frozen parts aside)."""
    prefix = f"{name}/"
    state = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
    own = module.state_dict()
    missing = set(own) - set(state) - _frozen_keys(module)
    if missing:
        raise CheckpointError(f"snapshot {path} does not match this run's {name}: missing {sorted(missing)[:3]}")
    wrong = sorted(k for k, v in state.items() if k in own and v.shape != own[k].shape)
    if wrong:
        raise CheckpointError(f"snapshot {path} does not match this run's {name}: wrong shape {wrong[:3]}")
    return state
