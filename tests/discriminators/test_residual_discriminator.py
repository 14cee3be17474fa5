"""StyleGAN2's residual discriminator: shapes, options, minibatch stddev, conditioning, registry errors."""

from __future__ import annotations

import pytest
import torch

from polyinr.discriminators import DISCRIMINATORS, create_discriminator
from polyinr.discriminators.residual import minibatch_std
from polyinr.errors import PolyinrError


def residual(R: int = 16, num_classes: int = 0, seed: int = 0, **options):
    torch.manual_seed(seed)
    options = {"channel_base": 256, "channel_max": 32, "embed_dim": 8, **options}
    return create_discriminator("residual", R, num_classes, **options)


@pytest.mark.parametrize("R", [8, 16, 32])
@pytest.mark.parametrize("num_classes", [0, 3])
def test_logit_shapes(R, num_classes):
    D = residual(R, num_classes)
    assert D.img_resolution == R and D.num_classes == num_classes
    labels = torch.tensor([0, 2, 1, 0]) if num_classes else None
    logits = D(torch.randn(4, 3, R, R), labels)
    assert logits.shape == (4, 1) and torch.isfinite(logits).all()
    assert len(D.blocks) == R.bit_length() - 3  # one residual block per halving down to 4×4


def test_channel_options_set_the_widths():
    D = residual(32, channel_base=256, channel_max=16)
    assert D.from_rgb.weight.shape[0] == 256 // 32  # 8
    assert D.epilogue_conv.weight.shape[0] == 16  # min(256 // 4, 16)
    wide = residual(32, channel_base=1024, channel_max=64)
    assert wide.from_rgb.weight.shape[0] == 32 and wide.epilogue_conv.weight.shape[0] == 64


@pytest.mark.parametrize("R", [2, 4, 7])
def test_bad_resolution(R):
    with pytest.raises(PolyinrError, match="resolution ≥ 8"):
        residual(R)


def test_other_sizes_run_at_the_nearest_power_of_two():
    D = residual(37)  # InfinityGAN's cpu patch
    assert D.net_resolution == 32
    images = torch.randn(2, 3, 37, 37, requires_grad=True)
    D(images).sum().backward()
    assert images.grad is not None and torch.isfinite(images.grad).all()


def test_wrong_image_size_is_a_clear_error():
    D = residual(16)
    with pytest.raises(PolyinrError, match=r"takes images \[B, 3, 16, 16\], got \(2, 3, 32, 32\)"):
        D(torch.randn(2, 3, 32, 32))


def test_minibatch_std_channel():
    x = torch.randn(8, 5, 4, 4)
    y = minibatch_std(x, group_size=4)
    assert y.shape == (8, 6, 4, 4) and torch.equal(y[:, :5], x)
    # Groups of 4 with sample i in group i mod 2.
    for i in range(8):
        group = x[i % 2 :: 2]
        expected = group.std(dim=0, unbiased=False).mean()
        assert torch.allclose(y[i, 5], expected.expand(4, 4), atol=1e-5)
    # 6 samples: the group falls back to 3 (the largest divisor ≤ 4); 5 samples: groups of 1, stddev 0.
    z = minibatch_std(x[:6], group_size=4)
    assert torch.allclose(z[0, 5, 0, 0], x[0:6:2].std(dim=0, unbiased=False).mean(), atol=1e-5)
    assert torch.allclose(minibatch_std(x[:5], group_size=4)[:, 5], torch.full((5, 4, 4), 1e-4))


def test_mbstd_couples_the_samples_of_a_group():
    x = torch.randn(4, 3, 16, 16)
    x2 = x.clone()
    x2[3] = torch.randn(3, 16, 16)
    grouped = residual(16, mbstd_group=4)
    assert not torch.allclose(grouped(x)[0], grouped(x2)[0])  # sample 0 sees sample 3 through its group
    alone = residual(16, mbstd_group=1)
    assert torch.equal(alone(x)[0], alone(x2)[0])


def test_conditioning_and_class_table():
    D = residual(16, num_classes=3)
    x = torch.randn(1, 3, 16, 16).expand(3, -1, -1, -1)
    logits = D(x, torch.tensor([0, 1, 2]))
    assert len(set(logits.flatten().tolist())) == 3  # same image, three classes, three logits
    one_hot = torch.eye(3)
    assert torch.allclose(D(x, one_hot), logits)
    with pytest.raises(PolyinrError, match="class-conditional"):
        D(x)
    table = torch.randn(3, 8)
    D.set_class_embeddings(table)
    assert torch.equal(D.embed.weight, table)
    assert D.embed.weight.requires_grad  # fine-tuned afterwards
    with pytest.raises(PolyinrError, match=r"class embedding table \(3, 320\) does not fit .*embed_dim"):
        D.set_class_embeddings(torch.randn(3, 320))
    with pytest.raises(PolyinrError, match="unconditional: it has no class table"):
        residual(16).set_class_embeddings(table)


def test_supports_r1_double_backward():
    D = residual(16)
    real = torch.randn(4, 3, 16, 16, requires_grad=True)
    (grad,) = torch.autograd.grad(D(real).sum(), real, create_graph=True)
    penalty = grad.square().sum()
    penalty.backward()
    for layer in (D.from_rgb, D.blocks["b16"].conv0, D.epilogue_fc, D.out):
        assert layer.weight.grad is not None and layer.weight.grad.abs().sum() > 0


def test_registry_errors_are_one_line():
    assert set(DISCRIMINATORS) == {"residual", "projected"}
    with pytest.raises(PolyinrError) as e:
        create_discriminator("stylegan9", 16, 0)
    assert str(e.value) == "unknown discriminator 'stylegan9'; discriminators: projected, residual"
    with pytest.raises(PolyinrError, match="does not use 'channels'; its settings: channel_base, channel_max"):
        create_discriminator("residual", 16, 0, channels=3)


def test_diffaug_augments_every_input_differentiably():
    torch.manual_seed(0)
    plain = create_discriminator("residual", 16, 0, channel_base=256, channel_max=16)
    augmented = create_discriminator("residual", 16, 0, channel_base=256, channel_max=16, diffaug="translation,cutout")
    augmented.load_state_dict(plain.state_dict())
    x = torch.rand(4, 3, 16, 16, requires_grad=True) * 2 - 1
    torch.manual_seed(1)
    out = augmented(x)
    assert not torch.allclose(out, plain(x))  # the same weights see shifted, cut-out images
    torch.manual_seed(1)
    assert torch.equal(out, augmented(x))  # the draws follow the global RNG
    (grad,) = torch.autograd.grad(out.sum(), x)
    assert grad.abs().sum() > 0
    with pytest.raises(PolyinrError, match="unknown DiffAugment policy 'flip'"):
        create_discriminator("residual", 16, 0, diffaug="flip")


def test_class_minibatch_std_sees_the_spread_within_each_class():
    from polyinr.discriminators.residual import class_minibatch_std

    labels = torch.tensor([0, 1, 0, 1, 2])
    prototypes = torch.randn(3, 2, 4, 4)[labels]  # one image per class: no spread within a class
    assert torch.allclose(class_minibatch_std(prototypes, labels, 3)[:, -1], torch.full((5, 4, 4), 1e-4))
    varied = prototypes + torch.randn(5, 2, 4, 4)
    out = class_minibatch_std(varied, labels, 3)[:, -1, 0, 0]  # [B]
    expected = (varied[[0, 2]].std(dim=0, unbiased=False).square() + 1e-8).sqrt().mean()
    assert torch.allclose(out[[0, 2]], expected.expand(2)) and out[4] == pytest.approx(1e-4)
    D = create_discriminator("residual", 8, 3, channel_base=64, channel_max=8, mbstd_by_class=True)
    assert D(torch.randn(5, 3, 8, 8), labels).shape == (5, 1)
    torch.manual_seed(0)
    plain = create_discriminator("residual", 8, 0, channel_base=64, channel_max=8)
    torch.manual_seed(0)
    by_class = create_discriminator("residual", 8, 0, channel_base=64, channel_max=8, mbstd_by_class=True)
    x = torch.randn(4, 3, 8, 8)
    assert torch.equal(plain(x), by_class(x))  # unconditional: the usual groups
