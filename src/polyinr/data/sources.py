"""Where dataset images come from: an image folder, a StyleGAN dataset zip, or a built-in dataset.

A source lists its images by key (a relative POSIX path for files, an index for built-ins), loads one as a
uint8 ``[R, R, 3]`` array, and stamps it for content hashes. The helpers here are shared by
:func:`polyinr.data.datasets.open_dataset` and :func:`polyinr.data.prepare.prepare_dataset`, so both find
labels, pick subsets and skip unreadable files the same way.
"""

from __future__ import annotations

import io
import json
import logging
import os
import struct
import zipfile
import zlib
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, UnidentifiedImageError

from polyinr.data.builtin import BUILTINS
from polyinr.data.images import decode_rgb, fit, image_size, is_image_name
from polyinr.errors import PolyinrError

logger = logging.getLogger("polyinr")

LABELS_NAME = "dataset.json"
MAX_CLASSES = 100_000  # a class id above this is a broken label file, not a dataset (ImageNet-21k has 21,841)
BUILTIN_PREFIX = "builtin:"

# What a broken, truncated or non-image file raises while PIL (or zipfile) reads it.
UNREADABLE = (
    OSError,
    ValueError,
    SyntaxError,
    EOFError,
    struct.error,
    zlib.error,
    zipfile.BadZipFile,
    Image.DecompressionBombError,
)


class DatasetError(PolyinrError):
    """A dataset cannot be opened or used: missing, empty, unreadable, or with broken labels."""


def _hidden(rel_name: str) -> bool:
    return any(part.startswith(".") or part == "__MACOSX" for part in rel_name.split("/"))


def reason(error: BaseException) -> str:
    """A one-line description of why a file could not be read."""
    if isinstance(error, UnidentifiedImageError):
        return "not an image format PIL can read"
    text = " ".join(str(error).split()) or "unreadable"
    return f"{type(error).__name__}: {text[:120]}"


# ---------------------------------------------------------------------------- file sources


class FileSource:
    """Images stored as files (a folder or a zip): sorted relative names, bytes on demand, dataset.json."""

    name: str  # short name: the folder name or the zip's stem
    where: str  # the path, for messages
    names: list[str]  # image files, relative POSIX paths, sorted

    def open(self, key: str) -> BinaryIO:
        raise NotImplementedError

    def read_labels_json(self) -> bytes | None:
        """The raw ``dataset.json`` at the root, or None when there is none."""
        raise NotImplementedError

    def stamp(self, key: str) -> str:
        raise NotImplementedError

    def load(self, key: str, resolution: int, transform: str = "center-crop") -> np.ndarray:
        """Image ``key`` decoded and fitted: uint8 ``[R, R, 3]``; raises one of :data:`UNREADABLE`."""
        with self.open(key) as f:
            return fit(decode_rgb(f), resolution, transform)

    def size(self, key: str) -> tuple[int, int]:
        """``(width, height)`` of image ``key`` from its header; raises one of :data:`UNREADABLE`."""
        with self.open(key) as f:
            return image_size(f)


class FolderSource(FileSource):
    """An image folder, searched recursively (hidden files and folders skipped, symlinks followed)."""

    kind = "folder"

    def __init__(self, root: Path) -> None:
        self.root = root
        self.name = root.resolve().name
        self.where = str(root)
        names, seen = [], set()
        for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
            real = os.path.realpath(dirpath)
            if real in seen:  # a symlink loop
                dirnames[:] = []
                continue
            seen.add(real)
            rel_dir = Path(dirpath).relative_to(root).as_posix()
            for f in filenames:
                rel = f if rel_dir == "." else f"{rel_dir}/{f}"
                if is_image_name(f) and not _hidden(rel):
                    names.append(rel)
            dirnames[:] = [d for d in dirnames if not _hidden(d)]
        self.names = sorted(names)

    def open(self, key: str) -> BinaryIO:
        return open(self.root / key, "rb")

    def read_labels_json(self) -> bytes | None:
        path = self.root / LABELS_NAME
        return path.read_bytes() if path.is_file() else None

    def stamp(self, key: str) -> str:
        st = os.stat(self.root / key)
        return f"{key}:{st.st_size}:{st.st_mtime_ns}"


class ZipSource(FileSource):
    """A zip of images (StyleGAN's dataset format), read in place; the archive is opened once per process,
    lazily, so the source is safe to send to DataLoader workers."""

    kind = "zip"

    def __init__(self, path: Path) -> None:
        self.path = path
        self.name = path.stem
        self.where = str(path)
        try:
            with zipfile.ZipFile(path) as zf:
                infos = zf.infolist()
        except (zipfile.BadZipFile, OSError) as e:
            raise DatasetError(f"{path} is not a readable zip file ({reason(e)})") from None
        self._infos = {i.filename: i for i in infos if not i.is_dir()}
        self.names = sorted(n for n in self._infos if is_image_name(n) and not _hidden(n))
        self._zip: zipfile.ZipFile | None = None
        self._pid: int | None = None

    def _zipfile(self) -> zipfile.ZipFile:
        if self._zip is None or self._pid != os.getpid():
            self._zip, self._pid = zipfile.ZipFile(self.path), os.getpid()
        return self._zip

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_zip": None, "_pid": None}

    def open(self, key: str) -> BinaryIO:
        return io.BytesIO(self._zipfile().read(key))

    def read_labels_json(self) -> bytes | None:
        return self._zipfile().read(LABELS_NAME) if LABELS_NAME in self._infos else None

    def stamp(self, key: str) -> str:
        info = self._infos[key]
        return f"{key}:{info.file_size}:{info.CRC:08x}"


# ---------------------------------------------------------------------------- built-in sources


class BuiltinSource:
    """A built-in dataset (see :mod:`polyinr.data.builtin`), rendered at any resolution."""

    kind = "builtin"

    def __init__(self, name: str) -> None:
        if name not in BUILTINS:
            valid = ", ".join(BUILTIN_PREFIX + n for n in BUILTINS)
            raise DatasetError(f"unknown built-in dataset {BUILTIN_PREFIX}{name}; valid ones: {valid}")
        try:
            self.builtin = BUILTINS[name]()
        except ImportError as e:
            raise DatasetError(f"{BUILTIN_PREFIX}{name} needs the package {e.name}: pip install {e.name}") from None
        self.name = name
        self.where = BUILTIN_PREFIX + name
        self.names = list(range(len(self.builtin)))

    def load(self, key: int, resolution: int, transform: str = "center-crop") -> np.ndarray:
        """Item ``key`` rendered at ``resolution``: uint8 ``[R, R, 3]`` (square, so only crop-wide changes it)."""
        image = self.builtin.render(key, resolution)
        return fit(Image.fromarray(image), resolution, transform) if transform == "center-crop-wide" else image

    def stamp(self, key: int) -> str:
        return f"{self.name}:v{self.builtin.version}:{key}"


Source = FileSource | BuiltinSource


def open_source(source: str | os.PathLike) -> Source:
    """``builtin:NAME``, an image folder, or a zip → its source; one-line errors for anything else."""
    source = os.fspath(source)
    if source.startswith(BUILTIN_PREFIX):
        return BuiltinSource(source[len(BUILTIN_PREFIX) :])
    path = Path(source).expanduser()
    if not path.exists():
        raise DatasetError(f"dataset not found: {source}")
    if path.is_dir():
        return FolderSource(path)
    if zipfile.is_zipfile(path) or path.suffix.lower() == ".zip":
        return ZipSource(path)
    raise DatasetError(f"{source} is not an image folder, a .zip dataset or {BUILTIN_PREFIX}NAME")


# ---------------------------------------------------------------------------- labels


def _labels_from_json(source: FileSource, raw: bytes) -> dict[str, int] | None:
    where = f"{source.where}/{LABELS_NAME}"
    try:
        meta = json.loads(raw)
    except ValueError as e:
        raise DatasetError(f"{where} is not valid JSON ({e})") from None
    except RecursionError:
        raise DatasetError(f"{where} is nested too deeply to be a label file") from None
    if not isinstance(meta, dict) or "labels" not in meta:
        raise DatasetError(f'{where} must be {{"labels": [["path.png", class], ...]}} or {{"labels": null}}')
    entries = meta["labels"]
    if entries is None:
        return None
    if not isinstance(entries, list):
        raise DatasetError(f"{where}: 'labels' must be a list of [path, class] pairs or null")
    table = {}
    for entry in entries:
        if not (isinstance(entry, list) and len(entry) == 2 and isinstance(entry[0], str)):
            raise DatasetError(f"{where}: each label must be a [path, class] pair, got {json.dumps(entry)[:80]}")
        path, label = entry
        if isinstance(label, bool) or not isinstance(label, int) or label < 0:
            raise DatasetError(
                f"{where}: the label of {path} must be a non-negative integer class, got {json.dumps(label)[:80]}"
            )
        if label >= MAX_CLASSES:
            raise DatasetError(
                f"{where}: the label of {path} is {label}; class ids must be below {MAX_CLASSES:,} "
                "(number the classes 0, 1, 2, …)"
            )
        table[path.replace("\\", "/")] = label
    return table


def find_labels(source: Source, required: bool) -> tuple[np.ndarray | None, int]:
    """Class labels of ``source.names``: int64 ``[N]`` and the number of classes, or ``(None, 0)``.

    Files: ``dataset.json`` at the root when present (classes = max label + 1); otherwise class subfolders
    (sorted names → 0..K−1), used when ``required`` or when there are at least two of them and every image
    lies in one. ``required`` turns "no labels" into a :class:`DatasetError`.
    """
    if isinstance(source, BuiltinSource):
        if required and source.builtin.labels is None:
            raise DatasetError(f"{source.where} has no labels; train unconditionally")
        return source.builtin.labels, source.builtin.num_classes
    names = source.names
    raw = source.read_labels_json()
    if raw is not None:
        table = _labels_from_json(source, raw)
        if table is None:
            if required:
                raise DatasetError(f"{source.where} has no labels ({LABELS_NAME} says null); train unconditionally")
            return None, 0
        name_set = set(names)
        missing = [n for n in table if n not in name_set]
        if missing:
            raise DatasetError(
                f"{LABELS_NAME} names {len(missing)} file(s) that are not in {source.where}, e.g. {missing[0]}"
            )
        unlabelled = [n for n in names if n not in table]
        if unlabelled:
            raise DatasetError(
                f"{LABELS_NAME} labels only {len(names) - len(unlabelled)} of the {len(names)} "
                f"images in {source.where}; {unlabelled[0]} has no label"
            )
        labels = np.array([table[n] for n in names], dtype=np.int64)
        num_classes = int(labels.max()) + 1
        if num_classes > max(len(names), 1000):
            raise DatasetError(
                f"{LABELS_NAME} in {source.where} uses class id {num_classes - 1} for {len(names)} "
                "images: number the classes densely from 0"
            )
        return labels, num_classes
    classes = sorted({n.split("/")[0] for n in names if "/" in n})
    loose = [n for n in names if "/" not in n]
    if classes and not loose and (required or len(classes) >= 2):
        index = {c: k for k, c in enumerate(classes)}
        return np.array([index[n.split("/")[0]] for n in names], dtype=np.int64), len(classes)
    if required:
        if classes:
            raise DatasetError(
                f"{source.where}: {len(loose)} image(s) are not in a class subfolder "
                f"(e.g. {loose[0]}); conditional training needs a label for every image"
            )
        raise DatasetError(
            f"{source.where} has no labels: add {LABELS_NAME} or put the images in class "
            "subfolders, or train unconditionally"
        )
    return None, 0


# ---------------------------------------------------------------------------- selection and skipping


def subset(count: int, max_images: int | None) -> np.ndarray:
    """Indices of ``max_images`` of ``count`` items: a fixed random subset (seed 0), in their original order.

    StyleGAN's ``max_size`` rule, so a subset of a class-folder dataset keeps every class.
    """
    indices = np.arange(count)
    if max_images is None or max_images >= count:
        return indices
    np.random.RandomState(0).shuffle(indices)
    return np.sort(indices[:max_images])


def select(source: Source, labels: str, max_images: int | None) -> tuple[list, np.ndarray | None, int]:
    """The keys to use, their labels and the number of classes.

    ``labels``: ``"ignore"``, ``"require"`` (a DatasetError when there are none) or ``"auto"`` (use them
    when the source has them). Classes are counted over the whole source, before the ``max_images`` subset.
    """
    if max_images is not None and max_images < 1:
        raise DatasetError(f"max_images must be at least 1, got {max_images}")
    if not source.names:
        raise DatasetError(f"{source.where} holds no images (png, jpg, jpeg, webp or bmp)")
    found, num_classes = (None, 0) if labels == "ignore" else find_labels(source, required=labels == "require")
    keep = subset(len(source.names), max_images)
    keys = [source.names[i] for i in keep]
    return keys, (None if found is None else found[keep]), num_classes


def warn_skipped(where: str, skipped: list[tuple[str, str]]) -> None:
    """One warning for all unreadable files: how many, and one example with its reason."""
    if skipped:
        name, why = skipped[0]
        logger.warning("skipped %d unreadable image file(s) in %s, e.g. %s (%s)", len(skipped), where, name, why)
