"""NVIDIA's VGG16 feature network of precision/recall, read from its TorchScript file without running it.

StyleGAN2-ADA's and StyleGAN3's precision/recall use NVIDIA's port of the original VGG16 (Simonyan & Zisserman's
weights), shipped as a TorchScript archive ``vgg16.pt`` (sha256 :data:`NVIDIA_VGG16_SHA256`; StyleGAN3 names the
same network ``vgg16.pkl``). ``torch.jit.load`` would run the code inside it; :func:`read_nvidia_vgg16` reads only
its tensors instead: the archive's ``data.pkl`` goes through the restricted unpickler
(:mod:`polyinr.importers.unpickle`), which turns its ``__torch__.*`` module objects into inert records, and the
parameters are collected from those records by name. A pickle that holds the archive's bytes instead of being
the archive is read the same way, the embedded archive taken from it.

Its parameters: ``layers.conv1`` … ``layers.conv13`` (VGG16's 3×3 convolutions, padding 1, each followed by a
ReLU, a 2×2 max-pool after conv2, conv4, conv7, conv10 and conv13), ``layers.fc1`` [4096, 25088],
``layers.fc2`` [4096, 4096], ``layers.fc3`` [1000, 4096] and the LPIPS channel weights ``lpips0`` … ``lpips4``
(unused here). :class:`NvidiaVGG16` computes what ``net(images, return_features=True)`` returns for metrics: the
uint8-valued images resized to 224×224 as TensorFlow does (``grid_sample`` on a grid shifted by half a pixel of
each size, border padding), scaled to [0, 1], normalised with ImageNet's mean and std, the convolutions, an
adaptive 7×7 average pool, then fc1 and fc2, each followed by a ReLU: 4096 features (dropout is inert).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from polyinr.importers.unpickle import ImporterError, StandIn, restricted_load, restricted_load_bytes
from polyinr.metrics.detector import Detector

NVIDIA_VGG16_SHA256 = "b437eb095feaeb0b83eb3fa11200ebca4548ee39a07fb944a417ddc516cc07c3"
NVIDIA_VGG16_URL = "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/vgg16.pt"

NUM_CONVS = 13
POOL_AFTER = (2, 4, 7, 10, 13)  # the convolutions a 2×2 max-pool follows
INPUT_SIZE = 224
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_ZIP_MAGIC = b"PK\x03\x04"
_MAX_NODES = 1_000_000  # objects visited while walking a file's records


def read_nvidia_vgg16(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of NVIDIA's VGG16 file at ``path`` by parameter name (``layers.conv1.weight``, …), read
    without running anything from it; a one-line :class:`~polyinr.importers.unpickle.ImporterError` (a
    :class:`~polyinr.errors.PolyinrError`) for anything else."""
    path = Path(path)
    root = restricted_load(path)
    if not _is_module_record(root):
        archives = _embedded_archives(root)
        if len(archives) != 1:
            raise ImporterError(
                f"{path} is neither a TorchScript archive of NVIDIA's VGG16 nor a pickle holding one "
                f"({len(archives)} embedded archives)"
            )
        root = restricted_load_bytes(archives[0], f"the archive inside {path}")
        if not _is_module_record(root):
            raise ImporterError(f"the archive inside {path} does not hold a TorchScript module")
    tensors = _module_tensors(root)
    check_vgg16_tensors(tensors, str(path))
    return tensors


def check_vgg16_tensors(tensors: dict[str, torch.Tensor], origin: str) -> None:
    """Refuse, in one line, tensors that are not a VGG16 of NVIDIA's layout (any widths, 3×3 convolutions)."""
    channels = 3
    for i in range(1, NUM_CONVS + 1):
        weight, bias = tensors.get(f"layers.conv{i}.weight"), tensors.get(f"layers.conv{i}.bias")
        if weight is None or bias is None:
            raise ImporterError(f"{origin} is not NVIDIA's VGG16: it has no layers.conv{i}")
        if weight.ndim != 4 or tuple(weight.shape[1:]) != (channels, 3, 3) or tuple(bias.shape) != weight.shape[:1]:
            raise ImporterError(
                f"{origin} is not NVIDIA's VGG16: layers.conv{i} has shape {list(weight.shape)}, "
                f"bias {list(bias.shape)}, after {channels} channels"
            )
        channels = weight.shape[0]
    features = channels * 7 * 7
    for name in ("fc1", "fc2"):
        weight, bias = tensors.get(f"layers.{name}.weight"), tensors.get(f"layers.{name}.bias")
        if weight is None or bias is None:
            raise ImporterError(f"{origin} is not NVIDIA's VGG16: it has no layers.{name}")
        if weight.ndim != 2 or weight.shape[1] != features or tuple(bias.shape) != weight.shape[:1]:
            raise ImporterError(
                f"{origin} is not NVIDIA's VGG16: layers.{name} has shape {list(weight.shape)} "
                f"after {features} features"
            )
        features = weight.shape[0]
    bad = [k for k, v in tensors.items() if k.startswith("layers.") and not v.is_floating_point()]
    if bad:
        raise ImporterError(f"{origin} is not NVIDIA's VGG16: {bad[0]} is not floating-point")


def _is_module_record(obj: Any) -> bool:
    """Whether ``obj`` is the record of a TorchScript module object (class ``__torch__.…``)."""
    return isinstance(obj, StandIn) and type(obj).module.startswith("__torch__") and isinstance(obj.state, dict)


def _module_tensors(root: StandIn) -> dict[str, torch.Tensor]:
    """Every tensor attribute of a TorchScript module record and its submodules, by dotted name."""
    tensors: dict[str, torch.Tensor] = {}
    todo: list[tuple[str, StandIn]] = [("", root)]
    seen: set[int] = set()
    while todo:
        prefix, record = todo.pop()
        if id(record) in seen:
            continue
        seen.add(id(record))
        if len(seen) > _MAX_NODES:
            raise ImporterError("its module tree is implausibly large")
        for name, value in record.state.items():
            if not isinstance(name, str):
                continue
            if isinstance(value, torch.Tensor):
                tensors[prefix + name] = value
            elif _is_module_record(value):
                todo.append((f"{prefix}{name}.", value))
    return tensors


def _embedded_archives(root: Any) -> list[bytes]:
    """The zip archives held as bytes anywhere in an unpickled object's records, in the order found."""
    found: list[bytes] = []
    todo, seen = [root], set()
    while todo:
        obj = todo.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if len(seen) > _MAX_NODES:
            raise ImporterError("it holds implausibly many objects")
        if isinstance(obj, (bytes, bytearray)):
            if bytes(obj[:4]) == _ZIP_MAGIC:
                found.append(bytes(obj))
        elif isinstance(obj, dict):
            todo.extend(obj.values())
        elif isinstance(obj, (list, tuple, set, frozenset)):
            todo.extend(obj)
        elif isinstance(obj, StandIn):
            todo.extend([obj.args, obj.kwargs, obj.state, obj.items, obj.elements])
    return found


class NvidiaVGG16(Detector):
    """NVIDIA's VGG16 for precision/recall in plain PyTorch: ``vgg16_fc2`` [B, 4096] (fc2 after its ReLU), as
    the TorchScript network's ``net(images, return_features=True)``. Widths come from the weights given."""

    provides = ("vgg16_fc2",)

    def __init__(self, name: str, tensors: dict[str, torch.Tensor]) -> None:
        super().__init__()
        check_vgg16_tensors(tensors, name)
        self.name = name
        self.convs = nn.ModuleList()
        for i in range(1, NUM_CONVS + 1):
            weight = tensors[f"layers.conv{i}.weight"]
            self.convs.append(nn.Conv2d(weight.shape[1], weight.shape[0], 3, padding=1))
        fc1, fc2 = tensors["layers.fc1.weight"], tensors["layers.fc2.weight"]
        self.fc1, self.fc2 = nn.Linear(fc1.shape[1], fc1.shape[0]), nn.Linear(fc2.shape[1], fc2.shape[0])
        state = {
            f"convs.{i - 1}.{p}": tensors[f"layers.conv{i}.{p}"]
            for i in range(1, NUM_CONVS + 1)
            for p in ("weight", "bias")
        }
        state.update({f"{fc}.{p}": tensors[f"layers.{fc}.{p}"] for fc in ("fc1", "fc2") for p in ("weight", "bias")})
        self.load_state_dict({k: v.float() for k, v in state.items()})
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
        self.eval().requires_grad_(False)

    @staticmethod
    def resize(x: torch.Tensor) -> torch.Tensor:
        """[B, C, H, W] → [B, C, 224, 224] as TensorFlow's bilinear resize (NVIDIA's ``resize_images``)."""
        batch, channels, height, width = x.shape
        theta = torch.eye(2, 3, device=x.device, dtype=x.dtype)
        theta[0, 2] += 1 / width - 1 / INPUT_SIZE
        theta[1, 2] += 1 / height - 1 / INPUT_SIZE
        grid = F.affine_grid(theta.expand(batch, 2, 3), [batch, channels, INPUT_SIZE, INPUT_SIZE], align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)

    def forward(self, images: torch.Tensor, features: tuple[str, ...] = ("vgg16_fc2",)) -> dict[str, torch.Tensor]:
        self.check(features)
        x = self.resize(images.float())  # [B, 3, 224, 224], values in [0, 255]
        x = (x / 255 - self.mean) / self.std
        for i, conv in enumerate(self.convs, start=1):
            x = F.relu(conv(x))
            if i in POOL_AFTER:
                x = F.max_pool2d(x, 2)
        x = F.adaptive_avg_pool2d(x, (7, 7)).flatten(1)  # [B, 512·7·7]
        x = F.relu(self.fc2(F.relu(self.fc1(x))))  # [B, 4096]
        return {"vgg16_fc2": x}


def nvidia_vgg16_name(sha256: str) -> str:
    """The detector name of an NVIDIA VGG16 file with this SHA-256: ``vgg16-nvidia`` for the published file,
    ``vgg16-nvidia-<hash prefix>`` for any other."""
    return "vgg16-nvidia" if sha256 == NVIDIA_VGG16_SHA256 else f"vgg16-nvidia-{sha256[:12]}"
