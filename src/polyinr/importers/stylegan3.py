"""NVIDIA's StyleGAN3 pickles (``training/networks_stylegan3.py``, configs T and R) → our StyleGAN3 generators.

A released network (``stylegan3-t-ffhq-1024x1024.pkl`` & co.) and a training snapshot are both a ``pickle`` of a
dict with ``G``, ``D``, ``G_ema``, ``augment_pipe`` and ``training_set_kwargs``, whose modules are StyleGAN
persistent classes carrying their source text (``module_src``). The restricted unpickler reads it without
importing or running any of it; this converter then reads ``G_ema``'s tensors and recorded settings:

- the synthesis layers are named ``L{index}_{size}_{channels}`` and keep their names here, so every size and
  channel count comes from the names and shapes; the layer schedule rebuilt from the settings must reproduce
  every name, and its filters must equal their ``up_filter`` / ``down_filter`` buffers, or the file is refused;
- the mapping's ``fc{i}`` become our mapping's layers; a conditional mapping's linear class embedding
  (``embed``, one-hot → ``w_dim``) becomes our class table: row ``c`` holds that class's embedding passed
  through the inverse of our projection's leaky ReLU, and the projection is the identity, so our mapping
  computes exactly their normalised embedding; their single ``w_avg`` becomes every class's.

Rendering then gives their images: same seed (``np.random.RandomState(seed).randn``), class, truncation, and
``--translate`` / ``--rotate`` (their ``transform`` = our grid, :func:`~polyinr.models.stylegan3.grid_from_transform`).
"""

from __future__ import annotations

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
from polyinr.models.stylegan3 import LayerSpec, StyleGAN3Config, layer_schedule

LAYER_KEY = re.compile(r"synthesis\.(L(\d+)_(\d+)_(\d+))\.weight")  # e.g. synthesis.L0_36_512.weight (XL too)
_FILTER_TOLERANCE = 1e-6


def stylegan3_config(src: Any, theirs: dict[str, torch.Tensor]) -> tuple[str, StyleGAN3Config]:
    """Our model name and config for NVIDIA's ``G_ema`` (its record and tensors)."""
    layers = sorted((int(m[2]), m[1], int(m[3]), int(m[4])) for k in theirs if (m := LAYER_KEY.fullmatch(k)))
    if not layers or [i for i, *_ in layers] != list(range(len(layers))):
        raise ImporterError("G_ema does not look like a StyleGAN3 generator: no synthesis layers L0_…, L1_…, …")
    num_layers = len(layers) - 1
    _, first_name, _, _ = layers[0]
    _, _, img_resolution, img_channels = layers[-1]
    conv_kernel = need_tensor(theirs, f"synthesis.{first_name}.weight", 4, "StyleGAN3").shape[-1]
    radial = theirs.get(f"synthesis.{first_name}.down_filter", torch.zeros(1)).ndim == 2
    synthesis = submodule_attrs(src, "G_ema", "synthesis")
    layer0 = submodule_attrs(src, "G_ema", f"synthesis.{first_name}")
    recorded = recorded_init_kwargs(synthesis)
    channels = [c for *_, c in layers[:-1]]
    channel_max = int(recorded.get("channel_max", max(channels)))
    channel_base = int(recorded.get("channel_base", channels[-1] * img_resolution))  # critical layers: base / res

    name = "stylegan3-r" if radial else "stylegan3-t"
    overrides = {
        **mapping_config(src, theirs, "StyleGAN3"),
        "img_resolution": img_resolution,
        "img_channels": img_channels,
        "channel_base": channel_base,
        "channel_max": channel_max,
        "num_layers": num_layers,
        "num_critical": int(recorded_number(synthesis, "num_critical", 2)),
        "margin_size": int(recorded_number(synthesis, "margin_size", 10)),
        "output_scale": float(recorded_number(synthesis, "output_scale", 0.25)),
        "first_cutoff": float(recorded.get("first_cutoff", 2.0)),
        "first_stopband": float(recorded.get("first_stopband", 2**2.1)),
        "last_stopband_rel": float(recorded.get("last_stopband_rel", 2**0.3)),
        "conv_kernel": conv_kernel,
        "use_radial_filters": radial,
        "filter_size": int(recorded.get("filter_size", 6)),
        "lrelu_upsampling": int(recorded.get("lrelu_upsampling", 2)),
        "conv_clamp": float(recorded_number(layer0, "conv_clamp", 256)),
        "magnitude_ema_beta": float(recorded_number(layer0, "magnitude_ema_beta", 0.999)),
    }
    return name, resolve_config(name, **overrides)


def check_schedule(specs: list[LayerSpec], theirs: dict[str, torch.Tensor], network: str) -> None:
    """Before anything is built: the layer schedule rebuilt from the recorded settings must name exactly the
    pickle's layers, and each layer's filters must have the taps of the pickle's ``up_filter`` / ``down_filter``
    (absent for one tap), so no recorded filter size or upsampling designs filters larger than the file's."""
    expected = {f"synthesis.{s.name}.weight" for s in specs}
    found = {k for k in theirs if LAYER_KEY.fullmatch(k)}
    if expected != found:
        raise ImporterError(
            f"G_ema's layers {sorted(found)[:3]}… are not the {network} schedule of its settings "
            f"({sorted(expected)[:3]}…)"
        )
    for spec in specs:
        for buffer, taps, radial in (
            ("up_filter", spec.up_taps, False),
            ("down_filter", spec.down_taps, spec.down_radial),
        ):
            designed = None if taps == 1 else (taps, taps) if radial else (taps,)
            tensor = theirs.get(f"synthesis.{spec.name}.{buffer}")
            held = None if tensor is None else tuple(tensor.shape)
            if held != designed:
                raise ImporterError(
                    f"G_ema's synthesis.{spec.name}.{buffer} has shape {held}, but the settings it "
                    f"records design {designed}"
                )


def check_filters(G: Generator, theirs: dict[str, torch.Tensor]) -> None:
    """Every layer's ``up_filter`` / ``down_filter`` in ``theirs`` must be the one our schedule designs for it
    (within :data:`_FILTER_TOLERANCE`): the settings read from the pickle are then the ones it was built with."""
    for layer_name, layer in zip(G.synthesis.layer_names, G.synthesis.layers(), strict=True):
        for buffer in ("up_filter", "down_filter"):
            mine, key = getattr(layer, buffer), f"synthesis.{layer_name}.{buffer}"
            found = theirs.get(key)
            same = (mine is None and found is None) or (
                mine is not None
                and found is not None
                and mine.shape == found.shape
                and float((mine - found.float()).abs().max()) <= _FILTER_TOLERANCE
            )
            if not same:
                raise ImporterError(f"G_ema's {key} differs from the filter its layer's settings design")


def unloaded_synthesis_tensor(key: str, value: torch.Tensor, notes: list[str]) -> dict[str, torch.Tensor] | None:
    """``{}`` for a tensor of a StyleGAN3-family synthesis (StyleGAN-XL's too) that ours does not load: the
    filters (ours designs them; :func:`check_filters` compares) and the input transform (grids set it here; a
    user's transform left in the pickle is noted in ``notes``); None for any other tensor."""
    if key.endswith((".up_filter", ".down_filter")):
        return {}
    if key == "synthesis.input.transform":
        if not torch.equal(value.float(), torch.eye(3)):
            notes.append("dropped synthesis.input.transform (a user transform left in the pickle; grids set it)")
        return {}
    return None


def stylegan3_from_pickle(data: Any) -> tuple[Generator, list[str]]:
    """Our generator from NVIDIA's pickle (as :func:`restricted_load` returns it), plus notes on what was dropped."""
    src, source_class, theirs = read_g_ema(data, "StyleGAN3")
    name, cfg = stylegan3_config(src, theirs)
    check_schedule(layer_schedule(cfg), theirs, "StyleGAN3")  # the schedule rebuilt from the settings is theirs
    G = build_generator(name, cfg, stored_bytes(theirs.values()))
    ours = G.state_dict()
    notes: list[str] = []
    check_filters(G, theirs)

    def read(key: str, value: torch.Tensor) -> dict[str, torch.Tensor] | None:
        if key.startswith("mapping."):
            return {}  # mapping_state, below
        return unloaded_synthesis_tensor(key, value, notes)

    state = g_ema_state(theirs, ours, f"StyleGAN3 {name}", read)
    state.update(mapping_state(src, theirs, G, f"StyleGAN3 {name}"))
    load_g_ema(G, state, f"StyleGAN3 {name}")
    notes.insert(
        0,
        f"read {source_class} as {name}: {cfg.img_resolution}x{cfg.img_resolution}, "
        f"{cfg.num_classes or 'no'} classes, {G.parameter_count():,} parameters",
    )
    return G, notes


@register_converter("stylegan3", help="NVIDIA's StyleGAN3 network pickle (.pkl; configs T and R)")
def convert(path: Path) -> Converted:
    """NVIDIA's ``*.pkl`` (released network or training snapshot) → our generator (their ``G_ema``)."""
    G, notes = stylegan3_from_pickle(restricted_load(path))
    return Converted(G, tuple(notes))
