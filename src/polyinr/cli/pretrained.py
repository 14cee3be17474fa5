"""``polyinr pretrained list`` and ``polyinr pretrained get NAME``: the authors' released models."""

from __future__ import annotations

import click

from polyinr.cli.group import main
from polyinr.errors import PolyinrError
from polyinr.pretrained import RELEASES, cached_checkpoint, fetch


@main.group()
def pretrained():
    """The authors' released models: any command's --network takes their names."""


@pretrained.command("list")
def list_releases():
    """Every released model: name, dataset, resolution, the authors' FID, licence, and where it is cached."""
    rows = [("name", "dataset", "res", "FID", "licence", "cached")]
    for r in RELEASES.values():
        cached = cached_checkpoint(r)
        where = str(cached) if cached else ("-" if r.direct else f"by hand: polyinr convert --from {r.converter}")
        fid = f"{r.paper_fid:g}" if r.paper_fid is not None else "-"
        rows.append((r.name, r.dataset, str(r.resolution), fid, r.licence, where))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[-1])


@pretrained.command("get")
@click.argument("name")
def get(name):
    """Download, verify and convert the released model NAME into the cache (nothing else is run)."""
    if name not in RELEASES:
        raise PolyinrError(f"no released model named {name!r} (polyinr pretrained list)")
    release = RELEASES[name]
    click.echo(f"{name}: {fetch(release)}  (from {release.url}, as given in {release.source})")
