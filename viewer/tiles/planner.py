"""Which tiles a view needs, in which order, and which cached tile stands in for a missing one."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from inference.core.geometry import Rect, TileGrid, ViewTransform, choose_level
from inference.slides.base import SlideInfo

#: Tile edge in level pixels for every level the viewer reads.
TILE_SIZE = 256
#: Screen (logical) pixels of margin around the view that are requested too, so panning
#: finds tiles.
PREFETCH_MARGIN_SCR = 256


#: Display levels are this many times coarser than the one before.
DISPLAY_STEP = 2
#: A real level whose downsample is this close to a display level's is used as it is.
_SAME_DOWNSAMPLE = 0.02


@dataclass(frozen=True)
class DisplayLevel:
    """One level of the pyramid the viewer shows: ``downsample`` level-0 px per pixel,
    read from pyramid level ``source_level`` and shrunk by ``downsample /
    source_downsample`` (1 when the slide has this level itself)."""

    downsample: float
    source_level: int
    source_downsample: float
    width: int
    height: int

    @property
    def shrink(self) -> float:
        return self.downsample / self.source_downsample


def display_levels(info: SlideInfo, tile_size: int = TILE_SIZE) -> tuple[DisplayLevel, ...]:
    """A pyramid whose levels are :data:`DISPLAY_STEP` apart, down to one tile.

    Slides often store levels 4x apart (Aperio) or few levels at all; between two stored
    levels the canvas would draw up to 16x the tiles it needs, each shrunk hard on the
    GUI thread.  Display levels in between are read from the next finer stored level and
    shrunk once, on a reader thread (as OpenSlide's DeepZoom generator does).
    """
    l0_w, l0_h = info.dimensions
    real = info.level_downsamples
    levels = []
    target = 1.0
    while True:
        same = [i for i, d in enumerate(real) if abs(d - target) <= _SAME_DOWNSAMPLE * target]
        if same:
            source = same[0]
            downsample = real[source]
            width, height = info.level_dimensions[source]
        else:
            source = choose_level(real, target)
            downsample = target
            width, height = max(1, math.ceil(l0_w / target)), max(1, math.ceil(l0_h / target))
        levels.append(DisplayLevel(downsample, source, real[source], width, height))
        if max(width, height) <= tile_size:
            return tuple(levels)
        target *= DISPLAY_STEP


@dataclass(frozen=True)
class TileGridSet:
    """The tile grids of every display level of one slide (see :func:`display_levels`).

    Tile keys and plans use display level indices; :meth:`source_region` says what to
    read from the slide for a tile.
    """

    info: SlideInfo
    tile_size: int = TILE_SIZE
    levels: tuple[DisplayLevel, ...] = field(init=False)
    _grids: tuple[TileGrid, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        levels = display_levels(self.info, self.tile_size)
        object.__setattr__(self, "levels", levels)
        grids = tuple(TileGrid(lv.width, lv.height, self.tile_size) for lv in levels)
        object.__setattr__(self, "_grids", grids)

    @property
    def level_count(self) -> int:
        return len(self.levels)

    @property
    def downsamples(self) -> tuple[float, ...]:
        return tuple(level.downsample for level in self.levels)

    def grid(self, level: int) -> TileGrid:
        return self._grids[level]

    def tile_l0_rect(self, level: int, t_col: int, t_row: int) -> Rect:
        """Level-0 rectangle covered by a tile."""
        lv_x, lv_y, w, h = self.grid(level).tile_lv_rect(t_col, t_row)
        return Rect(lv_x, lv_y, w, h).scaled(self.levels[level].downsample)

    def tiles_for_l0_rect(self, level: int, l0_rect: Rect) -> list[tuple[int, int]]:
        """Tiles of ``level`` overlapping a level-0 rectangle, nearest its centre first."""
        downsample = self.levels[level].downsample
        return self.grid(level).tiles_in_lv_rect(l0_rect.scaled(1 / downsample))

    def covering_tile(self, level: int, l0_x: float, l0_y: float) -> tuple[int, int]:
        """The tile of ``level`` that contains a level-0 point."""
        downsample = self.levels[level].downsample
        grid = self.grid(level)
        t_col = min(grid.t_cols - 1, max(0, int(l0_x / downsample // self.tile_size)))
        t_row = min(grid.t_rows - 1, max(0, int(l0_y / downsample // self.tile_size)))
        return t_col, t_row

    def source_region(
        self, level: int, t_col: int, t_row: int
    ) -> tuple[int, tuple[int, int, int, int], tuple[int, int]]:
        """What to read for a tile: ``(source_level, (lv_x, lv_y, lv_w, lv_h), (w, h))``.

        The region of the stored level is resized to ``(w, h)`` when their sizes differ.
        """
        display = self.levels[level]
        x, y, w, h = self.grid(level).tile_lv_rect(t_col, t_row)
        shrink = display.shrink
        if abs(shrink - 1.0) <= 1e-6:
            return display.source_level, (x, y, w, h), (w, h)
        lv_x, lv_y = math.floor(x * shrink), math.floor(y * shrink)
        lv_w = max(1, round((x + w) * shrink) - lv_x)
        lv_h = max(1, round((y + h) * shrink) - lv_y)
        return display.source_level, (lv_x, lv_y, lv_w, lv_h), (w, h)


@dataclass(frozen=True)
class ViewPlan:
    """What one view needs: the level to paint and the tiles to fetch, most urgent first."""

    level: int
    visible: list[tuple[int, int]]  # tiles of ``level`` on screen, nearest the centre first
    coarse_level: int
    coarse_visible: list[tuple[int, int]]  # tiles of ``coarse_level`` on screen
    prefetch: list[tuple[int, int]]  # tiles of ``level`` just off screen


def coarse_level_for(grids: TileGridSet, level: int, factor: float = 4.0) -> int:
    """A display level about ``factor`` times coarser than ``level``: few tiles, quick."""
    target = grids.levels[level].downsample * factor
    return max(level, choose_level(grids.downsamples, target))


def plan_view(
    grids: TileGridSet,
    transform: ViewTransform,
    scr_w: int,
    scr_h: int,
    dev_per_scr: float = 1.0,
) -> ViewPlan:
    """The tiles a view needs: coarse ones first (a quick whole picture), then sharp ones.

    ``transform`` and ``scr_w x scr_h`` are in screen (logical) pixels; the screen has
    ``dev_per_scr`` device pixels per screen pixel, and the level is the one that gives
    every *device* pixel a data pixel, so a HiDPI screen shows sharp tiles.
    """
    level = choose_level(grids.downsamples, 1.0 / transform.to_device(dev_per_scr).scale)
    l0_view = transform.scr_rect_to_l0(Rect(0, 0, scr_w, scr_h))
    visible = grids.tiles_for_l0_rect(level, l0_view)
    coarse = coarse_level_for(grids, level)
    coarse_visible = grids.tiles_for_l0_rect(coarse, l0_view) if coarse != level else []
    margin = PREFETCH_MARGIN_SCR
    l0_ring = transform.scr_rect_to_l0(
        Rect(-margin, -margin, scr_w + 2 * margin, scr_h + 2 * margin)
    )
    seen = set(visible)
    prefetch = [t for t in grids.tiles_for_l0_rect(level, l0_ring) if t not in seen]
    return ViewPlan(level, visible, coarse, coarse_visible, prefetch)
