"""``polyinr serve``: the web viewer (an infinite canvas in the browser) over one or more networks."""

from __future__ import annotations

import secrets
from pathlib import Path

import click

from polyinr.cli.group import main
from polyinr.cli.options import NETWORK_HELP, device_option, resolve_device
from polyinr.errors import PolyinrError
from polyinr.serve.app import (
    LOOPBACK_NAMES,
    Limits,
    bind,
    create_app,
    is_loopback,
    load_networks,
    make_server,
    server_url,
)
from polyinr.serve.tiles import DEFAULT_BATCH_PIXELS


@main.command()
@click.option(
    "--network",
    "networks",
    multiple=True,
    required=True,
    metavar="NETWORK",
    help=f"{NETWORK_HELP[:-1]} (repeatable: compare models side by side).",
)
@click.option(
    "--latent",
    "latent_paths",
    multiple=True,
    type=click.Path(dir_okay=False),
    metavar="FILE",
    help="Latent file(s) to offer beside seeds, e.g. from polyinr invert (repeatable).",
)
@click.option(
    "--class-names",
    "class_names_path",
    type=click.Path(dir_okay=False),
    default=None,
    metavar="FILE",
    help="Class names, one per line, for the networks with that many classes.",
)
@click.option("--host", default="127.0.0.1", help="Interface to listen on; any other than loopback needs the token.")
@click.option("--port", type=click.IntRange(0, 65535), default=7860, help="Port (0 = any free port).")
@click.option("--no-auth", is_flag=True, help="Serve without a token even off the loopback interface.")
@click.option(
    "--batch-tiles",
    type=click.IntRange(min=1),
    default=DEFAULT_BATCH_PIXELS // (256 * 256),
    show_default=True,
    metavar="N",
    help="Most 256x256 tiles of one latent merged into one synthesis call.",
)
@click.option("--cache-mb", type=click.IntRange(min=1), default=256, help="Memory for rendered tiles.")
@click.option(
    "--max-export",
    "max_export",
    type=click.IntRange(min=1),
    default=16384,
    metavar="N",
    help="Largest exported image: N×N pixels.",
)
@device_option
def serve(networks, latent_paths, class_names_path, host, port, no_auth, batch_tiles, cache_mb, max_export, device):
    """Serve a web page to pan and zoom over the continuous image, compare models, and export posters."""
    class_names = None
    if class_names_path is not None:
        try:
            lines = Path(class_names_path).read_text(encoding="utf-8").splitlines()
        except UnicodeDecodeError:
            raise PolyinrError(f"{class_names_path} is not a text file of class names") from None
        class_names = [line.strip() for line in lines if line.strip()]
    loaded = load_networks(networks, resolve_device(device), latent_paths, class_names)
    token = None if no_auth or is_loopback(host) else secrets.token_urlsafe(24)
    sock = bind(host, port)
    hosts = [*LOOPBACK_NAMES, host] if token is None and is_loopback(host) else None
    limits = Limits(max_export_pixels=max_export * max_export)
    app = create_app(loaded, token, limits, batch_tiles * 256 * 256, cache_mb << 20, allowed_hosts=hosts)
    click.echo(f"polyinr viewer: {', '.join(n.name for n in loaded)}")
    click.echo(f"open {server_url(sock, host, token)}   (Ctrl+C stops)")
    if no_auth and not is_loopback(host):
        click.echo("warning: --no-auth: anyone who can reach this address can use the server", err=True)
    make_server(app).run(sockets=[sock])
