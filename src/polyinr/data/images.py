"""Image files → RGB arrays: decoding messy real-world files and fitting them to a square resolution.

:func:`decode_rgb` turns whatever an image file holds into an 8-bit RGB image at its native size (EXIF
rotation applied; grayscale, palette, CMYK and 16-bit images converted; alpha composited on white), and
:func:`fit` crops and resizes it to ``R × R`` with high-quality resampling (PIL LANCZOS, as NVIDIA's
dataset tool). :func:`threaded_map` decodes many files on a few threads (PIL releases the GIL while decoding).
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import BinaryIO, TypeVar

import numpy as np
from PIL import Image, ImageOps

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif"})
TRANSFORMS = ("center-crop", "center-crop-wide", "resize")

_SIXTEEN_BIT_MODES = frozenset({"I", "I;16", "I;16B", "I;16L", "I;16N"})
_ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})

T = TypeVar("T")
U = TypeVar("U")


def is_image_name(name: str) -> bool:
    """True for names ending in png, jpg, jpeg, webp, bmp or gif (any case)."""
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def image_size(fp: BinaryIO) -> tuple[int, int]:
    """``(width, height)`` from the file's header, without decoding the pixels; raises if unreadable."""
    with Image.open(fp) as img:
        if getattr(img, "n_frames", 1) > 1:
            raise ValueError(f"an animated image ({img.n_frames} frames); a dataset image has one")
        return img.size


def decode_rgb(fp: BinaryIO) -> Image.Image:
    """Decode an image file into an 8-bit RGB image at its native size (raises if unreadable or corrupt).

    EXIF orientation is applied; 16-bit values are scaled to 8 bits (``v / 257``); grayscale, palette and
    CMYK images become RGB; transparent pixels are composited on white.
    """
    with Image.open(fp) as img:
        if getattr(img, "n_frames", 1) > 1:
            raise ValueError(f"an animated image ({img.n_frames} frames); a dataset image has one")
        img.load()
        img = ImageOps.exif_transpose(img)
    if img.mode in _SIXTEEN_BIT_MODES:
        values = np.asarray(img, dtype=np.float64)  # [H, W], 0..65535
        img = Image.fromarray(np.clip(np.rint(values / 257), 0, 255).astype(np.uint8))
    if img.mode in _ALPHA_MODES or "transparency" in img.info:
        rgba = np.asarray(img.convert("RGBA"), dtype=np.uint32)  # [H, W, 4]
        rgb, alpha = rgba[..., :3], rgba[..., 3:]
        rgb = (rgb * alpha + 255 * (255 - alpha) + 127) // 255  # over white, rounded
        return Image.fromarray(rgb.astype(np.uint8))
    return img.convert("RGB")


def _resized(img: Image.Image, width: int, height: int) -> Image.Image:
    return img if img.size == (width, height) else img.resize((width, height), Image.LANCZOS)


def fit(img: Image.Image, resolution: int, transform: str = "center-crop") -> np.ndarray:
    """Fit an RGB image to ``resolution × resolution``: uint8 ``[R, R, 3]``.

    ``center-crop``: the largest centred square, resized. ``resize``: resized whole (aspect not kept).
    ``center-crop-wide``: the largest centred 2:1 (width:height) crop, resized to ``R × R/2`` and centred on
    a black square (NVIDIA's layout for wide data such as LSUN cars).
    """
    width, height = img.size
    if transform == "center-crop":
        side = min(width, height)
        left, top = (width - side) // 2, (height - side) // 2
        return np.asarray(_resized(img.crop((left, top, left + side, top + side)), resolution, resolution))
    if transform == "resize":
        return np.asarray(_resized(img, resolution, resolution))
    if transform == "center-crop-wide":
        crop_w, crop_h = (2 * height, height) if width >= 2 * height else (width, max(1, round(width / 2)))
        left, top = (width - crop_w) // 2, (height - crop_h) // 2
        band_h = max(1, resolution // 2)
        band = _resized(img.crop((left, top, left + crop_w, top + crop_h)), resolution, band_h)
        canvas = np.zeros((resolution, resolution, 3), dtype=np.uint8)
        row = (resolution - band_h) // 2
        canvas[row : row + band_h] = np.asarray(band)
        return canvas
    raise ValueError(f"unknown transform {transform!r}; use one of {', '.join(TRANSFORMS)}")


def threaded_map(fn: Callable[[T], U], items: Iterable[T], workers: int | None = None) -> Iterator[U]:
    """``fn`` over ``items`` on a few threads, results in order, with a bounded backlog (bounded memory)."""
    workers = workers or min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(workers) as pool:
        pending: deque = deque()
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) >= 4 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
