"""The tools commands end to end: video, mix, heatmap, invert, outpaint, and --latent everywhere."""

from __future__ import annotations

import av
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from polyinr.cli import main
from polyinr.image_io import save_image, to_uint8
from polyinr.sampling import load_latents, ws_for


def run(*args, ok: bool = True):
    result = CliRunner().invoke(main, [str(a) for a in args])
    if ok:
        assert result.exit_code == 0, result.output
    return result


def frame_count(path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


@pytest.fixture(scope="module")
def inverted(tmp_path_factory, tiny_G, tiny_ckpt):
    """An image made by the tiny model, inverted through the CLI: (output directory, CLI output)."""
    tmp = tmp_path_factory.mktemp("invert")
    save_image(to_uint8(tiny_G.synthesis(ws_for(tiny_G, seeds=[0])))[0], tmp / "real.png")
    result = run(
        "invert",
        "--network",
        tiny_ckpt,
        "--image",
        tmp / "real.png",
        "--steps",
        "30",
        "--out",
        tmp / "inv",
        "--perceptual",
        "laplacian",
        "--device",
        "cpu",
    )
    return tmp / "inv", result.output


def test_invert_reports_psnr_and_the_latent_works_everywhere(inverted, tiny_G, tiny_ckpt, tmp_path):
    out, output = inverted
    assert "PSNR" in output and "dB (perceptual distance: laplacian)" in output
    latent = out / "latent.safetensors"
    ws = load_latents(latent, tiny_G).ws
    expected = to_uint8(tiny_G.synthesis(ws))[0]
    run("generate", "--network", tiny_ckpt, "--latent", latent, "--latent", latent, "--outdir", tmp_path / "gen")
    assert sorted(p.name for p in (tmp_path / "gen").iterdir()) == ["latent0000.png", "latent0001.png"]
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "gen" / "latent0001.png")), expected)
    run("render", "--network", tiny_ckpt, "--latent", latent, "--size", "16", "--out", tmp_path / "r.png")
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "r.png")), expected)
    np.testing.assert_array_equal(np.asarray(Image.open(out / "reconstruction.png")), expected)
    run("heatmap", "--network", tiny_ckpt, "--latent", latent, "--out", tmp_path / "heat.png")
    assert Image.open(tmp_path / "heat.png").size[0] > 5 * 96
    # Two inverted images as the keys of a walk, and as the sources of a style mix.
    run(
        "video",
        "--network",
        tiny_ckpt,
        "--latent",
        latent,
        "--latent",
        latent,
        "--frames-per-step",
        "3",
        "--out",
        tmp_path / "walk.mp4",
    )
    assert frame_count(tmp_path / "walk.mp4") == 6
    run(
        "mix",
        "--network",
        tiny_ckpt,
        "--latent",
        latent,
        "--latent",
        latent,
        "--rows",
        "0",
        "--cols",
        "1",
        "--levels",
        "0-3",
        "--out",
        tmp_path / "mix.png",
    )
    mix = np.asarray(Image.open(tmp_path / "mix.png"))
    np.testing.assert_array_equal(mix[16:, 16:], expected)


def test_video_walk_and_flight(tiny_ckpt, tmp_path):
    result = run(
        "video",
        "--network",
        tiny_ckpt,
        "--seeds",
        "0-5",
        "--grid",
        "3x1",
        "--kind",
        "slerp",
        "--frames-per-step",
        "4",
        "--fps",
        "12",
        "--out",
        tmp_path / "walk.mp4",
    )
    assert "8 frames" in result.output and frame_count(tmp_path / "walk.mp4") == 8
    with av.open(str(tmp_path / "walk.mp4")) as container:
        stream = container.streams.video[0]
        assert (stream.height, stream.width) == (16, 48) and stream.average_rate == 12
    run(
        "video",
        "--network",
        tiny_ckpt,
        "--seeds",
        "3-4",
        "--space",
        "z",
        "--no-loop",
        "--frames-per-step",
        "2",
        "--size",
        "8x10",
        "--out",
        tmp_path / "z.gif",
    )
    with Image.open(tmp_path / "z.gif") as gif:
        assert gif.n_frames == 3 and gif.size == (10, 8)
    run(
        "video",
        "--network",
        tiny_ckpt,
        "--seeds",
        "1,2",
        "--grid",
        "2x1",
        "--pan",
        "0,1.5",
        "--zoom",
        "0.5",
        "--frames",
        "7",
        "--size",
        "12x12",
        "--out",
        tmp_path / "fly.mp4",
    )
    assert frame_count(tmp_path / "fly.mp4") == 7


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["video", "--seeds", "0-3", "--zoom", "2", "--kind", "slerp"], "--kind apply to latent walks"),
        (["video", "--seeds", "0-3", "--frames", "10"], "--frames sets the length"),
        (["video", "--seeds", "0-2", "--pan", "1,0"], "give 1 seeds or latents, not 3"),
        (["video", "--seeds", "0-2", "--grid", "2x1"], "multiple of 2"),
        (["video", "--seeds", "0-2", "--pan", "1"], "expected two numbers"),
        (["mix", "--rows", "0", "--cols", "1", "--levels", "3-1"], "empty"),
        (["mix", "--rows", "0", "--cols", "1", "--levels", "2-7"], "levels [4, 5, 6, 7] do not exist"),
        (["generate", "--seeds", "0", "--latent", "{tmp}/x.safetensors", "--outdir", "{tmp}"], "not both"),
        (["render", "--size", "8", "--out", "{tmp}/x.png"], "give seeds"),
        (
            ["render", "--seed", "0", "--latent", "{tmp}/missing.safetensors", "--size", "8", "--out", "{tmp}/x.png"],
            "not both",
        ),
        (["heatmap", "--latent", "{tmp}/missing.safetensors", "--out", "{tmp}/h.png"], "latent file not found"),
        (["invert", "--image", "{tmp}/missing.png", "--out", "{tmp}/o"], "image not found"),
        (["invert", "--image", "{tmp}/notes.png", "--out", "{tmp}/o"], "is not an image"),
        (["outpaint", "--image", "{tmp}/notes.png", "--window", "0,0,2,2", "--out", "{tmp}/o"], "is not an image"),
    ],
    ids=[
        "flight-with-walk-option",
        "walk-with-frames",
        "flight-cells",
        "walk-cells",
        "bad-pan",
        "empty-levels",
        "missing-levels",
        "seeds-and-latent",
        "no-source",
        "seed-and-latent",
        "missing-latent",
        "missing-image",
        "wrong-kind-image",
        "outpaint-wrong-kind",
    ],
)
def test_bad_input_gives_a_one_line_error(tiny_ckpt, tmp_path, args, message):
    (tmp_path / "notes.png").write_text("these are notes, not pixels")
    full = [args[0], "--network", str(tiny_ckpt), *(a.format(tmp=tmp_path) for a in args[1:])]
    if args[0] in ("video", "mix"):
        full += ["--out", str(tmp_path / ("v.mp4" if args[0] == "video" else "m.png"))]
    result = run(*full, ok=False)
    assert result.exit_code != 0
    assert message in result.output
    assert "Traceback" not in result.output
    error_lines = [line for line in result.output.splitlines() if line.startswith("Error")]
    assert len(error_lines) == 1
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


def test_heatmap_and_mix_for_a_conditional_model(cond_ckpt, tmp_path):
    result = run("heatmap", "--network", cond_ckpt, "--seed", "1", "--out", tmp_path / "h.png", ok=False)
    assert result.exit_code == 1 and "give a class" in result.output
    run(
        "heatmap", "--network", cond_ckpt, "--seed", "1", "--class", "2", "--size", "24x32", "--out", tmp_path / "h.png"
    )
    assert Image.open(tmp_path / "h.png").size == (5 * (128 + 4) + 4, 14 + 2 * (28 + 96 + 4))  # 4 levels, 4× panels
    run(
        "mix",
        "--network",
        cond_ckpt,
        "--class",
        "0",
        "--rows",
        "0-1",
        "--cols",
        "2-4",
        "--levels",
        "2",
        "--trunc",
        "0.7",
        "--out",
        tmp_path / "m.png",
    )
    assert Image.open(tmp_path / "m.png").size == (4 * 16, 3 * 16)


def test_outpaint_command(inverted, tiny_ckpt, tmp_path):
    real = inverted[0] / "target.png"
    result = run(
        "outpaint",
        "--network",
        tiny_ckpt,
        "--image",
        real,
        "--window",
        "-1,0,2,1",
        "--steps",
        "3",
        "--perceptual",
        "laplacian",
        "--out",
        tmp_path / "o",
    )
    assert "outpaint.png" in result.output
    assert Image.open(tmp_path / "o" / "outpaint.png").size == (16, 46)  # 3 frames tall at the image's spacing
