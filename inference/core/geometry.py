"""Coordinate spaces, tile and patch grids, and pyramid level choice.

Spaces (every variable says which one it is in by its prefix):

* ``l0_``  level-0 slide pixels (the full-resolution scan)
* ``lv_``  pixels of one pyramid level (``l0 = lv * downsample``)
* ``t_``   tile indices of one level's tile grid
* ``p_``   patch-grid indices of an inference job
* ``scr_`` screen (widget) pixels: Qt's logical pixels, what input events and painters use
* ``dev_`` device pixels of the screen: ``dev = scr * dev_per_scr``, the screen's device
  pixel ratio (1 on a classic screen, 2 on a typical HiDPI one)

Conversions between them live here and nowhere else.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

#: Relative slack when comparing downsamples (pyramids store e.g. 4.000183).
_DOWNSAMPLE_TOLERANCE = 1e-3


@dataclass(frozen=True)
class Rect:
    """An axis-aligned rectangle ``[x, x + w) x [y, y + h)`` in one named space."""

    x: float
    y: float
    w: float
    h: float

    @property
    def right(self) -> float:
        return self.x + self.w

    @property
    def bottom(self) -> float:
        return self.y + self.h

    @property
    def center(self) -> tuple[float, float]:
        return self.x + self.w / 2, self.y + self.h / 2

    def is_empty(self) -> bool:
        return self.w <= 0 or self.h <= 0

    def intersect(self, other: Rect) -> Rect:
        """The overlap of two rectangles (empty, with zero size, when disjoint)."""
        x0, y0 = max(self.x, other.x), max(self.y, other.y)
        x1, y1 = min(self.right, other.right), min(self.bottom, other.bottom)
        return Rect(x0, y0, max(0.0, x1 - x0), max(0.0, y1 - y0))

    def union(self, other: Rect) -> Rect:
        """The smallest rectangle holding both."""
        x0, y0 = min(self.x, other.x), min(self.y, other.y)
        x1, y1 = max(self.right, other.right), max(self.bottom, other.bottom)
        return Rect(x0, y0, x1 - x0, y1 - y0)

    def scaled(self, factor: float) -> Rect:
        """Every coordinate multiplied by ``factor`` (a change of space by a scale)."""
        return Rect(self.x * factor, self.y * factor, self.w * factor, self.h * factor)

    def to_int(self) -> tuple[int, int, int, int]:
        """The smallest integer rectangle that contains this one, as ``(x, y, w, h)``."""
        x0, y0 = math.floor(self.x), math.floor(self.y)
        x1, y1 = math.ceil(self.right), math.ceil(self.bottom)
        return x0, y0, x1 - x0, y1 - y0


# -- levels ---------------------------------------------------------------------------


def l0_to_lv(l0_value: float, downsample: float) -> float:
    """A level-0 coordinate or length expressed in pixels of a level."""
    return l0_value / downsample


def lv_to_l0(lv_value: float, downsample: float) -> float:
    """A level coordinate or length expressed in level-0 pixels."""
    return lv_value * downsample


def choose_level(level_downsamples: Sequence[float], l0_per_scr: float) -> int:
    """The coarsest level that still gives at least one data pixel per output pixel.

    ``l0_per_scr`` is how many level-0 pixels one output pixel spans (1 / zoom); on a
    screen that is a *device* pixel, so a HiDPI screen gets the level its device pixels
    need (``1 / (scale * dev_per_scr)``).  When zoomed in beyond level 0 the answer is 0.
    """
    best = 0
    for level, downsample in enumerate(level_downsamples):
        if downsample <= l0_per_scr * (1 + _DOWNSAMPLE_TOLERANCE):
            best = level if downsample >= level_downsamples[best] else best
    return best


def best_level_for_downsample(level_downsamples: Sequence[float], downsample: float) -> int:
    """The coarsest level whose downsample does not exceed ``downsample`` (read, then shrink)."""
    return choose_level(level_downsamples, downsample)


# -- tile grids -----------------------------------------------------------------------


@dataclass(frozen=True)
class TileGrid:
    """The regular grid of square tiles covering one pyramid level.

    Edge tiles are clipped to the level; ``tile_lv_rect`` gives their true size.
    """

    lv_width: int
    lv_height: int
    tile_size: int

    @property
    def t_cols(self) -> int:
        return max(1, math.ceil(self.lv_width / self.tile_size))

    @property
    def t_rows(self) -> int:
        return max(1, math.ceil(self.lv_height / self.tile_size))

    def tile_lv_rect(self, t_col: int, t_row: int) -> tuple[int, int, int, int]:
        """``(lv_x, lv_y, w, h)`` of a tile, clipped to the level."""
        lv_x, lv_y = t_col * self.tile_size, t_row * self.tile_size
        w = min(self.tile_size, self.lv_width - lv_x)
        h = min(self.tile_size, self.lv_height - lv_y)
        return lv_x, lv_y, w, h

    def tiles_in_lv_rect(self, lv_rect: Rect) -> list[tuple[int, int]]:
        """Tiles that overlap a level rectangle, nearest its centre first."""
        clipped = lv_rect.intersect(Rect(0, 0, self.lv_width, self.lv_height))
        if clipped.is_empty():
            return []
        size = self.tile_size
        t_c0 = int(clipped.x // size)
        t_r0 = int(clipped.y // size)
        t_c1 = min(self.t_cols - 1, math.ceil(clipped.right / size) - 1)
        t_r1 = min(self.t_rows - 1, math.ceil(clipped.bottom / size) - 1)
        lv_cx, lv_cy = clipped.center
        tiles = [(c, r) for r in range(t_r0, t_r1 + 1) for c in range(t_c0, t_c1 + 1)]
        tiles.sort(
            key=lambda t: ((t[0] + 0.5) * size - lv_cx) ** 2 + ((t[1] + 0.5) * size - lv_cy) ** 2
        )
        return tiles


def level_tile_grid(
    level_dimensions: Sequence[tuple[int, int]], level: int, tile_size: int
) -> TileGrid:
    """The tile grid of one level of a pyramid."""
    lv_w, lv_h = level_dimensions[level]
    return TileGrid(lv_w, lv_h, tile_size)


# -- screen ---------------------------------------------------------------------------


def scr_to_dev(scr_value: float, dev_per_scr: float) -> float:
    """A screen coordinate or length in device pixels (``dev_per_scr``: the device pixel
    ratio of the screen)."""
    return scr_value * dev_per_scr


def dev_to_scr(dev_value: float, dev_per_scr: float) -> float:
    """A device-pixel coordinate or length in screen (logical) pixels."""
    return dev_value / dev_per_scr


@dataclass(frozen=True)
class ViewTransform:
    """Maps level-0 pixels to screen pixels: ``scr = (l0 - l0_origin) * scale``.

    ``l0_x``/``l0_y`` is the level-0 point drawn at the screen's top-left corner;
    ``scale`` is screen pixels per level-0 pixel (the zoom).
    """

    l0_x: float
    l0_y: float
    scale: float

    def l0_to_scr(self, l0_x: float, l0_y: float) -> tuple[float, float]:
        return (l0_x - self.l0_x) * self.scale, (l0_y - self.l0_y) * self.scale

    def scr_to_l0(self, scr_x: float, scr_y: float) -> tuple[float, float]:
        return self.l0_x + scr_x / self.scale, self.l0_y + scr_y / self.scale

    def l0_rect_to_scr(self, l0_rect: Rect) -> Rect:
        scr_x, scr_y = self.l0_to_scr(l0_rect.x, l0_rect.y)
        return Rect(scr_x, scr_y, l0_rect.w * self.scale, l0_rect.h * self.scale)

    def scr_rect_to_l0(self, scr_rect: Rect) -> Rect:
        l0_x, l0_y = self.scr_to_l0(scr_rect.x, scr_rect.y)
        return Rect(l0_x, l0_y, scr_rect.w / self.scale, scr_rect.h / self.scale)

    def to_device(self, dev_per_scr: float) -> ViewTransform:
        """The same view as a map from level-0 to device pixels (``dev_per_scr``: the
        screen's device pixel ratio): its ``scale`` is device px per level-0 px, and its
        ``l0_to_scr`` gives ``dev_`` coordinates."""
        return ViewTransform(self.l0_x, self.l0_y, self.scale * dev_per_scr)


# -- physical units -------------------------------------------------------------------


def magnification_at(
    scale: float, mpp: float | None, objective_power: float | None
) -> float | None:
    """The apparent objective magnification on screen at a zoom ``scale``.

    ``scale`` is **device** pixels per level-0 pixel (not logical screen pixels): the
    magnification says how much slide detail each pixel of the display shows, so 40x on
    a 0.25 um/px slide is one slide pixel per device pixel ("1:1") on any screen, and a
    HiDPI screen at 40x shows the same pixels as a classic one, in half the logical size.
    A 40x objective corresponds to about 0.25 um/px; a 20x to 0.5 um/px.  With an mpp
    the magnification is ``10 / (mpp / scale)``; without it, the scanner's stated
    objective power times the zoom; without either, ``None``.
    """
    if mpp is not None and mpp > 0:
        return 10.0 * scale / mpp
    if objective_power is not None and objective_power > 0:
        return objective_power * scale
    return None


def scale_for_magnification(
    magnification: float, mpp: float | None, objective_power: float | None
) -> float | None:
    """The zoom ``scale`` (device px per level-0 px, see :func:`magnification_at`) that
    shows a given magnification."""
    if mpp is not None and mpp > 0:
        return magnification * mpp / 10.0
    if objective_power is not None and objective_power > 0:
        return magnification / objective_power
    return None


#: How far above a scan's own magnification a view may go before it says "upsampled"
#: (a 40x scan of 0.2527 um/px shows "40x" at 1.01 device px per slide px).
UPSAMPLED_TOLERANCE = 1.05


def scan_magnification(mpp: float | None, objective_power: float | None) -> float | None:
    """The magnification a slide was scanned at: its stated objective power, else the
    one its pixel size stands for (``10 / mpp``, see :func:`magnification_at`); ``None``
    when it states neither."""
    if objective_power is not None and objective_power > 0:
        return float(objective_power)
    if mpp is not None and mpp > 0:
        return 10.0 / mpp
    return None


def is_upsampled(magnification: float, mpp: float | None, objective_power: float | None) -> bool:
    """Whether showing ``magnification`` enlarges the scan past what it resolved: above
    :func:`scan_magnification` by more than :data:`UPSAMPLED_TOLERANCE` (a 40x preset
    on a 20x scan).  ``False`` when the scan's magnification is unknown."""
    scanned = scan_magnification(mpp, objective_power)
    return scanned is not None and magnification > scanned * UPSAMPLED_TOLERANCE


_NICE_STEPS = (1.0, 2.0, 5.0)


def nice_length(max_value: float) -> float:
    """The largest 1, 2 or 5 times a power of ten that is at most ``max_value``."""
    if max_value <= 0:
        return 0.0
    exponent = math.floor(math.log10(max_value))
    best = 10.0**exponent
    for step in _NICE_STEPS:
        candidate = step * 10.0**exponent
        if candidate <= max_value:
            best = candidate
    return best


# -- patch grids (inference) ----------------------------------------------------------


def patch_size_on_slide(patch_size_pixels: int, spacing_um_px: float, slide_mpp: float) -> int:
    """Level-0 pixels a model patch covers: ``round(patch_px * spacing / slide_mpp)``."""
    if slide_mpp <= 0 or spacing_um_px <= 0:
        raise ValueError("spacing and slide mpp must be positive")
    return max(1, round(patch_size_pixels * spacing_um_px / slide_mpp))


# -- rasters over the slide ---------------------------------------------------------------


def raster_window(
    l0_rect: Rect, l0_origin: tuple[float, float], l0_per_px: float, shape: tuple[int, int]
) -> tuple[slice, slice]:
    """``(rows, cols)`` slices of the pixels of a raster that ``l0_rect`` touches, clipped
    (empty slices when it misses).  Raster pixel ``(0, 0)`` starts at ``l0_origin`` and
    each pixel is ``l0_per_px`` level-0 px wide; ``shape`` is ``(rows, cols)``."""
    o_x, o_y = l0_origin
    n_rows, n_cols = shape
    c0 = min(n_cols, max(0, math.floor((l0_rect.x - o_x) / l0_per_px)))
    r0 = min(n_rows, max(0, math.floor((l0_rect.y - o_y) / l0_per_px)))
    c1 = min(n_cols, max(c0, math.ceil((l0_rect.right - o_x) / l0_per_px)))
    r1 = min(n_rows, max(r0, math.ceil((l0_rect.bottom - o_y) / l0_per_px)))
    return slice(r0, r1), slice(c0, c1)


def raster_index(
    l0_x: float,
    l0_y: float,
    l0_origin: tuple[float, float],
    l0_per_px: float,
    shape: tuple[int, int],
) -> tuple[int, int] | None:
    """``(row, col)`` of the raster pixel under a level-0 point, or ``None`` outside."""
    col = math.floor((l0_x - l0_origin[0]) / l0_per_px)
    row = math.floor((l0_y - l0_origin[1]) / l0_per_px)
    if 0 <= row < shape[0] and 0 <= col < shape[1]:
        return row, col
    return None
