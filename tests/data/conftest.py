"""Generated datasets for the data tests: class folders and hand-written StyleGAN zips."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def _random_rgb(rng: np.random.Generator, size: int) -> np.ndarray:
    return rng.integers(0, 256, (size, size, 3), dtype=np.uint8)


@pytest.fixture
def random_rgb():
    """``random_rgb(rng, size) -> uint8 [size, size, 3]`` of uniform noise."""
    return _random_rgb


@pytest.fixture
def class_folder(tmp_path: Path) -> tuple[Path, list[np.ndarray], list[int]]:
    """Six 8×8 RGB PNGs in class subfolders ``cat/`` (0) and ``dog/`` (1): (root, images, labels) in sorted order."""
    rng = np.random.default_rng(1)
    root = tmp_path / "pets"
    images, labels = [], []
    for label, cls in enumerate(["cat", "dog"]):
        (root / cls).mkdir(parents=True)
        for k in range(3):
            image = _random_rgb(rng, 8)
            Image.fromarray(image).save(root / cls / f"{k}.png")
            images.append(image)
            labels.append(label)
    return root, images, labels


@pytest.fixture
def write_stylegan_zip(tmp_path: Path):
    """``write(images, labels_json) -> path``: a zip laid out as NVIDIA's dataset tool writes it."""

    def write(images: list[np.ndarray], labels: object, name: str = "data.zip") -> Path:
        path = tmp_path / name
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
            for i, image in enumerate(images):
                buf = io.BytesIO()
                Image.fromarray(image).save(buf, format="png", compress_level=0)
                zf.writestr(f"{i // 1000:05d}/img{i:08d}.png", buf.getvalue())
            zf.writestr("dataset.json", json.dumps({"labels": labels}))
        return path

    return write
