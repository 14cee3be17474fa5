"""The model registry: names, presets, overrides and the paper's sizes."""

from __future__ import annotations

import pytest

from polyinr.errors import PolyinrError
from polyinr.models.poly_inr import PolyINRConfig, PolyINRGenerator
from polyinr.models.registry import create, get_entry, list_models, resolve_config


def test_poly_inr_is_registered_with_its_presets():
    assert "poly-inr" in list_models()
    assert list_models("poly-*") == ["poly-inr"]
    assert list_models("nothing-*") == []
    entry = get_entry("poly-inr")
    assert entry.generator_cls is PolyINRGenerator and entry.config_cls is PolyINRConfig
    assert {"imagenet", "ffhq", "cpu"} <= set(entry.presets)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: create("no-such-model"), "unknown model 'no-such-model'"),
        (lambda: create("poly-inr", "no-such-preset"), "unknown preset 'no-such-preset'"),
        (lambda: create("poly-inr", "cpu", width=3), "no setting 'width'"),
    ],
)
def test_registry_errors(call, message):
    with pytest.raises(PolyinrError, match=message) as err:
        call()
    assert "\n" not in str(err.value)


def test_overrides_apply_after_the_preset_and_none_is_ignored():
    cfg = resolve_config("poly-inr", "cpu", num_classes=7, img_resolution=None)
    assert cfg.mapping.num_classes == 7 and cfg.img_resolution == 16 and cfg.channels == 64
    assert resolve_config("poly-inr") == PolyINRConfig()


def test_preset_sizes():
    ffhq = resolve_config("poly-inr", "ffhq")
    assert (ffhq.channels, ffhq.num_levels, ffhq.mapping.num_classes) == (512, 10, 0)
    cpu = create("poly-inr", "cpu")
    assert cpu.parameter_count() < 500_000 and cpu.model_name == "poly-inr"


def test_imagenet_preset_is_the_authors_network():
    G = create("poly-inr", "imagenet")  # the one full-size instantiation of the suite (~0.5 s)
    cfg = G.cfg
    mapping = cfg.mapping
    assert (cfg.channels, cfg.num_levels, mapping.z_dim, mapping.w_dim, mapping.num_classes, mapping.embed_dim) == (
        1024,
        10,
        64,
        512,
        1000,
        320,
    )
    assert G.num_ws == 10 and G.img_resolution == 32
    assert 45e6 <= G.parameter_count() <= 46e6  # spec: about 45.8 M, mapping included
    assert G.mapping.embed.weight.shape == (1000, 320)
    assert 10 * 1024**2 < G.macs_per_pixel() < 1.01 * 10 * 1024**2  # spec: ~10·n² (10.5 M at n = 1024)
