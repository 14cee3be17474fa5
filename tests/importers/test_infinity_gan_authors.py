"""The InfinityGAN authors' generator (``infinitygan_reference``, their code as it runs on the CPU) against ours.

A checkpoint is written as their ``train.py`` writes it (``torch.save`` of state dicts, zip format), converted by
``polyinr convert --from infinitygan``, and the converted generator renders, from a canvas latent file holding
the same latents, coordinates and noise, their single patch, their seamless patch-by-patch canvas (and its PNG)
and their spatial style fusion; our training coordinates are theirs for the same random draws.
"""

from __future__ import annotations

import infinitygan_reference as ref
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image
from safetensors.torch import save_file

import polyinr
from polyinr.cli import main as cli
from polyinr.models.infinity_gan.canvas import TensorCanvas, training_coords
from polyinr.models.infinity_gan.patches import StyleFusion
from polyinr.tools.canvas import canvas_grid, load_canvas_latents

pytestmark = pytest.mark.usefixtures("one_thread")

TOLERANCE = 1e-4  # on pixels in [-1, 1]: far inside the 1/255, float rounding only (measured ≤ 8e-6)
# The paper's layers (4 SS layers of 7×7, 11 texture-input cells, 11→19→17→31→29→55→53→103→101) with few channels.
SMALL = dict(global_latent_dim=16, local_latent_dim=8, ts_channels=(16, 16, 16, 8))


def trained_looking(G: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Non-default biases and noise strengths (zero at their initialisation), pixels mostly within [-1, 1]."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in G.named_parameters():
            if name.endswith("noise.weight"):
                p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
            elif name.endswith("bias"):
                p.add_(torch.randn(p.shape, generator=gen) * 0.2)
            elif name.startswith("texture_synthesizer.to_rgbs") and name.endswith("conv.weight"):
                p.mul_(0.1)
    return G.eval().requires_grad_(False)


def their_checkpoint(path, G: torch.nn.Module) -> None:
    """``train.py``'s ``torch.save`` at ``save_tick`` / a new best FID (``best_fid`` is numpy's float there)."""
    g = {k: v + 0.01 for k, v in G.state_dict().items()}  # the non-EMA generator: other weights
    adam = {
        "state": {0: {"step": 3000, "exp_avg": torch.zeros(3), "exp_avg_sq": torch.zeros(3)}},
        "param_groups": [{"lr": 0.002, "betas": (0, 0.99), "eps": 1e-8, "weight_decay": 0, "params": [0]}],
    }
    torch.save(
        {
            "iter": 3000,
            "best_fid": np.float64(31.4),
            "g": g,
            "d": {},
            "g_ema": G.state_dict(),
            "g_optim": adam,
            "d_optim": adam,
            "mean_path_lengths": [torch.tensor(0.42)],
        },
        path,
    )


def convert(tmp_path, G: torch.nn.Module, *extra: str):
    ckpt = tmp_path / "inter_00003000.pth.tar"
    their_checkpoint(ckpt, G)
    result = CliRunner().invoke(cli, ["convert", "--from", "infinitygan", *extra, str(ckpt), str(tmp_path / "G")])
    assert result.exit_code == 0, result.output
    return polyinr.load(tmp_path / "G")


@pytest.fixture(scope="module")
def theirs():
    torch.manual_seed(0)
    return trained_looking(ref.InfinityGanGenerator(ref.reference_config(**SMALL)), seed=1)


@pytest.fixture(scope="module")
def ours(theirs, tmp_path_factory):
    return convert(tmp_path_factory.mktemp("ckpt"), theirs)


def latent_file(path, global_latent, local_latent, noises, coords=None, inject_index=None):
    """A canvas latent file (the README's format), written with safetensors alone as a user would."""
    tensors = {"global_latent": global_latent, "local_latent": local_latent}
    tensors.update({f"noise.{k}": n for k, n in enumerate(noises)})
    if coords is not None:
        tensors["coords"] = coords
    if inject_index is not None:
        tensors["inject_index"] = torch.tensor(inject_index, dtype=torch.int64)
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path))
    return path


@torch.no_grad()
def render(G, path) -> torch.Tensor:
    latents = load_canvas_latents(path, G)
    return G.render_canvas(latents.ws(G), canvas_grid(G, latents), latents.canvas())


def test_the_stand_in_has_their_checkpoint_keys(theirs):
    keys = set(theirs.state_dict())
    ss, ts = "structure_synthesizer.implicit_model.conv_stack", "texture_synthesizer"
    assert f"{ss}.3.conv.conv.weight" in keys and f"{ss}.3.conv.activate.bias" in keys
    assert {f"{ts}.mapping.{i}.weight" for i in range(1, 9)} <= keys and f"{ts}.mapping.0.weight" not in keys
    assert f"{ts}.convs.6.conv.blur.kernel" in keys and f"{ts}.convs.7.conv.blur.kernel" not in keys
    assert {f"{ts}.to_rgbs.3.upsample.kernel", f"{ts}.const_z.input", f"{ts}.noises.noise_7"} <= keys
    assert theirs.state_dict()[f"{ss}.0.conv.conv.weight"].shape == (1, 8, 11, 7, 7)
    assert theirs.state_dict()[f"{ts}.to_rgbs.0.bias"].shape == (1, 3, 1, 1)


@pytest.mark.parametrize("inject_index", [None, 0, 4])
def test_their_single_patch(theirs, ours, tmp_path, inject_index):
    """``g_ema(global_latent, local_latent, noises)`` on 35² latent cells with the coordinates it makes itself."""
    torch.manual_seed(2)
    g = torch.randn(1, 2, 16)  # two slots: mixed from inject_index on, slot 0 everywhere without it
    local = torch.randn(1, 8, 35, 35)
    noises = [torch.randn(1, 1, s, s) for s in (19, 17, 31, 29, 55, 53, 103, 101)]
    with torch.no_grad():
        expected = theirs(g, local, noises=noises, inject_index=inject_index)
    got = render(ours, latent_file(tmp_path / "patch.safetensors", g, local, noises, inject_index=inject_index))
    assert got.shape == expected.shape == (1, 3, 101, 101)
    assert expected.std() > 0.2  # a picture, not a near-constant
    assert (got - expected).abs().max() < TOLERANCE


def test_their_seamless_canvas(theirs, ours, tmp_path):
    """``InfiniteGenerationManager`` for a 101×197 target: a 3×4 grid of 101² patches at a 96-pixel stride on a
    293×389 meta canvas (47×53 latent cells), their noise slices, patches written over the overlaps; our file
    without coordinates (ours default to their formula over the whole canvas)."""
    torch.manual_seed(3)
    manager = ref.InfiniteGeneration(theirs, 101, 197)
    v = manager.create_vars()
    assert (manager.num_steps_h, manager.num_steps_w) == (3, 4) and v.local_latent.shape[2:] == (47, 53)
    expected = manager.generate(v)
    got = render(ours, latent_file(tmp_path / "canvas.safetensors", v.global_latent, v.local_latent, v.noises))
    assert got.shape == expected.shape == (1, 3, 293, 389)
    assert (got - expected).abs().max() < TOLERANCE


def test_their_parallel_batching_and_ours_agree(theirs, ours, tmp_path):
    """Their parallel batching (4 patches a call, 3×3 patches) and our batched patches (3 a call), their
    coordinates in the file."""
    torch.manual_seed(4)
    manager = ref.InfiniteGeneration(theirs, 101, 101, parallel_batch_size=4)
    v = manager.create_vars()
    expected = manager.generate(v)
    path = latent_file(tmp_path / "c.safetensors", v.global_latent, v.local_latent, v.noises, coords=v.meta_coords)
    latents = load_canvas_latents(path, ours)
    with torch.no_grad():
        canvas = TensorCanvas(ours.cfg, latents.local_latent, latents.coords, latents.noises)
        got = ours.synthesis.render_canvas(latents.ws(ours), canvas, patch_batch=3)
    assert got.shape == expected.shape == (1, 3, 293, 293)
    assert (got - expected).abs().max() < TOLERANCE


def test_their_197_pixel_model(tmp_path):
    """Their five-block table (``g_output_res == 197``: ToRGB styles 3, 5, 7, 9, 10), converted and compared."""
    torch.manual_seed(5)
    theirs = trained_looking(ref.InfinityGanGenerator(ref.reference_config(**{**SMALL, "ts_channels": (8,) * 5})), 6)
    ours = convert(tmp_path, theirs)
    g, local = torch.randn(1, 2, 16), torch.randn(1, 8, 35, 35)
    noises = [torch.randn(1, 1, s, s) for s in (19, 17, 31, 29, 55, 53, 103, 101, 199, 197)]
    with torch.no_grad():
        expected = theirs(g, local, noises=noises, inject_index=9)
    got = render(ours, latent_file(tmp_path / "patch.safetensors", g, local, noises, inject_index=9))
    assert got.shape == expected.shape == (1, 3, 197, 197)
    assert (got - expected).abs().max() < TOLERANCE


@pytest.mark.parametrize(
    "settings, x_st, y_st",
    [
        ({}, [0, 9, 4, 7, 3], [0, 139, 105, 106, 120]),  # the paper's: 140 columns, wraps from 106 on
        (
            {"coord_vert_sample_size": 6, "coord_hori_occupy_ratio": 0.5, "coord_vert_cut_pt": 2},
            [0, 5, 4, 2, 3],
            [0, 69, 35, 36, 50],
        ),  # 70 columns, wraps from 36 on
    ],
    ids=["paper", "other"],
)
def test_their_training_coordinates(settings, x_st, y_st):
    """``CoordHandler`` in training, for the same start points and jitter draws: rows ``x_st`` of their constant
    grid, columns wrapping around it (a patch that wraps repeats one angle), each channel jittered on its own."""
    ours_settings = {"coord_vert_sample_size": 10, "coord_hori_occupy_ratio": 0.25, "coord_vert_cut": 3.0}
    for theirs_key, ours_key in (
        ("coord_vert_sample_size",) * 2,
        ("coord_hori_occupy_ratio",) * 2,
        ("coord_vert_cut_pt", "coord_vert_cut"),
    ):
        ours_settings[ours_key] = settings.get(theirs_key, ours_settings[ours_key])
    cfg = polyinr.create("infinitygan", z_dim=16, w_dim=16, local_latent_dim=8, **ours_settings).cfg
    handler = ref.CoordHandler(ref.reference_config(**settings))
    x_st, y_st = np.array(x_st), np.array(y_st)
    rand = torch.rand(3, 5)
    expected = handler.sample_training_coords(x_st, y_st, rand)
    got = training_coords(cfg, torch.from_numpy(x_st), torch.from_numpy(y_st), rand.T.double() - 0.5)
    assert got.shape == expected.shape == (5, 3, 35, 35)
    assert (got - expected).abs().max() < 1e-5
    assert torch.equal(got[3, 1:, :, 33], got[3, 1:, :, 34])  # their grid's last and first columns: one angle
    assert (got[:, 1] ** 2 + got[:, 2] ** 2 - 1).abs().max() > 1e-3  # cos and sin of two jittered angles


def test_generate_writes_their_picture(theirs, ours, tmp_path):
    """``polyinr generate --latent FILE`` against their saved PNG (``save_meta_imgs``: the meta canvas centre-cropped
    to the target, ``plt.imsave`` of ``(clamp(x) + 1) / 2``, which floors ``· 255``; ours rounds ``x·127.5 + 128``):
    at most one level apart."""
    torch.manual_seed(7)
    manager = ref.InfiniteGeneration(theirs, 150, 101)
    v = manager.create_vars()
    meta = manager.generate(v)
    top, left = (manager.meta_height - 150) // 2, (manager.meta_width - 101) // 2
    crop = meta[0, :, top : top + 150, left : left + 101].clamp(-1, 1).permute(1, 2, 0)
    their_png = ((crop + 1) / 2 * 255).numpy().astype(np.uint8)
    latent_file(tmp_path / "canvas.safetensors", v.global_latent, v.local_latent, v.noises)
    ours.save(tmp_path / "G")
    args = ["--network", str(tmp_path / "G"), "--latent", str(tmp_path / "canvas.safetensors")]
    result = CliRunner().invoke(cli, ["generate", *args, "--outdir", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    our_png = np.asarray(Image.open(tmp_path / "out" / "latent0000.png"))
    assert our_png.shape == (manager.meta_height, manager.meta_width, 3)
    diff = np.abs(our_png[top : top + 150, left : left + 101].astype(int) - their_png)
    assert diff.max() <= 1 and (diff == 0).mean() > 0.2


def test_their_maps_model_is_refused_in_one_line(theirs, tmp_path):
    """``InfinityGAN_maps.yaml`` has ``coord_num_dir: 4`` (periodic both ways): 4 coordinate channels, refused."""
    from polyinr.importers import ImporterError
    from polyinr.importers.infinity_gan import convert as convert_file

    state = dict(theirs.state_dict())
    for i in range(4):
        key = f"structure_synthesizer.implicit_model.conv_stack.{i}.conv.conv"
        state[f"{key}.weight"] = torch.randn(1, 8, 12, 7, 7)
        state[f"{key}.modulation.weight"], state[f"{key}.modulation.bias"] = torch.randn(12, 16), torch.ones(12)
    torch.save({"iter": 0, "g_ema": state}, tmp_path / "maps.pth.tar")
    with pytest.raises(ImporterError, match="8 latents and 4 coordinates") as e:
        convert_file(tmp_path / "maps.pth.tar")
    assert "\n" not in str(e.value)


def test_their_spatial_style_fusion(theirs, ours):
    """``FusedGenerationManager`` (two style centres at fractions of a 101×384 target, a 31-pixel box blur) against
    our ``StyleFusion`` at the same lattice pixels: their per-pixel modulation (demodulation resized or cropped),
    nearest-centre map blurred and calibrated back to every layer, raw global latents fused in the structure
    synthesizer, mapped styles in the texture synthesizer. The centres share a row and lie an odd number of
    columns apart, so their integer distances and tie-breaking match ours, and the map is constant along the
    canvas edges, where they replicate it.

    Their ``create_vars`` takes each centre's styles from ``get_style`` on the ``[B, 2, Dg]`` global latent: the
    pixel norm then normalises across the two (equal) slots, ``x / |x|``, and on the CPU the fused lrelu cannot
    broadcast its bias (on CUDA their kernel indexes it by row). That is their bug, not reproduced: both sides
    take ``mapping(z)``, the styles their infinite generation uses."""
    torch.manual_seed(8)
    manager = ref.FusedGeneration(theirs, 101, 384, [(0.5, 0.25), (0.5, 99 / 128)], blur_kernel=31)
    assert manager.meta_style_center_indices == [[146.5, 194.0], [146.5, 395.0]]
    z = [torch.randn(1, 16) for _ in range(2)]
    with torch.no_grad():
        styles = [theirs.texture_synthesizer.mapping(zi) for zi in z]
    v = manager.create_fused_vars(styles, [torch.stack([zi, zi], 1) for zi in z])
    expected = manager.generate(v)
    ws = torch.cat([ours.mapping(zi) for zi in z])  # [2, num_ws, w_dim]
    fusion = StyleFusion(ws, [tuple(c) for c in manager.meta_style_center_indices], blur=31)
    canvas = TensorCanvas(ours.cfg, v.local_latent, None, v.noises)
    grid = polyinr.Grid.window(0.0, 0.0, 292 / 100, 580 / 100, 293, 581)  # the whole 293×581 meta canvas
    with torch.no_grad():
        got = ours.synthesis(ws[:1], grid, canvas=canvas, fusion=fusion)
        plain = [ours.synthesis(ws[i : i + 1], grid, canvas=canvas) for i in range(2)]
    assert got.shape == expected.shape == (1, 3, 293, 581)
    assert (got - expected).abs().max() < TOLERANCE
    assert torch.allclose(got[..., :40], plain[0][..., :40], atol=1e-5)  # far from the border: one style
    assert torch.allclose(got[..., -40:], plain[1][..., -40:], atol=1e-5)
    assert (got - plain[0]).abs().max() > 0.1 and (got - plain[1]).abs().max() > 0.1


def test_their_coordinate_settings_from_their_yaml(tmp_path):
    """Other ``coord_*`` settings in their model YAML (read by ``--config``) change their coordinates; ours follow."""
    coords = dict(coord_vert_sample_size=6, coord_hori_occupy_ratio=0.5, coord_vert_cut_pt=2)
    torch.manual_seed(9)
    theirs = trained_looking(ref.InfinityGanGenerator(ref.reference_config(**SMALL, **coords)), seed=10)
    yaml = tmp_path / "InfinityGAN.yaml"
    yaml.write_text("train_params:\n  ts_input_size: 11\n" + "".join(f"  {k}: {v}\n" for k, v in coords.items()))
    ours = convert(tmp_path, theirs, "--config", str(yaml))
    assert (ours.cfg.hori_period, ours.cfg.coord_vert_cut) == (69, 2)
    manager = ref.InfiniteGeneration(theirs, 101, 101)
    v = manager.create_vars()
    expected = manager.generate(v)
    got = render(ours, latent_file(tmp_path / "canvas.safetensors", v.global_latent, v.local_latent, v.noises))
    assert (got - expected).abs().max() < TOLERANCE
