"""The identity of one tile: which slide, which pyramid level, which column and row."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True, order=True)
class TileKey:
    """One tile of one slide, addressed by pyramid level and tile indices.

    Levels are integers, never float downsamples, so two requests for the same tile
    always compare equal.  Keys are hashable, and ordered by their fields in
    declaration order, so they can live in sets, dicts and sorted lists.
    """

    source_id: str
    level: int
    t_col: int
    t_row: int
