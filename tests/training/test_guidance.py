"""Classifier guidance: built only when used, applied only in super-resolution stages with StyleGAN-XL's
strength, gradients reach G."""

from __future__ import annotations

import torch
from torch import nn

import polyinr
from polyinr.training import setup
from polyinr.training.guidance import build_guidance_classifier
from polyinr.training.losses import HingeConfig, ProjectedHingeLoss
from polyinr.training.options import resolve_options


class _ConstD(nn.Module):
    def forward(self, x, c):
        return x.mean(dim=(1, 2, 3))[:, None]


def _generator(resolution):
    torch.manual_seed(0)
    return polyinr.create("poly-inr", preset="cpu", channels=16, num_levels=2, num_classes=5, img_resolution=resolution)


def test_no_classifier_is_built_when_the_weight_is_zero(monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("the guidance classifier must not be built when cls_weight is 0")

    monkeypatch.setattr("polyinr.training.guidance.build_guidance_classifier", forbidden)
    options = resolve_options("cpu", disc="projected", loss="hinge", cond=True)
    settings = options.split()
    loss = setup.build_loss(settings.loss, settings.augment, _generator(8), _ConstD(), torch.device("cpu"))
    assert loss.classifier is None


def _guided_grads(stage, classifier, cls_weight=1.0, batch=4):
    G = _generator(16)
    loss = ProjectedHingeLoss(G, _ConstD(), HingeConfig(blur_sigma=0, cls_weight=cls_weight), classifier=classifier)
    loss.begin_stage(stage, 0)
    g = torch.Generator().manual_seed(3)
    real, z, c = torch.zeros(batch, 3, 16, 16), torch.randn(batch, G.z_dim, generator=g), torch.arange(batch) % 5
    loss.accumulate_gradients("Gboth", real, c, z, c, gain=1.0, cur_nimg=0)
    plain = torch.cat([p.grad.flatten() for p in G.parameters() if p.grad is not None])
    G.zero_grad(set_to_none=True)
    if classifier is not None:  # the cross-entropy's own gradient, for the weight it enters with
        torch.nn.functional.cross_entropy(classifier(loss.run_G(z, c, 16)), c).backward()
    ce = torch.cat([p.grad.flatten() for p in G.parameters() if p.grad is not None]) if classifier else None
    return plain, ce


def test_guidance_applies_only_in_super_resolution_stages_as_strong_as_in_stylegan_xl():
    torch.manual_seed(1)
    classifier = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 5)).requires_grad_(False)
    assert torch.equal(_guided_grads(0, None)[0], _guided_grads(0, classifier)[0])  # the stem: ignored
    unguided, _ = _guided_grads(1, None)
    guided, ce = _guided_grads(1, classifier, cls_weight=2.0, batch=4)
    # StyleGAN-XL sums its adversarial term over the micro-batch's samples and averages the guidance term:
    # relative to a per-sample mean, cls_weight 2 with 4 samples is a weight of 2/4 on the cross-entropy.
    torch.testing.assert_close(guided - unguided, ce * (2.0 / 4), rtol=1e-4, atol=1e-7)
    assert ce.abs().max() > 0


def test_guidance_classifier_is_frozen_and_sees_224_inputs():
    classifier = build_guidance_classifier(torch.device("cpu"), pretrained=False)
    assert not any(p.requires_grad for p in classifier.parameters())
    classifier.train()
    assert not classifier.training
    logits = classifier(torch.zeros(1, 3, 32, 32))
    assert logits.shape == (1, 1000)
