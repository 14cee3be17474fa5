"""The viewer's HTTP API through Starlette's test client: tiles equal `polyinr render`, bad input is a 4xx with
a one-line JSON message, the token guards every endpoint, exports stream the same pixels as render."""

from __future__ import annotations

import asyncio
import io
import json
import math

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image
from starlette.testclient import TestClient

import polyinr
from polyinr.checkpoint import load_generator
from polyinr.cli import main
from polyinr.grid import Grid
from polyinr.image_io import to_uint8
from polyinr.models.generator import CANVAS, FRAME, lattice_origin
from polyinr.sampling import save_latents, ws_for
from polyinr.serve.app import COOKIE, Network, create_app, is_loopback, load_networks
from polyinr.serve.tiles import ByteLRU, TileRenderer, tiling_for


@pytest.fixture(scope="module")
def client(tiny_ckpt, cond_ckpt):
    app = create_app(load_networks([str(tiny_ckpt), str(cond_ckpt)]), max_batch_pixels=4 * 64 * 64)
    with TestClient(app) as c:
        yield c


def pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def render_cli(tmp_path, ckpt, window: str, size: str, *extra: str) -> np.ndarray:
    out = tmp_path / "render.png"
    args = ["render", "--network", str(ckpt), "--window", window, "--size", size, "--out", str(out), *extra]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    return np.asarray(Image.open(out).convert("RGB"))


@pytest.mark.parametrize(
    ("model", "level", "row", "col", "extra"),
    [
        (0, 0, 0, 0, ["--seed", "3"]),
        (0, 9, -5, 700, ["--seed", "3"]),
        (1, -2, 1, -1, ["--seed", "5", "--class", "2", "--trunc", "0.7", "--trunc-cutoff", "1"]),
    ],
)
def test_tile_equals_render_bit_for_bit(client, tmp_path, tiny_ckpt, cond_ckpt, model, level, row, col, extra):
    source = {"seed": extra[1]}
    if model == 1:
        source.update({"class": "2", "psi": "0.7", "cutoff": "1"})
    r = client.get(
        "/api/tile",
        params={"model": model, "level": level, "row": row, "col": col, "size": 64, "format": "png", **source},
    )
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/png"
    assert r.headers["x-polyinr-size"] == "64x64"
    tile = pixels(r.content)
    rendered = render_cli(tmp_path, (tiny_ckpt, cond_ckpt)[model], r.headers["x-polyinr-window"], "64x64", *extra)
    assert np.array_equal(tile, rendered)
    assert tile.std() > 0  # a picture, not a flat colour


def test_webp_when_the_browser_accepts_it_with_the_same_pixels(client):
    params = {"model": 0, "level": 1, "row": 0, "col": 1, "size": 64, "seed": 2}
    png = client.get("/api/tile", params=params, headers={"accept": "image/png"})
    webp = client.get("/api/tile", params=params, headers={"accept": "image/avif,image/webp,*/*"})
    assert webp.headers["content-type"] == "image/webp"
    assert np.array_equal(pixels(png.content), pixels(webp.content))


def test_neighbouring_tiles_batch_into_one_synthesis_call_with_the_same_pixels(tiny_ckpt):
    G = load_generator(tiny_ckpt)
    renderer = TileRenderer(G, max_batch_pixels=4 * 64 * 64)
    ws = ws_for(G, seeds=[7])
    cells = [(2, 3), (2, 4), (3, 3), (3, 4)]

    async def go():
        renderer.start()
        try:
            return await asyncio.gather(*(renderer.tile("s7", lambda: ws, 4, r, c, 64, "png") for r, c in cells))
        finally:
            await renderer.stop()

    tiles = asyncio.run(go())
    renderer.close()
    assert renderer.stats.synthesis_calls == 1 and renderer.stats.batch_sizes == [4]
    for (r, c), data in zip(cells, tiles):
        alone = to_uint8(G.synthesis(ws, tiling_for(G).grid(4, r, c, 64)))[0]
        assert np.array_equal(pixels(data), alone)


def test_batches_are_whole_rectangles_of_asked_tiles_oldest_first(tiny_ckpt):
    G = load_generator(tiny_ckpt)
    renderer = TileRenderer(G, max_batch_pixels=4 * 64 * 64)
    ws = ws_for(G, seeds=[7])
    cells = [(0, 0), (0, 1), (1, 0), (5, 5), (0, 2), (0, 3), (0, 4)]  # an L, a stray tile, a long row

    async def go():
        renderer.start()
        try:
            await asyncio.gather(*(renderer.tile("s7", lambda: ws, 2, r, c, 64, "png") for r, c in cells))
        finally:
            await renderer.stop()

    asyncio.run(go())
    renderer.close()
    assert renderer.stats.batch_sizes == [4, 1, 1, 1]  # (0,0)-(0,3) within 4 tiles; then (1,0), (5,5), (0,4)
    assert renderer.stats.tiles_rendered == len(cells)


def test_a_tile_nobody_waits_for_is_never_rendered(tiny_ckpt):
    G = load_generator(tiny_ckpt)
    renderer = TileRenderer(G)
    ws = ws_for(G, seeds=[1])

    async def go():
        left = lambda: asyncio.sleep(0.01)  # noqa: E731  (the client leaves while its tile is queued; no worker yet)
        gone = await renderer.tile("s1", lambda: ws, 0, 5, 5, 64, gone=left)
        renderer.start()
        try:
            kept = await renderer.tile("s1", lambda: ws, 0, 6, 6, 64, gone=lambda: asyncio.sleep(3600))
        finally:
            await renderer.stop()
        return gone, kept

    gone, kept = asyncio.run(go())
    renderer.close()
    assert gone is None and kept is not None
    assert renderer.stats.tiles_cancelled == 1 and renderer.stats.tiles_rendered == 1


def test_cache_serves_a_repeated_tile_and_stays_within_its_bytes(client):
    params = {"model": 0, "level": 2, "row": 1, "col": 1, "size": 64, "seed": 4, "format": "png"}
    renderer = client.app.state.networks[0].renderer
    first = client.get("/api/tile", params=params).content
    hits = renderer.stats.cache_hits
    assert client.get("/api/tile", params=params).content == first
    assert renderer.stats.cache_hits == hits + 1
    lru = ByteLRU(10)
    for i in range(5):
        lru.put(i, b"abcd")
    assert lru.nbytes <= 10 and len(lru) == 2 and lru.get(0) is None and lru.get(4) == b"abcd"


def test_merging_is_on_by_default(tiny_ckpt):
    assert TileRenderer(load_generator(tiny_ckpt)).max_batch_pixels == 16 * 256 * 256


def test_models_as_json(client):
    data = client.get("/api/models").json()
    first, second = data["models"]
    assert first["support"] == "continuous" and first["levels"] is not None
    assert second["num_classes"] == 3 and second["class_names"] == ["0", "1", "2"]
    assert first["grids"] and 256 in data["tile_sizes"] and "cpu" in first["presets"]


BAD = [
    ({"seed": 1, "level": 0, "row": 0, "col": 0, "psi": "nan"}, "psi must be a finite number"),
    ({"seed": 1, "level": 0, "row": 0, "col": 0, "psi": "inf"}, "psi must be a finite number"),
    ({"seed": 1, "level": 0, "row": 0, "col": 0, "psi": "1e999"}, "psi must be a finite number"),
    ({"seed": 1, "level": 99, "row": 0, "col": 0}, "level must be within"),
    ({"seed": 1, "level": 0, "row": 10**9, "col": 0}, "beyond"),
    ({"seed": 1, "level": 0, "row": 0, "col": 0, "size": 100000}, "size must be within"),
    ({"seed": 1, "level": 0, "row": 0, "col": 0, "size": 100}, "size must be one of"),
    ({"seed": 1, "level": 0, "row": 0, "col": 0, "model": 7}, "model must be within"),
    ({"seed": -1, "level": 0, "row": 0, "col": 0}, "seed must be within"),
    ({"seed": "x", "level": 0, "row": 0, "col": 0}, "seed must be a whole number"),
    ({"level": 0, "row": 0, "col": 0}, "give seed or latent"),
    ({"seed": 1, "level": 0, "row": 0, "col": 0, "class": 1}, "unconditional"),
    ({"seed": 1, "level": 0, "row": 0, "col": 0, "model": 1}, "class-conditional"),
    ({"seed": 1, "level": 0, "row": 0, "col": 0, "model": 1, "class": 3}, "class must be within 0..2"),
    ({"seed": 1, "level": 0, "row": 0, "col": 0, "latent": 0}, "give seed or latent"),
    ({"seed": 1, "level": 0, "row": 0, "col": 0, "t": 0.5}, "give seed2"),
    ({"seed": 1, "level": 0, "row": 0, "col": 0, "cutoff": 4}, "cutoff must be within 0..3"),
    ({"seed": 1, "level": 0, "row": 0, "col": 0, "path": "/etc/passwd"}, "unknown parameter 'path'"),
    ({"seed": 1, "level": 0, "row": 0, "col": 0, "format": "gif"}, "format must be one of"),
]


@pytest.mark.parametrize(("params", "message"), BAD)
def test_bad_tile_parameters_are_a_4xx_with_a_one_line_message(client, params, message):
    r = client.get("/api/tile", params=params)
    assert 400 <= r.status_code < 500
    error = r.json()["error"]
    assert message in error and "\n" not in error


@pytest.mark.parametrize(
    ("params", "status", "message"),
    [
        ({"seed": 1, "window": "0,0,1,nan", "size": "64"}, 400, "window must be four numbers"),
        ({"seed": 1, "window": "0,0,1,1", "size": "100000x100000"}, 413, "export limit"),
        ({"seed": 1, "window": "0,0,1,1", "size": "0x5"}, 400, "size must be positive"),
        ({"seed": 1, "window": "1,0,0,1", "size": "8"}, 400, "empty"),
        ({"seed": 1, "window": "0,0,1,1"}, 400, "give window"),
        ({"seed": 1, "window": "0,0,1,1", "size": "8", "job": "../x"}, 400, "job must be"),
    ],
)
def test_bad_export_parameters(client, params, status, message):
    r = client.get("/api/export", params=params)
    assert r.status_code == status and message in r.json()["error"]


def test_unknown_paths_and_frames(client):
    assert client.get("/api/nothing").status_code == 404
    assert client.get("/static/../app.py").status_code == 404
    r = client.get("/api/frame", params={"seed": 1, "dr": 0.25, "angle": 30, "format": "png"})
    assert r.status_code == 200 and pixels(r.content).shape == (16, 16, 3)
    assert client.get("/api/frame", params={"seed": 1, "angle": "nan"}).status_code == 400


def test_export_streams_what_render_writes_with_progress(client, tmp_path, tiny_ckpt):
    params = {"seed": 3, "window": "-0.5,-0.25,1.5,1.25", "size": "300x260", "job": "j1"}
    assert client.get("/api/export", params={**params, "check": 1}).json() == {"size": [300, 260], "tiles": 4}
    r = client.get("/api/export", params=params)
    assert r.status_code == 200 and "attachment" in r.headers["content-disposition"]
    rendered = render_cli(tmp_path, tiny_ckpt, params["window"], "300x260", "--seed", "3", "--tile", "128")
    assert np.array_equal(pixels(r.content), rendered)
    assert client.get("/api/progress", params={"job": "j1"}).json() == {"done": 4, "total": 4}
    assert client.get("/api/progress", params={"job": "none"}).status_code == 404


def test_interpolation_mixes_the_two_seeds_ws(client, tiny_ckpt):
    G = load_generator(tiny_ckpt)
    base = {"model": 0, "level": 0, "row": 0, "col": 0, "size": 64, "format": "png", "seed": 1, "seed2": 2}
    ends = [pixels(client.get("/api/tile", params={**base, "t": t}).content) for t in (0, 1)]
    for seed, end in zip((1, 2), ends):
        ws = ws_for(G, seeds=[seed])
        assert np.array_equal(end, to_uint8(G.synthesis(ws, tiling_for(G).grid(0, 0, 0, 64)))[0])
    middle = pixels(client.get("/api/tile", params={**base, "t": 0.5}).content)
    assert not np.array_equal(middle, ends[0]) and not np.array_equal(middle, ends[1])


def test_page_and_static_files_are_served(client):
    page = client.get("/")
    assert page.status_code == 200 and "viewer.js" in page.text
    script = client.get("/static/viewer.js")
    assert script.status_code == 200 and "api/tile" in script.text
    for text in (page.text, script.text, client.get("/static/viewer.css").text):
        assert "http:" not in text and "https:" not in text and "//cdn" not in text  # no CDN: all is local


def test_the_token_guards_every_endpoint(tiny_ckpt):
    app = create_app(load_networks([str(tiny_ckpt)]), token="s3cret")
    with TestClient(app) as c:
        for path in ("/", "/api/models", "/static/viewer.js", "/api/tile?seed=1&level=0&row=0&col=0"):
            assert c.get(path).status_code == 401
            assert c.get(path, params={"token": "wrong"}).status_code == 403
            assert json.loads(c.get(path, headers={"authorization": "Bearer nope"}).text)["error"] == "wrong token"
        page = c.get("/", params={"token": "s3cret"})
        assert page.status_code == 200 and COOKIE in page.headers["set-cookie"]
        assert "HttpOnly" in page.headers["set-cookie"]
        assert c.get("/api/models").status_code == 200  # the cookie from the page now carries the token
        c.cookies.clear()
        assert c.get("/api/models", headers={"authorization": "Bearer s3cret"}).status_code == 200


def test_a_loopback_server_answers_only_its_own_host_names(tiny_ckpt):
    app = create_app(load_networks([str(tiny_ckpt)]), allowed_hosts=["127.0.0.1", "localhost"])
    with TestClient(app, base_url="http://127.0.0.1:7860") as c:
        assert c.get("/api/models").status_code == 200
        assert c.get("/api/models", headers={"host": "rebound.example.org"}).status_code == 400


def test_loopback_detection():
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.4") and not is_loopback("example.org")


def test_serve_command_refuses_bad_input_in_one_line(tiny_ckpt, tmp_path):
    runner = CliRunner()
    result = runner.invoke(main, ["serve", "--network", str(tmp_path / "missing")])
    assert result.exit_code == 1 and result.output.startswith("Error:") and "Traceback" not in result.output
    names = tmp_path / "names.txt"
    names.write_text("cat\ndog\n")
    result = runner.invoke(main, ["serve", "--network", str(tiny_ckpt), "--class-names", str(names)])
    assert result.exit_code == 1 and "2 class names fit no network" in result.output


def test_class_names_reach_the_page(cond_ckpt, tmp_path):
    networks = load_networks([str(cond_ckpt)], class_names=["cat", "dog", "owl"])
    with TestClient(create_app(networks)) as c:
        assert c.get("/api/models").json()["models"][0]["class_names"] == ["cat", "dog", "owl"]


def test_latent_files_are_offered_by_index(tiny_ckpt, tmp_path):

    G = load_generator(tiny_ckpt)
    ws = ws_for(G, seeds=[11, 12])
    path = save_latents(tmp_path / "two.safetensors", ws, G)
    networks = load_networks([str(tiny_ckpt)], latent_paths=[str(path)])
    with TestClient(create_app(networks)) as c:
        assert c.get("/api/models").json()["models"][0]["latents"] == ["two[0]", "two[1]"]
        r = c.get("/api/tile", params={"latent": 1, "level": 0, "row": 0, "col": 0, "size": 64, "format": "png"})
        grid: Grid = tiling_for(G).grid(0, 0, 0, 64)
        assert np.array_equal(pixels(r.content), to_uint8(G.synthesis(ws[1:], grid))[0])
        assert c.get("/api/tile", params={"latent": 2, "level": 0, "row": 0, "col": 0}).status_code == 400
        assert (
            "do not apply"
            in c.get("/api/tile", params={"latent": 0, "psi": 0.5, "level": 0, "row": 0, "col": 0}).json()["error"]
        )
    torch.testing.assert_close(ws[1:], networks[0].latents[1][1])


def stand_in(G, support):
    """``G`` declaring another grid support (how the contract tests try the three kinds on one network)."""
    G.__class__ = type("StandIn", (type(G),), {"grid_support": support})
    return G


def test_a_frame_model_serves_its_frame_translated_and_rotated_and_no_tiles(tiny_ckpt):
    G = stand_in(load_generator(tiny_ckpt), FRAME)
    with TestClient(create_app([Network("frame", G)])) as c:
        entry = c.get("/api/models").json()["models"][0]
        assert entry["support"] == "frame" and entry["levels"] is None and "native 16x16 frame" in entry["grids"]
        r = c.get("/api/frame", params={"seed": 2, "dr": 0.25, "dc": -0.5, "angle": 90, "format": "png"})
        grid = Grid.frame(16).translated(0.25, -0.5).rotated(math.pi / 2)
        assert np.array_equal(pixels(r.content), to_uint8(G.synthesize(ws_for(G, seeds=[2]), grid))[0])
        tile = c.get("/api/tile", params={"seed": 2, "level": 0, "row": 0, "col": 0})
        assert tile.status_code == 400 and "accepts only its native frame" in tile.json()["error"]
        export = c.get("/api/export", params={"seed": 2, "window": "0,0,1,1", "size": 32})
        assert export.status_code == 400


def test_a_canvas_model_serves_one_level_of_lattice_tiles(tiny_ckpt):
    G = stand_in(load_generator(tiny_ckpt), CANVAS)
    with TestClient(create_app([Network("canvas", G)])) as c:
        assert c.get("/api/models").json()["models"][0]["levels"] == [0, 0]
        r = c.get("/api/tile", params={"seed": 2, "level": 0, "row": -1, "col": 2, "size": 64, "format": "png"})
        assert r.status_code == 200, r.text
        grid = tiling_for(G).grid(0, -1, 2, 64)
        assert lattice_origin(grid, 16) == (-64, 128)
        assert np.array_equal(pixels(r.content), to_uint8(G.synthesize(ws_for(G, seeds=[2]), grid))[0])
        assert c.get("/api/tile", params={"seed": 2, "level": 1, "row": 0, "col": 0}).status_code == 400
        rotated = c.get("/api/frame", params={"seed": 2, "angle": 10})
        assert rotated.status_code == 400 and "rotations" in rotated.json()["error"]


@pytest.mark.parametrize("name", polyinr.list_models())
def test_every_registered_model_is_served_by_its_grid_support(name):
    G = polyinr.create(name, "cpu").eval().requires_grad_(False)
    with TestClient(create_app([Network(name, G)])) as c:
        entry = c.get("/api/models").json()["models"][0]
        assert entry["support"] == G.grid_support.kind and (entry["levels"] is None) == (not G.grid_support.tiles)
        assert entry["motions"] == (G.grid_support.kind == "frame" and G.grid_support.motions)
        if G.grid_support.kind == "frame" and not G.grid_support.motions:  # the native frame only (StyleGAN2)
            moved = c.get("/api/frame", params={"seed": 1, "dr": 0.1})
            assert moved.status_code == 400 and "no translation" in moved.json()["error"]
        # A canvas model moves by whole pixels of its lattice and does not rotate (the generator contract).
        dr, angle = (3 / (G.img_resolution - 1), 0) if G.grid_support.kind == "canvas" else (0.1, 20)
        dr, angle = (dr, angle) if G.grid_support.kind != "frame" or G.grid_support.motions else (0, 0)
        r = c.get("/api/frame", params={"seed": 1, "dr": dr, "angle": angle, "format": "png"})
        grid = Grid.frame(G.img_resolution).translated(dr, 0.0).rotated(math.radians(angle))
        assert np.array_equal(pixels(r.content), to_uint8(G.synthesize(ws_for(G, seeds=[1]), grid))[0])
        tile = c.get("/api/tile", params={"seed": 1, "level": 0, "row": 0, "col": 0, "size": 64, "format": "png"})
        assert tile.status_code == (200 if G.grid_support.tiles else 400)
