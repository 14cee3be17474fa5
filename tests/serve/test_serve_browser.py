"""The viewer page in a real headless Chromium (Debian's ``chromium`` package, driven by Playwright): it loads,
tiles appear, pan and zoom change the requested windows, side by side shows two canvases, the URL reopens the
view, and a bad value shows the server's message on the page.

Skipped, saying why, where Playwright or ``/usr/bin/chromium`` is missing (``.ci/run`` installs both).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
import time
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
from PIL import Image

from polyinr.checkpoint import load_generator
from polyinr.models.generator import FRAME
from polyinr.serve.app import Network, bind, create_app, load_networks, make_server, server_url

CHROMIUM = os.environ.get("POLYINR_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
sync_api = pytest.importorskip("playwright.sync_api", reason="browser tests need Playwright (pip install playwright)")
if not Path(CHROMIUM).exists():
    pytest.skip(f"browser tests need Chromium at {CHROMIUM} (apt-get install chromium)", allow_module_level=True)


@contextlib.contextmanager
def serving(networks):
    """A real uvicorn server over ``networks`` in a thread; yields its URL."""
    sock = bind("127.0.0.1", 0)
    server = make_server(create_app(networks))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        yield server_url(sock, "127.0.0.1", None)
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


@pytest.fixture(scope="module")
def url(tiny_ckpt, cond_ckpt):
    with serving(load_networks([str(tiny_ckpt), str(cond_ckpt)])) as address:
        yield address


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    page = browser.new_page(viewport={"width": 640, "height": 420}, accept_downloads=True)
    page.tiles = []  # (level, row, col, seed) of every tile the page asked for
    page.on("request", lambda r: page.tiles.append(_tile(r.url)) if "/api/tile" in r.url else None)
    yield page
    page.close()


def _tile(url: str) -> tuple[int, int, int, str]:
    q = {k: v[0] for k, v in parse_qs(urlparse(url).query).items()}
    return int(q["level"]), int(q["row"]), int(q["col"]), q.get("seed", "")


def settle(page) -> None:
    """Wait until every visible tile has loaded."""
    page.wait_for_function("document.body.dataset.loading === '0'", timeout=30_000)


def canvas_colours(page, index: int = 0) -> int:
    """Number of distinct colours on the canvas of pane ``index``."""
    return page.evaluate(
        """(i) => {
            const c = document.querySelectorAll('canvas.view')[i];
            const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            const seen = new Set();
            for (let k = 0; k < d.length; k += 4 * 7) seen.add((d[k] << 16) | (d[k + 1] << 8) | d[k + 2]);
            return seen.size;
        }""",
        index,
    )


def test_page_loads_and_tiles_appear(page, url):
    page.goto(url)
    settle(page)
    assert page.tiles, "the page requested no tiles"
    assert canvas_colours(page) > 50  # a picture, not a blank canvas
    assert "loaded" in page.text_content("#status")
    assert page.is_hidden("#error")


def test_pan_and_zoom_change_the_requested_windows(page, url):
    page.goto(url)
    settle(page)
    before = set(page.tiles)
    box = page.locator("canvas.view").first.bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x - 400, y - 300, steps=8)
    page.mouse.up()
    settle(page)
    panned = set(page.tiles) - before
    assert panned, "a pan requested no new tiles"
    level = max(t[0] for t in before)
    page.mouse.move(x, y)
    page.mouse.wheel(0, -1500)  # zoom in three levels
    settle(page)
    deeper = {t[0] for t in set(page.tiles) - before - panned}
    assert deeper and max(deeper) > level
    state = page.evaluate("window.polyinrViewer.state")
    assert f"z={state['z']:.3f}" in page.url  # the URL encodes the view


def test_a_link_reopens_the_view(page, url):
    page.goto(url + "#y=2.5&x=-1.25&z=3.000&seed=9&psi=0.5")
    settle(page)
    state = page.evaluate("window.polyinrViewer.state")
    assert (state["cy"], state["cx"], state["z"]) == (2.5, -1.25, 3.0)
    assert page.input_value("fieldset[data-pane='0'] input[name=seed]") == "9"
    assert all(t[3] == "9" and t[0] >= 3 for t in page.tiles)


def test_side_by_side_shows_two_canvases(page, url):
    page.goto(url)
    settle(page)
    page.check("#split")
    settle(page)
    canvases = page.locator("canvas.view")
    assert canvases.count() == 2 and canvases.nth(0).is_visible() and canvases.nth(1).is_visible()
    assert canvas_colours(page, 0) > 50 and canvas_colours(page, 1) > 50
    assert "1" in {t[3] for t in page.tiles}  # pane B asks for its own source (model 2 / seed 1)
    assert "split=1" in page.url


def test_a_bad_value_shows_the_servers_message(page, url):
    page.goto(url)
    settle(page)
    page.fill("fieldset[data-pane='0'] input[name=psi]", "nan")
    page.dispatch_event("fieldset[data-pane='0'] input[name=psi]", "change")
    page.wait_for_selector("#error:not([hidden])", timeout=30_000)
    assert "psi must be a finite number" in page.text_content("#error")


def test_export_downloads_the_view_as_a_png_with_progress(page, url):
    page.goto(url)
    settle(page)
    page.fill("#export-size", "300x200")
    with page.expect_download() as download:
        page.click("#export")
    assert download.value.suggested_filename.endswith("300x200.png")
    assert Image.open(download.value.path()).size == (200, 300)  # HxW asked, PIL gives (W, H)
    page.wait_for_function("document.querySelector('#export-progress').textContent.startsWith('done')")


FRAME_LOADED = "(window.polyinrViewer.panes[0].frame || {}).status === 'ok'"


def test_a_frame_model_shows_its_frame_with_translate_and_rotate_controls(browser, tiny_ckpt):
    G = load_generator(tiny_ckpt)
    G.__class__ = type("StandIn", (type(G),), {"grid_support": FRAME})
    page = browser.new_page(viewport={"width": 480, "height": 360})
    frames = []
    page.on("request", lambda r: frames.append(r.url) if "/api/frame" in r.url else None)
    with serving([Network("frame", G)]) as address:
        page.goto(address)
        page.wait_for_function(
            "window.polyinrViewer.panes[0].frame && window.polyinrViewer.panes[0].frame.status === 'ok'"
        )
        assert page.is_visible("fieldset[data-pane='0'] input[name=angle]")
        assert canvas_colours(page) > 20
        page.fill("fieldset[data-pane='0'] input[name=angle]", "45")
        page.dispatch_event("fieldset[data-pane='0'] input[name=angle]", "change")
        page.wait_for_function(FRAME_LOADED)
        assert any("angle=45" in u for u in frames) and not page.is_visible("#error")
    page.close()
