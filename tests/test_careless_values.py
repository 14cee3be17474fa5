"""Values a careless user types: seeds beyond numpy's range, huge seed ranges, unknown image formats, NaN."""

from __future__ import annotations

import pytest
import torch

from polyinr.errors import PolyinrError
from polyinr.image_io import NonFinitePixels, prepare_image_output, to_uint8
from polyinr.sampling import MAX_SEED, parse_range_list


def test_seeds_stay_in_numpys_range():
    assert list(parse_range_list(f"{MAX_SEED}")) == [MAX_SEED]
    with pytest.raises(PolyinrError, match="at most 4,294,967,295, got 4,294,967,296"):
        parse_range_list("4294967296")


def test_a_huge_seed_range_costs_no_memory_until_used():
    seeds = parse_range_list("0-10000000,20-22")
    assert len(seeds) == 10_000_004
    assert seeds[0] == 0 and seeds[10_000_000] == 10_000_000 and seeds[10_000_001] == 20 and seeds[-1] == 22
    assert seeds[9_999_999:10_000_003] == [9_999_999, 10_000_000, 20, 21]


@pytest.mark.parametrize("name", ["a.xyz", "noextension", "b.pkl"])
def test_unknown_image_formats_are_refused_before_any_work(tmp_path, name):
    with pytest.raises(PolyinrError, match="cannot write") as e:
        prepare_image_output(tmp_path / name)
    assert "\n" not in str(e.value) and not (tmp_path / name).exists()
    for ok in ("a.png", "b.JPG", "c.webp", "d.tif", "e.bmp"):
        prepare_image_output(tmp_path / ok)


def test_non_finite_pixels_are_never_written_as_black():
    images = torch.zeros(1, 3, 4, 4)
    images[0, 1, 2, 2] = float("nan")
    with pytest.raises(NonFinitePixels, match="1 non-finite"):
        to_uint8(images)
    images[0, 1, 2, 2] = float("inf")
    with pytest.raises(NonFinitePixels):
        to_uint8(images)


def test_a_full_disk_while_saving_an_image_leaves_no_file(tmp_path, monkeypatch):
    import numpy as np
    from PIL import Image

    from polyinr.image_io import save_image

    def full(self, fp, *args, **kwargs):
        with open(fp, "wb") as f:
            f.write(b"\x89PNG partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", full)
    with pytest.raises(OSError, match="No space"):
        save_image(np.zeros((4, 4, 3), np.uint8), tmp_path / "x.png")
    assert list(tmp_path.iterdir()) == []
