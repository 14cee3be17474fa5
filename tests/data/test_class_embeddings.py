"""Class embeddings: per-class means against a direct computation, errors, file round trip, the CLI."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest
import timm
import torch
import torch.nn.functional as F
from click.testing import CliRunner
from safetensors import safe_open
from safetensors.torch import save_file

from polyinr.cli import main
from polyinr.data.class_embeddings import compute_class_embeddings, load_class_embeddings, save_class_embeddings
from polyinr.errors import PolyinrError

EFFNET = "tf_efficientnet_lite0"


class TinyLabelled(torch.utils.data.Dataset):
    """Random uint8 images ``[3, R, R]`` with the given labels."""

    def __init__(self, labels: list[int], num_classes: int, R: int = 16, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.images = torch.randint(0, 256, (len(labels), 3, R, R), generator=g, dtype=torch.uint8)
        self.labels = np.asarray(labels, dtype=np.int64)
        self.num_classes = num_classes

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        return self.images[i], int(self.labels[i])


def direct_embeddings(ds: TinyLabelled, seed: int) -> torch.Tensor:
    """Per-class means computed straight from a full timm EfficientNet-lite0 with the same random weights."""
    torch.manual_seed(seed)
    model = timm.create_model(EFFNET, pretrained=False).eval()
    x = F.interpolate(ds.images.float() / 255, size=(224, 224), mode="bilinear", align_corners=False)
    x = (x - 0.5) / 0.5  # EfficientNet-lite's normalisation
    with torch.no_grad():
        pooled = model.blocks(model.bn1(model.conv_stem(x))).mean(dim=(2, 3))  # [N, 320], before conv_head
    return torch.stack([pooled[torch.from_numpy(ds.labels == k)].mean(dim=0) for k in range(ds.num_classes)])


def test_per_class_means_match_a_direct_computation():
    ds = TinyLabelled([2, 0, 1, 0, 2, 2, 1], num_classes=3)
    progress = []
    torch.manual_seed(7)
    table = compute_class_embeddings(
        ds, EFFNET, pretrained=False, batch_size=3, on_progress=lambda done, total: progress.append((done, total))
    )
    assert table.shape == (3, 320) and table.dtype == torch.float32
    assert torch.allclose(table, direct_embeddings(ds, seed=7), atol=1e-5, rtol=1e-4)
    assert progress == [(3, 7), (6, 7), (7, 7)]


def test_classes_without_images_and_unlabelled_data():
    with pytest.raises(PolyinrError, match=r"2 of 4 classes have no images \(classes 1, 3\)"):
        compute_class_embeddings(TinyLabelled([0, 2, 0], num_classes=4), EFFNET, pretrained=False)
    with pytest.raises(PolyinrError, match="no class labels"):
        compute_class_embeddings(TinyLabelled([0, 0], num_classes=0), EFFNET, pretrained=False)
    with pytest.raises(PolyinrError, match=r"class indices in 0\.\.1"):
        compute_class_embeddings(TinyLabelled([0, 2], num_classes=2), EFFNET, pretrained=False)


def test_file_round_trip_and_errors(tmp_path):
    table = torch.randn(5, 320)
    path = save_class_embeddings(table, tmp_path / "sub" / "emb.safetensors", feature_network=EFFNET)
    assert torch.equal(load_class_embeddings(path), table)
    with safe_open(str(path), framework="pt") as f:
        assert f.metadata()["feature_network"] == EFFNET
    with pytest.raises(PolyinrError, match="class embeddings not found"):
        load_class_embeddings(tmp_path / "missing.safetensors")
    other = tmp_path / "other.safetensors"
    save_file({"weights": torch.zeros(2, 2)}, str(other))
    with pytest.raises(PolyinrError, match="holds no class embeddings"):
        load_class_embeddings(other)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a safetensors file")
    with pytest.raises(PolyinrError, match="not a readable safetensors file"):
        load_class_embeddings(junk)


def test_embed_classes_command(tmp_path, monkeypatch):
    ds = TinyLabelled([0, 1, 1, 0, 1], num_classes=2)
    opened = {}

    def open_dataset(source, resolution=None, cond=True, **kwargs):
        opened.update(source=source, cond=cond)
        return ds

    fake = types.ModuleType("polyinr.data.datasets")
    fake.open_dataset = open_dataset
    monkeypatch.setitem(sys.modules, "polyinr.data.datasets", fake)
    out = tmp_path / "emb.safetensors"
    torch.manual_seed(3)
    result = CliRunner().invoke(
        main,
        [
            "embed-classes",
            "--data",
            "tiny",
            "--out",
            str(out),
            "--features-pretrained",
            "false",
            "--device",
            "cpu",
            "--batch",
            "2",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "2 classes × 320" in result.output
    assert opened == {"source": "tiny", "cond": True}
    assert torch.allclose(load_class_embeddings(out), direct_embeddings(ds, seed=3), atol=1e-5, rtol=1e-4)
    result = CliRunner().invoke(
        main,
        [
            "embed-classes",
            "--data",
            "tiny",
            "--out",
            str(out),
            "--feature-network",
            "nonet",
            "--features-pretrained",
            "false",
            "--device",
            "cpu",
        ],
    )
    assert result.exit_code == 1 and "Error: unknown feature network 'nonet'" in result.output
