"""The dataset tool: StyleGAN-format zips, round trips through open_dataset, errors, and the CLI command."""

from __future__ import annotations

import io
import json
import logging
import zipfile

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from polyinr.cli import main
from polyinr.data.datasets import DatasetError, open_dataset
from polyinr.data.prepare import archive_name, prepare_dataset


def test_archive_names_follow_nvidia_layout():
    assert archive_name(0) == "00000/img00000000.png"
    assert archive_name(999) == "00000/img00000999.png"
    assert archive_name(1000) == "00001/img00001000.png"


def test_round_trip_folder_to_zip(class_folder, tmp_path):
    root, images, labels = class_folder
    dest = tmp_path / "out" / "pets.zip"
    progress = []
    count = prepare_dataset(str(root), dest, 8, on_progress=lambda done, total: progress.append((done, total)))
    assert count == 6 and progress[-1] == (6, 6) and len(progress) == 6
    with zipfile.ZipFile(dest) as zf:
        infos = zf.infolist()
        assert all(i.compress_type == zipfile.ZIP_STORED for i in infos)
        names = [i.filename for i in infos]
        assert names == [archive_name(i) for i in range(6)] + ["dataset.json"]
        meta = json.loads(zf.read("dataset.json"))
        assert meta == {"labels": [[archive_name(i), labels[i]] for i in range(6)]}
        first = Image.open(io.BytesIO(zf.read(names[0])))
        assert (first.format, first.mode, first.size) == ("PNG", "RGB", (8, 8))
    from_zip = open_dataset(str(dest), cond=True)
    from_folder = open_dataset(str(root), cond=True)
    assert from_zip.labels.tolist() == from_folder.labels.tolist() == labels
    for i in range(6):
        assert np.array_equal(from_zip[i][0], from_folder[i][0])
        assert np.array_equal(from_zip[i][0].permute(1, 2, 0).numpy(), images[i])
    assert not list(dest.parent.glob(".*tmp"))  # no temporary file left behind


def test_zip_to_zip_resized_and_reproducible(write_stylegan_zip, random_rgb, tmp_path):
    rng = np.random.default_rng(5)
    images = [random_rgb(rng, 16) for _ in range(3)]
    source = write_stylegan_zip(images, None)
    a, b = tmp_path / "a.zip", tmp_path / "b.zip"
    prepare_dataset(str(source), a, 8)
    prepare_dataset(str(source), b, 8)
    assert a.read_bytes() == b.read_bytes()  # same input, same bytes
    ds = open_dataset(str(a))
    assert ds.resolution == 8 and ds.num_classes == 0
    with zipfile.ZipFile(a) as zf:
        assert json.loads(zf.read("dataset.json")) == {"labels": None}
    expected = open_dataset(str(source)).with_resolution(8)
    assert all(np.array_equal(ds[i][0], expected[i][0]) for i in range(3))


def test_builtin_transforms_and_max_images(tmp_path):
    dest = tmp_path / "shapes.zip"
    assert prepare_dataset("builtin:shapes", dest, 16, transform="center-crop-wide", max_images=10) == 10
    ds = open_dataset(str(dest), cond=True)
    assert len(ds) == 10 and ds.num_classes <= 5
    image = ds[0][0]
    assert image[:, :4].max() == 0 and image[:, 12:].max() == 0 and image[:, 4:12].max() > 0  # 2:1 band
    reference = open_dataset("builtin:shapes", resolution=16, cond=True, max_images=10)
    assert ds.labels.tolist() == reference.labels.tolist()


def test_resize_transform_keeps_the_whole_image(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    image = np.zeros((10, 20, 3), np.uint8)
    image[:, :5] = 255  # a white left quarter, lost by a centre crop
    Image.fromarray(image).save(src / "wide.png")
    prepare_dataset(str(src), tmp_path / "r.zip", 4, transform="resize")
    prepare_dataset(str(src), tmp_path / "c.zip", 4)
    assert open_dataset(str(tmp_path / "r.zip"))[0][0][:, :, 0].min() > 200
    assert open_dataset(str(tmp_path / "c.zip"))[0][0].max() < 60


def test_unreadable_files_are_skipped_with_one_warning(class_folder, tmp_path, caplog):
    root = class_folder[0]
    (root / "cat" / "broken.png").write_bytes(b"broken")
    with caplog.at_level(logging.WARNING, logger="polyinr"):
        assert prepare_dataset(str(root), tmp_path / "x.zip", 8) == 6
    messages = [r.getMessage() for r in caplog.records if r.name == "polyinr"]
    assert len(messages) == 1 and "skipped 1 unreadable" in messages[0] and "cat/broken.png" in messages[0]


def test_errors_leave_nothing_behind(class_folder, tmp_path):
    root = class_folder[0]
    with pytest.raises(DatasetError, match=r"must be a \.zip file"):
        prepare_dataset(str(root), tmp_path / "out.tar", 8)
    with pytest.raises(DatasetError, match="unknown transform 'stretch'"):
        prepare_dataset(str(root), tmp_path / "out.zip", 8, transform="stretch")
    with pytest.raises(DatasetError, match="resolution must be a positive integer"):
        prepare_dataset(str(root), tmp_path / "out.zip", 0)
    zipped = tmp_path / "pets.zip"
    prepare_dataset(str(root), zipped, 8)
    before = zipped.read_bytes()
    with pytest.raises(DatasetError, match="refusing to overwrite the source"):
        prepare_dataset(str(zipped), zipped, 4)
    assert zipped.read_bytes() == before
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "a.png").write_bytes(b"junk")
    with pytest.raises(DatasetError, match="has no readable images"):
        prepare_dataset(str(junk), tmp_path / "junk.zip", 8)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["junk", "pets", "pets.zip"]


def test_cli_dataset_end_to_end(class_folder, tmp_path):
    root = class_folder[0]
    dest = tmp_path / "cli.zip"
    runner = CliRunner()
    result = runner.invoke(
        main, ["dataset", "--source", str(root), "--dest", str(dest), "--resolution", "4x4", "--max-images", "5"]
    )
    assert result.exit_code == 0, result.output
    assert f"wrote 5 images (4x4) to {dest}" in result.output
    ds = open_dataset(str(dest), cond=True)
    assert (len(ds), ds.resolution, ds.num_classes) == (5, 4, 2)

    result = runner.invoke(
        main, ["dataset", "--source", str(tmp_path / "nope"), "--dest", "x.zip", "--resolution", "8"]
    )
    assert result.exit_code == 1
    assert result.output.strip().splitlines()[-1] == f"Error: dataset not found: {tmp_path / 'nope'}"
    assert "Traceback" not in result.output

    result = runner.invoke(main, ["dataset", "--source", "builtin:digits", "--dest", str(dest), "--resolution", "8x16"])
    assert result.exit_code == 2 and "only square resolutions are supported" in result.output

    result = runner.invoke(main, ["dataset", "--source", "builtin:nope", "--dest", str(dest), "--resolution", "8"])
    assert result.exit_code == 1 and "valid ones: builtin:digits, builtin:shapes" in result.output
