"""Released models by name: downloaded from a local HTTP server (never the internet), verified, converted, cached.

The server on 127.0.0.1 serves the stand-in pickles the importer tests build, one per format, under a test table
of releases; it can cut a response half way, answer an error, or serve a web page instead of the file.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import pickle
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from infinitygan_reference import InfinityGanGenerator, reference_config
from test_infinity_gan_authors import SMALL, their_checkpoint
from test_inr_gan_import import write_snapshot as write_inr_gan
from test_stylegan3_import import their_generator
from test_stylegan3_import import write_pickle as write_stylegan3
from test_stylegan_xl_import import their_stem
from test_stylegan_xl_import import write_pickle as write_stylegan_xl

import polyinr
from polyinr.checkpoint import CheckpointError
from polyinr.cli import main as cli
from polyinr.errors import PolyinrError
from polyinr.importers import UnsafePickleError
from polyinr.pretrained import RELEASES, Release, download_path, resolve_network
from polyinr.serve.app import load_networks

pytestmark = pytest.mark.usefixtures("one_thread")


class FileServer:
    """A small HTTP server on 127.0.0.1 with ``Range`` support, and the faults a download must survive."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.content_type: dict[str, str] = {}
        self.status: dict[str, int] = {}
        self.cuts: dict[str, int] = {}  # path → responses still to cut half way
        self.requests: list[tuple[str, str | None]] = []  # (path, Range header)
        server = self

        class Handler(BaseHTTPRequestHandler):
            timeout = 10  # seconds: a stuck client never holds the server

            def do_GET(self) -> None:
                server.requests.append((self.path, self.headers.get("Range")))
                if self.path in server.status:
                    self.send_error(server.status[self.path])
                    return
                body = server.files[self.path]
                start = int(self.headers["Range"].removeprefix("bytes=").rstrip("-")) if "Range" in self.headers else 0
                if start >= len(body):
                    self.send_error(416)
                    return
                self.send_response(206 if start else 200)
                self.send_header("Content-Type", server.content_type.get(self.path, "application/octet-stream"))
                self.send_header("Content-Length", str(len(body) - start))
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                self.end_headers()
                if server.cuts.get(self.path, 0) > 0:
                    server.cuts[self.path] -= 1
                    self.wfile.write(body[start : start + (len(body) - start) // 2])  # then the connection closes
                    return
                self.wfile.write(body[start:])

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_port}{path}"

    def gets(self, path: str) -> list[str | None]:
        """The Range headers of the requests for ``path``."""
        return [byte_range for p, byte_range in self.requests if p == path]

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=10)


@pytest.fixture
def server():
    s = FileServer()
    yield s
    s.stop()


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch) -> Path:
    cache = tmp_path / "cache"
    monkeypatch.setenv("POLYINR_CACHE_DIR", str(cache))
    return cache


def build_file(converter: str, folder: Path, authors) -> bytes:
    """A stand-in of the authors' file of ``converter``, as the importer tests write it."""
    path = folder / f"{converter}.pkl"
    if converter == "stylegan3":
        write_stylegan3(their_generator("t", 0), path)
    elif converter == "stylegan-xl":
        write_stylegan_xl(their_stem(0), path)
    elif converter == "poly-inr":
        path = authors.write(authors.snapshot(authors.generator(c_dim=0)))
    elif converter == "inr-gan":
        write_inr_gan(path, "nearest", cuda_cache=False)
    else:
        torch.manual_seed(0)
        their_checkpoint(path, InfinityGanGenerator(reference_config(**SMALL)).eval())
    return path.read_bytes()


def publish(server: FileServer, monkeypatch, body: bytes, converter: str = "stylegan3", **fields) -> Release:
    """Serve ``body`` and list it in the table of releases (for this test only)."""
    path = f"/{converter}-{len(server.files)}.pkl"
    server.files[path] = body
    release = Release(
        f"test-{converter}-{len(server.files)}",
        converter,
        "test",
        16,
        server.url(path),
        "the test server",
        "test",
        None,
        **fields,
    )
    monkeypatch.setitem(RELEASES, release.name, release)
    return release


@pytest.fixture
def stylegan3_file(tmp_path, authors) -> bytes:
    return build_file("stylegan3", tmp_path, authors)


@pytest.mark.parametrize(
    "converter, model",
    [
        ("stylegan3", "stylegan3-t"),
        ("stylegan-xl", "stylegan-xl"),
        ("poly-inr", "poly-inr"),
        ("inr-gan", "inr-gan"),
        ("infinitygan", "infinitygan"),
    ],
)
def test_each_format_is_fetched_converted_and_then_used_from_the_cache(
    server, monkeypatch, tmp_path, authors, converter, model
):
    body = build_file(converter, tmp_path, authors)
    release = publish(server, monkeypatch, body, converter, size=len(body), sha256=hashlib.sha256(body).hexdigest())
    G = polyinr.load(release.name)
    assert G.model_name == model
    assert download_path(release).read_bytes() == body  # the authors' file is kept beside the checkpoint
    server.stop()  # later calls never touch the network
    assert polyinr.load(release.name).state_dict().keys() == G.state_dict().keys()
    assert resolve_network(release.url) == resolve_network(release.name)  # the URL names the same release
    assert len(server.requests) == 1


def test_a_cut_connection_is_resumed_with_a_range_request(server, monkeypatch, stylegan3_file):
    release = publish(server, monkeypatch, stylegan3_file)
    path = release.url.removeprefix(server.url(""))
    server.cuts[path] = 1
    resolve_network(release.name)
    assert server.gets(path) == [None, f"bytes={len(stylegan3_file) // 2}-"]
    assert download_path(release).read_bytes() == stylegan3_file


def test_a_download_cut_every_time_says_so_and_the_next_call_resumes_it(server, monkeypatch, stylegan3_file):
    release = publish(server, monkeypatch, stylegan3_file)
    path = release.url.removeprefix(server.url(""))
    server.cuts[path] = 3
    with pytest.raises(PolyinrError, match=r"was cut after .* try again to resume it"):
        resolve_network(release.name)
    assert not download_path(release).exists()  # only the partial file, under another name
    resolve_network(release.name)
    assert server.gets(path)[-1] is not None and download_path(release).read_bytes() == stylegan3_file


def test_a_partial_file_the_server_cannot_resume_is_fetched_again(server, monkeypatch, stylegan3_file):
    release = publish(server, monkeypatch, stylegan3_file)
    partial = download_path(release).with_name(download_path(release).name + ".part")
    partial.parent.mkdir(parents=True)
    partial.write_bytes(b"x" * (len(stylegan3_file) + 10))  # longer than the file: not a prefix of it
    resolve_network(release.name)
    assert download_path(release).read_bytes() == stylegan3_file and not partial.exists()


@pytest.mark.parametrize("wrong", ["size", "sha256"])
def test_a_file_of_another_size_or_hash_is_kept_aside_and_never_used(server, monkeypatch, stylegan3_file, wrong):
    expected = {"size": len(stylegan3_file) + 1} if wrong == "size" else {"sha256": "0" * 64}
    release = publish(server, monkeypatch, stylegan3_file, **expected)
    with pytest.raises(PolyinrError, match=f"{'bytes' if wrong == 'size' else 'sha256'} .* it was not used") as e:
        resolve_network(release.name)
    assert "\n" not in str(e.value)
    rejected = download_path(release).with_name(download_path(release).name + ".rejected")
    assert rejected.read_bytes() == stylegan3_file
    assert not download_path(release).exists() and not (rejected.parent / release.name).exists()


def test_a_server_error_is_one_line(server, monkeypatch, stylegan3_file):
    release = publish(server, monkeypatch, stylegan3_file)
    server.status[release.url.removeprefix(server.url(""))] = 503
    with pytest.raises(PolyinrError, match=r"answered HTTP 503") as e:
        resolve_network(release.name)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("declared", ["text/html", "application/octet-stream"])
def test_a_web_page_served_instead_of_the_file_is_refused(server, monkeypatch, declared):
    release = publish(server, monkeypatch, b"<!DOCTYPE html><html><body>Sign in to continue</body></html>")
    server.content_type[release.url.removeprefix(server.url(""))] = declared
    with pytest.raises(PolyinrError, match="served a web page, not the file"):
        resolve_network(release.name)
    assert not list(download_path(release).parent.glob(f"{release.name}.*pkl*"))  # nothing of the page is kept


def test_offline_a_release_not_cached_names_its_url_and_the_convert_command(monkeypatch):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    release = Release(
        "test-offline", "stylegan3", "test", 16, f"http://127.0.0.1:{port}/model.pkl", "test", "test", None
    )
    monkeypatch.setitem(RELEASES, release.name, release)
    with pytest.raises(PolyinrError) as e:
        resolve_network(release.name)
    message = str(e.value)
    assert release.url in message and "polyinr convert (format stylegan3)" in message and "\n" not in message


def test_a_release_shared_through_a_browser_page_says_what_to_do():
    release = RELEASES["poly-inr-imagenet-256"]
    with pytest.raises(PolyinrError, match=r"a page for a browser.*polyinr convert \(format poly-inr\)"):
        resolve_network(release.name)


def test_a_path_is_left_to_the_loader_and_an_unknown_name_or_url_is_one_line(tmp_path):
    assert resolve_network(tmp_path / "missing") == tmp_path / "missing"  # loading it says "checkpoint not found"
    with pytest.raises(CheckpointError, match=r"checkpoint not found: no-such-model \(nor is it the name of a"):
        resolve_network("no-such-model")
    with pytest.raises(PolyinrError, match="is not the URL of a released model polyinr knows"):
        resolve_network("https://example.invalid/model.pkl")


class RunsCode:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_a_hostile_pickle_served_by_name_is_refused_as_from_disk(server, monkeypatch, tmp_path):
    marker = tmp_path / "pwned"
    release = publish(server, monkeypatch, pickle.dumps(dict(G_ema=RunsCode(marker)), protocol=4))
    with pytest.raises(UnsafePickleError, match="could run code"):
        resolve_network(release.name)
    assert not marker.exists() and not (download_path(release).parent / release.name).exists()


FETCH = """
import json, sys
from polyinr.pretrained import RELEASES, Release, resolve_network
release = Release(**json.loads(sys.argv[1]))
RELEASES[release.name] = release
print(resolve_network(release.name))
"""


def test_two_processes_fetching_at_once_download_once_and_both_use_the_result(server, monkeypatch, stylegan3_file):
    release = publish(server, monkeypatch, stylegan3_file)
    argv = [sys.executable, "-c", FETCH, json.dumps(dataclasses.asdict(release))]
    processes = [subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [p.communicate(timeout=300) for p in processes]
    assert [p.returncode for p in processes] == [0, 0], [err for _, err in outputs]
    assert len(server.requests) == 1
    paths = {out.strip() for out, _ in outputs}
    assert len(paths) == 1 and polyinr.load(paths.pop()).model_name == "stylegan3-t"
    assert download_path(release).read_bytes() == stylegan3_file


def test_commands_take_a_released_name_and_list_shows_what_is_cached(server, monkeypatch, stylegan3_file):
    release = publish(server, monkeypatch, stylegan3_file)
    runner = CliRunner()
    result = runner.invoke(cli, ["info", release.name])
    assert result.exit_code == 0, result.output
    assert "model: stylegan3-t" in result.output
    listing = runner.invoke(cli, ["pretrained", "list"])
    assert listing.exit_code == 0
    assert str(download_path(release).with_suffix("")) in listing.output
    assert "stylegan3-t-ffhq-1024" in listing.output and "by hand: polyinr convert --from poly-inr" in listing.output
    served = load_networks((release.name, release.url))  # serve's repeatable --network
    assert [n.G.model_name for n in served] == ["stylegan3-t"] * 2
    assert served[0].name == download_path(release).with_suffix("").name
    got = runner.invoke(cli, ["pretrained", "get", "no-such-model"])
    assert got.exit_code == 1 and "no released model named 'no-such-model'" in got.output


def test_every_release_cites_its_source_and_a_known_converter():
    from polyinr.importers import converter_names

    for release in RELEASES.values():
        assert release.converter in converter_names() and release.source.endswith("README.md")
        assert release.url.startswith("https://") and release.direct == (
            not release.url.startswith("https://drive.google.com")
        )


def test_a_command_checks_its_other_arguments_before_fetching_a_released_model(server, monkeypatch, stylegan3_file):
    release = publish(server, monkeypatch, stylegan3_file)
    result = CliRunner().invoke(cli, ["metrics", "--network", release.name, "--metrics", "fid_cifar"])
    assert result.exit_code == 1 and "no feature space 'cifar'" in result.output
    assert not download_path(release).exists() and not list(download_path(release).parent.glob("*.part"))
