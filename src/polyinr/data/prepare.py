"""The dataset tool: any source → a StyleGAN dataset zip that NVIDIA's tools and ours both read.

The zip holds uncompressed PNGs (``00000/img00000000.png``, 1,000 per folder) and ``dataset.json`` =
``{"labels": [["00000/img00000000.png", 6], ...]}`` or ``{"labels": null}``, exactly as NVIDIA's
``dataset_tool.py`` writes it. Labels come from the source when it has them (``dataset.json`` or at least two
class subfolders). The zip is written under a temporary name and renamed, so an interrupted run leaves no
half-written dataset. Entries carry a fixed timestamp, so the same input gives the same bytes.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from polyinr.atomic import atomic_write
from polyinr.data.images import TRANSFORMS, threaded_map
from polyinr.data.sources import UNREADABLE, DatasetError, FileSource, open_source, reason, select, warn_skipped

_ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip can hold: reproducible archives


def archive_name(index: int) -> str:
    """NVIDIA's layout: image ``index`` → ``'00000/img00000000.png'`` (1,000 images per folder)."""
    return f"{index // 1000:05d}/img{index:08d}.png"


def _png(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="png", compress_level=0, optimize=False)
    return buf.getvalue()


def _store(zf: zipfile.ZipFile, name: str, data: bytes) -> None:
    zf.writestr(zipfile.ZipInfo(name, date_time=_ZIP_TIME), data, compress_type=zipfile.ZIP_STORED)


def prepare_dataset(
    source: str | os.PathLike,
    dest: str | Path,
    resolution: int,
    transform: str = "center-crop",
    max_images: int | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> int:
    """Write ``source`` (folder, zip or ``builtin:NAME``) to the StyleGAN dataset zip ``dest``.

    Each image is decoded like :func:`~polyinr.data.datasets.open_dataset` does (RGB, alpha on white) and
    fitted to ``resolution × resolution`` by ``transform``: ``center-crop`` (largest centred square),
    ``center-crop-wide`` (centred 2:1 crop on a black square, as NVIDIA's tool) or ``resize`` (aspect not
    kept). ``max_images`` keeps a fixed random subset (seed 0) in source order. Unreadable files are skipped
    (one warning). ``on_progress(done, total)`` is called after each image. Returns the number written.
    """
    if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < 1:
        raise DatasetError(f"resolution must be a positive integer, got {resolution!r}")
    if transform not in TRANSFORMS:
        raise DatasetError(f"unknown transform {transform!r}; use one of {', '.join(TRANSFORMS)}")
    dest = Path(dest).expanduser()
    if dest.suffix.lower() != ".zip":
        raise DatasetError(f"the destination must be a .zip file, got {dest}")
    src = open_source(source)
    if isinstance(src, FileSource) and dest.resolve() == Path(src.where).resolve():
        raise DatasetError(f"refusing to overwrite the source {src.where}; choose another destination")
    keys, labels, _ = select(src, "auto", max_images)
    dest.parent.mkdir(parents=True, exist_ok=True)

    def load(key):
        try:
            return src.load(key, resolution, transform), None
        except UNREADABLE as e:
            return None, reason(e)

    skipped: list[tuple[str, str]] = []
    written: list[list] = []

    def write(tmp: Path) -> None:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as zf:
            for i, (image, why) in enumerate(threaded_map(load, keys)):
                if image is None:
                    skipped.append((str(keys[i]), why))
                else:
                    name = archive_name(len(written))
                    _store(zf, name, _png(image))
                    written.append([name, None if labels is None else int(labels[i])])
                if on_progress is not None:
                    on_progress(i + 1, len(keys))
            if not written:
                raise DatasetError(f"{src.where} has no readable images")
            meta = {"labels": None if labels is None else written}
            _store(zf, "dataset.json", json.dumps(meta).encode())

    try:
        atomic_write(dest, write)
    finally:
        warn_skipped(src.where, skipped)
    return len(written)
