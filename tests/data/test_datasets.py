"""open_dataset on generated folders and zips: messy files, labels, errors, mirror, caching, resolution."""

from __future__ import annotations

import json
import logging
import pickle
import re
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

import polyinr.data.datasets as datasets_module
from polyinr.data.datasets import DatasetError, ImageDataset, open_dataset
from polyinr.errors import PolyinrError


def items(ds: ImageDataset) -> tuple[np.ndarray, list[int]]:
    """All images as uint8 [N, R, R, 3] and the labels."""
    pairs = [ds[i] for i in range(len(ds))]
    return np.stack([p[0].permute(1, 2, 0).numpy() for p in pairs]), [p[1] for p in pairs]


# ---------------------------------------------------------------------------- folders


def test_class_folder_labels_and_pixels(class_folder):
    root, images, labels = class_folder
    ds = open_dataset(str(root), cond=True)
    assert isinstance(ds, ImageDataset) and isinstance(ds, torch.utils.data.Dataset)
    assert (ds.name, ds.resolution, ds.num_classes, len(ds)) == ("pets", 8, 2, 6)
    image, label = ds[0]
    assert label == 0
    assert image.dtype == torch.uint8 and image.shape == (3, 8, 8)
    pixels, got = items(ds)
    assert np.array_equal(pixels, np.stack(images))
    assert got == labels and ds.labels.dtype == np.int64 and ds.labels.tolist() == labels
    assert ds.label_distribution().tolist() == [0.5, 0.5]


def test_unconditional_ignores_labels(class_folder):
    ds = open_dataset(str(class_folder[0]))
    assert ds.num_classes == 0 and ds.labels is None
    assert ds[0][1] == -1 and ds.label_distribution().shape == (0,)


def test_messy_folder(tmp_path, caplog, random_rgb):
    rng = np.random.default_rng(0)
    root = tmp_path / "messy"
    (root / "deep" / "er").mkdir(parents=True)
    Image.fromarray(random_rgb(rng, 16)).save(root / "a.PNG")
    Image.fromarray(rng.integers(0, 256, (16, 16), dtype=np.uint8)).save(root / "grey.jpg")
    rgba = np.zeros((12, 20, 4), np.uint8)
    rgba[..., 3] = 0  # fully transparent, non-square → white after crop and resize
    Image.fromarray(rgba).save(root / "deep" / "alpha.png")
    Image.fromarray(random_rgb(rng, 9)).convert("P").save(root / "deep" / "er" / "pal.bmp")
    Image.fromarray((rng.integers(0, 65536, (16, 16))).astype(np.uint16)).save(root / "deep" / "sixteen.png")
    Image.fromarray(random_rgb(rng, 16)).save(root / "w.webp")
    (root / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (root / "empty.jpg").write_bytes(b"")
    (root / "notes.txt").write_text("not an image")
    (root / ".hidden.png").write_bytes(b"junk")
    with caplog.at_level(logging.WARNING, logger="polyinr"):
        ds = open_dataset(str(root), resolution=8)
    assert len(ds) == 6
    warnings = [r for r in caplog.records if r.name == "polyinr"]
    assert len(warnings) == 1
    assert "skipped 2 unreadable" in warnings[0].getMessage() and "corrupt.png" in warnings[0].getMessage()
    keys = ds._keys
    assert keys == ["a.PNG", "deep/alpha.png", "deep/er/pal.bmp", "deep/sixteen.png", "grey.jpg", "w.webp"]
    assert ds[1][0].min() == 255  # alpha on white
    assert all(ds[i][0].shape == (3, 8, 8) for i in range(len(ds)))


def test_truncated_file_is_skipped_after_decoding(tmp_path, caplog, random_rgb):
    rng = np.random.default_rng(0)
    for k in range(3):
        Image.fromarray(random_rgb(rng, 16)).save(tmp_path / f"{k}.png")
    data = (tmp_path / "1.png").read_bytes()
    (tmp_path / "1.png").write_bytes(data[: len(data) // 2])  # header fine, pixels cut off
    with caplog.at_level(logging.WARNING, logger="polyinr"):
        ds = open_dataset(str(tmp_path))
    assert len(ds) == 2 and ds._keys == ["0.png", "2.png"]
    assert sum("1.png" in r.getMessage() for r in caplog.records) == 1


def test_dataset_json_labels(tmp_path, random_rgb):
    rng = np.random.default_rng(0)
    (tmp_path / "sub").mkdir()
    for name in ["x.png", "sub/y.png", "z.png"]:
        Image.fromarray(random_rgb(rng, 4)).save(tmp_path / name)
    (tmp_path / "dataset.json").write_text(json.dumps({"labels": [["z.png", 1], ["sub\\y.png", 4], ["x.png", 0]]}))
    ds = open_dataset(str(tmp_path), cond=True)
    assert ds._keys == ["sub/y.png", "x.png", "z.png"]
    assert ds.labels.tolist() == [4, 0, 1] and ds.num_classes == 5
    assert ds.label_distribution().tolist() == pytest.approx([1 / 3, 1 / 3, 0, 0, 1 / 3])


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        ([["a.png", 0], ["b.png", 1], ["gone.png", 1]], "names 1 file(s) that are not in"),
        ([["a.png", 0]], "labels only 1 of the 2 images"),
        ([["a.png", 0], ["b.png", -1]], "non-negative integer"),
        ([["a.png", 0], ["b.png", 1.5]], "non-negative integer"),
        ([["a.png", 0], ["b.png", "cat"]], "non-negative integer"),
        ([["a.png", 0], ["b.png", [0, 1]]], "non-negative integer"),
        ([["a.png", 0], ["b.png", True]], "non-negative integer"),
        ([["a.png"]], "must be a [path, class] pair"),
        (None, "has no labels"),
    ],
)
def test_bad_labels_are_one_line_errors(tmp_path, labels, message, random_rgb):
    rng = np.random.default_rng(0)
    for name in ["a.png", "b.png"]:
        Image.fromarray(random_rgb(rng, 4)).save(tmp_path / name)
    (tmp_path / "dataset.json").write_text(json.dumps({"labels": labels}))
    with pytest.raises(DatasetError, match=re.escape(message)) as info:
        open_dataset(str(tmp_path), cond=True)
    assert "\n" not in str(info.value)
    assert len(open_dataset(str(tmp_path))) == 2  # without cond the labels are not read


def test_malformed_dataset_json(tmp_path):
    Image.new("RGB", (4, 4)).save(tmp_path / "a.png")
    (tmp_path / "dataset.json").write_text("{not json")
    with pytest.raises(DatasetError, match="not valid JSON"):
        open_dataset(str(tmp_path), cond=True)
    (tmp_path / "dataset.json").write_text("[1, 2]")
    with pytest.raises(DatasetError, match=re.escape('must be {"labels"')):
        open_dataset(str(tmp_path), cond=True)


def test_cond_without_labels(tmp_path, class_folder):
    (tmp_path / "flat").mkdir()
    Image.new("RGB", (4, 4)).save(tmp_path / "flat" / "loose.png")
    with pytest.raises(DatasetError, match=r"has no labels: add dataset\.json or put the images in class subfolders"):
        open_dataset(str(tmp_path / "flat"), cond=True)
    root = class_folder[0]
    Image.new("RGB", (8, 8)).save(root / "stray.png")
    with pytest.raises(DatasetError, match=r"1 image\(s\) are not in a class subfolder \(e.g. stray.png\)"):
        open_dataset(str(root), cond=True)


def test_source_errors(tmp_path):
    with pytest.raises(DatasetError, match=r"^dataset not found: .*nowhere$"):
        open_dataset(str(tmp_path / "nowhere"))
    with pytest.raises(DatasetError, match="unknown built-in dataset builtin:mnist; valid ones: builtin:digits, "):
        open_dataset("builtin:mnist")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("hi")
    with pytest.raises(DatasetError, match="holds no images"):
        open_dataset(str(tmp_path / "empty"))
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "a.png").write_bytes(b"junk")
    with pytest.raises(DatasetError, match="has no readable images"):
        open_dataset(str(tmp_path / "junk"))
    (tmp_path / "fake.zip").write_bytes(b"not a zip")
    with pytest.raises(DatasetError, match="is not a readable zip file"):
        open_dataset(str(tmp_path / "fake.zip"))
    (tmp_path / "x.tar").write_bytes(b"tar")
    with pytest.raises(DatasetError, match=r"is not an image folder, a \.zip dataset or builtin:NAME"):
        open_dataset(str(tmp_path / "x.tar"))
    for bad in [0, -3, 2.5]:
        with pytest.raises(DatasetError, match="resolution must be a positive integer"):
            open_dataset("builtin:shapes", resolution=bad)
    with pytest.raises(DatasetError, match="max_images must be at least 1"):
        open_dataset("builtin:shapes", max_images=0)
    assert issubclass(DatasetError, PolyinrError)


def test_resolution_inference(tmp_path):
    Image.new("RGB", (6, 4)).save(tmp_path / "wide.png")
    with pytest.raises(DatasetError, match=r"a non-square size \(e.g. wide.png is 6x4\); give a resolution"):
        open_dataset(str(tmp_path))
    Image.new("RGB", (5, 5)).save(tmp_path / "sq.png")
    with pytest.raises(DatasetError, match=r"different sizes \(e.g. sq.png is 5x5, most are 6x4\)"):
        open_dataset(str(tmp_path))
    assert open_dataset(str(tmp_path), resolution=3).resolution == 3


# ---------------------------------------------------------------------------- zips


def test_stylegan_zip(write_stylegan_zip, random_rgb):
    rng = np.random.default_rng(2)
    images = [random_rgb(rng, 8) for _ in range(5)]
    path = write_stylegan_zip(images, [[f"00000/img{i:08d}.png", i % 3] for i in range(5)])
    ds = open_dataset(str(path), cond=True)
    assert (ds.name, ds.resolution, len(ds), ds.num_classes) == ("data", 8, 5, 3)
    pixels, labels = items(ds)
    assert np.array_equal(pixels, np.stack(images)) and labels == [0, 1, 2, 0, 1]
    nolabels = write_stylegan_zip(images, None, name="plain.zip")
    assert open_dataset(str(nolabels)).num_classes == 0
    with pytest.raises(DatasetError, match="has no labels"):
        open_dataset(str(nolabels), cond=True)


def test_zip_works_with_dataloader_workers(write_stylegan_zip, monkeypatch, random_rgb):
    monkeypatch.setattr(datasets_module, "CACHE_LIMIT_BYTES", 0)  # decode per item, in the workers
    rng = np.random.default_rng(3)
    images = [random_rgb(rng, 8) for _ in range(8)]
    ds = open_dataset(str(write_stylegan_zip(images, None)), mirror=True)
    ds[0]  # opens the zip in this process; the workers must open their own
    loader = torch.utils.data.DataLoader(ds, batch_size=4, num_workers=2, multiprocessing_context="fork")
    batches = [x for x, _ in loader]
    got = torch.cat(batches).permute(0, 2, 3, 1).numpy()
    assert np.array_equal(got[:8], np.stack(images))
    assert np.array_equal(got[8:], np.stack(images)[:, :, ::-1])
    clone = pickle.loads(pickle.dumps(ds))  # spawn-started workers receive a pickled dataset
    assert torch.equal(clone[3][0], ds[3][0])


# ---------------------------------------------------------------------------- views


def test_mirror_doubles_with_x_flips(class_folder):
    root, images, labels = class_folder
    ds = open_dataset(str(root), cond=True, mirror=True)
    assert len(ds) == 12
    pixels, got = items(ds)
    assert np.array_equal(pixels[6:], np.stack(images)[:, :, ::-1])
    assert got == labels + labels and ds.labels.tolist() == labels + labels
    assert np.array_equal(ds[-1][0], ds[11][0])
    with pytest.raises(IndexError):
        ds[12]


def test_small_datasets_are_cached_and_big_ones_read_per_item(class_folder, monkeypatch):
    root, images, _ = class_folder
    cached = open_dataset(str(root))
    monkeypatch.setattr(datasets_module, "CACHE_LIMIT_BYTES", 6 * 8 * 8 * 3 - 1)  # one byte too small
    lazy = open_dataset(str(root))
    assert np.array_equal(items(lazy)[0], items(cached)[0])
    assert cached.content_hash == lazy.content_hash
    shutil.rmtree(root)
    assert cached.content_hash == lazy.content_hash  # computed at open
    assert np.array_equal(items(cached)[0], np.stack(images))  # decoded once, at open
    with pytest.raises(DatasetError, match=r"cannot read image cat/0.png of .*pets"):
        lazy[0]
    first = cached[0][0]
    first.fill_(7)
    assert not torch.equal(cached[0][0], first)  # items are copies: the cache cannot be modified


def test_with_resolution_rereads_the_same_images(tmp_path, random_rgb):
    rng = np.random.default_rng(4)
    for k in range(3):
        Image.fromarray(random_rgb(rng, 32)).save(tmp_path / f"{k}.png")
    ds = open_dataset(str(tmp_path), mirror=True)
    small = ds.with_resolution(8)
    assert (small.resolution, len(small), small.name) == (8, 6, ds.name)
    for i in [0, 4]:
        expected = Image.fromarray(ds[i][0].permute(1, 2, 0).numpy()).resize((8, 8), Image.LANCZOS)
        assert np.array_equal(small[i][0].permute(1, 2, 0).numpy(), np.asarray(expected))
    assert ds.with_resolution(32) is ds
    with pytest.raises(DatasetError, match="resolution must be a positive integer"):
        ds.with_resolution(0)


def test_content_hash(class_folder):
    root = str(class_folder[0])
    base = open_dataset(root)
    assert len(base.content_hash) == 64 and int(base.content_hash, 16) >= 0
    assert open_dataset(root).content_hash == base.content_hash
    others = {
        open_dataset(root, mirror=True).content_hash,
        open_dataset(root, resolution=4).content_hash,
        open_dataset(root, max_images=3).content_hash,
        open_dataset(root, cond=True).content_hash,
        base.content_hash,
    }
    assert len(others) == 5
    Image.new("RGB", (9, 9)).save(class_folder[0] / "cat" / "0.png")  # edit one file
    assert open_dataset(root, resolution=8).content_hash != base.content_hash


def test_max_images_is_a_fixed_subset_keeping_classes(class_folder):
    root = class_folder[0]
    first = open_dataset(str(root), cond=True, max_images=4)
    again = open_dataset(str(root), cond=True, max_images=4)
    assert len(first) == 4 and first._keys == again._keys and first._keys == sorted(first._keys)
    assert first.num_classes == 2  # counted over the whole source
    assert len(open_dataset(str(root), max_images=100)) == 6
