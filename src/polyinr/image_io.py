"""Images as data: ``[-1, 1]`` tensors <-> uint8, grids of images, saving, and PNGs streamed row by row.

Generators paint in ``[-1, 1]``; a pixel value ``x`` becomes the byte ``clamp(x·127.5 + 128, 0, 255)``
truncated, and a byte ``b`` becomes ``b / 127.5 - 1`` (the StyleGAN family's conventions). Images on disk and
NumPy images are ``uint8 [H, W, 3]``. :class:`PngEncoder` encodes a PNG strip by strip, so an image of any size
needs only one strip in memory: :class:`PngStreamWriter` writes it to a file (the tiled renders of
``tools/render.py``), the viewer streams it over HTTP (its exports).
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from polyinr.atomic import atomic_write
from polyinr.errors import PolyinrError


def quantize(images: torch.Tensor) -> torch.Tensor:
    """Images ``[B, C, H, W]`` in ``[-1, 1]`` → uint8 ``[B, C, H, W]`` on their device (``x·127.5 + 128``)."""
    return (images.detach().float() * 127.5 + 128).clamp(0, 255).to(torch.uint8)


def quantize_rgb(images: torch.Tensor) -> torch.Tensor:
    """Images ``[B, C, H, W]`` in ``[-1, 1]`` → uint8 ``[B, 3, H, W]`` on their device (grayscale repeated)."""
    images = quantize(images)
    return images.repeat(1, 3, 1, 1) if images.shape[1] == 1 else images


def from_uint8(pixels: torch.Tensor) -> torch.Tensor:
    """uint8 images (any shape) → float32 in ``[-1, 1]`` (``b / 127.5 - 1``), on their device."""
    return pixels.float().div(127.5).sub(1)


class NonFinitePixels(PolyinrError):
    """A render produced NaN or infinite pixels, which would silently become black."""


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """Images ``[B, 3, H, W]`` in ``[-1, 1]`` → uint8 ``[B, H, W, 3]`` NumPy arrays, for saving.

    Raises :class:`NonFinitePixels` rather than writing NaN or infinite pixels as black.
    """
    if not torch.isfinite(images).all():
        bad = int((~torch.isfinite(images)).sum())
        raise NonFinitePixels(
            f"the generator produced {bad:,} non-finite pixel values (NaN or infinity): its weights "
            "or the window's coordinates are out of range; nothing was written"
        )
    return quantize(images).permute(0, 2, 3, 1).cpu().numpy()


def image_grid(images: list[np.ndarray], cols: int, rows: int) -> np.ndarray:
    """Lay out ``rows × cols`` images ``[H, W, 3]`` row-major into one ``[rows·H, cols·W, 3]`` image."""
    if len(images) > cols * rows:
        raise PolyinrError(f"{len(images)} images do not fit a {cols}x{rows} grid")
    H, W, C = images[0].shape
    canvas = np.zeros((rows * H, cols * W, C), dtype=np.uint8)
    for i, img in enumerate(images):
        r, c = divmod(i, cols)
        canvas[r * H : (r + 1) * H, c * W : (c + 1) * W] = img
    return canvas


def save_image(image: np.ndarray, path: str | Path) -> Path:
    """Save a uint8 ``[H, W, 3]`` image; the format follows the file extension."""
    path = prepare_image_output(path)
    fmt = image_format(path)
    # Written under a temporary name and renamed: a full disk leaves no partial or empty file behind.
    return atomic_write(path, lambda tmp: Image.fromarray(image).save(tmp, format=fmt))


def image_format(path: str | Path) -> str:
    """The PIL format an image file name asks for (``'PNG'`` for ``x.png``); a one-line error for others."""
    suffix = Path(path).suffix.lower()
    fmt = Image.registered_extensions().get(suffix)
    if fmt is None or fmt not in Image.SAVE:
        raise PolyinrError(
            f"cannot write {suffix or 'extension-less'} images ({Path(path).name}); use .png, .jpg, .webp, .bmp or .tif"
        )
    return fmt


def prepare_image_output(path: str | Path) -> Path:
    """:func:`prepare_output` for an image file, whose name must ask for a format PIL writes."""
    if Path(path).is_dir():
        return prepare_output(path)  # the one-line "is a directory" error
    image_format(path)
    return prepare_output(path)


class OutputExists(PolyinrError):
    """Files a command is about to write into a folder are there already, and replacing them was not asked for."""


def check_new_outputs(directory: str | Path, names: Iterable[str], overwrite: bool = False) -> None:
    """Before any work: refuse, unless ``overwrite``, when ``directory`` already holds an entry named like one of
    the files a command is about to write there (``names``); one line naming the first few. The folder is
    listed once, so millions of names cost no more than a set lookup each."""
    directory = Path(directory)
    if overwrite or not directory.is_dir():
        return
    present = set(os.listdir(directory))
    taken = [name for name in names if name in present]
    if taken:
        more = f" and {len(taken) - 3:,} more" if len(taken) > 3 else ""
        raise OutputExists(f"{directory} already holds {', '.join(taken[:3])}{more}")


def prepare_output(path: str | Path) -> Path:
    """Check, before any work, that the file ``path`` can be written (a writable directory, created if
    needed); a one-line error otherwise."""
    path = Path(path)
    if path.is_dir():
        raise PolyinrError(f"output path {path} is a directory; give a file name")
    parent = path.parent
    if not parent.exists():
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise PolyinrError(f"cannot create output directory {parent}: {e.strerror}") from None
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise PolyinrError(f"output directory {parent} is not writable")
    return path


PNG_GROUP_BYTES = 8 << 20  # filtered rows compressed at a time: bounds the encoder's buffers at any width
ZLIB_STATE_BYTES = 1 << 18  # deflate's window and hash tables at the default settings


class PngEncoder:
    """An RGB8 PNG as bytes, strip by strip: :meth:`header`, then :meth:`rows` for each strip, then :meth:`end`.

    Holds only the compressor's state and one group of rows being compressed (:meth:`working_bytes`), so a PNG
    of any size streams to a file or over the network.
    """

    def __init__(self, height: int, width: int, level: int = 6) -> None:
        self.height, self.width = height, width
        self.rows_encoded = 0
        self._zlib = zlib.compressobj(level)

    @staticmethod
    def _chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(data, zlib.crc32(kind)) & 0xFFFFFFFF
        return b"".join((struct.pack(">I", len(data)), kind, data, struct.pack(">I", crc)))

    @staticmethod
    def _group_rows(width: int) -> int:
        return max(1, PNG_GROUP_BYTES // (1 + 3 * width))

    @staticmethod
    def working_bytes(width: int, rows: int) -> int:
        """Bytes the encoder holds at most while encoding ``rows`` rows ``width`` pixels wide, besides the rows
        given: one group of filtered rows, its compressed data (at worst as large), the chunk made of it and
        zlib's state."""
        return 3 * min(rows, PngEncoder._group_rows(width)) * (1 + 3 * width) + ZLIB_STATE_BYTES

    def header(self) -> bytes:
        """The signature and the ``IHDR`` chunk."""
        return b"\x89PNG\r\n\x1a\n" + self._chunk(
            b"IHDR", struct.pack(">IIBBBBB", self.width, self.height, 8, 2, 0, 0, 0)
        )

    def row_chunks(self, rows: np.ndarray) -> Iterator[bytes]:
        """The next rows ``uint8 [h, width, 3]`` as ``IDAT`` chunks, a bounded group of rows at a time (possibly
        none yet: zlib buffers)."""
        if rows.shape[1:] != (self.width, 3) or rows.dtype != np.uint8:
            raise ValueError(f"rows must be uint8 [h, {self.width}, 3], got {rows.dtype} {rows.shape}")
        group = self._group_rows(self.width)
        for start in range(0, rows.shape[0], group):
            part = rows[start : start + group]
            filtered = np.zeros((part.shape[0], 1 + self.width * 3), dtype=np.uint8)  # filter byte 0 = none
            filtered[:, 1:] = part.reshape(part.shape[0], -1)
            data = self._zlib.compress(filtered)  # read in place: no copy of the rows as bytes
            self.rows_encoded += part.shape[0]
            if data:
                yield self._chunk(b"IDAT", data)

    def rows(self, rows: np.ndarray) -> bytes:
        """The next rows ``uint8 [h, width, 3]`` as ``IDAT`` bytes (possibly none yet: zlib buffers)."""
        return b"".join(self.row_chunks(rows))

    def end(self) -> bytes:
        """The last ``IDAT`` and ``IEND``; every row must have been given."""
        if self.rows_encoded != self.height:
            raise ValueError(f"PNG has {self.rows_encoded} of {self.height} rows")
        return self._chunk(b"IDAT", self._zlib.flush()) + self._chunk(b"IEND", b"")


class PngStreamWriter:
    """Write an RGB8 PNG row strip by row strip to a file, holding only the current strip in memory (plus
    :meth:`PngEncoder.working_bytes`)."""

    def __init__(self, path: str | Path, height: int, width: int, level: int = 6) -> None:
        self.path, self.height, self.width = Path(path), height, width
        self._encoder = PngEncoder(height, width, level)
        self._file = open(self.path, "wb")
        self._file.write(self._encoder.header())

    @property
    def rows_written(self) -> int:
        return self._encoder.rows_encoded

    def write_rows(self, rows: np.ndarray) -> None:
        """Append rows ``uint8 [h, width, 3]``."""
        for chunk in self._encoder.row_chunks(rows):
            self._file.write(chunk)

    def close(self) -> None:
        try:
            self._file.write(self._encoder.end())
        finally:
            self._file.close()

    def abort(self) -> None:
        self._file.close()
        self.path.unlink(missing_ok=True)


# ---------------------------------------------------------------------------- memory


def memory_limit() -> int:
    """Bytes an output may hold in memory here: half of the machine's physical memory."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2


def check_memory(nbytes: int, what: str, way_round: str) -> None:
    """Refuse, before any work, an output that would need more than :func:`memory_limit`; one line naming the
    need, the limit and ``way_round``."""
    limit = memory_limit()
    if nbytes > limit:
        raise PolyinrError(
            f"{what} needs about {_gib(nbytes)} of memory, over this machine's limit of {_gib(limit)}: {way_round}"
        )


def _gib(nbytes: int) -> str:
    return f"{nbytes / 2**30:,.1f} GiB" if nbytes >= 2**30 else f"{nbytes / 2**20:,.0f} MiB"
