"""Which tiles a view needs, in which order, and which cached tile stands in for a missing one."""

from __future__ import annotations

from dataclasses import dataclass

from inference.geometry import Rect, TileGrid, ViewTransform, choose_level, level_tile_grid
from inference.slides.base import SlideInfo

#: Tile edge in level pixels for every level the viewer reads.
TILE_SIZE = 256
#: Screen pixels of margin around the view that are requested too, so panning finds tiles.
PREFETCH_MARGIN_SCR = 256


@dataclass(frozen=True)
class TileGridSet:
    """The tile grids of every level of one slide."""

    info: SlideInfo
    tile_size: int = TILE_SIZE

    def grid(self, level: int) -> TileGrid:
        return level_tile_grid(self.info.level_dimensions, level, self.tile_size)

    def tile_l0_rect(self, level: int, t_col: int, t_row: int) -> Rect:
        """Level-0 rectangle covered by a tile."""
        lv_x, lv_y, w, h = self.grid(level).tile_lv_rect(t_col, t_row)
        return Rect(lv_x, lv_y, w, h).scaled(self.info.level_downsamples[level])

    def tiles_for_l0_rect(self, level: int, l0_rect: Rect) -> list[tuple[int, int]]:
        """Tiles of ``level`` overlapping a level-0 rectangle, nearest its centre first."""
        downsample = self.info.level_downsamples[level]
        return self.grid(level).tiles_in_lv_rect(l0_rect.scaled(1 / downsample))

    def covering_tile(self, level: int, l0_x: float, l0_y: float) -> tuple[int, int]:
        """The tile of ``level`` that contains a level-0 point."""
        downsample = self.info.level_downsamples[level]
        grid = self.grid(level)
        t_col = min(grid.t_cols - 1, max(0, int(l0_x / downsample // self.tile_size)))
        t_row = min(grid.t_rows - 1, max(0, int(l0_y / downsample // self.tile_size)))
        return t_col, t_row


@dataclass(frozen=True)
class ViewPlan:
    """What one view needs: the level to paint and the tiles to fetch, most urgent first."""

    level: int
    visible: list[tuple[int, int]]  # tiles of ``level`` on screen, nearest the centre first
    coarse_level: int
    coarse_visible: list[tuple[int, int]]  # tiles of ``coarse_level`` on screen
    prefetch: list[tuple[int, int]]  # tiles of ``level`` just off screen


def coarse_level_for(info: SlideInfo, level: int, factor: float = 4.0) -> int:
    """A level about ``factor`` times coarser than ``level``: few tiles, quick to read."""
    target = info.level_downsamples[level] * factor
    return max(level, choose_level(info.level_downsamples, target))


def plan_view(grids: TileGridSet, transform: ViewTransform, scr_w: int, scr_h: int) -> ViewPlan:
    """The tiles a view needs: coarse ones first (a quick whole picture), then sharp ones."""
    info = grids.info
    level = choose_level(info.level_downsamples, 1.0 / transform.scale)
    l0_view = transform.scr_rect_to_l0(Rect(0, 0, scr_w, scr_h))
    visible = grids.tiles_for_l0_rect(level, l0_view)
    coarse = coarse_level_for(info, level)
    coarse_visible = grids.tiles_for_l0_rect(coarse, l0_view) if coarse != level else []
    margin = PREFETCH_MARGIN_SCR
    l0_ring = transform.scr_rect_to_l0(
        Rect(-margin, -margin, scr_w + 2 * margin, scr_h + 2 * margin)
    )
    seen = set(visible)
    prefetch = [t for t in grids.tiles_for_l0_rect(level, l0_ring) if t not in seen]
    return ViewPlan(level, visible, coarse, coarse_visible, prefetch)
