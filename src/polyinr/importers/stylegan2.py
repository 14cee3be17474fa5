"""NVIDIA's StyleGAN2 pickles → our StyleGAN2 generator.

Two code bases write them: StyleGAN2-ADA PyTorch (``training/networks.py``) and the ``stylegan3`` repository
with ``--cfg=stylegan2`` (``training/networks_stylegan2.py``). Both pickle a dict with ``G``, ``D``, ``G_ema``,
``augment_pipe`` and ``training_set_kwargs`` whose modules are StyleGAN persistent classes; the generator's
tensors have the same names in both. The restricted unpickler reads the file without running any of it; this
converter reads ``G_ema``:

- sizes come from the tensors: blocks ``synthesis.b4`` … ``synthesis.bR`` give the resolution, their weights the
  channels, ``mapping.fc0`` … the mapping; the recorded ``channel_base`` / ``channel_max`` must reproduce every
  block's channels, and every recorded setting is checked against what our generator does (skip architecture,
  3×3 kernels, noise inputs, leaky ReLU, the ``[1, 3, 3, 1]`` filter) *before* anything is built, on the meta
  device, so a file that says one thing and holds another is refused in one line;
- the mapping's ``fc{i}`` become our mapping's layers and a conditional mapping's linear class embedding becomes
  our class table as the StyleGAN3 converter does (:func:`~polyinr.importers.stylegan_pickle.mapping_state`);
- the synthesis keeps their names (``b{res}.conv0`` / ``conv1`` / ``torgb`` / ``const``, ``noise_const``,
  ``noise_strength``), so every other tensor maps one to one.

Rendering then gives ``gen_images.py``'s images: same seed (``np.random.RandomState(seed).randn``), class,
truncation, noise ``const``.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import torch

from polyinr.importers.registry import Converted, build_generator, register_converter, stored_bytes
from polyinr.importers.stylegan_pickle import (
    g_ema_state,
    load_g_ema,
    mapping_config,
    mapping_state,
    need_tensor,
    read_g_ema,
    recorded_init_kwargs,
    recorded_number,
    submodule_attrs,
)
from polyinr.importers.unpickle import ImporterError, restricted_load
from polyinr.models.generator import Generator
from polyinr.models.registry import resolve_config
from polyinr.models.stylegan2 import RESAMPLE_TAPS, StyleGAN2Config, resample_taps

BLOCK_KEY = re.compile(r"synthesis\.b(\d+)\.conv1\.weight")  # one per block, the first (b4) included


def _require(condition: bool, what: str) -> None:
    if not condition:
        raise ImporterError(f"G_ema is a StyleGAN2 that ours does not compute: {what}")


def stylegan2_config(src: Any, theirs: dict[str, torch.Tensor]) -> StyleGAN2Config:
    """Our config for NVIDIA's ``G_ema`` (its record and tensors), every recorded setting checked against the
    tensors and against what our generator computes."""
    resolutions = sorted(int(m[1]) for k in theirs if (m := BLOCK_KEY.fullmatch(k)))
    if not resolutions:
        raise ImporterError("G_ema does not look like a StyleGAN2 generator: no synthesis blocks b4, b8, …")
    img_resolution = resolutions[-1]
    if resolutions != [2**i for i in range(2, int(math.log2(img_resolution)) + 1)] or img_resolution & (
        img_resolution - 1
    ):
        raise ImporterError(f"G_ema's synthesis blocks {resolutions} are not 4, 8, 16, … up to a power of two")
    channels = {r: need_tensor(theirs, f"synthesis.b{r}.conv1.weight", 4, "StyleGAN2").shape[0] for r in resolutions}
    img_channels = need_tensor(theirs, f"synthesis.b{img_resolution}.torgb.weight", 4, "StyleGAN2").shape[0]

    synthesis = submodule_attrs(src, "G_ema", "synthesis")
    recorded = recorded_init_kwargs(synthesis)
    channel_max = int(recorded.get("channel_max", max(channels.values())))
    channel_base = int(recorded.get("channel_base", channels[img_resolution] * img_resolution))
    expected = {r: min(channel_base // r, channel_max) for r in resolutions}
    if expected != channels:
        raise ImporterError(
            f"G_ema's block channels {list(channels.values())} are not those of its recorded "
            f"channel_base {channel_base} and channel_max {channel_max}"
        )

    for r in resolutions:  # the architecture our generator computes, read from each block before building
        block = submodule_attrs(src, "G_ema", f"synthesis.b{r}")
        _require(block.get("architecture", "skip") == "skip", f"block b{r} is '{block.get('architecture')}', not skip")
        _require(f"synthesis.b{r}.torgb.weight" in theirs, f"block b{r} has no ToRGB (not the skip architecture)")
        for layer in ("conv1",) if r == 4 else ("conv0", "conv1"):
            name = f"synthesis.b{r}.{layer}"
            weight = need_tensor(theirs, f"{name}.weight", 4, "StyleGAN2")
            _require(weight.shape[-2:] == (3, 3), f"{name} has a {tuple(weight.shape[-2:])} kernel, not 3x3")
            _require(f"{name}.noise_strength" in theirs, f"{name} has no noise input")
            attrs = submodule_attrs(src, "G_ema", f"synthesis.b{r}.{layer}")
            _require(attrs.get("activation", "lrelu") == "lrelu", f"{name} uses {attrs.get('activation')!r}")
        for name in (f"synthesis.b{r}", f"synthesis.b{r}.conv0", f"synthesis.b{r}.conv1"):
            taps = theirs.get(f"{name}.resample_filter")
            if taps is not None and not (
                taps.shape == (4, 4) and torch.allclose(taps.float(), resample_taps().outer(resample_taps()), atol=1e-7)
            ):
                raise ImporterError(f"G_ema's {name}.resample_filter is not the {list(RESAMPLE_TAPS)} filter")
    layer = submodule_attrs(src, "G_ema", f"synthesis.b{img_resolution}.conv1")
    conv_clamp = 0.0 if layer.get("conv_clamp", 256) is None else float(recorded_number(layer, "conv_clamp", 256))

    overrides = {
        **mapping_config(src, theirs, "StyleGAN2"),
        "img_resolution": img_resolution,
        "img_channels": img_channels,
        "channel_base": channel_base,
        "channel_max": channel_max,
        "conv_clamp": conv_clamp,
    }
    fc0 = submodule_attrs(src, "G_ema", "mapping.fc0")
    _require(fc0.get("activation", "lrelu") == "lrelu", f"its mapping uses {fc0.get('activation')!r}")
    mapping = submodule_attrs(src, "G_ema", "mapping")
    held = {
        "z_dim": overrides["mapping.z_dim"],
        "c_dim": overrides["mapping.num_classes"],
        "w_dim": overrides["mapping.w_dim"],
        "img_resolution": img_resolution,
        "img_channels": img_channels,
        "num_ws": 2 * len(resolutions),
        "num_layers": overrides["mapping.num_layers"],
    }
    for attrs in (submodule_attrs(src, "G_ema", ""), mapping):
        for name, value in recorded_init_kwargs(attrs).items():
            if name in held and value != held[name]:
                raise ImporterError(f"G_ema records {name} = {value} but its tensors hold {held[name]}")
    return resolve_config("stylegan2", **overrides)


def stylegan2_from_pickle(data: Any) -> tuple[Generator, list[str]]:
    """Our generator from NVIDIA's pickle (as :func:`restricted_load` returns it), plus a note on what was read."""
    src, source_class, theirs = read_g_ema(data, "StyleGAN2")
    cfg = stylegan2_config(src, theirs)
    G = build_generator("stylegan2", cfg, stored_bytes(theirs.values()))
    ours = G.state_dict()

    def read(key: str, value: torch.Tensor) -> dict[str, torch.Tensor] | None:
        if key.endswith(".resample_filter") or key.startswith("mapping."):
            return {}  # filters: checked above, ours is fixed by the architecture; the mapping: mapping_state, below
        return None

    state = g_ema_state(theirs, ours, "StyleGAN2", read)
    state.update(mapping_state(src, theirs, G, "StyleGAN2"))
    load_g_ema(G, state, "StyleGAN2")
    R = cfg.img_resolution
    notes = [
        f"read {source_class} as stylegan2: {R}x{R}, {cfg.num_classes or 'no'} classes, "
        f"{G.parameter_count():,} parameters"
    ]
    return G, notes


@register_converter("stylegan2", help="NVIDIA's StyleGAN2 network pickle (.pkl; StyleGAN2-ADA or --cfg=stylegan2)")
def convert(path: Path) -> Converted:
    """NVIDIA's ``*.pkl`` (released network or training snapshot) → our generator (their ``G_ema``)."""
    G, notes = stylegan2_from_pickle(restricted_load(path))
    return Converted(G, tuple(notes))
