"""The mapping network shared by every generator: ``z, c → ws [B, num_ws, w_dim]``.

StyleGAN-XL's form (Sauer et al. 2022), which Poly-INR uses: ``z`` is normalised to unit second moment; a
class label indexes an embedding table (learned, or a pretrained one such as the authors' 1000×320
EfficientNet-lite0 class means), projected to ``z_dim`` by an lrelu layer, normalised and concatenated with
``z``; ``num_layers`` equalised-lr lrelu layers give ``w``, broadcast to ``num_ws`` copies. A running mean of
``w`` is kept per class (one row when unconditional) for truncation ``w ← w_avg + psi · (w − w_avg)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from polyinr.errors import PolyinrError
from polyinr.models.layers import EqualizedLinear


def normalize_2nd_moment(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Scale each row of ``[B, D]`` to unit mean square."""
    return x * (x.square().mean(dim=1, keepdim=True) + eps).rsqrt()


def class_indices(c: torch.Tensor | None, num_classes: int) -> torch.Tensor | None:
    """Labels as class indices ``[B]`` (long); accepts indices ``[B]`` or one-hot / scores ``[B, num_classes]``."""
    if num_classes == 0:
        return None
    if c is None:
        raise PolyinrError(f"this generator is class-conditional ({num_classes} classes): give a class label")
    if c.ndim == 2:
        if c.shape[1] != num_classes:
            raise PolyinrError(f"one-hot labels have {c.shape[1]} columns, the generator has {num_classes} classes")
        return c.argmax(dim=1)
    if c.ndim != 1 or c.dtype.is_floating_point:
        raise PolyinrError(f"labels must be class indices [B] or one-hot [B, C], got {tuple(c.shape)} {c.dtype}")
    if len(c) and (int(c.min()) < 0 or int(c.max()) >= num_classes):
        raise PolyinrError(f"class label out of range 0..{num_classes - 1}: {c.tolist()}")
    return c.long()


@dataclass(frozen=True)
class MappingConfig:
    """The mapping network's settings, one nested config that every generator's config embeds as ``mapping``."""

    z_dim: int = 64  # latent size
    w_dim: int = 512  # intermediate latent size
    num_classes: int = 0  # 0 = unconditional; filled from the dataset when training
    embed_dim: int = 320  # width of the class table (320 = EfficientNet-lite0's pooled features)
    num_layers: int = 2  # fully connected lrelu layers after the input
    lr_multiplier: float = 0.01  # learning-rate multiplier of those layers (StyleGAN's; Poly-INR uses 0.1)
    w_avg_beta: float = 0.998  # decay of the running mean of w


class LatentSizes:
    """``z_dim``, ``w_dim`` and ``num_classes`` read from a :class:`MappingConfig`: a generator config's own
    ``mapping`` (the default :meth:`mapping_config`), or the config's for a generator."""

    def mapping_config(self) -> MappingConfig:
        return self.mapping

    @property
    def z_dim(self) -> int:
        return self.mapping_config().z_dim

    @property
    def w_dim(self) -> int:
        return self.mapping_config().w_dim

    @property
    def num_classes(self) -> int:
        return self.mapping_config().num_classes


class MappingNetwork(nn.Module):
    """``z [B, z_dim], c → ws [B, num_ws, w_dim]``, with per-class ``w_avg`` and truncation.

    ``num_ws`` is the number of copies of ``w`` the synthesis takes (one per level / layer).
    """

    def __init__(self, cfg: MappingConfig, num_ws: int) -> None:
        super().__init__()
        z_dim, w_dim, num_classes, embed_dim = cfg.z_dim, cfg.w_dim, cfg.num_classes, cfg.embed_dim
        num_layers, lr_multiplier = cfg.num_layers, cfg.lr_multiplier
        self.z_dim, self.w_dim, self.num_ws = z_dim, w_dim, num_ws
        self.num_classes = num_classes
        self.w_avg_beta = cfg.w_avg_beta
        if num_classes > 0:
            self.embed = nn.Embedding(num_classes, embed_dim)
            self.embed_proj = EqualizedLinear(embed_dim, z_dim, activation="lrelu")
        else:
            self.embed = None
            self.embed_proj = None
        in_features = z_dim * (2 if num_classes > 0 else 1)
        self.layers = nn.ModuleList(
            EqualizedLinear(in_features if i == 0 else w_dim, w_dim, activation="lrelu", lr_multiplier=lr_multiplier)
            for i in range(num_layers)
        )
        self.register_buffer("w_avg", torch.zeros(max(num_classes, 1), w_dim))  # [C or 1, w_dim]

    def set_class_embeddings(self, table: torch.Tensor) -> None:
        """Start the class table from a pretrained one, ``[num_classes, embed_dim]`` (fine-tuned afterwards)."""
        if self.embed is None or table.shape != self.embed.weight.shape:
            have = None if self.embed is None else tuple(self.embed.weight.shape)
            raise PolyinrError(f"class embedding table {tuple(table.shape)} does not fit this mapping ({have})")
        with torch.no_grad():
            self.embed.weight.copy_(table)

    def forward(
        self,
        z: torch.Tensor,
        c: torch.Tensor | None = None,
        truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None,
        update_emas: bool = False,
    ) -> torch.Tensor:
        """``z [B, z_dim]``, ``c`` indices ``[B]`` or one-hot ``[B, C]`` → ``ws [B, num_ws, w_dim]``.

        ``truncation_cutoff`` truncates only the first ``cutoff`` ws (None = all); ``update_emas`` updates
        ``w_avg`` (training only).
        """
        labels = class_indices(c, self.num_classes)
        embedding = None if labels is None else self.embed(labels.to(z.device))  # [B, embed_dim]
        w = self._w(z, embedding)  # [B, w_dim]
        if update_emas:
            self._update_w_avg(w.detach(), labels)
        center = self.w_avg[labels] if labels is not None else self.w_avg[0].expand_as(w)  # [B, w_dim]
        return self._truncated_ws(w, center, truncation_psi, truncation_cutoff)

    def interpolate_classes(
        self,
        z: torch.Tensor,
        a: int,
        b: int,
        t: float,
        truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None,
    ) -> torch.Tensor:
        """StyleGAN-XL's class interpolation: ``z [B, z_dim]`` kept, the class embedding moved the fraction ``t``
        from class ``a``'s row to class ``b``'s (``t`` outside ``[0, 1]`` extrapolates) → ``ws [B, num_ws, w_dim]``.

        ``t = 0`` is class ``a`` exactly and ``t = 1`` class ``b``; truncation pulls towards ``w_avg`` moved
        the same fraction from ``a``'s row to ``b``'s.
        """
        if self.num_classes == 0:
            raise PolyinrError("this generator is unconditional: it has no classes to move between")
        for label in (a, b):
            if not 0 <= label < self.num_classes:
                raise PolyinrError(f"unknown class {label}: this generator has classes 0..{self.num_classes - 1}")
        table, averages = self.embed.weight, self.w_avg  # [C, embed_dim], [C, w_dim]
        embedding = torch.lerp(table[a], table[b], t).expand(len(z), -1)  # [B, embed_dim]
        center = torch.lerp(averages[a], averages[b], t).expand(len(z), -1)  # [B, w_dim]
        return self._truncated_ws(self._w(z, embedding), center, truncation_psi, truncation_cutoff)

    def _w(self, z: torch.Tensor, embedding: torch.Tensor | None) -> torch.Tensor:
        """``z [B, z_dim]`` and class embeddings ``[B, embed_dim]`` (None when unconditional) → ``w [B, w_dim]``."""
        if z.ndim != 2 or z.shape[1] != self.z_dim:
            raise PolyinrError(f"latents must be [B, {self.z_dim}], got {tuple(z.shape)}")
        x = normalize_2nd_moment(z.to(torch.float32))
        if embedding is not None:
            y = normalize_2nd_moment(self.embed_proj(embedding))
            x = torch.cat([x, y], dim=1)  # [B, 2·z_dim]
        for layer in self.layers:
            x = layer(x)  # [B, w_dim]
        return x

    def _truncated_ws(
        self, w: torch.Tensor, center: torch.Tensor, truncation_psi: float, truncation_cutoff: int | None
    ) -> torch.Tensor:
        """``w [B, w_dim]`` → ``ws [B, num_ws, w_dim]``, the first ``truncation_cutoff`` (None: all) pulled
        towards ``center [B, w_dim]`` by ``truncation_psi``."""
        ws = w.unsqueeze(1).repeat(1, self.num_ws, 1)  # [B, num_ws, w_dim]
        if truncation_psi != 1:
            cutoff = self.num_ws if truncation_cutoff is None else truncation_cutoff
            ws[:, :cutoff] = torch.lerp(center.unsqueeze(1), ws[:, :cutoff], truncation_psi)
        return ws

    @torch.no_grad()
    def _update_w_avg(self, w: torch.Tensor, labels: torch.Tensor | None) -> None:
        """Running mean of w; per class, equal to lerping towards each sample in batch order (StyleGAN-XL)."""
        beta = self.w_avg_beta
        if labels is None:
            self.w_avg[0].copy_(w.mean(dim=0).lerp(self.w_avg[0], beta))
            return
        one_hot = nn.functional.one_hot(labels, self.num_classes).to(w.dtype)  # [B, C]
        count = one_hot.sum(dim=0)  # [C] samples of each class in the batch
        later = count[labels] - one_hot.cumsum(dim=0).gather(1, labels[:, None]).squeeze(1)  # [B] same-class after
        weight = (1 - beta) * beta**later  # [B] each sample's weight after all its class's updates
        self.w_avg.mul_((beta**count)[:, None]).index_add_(0, labels, w * weight[:, None])
