"""What every discriminator shares: its config, the input checks, and class-table plumbing.

``D(images [B, 3, R, R] in [-1, 1], labels [B] | None) → logits [B, K]``, with ``R == D.img_resolution``.
Labels are class indices (or one-hot rows); an unconditional discriminator ignores them.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import torch
from torch import nn

from polyinr.errors import PolyinrError
from polyinr.models.mapping import class_indices


class Discriminator(nn.Module):
    """Base class of registered discriminators: holds ``cfg`` (a dataclass with img_resolution, num_classes)."""

    disc_name: ClassVar[str]
    config_cls: ClassVar[type]

    def __init__(self, cfg: Any) -> None:
        super().__init__()
        self.cfg = cfg

    @property
    def img_resolution(self) -> int:
        return self.cfg.img_resolution

    @property
    def num_classes(self) -> int:
        return self.cfg.num_classes

    def config_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self.cfg)

    def frozen_state_keys(self) -> set[str]:
        """State entries of frozen submodules (pretrained or seeded random features, never trained). They are
        rebuilt identically with the discriminator, so training snapshots keep only their fingerprint."""
        from polyinr.discriminators.feature_networks import FrozenModule

        keys: set[str] = set()
        for prefix, module in self.named_modules():
            if isinstance(module, FrozenModule):
                keys.update(f"{prefix}.{key}" if prefix else key for key in module.state_dict())
        return keys

    def split_logits(self, logits: torch.Tensor) -> list[torch.Tensor]:
        """``logits [B, K]`` → the groups the losses average separately and then sum (default: one group)."""
        return [logits]

    def check_inputs(self, images: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor | None:
        """Validate ``images [B, 3, R, R]``; return the labels as class indices ``[B]`` on the images' device."""
        R = self.img_resolution
        if images.ndim != 4 or tuple(images.shape[1:]) != (3, R, R):
            raise PolyinrError(
                f"the {self.disc_name} discriminator takes images [B, 3, {R}, {R}], got {tuple(images.shape)}"
            )
        indices = class_indices(labels, self.num_classes)
        if indices is not None:
            if len(indices) != len(images):
                raise PolyinrError(f"{len(indices)} labels for {len(images)} images")
            indices = indices.to(images.device)
        return indices

    def check_class_table(self, table: torch.Tensor, embed_dim: int) -> None:
        """Raise a one-line error unless ``table`` is ``[num_classes, embed_dim]``."""
        if self.num_classes == 0:
            raise PolyinrError(f"the {self.disc_name} discriminator is unconditional: it has no class table")
        if tuple(table.shape) != (self.num_classes, embed_dim):
            raise PolyinrError(
                f"class embedding table {tuple(table.shape)} does not fit the {self.disc_name} "
                f"discriminator ({self.num_classes} classes × embed_dim {embed_dim}); "
                f"set its embed_dim option to the table's width"
            )
