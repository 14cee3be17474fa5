"""Progressive grids: the same weights trained on denser and denser pixel grids, in stages.

``'32:2000,64:1000'`` trains 2000 kimg at 32², then 1000 kimg at 64² (the Poly-INR authors' recipe, made one
command). Which stage is active is a pure function of ``cur_nimg`` and of the image counts at which the stages
that have ended so far did end: a stage may end before its kimg when its metric reaches a plateau, and the next
one then starts right there, keeping its own length.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from polyinr.errors import PolyinrError


@dataclass(frozen=True)
class Stage:
    index: int
    resolution: int
    start_nimg: int  # images shown before this stage
    end_nimg: int  # images shown when it ends


def parse_schedule(text: str) -> list[tuple[int, float]]:
    """``'32:2000,64:1000'`` → ``[(32, 2000.0), (64, 1000.0)]`` (resolution, kimg), with one-line errors."""
    stages = []
    for part in text.split(","):
        res_text, sep, kimg_text = part.strip().partition(":")
        try:
            resolution, kimg = int(res_text), float(kimg_text)
        except ValueError:
            raise PolyinrError(f"schedule must look like '32:2000,64:1000' (resolution:kimg), got {text!r}") from None
        if not sep or resolution < 2 or not kimg > 0:
            raise PolyinrError(f"bad schedule stage {part!r}: need resolution ≥ 2 and kimg > 0")
        stages.append((resolution, kimg))
    return stages


def build_stages(schedule: list[tuple[int, float]], ends: Sequence[int] = ()) -> list[Stage]:
    """The stages of ``schedule``: the first ``len(ends)`` end at those image counts (each within its stage and
    no later than its kimg), the others after their kimg from where the previous one ended."""
    if len(ends) >= len(schedule):
        raise PolyinrError(
            f"{len(ends)} stage ends given for a schedule of {len(schedule)} stages (the last ends by kimg)"
        )
    stages, start = [], 0
    for i, (resolution, kimg) in enumerate(schedule):
        end = start + round(kimg * 1000)
        if i < len(ends):
            if not start < ends[i] <= end:
                raise PolyinrError(f"stage {i + 1} cannot end at {ends[i]} images: it runs from {start} to {end}")
            end = ends[i]
        stages.append(Stage(i, resolution, start, end))
        start = end
    return stages


def stage_at(stages: list[Stage], cur_nimg: int) -> Stage:
    """The stage that trains at ``cur_nimg`` (the last one once training is done)."""
    for stage in stages:
        if cur_nimg < stage.end_nimg:
            return stage
    return stages[-1]
