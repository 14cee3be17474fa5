"""Latent directions: GANSpace's principal components, class edits, direction files, and ``polyinr edit``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image
from safetensors.torch import save_file

import polyinr
from polyinr.cli import main
from polyinr.image_io import to_uint8
from polyinr.sampling import ws_for
from polyinr.tools.directions import (
    ClassEdit,
    DirectionFile,
    PrincipalComponent,
    edit_sheet,
    load_directions,
    moved_ws,
    parse_direction,
    parse_strengths,
    principal_directions,
    save_directions,
)


def run(*args, ok: bool = True):
    result = CliRunner().invoke(main, [str(a) for a in args])
    if ok:
        assert result.exit_code == 0, result.output
    return result


def columns(sheet: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """A sheet ``[rows·H, cols·W, 3]`` as cells ``[rows, cols, H, W, 3]``."""
    H, W = sheet.shape[0] // rows, sheet.shape[1] // cols
    return sheet.reshape(rows, H, cols, W, 3).transpose(0, 2, 1, 3, 4)


def test_directions_and_strengths_parse():
    assert parse_direction("pca:3") == PrincipalComponent(3)
    assert parse_direction("class:1->7") == ClassEdit(1, 7)
    assert parse_direction("file:d.safetensors") == DirectionFile(Path("d.safetensors"), None)
    assert parse_direction("file:a#b/d.safetensors#2") == DirectionFile(Path("a#b/d.safetensors"), 2)
    for bad in ("pca:", "pca:-1", "class:1-7", "class:a->b", "file:", "ganspace:1"):
        with pytest.raises(polyinr.PolyinrError, match="unknown direction"):
            parse_direction(bad)
    assert parse_strengths("-3,-1.5,0,1.5,3") == [-3, -1.5, 0, 1.5, 3]
    assert parse_strengths("-2:2:5") == [-2, -1, 0, 1, 2]
    for bad, message in (("1,x", "look like"), ("0:1:0", "at least 1 step"), ("nan", "finite"), ("1:2", "look")):
        with pytest.raises(polyinr.PolyinrError, match=message):
            parse_strengths(bad)


def test_principal_directions_are_ganspace_pca_of_w(tiny_G):
    components = principal_directions(tiny_G, num_samples=300)
    w = ws_for(tiny_G, seeds=range(300))[:, 0].double()  # [300, w_dim]: every ws index repeats w
    variances, vectors = np.linalg.eigh(np.cov(w.numpy(), rowvar=False))
    norms = components.norm(dim=1)
    assert components.shape == (tiny_G.w_dim, tiny_G.w_dim)
    np.testing.assert_allclose(norms[:5], np.sqrt(variances[::-1][:5]), rtol=1e-3)  # σ_k, most variance first
    assert (norms[:-1] >= norms[1:] - 1e-6).all()
    top = components[0].double() / norms[0]
    assert abs(float(top @ torch.from_numpy(vectors[:, -1]))) == pytest.approx(1.0, abs=1e-4)
    assert top[top.abs().argmax()] > 0  # the sign is fixed
    units = components[:5] / norms[:5, None]
    torch.testing.assert_close(units @ units.T, torch.eye(5), atol=1e-4, rtol=0)


def test_moved_ws_moves_only_the_chosen_layers(ws):
    direction = torch.randn(ws.shape[2])
    edited = moved_ws(ws, direction, [-1.0, 0.0, 2.0], [1, 2])
    assert edited.shape == (3, 3, *ws.shape[1:])
    assert torch.equal(edited[:, 1], ws)
    torch.testing.assert_close(edited[:, 2, 1] - ws[:, 1], 2 * direction.expand(3, -1))
    assert torch.equal(edited[:, :, [0, 3]], ws[:, None, [0, 3]].expand(-1, 3, -1, -1))


@pytest.mark.parametrize("name", polyinr.list_models())
def test_every_registered_model_edits_along_components_and_between_classes(name, tmp_path):
    torch.manual_seed(0)
    G = polyinr.create(name, "cpu", num_classes=3).eval().requires_grad_(False)
    R = G.img_resolution
    plain = to_uint8(G.synthesize(ws_for(G, seeds=[0, 1], classes=1)))  # [2, H, W, 3]
    pca = edit_sheet(G, [0, 1], PrincipalComponent(0), [-2.0, 0.0, 2.0], class_idx=1, num_samples=20)
    cells = columns(pca.sheet, 2, 3)
    assert pca.sheet.shape == (2 * R, 3 * R, 3) and pca.components.shape == (G.w_dim, G.w_dim)
    assert np.abs(cells[:, 1].astype(int) - plain).max() <= 1  # strength 0 is the sample itself
    assert not np.array_equal(cells[:, 0], cells[:, 2])
    save_directions(tmp_path / "d.safetensors", pca.components)
    again = edit_sheet(G, [0, 1], DirectionFile(tmp_path / "d.safetensors", 0), [-2.0, 0.0, 2.0], class_idx=1)
    assert np.array_equal(again.sheet, pca.sheet) and again.components is None
    classes = columns(edit_sheet(G, [0, 1], ClassEdit(0, 2), [0.0, 0.5, 1.0]).sheet, 2, 3)
    for col, label in ((0, 0), (2, 2)):  # the ends are the two classes
        expected = to_uint8(G.synthesize(ws_for(G, seeds=[0, 1], classes=label)))
        assert np.abs(classes[:, col].astype(int) - expected).max() <= 1
    assert not np.array_equal(classes[:, 1], classes[:, 0])


def test_layers_limit_the_edit(tiny_G):
    everywhere = edit_sheet(tiny_G, [2], PrincipalComponent(0), [3.0], num_samples=50).sheet
    first = edit_sheet(tiny_G, [2], PrincipalComponent(0), [3.0], layers=[0], num_samples=50).sheet
    assert not np.array_equal(everywhere, first)
    with pytest.raises(polyinr.PolyinrError, match=r"levels \[4\] do not exist"):
        edit_sheet(tiny_G, [2], PrincipalComponent(0), [3.0], layers=[3, 4], num_samples=50)


def write(path: Path, tensor: torch.Tensor, key: str = "directions") -> Path:
    save_file({key: tensor}, str(path))
    return path


def test_direction_files_are_validated(tiny_G, tmp_path):
    D = tiny_G.w_dim
    assert load_directions(write(tmp_path / "one.safetensors", torch.randn(D, dtype=torch.float64)), D).shape == (1, D)
    (tmp_path / "junk.safetensors").write_text("not a tensor file")
    cases = [
        (tmp_path / "missing.safetensors", "not found"),
        (tmp_path / "junk.safetensors", "not a safetensors file"),
        (write(tmp_path / "key.safetensors", torch.randn(2, D), key="ws"), "holds no 'directions'"),
        (write(tmp_path / "int.safetensors", torch.ones(2, D, dtype=torch.int64)), "floating point"),
        (write(tmp_path / "shape.safetensors", torch.randn(2, D + 1)), f"must be \\[K, {D}\\]"),
        (write(tmp_path / "nan.safetensors", torch.full((2, D), float("nan"))), "NaN"),
    ]
    for path, message in cases:
        with pytest.raises(polyinr.PolyinrError, match=message):
            load_directions(path, D)
    many = write(tmp_path / "many.safetensors", torch.randn(3, D))
    for index, message in ((None, "holds 3 directions"), (3, "directions 0..2, not 3")):
        with pytest.raises(polyinr.PolyinrError, match=message):
            edit_sheet(tiny_G, [0], DirectionFile(many, index), [1.0])


def test_bad_edits_are_one_line_errors(tiny_G, cond_G):
    with pytest.raises(polyinr.PolyinrError, match="unconditional"):
        edit_sheet(tiny_G, [0], ClassEdit(0, 1), [1.0])
    with pytest.raises(polyinr.PolyinrError, match="give no class"):
        edit_sheet(cond_G, [0], ClassEdit(0, 1), [1.0], class_idx=2)
    with pytest.raises(polyinr.PolyinrError, match="unknown class 5"):
        edit_sheet(cond_G, [0], ClassEdit(0, 5), [1.0])
    with pytest.raises(polyinr.PolyinrError, match="class-conditional"):
        edit_sheet(cond_G, [0], PrincipalComponent(0), [1.0])
    with pytest.raises(polyinr.PolyinrError, match="principal components"):
        edit_sheet(tiny_G, [0], PrincipalComponent(tiny_G.w_dim), [1.0])


def test_cli_edits_saves_and_reads_back_directions(tiny_ckpt, cond_ckpt, tmp_path):
    args = ["edit", "--network", tiny_ckpt, "--seeds", "0-1", "--strength", "-2,0,2"]
    result = run(
        *args,
        "--direction",
        "pca:1",
        "--pca-samples",
        "50",
        "--out",
        tmp_path / "pca",
        "--save-directions",
        tmp_path / "d.st",
    )
    assert "columns: strengths -2, 0, 2" in result.output
    sheet = np.asarray(Image.open(tmp_path / "pca" / "edit.png"))
    assert sheet.shape == (2 * 16, 3 * 16, 3)
    run(*args, "--direction", f"file:{tmp_path / 'd.st'}#1", "--out", tmp_path / "file")
    assert np.array_equal(np.asarray(Image.open(tmp_path / "file" / "edit.png")), sheet)
    run(
        "edit",
        "--network",
        cond_ckpt,
        "--seeds",
        "3",
        "--direction",
        "class:0->2",
        "--strength",
        "0:1:3",
        "--layers",
        "0-1",
        "--out",
        tmp_path / "class",
    )
    assert np.asarray(Image.open(tmp_path / "class" / "edit.png")).shape == (16, 3 * 16, 3)


def test_cli_bad_inputs_fail_in_one_line_before_any_work(tiny_ckpt, tmp_path):
    base = ["edit", "--network", tiny_ckpt, "--seeds", "0", "--strength", "1", "--out", tmp_path / "out"]
    cases = [
        (["--direction", "class:0->1", "--save-directions", tmp_path / "d.st"], "use it with --direction pca:K"),
        (["--direction", "file:d.st#0", "--pca-samples", "9"], "--pca-samples is about principal components"),
        (["--direction", "class:0->1"], "unconditional"),
        (["--direction", "pca:0", "--layers", "9"], "do not exist"),
        (["--direction", f"file:{tmp_path / 'none.st'}"], "not found"),
        (["--direction", "pca"], "unknown direction"),
    ]
    for extra, message in cases:
        result = run(*base, *extra, ok=False)
        assert result.exit_code != 0 and message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "out" / "edit.png").exists()


def test_a_sheet_too_big_for_memory_is_refused_before_any_work(tiny_G):
    with pytest.raises(polyinr.PolyinrError, match="over this machine's limit"):
        edit_sheet(tiny_G, range(10**6), PrincipalComponent(0), parse_strengths("0:1:100000"))


def test_cli_keeps_an_existing_sheet_unless_forced(tiny_ckpt, tmp_path):
    out = tmp_path / "e"
    out.mkdir()
    (out / "edit.png").write_bytes(b"mine")
    args = [
        "edit",
        "--network",
        tiny_ckpt,
        "--seeds",
        "0",
        "--direction",
        "pca:0",
        "--pca-samples",
        "20",
        "--strength",
        "0,1",
        "--out",
        out,
    ]
    result = run(*args, ok=False)
    assert result.exit_code == 1 and "edit.png" in result.output and "--force" in result.output
    assert (out / "edit.png").read_bytes() == b"mine"
    run(*args, "--force")
    assert Image.open(out / "edit.png").size == (2 * 16, 16)
