"""Frozen timm feature networks, cut into four stages (projected discriminator, class-embedding tool).

A CNN gives the outputs of its last four feature stages (timm ``feature_info``; for EfficientNet-lite0 the
authors' split ``blocks[0:2] | [2:3] | [3:5] | [5:7]``: 24, 40, 112, 320 channels at 1/4 … 1/32 of the input).
A vision transformer gives the outputs of four blocks at evenly spaced depths (2, 5, 8, 11 of 12), before the
final norm, with the class / distillation tokens dropped and the patch tokens laid out as a map
``[B, embed_dim, 14, 14]``. Each network takes its own input normalisation (timm ``pretrained_cfg``).

Weights come from a local file when one is given (safetensors or a PyTorch state dict, loaded by timm with
``weights_only=True``), else from timm's download when ``pretrained``, else a random initialisation. Layers
after the last stage used (head, final norm) are removed. The network is frozen: no parameter requires a
gradient and it stays in eval mode whatever ``train()`` is called with.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from torch import nn

from polyinr.errors import PolyinrError

NUM_STAGES = 4
INTERP_SIZE = 224  # CNN inputs are resized to this when asked (the size the backbones were trained at)


class WeightsUnavailable(PolyinrError):
    """Pretrained weights of a timm network could not be downloaded (offline); ``name`` is the network."""

    def __init__(self, name: str, message: str) -> None:
        self.name = name
        super().__init__(message)


class FrozenModule(nn.Module):
    """A module that never trains: :meth:`freeze` when built; ``train()`` keeps it in eval mode."""

    def freeze(self) -> None:
        self.requires_grad_(False)
        super().train(False)

    def train(self, mode: bool = True) -> FrozenModule:
        return super().train(False)


class FeatureNetwork(FrozenModule):
    """A frozen timm backbone → four feature maps ``[B, channels[k], H_k, W_k]``, coarsest last."""

    def __init__(self, name: str, model: nn.Module) -> None:
        super().__init__()
        from timm.models.vision_transformer import VisionTransformer

        self.name = name
        self.is_vit = isinstance(model, VisionTransformer)
        if self.is_vit:
            depth = len(model.blocks)
            if depth < NUM_STAGES:
                raise PolyinrError(f"feature network {name} has {depth} blocks; at least {NUM_STAGES} are needed")
            self.indices: int | list[int] = [round((k + 1) * depth / NUM_STAGES) - 1 for k in range(NUM_STAGES)]
            self.channels = (model.embed_dim,) * NUM_STAGES
            self.input_size = tuple(model.patch_embed.img_size)  # ViTs always see their own input size
        else:
            info = getattr(model, "feature_info", None)
            if not hasattr(model, "forward_intermediates") or not isinstance(info, list) or len(info) < NUM_STAGES:
                raise PolyinrError(
                    f"feature network {name} is not supported: it is neither a timm vision "
                    f"transformer nor a model with {NUM_STAGES} feature stages"
                )
            self.indices = NUM_STAGES  # the last four stages
            self.channels = tuple(stage["num_chs"] for stage in info[-NUM_STAGES:])
            self.input_size = (INTERP_SIZE, INTERP_SIZE)
        model.prune_intermediate_layers(self.indices, prune_norm=True, prune_head=True)
        self.model = model
        cfg = model.pretrained_cfg
        self.register_buffer("mean", torch.tensor(cfg["mean"], dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(cfg["std"], dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.freeze()

    def prepare(self, images: torch.Tensor, resize: bool) -> torch.Tensor:
        """Images ``[B, 3, H, W]`` in ``[0, 1]`` → network input: bilinearly resized to the input size when
        ``resize`` (always for a ViT), normalised with the network's mean and std."""
        if (resize or self.is_vit) and tuple(images.shape[-2:]) != self.input_size:
            images = F.interpolate(images, size=self.input_size, mode="bilinear", align_corners=False)
        return (images - self.mean.to(images.dtype)) / self.std.to(images.dtype)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Prepared input ``[B, 3, H, W]`` → four maps ``[B, channels[k], H_k, W_k]``."""
        return self.model.forward_intermediates(x, indices=self.indices, intermediates_only=True)


def load_timm_model(name: str, pretrained: bool = True, weights: str | Path | None = None) -> nn.Module:
    """The timm model ``name`` (with its head): weights from the file ``weights``, else downloaded
    (``pretrained``), else random. Raises a one-line :class:`PolyinrError` for an unknown name, a download
    that fails (offline), or a weights file that is missing or does not fit."""
    import timm

    if not timm.is_model(name):
        raise PolyinrError(f"unknown feature network {name!r}: timm has no model of that name")
    if weights is not None:
        path = Path(weights)
        if not path.is_file():
            raise PolyinrError(f"weights file for {name} not found: {path}")
        try:
            return timm.create_model(name, pretrained=True, pretrained_cfg_overlay={"file": str(path)})
        except (RuntimeError, ValueError, KeyError, OSError, pickle.UnpicklingError, SafetensorError) as e:
            reason = " ".join(str(e).split())[:300] or type(e).__name__
            raise PolyinrError(f"cannot load the weights of {name} from {path}: {reason}") from None
    if pretrained:
        try:
            return timm.create_model(name, pretrained=True)
        except OSError as e:  # offline: huggingface_hub's LocalEntryNotFoundError, urllib's URLError, …
            raise WeightsUnavailable(
                name,
                f"the pretrained weights of {name} could not be downloaded ({type(e).__name__}); use randomly "
                f"initialised features (pretrained false), or give a local weights file for {name} (safetensors "
                f"or a PyTorch state dict)",
            ) from None
    return timm.create_model(name, pretrained=False)


def create_feature_network(name: str, pretrained: bool = True, weights: str | Path | None = None) -> FeatureNetwork:
    """The frozen four-stage feature network of timm model ``name`` (weights as :func:`load_timm_model`)."""
    return FeatureNetwork(name, load_timm_model(name, pretrained=pretrained, weights=weights))
