"""Offline feature spaces (a LeNet per built-in dataset), the metrics measured in them, and within-class diversity."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from polyinr.cli import main
from polyinr.data.builtin import TEXTURE_SOURCES
from polyinr.data.datasets import open_dataset
from polyinr.errors import PolyinrError
from polyinr.grid import Grid
from polyinr.metrics import compute_metric, feature_spaces, metric_detector, parse_metric
from polyinr.metrics.diversity import class_diversity
from polyinr.models.registry import create

# One epoch on 8×8 renders: the real recipe's code path in about a second.
TINY = dataclasses.replace(feature_spaces.RECIPES["digits"], epochs=1, render_resolution=8)


TINY_PHOTOS = dataclasses.replace(feature_spaces.RECIPES["photos"], epochs=5, input_size=8, render_resolution=8)
TINY_FACES = dataclasses.replace(feature_spaces.RECIPES["faces"], epochs=5, input_size=8, render_resolution=8)
TINY_TEXTURES = dataclasses.replace(feature_spaces.RECIPES["textures"], epochs=1, input_size=8, render_resolution=8)


@pytest.fixture
def tiny_space(monkeypatch):
    monkeypatch.setitem(feature_spaces.RECIPES, "digits", TINY)
    monkeypatch.setitem(feature_spaces.RECIPES, "photos", TINY_PHOTOS)
    monkeypatch.setitem(feature_spaces.RECIPES, "faces", TINY_FACES)
    monkeypatch.setitem(feature_spaces.RECIPES, "textures", TINY_TEXTURES)
    monkeypatch.setattr(feature_spaces, "_LOADED", {})
    return TINY


@pytest.fixture(scope="module")
def digits():
    return open_dataset("builtin:digits", resolution=8, cond=True)


class Replay:
    """A stand-in generator whose samples are given images ``[N, 3, R, R]`` in [-1, 1], in order."""

    z_dim, num_ws = 4, 1

    def __init__(self, images: torch.Tensor, num_classes: int = 0) -> None:
        self.images, self.num_classes, self.img_resolution = images, num_classes, images.shape[-1]
        self.next = 0

    def mapping(self, z, c=None, **truncation):
        idx = torch.arange(self.next, self.next + len(z)) % len(self.images)
        self.next += len(z)
        return idx.float().view(-1, 1, 1)  # "ws" [B, 1, 1]: which image

    def synthesize(self, ws, grid=None):
        return self.images[ws.view(-1).long()]

    def training_grid(self, resolution: int) -> Grid:
        return Grid.frame(resolution)  # a frame model: measured at the data's resolution


def real_images(dataset) -> torch.Tensor:
    return torch.stack([dataset[i][0] for i in range(len(dataset))]).float() / 127.5 - 1  # [N, 3, R, R]


def test_training_is_deterministic(tiny_space):
    first, info = feature_spaces.train_feature_net(tiny_space)
    second, _ = feature_spaces.train_feature_net(tiny_space)
    assert feature_spaces.fingerprint(first) == feature_spaces.fingerprint(second)
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert info["held_out_accuracy"] > 0.5  # one epoch already recognises most digits


@pytest.mark.parametrize("space", ["digits", "photos", "faces", "textures"])
def test_fid_of_the_real_data_is_zero_against_itself_and_large_against_noise(tiny_space, space):
    unlabelled = open_dataset(f"builtin:{space}", resolution=8)
    reals = real_images(unlabelled)
    n = f"{len(reals) / 1000}k"
    same = compute_metric(f"fid{n}_{space}", Replay(reals), unlabelled)[f"fid{n}_{space}"]
    noise = torch.rand(reals.shape, generator=torch.Generator().manual_seed(0)) * 2 - 1
    far = compute_metric(f"fid{n}_{space}", Replay(noise), unlabelled)[f"fid{n}_{space}"]
    assert abs(same) < 1e-6 and far > 1000 * max(abs(same), 1e-3)
    pr = compute_metric(f"pr{n}_{space}", Replay(reals), unlabelled)
    assert pr[f"pr{n}_{space}_precision"] == 1.0 and pr[f"pr{n}_{space}_recall"] == 1.0


def test_the_photos_space_learns_which_photograph_a_patch_comes_from(tiny_space):
    state, info = feature_spaces.train_feature_net(TINY_PHOTOS)
    assert info["num_classes"] == 2  # china.jpg, flower.jpg
    assert state["head.weight"].shape == (2, TINY_PHOTOS.feature_dim)
    assert feature_spaces.fingerprint(state) == feature_spaces.fingerprint(
        feature_spaces.train_feature_net(TINY_PHOTOS)[0]
    )


def test_the_faces_space_learns_which_quarter_turn_a_face_was_given(tiny_space):
    state, info = feature_spaces.train_feature_net(TINY_FACES)
    assert info["num_classes"] == 4  # 0°, 90°, 180°, 270°
    assert state["head.weight"].shape == (4, TINY_FACES.feature_dim)
    assert feature_spaces.fingerprint(state) == feature_spaces.fingerprint(
        feature_spaces.train_feature_net(TINY_FACES)[0]
    )
    x, y = feature_spaces._task_examples(
        torch.arange(8.0).view(2, 1, 2, 2), torch.zeros(2, dtype=torch.int64), "rotation"
    )
    assert y.tolist() == [0, 0, 1, 1, 2, 2, 3, 3] and torch.equal(x[2], torch.rot90(x[0], 1, dims=(1, 2)))
    with pytest.raises(PolyinrError, match="task 'jigsaw' is not one of classes, rotation"):
        feature_spaces.train_feature_net(dataclasses.replace(TINY_FACES, task="jigsaw"))


def test_the_textures_space_learns_which_source_image_a_crop_comes_from(tiny_space):
    _, info = feature_spaces.train_feature_net(TINY_TEXTURES)
    assert info["num_classes"] == len(TEXTURE_SOURCES)
    assert info["held_out_accuracy"] > 2 / len(TEXTURE_SOURCES)  # one epoch: well above chance


def test_the_cache_is_reused_and_a_stale_one_retrained(tiny_space, monkeypatch, isolated_cache):
    first = feature_spaces.load_feature_space("digits")
    path = feature_spaces.cache_path("digits")
    assert path.is_file() and path.is_relative_to(isolated_cache)
    with monkeypatch.context() as patched:
        patched.setattr(feature_spaces, "_LOADED", {})
        patched.setattr(feature_spaces, "train_feature_net", lambda recipe: pytest.fail("retrained a good cache"))
        assert feature_spaces.load_feature_space("digits").name == first.name  # the name carries the fingerprint
    changed = dataclasses.replace(TINY, seed=1)  # another recipe: the cached weights are stale
    monkeypatch.setitem(feature_spaces.RECIPES, "digits", changed)
    monkeypatch.setattr(feature_spaces, "_LOADED", {})
    assert feature_spaces.load_feature_space("digits").name != first.name
    path.write_bytes(path.read_bytes()[:-8] + b"\0" * 8)  # corrupt weights no longer match the fingerprint
    monkeypatch.setattr(feature_spaces, "_LOADED", {})
    assert feature_spaces.load_feature_space("digits").fingerprint == feature_spaces.fingerprint(
        feature_spaces.train_feature_net(changed)[0]
    )
    assert feature_spaces.cache_path("digits") == path  # every write stayed in the test's own cache


def test_diversity_is_zero_for_identical_images_and_one_for_the_real_data(digits):
    reals = torch.from_numpy(np.stack([digits[i][0].float().numpy().ravel() for i in range(len(digits))]))
    labels = digits.labels
    assert class_diversity(reals, labels, reals, labels, 10) == pytest.approx(dict.fromkeys(range(10), 1.0))
    same = reals[:1].repeat(50, 1)
    assert class_diversity(same, np.zeros(50, int), reals, labels, 10) == {0: 0.0}


def test_diversity_metric_on_a_collapsed_generator(tiny_space, digits):
    one_per_class = torch.stack([real_images(digits)[int(np.flatnonzero(digits.labels == k)[0])] for k in range(10)])
    collapsed = Replay(one_per_class, num_classes=10)  # sample i is image i mod 10, asked for class i mod 10
    result = compute_metric("div0.1k_digits", collapsed, digits)
    assert result["div0.1k_digits"] == 0.0 and result["div0.1k_digits_class3"] == 0.0
    assert compute_metric("cas0.1k_digits", Replay(one_per_class, 10), digits)["cas0.1k_digits"] >= 0.8


def test_names_refuse_unknown_feature_spaces_with_one_line():
    spec = parse_metric("pr_digits")
    assert (spec.kind, spec.space, spec.num_gen, spec.nhood) == ("pr", "digits", 2000, 3)
    for name in ("fid_cifar", "kid_full", "div_imagenet"):
        with pytest.raises(PolyinrError, match="no feature space") as err:
            parse_metric(name)
        assert "\n" not in str(err.value)
    result = CliRunner().invoke(main, ["metrics", "--network", "nowhere", "--metrics", "fid_cifar"])
    assert result.exit_code == 1 and result.output.count("\n") == 1 and "no feature space 'cifar'" in result.output


@pytest.mark.parametrize("name", ["cas_photos", "div_photos", "cas0.1k_photos", "cas_faces", "div_textures"])
def test_spaces_without_labels_refuse_class_metrics_with_one_line(name):
    with pytest.raises(PolyinrError, match="no labels") as err:
        parse_metric(name)
    assert "\n" not in str(err.value) and f"fid_{name.split('_')[1]}" in str(err.value)


def test_scaleinv_names_in_a_feature_space():
    for name, num_gen, scale, space in [
        ("scaleinv_fid_S4_digits", 2000, 4, "digits"),
        ("scaleinv_fid10k_S2_photos", 10000, 2, "photos"),
        ("scaleinv_box_fid0.5k_S8_shapes", 500, 8, "shapes"),
    ]:
        spec = parse_metric(name)
        assert (spec.num_gen, spec.scale, spec.space) == (num_gen, scale, space)
        assert spec.kind == ("scaleinv_box_fid" if "box" in name else "scaleinv_fid")
    for name, needle in [
        ("scaleinv_fid_S0_digits", "at least 1"),
        ("scaleinv_fid_S2_cifar", "no feature space"),
        ("scaleinv_fid_digits", "unknown metric"),
        ("scaleinv_S2_x", "unknown metric"),
    ]:
        with pytest.raises(PolyinrError, match=needle) as err:
            parse_metric(name)
        assert "\n" not in str(err.value)


def test_scaleinv_at_one_is_the_spaces_fid_and_wider_fields_differ(tiny_space):
    torch.manual_seed(0)
    G = create("poly-inr", "cpu", img_resolution=8).eval()
    fid = compute_metric("fid0.05k_digits", G, None)["fid0.05k_digits"]
    at = {
        s: compute_metric(f"scaleinv_fid0.05k_S{s}_digits", G, None)[f"scaleinv_fid0.05k_S{s}_digits"] for s in (1, 2)
    }
    assert at[1] == pytest.approx(fid, rel=1e-9, abs=1e-9)  # the same samples, the same frame
    assert np.isfinite(at[2]) and at[2] != pytest.approx(fid)  # a wider field, shrunk: other images


def test_scaleinv_in_a_feature_space_gives_a_frame_models_reason(tiny_space):
    from polyinr.models.generator import GridRefused

    G = create("stylegan3-t", "cpu").eval()
    with pytest.raises(GridRefused, match="stylegan3-t renders its native 32x32 frame") as err:
        compute_metric("scaleinv_fid0.01k_S2_digits", G, None)
    assert "\n" not in str(err.value)


def test_metrics_command_on_a_digits_checkpoint_without_data(tiny_space, tmp_path):
    torch.manual_seed(0)
    create("poly-inr", "cpu", num_classes=10, img_resolution=8).save(tmp_path / "g")
    names = "fid0.05k_digits,pr0.05k_digits,cas0.05k_digits"
    result = CliRunner().invoke(
        main, ["metrics", "--network", str(tmp_path / "g"), "--metrics", names, "--device", "cpu"]
    )
    assert result.exit_code == 0, result.output
    table = result.stdout.splitlines()
    header = next(i for i, line in enumerate(table) if line.split()[:2] == ["metric", "value"])
    rows = {line.split()[0]: float(line.split()[1]) for line in table[header + 1 :]}
    assert set(rows) == {"fid0.05k_digits", "pr0.05k_digits_precision", "pr0.05k_digits_recall", "cas0.05k_digits"}
    assert rows["fid0.05k_digits"] > 0 and "lenet-digits" in result.stdout


def test_training_with_metrics_logs_the_digits_space_figures(tiny_space, tmp_path):
    from polyinr.metrics import evaluate_snapshot
    from polyinr.training.loop import training_loop
    from polyinr.training.options import resolve_options

    names = ("div0.02k_digits", "fid0.02k_digits")
    options = resolve_options(
        "cpu",
        data="builtin:digits",
        cond=True,
        resolution=8,
        batch=8,
        kimg=0.016,
        tick_kimg=0.016,
        workers=0,
        device="cpu",
        outdir=str(tmp_path),
        model_overrides={"channels": 16},
        metrics=names,
    )
    run_dir = training_loop(options, evaluate=evaluate_snapshot)
    for name in names:
        line = json.loads((run_dir / f"metric-{name}.jsonl").read_text())
        assert line["results"][name] > 0 and line["detector"].startswith("lenet-digits")
    assert "metric fid0.02k_digits: fid0.02k_digits=" in (run_dir / "log.txt").read_text()


def test_a_patch_trained_generator_is_measured_at_its_patch_size(tiny_space):
    G = create("infinitygan", "cpu")  # 37² patches
    photos = open_dataset("builtin:photos", resolution=64)
    wide = compute_metric("fid0.02k_photos", G, photos)["fid0.02k_photos"]  # images larger than the patch
    at_patch = compute_metric("fid0.02k_photos", G, photos.with_resolution(37))["fid0.02k_photos"]
    assert wide == pytest.approx(at_patch, rel=1e-6)  # the same reals (resized to 37²), the same patches


# ---------------------------------------------------------------------------- the data's own space

# One epoch on at most 48 images at 8²: the data space's code path in about a second.
TINY_DATA = dataclasses.replace(feature_spaces.DATA_RECIPE, input_size=8, epochs=1, max_images=48)


@pytest.fixture
def tiny_data_space(monkeypatch):
    monkeypatch.setattr(feature_spaces, "DATA_RECIPE", TINY_DATA)
    monkeypatch.setattr(feature_spaces, "_LOADED", {})
    return TINY_DATA


def write_folder(folder, count: int = 64, size: int = 12, grey: bool = False, seed: int = 0):
    """``count`` PNG images ``size``²: a bright top half over noise (a layout a quarter turn changes)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        image = rng.integers(0, 128, (size, size, 1 if grey else 3), dtype=np.uint8)
        image[: size // 2] += 127
        Image.fromarray(image.repeat(3, axis=2) if grey else image).save(folder / f"{i:03d}.png")
    return folder


def test_data_space_names_parse_and_refuse_class_metrics_in_one_line():
    for name, kind, num_gen, scale in [
        ("fid_data", "fid", 2000, 1),
        ("fid0.5k_data", "fid", 500, 1),
        ("kid_data", "kid", 2000, 1),
        ("pr0.5k_data", "pr", 500, 1),
        ("scaleinv_fid_S2_data", "scaleinv_fid", 2000, 2),
    ]:
        spec = parse_metric(name)
        assert (spec.kind, spec.num_gen, spec.scale, spec.space, spec.needs_real_data) == (
            kind,
            num_gen,
            scale,
            "data",
            True,
        )
    for name in ("cas_data", "div0.1k_data"):
        with pytest.raises(PolyinrError, match="quarter turns") as err:
            parse_metric(name)
        assert "\n" not in str(err.value) and "fid_data" in str(err.value)
    with pytest.raises(PolyinrError, match="fitted to the measured data") as err:
        parse_metric("fid_nowhere")
    assert "fid_data" in str(err.value)
    help_text = CliRunner().invoke(main, ["metrics", "--help"]).output
    assert "fid_data" in help_text and "fitted to those images" in help_text


def test_a_data_space_metric_needs_data_said_in_one_line(tiny_data_space):
    G = create("poly-inr", "cpu", img_resolution=8).eval()
    with pytest.raises(PolyinrError, match="fitted to the real images: give a dataset") as err:
        compute_metric("fid0.01k_data", G, None)
    assert "\n" not in str(err.value)


def test_data_input_size_is_a_power_of_two_from_8_to_32():
    sizes = {r: feature_spaces.data_input_size(r) for r in (4, 8, 12, 16, 37, 48, 64, 1024)}
    assert sizes == {4: 8, 8: 8, 12: 8, 16: 16, 37: 32, 48: 32, 64: 32, 1024: 32}


def test_the_data_space_is_fitted_deterministically_cached_and_reused(
    tiny_data_space, tmp_path, monkeypatch, isolated_cache
):
    data = open_dataset(write_folder(tmp_path / "imgs"))
    seen = []
    first = feature_spaces.fit_data_space(data, on_progress=lambda *step: seen.append(step))
    assert first.recipe.input_size == 8 and first.recipe.channels == 3 and first.name.startswith("lenet-data-")
    assert seen and seen[-1][0] == feature_spaces.FIT_STAGE and seen[-1][1] == seen[-1][2] == 4 * 38  # 48 - 10 held out
    (path,) = (isolated_cache / "feature-spaces").iterdir()
    assert path.name.startswith("data-")
    again = feature_spaces.fit_data_space(data, use_cache=False)  # trained anew: the same weights
    assert again.fingerprint == first.fingerprint

    with monkeypatch.context() as patched:
        patched.setattr(feature_spaces, "_LOADED", {})
        patched.setattr(feature_spaces, "_fit", lambda *args: pytest.fail("retrained a good cache"))
        assert feature_spaces.fit_data_space(data).fingerprint == first.fingerprint
        # at another resolution of the same input size (a patch-trained model's patch): the same space, cached
        assert feature_spaces.fit_data_space(data.with_resolution(10)).fingerprint == first.fingerprint
    assert list((isolated_cache / "feature-spaces").iterdir()) == [path]

    grey = feature_spaces.fit_data_space(open_dataset(write_folder(tmp_path / "grey", grey=True)))
    assert grey.recipe.channels == 1 and grey.fingerprint != first.fingerprint  # other data: its own space
    assert len(list((isolated_cache / "feature-spaces").iterdir())) == 2


def test_a_corrupt_cached_data_space_is_retrained(tiny_data_space, tmp_path, monkeypatch, isolated_cache):
    data = open_dataset(write_folder(tmp_path / "imgs"))
    first = feature_spaces.fit_data_space(data)
    (path,) = (isolated_cache / "feature-spaces").iterdir()
    path.write_bytes(path.read_bytes()[:-8] + b"\0" * 8)  # corrupt weights no longer match the fingerprint
    monkeypatch.setattr(feature_spaces, "_LOADED", {})
    assert feature_spaces.fit_data_space(data).fingerprint == first.fingerprint  # retrained: the same weights
    path.write_bytes(b"not a safetensors file")
    monkeypatch.setattr(feature_spaces, "_LOADED", {})
    assert feature_spaces.fit_data_space(data).fingerprint == first.fingerprint
    monkeypatch.setattr(feature_spaces, "_LOADED", {})
    monkeypatch.setattr(feature_spaces, "_fit", lambda *args: pytest.fail("the rewritten cache was not reused"))
    assert feature_spaces.fit_data_space(data).fingerprint == first.fingerprint


def test_data_space_metrics_of_the_reals_against_themselves_and_noise(tiny_data_space, tmp_path):
    data = open_dataset(write_folder(tmp_path / "imgs"))
    reals = real_images(data)
    n = f"{len(reals) / 1000}k"
    same = compute_metric(f"fid{n}_data", Replay(reals), data)[f"fid{n}_data"]
    noise = torch.rand(reals.shape, generator=torch.Generator().manual_seed(0)) * 2 - 1
    far = compute_metric(f"fid{n}_data", Replay(noise), data)[f"fid{n}_data"]
    assert abs(same) < 1e-6 and far > 0.01 and far > 1e6 * abs(same)  # one epoch: a small space, noise far in it
    pr = compute_metric(f"pr{n}_data", Replay(reals), data)
    assert pr[f"pr{n}_data_precision"] == 1.0 and pr[f"pr{n}_data_recall"] == 1.0
    detector = metric_detector(f"fid{n}_data", dataset=data)
    assert detector.startswith("lenet-data (trained on imgs, 8² colour, fingerprint ") and "held-out" in detector


def test_metrics_command_measures_against_data_in_its_own_space(tiny_data_space, tmp_path):
    torch.manual_seed(0)
    create("poly-inr", "cpu", img_resolution=12).save(tmp_path / "g")
    folder = write_folder(tmp_path / "imgs")
    args = ["metrics", "--network", str(tmp_path / "g"), "--data", str(folder), "--metrics", "fid0.02k_data"]
    result = CliRunner().invoke(main, [*args, "--device", "cpu"])
    assert result.exit_code == 0, result.output
    row = next(line for line in result.stdout.splitlines() if line.startswith("fid0.02k_data"))
    assert float(row.split()[1]) > 0 and "lenet-data (trained on imgs" in row
    assert feature_spaces.FIT_STAGE in result.stderr  # the space's training shows a progress bar
