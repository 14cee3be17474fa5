"""Files fetched over HTTP into polyinr's user cache: resumable, verified, never half-written, one process at a time.

:func:`download` writes ``<dest>.part``, resumes it with an HTTP ``Range`` request after a cut connection (in the
same call, or in a later one), refuses a web page served in place of the file, checks the size and SHA-256 it is
given, and only then renames the file onto ``dest``: ``dest`` exists only complete and verified. A file that
fails its check is kept aside as ``<dest>.rejected`` and never used. :func:`file_lock` serialises processes that
fetch the same file: the first downloads, the others wait and then find it there.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import http.client
import os
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from polyinr.errors import PolyinrError
from polyinr.progress import progress_bar

CHUNK_BYTES = 1 << 20
TIMEOUT_S = 60  # seconds without a byte before a connection counts as cut
ATTEMPTS = 3  # connections per call; each resumes where the last one stopped
HTML_STARTS = (b"<!doctype html", b"<html")


class DownloadError(PolyinrError):
    """A file could not be fetched, or what was fetched is not the file (a web page, another size or hash)."""


class Unreachable(DownloadError):
    """The server could not be reached at all (no network, no such host): the caller may say what to fetch."""


def cache_dir() -> Path:
    """polyinr's user cache: ``$POLYINR_CACHE_DIR``, else ``$XDG_CACHE_HOME/polyinr``, else ``~/.cache/polyinr``."""
    if os.environ.get("POLYINR_CACHE_DIR"):
        return Path(os.environ["POLYINR_CACHE_DIR"]).expanduser()
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]).expanduser() / "polyinr"
    return Path.home() / ".cache" / "polyinr"


def sha256_of(path: Path) -> str:
    """The SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK_BYTES), b""):
            digest.update(block)
    return digest.hexdigest()


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive OS lock on ``path`` (created if missing), waiting for another holder to finish. The
    lock belongs to the open file, so a process that dies, however it dies, leaves no stale lock."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def download(url: str, dest: Path, size: int | None = None, sha256: str | None = None, desc: str = "") -> Path:
    """Fetch ``url`` into ``dest`` (see the module docstring); ``size`` / ``sha256``: what the file must be (None:
    not published). Returns ``dest``. Call under :func:`file_lock` when other processes may fetch it too."""
    partial = dest.with_name(dest.name + ".part")
    dest.parent.mkdir(parents=True, exist_ok=True)
    for attempt in range(ATTEMPTS):
        try:
            total = _fetch_into(url, partial, desc or dest.name)
            break
        except (ConnectionError, TimeoutError, http.client.IncompleteRead) as e:  # cut: resume from the partial file
            if attempt == ATTEMPTS - 1:
                got = partial.stat().st_size if partial.exists() else 0
                raise DownloadError(
                    f"the download of {url} was cut after {got:,} bytes ({e.__class__.__name__}); "
                    "try again to resume it"
                ) from None
    _verify(partial, dest, url, expected_size=size if size is not None else total, sha256=sha256)
    with open(partial, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(partial, dest)
    return dest


def _fetch_into(url: str, partial: Path, desc: str) -> int | None:
    """Append the rest of ``url`` to ``partial``; the file's full size when the server said it."""
    offset = partial.stat().st_size if partial.exists() else 0
    headers = {"User-Agent": "polyinr", **({"Range": f"bytes={offset}-"} if offset else {})}
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=TIMEOUT_S)
    except urllib.error.HTTPError as e:
        if e.code == 416 and offset:  # the partial file is not a prefix the server recognises: start again
            partial.unlink()
            return _fetch_into(url, partial, desc)
        raise DownloadError(f"{url} answered HTTP {e.code} ({e.reason})") from None
    except urllib.error.URLError as e:
        if isinstance(e.reason, (ConnectionResetError, TimeoutError)):
            raise e.reason from None
        raise Unreachable(f"cannot reach {url}: {e.reason}") from None
    with response:
        if response.headers.get_content_type() == "text/html":
            raise _web_page(url)
        resumed = response.status == 206
        if not resumed:
            offset = 0
        length = response.headers.get("Content-Length")
        total = offset + int(length) if length is not None and length.isdigit() else None
        with (
            open(partial, "ab" if resumed else "wb") as f,
            progress_bar(total, desc, unit="B", unit_scale=True, unit_divisor=1024, initial=offset) as bar,
        ):
            while chunk := response.read(CHUNK_BYTES):
                if f.tell() == 0 and chunk.lstrip()[:16].lower().startswith(HTML_STARTS):
                    break
                f.write(chunk)
                bar.update(len(chunk))
        if partial.stat().st_size == 0 and chunk:  # the body is a web page: nothing of it is kept
            partial.unlink()
            raise _web_page(url)
        if total is not None and partial.stat().st_size < total:
            raise http.client.IncompleteRead(b"", total - partial.stat().st_size)
    return total


def _web_page(url: str) -> DownloadError:
    return DownloadError(f"{url} served a web page, not the file (the link may need a browser, or it has moved)")


def _verify(partial: Path, dest: Path, url: str, expected_size: int | None, sha256: str | None) -> None:
    """Refuse a fetched file of another size or hash: it is moved aside to ``<dest>.rejected``, never used."""
    got = partial.stat().st_size
    problem = None
    if expected_size is not None and got != expected_size:
        problem = f"{got:,} bytes where {expected_size:,} were expected"
    elif sha256 is not None and (actual := sha256_of(partial)) != sha256.lower():
        problem = f"sha256 {actual} where {sha256.lower()} was expected"
    if problem is not None:
        rejected = dest.with_name(dest.name + ".rejected")
        os.replace(partial, rejected)
        raise DownloadError(f"the file from {url} has {problem}; it was not used (kept aside as {rejected})")
