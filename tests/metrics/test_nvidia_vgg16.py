"""NVIDIA's VGG16 (precision/recall's standard network) read from its TorchScript file without running it.

The stand-in file is written here: a small module with NVIDIA's parameter names and metric forward, scripted and
saved by the test itself (reduced widths keep it fast; the full layout is checked against torchvision's VGG16)."""

from __future__ import annotations

import os
import pickle
import warnings
import zipfile

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from polyinr.errors import PolyinrError
from polyinr.metrics import features, nvidia_vgg16
from polyinr.metrics.features import detector_description, load_detector, sha256_of
from polyinr.metrics.nvidia_vgg16 import NvidiaVGG16, read_nvidia_vgg16

WIDTHS = (4, 4, 6, 6, 8, 8, 8, 8, 8, 8, 8, 8, 8)  # NVIDIA's: 64, 64, 128, 128, 256 ×3, 512 ×6
FULL_WIDTHS = (64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512)


class _Layers(nn.Module):
    def __init__(self, widths, hidden):
        super().__init__()
        channels = 3
        for i, width in enumerate(widths, start=1):
            setattr(self, f"conv{i}", nn.Conv2d(channels, width, 3, padding=1))
            channels = width
        self.fc1 = nn.Linear(channels * 49, hidden)
        self.fc2 = nn.Linear(hidden, hidden)
        self.fc3 = nn.Linear(hidden, 10)


class NvidiaLayoutVGG(nn.Module):
    """NVIDIA's VGG16 layout and its metric forward (``net(images, return_features=True)``), written for TorchScript
    in the test as the reference: the scripted file's own forward is what our module must reproduce."""

    def __init__(self, widths=WIDTHS, hidden=16):
        super().__init__()
        self.layers = _Layers(widths, hidden)
        for i, width in enumerate((widths[1], widths[3], widths[6], widths[9], widths[12])):
            setattr(self, f"lpips{i}", nn.Parameter(torch.rand(width, 1, 1)))

    def forward(self, images: torch.Tensor, return_features: bool = False, resize_images: bool = True):
        x = images.to(torch.float32)
        if resize_images:
            theta = torch.eye(2, 3, device=x.device)
            theta[0, 2] += 1.0 / x.shape[3] - 1.0 / 224
            theta[1, 2] += 1.0 / x.shape[2] - 1.0 / 224
            theta = theta.unsqueeze(0).repeat(x.shape[0], 1, 1)
            grid = F.affine_grid(theta, [x.shape[0], x.shape[1], 224, 224], align_corners=False)
            x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
        x = x / 255.0
        mean = torch.tensor([0.485, 0.456, 0.406], device=x.device).view(1, 3, 1, 1)
        std = torch.tensor([0.229, 0.224, 0.225], device=x.device).view(1, 3, 1, 1)
        x = (x - mean) / std
        L = self.layers
        x = F.max_pool2d(F.relu(L.conv2(F.relu(L.conv1(x)))), 2)
        x = F.max_pool2d(F.relu(L.conv4(F.relu(L.conv3(x)))), 2)
        x = F.max_pool2d(F.relu(L.conv7(F.relu(L.conv6(F.relu(L.conv5(x)))))), 2)
        x = F.max_pool2d(F.relu(L.conv10(F.relu(L.conv9(F.relu(L.conv8(x)))))), 2)
        x = F.max_pool2d(F.relu(L.conv13(F.relu(L.conv12(F.relu(L.conv11(x)))))), 2)
        x = F.adaptive_avg_pool2d(x, [7, 7]).flatten(1)
        x = F.relu(L.fc2(F.relu(L.fc1(x))))
        if return_features:
            return x
        return L.fc3(x)


def random_images(count, size, seed=0):
    return torch.from_numpy(np.random.default_rng(seed).integers(0, 256, (count, 3, size, size), dtype=np.uint8))


@pytest.fixture(scope="module")
def scripted():
    torch.manual_seed(0)
    net = NvidiaLayoutVGG().eval()
    with torch.no_grad():  # ReLU features that are not all zero: He-like weights, positive biases
        for name, p in net.named_parameters():
            if name.startswith("layers.") and name.endswith("bias"):
                p.uniform_(0.0, 0.1)
    with warnings.catch_warnings():  # torch.jit is deprecated; the test only uses it to write the file
        warnings.simplefilter("ignore", FutureWarning)
        return torch.jit.script(net)


def _save(script, path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.save(script, str(path))
    return path


def test_the_reader_gets_the_scripted_file_tensors_without_running_it(scripted, tmp_path):
    path = _save(scripted, tmp_path / "vgg16.pt")
    with zipfile.ZipFile(path) as archive:  # a real TorchScript archive: code and all
        assert any("/code/" in name for name in archive.namelist())
    tensors = read_nvidia_vgg16(path)
    expected = scripted.state_dict()
    assert set(tensors) == set(expected)
    for key, value in expected.items():
        assert torch.equal(tensors[key], value), key


def test_our_module_computes_the_scripted_network_features(scripted, tmp_path, isolated_cache):
    folder = isolated_cache / "detectors"
    folder.mkdir(parents=True)
    path = _save(scripted, folder / "vgg16.pt")
    detector = load_detector("vgg16", download=False)
    assert isinstance(detector, NvidiaVGG16)
    assert detector.name == f"vgg16-nvidia-{sha256_of(path)[:12]}"  # not the published file: its hash is named
    assert detector_description("vgg16").startswith(detector.name)
    for size in (16, 37, 224, 300):  # resized up, from an odd size, not at all, and down
        images = random_images(3, size, seed=size)
        ours = detector(images, ("vgg16_fc2",))["vgg16_fc2"]
        theirs = scripted(images, return_features=True)
        assert ours.shape == (3, 16) and (ours > 0).any()
        torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6)


def test_the_published_file_is_named_vgg16_nvidia_and_preferred_to_torchvisions(scripted, isolated_cache, monkeypatch):
    folder = isolated_cache / "detectors"
    folder.mkdir(parents=True)
    assert detector_description("vgg16").startswith("vgg16-torchvision-397923af (")  # nothing there yet
    (folder / "vgg16-397923af.pth").write_bytes(b"torchvision's file")
    assert detector_description("vgg16") == f"vgg16-torchvision-397923af ({folder / 'vgg16-397923af.pth'})"
    path = _save(scripted, folder / "vgg16.pt")
    monkeypatch.setattr(nvidia_vgg16, "NVIDIA_VGG16_SHA256", sha256_of(path))  # as if it were NVIDIA's file
    assert detector_description("vgg16") == f"vgg16-nvidia ({path})"
    assert load_detector("vgg16", download=False).name == "vgg16-nvidia"


def test_a_pickle_holding_the_archive_is_read_through_the_restricted_unpickler(scripted, tmp_path, isolated_cache):
    archive = _save(scripted, tmp_path / "archive.pt").read_bytes()
    folder = isolated_cache / "detectors"
    folder.mkdir(parents=True)
    (folder / "vgg16.pkl").write_bytes(pickle.dumps({"format": "torchscript", "archive": archive}, protocol=4))
    detector = load_detector("vgg16", download=False)
    images = random_images(2, 24)
    torch.testing.assert_close(detector(images)["vgg16_fc2"], scripted(images, return_features=True))
    (folder / "vgg16.pkl").write_bytes(pickle.dumps({"weights": [1, 2, 3]}))
    features._LOADED.clear()
    with pytest.raises(PolyinrError, match="neither a TorchScript archive of NVIDIA's VGG16 nor a pickle") as info:
        load_detector("vgg16", download=False)
    assert "\n" not in str(info.value)


class _Hostile:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_an_archive_whose_pickle_runs_code_is_refused_in_one_line(scripted, tmp_path, isolated_cache):
    folder = isolated_cache / "detectors"
    folder.mkdir(parents=True)
    marker = tmp_path / "ran"
    good = _save(scripted, tmp_path / "good.pt")
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(folder / "vgg16.pt", "w") as dst:
        for info in src.infolist():
            data = pickle.dumps(_Hostile(marker), protocol=2) if info.filename.endswith("/data.pkl") else src.read(info)
            dst.writestr(info.filename, data)
    with pytest.raises(PolyinrError, match=r"refused .*vgg16\.pt: it calls (os|posix)\.system") as info:
        load_detector("vgg16", download=False)
    assert "\n" not in str(info.value) and not marker.exists()


def test_wrong_layouts_are_refused_in_one_line(scripted, tmp_path):
    tensors = dict(scripted.state_dict())
    del tensors["layers.conv7.bias"]
    with pytest.raises(PolyinrError, match=r"no layers\.conv7"):
        NvidiaVGG16("x", tensors)
    tensors = dict(scripted.state_dict())
    tensors["layers.fc1.weight"] = torch.zeros(16, 99)
    with pytest.raises(PolyinrError, match=r"layers\.fc1 has shape \[16, 99\] after 392 features"):
        NvidiaVGG16("x", tensors)


def test_the_full_layout_is_torchvisions_vgg16():
    import torchvision

    with torch.device("meta"):
        reference = NvidiaLayoutVGG(FULL_WIDTHS, 4096)
        ours = NvidiaVGG16("full", {k: v for k, v in reference.state_dict().items()})
        theirs = torchvision.models.vgg16()
    convs = [m.weight.shape for m in theirs.features if isinstance(m, nn.Conv2d)]
    assert [c.weight.shape for c in ours.convs] == convs
    assert [ours.fc1.weight.shape, ours.fc2.weight.shape] == [
        theirs.classifier[0].weight.shape,
        theirs.classifier[3].weight.shape,
    ]
    pools = [i for i, m in enumerate(theirs.features) if isinstance(m, nn.MaxPool2d)]
    conv_index = [sum(isinstance(m, nn.Conv2d) for m in theirs.features[:p]) for p in pools]
    assert tuple(conv_index) == nvidia_vgg16.POOL_AFTER


@pytest.mark.slow
def test_the_training_log_names_the_detector_of_every_precision_recall_value(scripted, tmp_path, isolated_cache):
    from polyinr.metrics import evaluate_snapshot
    from polyinr.training.loop import training_loop
    from polyinr.training.options import resolve_options

    folder = isolated_cache / "detectors"
    folder.mkdir(parents=True)
    path = _save(scripted, folder / "vgg16.pt")
    data = tmp_path / "reals"  # 16 images: the real features are computed quickly
    data.mkdir()
    for i, image in enumerate(random_images(16, 8).permute(0, 2, 3, 1).numpy()):
        Image.fromarray(image).save(data / f"{i:02d}.png")
    options = resolve_options(
        "cpu",
        data=str(data),
        resolution=8,
        batch=8,
        kimg=0.008,
        tick_kimg=0.008,
        snap_ticks=1,
        workers=0,
        device="cpu",
        seed=3,
        metrics=("pr0.01k3_full",),
        outdir=str(tmp_path / "runs"),
        model_overrides={"channels": 16},
    )
    run_dir = training_loop(options, evaluate=evaluate_snapshot)
    name = f"vgg16-nvidia-{sha256_of(path)[:12]}"
    lines = [line for line in (run_dir / "log.txt").read_text().splitlines() if "pr0.01k3_full" in line]
    assert lines and all(f"(detector {name} ({path}))" in line for line in lines), lines
    assert "pr0.01k3_full_precision=" in lines[0] and "pr0.01k3_full_recall=" in lines[0]
    record = (run_dir / "metric-pr0.01k3_full.jsonl").read_text()
    assert f'"detector": "{name} ({path})"' in record
