"""The INR-GAN authors' snapshots (``universome/inr-gan``, a StyleGAN2-ADA fork) → our ``inr-gan`` generator.

A snapshot is a pickle of ``dict(training_set_kwargs, G, D, G_ema, augment_pipe)``; every network is a tree of
StyleGAN "persistent" objects (their source text rides along as ``module_src`` and is never read), whose
per-layer ``cfg`` is an ``omegaconf`` ``DictConfig``, read here as inert data: the ``_content`` of each config
node, ``_val`` of each leaf, and ``${a.b}`` interpolations resolved against the config's root. Everything
comes through :func:`~polyinr.importers.unpickle.restricted_load`, so nothing from the file runs and every
storage, CUDA ones included, lands on the CPU. We convert ``G_ema`` (their ``G`` differs); the embedding cache
``_fourier_embs_cache`` that their loop leaves behind is not a parameter or buffer and is ignored.

Sizes come from the tensors' shapes; what only the config says (nearest or bilinear ×2, the instance norm,
the FMM activation, the coarsest grid) comes from ``G_ema.synthesis.cfg``; whatever our model cannot compute
exactly as theirs does (another FMM activation, noise, predicted or raw coordinates, a conditional mapping) is
refused with one line. Their learned per-pixel constants (``const_embs``) are kept: our model uses them as they
are at the native frame and samples them bilinearly on other grids (see :mod:`polyinr.models.inr_gan`).
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import torch

from polyinr.importers.registry import Converted, build_generator, register_converter, stored_bytes
from polyinr.importers.stylegan_pickle import (
    PickledObject,
    as_dict,
    inert_tree,
    module_record,
    module_tensors,
    plain_number,
    submodule_attrs,
)
from polyinr.importers.unpickle import ImporterError, restricted_load
from polyinr.models.inr_gan import InrGanConfig, InrGanGenerator, logarithmic_basis
from polyinr.models.mapping import MappingConfig

NAME = "inr-gan"
_INTERPOLATION = re.compile(r"\$\{([^${}]+)\}")
MAX_CONFIG_DEPTH = 50  # config containers and interpolations nested on one path (real configs: under 10)
MAX_CONFIG_VALUES = 100_000  # values of a resolved config written out in full (real configs: a few hundred)
_READING = object()  # a config node being read: meeting it again means it contains itself
_OPEN = (None, 0)  # a container or interpolation being resolved: meeting it again means a cycle


# ---------------------------------------------------------------------------- omegaconf as data


class _ConfigReader:
    """One :func:`read_config` walk, linear in the file: every pickled node and every interpolation is read once.

    ``plain`` turns the inert omegaconf nodes into plain dicts, lists and values, each node once (by id: shared
    nodes stay shared, a node inside itself is refused; the nodes stay alive in the tree being read, so their
    ids stay theirs); ``resolved`` then resolves ``${a.b}`` interpolations
    against the root, each container and each interpolation once (by id and by reference), so a config whose
    nodes share or interpolate each other is resolved into a graph no larger than the file. Each result's
    size when written out in full (shared parts counted each time they appear) is counted as well, so that no
    consumer can be handed more than :data:`MAX_CONFIG_VALUES` values however it walks them.
    """

    def __init__(self) -> None:
        self.plain_done: dict[int, Any] = {}  # id(node) → its plain data (_READING while it is being read)
        self.root: dict[str, Any] = {}
        self.resolved_done: dict[int, tuple[Any, int]] = {}  # id(container) → (resolved, size written out)
        self.references: dict[str, tuple[Any, int]] = {}  # "a.b" → (resolved target, its size written out)
        self.depth = 0  # containers and interpolations open on the current path

    def _enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_CONFIG_DEPTH:
            raise ImporterError(f"its config nests values and interpolations more than {MAX_CONFIG_DEPTH} deep")

    def plain(self, node: Any) -> Any:
        """An inert ``DictConfig`` / ``ListConfig`` / value node (or plain data) → plain dicts, lists, values."""
        if not isinstance(node, (PickledObject, dict, list, tuple)):
            return node
        if id(node) in self.plain_done:
            if self.plain_done[id(node)] is _READING:
                raise ImporterError("its config contains itself")
            return self.plain_done[id(node)]
        self.plain_done[id(node)] = _READING
        self._enter()
        if isinstance(node, PickledObject):
            state = node.state if isinstance(node.state, dict) else {}
            if "_content" in state:
                out = self.plain(state["_content"])
            elif "_val" in state:
                out = self.plain(state["_val"])
            else:
                raise ImporterError(f"its config holds an unreadable {node.qualname}")
        elif isinstance(node, dict):
            out = {str(k): self.plain(v) for k, v in node.items()}
        else:
            out = [self.plain(v) for v in node]
        self.depth -= 1
        self.plain_done[id(node)] = out
        return out

    def resolved(self, value: Any) -> tuple[Any, int]:
        """``(value with its interpolations resolved, its size written out in full)``."""
        if isinstance(value, str) and (m := _INTERPOLATION.fullmatch(value)):
            return self._reference(m[1].strip())
        if not isinstance(value, (dict, list)):
            return value, 1
        if id(value) in self.resolved_done:
            return self.resolved_done[id(value)]
        self.resolved_done[id(value)] = _OPEN
        self._enter()
        items = [self.resolved(v) for v in (value.values() if isinstance(value, dict) else value)]
        size = 1 + sum(n for _, n in items)
        if size > MAX_CONFIG_VALUES:
            raise ImporterError(
                f"its config would expand to over {MAX_CONFIG_VALUES:,} values (nodes shared or "
                "interpolated over and over)"
            )
        out = dict(zip(value, (v for v, _ in items))) if isinstance(value, dict) else [v for v, _ in items]
        self.depth -= 1
        self.resolved_done[id(value)] = self.resolved_done[id(out)] = (out, size)  # out is resolved as it is
        return out, size

    def _reference(self, reference: str) -> tuple[Any, int]:
        """The resolved value at ``reference`` (``a.b``), interpolations met on the way followed."""
        found = self.references.get(reference)
        if found is None:
            self.references[reference] = _OPEN
            self._enter()
            target: Any = self.root
            for part in reference.split("."):
                if isinstance(target, str) and (m := _INTERPOLATION.fullmatch(target)):
                    target = self._reference(m[1].strip())[0]
                if not isinstance(target, dict) or part not in target:
                    raise ImporterError(f"its config interpolation ${{{reference}}} does not resolve")
                target = target[part]
            found = self.references[reference] = self.resolved(target)
            self.depth -= 1
        if found is _OPEN:
            raise ImporterError(f"its config interpolation ${{{reference}}} refers back to itself")
        return found


def read_config(node: Any) -> dict[str, Any]:
    """A pickled omegaconf config (as :func:`restricted_load` gives it) as a plain, resolved dict.

    Time and memory are linear in the file: nodes that share or interpolate each other are read once and stay
    shared. Nesting deeper than :data:`MAX_CONFIG_DEPTH`, a config that would write out to more than
    :data:`MAX_CONFIG_VALUES` values, and circular or dangling interpolations are one-line errors.
    """
    reader = _ConfigReader()
    data = reader.plain(inert_tree(node))
    if not isinstance(data, dict):
        raise ImporterError("its synthesis config is not a mapping")
    reader.root = data
    return reader.resolved(data)[0]


# ---------------------------------------------------------------------------- G_ema → ours


def _get(cfg: dict[str, Any], dotted: str, default: Any = None) -> Any:
    value: Any = cfg
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            return default
        value = value[part]
    return value


def _require(condition: bool, what: str) -> None:
    if not condition:
        raise ImporterError(f"G_ema is an INR-GAN our model cannot reproduce: {what}")


def _our_key(key: str) -> str | None:
    """Our state-dict name for one of their ``G_ema`` keys (layer indices filled in later); None = unused."""
    if m := re.fullmatch(r"mapping\.fc(\d+)\.(weight|bias)", key):
        return f"mapping.layers.{m[1]}.{m[2]}"
    if key == "mapping.w_avg":
        return key
    m = re.fullmatch(r"synthesis\.b(\d+)\.(?:input\.input\.)?(.+)", key)
    if m is None:
        return None
    block, rest = f"synthesis.blocks.b{m[1]}", m[2]
    if e := re.fullmatch(r"coord_fuser\.(log_basis|random_basis|const_embs)", rest):
        return f"{block}.embedding.{'const' if e[1] == 'const_embs' else e[1]}"
    if e := re.fullmatch(r"(conv0|conv1|extra_convs\.\d+|torgb)\.(weight|bias|affine\.weight|affine\.bias)", rest):
        return f"{block}.{e[1]}.{e[2]}"
    return None


def _layer_index(name: str, nominal: int) -> str:
    """``conv0`` / ``conv1`` / ``extra_convs.i`` of block ``nominal`` → our ``layers.j`` (b4 has only conv1)."""
    first = 0 if nominal == 4 else 1
    if name == "conv0":
        return "layers.0"
    if name == "conv1":
        return f"layers.{first}"
    return f"layers.{first + 1 + int(name.split('.')[1])}"


def _structure(theirs: dict[str, torch.Tensor], R: int, n0: int) -> dict[str, Any]:
    """Extra layers and embedding kinds from the tensors, as our config's fields; refused when irregular."""
    nominal = [2**i for i in range(2, int(math.log2(R)) + 1)]
    grid = {res: max(res, n0) for res in nominal}
    extras = {
        res: len({k.split(".")[3] for k in theirs if k.startswith(f"synthesis.b{res}.extra_convs.")}) for res in nominal
    }
    _require(all(c <= 1 for c in extras.values()), f"more than one extra layer in a block ({extras})")
    with_extra = sorted({grid[r] for r, c in extras.items() if c})
    first = with_extra[0] if with_extra else 0
    _require(
        all(bool(extras[r]) == bool(first and grid[r] >= first) for r in nominal),
        f"extra layers only in some blocks of a resolution ({extras})",
    )
    kinds: dict[int, tuple[bool, int, int]] = {}  # grid resolution → (medium, random size, const size)
    for res in nominal:
        prefix = "synthesis.b4.input.input.coord_fuser" if res == 4 else f"synthesis.b{res}.coord_fuser"
        log = theirs.get(f"{prefix}.log_basis")
        if log is None:
            continue
        n = grid[res]
        octaves = math.ceil(math.log2(n))
        _require(log.shape in ((2 * octaves, 2), (4 * octaves, 2)), f"a log basis of shape {tuple(log.shape)} at {n}")
        medium = log.shape[0] == 2 * octaves
        _require(
            torch.allclose(log.float(), logarithmic_basis(n, not medium), atol=1e-5),
            f"its log basis at {n} differs from the released formula",
        )
        random = theirs.get(f"{prefix}.random_basis")
        const = theirs.get(f"{prefix}.const_embs")
        _require(medium == (random is not None), f"the {n}² embedding mixes diagonals and a random basis")
        kinds[n] = (medium, 0 if random is None else random.shape[0], 0 if const is None else const.shape[1])
    medium_res = [n for n, k in kinds.items() if k[0]]
    threshold = min(medium_res) if medium_res else 2 * R
    _require(all(k[0] == (n >= threshold) for n, k in kinds.items()), "embedding kinds that do not split by resolution")
    random_sizes = {k[1] for k in kinds.values() if k[0]}
    low_const = {k[2] for k in kinds.values() if not k[0]}
    medium_const = {k[2] for k in kinds.values() if k[0]}
    _require(
        len(random_sizes) <= 1 and len(low_const) <= 1 and len(medium_const) <= 1,
        "embedding sizes that differ between blocks of one kind",
    )
    return dict(
        extra_layers_from=first,
        medium_resolution=threshold,
        random_emb_size=random_sizes.pop() if random_sizes else 0,
        const_emb_low=low_const.pop() if low_const else 0,
        const_emb_medium=medium_const.pop() if medium_const else 0,
    )


def inr_gan_from_snapshot(snapshot: Any) -> tuple[InrGanGenerator, list[str], dict[str, Any]]:
    """Our generator from the authors' snapshot (as :func:`restricted_load` gives it), report lines, provenance."""
    if not isinstance(snapshot, dict) or "G_ema" not in snapshot:
        found = sorted(map(str, snapshot)) if isinstance(snapshot, dict) else type(snapshot).__name__
        raise ImporterError(f"not a StyleGAN2-ADA training snapshot: expected a dict with G_ema, found {found}")
    src = snapshot["G_ema"]
    source_class, attrs = module_record(src, "G_ema")
    theirs = module_tensors(src, "G_ema")
    synthesis = submodule_attrs(src, "G_ema", "synthesis")
    if "cfg" not in synthesis or "synthesis.b4.input.input.coord_fuser.log_basis" not in theirs:
        raise ImporterError(
            f"G_ema ({source_class}) is not an INR-GAN generator: its synthesis has no coordinate input"
        )
    cfg = read_config(synthesis["cfg"])

    # What only the config says, and what our model cannot compute.
    _require(
        plain_number(attrs.get("c_dim", 0)) == 0 and "mapping.embed.weight" not in theirs,
        "it is class-conditional (StyleGAN2's label embedding is not ours)",
    )
    _require(_get(cfg, "fmm.enabled") is True, "FMM is off (a StyleGAN2 synthesis)")
    _require(_get(cfg, "fmm.activation") == "demod", f"FMM activation {_get(cfg, 'fmm.activation')!r} (ours: demod)")
    mode = _get(cfg, "upsampling_mode")
    _require(mode in ("nearest", "bilinear"), f"upsampling mode {mode!r} (ours: nearest or bilinear)")
    _require(not _get(cfg, "use_noise", False), "it uses noise inputs")
    _require(_get(cfg, "input.type") == "coords", f"its input is {_get(cfg, 'input.type')!r}, not coordinates")
    _require(_get(cfg, "coords.kernel_size", 1) == 1, "its layers are not 1x1")
    res_configs = _get(cfg, "coords.res_configs", {})
    for key, rc in (res_configs or {}).items():
        rc = rc if isinstance(rc, dict) else {}
        _require(bool(rc.get("use_cosine", False)), f"the {key}² embedding has no cosines")
        for name in ("use_raw_coords", "predictable_emb_size", "shared_emb_size"):
            _require(not rc.get(name, 0), f"the {key}² embedding uses {name}")
    n0, R, rank = _get(cfg, "input.resolution"), plain_number(attrs.get("img_resolution")), _get(cfg, "fmm.rank", 10)
    if not all(isinstance(v, int) and v > 0 for v in (n0, R, rank)):
        raise ImporterError(f"G_ema does not record its sizes (input {n0!r}, image {R!r}, FMM rank {rank!r})")
    instance_norm = bool(_get(cfg, "fmm.instance_norm", False))

    # Sizes from the shapes.
    w_avg = theirs.get("mapping.w_avg")
    fc0 = theirs.get("mapping.fc0.weight")
    if w_avg is None or fc0 is None or w_avg.ndim != 1:
        raise ImporterError("G_ema's mapping has no fc0 / w_avg of the StyleGAN2 form")
    mapping_layers = len([k for k in theirs if re.fullmatch(r"mapping\.fc\d+\.weight", k)])
    mapping_attrs = submodule_attrs(src, "G_ema", "mapping")
    lr_multiplier = float(plain_number(submodule_attrs(src, "G_ema", "mapping.fc0").get("bias_gain", 0.01)))
    synthesis_kwargs = as_dict(as_dict(attrs.get("_init_kwargs")).get("synthesis_kwargs"))
    clamp = plain_number(submodule_attrs(src, "G_ema", "synthesis.b4.conv1").get("conv_clamp"))
    fields = dict(
        mapping=MappingConfig(
            z_dim=fc0.shape[1],
            w_dim=w_avg.shape[0],
            num_classes=0,
            num_layers=mapping_layers,
            lr_multiplier=lr_multiplier,
            w_avg_beta=float(plain_number(mapping_attrs.get("w_avg_beta", 0.995))),
        ),
        img_resolution=R,
        img_channels=theirs["synthesis.b4.torgb.weight"].shape[0],
        input_resolution=n0,
        channel_base=int(plain_number(synthesis_kwargs.get("channel_base", 32768))),
        channel_max=int(plain_number(synthesis_kwargs.get("channel_max", 512))),
        upsampling=mode,
        instance_norm=instance_norm,
        fmm="demod",
        fmm_rank=rank,
        conv_clamp=None if clamp is None else float(clamp),
        **_structure(theirs, R, n0),
    )
    G = build_generator("inr-gan", InrGanConfig(**fields), stored_bytes(theirs.values()))
    ours = G.state_dict()

    # Their names → ours; anything left over, missing or mis-shaped is an error.
    state: dict[str, torch.Tensor] = {}
    unexpected, dropped = [], set()
    for key, value in theirs.items():
        name = _our_key(key)
        if name is None:
            if key.endswith("resample_filter"):
                dropped.add("resample_filter buffers (constants their nearest / bilinear path never reads)")
                continue
            unexpected.append(key)
            continue
        if m := re.fullmatch(r"(synthesis\.blocks\.b(\d+))\.(conv0|conv1|extra_convs\.\d+)\.(.+)", name):
            name = f"{m[1]}.{_layer_index(m[3], int(m[2]))}.{m[4]}"
        if name.endswith(".weight") and value.ndim == 4:
            value = value.flatten(1)  # 1×1 convolution [out, in, 1, 1] → [out, in]
        if name == "mapping.w_avg":
            value = value.unsqueeze(0)  # [w_dim] → one row [1, w_dim]
        state[name] = value
    missing = sorted(set(ours) - set(state))
    wrong = sorted(
        f"{k} {tuple(v.shape)} vs ours {tuple(ours[k].shape)}"
        for k, v in state.items()
        if k in ours and v.shape != ours[k].shape
    )
    unexpected += sorted(k for k in state if k not in ours)
    for problem, keys in (("has unexpected", unexpected), ("lacks", missing), ("mis-shaped", wrong)):
        if keys:
            raise ImporterError(f"G_ema does not match INR-GAN: {problem} {keys[:5]}{'…' if len(keys) > 5 else ''}")
    G.load_state_dict(state, strict=True)
    G.eval().requires_grad_(False)

    const = (fields["const_emb_low"], fields["const_emb_medium"])
    lines = [
        f"read {source_class} (INR-GAN, {mode} x2{', instance norm' if instance_norm else ''}): {R}x{R}, "
        f"coarsest grid {n0}x{n0}, z_dim {fc0.shape[1]}, {G.num_ws} ws",
        f"learned per-pixel constants: {const[0]} / {const[1]} channels (exact at the native frame, sampled "
        f"bilinearly on other grids)"
        if any(const)
        else "learned per-pixel constants: none",
        *(f"dropped: {d}" for d in sorted(dropped)),
    ]
    provenance = {
        "source_class": source_class,
        "upsampling": mode,
        "instance_norm": instance_norm,
        "const_embeddings": list(const),
    }
    return G, lines, provenance


@register_converter(NAME, help="the INR-GAN authors' StyleGAN2-ADA snapshot (.pkl): G_ema, nearest or -bil")
def convert(path: Path) -> Converted:
    """The authors' ``network-snapshot-*.pkl`` → our generator and what was read."""
    G, lines, provenance = inr_gan_from_snapshot(restricted_load(path))
    return Converted(G, tuple(lines), provenance)
