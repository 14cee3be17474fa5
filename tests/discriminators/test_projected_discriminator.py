"""Projected discriminator: stages, shapes, frozen parts, gradients, conditioning, weights and offline errors.

Backbones are randomly initialised (``pretrained=False``) and small: EfficientNet-lite0 on 32² or 64² images
without the resize to 224, and DeiT-tiny (always resized to 224) for the ViT path.
"""

from __future__ import annotations

import pytest
import timm
import torch
from safetensors.torch import save_file

from polyinr.discriminators import create_discriminator
from polyinr.discriminators.feature_networks import create_feature_network
from polyinr.errors import PolyinrError

EFFNET = "tf_efficientnet_lite0"
DEIT = "deit_tiny_distilled_patch16_224"


def projected(R: int = 32, num_classes: int = 0, seed: int = 0, **options):
    torch.manual_seed(seed)
    options = {"backbones": [EFFNET], "pretrained": False, "interp224": False, "embed_dim": 16, **options}
    return create_discriminator("projected", R, num_classes, **options)


def frozen_state(D) -> dict[str, torch.Tensor]:
    """Every tensor of the feature networks and random projections (parameters and buffers)."""
    return {k: v.clone() for k, v in D.state_dict().items() if ".heads." not in k}


def test_feature_network_stages():
    cnn = create_feature_network(EFFNET, pretrained=False)
    assert cnn.channels == (24, 40, 112, 320)  # the authors' blocks 0:2 | 2:3 | 3:5 | 5:9
    maps = cnn(cnn.prepare(torch.rand(1, 3, 224, 224), resize=True))
    assert [tuple(m.shape[1:]) for m in maps] == [(24, 56, 56), (40, 28, 28), (112, 14, 14), (320, 7, 7)]
    assert torch.allclose(cnn.mean, torch.full((1, 3, 1, 1), 0.5))  # EfficientNet-lite's own normalisation
    vit = create_feature_network(DEIT, pretrained=False)
    assert vit.is_vit and vit.indices == [2, 5, 8, 11]
    assert torch.allclose(vit.mean.flatten(), torch.tensor([0.485, 0.456, 0.406]))  # ImageNet's
    assert vit.prepare(torch.rand(1, 3, 32, 32), resize=False).shape[-1] == 224  # ViTs are always resized
    assert not any(p.requires_grad for p in cnn.parameters())
    assert isinstance(cnn.model.classifier, torch.nn.Identity)  # unused layers are removed


@pytest.mark.parametrize("R, K, num_classes", [(32, 52, 0), (32, 52, 4), (64, 76, 4), (40, 18, 0)])
def test_logit_shapes_cnn(R, K, num_classes):
    D = projected(R, num_classes)
    labels = torch.tensor([0, 3]) if num_classes else None
    logits = D(torch.rand(2, 3, R, R) * 2 - 1, labels)
    # 32²: maps 16, 8, 4, 2 → patch logits 5×5 + 5×5 + 1×1 + 1×1; 64²: 32, 16, 8, 4 → 3 × 5×5 + 1×1;
    # 40² (odd stage sizes 5 and 3): maps 20, 10, 6, 4 → 2×2 + 2×2 + 3×3 + 1×1.
    assert logits.shape == (2, K) and torch.isfinite(logits).all()
    assert D.img_resolution == R and D.num_classes == num_classes
    heads = D.branches[0].heads
    assert [h.main[0].in_channels for h in heads] == [64, 64, 128, 256]  # the mixed maps' channels


def test_interp224_resizes_cnn_inputs():
    D = projected(32, interp224=None)  # None = resize below 224
    assert D.branches[0].resize
    # At 224: mixed maps at 112, 56, 28, 14, each head down to 7×7 → 4×4 patch logits.
    assert D(torch.zeros(1, 3, 32, 32)).shape == (1, 64)


def test_only_heads_and_class_tables_train():
    D = projected(32, num_classes=4)
    trainable = {n for n, p in D.named_parameters() if p.requires_grad}
    assert trainable and all(".heads." in n for n in trainable)
    assert trainable == {n for n, _ in D.named_parameters() if ".heads." in n}
    assert any(n.endswith("projection.embed.weight") for n in trainable)
    assert any(n.endswith("projection.proj.weight") for n in trainable)


def test_adam_step_leaves_frozen_parts_identical_and_in_eval_mode():
    D = projected(32, num_classes=4, diffaug="color,translation,cutout")
    before = frozen_state(D)
    heads_before = {n: p.clone() for n, p in D.named_parameters() if p.requires_grad}
    D.train()
    assert D.branches[0].heads.training
    assert not any(m.training for b in D.branches for m in [*b.features.modules(), *b.projection.modules()])
    opt = torch.optim.Adam([p for p in D.parameters() if p.requires_grad], lr=1e-2, betas=(0.0, 0.99))
    real, fake = torch.rand(4, 3, 32, 32) * 2 - 1, torch.rand(4, 3, 32, 32) * 2 - 1
    c = torch.tensor([0, 1, 2, 3])
    loss = torch.relu(1 - D(real, c)).mean() + torch.relu(1 + D(fake, c)).mean()
    loss.backward()
    opt.step()
    after = frozen_state(D)
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    assert any(not torch.equal(p, heads_before[n]) for n, p in D.named_parameters() if p.requires_grad)


def test_gradients_reach_the_images_through_diffaugment():
    D = projected(32)
    images = (torch.rand(3, 3, 32, 32) * 2 - 1).requires_grad_(True)
    D(images).mean().backward()
    assert images.grad is not None and torch.isfinite(images.grad).all() and images.grad.abs().sum() > 0


def test_conditional_logits_depend_on_the_class():
    D = projected(32, num_classes=4).eval()
    x = (torch.rand(1, 3, 32, 32) * 2 - 1).expand(2, -1, -1, -1)
    torch.manual_seed(1)  # the same DiffAugment draws for both calls
    a = D(x, torch.tensor([0, 0]))
    torch.manual_seed(1)
    b = D(x, torch.tensor([0, 3]))
    assert torch.equal(a[0], b[0]) and not torch.allclose(a[1], b[1])
    with pytest.raises(PolyinrError, match="class-conditional"):
        D(x)


def test_without_diffaug_eval_is_deterministic():
    D = projected(32, diffaug=None).eval()
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    assert torch.equal(D(x), D(x))
    augmented = projected(32).eval()
    assert not torch.equal(augmented(x), augmented(x))
    with pytest.raises(PolyinrError, match="unknown DiffAugment policy 'zoom'"):
        projected(32, diffaug="zoom")


def test_vit_backbone_pyramid_shapes_and_gradients():
    torch.manual_seed(0)
    D = create_discriminator("projected", 32, 3, backbones=[DEIT], pretrained=False, embed_dim=8)
    projection = D.branches[0].projection
    maps = D.branches[0].features(D.branches[0].features.prepare(torch.rand(1, 3, 32, 32), resize=False))
    pyramid = [r(m) for r, m in zip(projection.reassemble, maps)]
    assert [tuple(p.shape[1:]) for p in pyramid] == [(24, 56, 56), (48, 28, 28), (96, 14, 14), (192, 7, 7)]
    images = (torch.rand(2, 3, 32, 32) * 2 - 1).requires_grad_(True)
    logits = D(images, torch.tensor([0, 2]))
    assert logits.shape == (2, 4 * 16)  # four heads, 4×4 patch logits each
    logits.sum().backward()
    assert images.grad.abs().sum() > 0
    assert not any(p.requires_grad for p in D.branches[0].features.parameters())


def test_set_class_embeddings_starts_every_head():
    D = projected(32, num_classes=4, backbones=[EFFNET, EFFNET])
    table = torch.randn(4, 16)
    D.set_class_embeddings(table)
    heads = [h for b in D.branches for h in b.heads]
    assert len(heads) == 8 and all(torch.equal(h.projection.embed.weight, table) for h in heads)
    with pytest.raises(PolyinrError, match="does not fit the projected discriminator"):
        D.set_class_embeddings(torch.randn(5, 16))
    with pytest.raises(PolyinrError, match="unconditional"):
        projected(32).set_class_embeddings(table)


def test_wrong_image_size():
    with pytest.raises(PolyinrError, match=r"takes images \[B, 3, 32, 32\], got \(1, 3, 64, 64\)"):
        projected(32)(torch.zeros(1, 3, 64, 64))


def test_offline_download_is_one_clear_error(monkeypatch):
    from huggingface_hub.errors import LocalEntryNotFoundError

    real_create = timm.create_model

    def offline(name, pretrained=False, **kwargs):
        if pretrained and "pretrained_cfg_overlay" not in kwargs:
            raise LocalEntryNotFoundError(
                "An error happened while trying to locate the file on the Hub and we cannot find the requested "
                "files in the local cache. Please check your connection and try again."
            )
        return real_create(name, pretrained=pretrained, **kwargs)

    monkeypatch.setattr(timm, "create_model", offline)
    with pytest.raises(PolyinrError) as e:
        create_discriminator("projected", 32, 0, backbones=[EFFNET], pretrained=True)
    message = str(e.value)
    assert "\n" not in message
    assert message.startswith(f"the pretrained weights of {EFFNET} could not be downloaded")
    assert "--" not in message and "pretrained false" in message and "local weights file" in message


@pytest.mark.parametrize("fmt", ["safetensors", "pt"])
def test_local_weights_file(tmp_path, fmt):
    torch.manual_seed(123)
    source = timm.create_model(EFFNET, pretrained=False)
    state = source.state_dict()
    path = tmp_path / f"effnet.{fmt}"
    if fmt == "safetensors":
        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    else:
        torch.save(state, path)
    D = projected(32, weights={EFFNET: str(path)}, pretrained=True)  # the file wins: nothing is downloaded
    loaded = D.branches[0].features.model.state_dict()
    assert loaded and all(torch.equal(v, state[k]) for k, v in loaded.items())


def test_bad_weights_files(tmp_path):
    with pytest.raises(PolyinrError, match="weights file for tf_efficientnet_lite0 not found"):
        projected(32, weights={EFFNET: str(tmp_path / "missing.safetensors")})
    other = tmp_path / "resnet.safetensors"
    save_file({k: v.contiguous() for k, v in timm.create_model("resnet10t").state_dict().items()}, str(other))
    with pytest.raises(PolyinrError, match=f"cannot load the weights of {EFFNET} from") as e:
        projected(32, weights={EFFNET: str(other)})
    assert "\n" not in str(e.value)
    with pytest.raises(PolyinrError, match="weights given for resnet18, which is not among the backbones"):
        projected(32, weights={"resnet18": str(other)})


def test_unknown_backbone_and_options():
    with pytest.raises(PolyinrError, match="unknown feature network 'efficientnet_lite9'"):
        projected(32, backbones=["efficientnet_lite9"])
    with pytest.raises(PolyinrError, match="at least one backbone"):
        projected(32, backbones=[])
    with pytest.raises(PolyinrError, match="does not use 'cond'; its settings: backbones, pretrained"):
        create_discriminator("projected", 32, 0, cond=True)
