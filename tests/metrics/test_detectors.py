"""Detectors: our Inception against torch-fidelity's, weights lookup, hashes, refused TorchScript files, offline
errors."""

from __future__ import annotations

import io
import os
import pickle

import numpy as np
import pytest
import torch
from metrics_testlib import USER_CACHE_DIR, USER_SEARCH_DIRS
from PIL import Image
from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
from torch_fidelity.interpolate_compat_tensorflow import interpolate_bilinear_2d_like_tensorflow1x

from polyinr.errors import PolyinrError
from polyinr.metrics import features
from polyinr.metrics.features import (
    SFID_CHANNELS,
    WEIGHTS,
    InceptionV3,
    find_weights,
    load_detector,
)


def random_images(count, size, seed=0):
    return torch.from_numpy(np.random.default_rng(seed).integers(0, 256, (count, 3, size, size), dtype=np.uint8))


@pytest.mark.slow
def test_inception_matches_torch_fidelity_extractor_with_the_same_weights():
    ours = InceptionV3("random", seed=3)
    buffer = io.BytesIO()
    torch.save(ours.state_dict(), buffer)  # torch-fidelity's class loads it strictly: same keys and shapes
    buffer.seek(0)
    theirs = FeatureExtractorInceptionV3(
        "inception", ["2048", "logits_unbiased"], feature_extractor_weights_path=buffer
    )
    captured = {}
    theirs.Mixed_6d.branch1x1.register_forward_hook(lambda m, i, o: captured.update(mixed_6_conv=o))
    images = random_images(1, 40)
    pool, logits = theirs(images)
    out = ours(images, ("pool", "logits", "spatial"))
    torch.testing.assert_close(out["pool"], pool, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out["logits"], logits, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out["spatial"], captured["mixed_6_conv"][:, :SFID_CHANNELS].flatten(1))
    assert out["spatial"].shape == (1, SFID_CHANNELS * 17 * 17)


def test_random_inception_is_fixed_by_its_seed_and_needs_no_file():
    a = load_detector("inception-random", download=False)
    b = InceptionV3("again", seed=features.RANDOM_INCEPTION_SEED)
    for (key, pa), pb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(pa, pb), key
    conv = a.Conv2d_2b_3x3.conv.weight  # He-normal: std sqrt(2 / fan_in)
    assert conv.std().item() == pytest.approx((2 / conv[0].numel()) ** 0.5, rel=0.05)
    assert "seed0" in a.name
    assert load_detector("inception-random", download=False) is a  # loaded once per process and device


def test_missing_weights_offline_say_which_file_to_put_where(isolated_cache):
    with pytest.raises(PolyinrError) as err:
        load_detector("inception", download=False)
    message = str(err.value)
    assert "weights-inception-2015-12-05-6726825d.pth" in message and str(isolated_cache / "detectors") in message
    assert "\n" not in message
    with pytest.raises(PolyinrError, match=r"vgg16-397923af\.pth"):
        find_weights("vgg16", download=False)


def test_failed_download_is_one_clear_error(monkeypatch):
    def offline(url, dst, hash_prefix=None, progress=True):
        raise OSError("network is unreachable")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(PolyinrError, match=r"download failed.*put weights-inception"):
        load_detector("inception")


def test_a_file_with_the_wrong_hash_is_refused(isolated_cache):
    (isolated_cache / "detectors").mkdir(parents=True)
    (isolated_cache / "detectors" / WEIGHTS["inception"][0].filename).write_bytes(b"not the network")
    with pytest.raises(PolyinrError, match="sha256"):
        load_detector("inception", download=False)


def test_files_in_torch_hub_checkpoints_are_found(tmp_path):
    hub = tmp_path / "torch" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    (hub / "pt_inception-2015-12-05-6726825d.pth").write_bytes(b"x")
    path, entry = find_weights("inception", download=False)
    assert path == hub / "pt_inception-2015-12-05-6726825d.pth" and entry.sha256 == features.INCEPTION_SHA256


class FakeNvidiaInception(torch.nn.Module):
    """The call signature of NVIDIA's TorchScript detector: uint8 NCHW in, features or probabilities out."""

    def forward(self, x: torch.Tensor, return_features: bool = False, no_output_bias: bool = False) -> torch.Tensor:
        pooled = x.float().mean(dim=(2, 3))  # [B, 3]
        if return_features:
            return pooled.repeat(1, 4)
        return torch.softmax(pooled, dim=1)


class _RunsCommand:
    """Pickles as ``os.system(command)``: NVIDIA's own code reads its ``.pkl`` with ``pickle.load``."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


@pytest.mark.parametrize("filename", features.UNVERIFIABLE["inception"])
def test_nvidia_torchscript_inception_is_refused_and_never_run(isolated_cache, tmp_path, monkeypatch, filename):
    marker = tmp_path / "ran"
    folder = isolated_cache / "detectors"
    folder.mkdir(parents=True)
    if filename.endswith(".pkl"):
        (folder / filename).write_bytes(pickle.dumps(_RunsCommand(f"touch {marker}")))
    else:
        torch.jit.save(torch.jit.script(FakeNvidiaInception()), str(folder / filename))

    def loaded(*args, **kwargs):  # any loader that could run the file leaves the marker
        marker.touch()
        raise AssertionError("a detector file was loaded")

    for module, name in [(torch.jit, "load"), (torch, "load"), (pickle, "load"), (torch.hub, "download_url_to_file")]:
        monkeypatch.setattr(module, name, loaded)
    for download in (False, True):
        with pytest.raises(PolyinrError) as err:
            load_detector("inception", download=download)
        message = str(err.value)
        assert message.startswith(f"{folder / filename} is refused") and "\n" not in message
        assert "weights-inception-2015-12-05-6726825d.pth" in message
    assert not marker.exists()


def test_unknown_detector_name():
    with pytest.raises(PolyinrError, match="unknown detector"):
        load_detector("resnet", download=False)


def _standard_inception_file():
    for entry in WEIGHTS["inception"][:2]:
        for folder in USER_SEARCH_DIRS:
            if (folder / entry.filename).is_file():
                return folder / entry.filename
    return None


@pytest.mark.slow
@pytest.mark.skipif(_standard_inception_file() is None, reason="standard Inception weights not in the user cache")
def test_fid_agrees_with_torch_fidelity_on_image_folders(tmp_path, monkeypatch):
    """Runs only where weights-inception-2015-12-05-6726825d.pth is present (it is never downloaded here)."""
    import torch_fidelity

    from polyinr.data.datasets import open_dataset
    from polyinr.metrics.fid import frechet_distance
    from polyinr.metrics.stats_cache import real_feature_stats

    monkeypatch.setenv("POLYINR_CACHE_DIR", str(USER_CACHE_DIR))
    rng = np.random.default_rng(0)
    folders = []
    for name, low in (("a", 0), ("b", 60)):
        folder = tmp_path / name
        folder.mkdir()
        for i in range(40):
            Image.fromarray(rng.integers(low, 256, (32, 32, 3), dtype=np.uint8)).save(folder / f"{i:03d}.png")
        folders.append(folder)
    detector = load_detector("inception", download=False)
    stats = [real_feature_stats(open_dataset(str(f)), detector, "pool", use_cache=False) for f in folders]
    ours = frechet_distance(*stats[0].mean_cov(), *stats[1].mean_cov())
    theirs = torch_fidelity.calculate_metrics(
        input1=str(folders[0]),
        input2=str(folders[1]),
        fid=True,
        cuda=False,
        verbose=False,
        cache=False,
        feature_extractor_weights_path=str(_standard_inception_file()),
    )
    assert ours == pytest.approx(theirs["frechet_inception_distance"], rel=1e-4)


class MiniVGG(torch.nn.Module):
    """torchvision VGG's layout (features, avgpool, 7-layer classifier) at a tiny size."""

    def __init__(self):
        super().__init__()
        self.features = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, stride=8), torch.nn.ReLU())
        self.avgpool = torch.nn.AdaptiveAvgPool2d(2)
        layers = [
            torch.nn.Linear(16, 8),
            torch.nn.ReLU(),
            torch.nn.Dropout(),
            torch.nn.Linear(8, 5),
            torch.nn.ReLU(),
            torch.nn.Dropout(),
            torch.nn.Linear(5, 3),
        ]
        self.classifier = torch.nn.Sequential(*layers)

    def forward(self, x):
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


def test_vgg16_detector_returns_fc2_after_relu_through_torch_fidelity(tmp_path, monkeypatch):
    import torchvision

    torch.manual_seed(0)
    reference = MiniVGG().eval()
    torch.save(reference.state_dict(), tmp_path / "vgg.pth")
    monkeypatch.setattr(torchvision.models, "vgg16", MiniVGG)  # torch-fidelity builds torchvision's vgg16()
    detector = features.TorchFidelityVGG16("mini", tmp_path / "vgg.pth")
    images = random_images(2, 32)
    out = detector(images, ("vgg16_fc2",))["vgg16_fc2"]
    assert out.shape == (2, 5) and (out >= 0).all()
    x = interpolate_bilinear_2d_like_tensorflow1x(images.float(), size=(224, 224), align_corners=False)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1) * 255
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1) * 255
    h = torch.flatten(reference.avgpool(reference.features((x - mean) / std)), 1)
    torch.testing.assert_close(out, torch.relu(reference.classifier[:4](h)), rtol=1e-5, atol=1e-6)
