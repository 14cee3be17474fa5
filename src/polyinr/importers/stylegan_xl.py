"""The StyleGAN-XL authors' pickles (``training/networks_stylegan3_resetting.py``) → our StyleGAN-XL generator.

A snapshot (``network-snapshot.pkl``, ``best_model.pkl``) or a released network is a ``dill`` pickle of a dict
with ``G_ema`` (beside ``G``, ``D``, ``training_set_kwargs``, ``progress``); the generator is a stem
``Generator`` or a ``SuperresGenerator`` grown from one, all StyleGAN persistent classes carrying their source
text. The restricted unpickler reads it without importing or running any of it; this converter then reads
``G_ema``'s tensors and recorded settings:

- the stem's settings are its synthesis' constructor arguments (``_init_kwargs``: stem resolution, channel base
  and maximum, number of layers, filter settings); a grown network's ``head_layers`` and last growth factor
  are the ``SuperresGenerator``'s; the earlier growth factors are those whose schedule
  (:func:`~polyinr.models.stylegan_xl.xl_schedule`) reproduces every layer name (``L{index}_{size}_{channels}``),
  and every rebuilt filter must equal the pickle's ``up_filter`` / ``down_filter``, or the file is refused;
- the mapping (``fc{i}``, the 320-wide class table ``embed``, ``embed_proj``, per-class ``w_avg``) maps one to
  one onto ours; an unconditional network's class table (loaded by their code even when unused) is dropped.

Rendering then gives their images for the same seed, class, truncation and ``--translate`` / ``--rotate``.
"""

from __future__ import annotations

import itertools
import math
import re
from pathlib import Path
from typing import Any

import torch

from polyinr.importers.registry import Converted, build_generator, register_converter, stored_bytes
from polyinr.importers.stylegan3 import LAYER_KEY, check_filters, check_schedule, unloaded_synthesis_tensor
from polyinr.importers.stylegan_pickle import (
    g_ema_state,
    load_g_ema,
    module_record,
    need_tensor,
    read_g_ema,
    recorded_init_kwargs,
    recorded_number,
    submodule_attrs,
)
from polyinr.importers.unpickle import ImporterError, restricted_load
from polyinr.models.registry import resolve_config
from polyinr.models.stylegan_xl import UP_FACTORS, StyleGANXL, StyleGANXLConfig, xl_schedule

_MAX_STAGES = 10  # growth stages searched for (the authors grow 16² to 1024² in 6)


def stylegan_xl_config(src: Any, theirs: dict[str, torch.Tensor]) -> StyleGANXLConfig:
    """Our config for the authors' ``G_ema`` (its record and tensors)."""
    source_class, root = module_record(src, "G_ema")
    layers = sorted((int(m[2]), m[1], int(m[3]), int(m[4])) for k in theirs if (m := LAYER_KEY.fullmatch(k)))
    if not layers:
        raise ImporterError("G_ema does not look like a StyleGAN-XL generator: no synthesis layers L0_…")
    names = [name for _, name, _, _ in layers]
    _, _, img_resolution, img_channels = layers[-1]
    synthesis = recorded_init_kwargs(submodule_attrs(src, "G_ema", "synthesis"))
    stem_resolution = int(synthesis.get("img_resolution", img_resolution))
    num_layers = int(synthesis.get("num_layers", 14))
    first = f"synthesis.{names[0]}"
    conv_kernel = need_tensor(theirs, f"{first}.weight", 4, "StyleGAN-XL").shape[-1]
    radial = theirs.get(f"{first}.down_filter", torch.zeros(1)).ndim == 2
    layer0 = submodule_attrs(src, "G_ema", f"synthesis.{names[0]}")

    fc = sorted(int(m[1]) for k in theirs if (m := re.fullmatch(r"mapping\.fc(\d+)\.weight", k)))
    if not fc or fc != list(range(len(fc))):
        raise ImporterError("G_ema's mapping has no fc0, fc1, … layers")
    mapping = submodule_attrs(src, "G_ema", "mapping")
    num_classes = int(recorded_number(mapping, "c_dim", 0))
    w_dim = need_tensor(theirs, f"mapping.fc{fc[-1]}.weight", 2, "StyleGAN-XL").shape[0]
    z_dim = need_tensor(theirs, "mapping.fc0.weight", 2, "StyleGAN-XL").shape[1] // (2 if num_classes else 1)
    embed_dim = theirs["mapping.embed.weight"].shape[1] if "mapping.embed.weight" in theirs else 320
    fc0 = submodule_attrs(src, "G_ema", "mapping.fc0")

    num_critical = int(synthesis.get("num_critical", 2))
    counts = dict(num_layers=num_layers, num_critical=num_critical)  # recorded layer counts, checked before use
    head_layers, up_factors_options = 7, [()]
    if stem_resolution != img_resolution:
        grown = recorded_init_kwargs(root)
        head_layers = counts["head_layers"] = int(grown.get("head_layers", recorded_number(root, "head_layers", 7)))
        last_factor = int(grown.get("up_factor", recorded_number(root, "up_factor", 2)))
    for name, count in counts.items():
        if not 0 <= count <= len(names):
            raise ImporterError(
                f"{source_class} records {name} = {count:,}, but its tensors hold {len(names)} synthesis layers"
            )
    if stem_resolution != img_resolution:
        kept = num_layers - num_critical
        per_stage, last_stage = head_layers - 2, head_layers + 1  # layers a stage keeps / the last stage adds
        stages, rest = divmod(len(names) - kept - last_stage, max(per_stage, 1))
        if rest or stages < 0 or per_stage < 1 or stages > _MAX_STAGES:  # the search below is |UP_FACTORS|**stages
            raise ImporterError(
                f"{source_class}'s {len(names)} layers are not a {stem_resolution}x{stem_resolution} "
                f"stem of {num_layers} layers grown by heads of {head_layers}"
            )
        up_factors_options = [
            (*f, last_factor)
            for f in itertools.product(UP_FACTORS, repeat=stages)
            if stem_resolution * math.prod(f) * last_factor == img_resolution
        ]
    overrides = {
        "mapping.z_dim": z_dim,
        "mapping.w_dim": w_dim,
        "mapping.num_classes": num_classes,
        "mapping.embed_dim": embed_dim,
        "mapping.num_layers": len(fc),
        "mapping.lr_multiplier": float(recorded_number(fc0, "bias_gain", 0.01)),
        "mapping.w_avg_beta": float(recorded_number(mapping, "w_avg_beta", 0.998)),
        "stem_resolution": stem_resolution,
        "img_resolution": img_resolution,
        "img_channels": img_channels,
        "head_layers": head_layers,
        "num_layers": num_layers,
        "channel_base": int(synthesis.get("channel_base", 32768)),
        "channel_max": int(synthesis.get("channel_max", 512)),
        "num_critical": num_critical,
        "margin_size": int(synthesis.get("margin_size", 10)),
        "output_scale": float(synthesis.get("output_scale", 0.25)),
        "first_cutoff": float(synthesis.get("first_cutoff", 2.0)),
        "first_stopband": float(synthesis.get("first_stopband", 2**2.1)),
        "last_stopband_rel": float(synthesis.get("last_stopband_rel", 2**0.3)),
        "conv_kernel": conv_kernel,
        "use_radial_filters": radial,
        "filter_size": int(synthesis.get("filter_size", 6)),
        "lrelu_upsampling": int(synthesis.get("lrelu_upsampling", 2)),
        "conv_clamp": float(recorded_number(layer0, "conv_clamp", 256)),
    }
    for up_factors in up_factors_options:
        cfg = resolve_config("stylegan-xl", **overrides, up_factors=up_factors)
        if [s.name for s in xl_schedule(cfg)] == names:
            return cfg
    raise ImporterError(
        f"G_ema's layers {names[:2]}…{names[-1:]} are not a StyleGAN-XL schedule of its settings "
        f"({stem_resolution}x{stem_resolution} stem of {num_layers} layers, heads of "
        f"{head_layers}, {img_resolution}x{img_resolution} output)"
    )


def stylegan_xl_from_pickle(data: Any) -> tuple[StyleGANXL, list[str]]:
    """Our generator from the authors' pickle (as :func:`restricted_load` returns it), plus notes."""
    src, source_class, theirs = read_g_ema(data, "StyleGAN-XL")
    cfg = stylegan_xl_config(src, theirs)
    check_schedule(xl_schedule(cfg), theirs, "StyleGAN-XL")
    G = build_generator("stylegan-xl", cfg, stored_bytes(theirs.values()))
    ours = G.state_dict()
    notes: list[str] = []
    check_filters(G, theirs)

    C = cfg.num_classes

    def read(key: str, value: torch.Tensor) -> dict[str, torch.Tensor] | None:
        if m := re.fullmatch(r"mapping\.fc(\d+)\.(weight|bias)", key):
            return {f"mapping.layers.{m[1]}.{m[2]}": value}
        if key == "mapping.w_avg":
            return {key: value.reshape(max(C, 1), -1)}
        if key == "mapping.embed.weight":
            if not C:
                notes.append(f"dropped the unused class table mapping.embed ({tuple(value.shape)}; unconditional)")
                return {}
            if value.shape[0] < C:
                raise ImporterError(f"G_ema's class table has {value.shape[0]} rows for {C} classes")
            return {key: value[:C]}
        return unloaded_synthesis_tensor(key, value, notes)

    state = g_ema_state(theirs, ours, "our StyleGAN-XL", read)
    load_g_ema(G, state, "StyleGAN-XL")
    grown = f", grown {cfg.stem_resolution} → {cfg.img_resolution} by {list(cfg.up_factors)}" if cfg.up_factors else ""
    notes.insert(
        0,
        f"read {source_class} as stylegan-xl: {cfg.img_resolution}x{cfg.img_resolution}{grown}, "
        f"{C or 'no'} classes, {G.parameter_count():,} parameters",
    )
    return G, notes


@register_converter("stylegan-xl", help="the StyleGAN-XL authors' network pickle (.pkl, dill; stem or grown)")
def convert(path: Path) -> Converted:
    """The authors' ``*.pkl`` (released network or training snapshot) → our generator (their ``G_ema``)."""
    G, notes = stylegan_xl_from_pickle(restricted_load(path))
    return Converted(G, tuple(notes))
