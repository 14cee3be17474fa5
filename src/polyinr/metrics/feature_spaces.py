"""Offline feature spaces for the built-in datasets: a small LeNet per dataset, trained on its real images.

FID, KID, precision/recall and IS need Inception or VGG16 weights, which cannot always be downloaded; and on
8×8 digits an ImageNet network sees little anyway. As MNIST work measures FID with a LeNet, each built-in
dataset (``digits``, ``shapes``, ``photos``, ``faces``, ``textures``) gets a small classifier trained on its own
real images, deterministically (one CPU thread, seeded initialisation and order), the first time it is needed. Its
penultimate activations (``features``, 128-d after ReLU) are the space in which ``fid_digits``, ``kid_digits``,
``pr_digits``, ``scaleinv_fid_S4_digits`` … are measured through the same code as the standard metrics; its class
scores (``logits``) give ``cas_digits``. The photos and textures have no labels of what an image shows: their
networks learn to tell which source image a patch (a crop as the dataset serves it) comes from. The faces have no
labels at all: their network learns which quarter turn a face was given (0°, 90°, 180° or 270°; Gidaris et al.,
ICLR 2018), which it can only tell from the layout of a face. No CAS or diversity is measured in these spaces
(:data:`UNLABELLED`). Numbers in these spaces compare with each other, never with Inception figures.

Any other data (a folder or dataset zip) gets the ``data`` space (:func:`fit_data_space`): the same network, fitted
the same way (quarter turns) to the images a metric is measured against, read at the network's input size (the
largest power of two ≤ 32 not above their resolution, at least 8), in colour unless every image is grey, on a
seeded subset of at most :attr:`DataSpaceRecipe.max_images` images for a few epochs: tens of seconds on one CPU
thread. ``fid_data``, ``kid_data``, ``pr_data`` and ``scaleinv_fid_S4_data`` are measured in it; they compare runs on
the same data, never figures on other data (each dataset has its own space).

The trained network is cached in ``<cache>/feature-spaces/<name>.safetensors`` (the ``data`` space:
``data-<hash of its recipe>.safetensors``, one per dataset) with its recipe (the dataclass below plus the data's
content hash) and a fingerprint (SHA-256 of the weights) in the metadata. A file whose
recipe differs (a new recipe, changed data) or whose weights do not match their fingerprint is stale: it is
retrained and replaced. The fingerprint names the detector, so cached real-data statistics follow the weights.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import SafetensorError, safe_open
from torch import nn

from polyinr.atomic import atomic_save_tensors
from polyinr.errors import PolyinrError
from polyinr.metrics.features import Detector, cache_dir
from polyinr.metrics.sampling import Progress

if TYPE_CHECKING:
    from polyinr.data.datasets import ImageDataset

log = logging.getLogger("polyinr")


@dataclass(frozen=True)
class FeatureSpaceRecipe:
    """How a feature network is built and trained; every field is part of the cache's identity."""

    dataset: str  # built-in dataset name (polyinr.data.builtin), or DATA_SPACE for the data a metric is given
    input_size: int  # the network sees images area-resized to input_size² (a power of two ≥ 8)
    channels: int  # 1 = grey (mean of R, G, B), 3 = colour
    width: int = 32  # channels of the first convolution block; doubled at each next block
    feature_dim: int = 128  # width of the penultimate layer: the feature space
    render_resolution: int = 32  # real images are rendered at this size before the area resize
    epochs: int = 20  # passes over the training split
    batch: int = 64  # images per step
    lr: float = 1e-3  # Adam learning rate
    held_out: float = 0.2  # fraction of images kept out of training (stratified), for the reported accuracy
    seed: int = 0  # initialisation, split and order
    version: int = 1  # bump when the training code changes
    task: str = "classes"  # what the network learns: "classes" (the dataset's labels) or "rotation" (which quarter
    # turn each image was given: four classes, for datasets without labels)


RECIPES: dict[str, FeatureSpaceRecipe] = {
    "digits": FeatureSpaceRecipe("digits", input_size=8, channels=1),
    "shapes": FeatureSpaceRecipe("shapes", input_size=16, channels=3),
    "photos": FeatureSpaceRecipe("photos", input_size=32, channels=3),
    "faces": FeatureSpaceRecipe("faces", input_size=16, channels=1, task="rotation"),
    "textures": FeatureSpaceRecipe("textures", input_size=32, channels=3),
}
TASKS = ("classes", "rotation")
DATA_SPACE = "data"  # the space fitted to the images a metric is measured against (fid_data, pr_data, …)

# Spaces whose classes are no labels of what an image shows (CAS and within-class diversity are refused in them).
UNLABELLED: dict[str, str] = {
    "photos": "the built-in photos have no labels: its classes are the source photographs the patches come from",
    "faces": "the built-in faces have no labels: its classes are the quarter turns a face was given",
    "textures": "the built-in textures have no labels: its classes are the source images the crops come from",
    DATA_SPACE: "the data's own space learns no labels: its classes are the quarter turns an image was given",
}


@dataclass(frozen=True)
class DataSpaceRecipe(FeatureSpaceRecipe):
    """The recipe of the ``data`` space; ``input_size`` is the largest, ``channels`` follows the data."""

    max_images: int = 2_000  # a seeded subset of at most this many images trains the network (bounds the cost)


# Width 16, 3 epochs over the quarter turns of at most 1,600 training images: about 25 s on one thread at 32²
# (benchmarks/bench_curve_metric.py), where width 32 takes 3x as long and 6 epochs twice, for little gain.
DATA_RECIPE = DataSpaceRecipe(DATA_SPACE, input_size=32, channels=3, width=16, epochs=3, task="rotation")


def builtin_space(data: str | None) -> str | None:
    """The feature space of data source ``data`` (``'builtin:digits'`` → ``'digits'``), or None when it has none."""
    from polyinr.data.sources import BUILTIN_PREFIX

    if data is None or not data.startswith(BUILTIN_PREFIX):
        return None
    name = data[len(BUILTIN_PREFIX) :]
    return name if name in RECIPES else None


def check_space(name: str) -> FeatureSpaceRecipe:
    """The recipe of feature space ``name``; an unknown name → a one-line error listing the known ones."""
    if name not in RECIPES:
        raise PolyinrError(
            f"unknown feature space {name!r}: feature spaces exist for the built-in datasets "
            f"{', '.join(sorted(RECIPES))}"
        )
    return RECIPES[name]


class LeNet(nn.Module):
    """Convolution blocks (two 3×3 conv + ReLU, 2×2 max-pool) down to 4×4, then FC → features → class scores.

    ``x [B, channels, S, S]`` in ``[-1, 1]`` → ``features [B, feature_dim]``, ``logits [B, num_classes]``.
    """

    def __init__(self, recipe: FeatureSpaceRecipe, num_classes: int) -> None:
        super().__init__()
        blocks, c_in, c_out, size = [], recipe.channels, recipe.width, recipe.input_size
        while size > 4:
            blocks += [
                nn.Conv2d(c_in, c_out, 3, padding=1),
                nn.ReLU(),
                nn.Conv2d(c_out, c_out, 3, padding=1),
                nn.ReLU(),
                nn.MaxPool2d(2),
            ]
            c_in, c_out, size = c_out, 2 * c_out, size // 2
        self.conv = nn.Sequential(*blocks)
        self.fc = nn.Linear(c_in * 4 * 4, recipe.feature_dim)
        self.head = nn.Linear(recipe.feature_dim, num_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = F.relu(self.fc(self.conv(x).flatten(1)))  # [B, feature_dim]
        return features, self.head(features)


def network_input(images: torch.Tensor, recipe: FeatureSpaceRecipe) -> torch.Tensor:
    """uint8 ``[B, 3, H, W]`` → float ``[B, channels, S, S]`` in ``[-1, 1]`` (grey = channel mean; area resize)."""
    x = images.float() / 127.5 - 1
    if recipe.channels == 1:
        x = x.mean(dim=1, keepdim=True)
    return F.adaptive_avg_pool2d(x, recipe.input_size)


class FeatureSpaceDetector(Detector):
    """A trained :class:`LeNet` as a metrics detector: ``features`` and ``logits`` of uint8 images."""

    provides = ("features", "logits")

    def __init__(self, recipe: FeatureSpaceRecipe, net: LeNet, fingerprint: str, held_out_accuracy: float) -> None:
        super().__init__()
        self.recipe, self.net = recipe, net
        self.fingerprint, self.held_out_accuracy = fingerprint, held_out_accuracy
        self.name = f"lenet-{recipe.dataset}-{fingerprint[:16]}"

    def forward(self, images: torch.Tensor, features: tuple[str, ...] = ("features",)) -> dict[str, torch.Tensor]:
        self.check(features)
        feats, logits = self.net(network_input(images, self.recipe))
        out = {"features": feats, "logits": logits}
        return {f: out[f].float() for f in features}

    def input_vectors(self, images: torch.Tensor) -> torch.Tensor:
        """What the network sees, flattened: uint8 ``[B, 3, H, W]`` → ``[B, channels·S²]`` (diversity's space)."""
        return network_input(images, self.recipe).flatten(1)


# ---------------------------------------------------------------------------- training


@contextmanager
def _one_thread() -> Iterator[None]:
    """Run on one CPU thread (the same reductions in the same order every time), then restore the count."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _open_real(recipe: FeatureSpaceRecipe) -> ImageDataset:
    """The recipe's built-in dataset at its render resolution, with labels when its task learns them."""
    from polyinr.data.datasets import open_dataset

    if recipe.task not in TASKS:
        raise PolyinrError(f"feature space task {recipe.task!r} is not one of {', '.join(TASKS)}")
    return open_dataset(f"builtin:{recipe.dataset}", resolution=recipe.render_resolution, cond=recipe.task == "classes")


def _real_data(recipe: FeatureSpaceRecipe) -> tuple[torch.Tensor, torch.Tensor, str]:
    """The dataset's images as the network sees them ``[N, channels, S, S]``, labels ``[N]`` (zeros when the
    task needs none), content hash."""
    dataset = _open_real(recipe)
    images = torch.stack([dataset[i][0] for i in range(len(dataset))])  # uint8 [N, 3, R, R]
    labels = torch.zeros(len(dataset), dtype=torch.int64) if dataset.labels is None else torch.as_tensor(dataset.labels)
    return network_input(images, recipe), labels, dataset.content_hash


def _task_examples(x: torch.Tensor, y: torch.Tensor, task: str) -> tuple[torch.Tensor, torch.Tensor]:
    """What the network learns from images ``x [N, C, S, S]`` with labels ``y [N]``: the images and their labels
    ("classes"), or every image at its four quarter turns ``[4N, C, S, S]`` with the turn as class ``[4N]``."""
    if task == "classes":
        return x, y
    turned = torch.cat([torch.rot90(x, k, dims=(2, 3)) for k in range(4)])  # [4N, C, S, S]
    return turned, torch.arange(4).repeat_interleave(len(x))


def _split(labels: np.ndarray, held_out: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Stratified train / held-out indices: per class, a seeded shuffle, the first ``held_out`` part held out."""
    rng = np.random.default_rng(seed)
    train, test = [], []
    for k in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == k))
        cut = round(held_out * len(idx))
        test.append(idx[:cut])
        train.append(idx[cut:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


FIT_STAGE = "fitting the feature space"  # the progress stage of a network's training


def train_feature_net(
    recipe: FeatureSpaceRecipe, on_progress: Progress | None = None
) -> tuple[dict[str, torch.Tensor], dict[str, object]]:
    """Train the recipe's network on its built-in dataset: ``(state dict, info)``, the same weights on every call.

    ``info`` holds the data's content hash, the accuracy on the held-out images and the number of classes;
    ``on_progress(stage, done, total)`` follows the training examples seen.
    """
    x, y, content_hash = _real_data(recipe)
    state, info = _fit(recipe, x, y, on_progress)
    return state, {**info, "content_hash": content_hash}


def _fit(
    recipe: FeatureSpaceRecipe, x: torch.Tensor, y: torch.Tensor, on_progress: Progress | None
) -> tuple[dict[str, torch.Tensor], dict[str, object]]:
    """Train the recipe's network on images ``x [N, channels, S, S]`` with labels ``y [N]`` (deterministic):
    ``(state dict, {"held_out_accuracy", "num_classes"})``."""
    train_idx, test_idx = _split(y.numpy(), recipe.held_out, recipe.seed)  # by image: its turns stay together
    xt, yt = _task_examples(x[train_idx], y[train_idx], recipe.task)
    xh, yh = _task_examples(x[test_idx], y[test_idx], recipe.task)
    num_classes = int(torch.cat([yt, yh]).max()) + 1
    with _one_thread(), torch.random.fork_rng(devices=[]), torch.enable_grad():
        torch.manual_seed(recipe.seed)
        net = LeNet(recipe, num_classes)
        optimizer = torch.optim.Adam(net.parameters(), lr=recipe.lr)
        order = torch.Generator().manual_seed(recipe.seed)
        seen, total = 0, recipe.epochs * len(xt)
        for _ in range(recipe.epochs):
            for batch in torch.randperm(len(xt), generator=order).split(recipe.batch):
                loss = F.cross_entropy(net(xt[batch])[1], yt[batch])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                seen += len(batch)
                if on_progress is not None:
                    on_progress(FIT_STAGE, seen, total)
        net.eval()
        with torch.no_grad():
            accuracy = float((net(xh)[1].argmax(1) == yh).double().mean()) if len(yh) else 1.0
    state = {k: v.detach().clone().contiguous() for k, v in net.state_dict().items()}
    return state, {"held_out_accuracy": accuracy, "num_classes": num_classes}


def fingerprint(state: dict[str, torch.Tensor]) -> str:
    """SHA-256 over the weights' names, shapes and bytes (in name order)."""
    digest = hashlib.sha256()
    for key in sorted(state):
        tensor = state[key].detach().cpu().contiguous()
        digest.update(f"{key}:{tuple(tensor.shape)}:{tensor.dtype}".encode())
        digest.update(tensor.numpy().tobytes())
    return digest.hexdigest()


# ---------------------------------------------------------------------------- cache


def cache_path(name: str) -> Path:
    return cache_dir() / "feature-spaces" / f"{name}.safetensors"


def recipe_json(recipe: FeatureSpaceRecipe, content_hash: str) -> str:
    return json.dumps({**dataclasses.asdict(recipe), "content_hash": content_hash}, sort_keys=True)


def _read_cache(path: Path, expected_recipe: str) -> tuple[dict[str, torch.Tensor], dict] | None:
    """The cached weights and metadata, or None (with a note of why) when missing, stale or corrupt."""
    if not path.is_file():
        return None
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            names = f.keys()
            state = {k: f.get_tensor(k) for k in names}
    except (SafetensorError, OSError, ValueError) as e:
        log.warning("feature space cache %s is unreadable (%s): retraining it", path, e)
        return None
    if meta.get("recipe") != expected_recipe:
        log.warning("feature space cache %s was trained with another recipe or other data: retraining it", path)
        return None
    if fingerprint(state) != meta.get("fingerprint"):
        log.warning("feature space cache %s does not match its fingerprint: retraining it", path)
        return None
    return state, meta


_LOADED: dict[tuple[str, str], FeatureSpaceDetector] = {}  # (space or "data:<data hash>", device) → detector
_FITTED: dict[str, str] = {}  # content hash of data given to fit_data_space → the description of its space


def _cached_or_trained(
    name: str,
    recipe: FeatureSpaceRecipe,
    content_hash: str,
    path: Path,
    train: Callable[[], tuple[dict[str, torch.Tensor], dict[str, object]]],
    device: torch.device | str,
    use_cache: bool,
) -> FeatureSpaceDetector:
    """The detector of ``recipe`` on data ``content_hash``: from ``path`` when it holds that recipe's intact weights,
    else ``train()``-ed now and (``use_cache``) saved there."""
    expected = recipe_json(recipe, content_hash)
    cached = _read_cache(path, expected) if use_cache else None
    if cached is not None:
        state, meta = cached
        accuracy, fp = float(meta["held_out_accuracy"]), meta["fingerprint"]
        num_classes = int(meta["num_classes"])
    else:
        state, info = train()
        accuracy, num_classes, fp = float(info["held_out_accuracy"]), int(info["num_classes"]), fingerprint(state)
        if use_cache:
            meta = {
                "recipe": expected,
                "fingerprint": fp,
                "held_out_accuracy": repr(accuracy),
                "num_classes": str(num_classes),
            }
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                atomic_save_tensors(path, state, metadata=meta)
            except OSError as e:
                log.warning("could not cache the %s feature space in %s: %s", name, path, e.strerror or e)
    net = LeNet(recipe, num_classes)
    net.load_state_dict(state)
    return FeatureSpaceDetector(recipe, net, fp, accuracy).to(device).eval().requires_grad_(False)


def load_feature_space(
    name: str, device: torch.device | str = "cpu", use_cache: bool = True, on_progress: Progress | None = None
) -> FeatureSpaceDetector:
    """Feature space ``name``'s detector on ``device``: from the user cache, else trained now (seconds) and cached;
    ``on_progress(stage, done, total)`` follows a training."""
    recipe = check_space(name)
    key = (name, str(torch.device(device)))
    if use_cache and key in _LOADED:
        return _LOADED[key]
    content_hash = _open_real(recipe).content_hash
    detector = _cached_or_trained(
        name, recipe, content_hash, cache_path(name), lambda: train_feature_net(recipe, on_progress), device, use_cache
    )
    if use_cache:
        _LOADED[key] = detector
    return detector


def describe_space(name: str) -> str:
    """One line for reports: which network, its fingerprint when cached, its held-out accuracy."""
    recipe = check_space(name)
    path = cache_path(name)
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        return (
            f"lenet-{recipe.dataset} (trained on builtin:{recipe.dataset}, fingerprint "
            f"{meta['fingerprint'][:16]}, held-out accuracy {float(meta['held_out_accuracy']):.3f})"
        )
    except (SafetensorError, OSError, ValueError, KeyError):
        return f"lenet-{recipe.dataset} (trained on builtin:{recipe.dataset} when first used)"


# ---------------------------------------------------------------------------- the data's own space


def data_input_size(resolution: int) -> int:
    """The ``data`` space's input size for images of ``resolution``²: the largest power of two not above it,
    within [8, :data:`DATA_RECIPE` ``.input_size``]."""
    return min(DATA_RECIPE.input_size, max(8, 1 << (resolution.bit_length() - 1)))


def data_recipe(resolution: int, grey: bool) -> DataSpaceRecipe:
    """The ``data`` space's recipe for images of ``resolution``², grey (one channel) or colour."""
    size = data_input_size(resolution)
    return dataclasses.replace(DATA_RECIPE, input_size=size, render_resolution=size, channels=1 if grey else 3)


def data_cache_path(recipe: DataSpaceRecipe, content_hash: str) -> Path:
    digest = hashlib.sha256(recipe_json(recipe, content_hash).encode()).hexdigest()[:16]
    return cache_dir() / "feature-spaces" / f"{DATA_SPACE}-{digest}.safetensors"


def fit_data_space(
    dataset: ImageDataset,
    device: torch.device | str = "cpu",
    use_cache: bool = True,
    on_progress: Progress | None = None,
) -> FeatureSpaceDetector:
    """The ``data`` space of ``dataset`` on ``device``: a LeNet fitted to its images, from the user cache, else
    trained now (tens of seconds) and cached; ``on_progress(stage, done, total)`` follows the training.

    The network sees the images without x-flipped copies, read at its input size (:func:`data_input_size` of
    their resolution), so that one dataset measured at two resolutions that share an input size (e.g. InfinityGAN's
    patches beside full frames) is measured in the same space. Its cache is keyed by the recipe and the content
    hash of those images.
    """
    key = (f"{DATA_SPACE}:{dataset.content_hash}", str(torch.device(device)))
    if use_cache and key in _LOADED:
        return _LOADED[key]
    seen = dataset.unmirrored().with_resolution(data_input_size(dataset.resolution))
    images = torch.stack([seen[i][0] for i in range(len(seen))])  # uint8 [N, 3, S, S]
    recipe = data_recipe(dataset.resolution, grey=bool((images == images[:, :1]).all()))
    pick = np.sort(np.random.default_rng(recipe.seed).permutation(len(images))[: recipe.max_images])
    x = network_input(images[torch.from_numpy(pick)], recipe)

    def train() -> tuple[dict[str, torch.Tensor], dict[str, object]]:
        return _fit(recipe, x, torch.zeros(len(x), dtype=torch.int64), on_progress)

    detector = _cached_or_trained(
        DATA_SPACE, recipe, seen.content_hash, data_cache_path(recipe, seen.content_hash), train, device, use_cache
    )
    _FITTED[dataset.content_hash] = (
        f"lenet-data (trained on {dataset.name}, {recipe.input_size}² {'grey' if recipe.channels == 1 else 'colour'}, "
        f"fingerprint {detector.fingerprint[:16]}, held-out accuracy {detector.held_out_accuracy:.3f})"
    )
    if use_cache:
        _LOADED[key] = detector
    return detector


def describe_data_space(dataset: ImageDataset | None) -> str:
    """One line for reports: the ``data`` space fitted to ``dataset`` in this process, else what it will be."""
    if dataset is not None and dataset.content_hash in _FITTED:
        return _FITTED[dataset.content_hash]
    return "lenet-data (trained on the measured images when first used)"
