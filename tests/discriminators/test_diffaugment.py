"""DiffAugment: policies, reproducible draws, exact translation / cutout semantics, gradients."""

from __future__ import annotations

import pytest
import torch

from polyinr.discriminators.augment import diff_augment, parse_policy
from polyinr.errors import PolyinrError


def images(B: int = 4, R: int = 16, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(B, 3, R, R, generator=g) * 1.6 - 0.8  # away from 0, so zeroed pixels are recognisable


def test_policy_parsing_and_unknown_name():
    assert parse_policy("color, translation,cutout") == ("color", "translation", "cutout")
    assert parse_policy(None) == () and parse_policy("") == ()
    with pytest.raises(PolyinrError, match="unknown DiffAugment policy 'flip'; policies: color, translation, cutout"):
        diff_augment(images(), "color,flip")
    x = images()
    assert torch.equal(diff_augment(x, None), x)


@pytest.mark.parametrize("policy", ["color", "translation", "cutout", "color,translation,cutout"])
def test_reproducible_with_a_generator_and_shape_kept(policy):
    x = images()
    a = diff_augment(x, policy, generator=torch.Generator().manual_seed(1))
    b = diff_augment(x, policy, generator=torch.Generator().manual_seed(1))
    c = diff_augment(x, policy, generator=torch.Generator().manual_seed(2))
    assert a.shape == x.shape and a.dtype == x.dtype
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    torch.manual_seed(5)
    d = diff_augment(x, policy)
    torch.manual_seed(5)
    assert torch.equal(d, diff_augment(x, policy))  # the global RNG when no generator is given


def test_translation_is_an_integer_shift_with_zero_fill():
    x = images(B=8, R=16)
    out = diff_augment(x, "translation", translation_ratio=0.125, generator=torch.Generator().manual_seed(3))
    shifts = []
    for i in range(len(x)):
        found = None
        for dy in range(-2, 3):  # 0.125 · 16 = 2 pixels at most
            for dx in range(-2, 3):
                expected = torch.zeros_like(x[i])
                src = x[i][:, max(dy, 0) : 16 + min(dy, 0), max(dx, 0) : 16 + min(dx, 0)]
                expected[:, max(-dy, 0) : 16 + min(-dy, 0), max(-dx, 0) : 16 + min(-dx, 0)] = src
                if torch.equal(out[i], expected):
                    found = (dy, dx)
        assert found is not None, f"sample {i} is not a shifted copy"
        shifts.append(found)
    assert len(set(shifts)) > 1  # samples get their own shifts


def test_cutout_zeroes_one_rectangle_and_keeps_the_rest():
    x = images(B=8, R=20)
    out = diff_augment(x, "cutout", cutout_ratio=0.2, generator=torch.Generator().manual_seed(4))
    for i in range(len(x)):
        zero = (out[i] == 0).all(dim=0)  # [H, W]
        assert 0 < int(zero.sum()) <= 4 * 4  # 0.2 · 20 = 4: a 4×4 box, clipped at the border
        rows, cols = zero.nonzero(as_tuple=True)
        box = zero[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
        assert box.all()  # one filled rectangle
        assert torch.equal(out[i][:, ~zero], x[i][:, ~zero])


def test_color_is_a_per_sample_affine_change():
    x = images(B=6)
    out = diff_augment(x, "color", generator=torch.Generator().manual_seed(6))
    assert not torch.allclose(out, x)
    means = out.mean(dim=(1, 2, 3)) - x.mean(dim=(1, 2, 3))
    assert means.std() > 0.01  # brightness differs between samples


@pytest.mark.parametrize("policy", ["color", "translation", "cutout", "color,translation,cutout"])
def test_gradients_flow_to_the_images(policy):
    x = images().requires_grad_(True)
    weights = torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    (diff_augment(x, policy, generator=torch.Generator().manual_seed(7)) * weights).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert x.grad.abs().sum() > 0
