"""Classifier guidance for GANs (StyleGAN-XL): ``cls_weight · CE(classifier(G(z, c)), c)`` in G's loss.

The classifier is StyleGAN-XL's ``deit_small_distilled_patch16_224`` (timm), frozen, seeing the generated
images resized to 224 with its own normalisation. Its classes are ImageNet's, so the training labels must be
ImageNet class indices. It is built only when ``cls_weight > 0``: nothing is downloaded otherwise.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from polyinr.discriminators.feature_networks import FrozenModule, load_timm_model

GUIDANCE_CLASSIFIER = "deit_small_distilled_patch16_224"


class GuidanceClassifier(FrozenModule):
    """Images ``[B, 3, H, W]`` in ``[-1, 1]`` → class logits ``[B, num_classes]`` of a frozen timm classifier."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        cfg = model.pretrained_cfg
        self.model = model
        self.input_size = tuple(cfg["input_size"][-2:])
        self.register_buffer("mean", torch.tensor(cfg["mean"]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(cfg["std"]).view(1, 3, 1, 1), persistent=False)
        self.freeze()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = F.interpolate((images + 1) / 2, size=self.input_size, mode="bilinear", align_corners=False)
        return self.model((x - self.mean) / self.std)


def build_guidance_classifier(
    device: torch.device, name: str = GUIDANCE_CLASSIFIER, pretrained: bool = True, weights: str | Path | None = None
) -> GuidanceClassifier:
    """The frozen guidance classifier on ``device`` (downloaded by timm when online; a clear error offline)."""
    return GuidanceClassifier(load_timm_model(name, pretrained=pretrained, weights=weights)).to(device)
