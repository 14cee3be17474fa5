"""Small stand-ins for the metrics tests: coordinate-field generators, random detectors, in-memory datasets."""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from polyinr.grid import Grid
from polyinr.metrics.features import Detector, cache_dir, search_dirs
from polyinr.models.generator import Generator
from polyinr.models.mapping import MappingConfig

USER_CACHE_DIR = cache_dir()  # the real user cache, captured before any test isolates it
USER_SEARCH_DIRS = search_dirs()


class _Mapping(nn.Module):
    """``z [B, z_dim], c → ws [B, 1, z_dim + 1]``: the latent, plus the class index (0 when unconditional or
    ``ignore_class``)."""

    def __init__(self, num_classes: int, ignore_class: bool) -> None:
        super().__init__()
        self.num_classes, self.ignore_class = num_classes, ignore_class

    def forward(self, z, c=None, truncation_psi=1.0, truncation_cutoff=None, update_emas=False):
        label = torch.zeros(len(z), 1) if c is None or self.ignore_class else c.float().view(-1, 1)
        return torch.cat([z.float(), label.to(z.device)], dim=1)[:, None]


class FieldSynthesis(nn.Module):
    """A pure function of plane coordinates: three sinusoids per sample, frequencies ≤ ``max_cycles`` per frame.

    ``ignore_transform`` renders the plain frame whatever affine map the grid carries (a generator that is not
    equivariant at all). For class-conditional fields the class adds a class-specific pattern.
    """

    def __init__(self, resolution: int, max_cycles: float, ignore_transform: bool, num_classes: int) -> None:
        super().__init__()
        self.resolution, self.max_cycles = resolution, max_cycles
        self.ignore_transform, self.num_classes = ignore_transform, num_classes

    def forward(self, ws, grid=None):
        grid = Grid.frame(self.resolution) if grid is None else grid
        if self.ignore_transform:
            grid = Grid.window(grid.top, grid.left, grid.bottom, grid.right, grid.height, grid.width)
            if grid.rows is not None:
                grid = grid.crop(grid.rows, grid.cols)
        p = grid.coords(device=ws.device, dtype=torch.float64)  # [H, W, 2]
        w = ws[:, 0].double()
        B = len(w)
        freqs = torch.tanh(w[:, :6].view(B, 3, 2)) * self.max_cycles  # [B, 3 channels, 2] cycles per frame
        phase = w[:, 6:7, None, None]
        arg = 2 * math.pi * (p[None, None] * freqs[:, :, None, None, :]).sum(-1) + phase  # [B, 3, H, W]
        img = 0.6 * torch.sin(arg)
        if self.num_classes:
            label = w[:, -1]  # [B]
            pattern = torch.cos(2 * math.pi * (label[:, None, None] + 1) * p[None, ..., 0] / 2)  # [B, H, W]
            img = 0.4 * img + 0.6 * pattern[:, None]
        return img.float()


@dataclass(frozen=True)
class FieldConfig:
    img_resolution: int
    mapping: MappingConfig


class FieldGenerator(Generator):
    """Generator stand-in whose images are band-limited functions of the plane coordinates (continuous grids)."""

    model_name = "field-stand-in"

    def __init__(
        self, resolution=16, max_cycles=3.0, ignore_transform=False, num_classes=0, z_dim=8, ignore_class=False
    ):
        super().__init__(FieldConfig(resolution, MappingConfig(z_dim=z_dim, num_classes=num_classes)))
        self.mapping = _Mapping(num_classes, ignore_class)
        self.synthesis = FieldSynthesis(resolution, max_cycles, ignore_transform, num_classes)


class TinyDetector(Detector):
    """A random conv net on 8×8 box-averaged images; provides every feature name the metrics ask for."""

    provides = ("pool", "logits", "spatial", "vgg16_fc2")

    def __init__(self, name="tiny-random", dim=12, seed=0):
        super().__init__()
        self.name = name
        gen = torch.Generator().manual_seed(seed)
        self.register_buffer("conv", torch.randn(dim, 3, 3, 3, generator=gen) / 3)
        self.register_buffer("head", torch.randn(dim, 10, generator=gen))

    def forward(self, images, features=("pool",)):
        self.check(features)
        x = nn.functional.adaptive_avg_pool2d(images.float() / 127.5 - 1, 8)
        h = torch.tanh(nn.functional.conv2d(x, self.conv, padding=1))  # [B, dim, 8, 8]
        pool = h.mean(dim=(2, 3))
        out = {"pool": pool, "logits": 3 * pool @ self.head, "spatial": h[:, :2].flatten(1), "vgg16_fc2": pool}
        return {f: out[f] for f in features}


class TinyDataset(torch.utils.data.Dataset):
    """In-memory dataset with the attributes of :class:`polyinr.data.datasets.ImageDataset`."""

    def __init__(self, images: torch.Tensor, labels: np.ndarray | None = None, num_classes: int = 0, mirror=False):
        self.images, self.num_classes, self.mirror = images, num_classes, mirror
        self.resolution = images.shape[-1]
        self.labels = None if labels is None else np.asarray(labels, dtype=np.int64)
        self.content_hash = hashlib.sha256(images.numpy().tobytes()).hexdigest()
        self.reads = 0

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        self.reads += 1
        return self.images[i], int(self.labels[i]) if self.labels is not None else -1

    def label_distribution(self):
        return np.bincount(self.labels, minlength=self.num_classes) / len(self.labels)


def field_dataset(count=48, resolution=16, num_classes=0, seed=100) -> TinyDataset:
    """Real images drawn from the same field family as :class:`FieldGenerator` (different seeds)."""
    G = FieldGenerator(resolution, num_classes=num_classes)
    z = torch.from_numpy(np.random.default_rng(seed).standard_normal((count, G.z_dim))).float()
    labels = np.arange(count) % num_classes if num_classes else None
    c = torch.from_numpy(labels) if labels is not None else None
    images = (G(z, c) * 127.5 + 128).clamp(0, 255).to(torch.uint8)
    return TinyDataset(images, labels, num_classes)
