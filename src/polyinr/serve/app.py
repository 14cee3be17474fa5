"""The web viewer's ASGI app (Starlette on uvicorn): a page, tiles, frames, exports, and the models as JSON.

Networks are fixed when the server starts; the browser names them by index and never sends a path. Every
query parameter is checked, and a bad one answers 4xx with a one-line JSON ``{"error": …}``. Off the
loopback interface every request must carry the token printed with the URL (query ``token=``, the cookie the
page receives from it, or ``Authorization: Bearer``): none answers 401, a wrong one 403.

Endpoints (all GET):

- ``/``: the page; ``/static/…``: its script and style, shipped in the package;
- ``/api/models``: each network's model, grid support, classes (with names), latents and config;
- ``/api/tile?model&level&row&col[&size][&format]`` + a source: one tile, PNG or lossless WebP, exactly
  the pixels of ``polyinr render --window W --size S`` for the window and size in its ``X-Polyinr-Window`` /
  ``X-Polyinr-Size`` headers;
- ``/api/frame?model[&dr&dc&angle]`` + a source: the native frame, translated / rotated (frame-only models);
- ``/api/export?model&window&size[&job]`` + a source: any window at any size as one streamed PNG, rendered
  as ``polyinr render`` renders it; ``/api/progress?job`` reports its tiles done.

A source is ``seed=S`` or ``latent=I`` (the I-th latent given at start). Seeds take ``class=K``, ``psi=P``,
``cutoff=N`` (truncate only the first N ws) and optionally ``seed2=S2&t=T``: the ``ws`` of S and S2 mixed
linearly (``lerp``) by T ∈ [0, 1].

Extension point for per-model inputs (InfinityGAN's style-fusion points, placed by clicking on the page): such
an input joins :class:`Source` (parsed and checked in :func:`parse_source`, part of the source key so tiles
cache apart) and reaches the model as a keyword of ``G.synthesize``; the page adds it in
``Pane.sourceParams()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import math
import re
import secrets
import socket
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from importlib.resources import files
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import torch
import uvicorn
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from polyinr.checkpoint import load_generator
from polyinr.errors import PolyinrError
from polyinr.grid import Grid, parse_window
from polyinr.image_io import to_uint8
from polyinr.models.generator import Generator
from polyinr.models.registry import get_entry
from polyinr.pretrained import resolve_network
from polyinr.sampling import LatentFileError, load_latents, ws_for
from polyinr.serve.tiles import (
    DEFAULT_BATCH_PIXELS,
    FORMATS,
    TILE_SIZES,
    TileRenderer,
    client_gone,
    encode,
    export_png,
)

STATIC = files("polyinr.serve") / "static"
COOKIE = "polyinr_token"
MAX_SEED = 2**32 - 1  # NumPy's RandomState takes seeds below 2^32
PSI_RANGE = (-4.0, 4.0)


class RequestError(PolyinrError):
    """A request the viewer refuses; ``status`` is its HTTP status (4xx)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Network:
    """One generator the viewer serves: its name, renderer, class names and preloaded latents."""

    name: str
    G: Generator
    class_names: list[str] | None = None
    latents: list[tuple[str, torch.Tensor]] = field(default_factory=list)  # (name, ws [1, num_ws, w_dim])
    renderer: TileRenderer | None = None

    @property
    def device(self) -> torch.device:
        return next(self.G.parameters()).device


@dataclass(frozen=True)
class Limits:
    """What one request may ask for."""

    max_request_pixels: int = 2048 * 2048  # a tile or a frame
    max_export_pixels: int = 16384 * 16384  # one exported image
    max_exports: int = 2  # exports rendering at once (others answer 429)


LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1", "[::1]")


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# ---------------------------------------------------------------------------- parameters


class Params:
    """The query parameters of one request, read once each, checked, with one-line errors."""

    def __init__(self, request: Request, allowed: Sequence[str]) -> None:
        self.values: dict[str, str] = {}
        for key, value in request.query_params.multi_items():
            if key == "token":
                continue
            if key not in allowed:
                raise RequestError(f"unknown parameter {key!r}; this endpoint takes {', '.join(allowed)}")
            if key in self.values:
                raise RequestError(f"parameter {key!r} is given twice")
            if len(value) > 200:
                raise RequestError(f"parameter {key!r} is too long")
            self.values[key] = value

    def has(self, name: str) -> bool:
        return self.values.get(name, "") != ""

    def int(self, name: str, lo: int, hi: int, default: int | None = None) -> int:
        text = self.values.get(name, "")
        if text == "":
            if default is None:
                raise RequestError(f"missing parameter {name!r}")
            return default
        if not re.fullmatch(r"[+-]?\d{1,20}", text.strip()):
            raise RequestError(f"{name} must be a whole number, got {text!r}")
        value = int(text)
        if not lo <= value <= hi:
            raise RequestError(f"{name} must be within {lo}..{hi}, got {value}")
        return value

    def float(self, name: str, lo: float, hi: float, default: float | None = None) -> float:
        text = self.values.get(name, "")
        if text == "":
            if default is None:
                raise RequestError(f"missing parameter {name!r}")
            return default
        try:
            value = float(text)
        except ValueError:
            raise RequestError(f"{name} must be a number, got {text!r}") from None
        if not math.isfinite(value):
            raise RequestError(f"{name} must be a finite number, got {text!r}")
        if not lo <= value <= hi:
            raise RequestError(f"{name} must be within {lo:g}..{hi:g}, got {value:g}")
        return value

    def choice(self, name: str, choices: Sequence[str], default: str) -> str:
        value = self.values.get(name, "") or default
        if value not in choices:
            raise RequestError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
        return value


SOURCE_PARAMS = ("seed", "latent", "class", "psi", "cutoff", "seed2", "t")


@dataclass(frozen=True)
class Source:
    """Where a picture's ``ws`` comes from: a seed (class, psi, optionally mixed with seed2) or a latent."""

    seed: int | None
    latent: int | None
    class_idx: int | None
    psi: float
    cutoff: int | None  # truncate only the first ``cutoff`` ws (None: all)
    seed2: int | None
    t: float

    @property
    def key(self) -> Hashable:
        return (self.seed, self.latent, self.class_idx, self.psi, self.cutoff, self.seed2, self.t)


def parse_source(p: Params, net: Network) -> Source:
    """Read and check the source parameters against ``net``."""
    G = net.G
    if p.has("seed") == p.has("latent"):
        raise RequestError("give seed or latent (one of them)")
    class_idx = None
    if p.has("class"):
        if G.num_classes == 0:
            raise RequestError(f"model {net.name!r} is unconditional: it takes no class")
        class_idx = p.int("class", 0, G.num_classes - 1)
    psi = p.float("psi", *PSI_RANGE, default=1.0)
    cutoff = p.int("cutoff", 0, G.num_ws) if p.has("cutoff") else None
    if p.has("latent"):
        if not net.latents:
            raise RequestError(f"model {net.name!r} has no latents (latent files are given when the server starts)")
        latent = p.int("latent", 0, len(net.latents) - 1)
        if class_idx is not None or psi != 1.0 or cutoff is not None or p.has("seed2"):
            raise RequestError("class, psi, cutoff and seed2 do not apply to a latent: it already holds its w")
        return Source(None, latent, None, 1.0, None, None, 0.0)
    seed = p.int("seed", 0, MAX_SEED)
    if G.num_classes > 0 and class_idx is None:
        raise RequestError(f"model {net.name!r} is class-conditional: give class (0..{G.num_classes - 1})")
    seed2 = p.int("seed2", 0, MAX_SEED) if p.has("seed2") else None
    t = p.float("t", 0.0, 1.0, default=0.0)
    if seed2 is None and p.has("t"):
        raise RequestError("t mixes two seeds: give seed2 too")
    return Source(seed, None, class_idx, psi, cutoff, seed2, t)


def ws_maker(net: Network, source: Source) -> Callable[[], torch.Tensor]:
    """A function (run in the render thread) giving ``ws [1, num_ws, w_dim]`` for ``source`` through the shared
    seeds → ws path, the same call ``polyinr render --seed`` makes; cached per source."""
    G, device = net.G, net.device

    def make() -> torch.Tensor:
        if source.latent is not None:
            return net.latents[source.latent][1]
        mapping = dict(classes=source.class_idx, truncation_psi=source.psi, truncation_cutoff=source.cutoff)
        ws = ws_for(G, seeds=[source.seed], device=device, **mapping)
        if source.seed2 is None:
            return ws
        ws2 = ws_for(G, seeds=[source.seed2], device=device, **mapping)
        return torch.lerp(ws, ws2, source.t)

    return lambda: net.renderer.ws(source.key, make)


def parse_size(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"(\d{1,6})(?:x(\d{1,6}))?", text.strip().lower())
    if not match:
        raise RequestError(f"size must look like 512 or 512x1024, got {text!r}")
    h = int(match.group(1))
    w = int(match.group(2) or h)
    if h <= 0 or w <= 0:
        raise RequestError(f"size must be positive, got {text!r}")
    return h, w


def image_format(request: Request, p: Params) -> str:
    if p.has("format"):
        return p.choice("format", tuple(FORMATS), "png")
    return "webp" if "image/webp" in request.headers.get("accept", "") else "png"


# ---------------------------------------------------------------------------- the app


def create_app(
    networks: Sequence[Network],
    token: str | None = None,
    limits: Limits = Limits(),
    max_batch_pixels: int = DEFAULT_BATCH_PIXELS,
    cache_bytes: int = 256 << 20,
    allowed_hosts: Sequence[str] | None = None,
) -> Any:
    """The viewer over ``networks`` (fixed for the server's life), an ASGI app.

    ``token`` None = no authentication. ``max_batch_pixels`` bounds one synthesis call of merged tiles.
    ``allowed_hosts`` (None = any) are the names the ``Host`` header may give: a server on loopback without a token
    accepts only its own names, so a web page elsewhere cannot reach it through a DNS name that points at
    127.0.0.1 (DNS rebinding).
    """
    if not networks:
        raise PolyinrError("the viewer needs at least one network")
    for net in networks:
        net.renderer = TileRenderer(net.G, max_batch_pixels=max_batch_pixels, cache_bytes=cache_bytes)
    progress: OrderedDict[str, dict[str, int]] = OrderedDict()
    exporting = [0]

    def network(p: Params) -> Network:
        index = p.int("model", 0, len(networks) - 1, default=0)
        return networks[index]

    async def index(request: Request) -> Response:
        return HTMLResponse((STATIC / "index.html").read_text(encoding="utf-8"), headers={"Cache-Control": "no-store"})

    async def favicon(request: Request) -> Response:
        return Response(status_code=204)

    async def models(request: Request) -> Response:
        Params(request, ())
        entries = []
        for i, net in enumerate(networks):
            G, tiling = net.G, net.renderer.tiling
            entries.append(
                {
                    "id": i,
                    "name": net.name,
                    "model": G.model_name,
                    "support": G.grid_support.kind,
                    "motions": G.grid_support.kind == "frame" and G.grid_support.motions,  # the frame moves, rotates
                    "grids": G.describe_grids(),
                    "img_resolution": G.img_resolution,
                    "num_classes": G.num_classes,
                    "class_names": net.class_names or [str(k) for k in range(G.num_classes)],
                    "latents": [name for name, _ in net.latents],
                    "levels": None if tiling is None else [tiling.min_level, tiling.max_level],
                    "presets": sorted(get_entry(G.model_name).presets),  # the registered model's named presets
                    "config": G.config_dict(),
                }
            )
        return JSONResponse(
            {
                "models": entries,
                "tile_sizes": list(TILE_SIZES),
                "max_request_pixels": limits.max_request_pixels,
                "max_export_pixels": limits.max_export_pixels,
            }
        )

    async def tile(request: Request) -> Response:
        p = Params(request, ("model", "level", "row", "col", "size", "format", *SOURCE_PARAMS))
        net = network(p)
        tiling = net.renderer.tiling
        if tiling is None:
            raise RequestError(f"model {net.name!r} accepts only its native frame: {net.G.describe_grids()}")
        level = p.int("level", tiling.min_level, tiling.max_level)
        row, col = p.int("row", -(2**40), 2**40), p.int("col", -(2**40), 2**40)
        size = p.int("size", TILE_SIZES[0], TILE_SIZES[-1], default=256)
        if size not in TILE_SIZES:
            raise RequestError(f"size must be one of {', '.join(map(str, TILE_SIZES))}, got {size}")
        if size * size > limits.max_request_pixels:
            raise RequestError(f"a {size}x{size} tile exceeds this server's {limits.max_request_pixels} pixels")
        fmt = image_format(request, p)
        source = parse_source(p, net)
        try:
            tiling.check(level, row, col, size)
            net.G.check_tiles(size, size)
            grid = net.G.check_grid(tiling.grid(level, row, col, size))
        except PolyinrError as e:
            raise RequestError(str(e)) from None
        data = await net.renderer.tile(
            source.key, ws_maker(net, source), level, row, col, size, fmt, gone=lambda: client_gone(request.receive)
        )
        if data is None:
            return Response(status_code=499)  # the client closed the request; nobody reads this
        window = ",".join(repr(v) for v in (grid.top, grid.left, grid.bottom, grid.right))
        headers = {"X-Polyinr-Window": window, "X-Polyinr-Size": f"{size}x{size}", "Cache-Control": "no-store"}
        return Response(data, media_type=FORMATS[fmt], headers=headers)

    async def frame(request: Request) -> Response:
        p = Params(request, ("model", "dr", "dc", "angle", "format", *SOURCE_PARAMS))
        net = network(p)
        G = net.G
        if G.img_resolution**2 > limits.max_request_pixels:
            raise RequestError(f"the native frame exceeds this server's {limits.max_request_pixels} pixels", 413)
        dr, dc = p.float("dr", -100.0, 100.0, default=0.0), p.float("dc", -100.0, 100.0, default=0.0)
        angle = p.float("angle", -360.0, 360.0, default=0.0)
        fmt = image_format(request, p)
        source = parse_source(p, net)
        grid = Grid.frame(G.img_resolution)
        if dr or dc:
            grid = grid.translated(dr, dc)
        if angle:
            grid = grid.rotated(math.radians(angle))
        try:
            grid = G.check_grid(grid)
        except PolyinrError as e:
            raise RequestError(str(e)) from None
        key = ("frame", source.key, dr, dc, angle, fmt)
        data = net.renderer.cache.get(key)
        if data is None:
            ws = ws_maker(net, source)

            def render() -> bytes:
                with torch.no_grad():
                    return encode(to_uint8(G.synthesize(ws(), grid))[0], fmt)

            data = await net.renderer.run(render)
            net.renderer.cache.put(key, data)
        return Response(data, media_type=FORMATS[fmt], headers={"Cache-Control": "no-store"})

    async def export(request: Request) -> Response:
        p = Params(request, ("model", "window", "size", "job", "check", *SOURCE_PARAMS))
        net = network(p)
        if net.renderer.tiling is None:
            raise RequestError(f"model {net.name!r} accepts only its native frame: {net.G.describe_grids()}")
        if not p.has("window") or not p.has("size"):
            raise RequestError("give window (top,left,bottom,right) and size (HxW)")
        try:
            window = parse_window(p.values["window"])
        except PolyinrError as e:
            raise RequestError(str(e)) from None
        if max(abs(v) for v in window) > net.renderer.tiling.max_extent:
            raise RequestError(f"window lies beyond ±{net.renderer.tiling.max_extent:g} frame units")
        H, W = parse_size(p.values["size"])
        if limits.max_export_pixels < H * W:
            raise RequestError(f"{H}x{W} exceeds this server's export limit of {limits.max_export_pixels} pixels", 413)
        job = p.values.get("job", "")
        if job and not re.fullmatch(r"[A-Za-z0-9_-]{1,40}", job):
            raise RequestError("job must be 1-40 letters, digits, '-' or '_'")
        source = parse_source(p, net)
        try:
            grid = net.G.check_grid(Grid.window(*window, H, W))
        except PolyinrError as e:
            raise RequestError(str(e)) from None
        tiles = (-(-H // 256)) * (-(-W // 256))
        if p.choice("check", ("0", "1"), "0") == "1":
            return JSONResponse({"size": [H, W], "tiles": tiles})
        if exporting[0] >= limits.max_exports:
            raise RequestError(f"{limits.max_exports} exports are rendering; try again when one is done", 429)
        state = {"done": 0, "total": tiles}
        if job:
            progress[job] = state
            while len(progress) > 64:
                progress.popitem(last=False)

        def on_tile(done: int, total: int) -> None:
            state["done"] = done

        async def body():
            exporting[0] += 1  # counted from the first byte: a response that never starts holds nothing
            try:
                async for chunk in export_png(net.renderer, ws_maker(net, source), grid, 256, on_tile):
                    yield chunk
            finally:
                exporting[0] -= 1

        name = f"polyinr-{re.sub(r'[^A-Za-z0-9_.-]', '_', net.name)}-{H}x{W}.png"
        return StreamingResponse(
            body(), media_type="image/png", headers={"Content-Disposition": f'attachment; filename="{name}"'}
        )

    async def export_progress(request: Request) -> Response:
        p = Params(request, ("job",))
        state = progress.get(p.values.get("job", ""))
        if state is None:
            raise RequestError("no export with this job id", 404)
        return JSONResponse(state)

    async def request_error(request: Request, exc: RequestError) -> Response:
        return JSONResponse({"error": str(exc)}, status_code=exc.status)

    async def library_error(request: Request, exc: PolyinrError) -> Response:
        return JSONResponse({"error": str(exc).splitlines()[0]}, status_code=400)

    async def not_found(request: Request, exc: Exception) -> Response:
        return JSONResponse({"error": "not found"}, status_code=404)

    async def server_error(request: Request, exc: Exception) -> Response:
        return JSONResponse({"error": f"internal error: {type(exc).__name__}"}, status_code=500)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        for net in networks:
            net.renderer.start()
        try:
            yield
        finally:
            await asyncio.gather(*(net.renderer.stop() for net in networks))
            for net in networks:
                net.renderer.close()

    routes = [
        Route("/", index),
        Route("/favicon.ico", favicon),
        Route("/api/models", models),
        Route("/api/tile", tile),
        Route("/api/frame", frame),
        Route("/api/export", export),
        Route("/api/progress", export_progress),
        Mount("/static", StaticFiles(directory=str(STATIC)), name="static"),
    ]
    handlers: dict[Any, Callable] = {
        RequestError: request_error,
        PolyinrError: library_error,
        404: not_found,
        Exception: server_error,
    }
    middleware = [Middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts))] if allowed_hosts else []
    app = Starlette(routes=routes, exception_handlers=handlers, lifespan=lifespan, middleware=middleware)
    app.state.networks = networks
    return TokenAuth(app, token) if token else app


class TokenAuth:
    """ASGI middleware: every HTTP request carries the token (query, cookie or bearer), else 401 / 403.

    A request that brings the token in its query gets it back as an HttpOnly cookie, so the page's own
    requests carry it without putting it in every URL.
    """

    def __init__(self, app: Any, token: str) -> None:
        self.app, self.token = app, token
        self.state = app.state

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        from_query = (parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token") or [None])[0]
        cookie = SimpleCookie()
        with contextlib.suppress(Exception):
            cookie.load(headers.get("cookie", ""))
        bearer = headers.get("authorization", "")
        given = from_query or (cookie[COOKIE].value if COOKIE in cookie else None)
        if given is None and bearer.lower().startswith("bearer "):
            given = bearer[7:].strip()
        if not given:
            return await JSONResponse({"error": "this server needs its token: open the URL it printed"}, 401)(
                scope, receive, send
            )
        if not secrets.compare_digest(given.encode(), self.token.encode()):
            return await JSONResponse({"error": "wrong token"}, 403)(scope, receive, send)
        if from_query is None:
            return await self.app(scope, receive, send)

        async def send_with_cookie(message: dict) -> None:
            if message["type"] == "http.response.start":
                value = f"{COOKIE}={self.token}; Path=/; HttpOnly; SameSite=Strict"
                message = {**message, "headers": [*message.get("headers", []), (b"set-cookie", value.encode())]}
            await send(message)

        await self.app(scope, receive, send_with_cookie)


# ---------------------------------------------------------------------------- starting a server


def load_networks(
    paths: Sequence[str],
    device: torch.device | str = "cpu",
    latent_paths: Sequence[str] = (),
    class_names: Sequence[str] | None = None,
) -> list[Network]:
    """Load each checkpoint (or run directory) once on ``device``; attach the latent files and class names
    to every network they fit (a latent file or a name list that fits none is an error)."""
    networks = []
    for spec in paths:
        path = resolve_network(spec)  # a released model's name or URL: its cached checkpoint, fetched once
        G = load_generator(path, device)
        name = path.resolve().name
        if any(n.name == name for n in networks):
            name = f"{name}-{len(networks)}"
        names = list(class_names) if class_names and len(class_names) == G.num_classes else None
        networks.append(Network(name, G, names))
    if class_names and not any(n.class_names for n in networks):
        counts = ", ".join(str(n.G.num_classes) for n in networks)
        raise PolyinrError(f"{len(class_names)} class names fit no network (they have {counts} classes)")
    for path in latent_paths:
        fitted, reasons = 0, []
        for net in networks:
            try:
                ws = load_latents(path, net.G, device).ws
            except LatentFileError as e:
                reasons.append(str(e))
                continue
            net.latents.extend((f"{Path(path).stem}[{i}]", ws[i : i + 1]) for i in range(len(ws)))
            fitted += 1
        if not fitted:
            raise PolyinrError(reasons[0])
    return networks


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (port 0 = any free port), or a one-line error."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        raise PolyinrError(f"unknown host {host!r}") from None
    family, _, _, _, address = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as e:
        sock.close()
        raise PolyinrError(f"cannot listen on {host}:{port}: {e.strerror}") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def server_url(sock: socket.socket, host: str, token: str | None) -> str:
    """The URL that opens the page (with the token when there is one)."""
    port = sock.getsockname()[1]
    shown = socket.gethostname() if host in ("0.0.0.0", "::", "") else host  # every interface: name this machine
    shown = f"[{shown}]" if ":" in shown else shown
    return f"http://{shown}:{port}/" + (f"?token={token}" if token else "")


def make_server(app: Any, log_level: str = "warning") -> uvicorn.Server:
    """A uvicorn server for ``app``; run it with ``server.run(sockets=[sock])``."""
    return uvicorn.Server(uvicorn.Config(app, log_level=log_level, lifespan="on", timeout_graceful_shutdown=2))
