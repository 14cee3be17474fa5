"""The shared mapping network: labels, per-class w_avg, its running update, and truncation."""

from __future__ import annotations

import pytest
import torch

from polyinr.errors import PolyinrError
from polyinr.models.mapping import MappingConfig, MappingNetwork, class_indices, normalize_2nd_moment


def test_normalize_2nd_moment():
    x = torch.randn(5, 7) * 3
    assert torch.allclose(normalize_2nd_moment(x).square().mean(dim=1), torch.ones(5), atol=1e-5)


def test_labels_as_indices_or_one_hot(G_cond):
    z = torch.randn(4, G_cond.z_dim)
    labels = torch.tensor([2, 0, 1, 2])
    one_hot = torch.nn.functional.one_hot(labels, 3).float()
    ws = G_cond.mapping(z, labels)
    assert ws.shape == (4, G_cond.num_ws, G_cond.w_dim)
    assert torch.equal(ws, G_cond.mapping(z, one_hot))
    assert not torch.equal(ws, G_cond.mapping(z, torch.tensor([0, 0, 1, 2])))  # the label matters
    assert torch.equal(ws[:, 0:1].expand_as(ws), ws)  # one w broadcast to every level


@pytest.mark.parametrize(
    "labels, message",
    [
        (None, "class-conditional"),
        (torch.tensor([0, 3]), "out of range"),
        (torch.tensor([-1, 0]), "out of range"),
        (torch.tensor([0.0, 1.0]), "indices"),
        (torch.zeros(2, 4), "columns"),
        (torch.zeros(2, 1, 3), "indices"),
    ],
)
def test_bad_labels_raise(G_cond, labels, message):
    with pytest.raises(PolyinrError, match=message) as err:
        G_cond.mapping(torch.randn(2, G_cond.z_dim), labels)
    assert "\n" not in str(err.value)


def test_unconditional_mapping_needs_no_labels():
    assert class_indices(None, 0) is None
    mapping = MappingNetwork(MappingConfig(z_dim=4, w_dim=6), num_ws=3)
    assert mapping.w_avg.shape == (1, 6) and mapping.embed is None
    assert mapping(torch.randn(2, 4)).shape == (2, 3, 6)


def test_psi_zero_gives_the_class_average_image(G_cond):
    z = torch.randn(3, G_cond.z_dim)
    labels = torch.tensor([1, 2, 1])
    ws = G_cond.mapping(z, labels, truncation_psi=0)
    expected = G_cond.mapping.w_avg[labels].unsqueeze(1).expand(-1, G_cond.num_ws, -1)
    assert torch.equal(ws, expected)
    images = G_cond(z, labels, truncation_psi=0)
    assert torch.equal(images, G_cond.synthesis(expected.contiguous()))
    assert torch.equal(images[0], images[2])  # same class, any z: the same image
    assert not torch.equal(images[0], images[1])


def test_psi_zero_unconditional(G):
    G.mapping.w_avg.copy_(torch.arange(G.w_dim, dtype=torch.float32).unsqueeze(0) / G.w_dim)
    try:
        ws = G.mapping(torch.randn(2, G.z_dim), truncation_psi=0)
        assert torch.equal(ws, G.mapping.w_avg[0].expand_as(ws))
    finally:
        G.mapping.w_avg.zero_()


def test_truncation_lerps_towards_the_class_average(G_cond):
    z = torch.randn(3, G_cond.z_dim)
    labels = torch.tensor([0, 1, 2])
    w = G_cond.mapping(z, labels)
    center = G_cond.mapping.w_avg[labels].unsqueeze(1)
    assert torch.allclose(G_cond.mapping(z, labels, truncation_psi=0.7), center + 0.7 * (w - center), atol=1e-6)
    assert torch.allclose(G_cond.mapping(z, labels, truncation_psi=-0.5), center - 0.5 * (w - center), atol=1e-6)


def test_truncation_cutoff_truncates_only_the_first_ws(G_cond):
    z = torch.randn(2, G_cond.z_dim)
    labels = torch.tensor([0, 2])
    w = G_cond.mapping(z, labels)
    ws = G_cond.mapping(z, labels, truncation_psi=0.5, truncation_cutoff=2)
    full = G_cond.mapping(z, labels, truncation_psi=0.5)
    assert torch.equal(ws[:, :2], full[:, :2])
    assert torch.equal(ws[:, 2:], w[:, 2:])
    assert not torch.equal(ws[:, :2], w[:, :2])


def stylegan_xl_update(w_avg: torch.Tensor, w: torch.Tensor, labels: torch.Tensor, beta: float) -> torch.Tensor:
    """StyleGAN-XL's per-class update: one lerp per sample, in batch order."""
    w_avg = w_avg.clone()
    for wi, ci in zip(w, labels.tolist()):
        w_avg[ci] = wi.lerp(w_avg[ci], beta)
    return w_avg


def test_per_class_w_avg_update_equals_sequential_lerps(make_generator):
    G = make_generator(seed=4, num_classes=5, w_avg_beta=0.9)  # a large step, so errors would show
    G.mapping.w_avg.copy_(torch.randn_like(G.mapping.w_avg))
    z = torch.randn(9, G.z_dim)
    labels = torch.tensor([3, 1, 3, 3, 0, 1, 3, 4, 0])  # repeats, one class absent (2)
    w = G.mapping(z, labels)[:, 0]
    expected = stylegan_xl_update(G.mapping.w_avg, w, labels, beta=0.9)
    before = G.mapping.w_avg.clone()
    ws = G.mapping(z, labels, update_emas=True)
    assert torch.equal(ws[:, 0], w)  # the update does not change this call's output (psi = 1)
    assert torch.allclose(G.mapping.w_avg, expected, rtol=1e-5, atol=1e-6)
    assert torch.equal(G.mapping.w_avg[2], before[2])  # an absent class keeps its average
    assert not torch.allclose(G.mapping.w_avg[3], before[3])


def test_unconditional_w_avg_update_is_the_batch_mean_lerp(make_generator):
    G = make_generator(seed=6, w_avg_beta=0.8)
    G.mapping.w_avg.normal_()
    before = G.mapping.w_avg.clone()
    z = torch.randn(6, G.z_dim)
    w = G.mapping(z)[:, 0]
    G.mapping(z, update_emas=True)
    assert torch.allclose(G.mapping.w_avg[0], w.mean(dim=0).lerp(before[0], 0.8), atol=1e-6)


def test_class_embeddings_can_be_set(make_generator):
    G = make_generator(num_classes=3)
    table = torch.randn(3, 8)
    G.mapping.set_class_embeddings(table)
    assert torch.equal(G.mapping.embed.weight, table)
    with pytest.raises(PolyinrError, match="does not fit"):
        G.mapping.set_class_embeddings(torch.randn(3, 9))
    with pytest.raises(PolyinrError, match="does not fit"):
        make_generator().mapping.set_class_embeddings(table)


def test_class_interpolation_moves_the_embedding_from_one_class_to_the_other(G_cond, G):
    z = torch.randn(3, G_cond.z_dim)
    a, b = torch.full((3,), 0), torch.full((3,), 2)
    trunc = dict(truncation_psi=0.5, truncation_cutoff=2)
    mapping = G_cond.mapping
    torch.testing.assert_close(mapping.interpolate_classes(z, 0, 2, 0.0, **trunc), mapping(z, a, **trunc))
    torch.testing.assert_close(mapping.interpolate_classes(z, 0, 2, 1.0, **trunc), mapping(z, b, **trunc))
    halfway = mapping.interpolate_classes(z, 0, 2, 0.5)
    embedding = (mapping.embed.weight[0] + mapping.embed.weight[2]) / 2  # through the embedding, not the ws
    expected = mapping.layers[1](
        mapping.layers[0](
            torch.cat(
                [normalize_2nd_moment(z), normalize_2nd_moment(mapping.embed_proj(embedding.expand(3, -1)))], dim=1
            )
        )
    )
    torch.testing.assert_close(halfway[:, 0], expected)
    with pytest.raises(PolyinrError, match="unknown class 3"):
        mapping.interpolate_classes(z, 0, 3, 0.5)
    with pytest.raises(PolyinrError, match="unconditional"):
        G.mapping.interpolate_classes(z, 0, 1, 0.5)
