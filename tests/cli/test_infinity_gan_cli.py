"""InfinityGAN from the command line: lattice renders of any size, canvas latent files, one-line errors."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from polyinr.cli import main
from polyinr.models.registry import create
from tiny_infinity_gan import TINY_INFINITY_GAN


def run(*args, ok: bool = True):
    result = CliRunner().invoke(main, [str(a) for a in args])
    if ok:
        assert result.exit_code == 0, result.output
    return result


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    path = tmp_path_factory.mktemp("infinity") / "G"
    create("infinitygan", **TINY_INFINITY_GAN).save(path)
    return path


def image(path) -> np.ndarray:
    return np.asarray(Image.open(path)).astype(int)


def test_render_any_size_on_the_lattice_and_share_its_canvas(ckpt, tmp_path):
    run(
        "render",
        "--network",
        ckpt,
        "--seed",
        4,
        "--size",
        "40x70",
        "--tile",
        16,
        "--save-latent",
        tmp_path / "c.safetensors",
        "--out",
        tmp_path / "r.png",
    )
    rendered = image(tmp_path / "r.png")
    assert rendered.shape == (40, 70, 3)
    run("generate", "--network", ckpt, "--latent", tmp_path / "c.safetensors", "--outdir", tmp_path / "gen")
    whole = image(tmp_path / "gen" / "latent0000.png")
    assert whole.shape[0] >= 40 and whole.shape[1] >= 70
    assert np.abs(whole[:40, :70] - rendered).max() <= 1  # the same canvas, rounded once
    R = 13  # the tiny model's patch: pixel i of the lattice sits at i / 12
    run(
        "render",
        "--network",
        ckpt,
        "--latent",
        tmp_path / "c.safetensors",
        "--window",
        "1,0.5,2,3",
        "--out",
        tmp_path / "part.png",
    )
    part = image(tmp_path / "part.png")
    assert part.shape == (13, 31, 3)
    assert np.abs(part - whole[R - 1 : 2 * R - 1, 6:37]).max() <= 1


def test_canvas_errors_are_one_line(ckpt, tmp_path):
    result = run(
        "render",
        "--network",
        ckpt,
        "--seed",
        1,
        "--window",
        "0,0,1,1",
        "--size",
        "20x20",
        "--out",
        tmp_path / "x.png",
        ok=False,
    )
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "infinitygan renders any window of its pixel lattice" in result.output
    run(
        "render",
        "--network",
        ckpt,
        "--seed",
        1,
        "--size",
        "20x20",
        "--save-latent",
        tmp_path / "c.safetensors",
        "--out",
        tmp_path / "y.png",
    )
    result = run(
        "render",
        "--network",
        ckpt,
        "--latent",
        tmp_path / "c.safetensors",
        "--window",
        "0,0,9,9",
        "--out",
        tmp_path / "z.png",
        ok=False,
    )
    assert "beyond the canvas" in result.output and "Traceback" not in result.output


def test_fuse_places_styles_and_refuses_bad_specs(ckpt, tmp_path):
    run(
        "fuse",
        "--network",
        ckpt,
        "--styles",
        "1@5,0",
        "--styles",
        "2@5,60",
        "--size",
        "16x60",
        "--blur",
        "9",
        "--out",
        tmp_path / "f.png",
    )
    assert image(tmp_path / "f.png").shape == (16, 60, 3)
    result = run("fuse", "--network", ckpt, "--styles", "1@x", "--size", "16x16", "--out", tmp_path / "g.png", ok=False)
    assert "SEED@ROW,COL" in result.output and "Traceback" not in result.output


@pytest.mark.slow
def test_outpaint_and_inbetween_commands_write_pictures(ckpt, tmp_path):
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (30, 40, 3), dtype=np.uint8)).save(tmp_path / "a.png")
    run(
        "outpaint-canvas",
        "--network",
        ckpt,
        "--image",
        tmp_path / "a.png",
        "--height",
        15,
        "--extend",
        "0,4,0,20",
        "--steps",
        2,
        "--perceptual",
        "laplacian",
        "--out",
        tmp_path / "o",
    )
    assert image(tmp_path / "o" / "outpainted.png").shape == (15, 4 + 20 + 20, 3)
    assert (tmp_path / "o" / "canvas.safetensors").is_file()
    run(
        "inbetween",
        "--network",
        ckpt,
        "--left",
        tmp_path / "a.png",
        "--right",
        tmp_path / "a.png",
        "--height",
        15,
        "--gap",
        10,
        "--steps",
        2,
        "--perceptual",
        "laplacian",
        "--out",
        tmp_path / "i",
    )
    assert image(tmp_path / "i" / "inbetween.png").shape == (15, 20 + 10 + 20, 3)
    result = run(
        "outpaint-canvas",
        "--network",
        ckpt,
        "--image",
        tmp_path / "missing.png",
        "--steps",
        1,
        "--out",
        tmp_path / "x",
        ok=False,
    )
    assert "Traceback" not in result.output and result.exit_code == 1


def test_video_pans_over_the_canvas(ckpt, tmp_path):
    run("video", "--network", ckpt, "--seeds", 2, "--pan", "0,3", "--frames", 4, "--out", tmp_path / "pan.gif")
    assert (tmp_path / "pan.gif").stat().st_size > 0
    result = run(
        "video",
        "--network",
        ckpt,
        "--seeds",
        2,
        "--zoom",
        "0.5",
        "--frames",
        4,
        "--out",
        tmp_path / "zoom.gif",
        ok=False,
    )
    assert "cannot zoom" in result.output and "Traceback" not in result.output
