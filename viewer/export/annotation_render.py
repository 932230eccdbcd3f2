"""Annotations drawn into figure tiles, QuPath-style, with OpenCV (no Qt).

What the canvas's annotation painter shows: areas (rectangle, ellipse, polygon,
freehand, with holes) outlined in their class colour, optionally filled lightly; points
as discs; rulers as lines with small end rings and their length in a label at the
middle; optionally each shape's name (or class) in a label.  Lines are anti-aliased and
placed to 1/16 px.  Each tile draws only what reaches it, and its pixels do not depend
on how the figure is cut into tiles (see the strokes section), so any figure size
costs memory for one tile only.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from inference.core.polygon_fill import fill_coverage
from viewer.annotations.measurements import measure
from viewer.annotations.model import Annotation, AnnotationKind
from viewer.export.blend import Sprite, blend_coverage
from viewer.export.text_render import render_label

_SHIFT = 4  # OpenCV fixed-point bits: coordinates to 1/16 px
_ONE = 1 << _SHIFT
#: Radius of the rings at a ruler's ends, in output px at overlay scale 1.
_RULER_END_PX = 2.5


@dataclass(frozen=True)
class AnnotationStyle:
    """How annotations look, in output pixels at overlay scale 1 (the canvas's values).

    ``fill_alpha`` (0-255) fills areas in their class colour at that alpha; ``labels``
    puts each shape's name (or class name) beside it; ``opacity`` scales everything.
    """

    line_px: float = 2.0
    point_radius_px: float = 5.0
    fill_alpha: int = 0
    labels: bool = False
    opacity: float = 1.0


def ruler_label(annotation: Annotation, mpp: float | None) -> str:
    """A ruler's length as the canvas shows it: ``"1,234.5 µm"`` (``px`` without mpp)."""
    m = measure(annotation, mpp)
    return f"{m.length:,.1f} {m.length_unit}"


# -- strokes that do not depend on the tiling ---------------------------------------------
#
# OpenCV clips a line at the image border with rounded arithmetic, and its lines react
# to sub-pixel changes of their end points: the same line drawn into two neighbouring
# tiles would not meet.  So every polyline is cut once, for the whole figure, into short
# pieces with fixed-point end points, and a tile draws the pieces near it whole into a
# mask with a margin wider than a piece: nothing visible is ever clipped, and an integer
# shift is exact, so a pixel does not depend on the tiling.
#
# OpenCV's anti-aliased lines are about 1.4 px wider than asked (a 2 px line covers
# 3.4 px), so strokes are drawn hard-edged on a 4 x 4 subpixel grid and averaged down:
# a 2 px line covers 2 px (2.25 on diagonals), like the canvas's cosmetic pen.

#: Longest piece a polyline is cut into, in output pixels.
PIECE_PX = 32
#: Subpixels per output pixel (per axis) of stroke masks.
SUPERSAMPLE = 4


def segments_of(rings: Iterable[np.ndarray], closed: bool) -> np.ndarray:
    """``(n, 2, 2)`` float64 segments (start, end) of polylines given as ``(k, 2)`` arrays;
    ``closed`` joins each last vertex to its first."""
    parts = []
    for ring in rings:
        pts = np.asarray(ring, np.float64).reshape(-1, 2)
        if len(pts) < 2:
            continue
        ends = np.roll(pts, -1, axis=0) if closed else pts[1:]
        starts = pts if closed else pts[:-1]
        parts.append(np.stack([starts, ends], axis=1))
    return np.concatenate(parts) if parts else np.zeros((0, 2, 2), np.float64)


def to_fixed(out_xy: np.ndarray) -> np.ndarray:
    """Output edge coordinates as int64 OpenCV fixed-point coordinates on the subpixel
    grid of a stroke mask whose subpixel ``(0, 0)`` starts at output ``(0, 0)``."""
    return np.round((out_xy * SUPERSAMPLE - 0.5) * _ONE).astype(np.int64)


def pieces_of(segments: np.ndarray, piece_px: float = PIECE_PX) -> np.ndarray:
    """Segments (output edge coordinates) cut into pieces at most ``piece_px`` long, as
    ``(m, 2, 2)`` fixed-point coordinates (:func:`to_fixed`)."""
    if len(segments) == 0:
        return np.zeros((0, 2, 2), np.int64)
    a, b = segments[:, 0], segments[:, 1]
    counts = np.maximum(1, np.ceil(np.hypot(*(b - a).T) / piece_px)).astype(np.intp)
    seg = np.repeat(np.arange(len(a)), counts)
    k = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    t0 = (k / counts[seg])[:, None]
    t1 = ((k + 1) / counts[seg])[:, None]
    d = b[seg] - a[seg]
    return to_fixed(np.stack([a[seg] + t0 * d, a[seg] + t1 * d], axis=1))


def stroke_margin(width: float, radius: float = 0.0) -> int:
    """Output pixels of mask kept around a tile so that pieces (lines ``width`` px wide)
    and discs of ``radius`` that reach the tile are drawn whole."""
    return math.ceil(max(PIECE_PX + width + 6, radius + width + 6))


def stroke_mask(tile_w: int, tile_h: int, margin: int) -> np.ndarray:
    """A zeroed subpixel mask for a tile and its margin (see :func:`visible_coverage`)."""
    ss = SUPERSAMPLE
    return np.zeros(((tile_h + 2 * margin) * ss, (tile_w + 2 * margin) * ss), np.uint8)


def visible_coverage(mask: np.ndarray, tile_w: int, tile_h: int, margin: int) -> np.ndarray:
    """The tile's part of a subpixel mask, averaged to ``(tile_h, tile_w)`` uint8
    coverage (0 none, 255 full)."""
    ss = SUPERSAMPLE
    part = mask[margin * ss : (margin + tile_h) * ss, margin * ss : (margin + tile_w) * ss]
    return cv2.resize(part, (tile_w, tile_h), interpolation=cv2.INTER_AREA)


def _subpixel_thickness(width: float) -> int:
    # OpenCV's hard-edged lines cover thickness + 1 subpixels across when horizontal or
    # vertical (a quarter pixel more on diagonals); an odd thickness centres them
    return max(1, round(width * SUPERSAMPLE) - 1)


def draw_pieces(
    mask: np.ndarray, pieces: np.ndarray, origin: tuple[int, int], width: float
) -> None:
    """Draw the ``pieces`` (from :func:`pieces_of`) that reach the visible part of a
    :func:`stroke_mask`, as lines ``width`` output px wide; the mask's subpixel
    ``(0, 0)`` is output pixel ``origin``."""
    if len(pieces) == 0:
        return
    ss = SUPERSAMPLE
    h, w = mask.shape[0] // ss, mask.shape[1] // ss
    margin = stroke_margin(width)
    local = pieces - np.array([origin[0], origin[1]], np.int64) * (ss * _ONE)
    lo = local.min(axis=1)
    hi = local.max(axis=1)
    reach = math.ceil(width) + 3
    unit = ss * _ONE
    near = (
        (hi[:, 0] >= (margin - reach) * unit)
        & (lo[:, 0] <= (w - margin + reach) * unit)
        & (hi[:, 1] >= (margin - reach) * unit)
        & (lo[:, 1] <= (h - margin + reach) * unit)
    )
    if near.any():
        chosen = local[near].astype(np.int32)
        cv2.polylines(
            mask, list(chosen), False, 255, _subpixel_thickness(width), cv2.LINE_8, _SHIFT
        )


def draw_discs(
    mask: np.ndarray,
    centres: np.ndarray,
    origin: tuple[int, int],
    radius: float,
    ring_width: float | None = None,
) -> None:
    """Filled discs (or rings ``ring_width`` px wide) of ``radius`` output px at
    fixed-point ``centres`` (:func:`to_fixed`) that reach the mask."""
    if len(centres) == 0:
        return
    ss = SUPERSAMPLE
    h, w = mask.shape
    local = centres - np.array(origin, np.int64) * (ss * _ONE)
    reach = (radius + (ring_width or 0) + 2) * ss * _ONE
    near = (
        (local[:, 0] > -reach)
        & (local[:, 0] < w * _ONE + reach)
        & (local[:, 1] > -reach)
        & (local[:, 1] < h * _ONE + reach)
    )
    r = round((radius * ss - 0.5) * _ONE)
    thickness = -1 if ring_width is None else _subpixel_thickness(ring_width)
    for x, y in local[near].astype(np.int32):
        cv2.circle(mask, (int(x), int(y)), r, 255, thickness, cv2.LINE_8, _SHIFT)


def _ellipse_ring(bounds: tuple[float, float, float, float], out_per_l0: float) -> np.ndarray:
    """An ellipse as a polygon fine enough that its facets are under a pixel on output."""
    x0, y0, x1, y1 = bounds
    rx, ry = (x1 - x0) / 2, (y1 - y0) / 2
    perimeter_px = 2 * math.pi * math.sqrt((rx * rx + ry * ry) / 2) * out_per_l0
    n = int(min(20_000, max(72, math.ceil(perimeter_px / 2))))
    t = np.linspace(0.0, 2 * math.pi, n, endpoint=False)
    return np.stack([(x0 + x1) / 2 + rx * np.cos(t), (y0 + y1) / 2 + ry * np.sin(t)], axis=1)


@dataclass(frozen=True)
class _Mapping:
    """Level-0 to output pixels: ``out = (l0 - l0_origin) / l0_per_px`` (edge coordinates)."""

    l0_x: float
    l0_y: float
    l0_per_px: float

    def to_out(self, l0_points: np.ndarray) -> np.ndarray:
        return (l0_points - (self.l0_x, self.l0_y)) / self.l0_per_px


class AnnotationPainter:
    """Draws a fixed list of annotations into tiles of one figure.

    The figure maps level-0 point ``(l0_x, l0_y)`` to output edge coordinates
    ``((l0_x - l0_origin[0]) / l0_per_px, ...)``.  ``scale`` enlarges lines, points and
    labels (print resolution); ``style`` says what is drawn; ``mpp`` (or ``None``) sets
    the units of ruler labels.
    """

    def __init__(
        self,
        annotations: Sequence[Annotation],
        *,
        l0_origin: tuple[float, float],
        l0_per_px: float,
        mpp: float | None,
        scale: float = 1.0,
        style: AnnotationStyle | None = None,
    ) -> None:
        self._items = tuple(annotations)
        self._map = _Mapping(l0_origin[0], l0_origin[1], l0_per_px)
        self._mpp = mpp
        self._scale = scale
        self.style = style or AnnotationStyle()
        self._width = self.style.line_px * scale
        # a disc of the point radius outlined by the pen, as the canvas draws points
        self._radius = (self.style.point_radius_px + self.style.line_px / 2) * scale
        self._end_radius = _RULER_END_PX * scale
        self._margin = stroke_margin(self._width, self._radius + 2)
        reach_px = max(self._width, self._radius) + 2.0
        if self._items:
            bounds = np.array([a.l0_bounds for a in self._items], np.float64)
        else:
            bounds = np.zeros((0, 4), np.float64)
        # output-pixel bounds, grown by how far strokes reach beyond the geometry
        out_lo = self._map.to_out(bounds[:, :2]) - reach_px
        out_hi = self._map.to_out(bounds[:, 2:]) + reach_px
        self._out_bounds = np.concatenate([out_lo, out_hi], axis=1)
        # per annotation, made on first use: fixed-point pieces or centres, and edges
        self._geometry: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def __len__(self) -> int:
        return len(self._items)

    # -- labels ------------------------------------------------------------------------
    def labels(self) -> list[Sprite]:
        """Text labels: rulers' lengths at their middle, and (with ``style.labels``)
        names or class names beside the shapes, placed as the canvas places them."""
        sprites = []
        gap = 6 * self._scale
        for annotation in self._items:
            points = self._map.to_out(np.asarray(annotation.l0_points, np.float64))
            if annotation.kind is AnnotationKind.RULER:
                middle = (
                    points[len(points) // 2] if len(points) > 2 else (points[0] + points[1]) / 2
                )
                text = ruler_label(annotation, self._mpp)
                sprites.append(self._label(text, middle[0] + gap, middle[1] - gap))
            if not self.style.labels:
                continue
            text = annotation.name or (annotation.class_name or "")
            if not text:
                continue
            if annotation.kind is AnnotationKind.POINT:
                at = (points[0][0] + self._radius + 3 * self._scale, points[0][1])
            elif annotation.kind is AnnotationKind.RULER:
                continue
            else:
                x0, y0 = self._map.to_out(np.array(annotation.l0_bounds[:2], np.float64))
                at = (x0, y0 - 4 * self._scale)
            sprites.append(self._label(text, *at))
        return sprites

    def _label(self, text: str, x: float, y: float) -> Sprite:
        """A label whose box's bottom-left corner is at output ``(x, y)`` (plus 2 px)."""
        rgba = render_label(text, self._scale)
        return Sprite(rgba, round(x), round(y + 2 * self._scale) - rgba.shape[0])

    # -- which annotations reach a tile ------------------------------------------------
    def _hits(self, out_x: int, out_y: int, w: int, h: int) -> np.ndarray:
        b = self._out_bounds
        return np.flatnonzero(
            (b[:, 0] < out_x + w) & (b[:, 2] > out_x) & (b[:, 1] < out_y + h) & (b[:, 3] > out_y)
        )

    def reaching(self, out_x: int, out_y: int, w: int, h: int) -> list[Annotation]:
        """The annotations (in order) whose strokes reach output ``[out_x, out_x + w) x ...``."""
        return [self._items[int(i)] for i in self._hits(out_x, out_y, w, h)]

    def touches(self, out_x: int, out_y: int, w: int, h: int) -> bool:
        """Whether any annotation reaches output pixels ``[out_x, out_x + w) x ...``."""
        return bool(self._hits(out_x, out_y, w, h).size)

    def _shape(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """``(strokes, edges)`` of one annotation: fixed-point pieces of its outline or
        line (points: fixed-point centres) and, for areas, the float edges to fill.

        Computed once per annotation; tiles run on several threads, and a repeated
        computation gives the same arrays, so the unlocked cache is safe.
        """
        found = self._geometry.get(index)
        if found is not None:
            return found
        annotation = self._items[index]
        no_edges = np.zeros((0, 2, 2), np.float64)
        if annotation.kind is AnnotationKind.POINT:
            centres = self._map.to_out(np.asarray(annotation.l0_points, np.float64))
            shape = (to_fixed(centres), no_edges)
        else:
            if annotation.kind is AnnotationKind.ELLIPSE:
                rings = [_ellipse_ring(annotation.l0_bounds, 1.0 / self._map.l0_per_px)]
            else:
                rings = [np.asarray(r, np.float64) for r in annotation.l0_rings()]
            segments = segments_of([self._map.to_out(r) for r in rings], annotation.kind.is_area)
            edges = segments if annotation.kind.is_area else no_edges
            shape = (pieces_of(segments), edges)
        self._geometry[index] = shape
        return shape

    # -- drawing -----------------------------------------------------------------------
    def draw(self, buf: np.ndarray, out_x: int, out_y: int) -> bool:
        """Draw every annotation that reaches the tile ``buf`` (float RGB, its pixel
        ``(0, 0)`` at output pixel ``(out_x, out_y)``), bottom first; consecutive
        annotations of one colour are drawn together.  Returns whether any was."""
        th, tw = buf.shape[:2]
        hits = self._hits(out_x, out_y, tw, th)
        if hits.size == 0:
            return False
        m = self._margin
        mask = stroke_mask(tw, th, m)
        origin = (out_x - m, out_y - m)
        group: list[int] = []
        for index in (int(i) for i in hits):
            if group and self._items[group[0]].colour != self._items[index].colour:
                self._draw_group(buf, mask, group, origin, (out_x, out_y))
                group = []
            group.append(index)
        self._draw_group(buf, mask, group, origin, (out_x, out_y))
        return True

    def _draw_group(
        self,
        buf: np.ndarray,
        mask: np.ndarray,
        group: list[int],
        origin: tuple[int, int],
        tile_xy: tuple[int, int],
    ) -> None:
        """Fill, then stroke, annotations of one colour into ``buf``; ``mask`` is a
        zeroed :func:`stroke_mask` and is left zeroed."""
        colour = self._items[group[0]].colour
        style = self.style
        th, tw = buf.shape[:2]
        if style.fill_alpha > 0:
            filled: np.ndarray | None = None
            for index in group:
                inside = fill_coverage(self._shape(index)[1], *tile_xy, tw, th)
                if inside is not None:
                    filled = inside if filled is None else filled | inside
            if filled is not None:
                coverage = filled.astype(np.uint8) * 255
                blend_coverage(buf, coverage, colour, style.opacity * style.fill_alpha / 255)
        for index in group:
            annotation = self._items[index]
            strokes = self._shape(index)[0]
            if annotation.kind is AnnotationKind.POINT:
                draw_discs(mask, strokes, origin, self._radius)
                continue
            draw_pieces(mask, strokes, origin, self._width)
            if annotation.kind is AnnotationKind.RULER:
                ends = np.stack([strokes[0, 0], strokes[-1, 1]])
                draw_discs(mask, ends, origin, self._end_radius, ring_width=self._width)
        coverage = visible_coverage(mask, tw, th, self._margin)
        blend_coverage(buf, coverage, colour, style.opacity)
        mask[:] = 0
