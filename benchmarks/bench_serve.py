"""Viewer tile latency and the speed-up of batching, over real HTTP (uvicorn + httpx).

Poly-INR ``cpu`` preset (random weights: the cost per pixel is the trained model's), 256² PNG tiles. A client
behaves like a browser tab: it loads views of 4 × 3 neighbouring tiles with at most 6 requests in flight (a
browser's connections per host), then pans to a fresh view; every tile is new (no cache hits). Each client has
its own seed, so only a client's own neighbouring tiles can share a synthesis call.

Two servers run in this process on the same generator: ``batched`` (up to 16 tiles per synthesis call, the
default) and ``one tile per call`` (``--batch-tiles 1``); their rounds alternate and render the same tiles.
Reported per mode and client count: tile latency p50 / p95 (request sent → response read), throughput (tiles /
wall second, best and median of the rounds) and the median share of the wall time the render thread spent
synthesizing and encoding. Last, the cost of one tile split into its steps without HTTP, and from it the most
that merging tiles could gain on this machine.


    python benchmarks/bench_serve.py --rounds 3
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import threading
import time

import httpx
import torch

import polyinr
from polyinr.image_io import to_uint8
from polyinr.serve.app import Network, bind, create_app, make_server, server_url
from polyinr.serve.tiles import DEFAULT_BATCH_PIXELS

VIEW_ROWS, VIEW_COLS, IN_FLIGHT, TILE = 3, 4, 6, 256


def start_server(G, max_batch_pixels: int):
    app = create_app([Network("cpu", G)], max_batch_pixels=max_batch_pixels, cache_bytes=1 << 20)
    sock = bind("127.0.0.1", 0)
    server = make_server(app)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    return server, thread, server_url(sock, "127.0.0.1", None), app


async def client(http: httpx.AsyncClient, url: str, seed: int, views: int, origin: int, latencies: list[float]):
    limit = asyncio.Semaphore(IN_FLIGHT)

    async def one(row: int, col: int) -> None:
        async with limit:
            start = time.perf_counter()
            params = {"seed": seed, "level": 3, "row": row, "col": col, "size": TILE, "format": "png"}
            r = await http.get(url + "api/tile", params=params)
            r.raise_for_status()
            latencies.append(time.perf_counter() - start)

    for v in range(views):
        top, left = origin, origin + v * VIEW_COLS  # pan one view to the right
        await asyncio.gather(*(one(top + r, left + c) for r in range(VIEW_ROWS) for c in range(VIEW_COLS)))


async def measure(url: str, clients: int, views: int, origin: int) -> tuple[list[float], float]:
    latencies: list[float] = []
    async with httpx.AsyncClient(timeout=600, limits=httpx.Limits(max_connections=IN_FLIGHT * clients)) as http:
        start = time.perf_counter()
        await asyncio.gather(*(client(http, url, 1000 + i, views, origin, latencies) for i in range(clients)))
        wall = time.perf_counter() - start
    return latencies, wall


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def cost_breakdown(G, rounds: int) -> None:
    """Where a tile's time goes without HTTP, and the most any merging could gain.

    Per 256² tile, interleaved over ``rounds``: the latent's ws (mapping), synthesis of the tile alone, synthesis
    per tile inside one 4 × 4 call, and the uint8 conversion and PNG encoding. Merging 16 tiles shares only the
    ws and the call, so the speed-up it can reach is at most (ws + alone + encode) / (ws/16 + merged + encode).
    A second bound from the FLOPs: the tile's rate against a 4096² fp32 ``torch.mm`` timed in the same rounds.
    """
    from polyinr.serve.tiles import encode, tiling_for

    tiling = tiling_for(G)
    z = torch.randn(1, G.z_dim)
    ws = G.mapping(z, None)
    a, b = torch.randn(4096, 4096), torch.randn(4096, 4096)
    image = G.synthesize(ws, tiling.grid(3, 0, 0, TILE))
    steps = {
        "ws (mapping)": lambda: G.mapping(z, None),
        "synthesis, tile alone": lambda: G.synthesize(ws, tiling.grid(3, 0, 0, TILE)),
        "synthesis per tile, 4x4 tiles in one call": lambda: G.synthesize(ws, tiling.span(3, 0, 0, 4, 4, TILE)),
        "uint8 + PNG encoding": lambda: encode(to_uint8(image)[0], "png"),
        "fp32 matmul peak, 4096² torch.mm": lambda: torch.mm(a, b),
    }
    per_call = {"synthesis per tile, 4x4 tiles in one call": 16}
    times: dict[str, list[float]] = {name: [] for name in steps}
    with torch.no_grad():
        for _ in range(rounds):
            for name, step in steps.items():
                start = time.perf_counter()
                step()
                times[name].append((time.perf_counter() - start) / per_call.get(name, 1))
    for name, values in times.items():
        print(f"{name}: best {min(values) * 1000:.1f} ms, median {statistics.median(values) * 1000:.1f} ms")
    for label, pick in (("best", min), ("median", statistics.median)):
        ws_s, alone, merged, enc, mm = (pick(values) for values in times.values())
        bound = (ws_s + alone + enc) / (ws_s / 16 + merged + enc)
        peak, achieved = 2 * 4096**3 / mm, 2 * G.macs_per_pixel() * TILE * TILE / alone
        print(
            f"{label}s: merging 16 tiles can gain at most {bound:.2f}x (no HTTP); a tile alone computes "
            f"{achieved / 1e9:.1f} GFLOP/s, {achieved / peak:.0%} of the {peak / 1e9:.1f} GFLOP/s matmul peak, "
            f"so no call shape can run its pixels more than {peak / achieved:.2f}x faster"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", default="1,16")
    parser.add_argument("--views", type=int, default=2, help="views each client loads per round (1 client)")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"load average at start: {os.getloadavg()}  torch threads {torch.get_num_threads()}")
    torch.manual_seed(0)
    G = polyinr.create("poly-inr", preset="cpu").eval().requires_grad_(False)
    modes = {"batched": DEFAULT_BATCH_PIXELS, "one tile per call": TILE * TILE}
    servers = {name: start_server(G, budget) for name, budget in modes.items()}
    counts = [int(c) for c in args.clients.split(",")]
    results: dict[tuple[str, int], list[tuple[list[float], float]]] = {}
    batches: dict[tuple[str, int], list[int]] = {}
    busy: dict[tuple[str, int], list[float]] = {}  # render-thread seconds / wall seconds, per round
    origin = 0
    for r in range(args.rounds):
        for clients in counts:
            views = args.views if clients == 1 else 1
            origin += 1000  # fresh tiles for both servers (each has its own cache): the same pixels in both modes
            for name in modes if r % 2 == 0 else reversed(modes):
                _, _, url, app = servers[name]
                stats = app.state.networks[0].renderer.stats
                before, rendering = len(stats.batch_sizes), stats.render_seconds
                latencies, wall = asyncio.run(measure(url, clients, views, origin))
                results.setdefault((name, clients), []).append((latencies, wall))
                batches.setdefault((name, clients), []).extend(stats.batch_sizes[before:])
                busy.setdefault((name, clients), []).append((stats.render_seconds - rendering) / wall)
    print(
        "\n| clients | mode | tiles/round | p50 latency | p95 latency | throughput best / median (tiles/s) |"
        " mean batch | render thread busy |\n|---|---|---|---|---|---|---|---|"
    )
    speedups = {}
    for clients in counts:
        for name in modes:
            rounds = results[(name, clients)]
            lat = [x for latencies, _ in rounds for x in latencies]
            rates = [len(latencies) / wall for latencies, wall in rounds]
            sizes = batches[(name, clients)]
            speedups.setdefault(clients, {})[name] = statistics.median(rates)
            print(
                f"| {clients} | {name} | {len(rounds[0][0])} | {pct(lat, 0.5) * 1000:.0f} ms | "
                f"{pct(lat, 0.95) * 1000:.0f} ms | {max(rates):.1f} / {statistics.median(rates):.1f} | "
                f"{statistics.mean(sizes):.2f} | {statistics.median(busy[(name, clients)]):.0%} |"
            )
    for clients, rates in speedups.items():
        print(
            f"batching speed-up, {clients} client(s), median throughput: "
            f"{rates['batched'] / rates['one tile per call']:.2f}x"
        )
    cost_breakdown(G, max(5, args.rounds))
    print(f"load average at end: {os.getloadavg()}")
    for server, thread, _, _ in servers.values():
        server.should_exit = True
        thread.join(10)


if __name__ == "__main__":
    main()
