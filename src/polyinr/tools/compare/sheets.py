"""Sample sheets: a model's samples on the same seeds at its native frame, 4× denser and 2× wider; all models'
sheets in one picture."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw

from polyinr.grid import Grid
from polyinr.image_io import to_uint8
from polyinr.models.generator import GridRefused
from polyinr.sampling import sample_inputs


def sheet_grids(R: int) -> list[tuple[str, Grid]]:
    """The rows of a sample sheet: the native frame, 4× denser (4R² pixels over the same frame) and 2× wider
    (2R columns at the frame's pixel spacing, starting R//2 pixels left of the frame: on the pixel lattice)."""
    step = 1.0 / (R - 1)
    left = -(R // 2) * step
    return [
        ("native", Grid.frame(R)),
        ("4x denser", Grid.frame(4 * R)),
        ("2x wider", Grid.window(0.0, left, 1.0, left + (2 * R - 1) * step, R, 2 * R)),
    ]


@torch.no_grad()
def sample_sheet(G: Any, seeds: Sequence[int], path: Path, device: torch.device) -> dict[str, GridRefused]:
    """Write ``path``: one column per seed (class ``seed mod classes``), one row per accepted grid of
    :func:`sheet_grids`, each shown at the 4× denser render's size. Returns each refused row's refusal, by
    label."""
    R = G.img_resolution
    classes = [s % G.num_classes for s in seeds] if G.num_classes else None
    z, c = sample_inputs(G, list(seeds), classes, device)
    ws = G.mapping(z, c)
    cell, pad = 4 * R, 2
    rows, refused = [], {}
    for label, grid in sheet_grids(R):
        try:
            images = to_uint8(G.synthesize(ws, grid))  # [N, H, W, 3]
        except GridRefused as e:
            refused[label] = e
            continue
        H, W = images.shape[1:3]
        scale = cell // H
        rows.append([np.asarray(Image.fromarray(im).resize((W * scale, H * scale), Image.NEAREST)) for im in images])
    width = sum(im.shape[1] for im in rows[0]) + pad * (len(seeds) + 1)
    widest = max(sum(im.shape[1] for im in row) + pad * (len(row) + 1) for row in rows)
    canvas = np.full((sum(row[0].shape[0] + pad for row in rows) + pad, max(width, widest), 3), 255, np.uint8)
    top = pad
    for row in rows:
        left = pad
        for im in row:
            canvas[top : top + im.shape[0], left : left + im.shape[1]] = im
            left += im.shape[1] + pad
        top += row[0].shape[0] + pad
    Image.fromarray(canvas).save(path)
    return refused


LABEL_HEIGHT = 16  # pixels of the strip that names a model above its sheet


def combine_sheets(sheets: Mapping[str, Path], path: Path) -> Path:
    """Write ``path``: the models' sample sheets (:func:`sample_sheet`, the same seeds and classes) one under the
    other, each under a strip with its model's name, so that every column shows one seed across the models."""
    images = {model: Image.open(sheet).convert("RGB") for model, sheet in sheets.items()}
    width = max(im.width for im in images.values())
    combined = Image.new("RGB", (width, sum(LABEL_HEIGHT + im.height for im in images.values())), "white")
    draw = ImageDraw.Draw(combined)
    top = 0
    for model, im in images.items():
        draw.text((4, top + 2), model, fill="black")
        combined.paste(im, (0, top + LABEL_HEIGHT))
        top += LABEL_HEIGHT + im.height
    combined.save(path)
    return path
