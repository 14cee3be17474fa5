"""Inversion and outpainting (polyinr.tools.invert)."""

from __future__ import annotations

import itertools
import json

import av
import numpy as np
import pytest
import torch
from PIL import Image

from polyinr.checkpoint import CheckpointError
from polyinr.errors import PolyinrError
from polyinr.image_io import OutputExists, save_image, to_uint8
from polyinr.sampling import load_latents, ws_for
from polyinr.tools.invert import (
    ImageFileError,
    invert_image,
    laplacian_l1,
    laplacian_pyramid,
    load_image,
    lpips_available,
    outpaint,
    perceptual_distance,
    project,
    projector_lr,
    psnr,
)


def test_projector_learning_rate_schedule():
    lrs = [projector_lr(i, 1000) for i in range(1000)]
    assert lrs[0] == 0.0
    assert lrs[25] == pytest.approx(0.05)  # halfway up the 5 % ramp
    assert all(lr == pytest.approx(0.1) for lr in lrs[50:750])
    assert lrs[875] == pytest.approx(0.05)  # halfway down the cosine over the last 25 %
    assert all(a >= b for a, b in itertools.pairwise(lrs[750:])) and lrs[-1] < 1e-5


def test_inverting_a_generated_image_reaches_high_psnr(tiny_G):
    ws = ws_for(tiny_G, seeds=[0])
    target = tiny_G.synthesis(ws).detach()
    states = list(project(tiny_G, target, space="w+", num_steps=200))
    assert len(states) == 201 and [s.step for s in states[:3]] == [0, 1, 2]
    assert states[0].psnr < 20  # it starts from w_avg, far from the target
    final = states[-1]
    assert final.psnr > 30
    assert final.ws.shape == (1, tiny_G.num_ws, tiny_G.w_dim)
    assert psnr(tiny_G.synthesis(final.ws), target) == pytest.approx(final.psnr, abs=1e-3)
    assert not any(p.grad is not None for p in tiny_G.parameters())  # only the latent was optimised


def test_w_space_shares_one_w_and_starts_at_the_class_average(cond_G):
    target = cond_G.synthesis(ws_for(cond_G, seeds=[4], classes=2)).detach()
    states = project(cond_G, target, class_idx=2, space="w", num_steps=3)
    first = next(states)
    torch.testing.assert_close(first.ws[0], cond_G.mapping.w_avg[2].expand(cond_G.num_ws, -1))
    last = list(states)[-1]
    assert torch.equal(last.ws[0, 0], last.ws[0, -1])  # one w for every level
    with pytest.raises(PolyinrError, match="give a class"):
        project(cond_G, target, space="w", num_steps=3)
    with pytest.raises(PolyinrError, match="unknown latent space"):
        project(cond_G, target, class_idx=0, space="z")
    with pytest.raises(PolyinrError, match="at least 1 step"):
        project(cond_G, target, class_idx=0, num_steps=0)


def test_laplacian_distance():
    torch.manual_seed(0)
    a = torch.rand(2, 3, 16, 16) * 2 - 1
    bands = laplacian_pyramid(a)
    assert [b.shape[-1] for b in bands] == [16, 8, 4, 2]
    assert torch.allclose(laplacian_l1(a, a), torch.zeros(2))
    shifted = a + 0.1  # a colour change only lives in the low-pass residual
    torch.testing.assert_close(laplacian_l1(a, shifted), torch.full((2,), 0.1 / len(bands)))
    noisy = a + 0.2 * torch.randn_like(a)
    assert (laplacian_l1(a, noisy) > laplacian_l1(a, shifted)).all()


def test_perceptual_choice():
    name, distance = perceptual_distance("laplacian")
    assert name == "laplacian" and distance is laplacian_l1
    assert perceptual_distance("auto")[0] == ("lpips" if lpips_available() else "laplacian")
    with pytest.raises(PolyinrError, match="unknown perceptual"):
        perceptual_distance("vgg")
    if not lpips_available():
        with pytest.raises(PolyinrError, match="LPIPS needs"):
            perceptual_distance("lpips")


def test_load_image_crops_resizes_and_checks(tmp_path):
    pixels = np.zeros((20, 40, 3), dtype=np.uint8)
    pixels[:, 10:30] = 255  # the centre square is white, the sides black
    Image.fromarray(pixels).convert("RGBA").save(tmp_path / "wide.png")
    image = load_image(tmp_path / "wide.png", (8, 8))
    assert image.shape == (1, 3, 8, 8) and image.min() >= -1 and image.max() <= 1
    assert image.mean() > 0.95  # the centre crop kept only the white square
    Image.fromarray(pixels[:, :, 0]).save(tmp_path / "grey.png")
    assert load_image(tmp_path / "grey.png", (4, 6)).shape == (1, 3, 4, 6)
    with pytest.raises(ImageFileError, match="image not found"):
        load_image(tmp_path / "missing.png", (8, 8))
    (tmp_path / "text.png").write_text("not an image")
    with pytest.raises(ImageFileError, match="is not an image"):
        load_image(tmp_path / "text.png", (8, 8))
    with pytest.raises(ImageFileError, match="image not found"):
        load_image(tmp_path, (8, 8))  # a directory


def test_invert_image_writes_everything(tmp_path, tiny_G):
    real = tmp_path / "real.png"
    save_image(to_uint8(tiny_G.synthesis(ws_for(tiny_G, seeds=[2])))[0], real)
    steps = []
    result = invert_image(
        tiny_G, real, tmp_path / "out", num_steps=20, perceptual="laplacian", on_step=lambda s: steps.append(s.step)
    )
    assert steps == list(range(21))
    assert {p.name for p in (tmp_path / "out").iterdir()} == {
        "latent.safetensors",
        "target.png",
        "reconstruction.png",
        "progress.mp4",
        "inversion.json",
    }
    summary = json.loads(result.files["summary"].read_text())
    assert summary["perceptual"] == "laplacian" and summary["psnr_db"] == pytest.approx(result.psnr)
    torch.testing.assert_close(load_latents(result.files["latent"], tiny_G).ws, result.ws, rtol=0, atol=0)
    reconstruction = np.asarray(Image.open(result.files["reconstruction"]))
    np.testing.assert_array_equal(reconstruction, to_uint8(tiny_G.synthesis(result.ws))[0])
    with av.open(str(result.files["video"])) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    R = tiny_G.img_resolution
    assert len(frames) == 21 and frames[0].shape == (R, 2 * R, 3)  # target | reconstruction, every step


def test_outpaint_continues_the_reconstruction(tmp_path, tiny_G):
    real = tmp_path / "real.png"
    save_image(to_uint8(tiny_G.synthesis(ws_for(tiny_G, seeds=[1])))[0], real)
    R = tiny_G.img_resolution
    pad = 5 / (R - 1)  # five pixels of the image's own spacing on every side
    result = outpaint(
        tiny_G, real, tmp_path / "out", (-pad, -pad, 1 + pad, 1 + pad), num_steps=5, perceptual="laplacian"
    )
    canvas = np.asarray(Image.open(result.files["outpaint"]))
    assert canvas.shape == (R + 10, R + 10, 3)
    reconstruction = np.asarray(Image.open(result.files["reconstruction"])).astype(int)
    assert np.abs(canvas[5 : 5 + R, 5 : 5 + R].astype(int) - reconstruction).max() <= 1  # same pixels
    assert canvas[:5].std() > 0  # the border is painted, not padding


def test_output_targets_are_checked_before_any_work(tmp_path, tiny_G, monkeypatch):
    real = tmp_path / "real.png"
    save_image(to_uint8(tiny_G.synthesis(ws_for(tiny_G, seeds=[2])))[0], real)
    out = tmp_path / "out"
    (out / "tuned").mkdir(parents=True)
    (out / "tuned" / "notes.txt").write_text("mine")
    with monkeypatch.context() as patch:
        patch.setattr("polyinr.tools.invert.project", lambda *a, **k: pytest.fail("the inversion ran"))
        for overwrite in (False, True):  # a folder that is not a checkpoint is never replaced
            with pytest.raises(CheckpointError, match="tuned is not empty and is not a polyinr checkpoint"):
                invert_image(tiny_G, real, out, num_steps=2, perceptual="laplacian", pti_steps=1, overwrite=overwrite)
        (out / "latent.safetensors").write_bytes(b"earlier")
        with pytest.raises(OutputExists, match=r"already holds latent\.safetensors"):
            invert_image(tiny_G, real, out, num_steps=2, perceptual="laplacian")
    assert {p.name for p in out.iterdir()} == {"tuned", "latent.safetensors"}
    result = invert_image(tiny_G, real, out, num_steps=2, perceptual="laplacian", overwrite=True)
    assert load_latents(result.files["latent"], tiny_G).ws.shape == result.ws.shape  # replaced
    assert (out / "tuned" / "notes.txt").read_text() == "mine"
