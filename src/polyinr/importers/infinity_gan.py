"""The InfinityGAN authors' checkpoints (``hubert0527/infinityGAN``) → polyinr checkpoints.

Their ``train.py`` writes ``torch.save({iter, best_fid, g, d, g_ema, g_optim, d_optim, mean_path_lengths})``
(torch's zip format, PyTorch 1.6) to ``logs/<exp>/ckpt/inter_*.pth.tar`` / ``best_fid.pth.tar``: state dicts and
optimizer states, no modules, no source and no config. The file is read by the restricted unpickler (nothing in
it is imported or run), as is a file in torch's older sequential format (a magic number first). ``g_ema`` is
converted.
The architecture comes from the tensor shapes (latent sizes, layer counts, kernel, channels); the sizes that
shapes cannot tell (the texture input size and the coordinate settings) come from the paper's defaults or from
their model YAML (or a JSON file) with a ``train_params`` section, named by the user.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import torch

from polyinr.errors import PolyinrError
from polyinr.importers.registry import Converted, build_generator, register_converter, stored_bytes
from polyinr.importers.unpickle import ImporterError, restricted_load
from polyinr.models.infinity_gan.config import InfinityGANConfig
from polyinr.models.mapping import MappingConfig
from polyinr.small_files import read_small_text

SS = "structure_synthesizer.implicit_model.conv_stack"
TS = "texture_synthesizer"
UNUSED = re.compile(rf"^({TS}\.const_z\.input|{TS}\.noises\.noise_\d+|.*\.blur\.kernel|.*\.upsample\.kernel)$")
# Their train_params → our config fields (only what the shapes cannot tell).
PARAMS = {
    "ts_input_size": "ts_input_size",
    "coord_vert_sample_size": "coord_vert_sample_size",
    "coord_vert_cut_pt": "coord_vert_cut",
    "coord_hori_occupy_ratio": "coord_hori_occupy_ratio",
}


def read_train_params(path: str | Path) -> dict[str, Any]:
    """Their model YAML (or JSON) → our config fields from its ``train_params``."""
    path = Path(path)
    try:
        text = read_small_text(path)
    except (OSError, ValueError) as e:
        raise ImporterError(f"cannot read config {path}: {getattr(e, 'strerror', None) or e}") from None
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except Exception as e:  # a malformed config is bad input
        raise ImporterError(f"cannot parse config {path}: {str(e).splitlines()[0]}") from None
    params = data.get("train_params", data) if isinstance(data, dict) else None
    if not isinstance(params, dict):
        raise ImporterError(f"config {path} has no train_params mapping")
    return {ours: params[theirs] for theirs, ours in PARAMS.items() if theirs in params}


def _state(obj: Any, path: Path) -> dict[str, torch.Tensor]:
    if not isinstance(obj, dict):
        raise ImporterError(f"{path} is not an InfinityGAN checkpoint (it holds a {type(obj).__name__}, not a dict)")
    state = obj.get("g_ema", obj.get("g"))
    if not isinstance(state, dict) or not any(str(k).startswith(TS) for k in state):
        raise ImporterError(f"{path} holds no InfinityGAN generator (no g_ema / g state dict)")
    return {str(k).removeprefix("module."): v for k, v in state.items() if isinstance(v, torch.Tensor)}


def _count(state: dict[str, torch.Tensor], pattern: str) -> int:
    regex = re.compile(pattern)
    return len({m.group(1) for k in state if (m := regex.match(k))})


def config_from_state(state: dict[str, torch.Tensor], **settings: Any) -> InfinityGANConfig:
    """Read the architecture from the tensor shapes; ``settings`` add what shapes cannot tell."""
    try:
        n_mlp = _count(state, rf"^{TS}\.mapping\.(\d+)\.weight$")
        Dg = state[f"{TS}.mapping.1.weight"].shape[1]
        ss_layers = _count(state, rf"^{SS}\.(\d+)\.conv\.conv\.weight$")
        _, Dl, in_ch, k, _ = state[f"{SS}.0.conv.conv.weight"].shape
        n_convs = _count(state, rf"^{TS}\.convs\.(\d+)\.conv\.weight$")
        channels = tuple(int(state[f"{TS}.convs.{2 * j}.conv.weight"].shape[1]) for j in range(n_convs // 2))
    except KeyError as e:
        raise ImporterError(f"not an InfinityGAN generator: missing {e.args[0]}") from None
    if in_ch != Dl + 3:
        raise ImporterError(
            f"structure synthesizer takes {in_ch} channels: {Dl} latents and {in_ch - Dl} coordinates; only the "
            "paper's 3 coordinates (vertical, cos and sin horizontal) are supported"
        )
    if n_convs % 2 or n_convs == 0:
        raise ImporterError(f"texture synthesizer has {n_convs} convolutions, expected pairs")
    mapping = MappingConfig(z_dim=int(Dg), w_dim=int(Dg), num_layers=n_mlp, lr_multiplier=0.01)
    return InfinityGANConfig(
        mapping=mapping,
        local_latent_dim=int(Dl),
        structure_layers=ss_layers,
        structure_kernel=int(k),
        ts_channels=channels,
        **settings,
    )


def our_state(state: dict[str, torch.Tensor], cfg: InfinityGANConfig) -> dict[str, torch.Tensor]:
    """Their ``g_ema`` keys → ours (every tensor accounted for, shapes as ours)."""
    out: dict[str, torch.Tensor] = {}

    def put(ours: str, theirs: str, shape: tuple[int, ...] | None = None) -> None:
        value = state.pop(theirs)
        out[ours] = value.reshape(shape) if shape is not None else value

    for i in range(cfg.mapping.num_layers):
        put(f"mapping.styles.layers.{i}.weight", f"{TS}.mapping.{i + 1}.weight")
        put(f"mapping.styles.layers.{i}.bias", f"{TS}.mapping.{i + 1}.bias")
    for i in range(cfg.structure_layers):
        w = state[f"{SS}.{i}.conv.conv.weight"]
        put(f"synthesis.structure.layers.{i}.conv.weight", f"{SS}.{i}.conv.conv.weight", tuple(w.shape[1:]))
        put(f"synthesis.structure.layers.{i}.conv.modulation.weight", f"{SS}.{i}.conv.conv.modulation.weight")
        put(f"synthesis.structure.layers.{i}.conv.modulation.bias", f"{SS}.{i}.conv.conv.modulation.bias")
        put(f"synthesis.structure.layers.{i}.bias", f"{SS}.{i}.conv.activate.bias")
    for i in range(2 * cfg.num_blocks):
        ours, theirs = f"synthesis.texture.layers.{i}", f"{TS}.convs.{i}"
        put(f"{ours}.conv.weight", f"{theirs}.conv.weight", tuple(state[f"{theirs}.conv.weight"].shape[1:]))
        put(f"{ours}.conv.modulation.weight", f"{theirs}.conv.modulation.weight")
        put(f"{ours}.conv.modulation.bias", f"{theirs}.conv.modulation.bias")
        put(f"{ours}.noise_strength", f"{theirs}.noise.weight", ())
        put(f"{ours}.bias", f"{theirs}.activate.bias")
    for j in range(cfg.num_blocks):
        ours, theirs = f"synthesis.texture.to_rgbs.{j}", f"{TS}.to_rgbs.{j}"
        put(f"{ours}.conv.weight", f"{theirs}.conv.weight", tuple(state[f"{theirs}.conv.weight"].shape[1:]))
        put(f"{ours}.conv.modulation.weight", f"{theirs}.conv.modulation.weight")
        put(f"{ours}.conv.modulation.bias", f"{theirs}.conv.modulation.bias")
        put(f"{ours}.bias", f"{theirs}.bias", (-1,))
    left = sorted(k for k in state if not UNUSED.match(k))
    if left:
        raise ImporterError(
            f"unexpected tensors in the generator: {', '.join(left[:3])}{' …' if len(left) > 3 else ''}"
        )
    return out


@register_converter(
    "infinitygan",
    help="the InfinityGAN authors' *.pth.tar (g_ema; sizes from the tensor shapes, "
    "the rest from their model YAML when a config file is given)",
)
def convert(path: Path, config: str | Path | None = None) -> Converted:
    """Read ``path`` without running code from it and build our generator from its ``g_ema``."""
    checkpoint = restricted_load(Path(path))
    state = _state(checkpoint, Path(path))
    settings = read_train_params(config) if config is not None else {}
    try:
        cfg = config_from_state(state, **settings)
        G = build_generator("infinitygan", cfg, stored_bytes(state.values()))
    except PolyinrError as e:
        raise ImporterError(f"{path}: {e}") from None
    weights = our_state(dict(state), cfg)
    weights["mapping.styles.w_avg"] = torch.zeros_like(G.mapping.styles.w_avg)
    try:
        G.load_state_dict(weights, strict=True)
    except RuntimeError as e:
        raise ImporterError(f"{path}: tensor shapes do not fit: {str(e).splitlines()[-1].strip()}") from None
    step = checkpoint.get("iter")
    lines = (
        f"read g_ema{'' if step is None else f' at iteration {int(step)}'}: {cfg.img_resolution}² patches from "
        f"{cfg.ts_input_size + 2 * cfg.margin}² latent cells, channels {list(cfg.ts_channels)}",
        f"from {'the config file' if config is not None else 'the paper (no config file)'}: texture input "
        f"{cfg.ts_input_size} cells, vertical samples {cfg.coord_vert_sample_size}, horizontal period "
        f"{cfg.hori_period} cells",
    )
    provenance = {"source": "hubert0527/infinityGAN", "iteration": None if step is None else int(step)}
    return Converted(G.eval(), lines, provenance)
