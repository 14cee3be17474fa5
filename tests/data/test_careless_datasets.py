"""Careless and hostile datasets: each gives one clear line (or is skipped and listed), never a traceback."""

from __future__ import annotations

import json
import logging
import os

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from polyinr.cli import main
from polyinr.data.datasets import DatasetError, open_dataset


def write_images(root, count=4, size=12, prefix="img"):
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(root / f"{prefix}{i}.png")
    return root


def one_line(error) -> str:
    text = str(error.value)
    assert "\n" not in text
    return text


@pytest.mark.parametrize("label", [2**63, 10**9, 100_000])
def test_absurd_class_ids_are_refused(tmp_path, label):
    root = write_images(tmp_path / "data")
    labels = [[f"img{i}.png", 0] for i in range(4)]
    labels[2][1] = label
    (root / "dataset.json").write_text(json.dumps({"labels": labels}))
    with pytest.raises(DatasetError) as e:
        open_dataset(root, cond=True)
    text = one_line(e)
    assert "img2.png" in text and "below 100,000" in text


def test_sparse_class_ids_beyond_the_image_count_are_refused(tmp_path):
    root = write_images(tmp_path / "data")
    labels = [[f"img{i}.png", i * 5000] for i in range(4)]
    (root / "dataset.json").write_text(json.dumps({"labels": labels}))
    with pytest.raises(DatasetError, match="densely"):
        open_dataset(root, cond=True)


def test_pathologically_nested_label_file(tmp_path):
    root = write_images(tmp_path / "data")
    (root / "dataset.json").write_text('{"labels": ' + "[" * 200_000 + "]" * 200_000 + "}")
    with pytest.raises(DatasetError) as e:
        open_dataset(root, cond=True)
    assert "nested too deeply" in one_line(e)


def test_file_names_that_are_not_utf8(tmp_path):
    root = write_images(tmp_path / "data", count=2)
    odd = os.path.join(os.fsencode(root), b"caf\xe9.png")  # Latin-1 bytes: not valid UTF-8
    Image.new("RGB", (12, 12), (200, 10, 10)).save(odd.decode("utf-8", "surrogateescape"))
    ds = open_dataset(root)
    assert len(ds) == 3 and len(ds.content_hash) == 64


def test_gifs_are_read_and_animated_ones_are_listed_as_skipped(tmp_path, caplog):
    root = write_images(tmp_path / "data", count=2)
    Image.new("RGB", (12, 12), (0, 200, 0)).save(root / "still.gif")
    frames = [Image.new("RGB", (12, 12), (i * 60, 0, 0)) for i in range(3)]
    frames[0].save(root / "moving.gif", save_all=True, append_images=frames[1:])
    with caplog.at_level(logging.WARNING, logger="polyinr"):
        ds = open_dataset(root)
    assert len(ds) == 3  # the two PNGs and the still GIF
    assert "moving.gif" in caplog.text and "animated" in caplog.text


def test_an_odd_sized_image_is_named(tmp_path):
    root = write_images(tmp_path / "data")
    Image.new("RGB", (1, 1)).save(root / "speck.png")
    with pytest.raises(DatasetError) as e:
        open_dataset(root)
    assert "speck.png is 1x1" in one_line(e) and "most are 12x12" in one_line(e)


def test_dataset_command_reports_the_size_as_given(tmp_path):
    root = write_images(tmp_path / "data")
    result = CliRunner().invoke(
        main, ["dataset", "--source", str(root), "--dest", str(tmp_path / "d.zip"), "--resolution", "16x8"]
    )
    assert result.exit_code != 0 and "got 16x8" in result.output
