"""The interface every generator shares (DESIGN rule 13).

``mapping(z, c) → ws [B, num_ws, w_dim]`` and ``synthesis(ws, grid) → images [B, C, H, W]`` in ``[-1, 1]``, so
tools, metrics and the training loop never branch on the model type.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from polyinr.grid import Grid


class Generator(nn.Module):
    """Base class of registered generators: holds ``cfg``, ``mapping`` and ``synthesis``."""

    model_name: ClassVar[str]  # set by @register
    mapping: nn.Module
    synthesis: nn.Module

    def __init__(self, cfg: Any) -> None:
        super().__init__()
        self.cfg = cfg

    @property
    def z_dim(self) -> int:
        return self.cfg.z_dim

    @property
    def w_dim(self) -> int:
        return self.cfg.w_dim

    @property
    def num_classes(self) -> int:
        return self.cfg.num_classes

    @property
    def img_resolution(self) -> int:
        return self.cfg.img_resolution

    @property
    def num_ws(self) -> int:
        return self.mapping.num_ws

    def config_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self.cfg)

    def forward(
        self,
        z: torch.Tensor,
        c: torch.Tensor | None = None,
        grid: Grid | None = None,
        truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None,
        update_emas: bool = False,
        **synthesis_kwargs: Any,
    ) -> torch.Tensor:
        """``z [B, z_dim]``, labels ``c`` (indices ``[B]`` or one-hot ``[B, C]``) → images ``[B, C, H, W]``.

        ``grid`` defaults to the native frame ``Grid.frame(img_resolution)``.
        """
        ws = self.mapping(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff,
                          update_emas=update_emas)  # fmt: skip
        return self.synthesis(ws, grid, **synthesis_kwargs)

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def save(self, path: str | Path, extra: dict[str, Any] | None = None) -> Path:
        """Write the checkpoint directory ``path`` (``config.json`` + ``model.safetensors``), atomically."""
        from polyinr.checkpoint import save_generator

        return save_generator(self, path, extra=extra)
