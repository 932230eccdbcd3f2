"""Patch grids at a model's physical spacing, patch ordering, and patch reading.

A model sees patches of ``patch_size_pixels`` at ``spacing_um_px`` microns per pixel.  On
a slide of ``mpp`` level-0 microns per pixel such a patch covers
``round(patch_size_pixels * spacing_um_px / mpp)`` level-0 pixels
(:func:`inference.core.geometry.patch_size_on_slide`).  The grid lays those patches out from
an origin with a stride (``stride < patch`` when patches overlap); patches at the right
and bottom edges may reach past the slide, where the slide reads as white.

Patches are read from the coarsest pyramid level that is still at least as fine as the
model needs, then shrunk to the model's patch size with ``cv2.INTER_AREA``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from inference.core.geometry import Rect, best_level_for_downsample, patch_size_on_slide

if TYPE_CHECKING:
    from inference.slides import SlideInfo, SlideSource

#: Overlap is a fraction of the patch side in ``[0, MAX_OVERLAP]``.
MAX_OVERLAP = 0.9


class PatchSpec(Protocol):
    """What a patch grid needs from a model card."""

    @property
    def patch_size_pixels(self) -> int: ...

    @property
    def spacing_um_px(self) -> float: ...


class MissingMppError(ValueError):
    """The slide does not say how many microns one pixel spans, and none was given."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        super().__init__(
            f"{self.path.name} has no microns-per-pixel (mpp) in its metadata, so the "
            "model's patch size on the slide is unknown; pass the scan resolution "
            "explicitly (--mpp on the command line, e.g. --mpp 0.25 for a 40x scan)"
        )


@dataclass(frozen=True)
class PatchGrid:
    """A regular grid of square patches in level-0 pixels.

    Patch ``(p_col, p_row)`` covers ``[x, x + l0_patch) x [y, y + l0_patch)`` with
    ``x = l0_origin[0] + p_col * l0_stride`` (and likewise for ``y``).
    """

    l0_patch: int
    l0_stride: int
    l0_origin: tuple[int, int]
    p_cols: int
    p_rows: int

    def __post_init__(self) -> None:
        if self.l0_patch < 1 or self.l0_stride < 1 or self.p_cols < 1 or self.p_rows < 1:
            raise ValueError(f"degenerate patch grid {self}")

    @property
    def count(self) -> int:
        return self.p_cols * self.p_rows

    @property
    def overlap(self) -> float:
        """The overlap of neighbouring patches as a fraction of the patch side."""
        return max(0.0, 1.0 - self.l0_stride / self.l0_patch)

    def patch_l0_rect(self, p_col: int, p_row: int) -> Rect:
        """The level-0 rectangle a patch covers (it may reach past the slide's edge)."""
        l0_x = self.l0_origin[0] + p_col * self.l0_stride
        l0_y = self.l0_origin[1] + p_row * self.l0_stride
        return Rect(l0_x, l0_y, self.l0_patch, self.l0_patch)

    def l0_xy(self, p_ij: np.ndarray) -> np.ndarray:
        """Level-0 top-left corners ``(n, 2)`` int64 of patches given as ``(n, 2)`` col, row."""
        p_ij = np.asarray(p_ij, dtype=np.int64).reshape(-1, 2)
        origin = np.asarray(self.l0_origin, dtype=np.int64)
        return origin + p_ij * self.l0_stride

    def p_index_of(self, l0_x: float, l0_y: float) -> tuple[int, int] | None:
        """The patch whose stride cell holds a level-0 point, or ``None`` outside the grid.

        Without overlap that is the one patch containing the point; with overlap it is
        the last patch (in each axis) that starts at or before the point.
        """
        p_col = math.floor((l0_x - self.l0_origin[0]) / self.l0_stride)
        p_row = math.floor((l0_y - self.l0_origin[1]) / self.l0_stride)
        if not (0 <= p_col < self.p_cols and 0 <= p_row < self.p_rows):
            return None
        return p_col, p_row

    @property
    def l0_extent(self) -> Rect:
        """The level-0 rectangle all patches together cover."""
        w = (self.p_cols - 1) * self.l0_stride + self.l0_patch
        h = (self.p_rows - 1) * self.l0_stride + self.l0_patch
        return Rect(self.l0_origin[0], self.l0_origin[1], w, h)

    def all_p_ij(self) -> np.ndarray:
        """Every patch as ``(count, 2)`` int32 ``(col, row)``, row by row."""
        rows, cols = np.mgrid[0 : self.p_rows, 0 : self.p_cols]
        return np.stack([cols.ravel(), rows.ravel()], axis=1).astype(np.int32)

    def l0_rects(self, p_ij: np.ndarray) -> np.ndarray:
        """``(n, 4)`` float64 ``x, y, w, h`` level-0 rectangles of patches."""
        xy = self.l0_xy(p_ij).astype(np.float64)
        size = np.full((len(xy), 2), float(self.l0_patch))
        return np.concatenate([xy, size], axis=1)

    def p_ij_in_l0_rect(self, l0_rect: Rect) -> np.ndarray:
        """Patches that overlap a level-0 rectangle, ``(n, 2)`` int32, row by row."""
        ext = self.l0_extent
        clipped = l0_rect.intersect(ext)
        if clipped.is_empty():
            return np.zeros((0, 2), np.int32)
        ox, oy = self.l0_origin
        s, p = self.l0_stride, self.l0_patch
        # patch c overlaps [x0, x1) iff ox + c*s < x1 and ox + c*s + p > x0
        c0 = max(0, math.floor((clipped.x - ox - p) / s) + 1)
        c1 = min(self.p_cols - 1, math.ceil((clipped.right - ox) / s) - 1)
        r0 = max(0, math.floor((clipped.y - oy - p) / s) + 1)
        r1 = min(self.p_rows - 1, math.ceil((clipped.bottom - oy) / s) - 1)
        if c1 < c0 or r1 < r0:
            return np.zeros((0, 2), np.int32)
        rows, cols = np.mgrid[r0 : r1 + 1, c0 : c1 + 1]
        return np.stack([cols.ravel(), rows.ravel()], axis=1).astype(np.int32)

    def to_dict(self) -> dict[str, int | list[int]]:
        return {
            "l0_patch": self.l0_patch,
            "l0_stride": self.l0_stride,
            "l0_origin": list(self.l0_origin),
            "p_cols": self.p_cols,
            "p_rows": self.p_rows,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PatchGrid:
        origin = data["l0_origin"]
        return cls(
            l0_patch=int(data["l0_patch"]),
            l0_stride=int(data["l0_stride"]),
            l0_origin=(int(origin[0]), int(origin[1])),
            p_cols=int(data["p_cols"]),
            p_rows=int(data["p_rows"]),
        )


def stride_for_overlap(l0_patch: int, overlap: float) -> int:
    """Level-0 stride for an overlap fraction: ``round(patch * (1 - overlap))``, at least 1."""
    if not 0.0 <= overlap <= MAX_OVERLAP:
        raise ValueError(f"overlap must be between 0 and {MAX_OVERLAP}, not {overlap}")
    return max(1, round(l0_patch * (1.0 - overlap)))


def _count_along(l0_length: float, l0_patch: int, l0_stride: int) -> int:
    """Patches needed so that the last one reaches the end of ``l0_length``."""
    if l0_length <= l0_patch:
        return 1
    return math.ceil((l0_length - l0_patch) / l0_stride) + 1


def slide_mpp(info: SlideInfo, mpp_override: float | None) -> float:
    """The level-0 microns per pixel to use: the override, else the slide's own."""
    if mpp_override is not None:
        if not mpp_override > 0:
            raise ValueError(f"--mpp must be a positive number of microns, not {mpp_override}")
        return float(mpp_override)
    if info.mpp is None or not info.mpp > 0:
        raise MissingMppError(info.path)
    return float(info.mpp)


def make_patch_grid(
    slide_info: SlideInfo,
    card: PatchSpec,
    *,
    mpp_override: float | None = None,
    overlap: float = 0.0,
    region: Rect | None = None,
) -> PatchGrid:
    """The patch grid a model needs on a slide.

    Without ``region`` the grid covers the whole slide from ``(0, 0)``.  With a level-0
    ``region`` it covers just the patches of that whole-slide grid that overlap the
    region, so results of a region job line up with a whole-slide job's.

    Raises :class:`MissingMppError` when neither the slide nor ``mpp_override`` gives
    the scan resolution.
    """
    mpp = slide_mpp(slide_info, mpp_override)
    l0_patch = patch_size_on_slide(int(card.patch_size_pixels), float(card.spacing_um_px), mpp)
    l0_stride = stride_for_overlap(l0_patch, overlap)
    width, height = slide_info.dimensions
    full = PatchGrid(
        l0_patch=l0_patch,
        l0_stride=l0_stride,
        l0_origin=(0, 0),
        p_cols=_count_along(width, l0_patch, l0_stride),
        p_rows=_count_along(height, l0_patch, l0_stride),
    )
    if region is None:
        return full
    inside = full.p_ij_in_l0_rect(region)
    if len(inside) == 0:
        raise ValueError(
            f"the region {region.to_int()} lies outside the slide "
            f"{slide_info.path.name} ({width} x {height} level-0 pixels)"
        )
    c0, r0 = (int(v) for v in inside.min(axis=0))
    c1, r1 = (int(v) for v in inside.max(axis=0))
    return PatchGrid(
        l0_patch=l0_patch,
        l0_stride=l0_stride,
        l0_origin=(c0 * l0_stride, r0 * l0_stride),
        p_cols=c1 - c0 + 1,
        p_rows=r1 - r0 + 1,
    )


def order_patches(grid: PatchGrid, p_ij: np.ndarray, priority: Rect | None = None) -> np.ndarray:
    """Patches in the order to compute them.

    Without a priority rectangle: row by row.  With one (level-0): the patches that
    overlap it first, nearest its centre first, then the rest, also nearest its centre
    first (so a viewer sees its visible region fill in, then the surroundings).
    """
    p_ij = np.asarray(p_ij, dtype=np.int32).reshape(-1, 2)
    if priority is None or len(p_ij) == 0:
        keys = p_ij[:, 1].astype(np.int64) * grid.p_cols + p_ij[:, 0]
        return p_ij[np.argsort(keys, kind="stable")]
    xy = grid.l0_xy(p_ij).astype(np.float64) + grid.l0_patch / 2.0
    cx, cy = priority.center
    dist2 = (xy[:, 0] - cx) ** 2 + (xy[:, 1] - cy) ** 2
    half = grid.l0_patch / 2.0
    inside = (
        (xy[:, 0] + half > priority.x)
        & (xy[:, 0] - half < priority.right)
        & (xy[:, 1] + half > priority.y)
        & (xy[:, 1] - half < priority.bottom)
    )
    order = np.lexsort((dist2, ~inside))
    return p_ij[order]


# -- reading ---------------------------------------------------------------------------


@dataclass(frozen=True)
class PatchReader:
    """Reads grid patches from the best pyramid level, resized to the model's patch size.

    Thread-safe as long as the source is (every ``SlideSource`` is).
    """

    source: SlideSource
    grid: PatchGrid
    out_px: int
    level: int
    lv_downsample: float

    @property
    def lv_patch(self) -> int:
        """The patch side in pixels of the level read."""
        return max(1, round(self.grid.l0_patch / self.lv_downsample))

    def read_l0(self, l0_x: int, l0_y: int) -> np.ndarray:
        """The patch whose top-left level-0 corner is ``(l0_x, l0_y)``: ``(S, S, 3)`` uint8."""
        import cv2

        lv_x = round(l0_x / self.lv_downsample)
        lv_y = round(l0_y / self.lv_downsample)
        size = self.lv_patch
        # the display path (BGRX straight from OpenSlide's buffer) skips the RGBA and
        # PIL conversions of read_region: less CPU taken from the model per patch
        bgrx = self.source.read_region_bgrx(self.level, lv_x, lv_y, size, size)
        bgrx = self._fill_past_edge(bgrx, lv_x, lv_y)
        if size != self.out_px:
            interp = cv2.INTER_AREA if size > self.out_px else cv2.INTER_LINEAR
            bgrx = cv2.resize(bgrx, (self.out_px, self.out_px), interpolation=interp)
        return cv2.cvtColor(bgrx, cv2.COLOR_BGRA2RGB)

    def _fill_past_edge(self, bgrx: np.ndarray, lv_x: int, lv_y: int) -> np.ndarray:
        """Paint the level pixels of a read that lie past the slide's edge with the
        slide's background (white for brightfield, see :attr:`SlideInfo.background_rgb`),
        before any resizing, so an edge patch is tissue on background glass.

        Formats disagree about what lies there (OpenSlide gives transparent pixels,
        WSInfer's patches come out black, which a classifier may call tumour), so it is
        set here, whatever the source returned.
        """
        lv_w, lv_h = self.source.info.level_dimensions[self.level]
        inside_x, inside_y = lv_w - lv_x, lv_h - lv_y
        height, width = bgrx.shape[:2]
        if inside_x >= width and inside_y >= height:
            return bgrx
        if not bgrx.flags.writeable:
            bgrx = bgrx.copy()
        red, green, blue = self.source.info.background_rgb
        background = (blue, green, red, 255)
        bgrx[max(inside_y, 0) :, :] = background
        bgrx[:, max(inside_x, 0) :] = background
        return bgrx

    def read(self, p_col: int, p_row: int) -> np.ndarray:
        rect = self.grid.patch_l0_rect(p_col, p_row)
        return self.read_l0(int(rect.x), int(rect.y))

    def read_many(self, p_ij: np.ndarray) -> np.ndarray:
        """Patches ``(n, S, S, 3)`` uint8 for ``(n, 2)`` col, row indices."""
        xy = self.grid.l0_xy(p_ij)
        out = np.empty((len(xy), self.out_px, self.out_px, 3), np.uint8)
        for i, (l0_x, l0_y) in enumerate(xy):
            out[i] = self.read_l0(int(l0_x), int(l0_y))
        return out


def make_patch_reader(source: SlideSource, grid: PatchGrid, out_px: int) -> PatchReader:
    """A reader for ``grid`` on ``source`` producing ``out_px``-square patches."""
    needed = grid.l0_patch / out_px
    level = best_level_for_downsample(source.info.level_downsamples, needed)
    return PatchReader(
        source=source,
        grid=grid,
        out_px=int(out_px),
        level=level,
        lv_downsample=float(source.info.level_downsamples[level]),
    )
