"""Seeds → latents (NVIDIA's convention) and range lists."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from polyinr.errors import PolyinrError
from polyinr.seeds import latents_from_seeds, parse_range_list


@pytest.mark.parametrize("seed", [0, 1, 85, 2**31])
def test_seed_gives_the_stylegan_latent(seed):
    z = latents_from_seeds([seed], 64)
    assert z.shape == (1, 64) and z.dtype == torch.float32
    assert torch.equal(z, torch.from_numpy(np.random.RandomState(seed).randn(1, 64)).float())


def test_several_seeds_stack_independently():
    z = latents_from_seeds([5, 3, 5], 16)
    assert torch.equal(z[0], z[2]) and torch.equal(z[1:2], latents_from_seeds([3], 16))
    assert latents_from_seeds([], 16).shape == (0, 16)


@pytest.mark.parametrize(
    "text, values",
    [("0", [0]), ("0,3-7", [0, 3, 4, 5, 6, 7]), (" 2 , 4-4 ", [2, 4]), ("5-6,1", [5, 6, 1]), (7, [7])],
)
def test_parse_range_list(text, values):
    assert parse_range_list(text) == values


@pytest.mark.parametrize(
    "text, message",
    [("7-3", "empty"), ("-1", "must not be negative"), ("a", "look like"), ("1,,2", "empty item"), ("", "empty item"),
     ("1-2-3", "look like"), ("1.5", "look like")],
)  # fmt: skip
def test_parse_range_list_errors(text, message):
    with pytest.raises(PolyinrError, match=message) as err:
        parse_range_list(text, what="seeds")
    assert "\n" not in str(err.value) and "seeds" in str(err.value)
