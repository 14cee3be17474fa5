"""Classifier guidance: built only when used, applied only at resolutions ≥ 32, gradients reach G."""

from __future__ import annotations

import torch
from torch import nn

import polyinr
from polyinr.training import setup
from polyinr.training.guidance import GuidanceClassifier, build_guidance_classifier
from polyinr.training.losses import ProjectedHingeLoss
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
    loss = setup.build_loss(options, _generator(8), _ConstD(), torch.device("cpu"))
    assert loss.classifier is None


def _guided_grads(resolution, classifier):
    G = _generator(resolution)
    loss = ProjectedHingeLoss(G, _ConstD(), blur_init_sigma=0, classifier=classifier, cls_weight=1.0)
    real = torch.zeros(2, 3, resolution, resolution)
    z, c = torch.randn(2, G.z_dim), torch.tensor([1, 3])
    loss.accumulate_gradients("Gboth", real, c, z, c, gain=1.0, cur_nimg=0)
    return torch.cat([p.grad.flatten() for p in G.parameters() if p.grad is not None])


def test_guidance_applies_only_from_32_pixels():
    torch.manual_seed(1)
    classifier = GuidanceClassifier(build_guidance_classifier(torch.device("cpu"), pretrained=False).model)
    at16 = _guided_grads(16, None), _guided_grads(16, classifier)
    assert torch.equal(at16[0], at16[1])  # below 32²: the classifier is ignored
    at32 = _guided_grads(32, None), _guided_grads(32, classifier)
    assert not torch.allclose(at32[0], at32[1])  # from 32²: its cross-entropy reaches G


def test_guidance_classifier_is_frozen_and_sees_224_inputs():
    classifier = build_guidance_classifier(torch.device("cpu"), pretrained=False)
    assert not any(p.requires_grad for p in classifier.parameters())
    classifier.train()
    assert not classifier.training
    logits = classifier(torch.zeros(1, 3, 32, 32))
    assert logits.shape == (1, 1000)
