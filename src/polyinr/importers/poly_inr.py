"""The Poly-INR authors' training snapshots → our :class:`PolyINRGenerator`, converter ``poly-inr``.

The authors (Rajhans0/Poly_INR, a fork of StyleGAN-XL) publish training snapshots written with ``dill.dump``: a
dict of live modules (``G``, ``D``, ``G_ema``, ``augment_pipe``, ``training_set_kwargs``, ``progress``) whose
classes live in their repository, some of them StyleGAN persistent classes, and a discriminator holding
pickled functions and code objects. The snapshot is read by the restricted unpickler;
:func:`poly_inr_from_snapshot` reads ``G_ema`` (``training/networks_gmgan.py``) from those records, maps its
parameter names to ours (reading every size from the tensors' shapes and checking each one loudly), and
reports how far the stored (trained) input grid is from the uniform grid.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from polyinr.grid import Grid
from polyinr.importers.registry import Converted, build_generator, register_converter, stored_bytes
from polyinr.importers.stylegan_pickle import as_dict, module_record, module_tensors, plain_number, submodule_attrs
from polyinr.importers.unpickle import ImporterError, describe, restricted_load
from polyinr.models.poly_inr import PolyINRGenerator
from polyinr.models.registry import resolve_config

NAME = "poly-inr"  # the converter's name; "poly-inr-official" is accepted too

_LEVEL0_PARTS = {
    "fc0_3": "grid_matrix",
    "fc0_4": "grid_shift",
    "fc0_1": "coord_weight",
    "fc0_2": "coord_bias",
    "fc0_0": "linear",
}
_BLOCK_PARTS = {
    "fc0_5": "style",
    "fc0_3": "grid_matrix",
    "fc0_4": "grid_shift",
    "fc0_1": "coord_weight",
    "fc0_2": "coord_bias",
    "fb0.fc1": "linear",
}
_SYNTHESIS_KEY = re.compile(r"synthesis\.(?:fb(\d+)\.)?(fc0_\d|fb0\.fc1)\.(weight|bias)")
_MAPPING_KEY = re.compile(r"mapping\.fc(\d+)\.(weight|bias)")
_SAME_NAMES = frozenset(
    {
        "synthesis.to_rgb.weight",
        "synthesis.to_rgb.bias",
        "mapping.w_avg",
        "mapping.embed.weight",
        "mapping.embed_proj.weight",
        "mapping.embed_proj.bias",
    }
)


def _our_name(key: str) -> str | None:
    """Our state-dict name for one of the authors' ``G_ema`` keys; None when it has no counterpart."""
    if m := _SYNTHESIS_KEY.fullmatch(key):
        level = int(m[1] or 0)
        part = (_BLOCK_PARTS if m[1] else _LEVEL0_PARTS).get(m[2])
        return None if part is None or (m[1] and level == 0) else f"synthesis.levels.{level}.{part}.{m[3]}"
    if m := _MAPPING_KEY.fullmatch(key):
        return f"mapping.layers.{m[1]}.{m[2]}"
    return key if key in _SAME_NAMES else None


@dataclass(frozen=True)
class PolyINRReport:
    """What :func:`poly_inr_from_snapshot` read and measured; :meth:`lines` is the text for people."""

    source_class: str  # the authors' generator class
    channels: int  # n
    num_levels: int
    img_resolution: int  # native resolution: the side of the stored grid
    num_classes: int  # 0 = unconditional
    z_dim: int
    grid_max_deviation: float  # stored grid vs the uniform grid, max |Δ| in frame units
    grid_mean_deviation: float  # mean |Δ| in frame units
    dataset_resolution: int | None  # the authors' training_set_kwargs['resolution'], if recorded
    dataset_labels: bool | None  # training_set_kwargs['use_labels'], if recorded
    training_kimg: float | None  # progress['cur_nimg'] / 1000, if recorded
    dropped: tuple[str, ...] = ()  # what of theirs has no counterpart in ours, and why

    @property
    def pixel_step(self) -> float:
        """One pixel of the native grid in frame units."""
        return 1.0 / max(self.img_resolution - 1, 1)

    def lines(self) -> list[str]:
        step = self.pixel_step
        labels = {None: "not recorded", True: "yes", False: "no"}[self.dataset_labels]
        lines = [
            f"read {self.source_class} ({NAME}): n={self.channels}, {self.num_levels} levels, "
            f"z_dim={self.z_dim}, {self.num_classes or 'no'} classes, native {self.img_resolution}x"
            f"{self.img_resolution}",
            f"stored input grid vs uniform: max {self.grid_max_deviation:.3g} ({self.grid_max_deviation / step:.3g} "
            f"px), mean {self.grid_mean_deviation:.3g} ({self.grid_mean_deviation / step:.3g} px); used only at "
            f"the native frame, other grids are uniform",
            f"authors' dataset: resolution {self.dataset_resolution or 'not recorded'}, labels {labels}, "
            f"classes {self.num_classes}"
            + ("" if self.training_kimg is None else f", trained {self.training_kimg:g} kimg"),
        ]
        return lines + [f"dropped: {d}" for d in self.dropped]


def _need(tensors: dict[str, torch.Tensor], key: str, ndim: int, where: str) -> torch.Tensor:
    if key not in tensors:
        raise ImporterError(f"{where} does not look like a Poly-INR generator: it has no {key}")
    t = tensors[key]
    if t.ndim != ndim:
        raise ImporterError(f"{where}: {key} has shape {tuple(t.shape)}, expected {ndim} dimensions")
    return t


def _check_attr(attrs: dict[str, Any], name: str, expected: Any, where: str) -> None:
    """If the authors recorded ``name``, it must agree with what the tensors say."""
    value = plain_number(attrs.get(name, expected))
    if isinstance(expected, float) and isinstance(value, (int, float)):
        ok = math.isclose(value, expected, rel_tol=1e-5)
    else:
        ok = value == expected
    if not ok:
        raise ImporterError(f"{where}.{name} is {describe(value)}, but the tensors say {expected!r}")


def _snapshot_info(snapshot: dict[str, Any]) -> tuple[int | None, bool | None, float | None]:
    """Dataset resolution, use of labels and kimg from a snapshot's ``training_set_kwargs`` / ``progress``."""
    kwargs, progress = as_dict(snapshot.get("training_set_kwargs")), as_dict(snapshot.get("progress"))
    resolution, labels = plain_number(kwargs.get("resolution")), plain_number(kwargs.get("use_labels"))
    nimg = plain_number(progress.get("cur_nimg"))
    if isinstance(nimg, torch.Tensor) and nimg.numel() == 1:
        nimg = int(nimg.item())
    return (
        resolution if isinstance(resolution, int) else None,
        labels if isinstance(labels, bool) else None,
        nimg / 1000 if isinstance(nimg, int) else None,
    )


def poly_inr_from_snapshot(snapshot: Any) -> tuple[PolyINRGenerator, PolyINRReport]:
    """Our :class:`PolyINRGenerator` from the authors' snapshot (as :func:`restricted_load` returns it).

    Reads ``G_ema``; every size comes from the tensors' shapes and every recorded attribute is checked
    against them. The stored input grid ``[1, R·R, 2]`` becomes ``synthesis.input_grid`` ``[R·R, 2]``, so at
    the native frame ours computes exactly what theirs does; other grids are uniform.
    """
    if not isinstance(snapshot, dict) or "G_ema" not in snapshot:
        found = sorted(map(str, snapshot)) if isinstance(snapshot, dict) else type(snapshot).__name__
        raise ImporterError(
            f"not a Poly-INR / StyleGAN-XL training snapshot: expected a dict with G_ema, found {found}"
        )
    src = snapshot["G_ema"]
    source_class, _ = module_record(src, "G_ema")
    where = f"G_ema ({source_class})"
    theirs = module_tensors(src, "G_ema")

    # Sizes, from the shapes.
    n = _need(theirs, "synthesis.fc0_0.weight", 2, where).shape[0]
    w_dim = _need(theirs, "synthesis.fc0_1.weight", 2, where).shape[1]
    blocks = sorted({int(m[1]) for k in theirs if (m := re.match(r"synthesis\.fb(\d+)\.", k))})
    num_levels = len(blocks) + 1
    if blocks != list(range(1, num_levels)):
        raise ImporterError(f"{where}: synthesis blocks are fb{blocks}, expected fb1..fb{num_levels - 1}")
    mapping_layers = len([k for k in theirs if _MAPPING_KEY.fullmatch(k) and k.endswith(".weight")])
    conditional = "mapping.embed_proj.weight" in theirs
    w_avg = _need(theirs, "mapping.w_avg", 2 if conditional else 1, where)  # [c_dim, w_dim] or [w_dim]
    num_classes = w_avg.shape[0] if conditional else 0
    fc0_in = _need(theirs, "mapping.fc0.weight", 2, where).shape[1]
    z_dim = fc0_in // 2 if conditional else fc0_in
    grid = _need(theirs, "synthesis.grid", 3, where)  # [1, R·R, 2], the Parameter the synthesis reads
    resolution = math.isqrt(grid.shape[1])
    if grid.shape[0] != 1 or grid.shape[2] != 2 or resolution**2 != grid.shape[1]:
        raise ImporterError(f"{where}: synthesis.grid is {tuple(grid.shape)}, expected a square grid [1, R·R, 2]")
    grid = grid[0]  # [R·R, 2] (row, col)
    to_rgb = _need(theirs, "synthesis.to_rgb.weight", 4, where)  # [C, n, 1, 1]
    if to_rgb.shape[1:] != (n, 1, 1):
        raise ImporterError(f"{where}: to_rgb weight is {tuple(to_rgb.shape)}, expected a 1x1 convolution from {n}")
    embed = theirs.get("mapping.embed.weight")  # [rows, embed_dim], rows ≥ c_dim (1000 ImageNet classes)
    embed_dim = embed.shape[1] if embed is not None and embed.ndim == 2 else 320

    # What the authors recorded must agree with the shapes.
    mapping = submodule_attrs(src, "G_ema", "mapping")
    for name, value in dict(
        z_dim=z_dim, c_dim=num_classes, w_dim=w_dim, num_ws=num_levels, num_layers=mapping_layers
    ).items():
        _check_attr(mapping, name, value, "G_ema.mapping")
    synthesis = submodule_attrs(src, "G_ema", "synthesis")
    for name, value in dict(img_resolution=resolution, z_dim=w_dim, z_dim1=n, nc=to_rgb.shape[0]).items():
        _check_attr(synthesis, name, value, "G_ema.synthesis")
    lr_multiplier = plain_number(submodule_attrs(src, "G_ema", "mapping.fc0").get("bias_gain", 0.1))
    w_avg_beta = plain_number(mapping.get("w_avg_beta", 0.998))

    mapping_cfg = dict(
        z_dim=z_dim,
        w_dim=w_dim,
        num_classes=num_classes,
        embed_dim=embed_dim,
        num_layers=mapping_layers,
        lr_multiplier=float(lr_multiplier),
        w_avg_beta=float(w_avg_beta),
    )
    cfg = resolve_config(
        "poly-inr",
        channels=n,
        num_levels=num_levels,
        img_resolution=resolution,
        img_channels=to_rgb.shape[0],
        stored_grid=True,
        mapping=mapping_cfg,
    )
    G = build_generator("poly-inr", cfg, stored_bytes(theirs.values()))
    ours = G.state_dict()

    # Their names → ours; anything left over on either side, or of another shape, is an error.
    state: dict[str, torch.Tensor] = {"synthesis.input_grid": grid}
    source_of = {"synthesis.input_grid": "synthesis.grid"}  # our name → theirs
    dropped: list[str] = []
    unexpected: list[str] = []
    for key, value in theirs.items():
        if key == "synthesis.grid":
            continue  # already in state
        if key == "gridt":
            if not torch.equal(value.reshape(grid.shape), grid):
                dropped.append("gridt (the generator's copy of the grid; differs from synthesis.grid, which is used)")
            continue
        if key == "mapping.embed.weight" and not conditional:
            dropped.append(f"mapping.embed.weight {tuple(value.shape)} (unused: the generator is unconditional)")
            continue
        name = _our_name(key)
        if name is None or name not in ours or name in state:
            unexpected.append(key)
            continue
        if key == "mapping.embed.weight" and value.shape[0] > num_classes:
            dropped.append(
                f"rows {num_classes}..{value.shape[0] - 1} of mapping.embed.weight (unused: the generator "
                f"has {num_classes} classes)"
            )
            value = value[:num_classes]
        elif key == "synthesis.to_rgb.weight":
            value = value.flatten(1)  # 1×1 convolution [C, n, 1, 1] → linear [C, n]
        elif key == "mapping.w_avg" and not conditional:
            value = value.unsqueeze(0)  # [w_dim] → one row [1, w_dim]
        state[name], source_of[name] = value, key
    missing = sorted(set(ours) - set(state))
    wrong = sorted(
        f"{source_of[k]} {tuple(v.shape)} for {k} {tuple(ours[k].shape)}"
        for k, v in state.items()
        if v.shape != ours[k].shape
    )
    problems = (("has unexpected", sorted(unexpected)), ("lacks what ours needs for", missing), ("mis-shaped", wrong))
    for problem, keys in problems:
        if keys:
            raise ImporterError(f"{where} does not match Poly-INR: {problem} {keys[:6]}{'…' if len(keys) > 6 else ''}")
    _check_gains(src, G)
    G.load_state_dict(state, strict=True)
    G.eval().requires_grad_(False)

    uniform = Grid.frame(resolution).coords(dtype=torch.float64).view(-1, 2)
    deviation = (grid.double() - uniform).abs()
    dataset_resolution, dataset_labels, kimg = _snapshot_info(snapshot)
    report = PolyINRReport(
        source_class=source_class,
        channels=n,
        num_levels=num_levels,
        img_resolution=resolution,
        num_classes=num_classes,
        z_dim=z_dim,
        grid_max_deviation=float(deviation.max()),
        grid_mean_deviation=float(deviation.mean()),
        dataset_resolution=dataset_resolution,
        dataset_labels=dataset_labels,
        training_kimg=kimg,
        dropped=tuple(dropped),
    )
    return G, report


def _check_gains(src: Any, G: PolyINRGenerator) -> None:
    """Their equalised-lr layers must scale and activate exactly as ours do (gains are code, not weights)."""
    pairs = [(f"mapping.fc{i}", layer) for i, layer in enumerate(G.mapping.layers)]
    if G.mapping.embed_proj is not None:
        pairs.append(("mapping.embed_proj", G.mapping.embed_proj))
    pairs += [(f"synthesis.fb{i}.fc0_5", level.style) for i, level in enumerate(G.synthesis.levels) if i > 0]
    for path, layer in pairs:
        attrs = submodule_attrs(src, "G_ema", path)
        for name in ("weight_gain", "bias_gain"):
            _check_attr(attrs, name, float(getattr(layer, name)), f"G_ema.{path}")
        _check_attr(attrs, "activation", layer.activation, f"G_ema.{path}")


@register_converter(
    NAME,
    aliases=("poly-inr-official",),
    help="the Poly-INR authors' training snapshot (.pkl, dill; or a torch.save archive)",
)
def convert(path: Path) -> Converted:
    """The authors' ``network-snapshot-*.pkl`` / ``best_model.pkl`` → our generator and what was read."""
    G, report = poly_inr_from_snapshot(restricted_load(path))
    provenance = {
        "source_class": report.source_class,
        "grid_max_deviation": report.grid_max_deviation,
        "grid_mean_deviation": report.grid_mean_deviation,
    }
    return Converted(G, tuple(report.lines()), provenance)
