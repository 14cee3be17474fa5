"""Feature detectors of the distribution metrics: uint8 images ``[B, 3, H, W]`` → named feature vectors.

Three networks, each resizing its input itself as the reference tools do:

- ``inception``: the standard Inception-v3 of FID, TensorFlow's "inception-2015-12-05" translated to PyTorch,
  the weights torch-fidelity, pytorch-fid, clean-fid (legacy mode) and NVIDIA's tools use. Features: ``pool``
  (2048-d, FID/KID), ``logits`` (1008 unbiased logits, IS) and ``spatial`` (the first 7 channels of
  ``mixed_6/conv`` at 17×17, 2023-d, sFID). Weights: torch-fidelity's ``weights-inception-2015-12-05-6726825d.pth``
  (the same file as pytorch-fid's ``pt_inception-2015-12-05-6726825d.pth``), checked by SHA-256. NVIDIA's
  TorchScript copies of the network (``inception-2015-12-05.pkl`` / ``.pt``) are refused where they are found:
  using one would run the code inside it, and no published hash verifies it (:data:`UNVERIFIABLE`).
- ``inception-random``: the same architecture with random weights for rFID (StyleGAN-XL): He-normal
  convolutions and fully connected layer drawn from a CPU generator seeded with :data:`RANDOM_INCEPTION_SEED`,
  identity batch norms. Needs no file; its numbers compare with other polyinr rFIDs, not with StyleGAN-XL's
  (whose random network is a downloaded pickle).
- ``vgg16``: the feature network of precision/recall (fc2 after ReLU, 4096-d). NVIDIA's VGG16, the standard one
  (StyleGAN2-ADA's ``vgg16.pt``, sha256-checked, or StyleGAN3's ``vgg16.pkl``), when its file is present: read
  without running it and computed by our own module (:mod:`polyinr.metrics.nvidia_vgg16`), named
  ``vgg16-nvidia`` (``vgg16-nvidia-<hash prefix>`` for a file of another hash). Otherwise torchvision's ImageNet
  VGG16 (``vgg16-397923af.pth``, downloaded when missing) through torch-fidelity's extractor (TF1-style bilinear
  resize to 224), named ``vgg16-torchvision-397923af``: its numbers do not compare with NVIDIA's network's, so
  every printed and logged result names its detector.

Our own Inception module reuses torch-fidelity's TensorFlow-compatible blocks and resize: torch-fidelity's
extractor cannot be built without its weights (rFID), does not expose ``mixed_6/conv`` (sFID), and unpickles its
file with ``weights_only=False``; ours loads a hash-checked state dict with ``weights_only=True``.

No detector file is ever run: state dicts are loaded with ``weights_only=True`` after their hash is checked, and
NVIDIA's VGG16 is read as data. Files are looked for in ``<cache>/detectors/`` (``$POLYINR_CACHE_DIR``, else
``$XDG_CACHE_HOME/polyinr``, else ``~/.cache/polyinr``) and in PyTorch's hub checkpoint directory; when missing,
the hash-checked ones are downloaded, and offline a :class:`~polyinr.errors.PolyinrError` says which file to put
where.
"""

from __future__ import annotations

import urllib.error
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch_fidelity.feature_extractor_inceptionv3 import (
    BasicConv2d,
    InceptionA,
    InceptionB,
    InceptionC,
    InceptionD,
    InceptionE_1,
    InceptionE_2,
)
from torch_fidelity.interpolate_compat_tensorflow import interpolate_bilinear_2d_like_tensorflow1x

from polyinr.downloads import cache_dir
from polyinr.downloads import sha256_of as hash_file
from polyinr.errors import PolyinrError
from polyinr.metrics.detector import Detector
from polyinr.metrics.nvidia_vgg16 import (
    NVIDIA_VGG16_SHA256,
    NVIDIA_VGG16_URL,
    NvidiaVGG16,
    nvidia_vgg16_name,
    read_nvidia_vgg16,
)

RANDOM_INCEPTION_SEED = 0
SFID_CHANNELS = 7  # channels of mixed_6/conv kept for sFID (StyleGAN-XL, after Nash et al.)


@dataclass(frozen=True)
class WeightsFile:
    """A standard detector file: its name, SHA-256 (None = not known, TorchScript only) and where it is published.
    The detector's first file with ``fetch`` is downloaded when none of its files is found."""

    filename: str
    sha256: str | None
    url: str | None
    torchscript: bool  # True = NVIDIA's TorchScript archive (read as data, never run), False = a PyTorch state dict
    fetch: bool = False


INCEPTION_SHA256 = "6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2"
VGG16_SHA256 = "397923af8e79cdbb6a7127f12361acd7a2f83e06b05044ddf496e83de57a5bf0"

# Looked for in this order (NVIDIA's VGG16 before torchvision's: the standard precision/recall network first).
WEIGHTS: dict[str, tuple[WeightsFile, ...]] = {
    "inception": (
        WeightsFile(
            "weights-inception-2015-12-05-6726825d.pth",
            INCEPTION_SHA256,
            "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/"
            "weights-inception-2015-12-05-6726825d.pth",
            torchscript=False,
            fetch=True,
        ),
        WeightsFile("pt_inception-2015-12-05-6726825d.pth", INCEPTION_SHA256, None, torchscript=False),
    ),
    "vgg16": (
        WeightsFile("vgg16.pt", NVIDIA_VGG16_SHA256, NVIDIA_VGG16_URL, torchscript=True),
        WeightsFile("vgg16.pkl", None, None, torchscript=True),
        WeightsFile(
            "vgg16-397923af.pth",
            VGG16_SHA256,
            "https://download.pytorch.org/models/vgg16-397923af.pth",
            torchscript=False,
            fetch=True,
        ),
    ),
}
TORCHVISION_VGG16_NAME = "vgg16-torchvision-397923af"
# Standard files polyinr refuses to use: NVIDIA's TorchScript Inception (StyleGAN2-ADA's .pt, StyleGAN3's .pkl)
# would run code from the file, cannot be read as data into our module, and has no published hash to verify.
UNVERIFIABLE: dict[str, tuple[str, ...]] = {"inception": ("inception-2015-12-05.pkl", "inception-2015-12-05.pt")}

DETECTOR_NAMES = ("inception", "inception-random", "vgg16")


# ---------------------------------------------------------------------------- detectors


class InceptionV3(Detector):
    """TensorFlow-compatible Inception-v3 (torch-fidelity's blocks, same state-dict keys as its weights file)."""

    provides = ("pool", "logits", "spatial")

    def __init__(self, name: str, state_dict: dict[str, torch.Tensor] | None = None, seed: int = 0) -> None:
        super().__init__()
        self.name = name
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, kernel_size=3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, kernel_size=3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, kernel_size=3, padding=1)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, kernel_size=1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, kernel_size=3)
        self.Mixed_5b = InceptionA(192, pool_features=32)
        self.Mixed_5c = InceptionA(256, pool_features=64)
        self.Mixed_5d = InceptionA(288, pool_features=64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = InceptionC(768, channels_7x7=128)
        self.Mixed_6c = InceptionC(768, channels_7x7=160)
        self.Mixed_6d = InceptionC(768, channels_7x7=160)  # TensorFlow's mixed_6
        self.Mixed_6e = InceptionC(768, channels_7x7=192)
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = InceptionE_1(1280)
        self.Mixed_7c = InceptionE_2(2048)
        self.fc = nn.Linear(2048, 1008)
        if state_dict is None:
            self._randomize(seed)
        else:
            self.load_state_dict(state_dict)
        self.eval().requires_grad_(False)

    @torch.no_grad()
    def _randomize(self, seed: int) -> None:
        """He-normal weights from a CPU generator seeded ``seed``; batch norms stay the identity."""
        gen = torch.Generator().manual_seed(seed)
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                fan_in = module.weight[0].numel()
                gain = 2.0 if isinstance(module, nn.Conv2d) else 1.0
                module.weight.copy_(torch.randn(module.weight.shape, generator=gen) * (gain / fan_in) ** 0.5)
                if module.bias is not None:
                    module.bias.zero_()

    def forward(self, images: torch.Tensor, features: tuple[str, ...] = ("pool",)) -> dict[str, torch.Tensor]:
        self.check(features)
        x = interpolate_bilinear_2d_like_tensorflow1x(images.float(), size=(299, 299), align_corners=False)
        x = (x - 128) / 128  # [B, 3, 299, 299]
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))  # [B, 64, 147, 147]
        x = F.max_pool2d(x, kernel_size=3, stride=2)  # [B, 64, 73, 73]
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))  # [B, 192, 71, 71]
        x = F.max_pool2d(x, kernel_size=3, stride=2)  # [B, 192, 35, 35]
        x = self.Mixed_6c(self.Mixed_6b(self.Mixed_6a(self.Mixed_5d(self.Mixed_5c(self.Mixed_5b(x))))))  # 768×17²
        out = {}
        if "spatial" in features:
            out["spatial"] = self.Mixed_6d.branch1x1(x)[:, :SFID_CHANNELS].flatten(1)  # [B, 7·17·17]
        if "pool" in features or "logits" in features:
            x = self.Mixed_7a(self.Mixed_6e(self.Mixed_6d(x)))  # [B, 1280, 8, 8]
            pool = self.Mixed_7c(self.Mixed_7b(x)).mean(dim=(2, 3))  # [B, 2048]
            out["pool"] = pool
            out["logits"] = pool @ self.fc.weight.T  # [B, 1008], without the output bias (as IS is defined)
        return {f: out[f].float() for f in features}


class TorchFidelityVGG16(Detector):
    """torchvision's VGG16 through torch-fidelity's extractor: ``vgg16_fc2`` [B, 4096] (fc2 after ReLU)."""

    provides = ("vgg16_fc2",)

    def __init__(self, name: str, path: Path) -> None:
        super().__init__()
        from torch_fidelity.feature_extractor_vgg16 import FeatureExtractorVGG16

        self.name = name
        # The file's SHA-256 was checked against torchvision's published one before it reaches this unpickler.
        self.net = FeatureExtractorVGG16("vgg16", ["fc2_relu"], feature_extractor_weights_path=str(path))

    def forward(self, images: torch.Tensor, features: tuple[str, ...] = ("vgg16_fc2",)) -> dict[str, torch.Tensor]:
        self.check(features)
        (fc2,) = self.net(images)
        return {"vgg16_fc2": fc2}


# ---------------------------------------------------------------------------- files


_HASHES: dict[tuple[str, int, int], str] = {}  # (path, size, mtime) → SHA-256: a file is hashed once per process


def sha256_of(path: Path) -> str:
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _HASHES:
        _HASHES[key] = hash_file(path)
    return _HASHES[key]


def search_dirs() -> list[Path]:
    """Where detector files are looked for: polyinr's cache, then PyTorch's hub checkpoints."""
    return [cache_dir() / "detectors", Path(torch.hub.get_dir()) / "checkpoints"]


def _fetched(kind: str) -> WeightsFile:
    return next(entry for entry in WEIGHTS[kind] if entry.fetch)


def _missing_message(kind: str, reason: str) -> str:
    entry = _fetched(kind)
    text = (
        f"the {kind} detector weights are missing ({reason}): put {entry.filename} (sha256 {entry.sha256}, "
        f"from {entry.url}) in {cache_dir() / 'detectors'}"
    )
    preferred = [e for e in WEIGHTS[kind][: WEIGHTS[kind].index(entry)] if e.url]
    return text + "".join(f", or the standard {e.filename} (from {e.url}), used first when present" for e in preferred)


def find_weights(kind: str, download: bool = True) -> tuple[Path, WeightsFile]:
    """The first standard file of ``kind`` found locally; else download the one to fetch; else a clear error.
    Where only a file polyinr refuses to use (:data:`UNVERIFIABLE`) is found, a one-line error names it."""
    found = _local_weights(kind)
    if found is not None:
        return found
    _refuse_unverifiable(kind)
    entry = _fetched(kind)
    if not download:
        raise PolyinrError(_missing_message(kind, "downloads are off"))
    dest = cache_dir() / "detectors" / entry.filename
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        torch.hub.download_url_to_file(entry.url, str(dest), hash_prefix=entry.sha256, progress=False)
    except (urllib.error.URLError, OSError, RuntimeError) as e:
        raise PolyinrError(_missing_message(kind, f"download failed: {getattr(e, 'reason', e)}")) from None
    return dest, entry


def _refuse_unverifiable(kind: str) -> None:
    for filename in UNVERIFIABLE.get(kind, ()):
        for folder in search_dirs():
            if (folder / filename).is_file():
                entry = _fetched(kind)
                raise PolyinrError(
                    f"{folder / filename} is refused: it is NVIDIA's TorchScript Inception, which would "
                    f"run code from the file and which no published hash verifies; put "
                    f"{entry.filename} (sha256 {entry.sha256}, from {entry.url}) in "
                    f"{cache_dir() / 'detectors'} instead"
                )


def _local_weights(kind: str) -> tuple[Path, WeightsFile] | None:
    for entry in WEIGHTS[kind]:
        for folder in search_dirs():
            path = folder / entry.filename
            if path.is_file():
                return path, entry
    return None


def _verified_state_dict(path: Path, entry: WeightsFile) -> dict[str, torch.Tensor]:
    verify_sha256(path, entry.sha256)
    return torch.load(path, map_location="cpu", weights_only=True)


def verify_sha256(path: Path, expected: str) -> None:
    actual = sha256_of(path)
    if actual != expected:
        raise PolyinrError(
            f"{path} has sha256 {actual}, expected {expected}: the file is corrupt or another "
            f"network; delete it and put the right file there"
        )


# ---------------------------------------------------------------------------- loading

_LOADED: dict[tuple[str, str], Detector] = {}


def load_detector(name: str, device: torch.device | str = "cpu", download: bool = True) -> Detector:
    """The detector ``name`` (one of :data:`DETECTOR_NAMES`) in eval mode on ``device``; loaded once per process."""
    if name not in DETECTOR_NAMES:
        raise PolyinrError(f"unknown detector {name!r}; detectors: {', '.join(DETECTOR_NAMES)}")
    key = (name, str(torch.device(device)))
    if key not in _LOADED:
        _LOADED[key] = _build_detector(name, download).to(device).eval().requires_grad_(False)
    return _LOADED[key]


def _build_detector(name: str, download: bool) -> Detector:
    if name == "inception-random":
        return InceptionV3(f"inception-v3-random-he-seed{RANDOM_INCEPTION_SEED}", seed=RANDOM_INCEPTION_SEED)
    path, entry = find_weights(name, download)
    detector_name = _detector_name(name, path, entry)
    if name == "vgg16" and entry.torchscript:  # read without running it: never torch.jit.load
        return NvidiaVGG16(detector_name, read_nvidia_vgg16(path))
    if name == "inception":
        return InceptionV3(detector_name, _verified_state_dict(path, entry))
    verify_sha256(path, entry.sha256)
    return TorchFidelityVGG16(detector_name, path)


def _detector_name(kind: str, path: Path, entry: WeightsFile) -> str:
    """The name ``load_detector(kind)`` gives the detector it builds from ``path`` (``entry``)."""
    if kind == "vgg16" and entry.torchscript:
        return nvidia_vgg16_name(sha256_of(path))
    return "inception-2015-12-05" if kind == "inception" else TORCHVISION_VGG16_NAME


def detector_description(name: str) -> str:
    """Which network and file ``load_detector(name)`` uses, without loading it (for reports): the detector's
    name, then its file."""
    if name == "inception-random":
        return f"inception-v3-random-he-seed{RANDOM_INCEPTION_SEED}"
    found = _local_weights(name)
    if found is not None:
        return f"{_detector_name(name, *found)} ({found[0]})"
    entry = _fetched(name)
    return f"{_detector_name(name, Path(entry.filename), entry)} ({entry.filename}, not yet downloaded)"
