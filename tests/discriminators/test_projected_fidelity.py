"""The projected discriminator as the authors' pg_modules build it: head depth from a nominal 256² input,
align_corners=True cross-scale mixing, and one logit group per feature network for the losses."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from polyinr.discriminators import create_discriminator
from polyinr.discriminators.projected import RandomProjection
from polyinr.training.losses import group_mean


@pytest.mark.slow
def test_heads_at_512_keep_the_authors_depth_and_give_13x13_logit_maps():
    torch.manual_seed(0)
    D = create_discriminator("projected", 512, 0, backbones=["tf_efficientnet_lite0"], pretrained=False, diffaug=None)
    branch = D.branches[0]
    downs = [sum(isinstance(m, torch.nn.BatchNorm2d) for m in head.modules()) for head in branch.heads]
    assert downs == [4, 3, 2, 1]  # sized from the 128, 64, 32, 16 maps of a 256² input
    with torch.no_grad():
        maps = branch.head_maps(torch.zeros(1, 3, 512, 512), None)
    assert [tuple(m.shape[-2:]) for m in maps] == [(13, 13)] * 4


def test_cross_scale_mixing_upsamples_with_aligned_corners():
    torch.manual_seed(0)
    proj = RandomProjection((4, 4, 4, 4), vit=False)
    feats = [torch.randn(1, 4, s, s) for s in (8, 4, 2, 1)]
    mixed = [conv(f) for conv, f in zip(proj.channel_mixing, feats)]
    expected, fused = [], None
    for x, conv in zip(reversed(mixed), reversed(proj.scale_mixing)):
        x = x if fused is None else x + fused
        fused = conv(F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True))
        expected.append(fused)
    with torch.no_grad():
        for got, want in zip(proj(feats), expected[::-1]):
            torch.testing.assert_close(got, want)


def test_every_feature_network_weighs_the_same_in_the_loss():
    torch.manual_seed(0)
    D = create_discriminator(
        "projected",
        32,
        0,
        backbones=["tf_efficientnet_lite0", "vit_tiny_patch16_224"],
        pretrained=False,
        diffaug=None,
        interp224=False,
    )
    with torch.no_grad():
        logits = D(torch.rand(2, 3, 32, 32) * 2 - 1)
    groups = D.split_logits(logits)
    widths = [g.shape[1] for g in groups]
    assert len(groups) == 2 and sum(widths) == logits.shape[1] and widths[0] != widths[1]
    got = group_mean(logits, D, torch.relu)
    torch.testing.assert_close(got, torch.relu(groups[0]).mean() + torch.relu(groups[1]).mean())
    assert not torch.allclose(got, 2 * torch.relu(logits).mean())  # not one mean over all logits
