"""Image datasets for training and metrics: :func:`open_dataset` → :class:`ImageDataset`.

A source is an image folder (searched recursively; labels from ``dataset.json`` or ImageNet-style class
subfolders), a StyleGAN dataset zip (read in place), or a built-in (``builtin:NAME``, :mod:`polyinr.data.builtin`).
Every item is uint8 ``[3, R, R]`` plus a class label (−1 when unlabelled). Messy files are made uniform
(see :mod:`polyinr.data.images`): RGB, alpha on white, centre-cropped to a square, LANCZOS-resized.
Unreadable files are skipped and reported in one warning. Datasets of at most ``CACHE_LIMIT_BYTES`` of pixels
are decoded once, at open, and held in memory (shared copy-on-write by DataLoader workers); bigger ones are
decoded per item.

Example::

    ds = open_dataset("builtin:digits", resolution=32, cond=True, mirror=True)
    image, label = ds[0]  # uint8 [3, 32, 32], 0
"""

from __future__ import annotations

import hashlib
import json
import operator
import os
from collections import Counter

import numpy as np
import torch

from polyinr.data.builtin import DEFAULT_RESOLUTION
from polyinr.data.images import threaded_map
from polyinr.data.sources import (
    UNREADABLE,
    BuiltinSource,
    DatasetError,
    FileSource,
    Source,
    open_source,
    reason,
    select,
    warn_skipped,
)

__all__ = ["CACHE_LIMIT_BYTES", "DatasetError", "ImageDataset", "open_dataset"]

CACHE_LIMIT_BYTES = 512 * 2**20  # datasets with at most this many bytes of pixels are decoded once, at open
_PIPELINE_VERSION = 1  # bump when decoding or resizing changes pixels: part of content_hash


def _check_resolution(resolution: int) -> int:
    if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < 1:
        raise DatasetError(f"resolution must be a positive integer, got {resolution!r}")
    return resolution


class ImageDataset(torch.utils.data.Dataset):
    """Images of one source at one resolution, optionally x-flipped (mirror) and labelled.

    Items are ``(image, label)``: ``image`` uint8 ``[3, R, R]``, ``label`` an int class index (−1 when
    unlabelled). With ``mirror`` the dataset is twice as long: item ``i ≥ N`` is item ``i − N`` flipped
    left–right. Built by :func:`open_dataset`.

    Attributes: ``name`` (short, for run directories), ``resolution``, ``num_classes`` (0 when unlabelled),
    ``labels`` (int64 ``[len(self)]``, after mirroring, or None), ``mirror``, ``content_hash`` (hex digest of
    the content, labels, resolution and mirror, for caches of dataset statistics), ``source_resolution`` (the
    largest square every source image covers without upsampling; None for built-ins, drawn at any size).
    """

    def __init__(
        self,
        source: Source,
        keys: list,
        labels: np.ndarray | None,
        num_classes: int,
        resolution: int,
        mirror: bool,
        skipped: list[tuple[str, str]] | None = None,
        source_resolution: int | None = None,
    ) -> None:
        self.name = source.name
        self.source_resolution = source_resolution
        self.resolution = _check_resolution(resolution)
        self.num_classes = num_classes if labels is not None else 0
        self.mirror = bool(mirror)
        self._source, self._keys, self._raw_labels = source, list(keys), labels
        self._cache: np.ndarray | None = None  # uint8 [N, R, R, 3]
        skipped = list(skipped or [])
        if len(self._keys) * resolution * resolution * 3 <= CACHE_LIMIT_BYTES:
            skipped += self._decode_all()
        warn_skipped(source.where, skipped)
        if not self._keys:
            raise DatasetError(f"{source.where} has no readable images")
        raw = self._raw_labels
        self.labels = None if raw is None else np.concatenate([raw, raw]) if self.mirror else raw.copy()
        self.content_hash = self._content_hash()

    def _decode_all(self) -> list[tuple[str, str]]:
        """Decode every image into the cache; drop (and return) the unreadable ones."""
        R = self.resolution

        def load(key):
            try:
                return self._source.load(key, R), None
            except UNREADABLE as e:
                return None, reason(e)

        cache = np.empty((len(self._keys), R, R, 3), dtype=np.uint8)
        keep, skipped = [], []
        mapper = threaded_map if isinstance(self._source, FileSource) else map  # threads help file decoding only
        for i, (image, why) in enumerate(mapper(load, self._keys)):
            if image is None:
                skipped.append((str(self._keys[i]), why))
            else:
                cache[len(keep)] = image
                keep.append(i)
        self._cache = cache[: len(keep)] if skipped else cache
        if skipped:
            self._keys = [self._keys[i] for i in keep]
            self._raw_labels = None if self._raw_labels is None else self._raw_labels[keep]
        return skipped

    # ------------------------------------------------------------------ Dataset protocol

    def __len__(self) -> int:
        return len(self._keys) * (2 if self.mirror else 1)

    def __getitem__(self, idx: int) -> tuple[torch.Tensor, int]:
        """``(image uint8 [3, R, R], label)``; label −1 when unlabelled."""
        idx = operator.index(idx)
        if idx < 0:
            idx += len(self)
        if not 0 <= idx < len(self):
            raise IndexError(f"index {idx} is out of range for a dataset of {len(self)} images")
        raw = idx % len(self._keys)
        image = self._cache[raw] if self._cache is not None else self._load(raw)  # [R, R, 3]
        if idx >= len(self._keys):
            image = image[:, ::-1]
        label = -1 if self.labels is None else int(self.labels[idx])
        return torch.from_numpy(image.transpose(2, 0, 1).copy()), label

    def _load(self, raw: int) -> np.ndarray:
        key = self._keys[raw]
        try:
            return self._source.load(key, self.resolution)
        except UNREADABLE as e:
            raise DatasetError(f"cannot read image {key} of {self._source.where}: {reason(e)}") from None

    # ------------------------------------------------------------------ derived views

    def label_distribution(self) -> np.ndarray:
        """Empirical class frequencies, float64 ``[num_classes]`` (empty when unlabelled)."""
        if self.labels is None:
            return np.zeros(0, dtype=np.float64)
        return np.bincount(self.labels, minlength=self.num_classes) / len(self.labels)

    def with_resolution(self, resolution: int) -> ImageDataset:
        """The same images (and labels, mirror) re-read at another resolution."""
        if resolution == self.resolution:
            return self
        return ImageDataset(
            self._source,
            self._keys,
            self._raw_labels,
            self.num_classes,
            resolution,
            self.mirror,
            source_resolution=self.source_resolution,
        )

    def unmirrored(self) -> ImageDataset:
        """The same images without the x-flipped copies (the metrics' ``_full`` reference set)."""
        if not self.mirror:
            return self
        return ImageDataset(
            self._source,
            self._keys,
            self._raw_labels,
            self.num_classes,
            self.resolution,
            False,
            source_resolution=self.source_resolution,
        )

    def _content_hash(self) -> str:
        """SHA-256 hex digest of which files (names, sizes, zip CRCs or mtimes), labels, resolution and mirror."""
        h = hashlib.sha256()
        head = {
            "kind": self._source.kind,
            "resolution": self.resolution,
            "mirror": self.mirror,
            "pipeline": _PIPELINE_VERSION,
        }
        h.update(json.dumps(head, sort_keys=True).encode())
        for key in self._keys:
            h.update(self._source.stamp(key).encode("utf-8", "surrogateescape") + b"\0")
        if self.labels is not None:
            h.update(self.labels.astype("<i8").tobytes())
        return h.hexdigest()

    def __repr__(self) -> str:
        cached = self._cache is not None
        return (
            f"ImageDataset(name={self.name!r}, len={len(self)}, resolution={self.resolution}, "
            f"num_classes={self.num_classes}, mirror={self.mirror}, cached={cached})"
        )


def _scan(source: FileSource, keys: list[str], labels: np.ndarray | None):
    """Read every file's header: the readable keys, their labels and sizes ``(w, h)``, and the skipped files."""

    def probe(key):
        try:
            return source.size(key), None
        except UNREADABLE as e:
            return None, reason(e)

    keep, sizes, skipped = [], [], []
    for i, (size, why) in enumerate(threaded_map(probe, keys)):
        if size is None:
            skipped.append((keys[i], why))
        else:
            keep.append(i)
            sizes.append(size)
    return [keys[i] for i in keep], (None if labels is None else labels[keep]), sizes, skipped


def _native_resolution(where: str, keys: list[str], sizes: list[tuple[int, int]]) -> int:
    """The one square size of every image; otherwise a one-line error naming a file of the rarest size."""
    counts = Counter(sizes)
    if len(counts) == 1 and sizes[0][0] == sizes[0][1]:
        return sizes[0][0]
    rare = min(counts, key=lambda size: (counts[size], size))
    odd = keys[sizes.index(rare)]
    if len(counts) > 1:
        common = max((size for size in counts if size != rare), key=lambda size: (counts[size], size))
        raise DatasetError(
            f"{where} has images of different sizes (e.g. {odd} is {rare[0]}x{rare[1]}, most are "
            f"{common[0]}x{common[1]}); give a resolution to crop and resize to"
        )
    raise DatasetError(
        f"{where} has images of a non-square size (e.g. {odd} is {rare[0]}x{rare[1]}); give a "
        "resolution to crop and resize to"
    )


def open_dataset(
    source: str | os.PathLike,
    resolution: int | None = None,
    cond: bool = False,
    mirror: bool = False,
    max_images: int | None = None,
) -> ImageDataset:
    """Open an image folder, a StyleGAN dataset zip, or a built-in ``builtin:NAME``.

    ``resolution``: every item is ``[3, R, R]``; None = the images' own size (they must all be square and
    equal) or 32 for built-ins. ``cond``: read class labels (a DatasetError when the source has none);
    otherwise labels are ignored and ``num_classes`` is 0. ``mirror``: append x-flipped copies (StyleGAN's
    ``--mirror``). ``max_images``: use a fixed random subset (seed 0) of at most this many images.
    """
    if resolution is not None:
        _check_resolution(resolution)
    src = open_source(source)
    keys, labels, num_classes = select(src, "require" if cond else "ignore", max_images)
    skipped: list[tuple[str, str]] = []
    source_resolution = None
    if isinstance(src, BuiltinSource):
        resolution = resolution or DEFAULT_RESOLUTION
    else:
        keys, labels, sizes, skipped = _scan(src, keys, labels)
        if not keys:
            warn_skipped(src.where, skipped)
            raise DatasetError(f"{src.where} has no readable images")
        resolution = resolution or _native_resolution(src.where, keys, sizes)
        source_resolution = min(min(size) for size in sizes)
    return ImageDataset(src, keys, labels, num_classes, resolution, mirror, skipped, source_resolution)
