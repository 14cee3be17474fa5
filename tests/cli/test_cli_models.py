"""The model commands end to end on a tiny checkpoint: create, info, list, generate, render, and their errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from polyinr.checkpoint import CONFIG_NAME, load_generator
from polyinr.cli import main
from polyinr.grid import Grid
from polyinr.image_io import to_uint8
from polyinr.sampling import ws_for
from polyinr.tools.render import generate_images


def run(*args: str, ok: bool = True):
    result = CliRunner().invoke(main, [str(a) for a in args])
    if ok:
        assert result.exit_code == 0, result.output
    return result


def one_line_error(result, exit_code: int = 1) -> str:
    """The single ``Error: …`` line of a failed command (no traceback)."""
    assert result.exit_code == exit_code, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.startswith("Error")]
    assert len(lines) == 1, result.output
    return lines[0]


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("cli")
    out = {"uncond": root / "uncond", "cond": root / "cond"}
    result = run("create", "--preset", "cpu", "--resolution", "12", "--seed", "3", out["uncond"])
    assert "wrote" in result.output and (out["uncond"] / CONFIG_NAME).is_file()
    run("create", "--classes", "3", "--resolution", "8", out["cond"])
    return out


def read_png(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"))


def test_create_uses_the_preset_and_seed(ckpts, tmp_path):
    G = load_generator(ckpts["uncond"])
    assert (G.cfg.channels, G.img_resolution, G.num_classes) == (64, 12, 0)
    assert load_generator(ckpts["cond"]).num_classes == 3
    run("create", "--preset", "cpu", "--resolution", "12", "--seed", "3", tmp_path / "again")
    again = load_generator(tmp_path / "again").state_dict()
    assert all(np.array_equal(v.numpy(), again[k].numpy()) for k, v in G.state_dict().items())


def test_info_and_list(ckpts):
    out = run("info", ckpts["cond"]).output
    G = load_generator(ckpts["cond"])
    assert "model: poly-inr" in out and f"parameters: {G.parameter_count():,}" in out
    assert f"multiply-adds per pixel: {G.macs_per_pixel():,}" in out and "num_classes: 3" in out
    assert "poly-inr  presets: cpu, ffhq, imagenet" in run("list").output
    assert run("list", "nothing*").output == ""


def test_generate_one_file_per_seed(ckpts, tmp_path):
    run(
        "generate",
        "--network",
        ckpts["cond"],
        "--seeds",
        "0,2-3",
        "--class",
        "1",
        "--trunc",
        "0.7",
        "--outdir",
        tmp_path,
        "--batch",
        "2",
        "--device",
        "cpu",
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["seed0000.png", "seed0002.png", "seed0003.png"]
    G = load_generator(ckpts["cond"])
    expected = dict(generate_images(G, [0, 2, 3], class_idx=1, truncation_psi=0.7, batch_size=2))
    for seed, image in expected.items():
        assert np.array_equal(read_png(tmp_path / f"seed{seed:04d}.png"), image)


def test_generate_grid_and_resolution(ckpts, tmp_path):
    result = run(
        "generate",
        "--network",
        ckpts["uncond"],
        "--seeds",
        "0-2",
        "--grid",
        "2x2",
        "--resolution",
        "20",
        "--outdir",
        tmp_path / "out",
        "--device",
        "cpu",
    )
    assert "grid.png" in result.output
    image = read_png(tmp_path / "out" / "grid.png")
    assert image.shape == (40, 40, 3) and image[20:, 20:].max() == 0  # 3 images in a 2×2 grid
    G = load_generator(ckpts["uncond"])
    first = to_uint8(G.synthesis(ws_for(G, seeds=[0]), Grid.frame(20)))[0]
    assert np.abs(image[:20, :20].astype(int) - first).max() <= 1


def test_render_extrapolates_tile_by_tile(ckpts, tmp_path):
    out = tmp_path / "wide.png"
    result = run(
        "render",
        "--network",
        ckpts["uncond"],
        "--seed",
        "5",
        "--window",
        "-0.5,-1,1.5,2",
        "--size",
        "21x30",
        "--tile",
        "8",
        "--out",
        out,
        "--device",
        "cpu",
    )
    assert "21x30" in result.output
    G = load_generator(ckpts["uncond"])
    expected = to_uint8(G.synthesis(ws_for(G, seeds=[5]), Grid.window(-0.5, -1, 1.5, 2, 21, 30)))[0]
    assert np.array_equal(read_png(out), expected)


@pytest.mark.parametrize(
    "args, message, code",
    [
        (
            ["generate", "--network", "{cond}", "--seeds", "0", "--class", "5", "--outdir", "{tmp}"],
            "unknown class 5",
            1,
        ),
        (["generate", "--network", "{cond}", "--seeds", "0", "--outdir", "{tmp}"], "give a class", 1),
        (
            ["generate", "--network", "{uncond}", "--seeds", "0", "--class", "0", "--outdir", "{tmp}"],
            "unconditional",
            1,
        ),
        (["generate", "--network", "{uncond}", "--seeds", "7-3", "--outdir", "{tmp}"], "empty", 2),
        (["generate", "--network", "{tmp}/missing", "--seeds", "0", "--outdir", "{tmp}"], "not found", 1),
        (["generate", "--network", "{other}", "--seeds", "0", "--outdir", "{tmp}"], "unknown model 'stylegan9'", 1),
        (
            ["generate", "--network", "{uncond}", "--seeds", "0", "--resolution", "0", "--outdir", "{tmp}"],
            "must be positive",
            1,
        ),
        (
            [
                "render",
                "--network",
                "{uncond}",
                "--seed",
                "0",
                "--window",
                "1,0,0,1",
                "--size",
                "8",
                "--out",
                "{tmp}/x.png",
            ],
            "empty",
            2,
        ),
        (
            [
                "render",
                "--network",
                "{uncond}",
                "--seed",
                "0",
                "--window",
                "0,0,1",
                "--size",
                "8",
                "--out",
                "{tmp}/x.png",
            ],
            "four numbers",
            2,
        ),
        (
            ["render", "--network", "{uncond}", "--seed", "0", "--size", "8", "--out", "{tmp}/file/x.png"],
            "not writable",
            1,
        ),
        (["render", "--network", "{uncond}", "--seed", "0", "--size", "0x8", "--out", "{tmp}/x.png"], "size", 2),
        (["info", "{tmp}/missing"], "not found", 1),
        (["create", "--preset", "huge", "{tmp}/new"], "unknown preset 'huge'", 1),
        (["create", "--model", "nope", "{tmp}/new"], "unknown model 'nope'", 1),
    ],
    ids=[
        "unknown-class",
        "missing-class",
        "class-on-unconditional",
        "seed-range",
        "missing-ckpt",
        "other-model",
        "bad-resolution",
        "empty-window",
        "short-window",
        "unwritable-out",
        "bad-size",
        "info-missing",
        "unknown-preset",
        "unknown-model",
    ],
)
def test_errors_are_one_line(ckpts, tmp_path, args, message, code):
    other = tmp_path / "other"
    other.mkdir()
    config = json.loads((ckpts["uncond"] / CONFIG_NAME).read_text())
    (other / CONFIG_NAME).write_text(json.dumps({**config, "model": "stylegan9"}))
    (tmp_path / "file").write_text("not a directory")
    names = {"cond": ckpts["cond"], "uncond": ckpts["uncond"], "tmp": tmp_path, "other": other}
    result = CliRunner().invoke(main, [a.format(**names) for a in args])
    line = one_line_error(result, code)
    assert message in line
    assert not (tmp_path / "x.png").exists()


def test_generate_replaces_images_of_the_same_names_only_with_force(ckpts, tmp_path):
    out = tmp_path / "gen"
    run("generate", "--network", ckpts["uncond"], "--seeds", "0-1", "--outdir", out)
    (out / "seed0001.png").write_bytes(b"kept")
    (out / "notes.txt").write_text("mine")
    line = one_line_error(run("generate", "--network", ckpts["uncond"], "--seeds", "1-2", "--outdir", out, ok=False))
    assert "already holds seed0001.png; add --force" in line and not (out / "seed0002.png").exists()
    run("generate", "--network", ckpts["uncond"], "--seeds", "1-2", "--outdir", out, "--force")
    assert (out / "seed0001.png").read_bytes() != b"kept" and (out / "seed0002.png").is_file()
    assert (out / "notes.txt").read_text() == "mine"  # nothing else in the folder is touched
    (out / "grid.png").write_bytes(b"kept")
    grid = run("generate", "--network", ckpts["uncond"], "--seeds", "0", "--grid", "1x1", "--outdir", out, ok=False)
    assert "already holds grid.png" in one_line_error(grid)
