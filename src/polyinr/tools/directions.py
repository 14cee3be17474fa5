"""Latent directions: moving samples along GANSpace's principal components of w, from one class to another, or
along directions from a file; shown as a sheet of strength (columns) against seed (rows).

- **Principal components** (GANSpace, Härkönen et al., NeurIPS 2020): sample many ``z``, map them to ``ws``
  (no truncation), and take the PCA of the ``w`` vectors at the edited ``ws`` indices (all of them by default;
  every model but InfinityGAN repeats one ``w``, so this is the PCA of ``w``). Component ``k`` is stored as
  ``σ_k · u_k`` (its unit vector times its standard deviation, sign fixed so its largest coordinate is positive),
  so a strength counts standard deviations, as GANSpace's ``sigma`` does.
- **Class edits** (StyleGAN-XL, Sauer et al., SIGGRAPH 2022): ``z`` kept, the class embedding moved from class
  ``A``'s row to ``B``'s; the strength is the fraction of the way (0 = ``A``, 1 = ``B``; beyond extrapolates).
- **Files**: a safetensors file with one float tensor ``directions [K, w_dim]`` (or ``[w_dim]``), in ``w``
  units: strength 1 adds the row once. ``--save-directions`` writes the principal components in this form, so
  ``file:F#k`` gives back ``pca:k``.

An edit changes only the ``ws`` indices ``layers`` (default: all); the rest keep the unedited sample's ``ws``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError, safe_open

from polyinr.atomic import atomic_save_tensors
from polyinr.errors import PolyinrError
from polyinr.image_io import check_memory, image_grid, to_uint8
from polyinr.models.generator import Generator
from polyinr.sampling import iter_ws, labels_for, latents_from_seeds
from polyinr.tools.edit import check_levels

DIRECTIONS_KEY = "directions"
PCA_BATCH = 1000  # samples mapped at a time while accumulating the PCA's moments


# ---------------------------------------------------------------------------- what to edit


@dataclass(frozen=True)
class PrincipalComponent:
    """``pca:K``: GANSpace's ``K``-th principal component of ``w`` (0 = the most variance)."""

    index: int


@dataclass(frozen=True)
class ClassEdit:
    """``class:A->B``: the class embedding moved from class ``source`` to class ``target``, ``z`` kept."""

    source: int
    target: int


@dataclass(frozen=True)
class DirectionFile:
    """``file:PATH`` or ``file:PATH#K``: row ``index`` of a directions file (None: the file holds one)."""

    path: Path
    index: int | None


Direction = PrincipalComponent | ClassEdit | DirectionFile
DIRECTION_FORMS = "pca:K, class:A->B or file:D.safetensors[#K]"


def parse_direction(text: str) -> Direction:
    """``'pca:3'``, ``'class:1->7'``, ``'file:d.safetensors'`` or ``'file:d.safetensors#2'`` → a direction."""
    kind, _, rest = str(text).partition(":")
    if kind == "pca" and re.fullmatch(r"\d+", rest):
        return PrincipalComponent(int(rest))
    if kind == "class" and (found := re.fullmatch(r"(\d+)->(\d+)", rest)):
        return ClassEdit(int(found[1]), int(found[2]))
    if kind == "file" and rest:
        path, sep, index = rest.rpartition("#")
        if sep and re.fullmatch(r"\d+", index):
            return DirectionFile(Path(path), int(index))
        return DirectionFile(Path(rest), None)
    raise PolyinrError(f"unknown direction {text!r}: use {DIRECTION_FORMS}")


def parse_strengths(text: str) -> list[float]:
    """``'-3,-1.5,0,1.5,3'`` (a list) or ``'-3:3:5'`` (``COUNT`` evenly spaced from ``START`` to ``STOP``)."""
    text = str(text).strip()
    try:
        if ":" in text:
            start, stop, count = text.split(":")
            if int(count) < 1:
                raise PolyinrError(f"a strength range needs at least 1 step, got {count}")
            values = np.linspace(float(start), float(stop), int(count)).tolist()
        else:
            values = [float(v) for v in text.split(",")]
    except ValueError:
        raise PolyinrError(f"strengths must look like -3,-1.5,0,1.5,3 or -3:3:5, got {text!r}") from None
    if not all(math.isfinite(v) for v in values):
        raise PolyinrError(f"strengths must be finite numbers, got {text!r}")
    return values


# ---------------------------------------------------------------------------- directions


@torch.no_grad()
def principal_directions(
    G: Generator,
    class_idx: int | None = None,
    layers: Sequence[int] | None = None,
    num_samples: int = 10_000,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """GANSpace's principal components ``[w_dim, w_dim]``, most variance first, each row ``σ_k · u_k``.

    The PCA is over the ``w`` vectors at ``ws`` indices ``layers`` (None: all) of seeds ``0 … num_samples − 1``
    (of ``class_idx``, for a conditional generator), mapped without truncation; moments accumulate in float64.
    """
    if num_samples < 2:
        raise PolyinrError(f"principal components need at least 2 samples, got {num_samples}")
    chosen = check_levels(range(G.num_ws) if layers is None else layers, G.num_ws)
    D = G.w_dim
    total, outer, count = torch.zeros(D, dtype=torch.float64), torch.zeros(D, D, dtype=torch.float64), 0
    for ws in iter_ws(G, range(num_samples), class_idx, device=device, batch_size=PCA_BATCH):
        rows = ws[:, chosen].reshape(-1, D).double().cpu()  # [b·len(chosen), D]
        total += rows.sum(dim=0)
        outer += rows.T @ rows
        count += len(rows)
    mean = total / count
    # Unbiased per sample (ddof 1, as GANSpace's estimators): each sample gives len(chosen) rows.
    covariance = (outer - count * torch.outer(mean, mean)) / (len(chosen) * (num_samples - 1))  # [D, D]
    variances, vectors = torch.linalg.eigh(covariance)  # ascending; columns are unit vectors
    variances, vectors = variances.flip(0).clamp_min(0), vectors.flip(1).T  # [D], [D, D] rows, most variance first
    largest = vectors.abs().argmax(dim=1, keepdim=True)
    vectors = vectors * vectors.gather(1, largest).sign()  # each row's largest coordinate positive
    return (vectors * variances.sqrt()[:, None]).float()


def save_directions(path: str | Path, directions: torch.Tensor) -> Path:
    """Write ``directions [K, w_dim]`` to the safetensors file ``path``, atomically, as :func:`load_directions`
    reads them."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_save_tensors(path, {DIRECTIONS_KEY: directions.detach().float().cpu().contiguous()}, {})


def load_directions(path: str | Path, w_dim: int) -> torch.Tensor:
    """The float32 ``directions [K, w_dim]`` of a safetensors file; a one-line error for a missing file, another
    format, a tensor of another shape or type, or values that are not finite."""
    path = Path(path)
    if not path.is_file():
        raise PolyinrError(f"direction file not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            if DIRECTIONS_KEY not in f.keys():  # noqa: SIM118 (safe_open is not a mapping)
                raise PolyinrError(f"{path} holds no {DIRECTIONS_KEY!r} tensor")
            directions = f.get_tensor(DIRECTIONS_KEY)
    except (SafetensorError, OSError, ValueError) as e:
        raise PolyinrError(f"{path} is not a safetensors file with a {DIRECTIONS_KEY!r} tensor: {e}") from None
    if not directions.dtype.is_floating_point:
        raise PolyinrError(f"{path}: directions must be floating point, got {directions.dtype}")
    if directions.ndim == 1:
        directions = directions[None]
    if directions.ndim != 2 or directions.shape[1] != w_dim or len(directions) == 0:
        raise PolyinrError(
            f"{path}: directions must be [K, {w_dim}] or [{w_dim}] for this generator, got {tuple(directions.shape)}"
        )
    if not torch.isfinite(directions).all():
        raise PolyinrError(f"{path}: directions hold NaN or infinite values")
    return directions.float()


def _pick(directions: torch.Tensor, index: int | None, where: str) -> torch.Tensor:
    """Row ``index`` of ``directions [K, w_dim]`` (None: the only row) → ``[w_dim]``."""
    K = len(directions)
    if index is None:
        if K != 1:
            raise PolyinrError(f"{where} holds {K} directions: pick one, e.g. {where}#0")
        return directions[0]
    if not 0 <= index < K:
        raise PolyinrError(f"{where} has directions 0..{K - 1}, not {index}")
    return directions[index]


# ---------------------------------------------------------------------------- edits


def moved_ws(
    ws: torch.Tensor, direction: torch.Tensor, strengths: Sequence[float], layers: Sequence[int]
) -> torch.Tensor:
    """``ws [N, L, D]`` moved along ``direction [D]`` by each strength at indices ``layers`` → ``[N, S, L, D]``."""
    steps = torch.tensor(list(strengths), dtype=ws.dtype, device=ws.device)[:, None] * direction.to(ws)  # [S, D]
    edited = ws.unsqueeze(1).repeat(1, len(steps), 1, 1)  # [N, S, L, D]
    edited[:, :, list(layers)] += steps[None, :, None]
    return edited


def class_edit_ws(
    G: Generator,
    z: torch.Tensor,
    edit: ClassEdit,
    strengths: Sequence[float],
    layers: Sequence[int],
    truncation_psi: float = 1.0,
    truncation_cutoff: int | None = None,
) -> torch.Tensor:
    """``z [N, z_dim]`` with the class embedding moved each strength's fraction from ``edit.source`` to
    ``edit.target`` at ``ws`` indices ``layers`` (the others stay ``edit.source``'s) → ``[N, S, L, D]``."""
    trunc = dict(truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff)
    start = G.mapping.interpolate_classes(z, edit.source, edit.target, 0.0, **trunc)  # [N, L, D]
    edited = start.unsqueeze(1).repeat(1, len(strengths), 1, 1)  # [N, S, L, D]
    for s, t in enumerate(strengths):
        moved = G.mapping.interpolate_classes(z, edit.source, edit.target, t, **trunc)
        edited[:, s, list(layers)] = moved[:, list(layers)]
    return edited


@dataclass(frozen=True)
class Edit:
    """The sheet, uint8 ``[N·H, S·W, 3]`` (seeds down, strengths across), and the principal components
    ``[w_dim, w_dim]`` when the edit computed them (else None)."""

    sheet: np.ndarray
    components: torch.Tensor | None


@torch.no_grad()
def edit_sheet(
    G: Generator,
    seeds: Sequence[int],
    direction: Direction,
    strengths: Sequence[float],
    layers: Sequence[int] | None = None,
    class_idx: int | None = None,
    truncation_psi: float = 1.0,
    truncation_cutoff: int | None = None,
    num_samples: int = 10_000,
    device: torch.device | str = "cpu",
) -> Edit:
    """Each seed moved along ``direction`` by each strength, at ``ws`` indices ``layers`` (None: all).

    ``class_idx`` is the seeds' class for a conditional generator (a class edit sets it instead);
    ``num_samples`` is the number of samples of a principal-component analysis.
    """
    if len(seeds) == 0 or len(strengths) == 0:
        raise PolyinrError("an edit needs at least one seed and one strength")
    chosen = check_levels(range(G.num_ws) if layers is None else layers, G.num_ws)
    H, W = G.native_grid().shape
    check_memory(
        len(seeds) * len(strengths) * (H * W * 3 + G.num_ws * G.w_dim * 4),
        f"a sheet of {len(seeds):,} seeds by {len(strengths):,} strengths",
        "give fewer",
    )
    z = latents_from_seeds(seeds, G.z_dim).to(device)  # [N, z_dim]
    trunc = dict(truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff)
    components = None
    if isinstance(direction, ClassEdit):
        if class_idx is not None:
            raise PolyinrError("a class edit sets the class itself (class:A->B starts at A): give no class")
        edited = class_edit_ws(G, z, direction, strengths, chosen, **trunc)
    else:
        c = labels_for(G, class_idx, len(seeds), device)
        if isinstance(direction, PrincipalComponent):
            if direction.index >= G.w_dim:
                raise PolyinrError(f"w has {G.w_dim} principal components (0..{G.w_dim - 1}), not {direction.index}")
            components = principal_directions(G, class_idx, chosen, num_samples, device)
            vector = components[direction.index]
        else:
            vector = _pick(load_directions(direction.path, G.w_dim), direction.index, f"file:{direction.path}")
        edited = moved_ws(G.mapping(z, c, **trunc), vector, strengths, chosen)
    grid = G.native_grid()
    images = [image for row in edited for image in to_uint8(G.synthesize(row, grid))]  # N·S images [H, W, 3]
    return Edit(image_grid(images, cols=len(strengths), rows=len(seeds)), components)
