"""The slide canvas's paint path: glass, the cached tiles (with stand-ins for missing
ones), the layers, overlays and the active tool, then the scale bar and the legend.

It also moves the frame on screen for a pan by whole pixels, so that only the strips
that came into view are painted again.

Everything is placed per *device* pixel (``viewport.device_pixel_ratio`` device px per
screen px): tile edges fall on whole device pixels, so at "1:1" each slide pixel is one
device pixel; the scale bar and the legend are rendered at the device resolution (as
an export of the view at that pixel ratio renders them) and drawn at their logical size.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Protocol, overload

import numpy as np
from PySide6.QtCore import QObject, QPointF, QRect, QRectF, Qt
from PySide6.QtGui import QBrush, QColor, QImage, QPainter, QRegion
from PySide6.QtWidgets import QWidget

from inference.core.geometry import Rect, ViewTransform, dev_to_scr, scr_to_dev
from inference.slides import SlideSource
from viewer.export.corners import Box, Corner, place_in_corner
from viewer.export.legend_render import render_legends
from viewer.export.scale_bar_render import bottom_left, render_scale_bar
from viewer.layers.base import LayerStack
from viewer.layers.legend import Legend
from viewer.qt.canvas.adjusted_tiles import AdjustedTiles
from viewer.qt.canvas.layer_painters import LayerPainter
from viewer.qt.canvas.tile_bridge import DecodedTile, TileBridge, adjusted_image
from viewer.qt.canvas.tools import CanvasTool, ToolCanvas
from viewer.tiles.adjustment import DisplayAdjustment
from viewer.tiles.keys import TileKey
from viewer.tiles.planner import TileGridSet, ViewPlan

#: Colour of glass outside the slide.
BACKGROUND = QColor(48, 50, 54)


class PaintedCanvas(ToolCanvas, Protocol):
    """What the painter reads from the canvas it paints (the slide canvas is one)."""

    @property
    def bridge(self) -> TileBridge: ...

    @property
    def source(self) -> SlideSource | None: ...

    @property
    def grids(self) -> TileGridSet | None: ...

    @property
    def plan(self) -> ViewPlan | None: ...

    @property
    def thumbnail(self) -> QImage | None: ...

    @property
    def layers(self) -> LayerStack: ...

    @property
    def overlay_painters(self) -> Sequence[OverlayPainter]: ...

    @property
    def tool(self) -> CanvasTool | None: ...

    @property
    def show_scale_bar(self) -> bool: ...

    @property
    def adjustment(self) -> DisplayAdjustment:
        """Brightness, contrast and gamma the slide's pixels are shown with."""

    @property
    def mpp(self) -> float | None:
        """µm per level-0 pixel the scale bar uses (``None``: unknown, bar in px)."""

    @property
    def show_legend(self) -> bool: ...

    @property
    def legend_corner(self) -> Corner:
        """The corner the legend sits in (the user drags it to another)."""

    @property
    def legend_drag_pos(self) -> QPointF | None:
        """While the legend is dragged: its top-left corner in screen px."""

    @property
    def moving(self) -> bool:
        """The view changed in the last moments: scale tiles the fast way."""

    def legends(self) -> tuple[Legend, ...]: ...

    def width(self) -> int: ...

    def height(self) -> int: ...

    def rect(self) -> QRect: ...

    def isVisible(self) -> bool: ...

    def children(self) -> list[QObject]: ...

    def scroll(self, dx: int, dy: int, rect: QRect, /) -> None: ...

    @overload
    def update(self) -> None: ...

    @overload
    def update(self, area: QRect, /) -> None: ...


#: A painter for an overlay layer: ``paint(painter, canvas)`` after the tiles.  What it
#: draws must be anchored to the slide: a whole-pixel pan scrolls the painted frame.
OverlayPainter = Callable[[QPainter, PaintedCanvas], None]


def _scr_box(
    t: ViewTransform,
    dev_per_scr: float,
    l0_x0: float,
    l0_y0: float,
    l0_x1: float,
    l0_y1: float,
) -> QRectF:
    """Screen rectangle of level-0 corners whose edges are rounded to whole *device*
    pixels (``dev_per_scr`` per screen pixel), so neighbours share edges exactly and a
    tile at its level's own scale covers exactly its pixels on the device."""
    dev = t.to_device(dev_per_scr)
    s = dev.scale
    dev_x0 = math.floor((l0_x0 - dev.l0_x) * s + 0.5)
    dev_y0 = math.floor((l0_y0 - dev.l0_y) * s + 0.5)
    dev_x1 = math.floor((l0_x1 - dev.l0_x) * s + 0.5)
    dev_y1 = math.floor((l0_y1 - dev.l0_y) * s + 0.5)
    return QRectF(
        dev_to_scr(dev_x0, dev_per_scr),
        dev_to_scr(dev_y0, dev_per_scr),
        dev_to_scr(dev_x1 - dev_x0, dev_per_scr),
        dev_to_scr(dev_y1 - dev_y0, dev_per_scr),
    )


def _hidpi_image(rgba: np.ndarray, dev_per_scr: float) -> QImage | None:
    """:func:`_rgba_to_qimage` of an overlay rendered at device resolution: drawn at
    ``1 / dev_per_scr`` of its pixel size in screen pixels."""
    image = _rgba_to_qimage(rgba)
    if image is not None:
        image.setDevicePixelRatio(dev_per_scr)
    return image


def _corner_scr_rect(
    corner: Callable[..., tuple[int, int]], canvas: PaintedCanvas, image: QImage
) -> QRectF:
    """Where a corner overlay rendered at device resolution goes: placed in device pixels
    by ``corner`` (:func:`bottom_left`, :func:`bottom_right`) with margins grown by the
    device pixel ratio, as an export of the view at that ratio places it."""
    ratio = canvas.viewport.device_pixel_ratio
    dev_w = round(scr_to_dev(canvas.width(), ratio))
    dev_h = round(scr_to_dev(canvas.height(), ratio))
    dev_x, dev_y = corner(dev_w, dev_h, image.width(), image.height(), ratio)
    return QRectF(
        dev_to_scr(dev_x, ratio),
        dev_to_scr(dev_y, ratio),
        dev_to_scr(image.width(), ratio),
        dev_to_scr(image.height(), ratio),
    )


def _dev_box(rect: QRect | QRectF, ratio: float) -> Box:
    """A screen rectangle in device px, ``(x, y, w, h)``."""
    return (
        scr_to_dev(rect.x(), ratio),
        scr_to_dev(rect.y(), ratio),
        scr_to_dev(rect.width(), ratio),
        scr_to_dev(rect.height(), ratio),
    )


def _rgba_to_qimage(rgba: np.ndarray) -> QImage | None:
    """An owning QImage of a straight-alpha RGBA array (``None`` for an empty one)."""
    if rgba.size == 0:
        return None
    h, w = rgba.shape[:2]
    data = np.ascontiguousarray(rgba)
    return QImage(data.data, w, h, 4 * w, QImage.Format.Format_RGBA8888).copy()


def _hatch_brush() -> QBrush:
    return QBrush(QColor(200, 60, 60, 160), Qt.BrushStyle.BDiagPattern)


class CanvasPainter:
    """Paints one canvas; keeps the rendered scale bar and legend between paints."""

    def __init__(self, canvas: PaintedCanvas) -> None:
        self._canvas = canvas
        self._layer_painter = LayerPainter()
        self._legend_key: tuple[tuple[Legend, ...], float] = ((), 1.0)
        self._legend_image: QImage | None = None
        self._scale_bar_key: tuple[float, float | None, float] | None = None
        self._scale_bar_image: QImage | None = None
        #: The tiles on screen under the display adjustment (made as they are painted).
        self.adjusted = AdjustedTiles()
        #: The thumbnail under the display adjustment, with what it was made from.
        self._thumbnail: tuple[QImage | None, DisplayAdjustment | None, QImage | None] = (
            None,
            None,
            None,
        )
        self._paint_transform: ViewTransform | None = None
        self.paint_count = 0
        #: ``time.perf_counter()`` of the last paint, and of the last with every tile sharp.
        self.last_paint_time = 0.0
        self.last_sharp_paint_time = 0.0

    # -- geometry ---------------------------------------------------------------------
    def _transform(self) -> ViewTransform:
        return self._paint_transform or self._canvas.viewport.transform()

    def _ratio(self) -> float:
        return self._canvas.viewport.device_pixel_ratio

    def scr_rect(self, l0_rect: Rect) -> QRectF:
        """Screen rectangle of a level-0 rectangle, its edges on whole device pixels;
        neighbours share edges exactly."""
        return _scr_box(
            self._transform(), self._ratio(), l0_rect.x, l0_rect.y, l0_rect.right, l0_rect.bottom
        )

    def scr_update_rect(self, l0_rect: Rect) -> QRect:
        """The whole screen pixels :meth:`scr_rect` touches (for update regions)."""
        return self.scr_rect(l0_rect).toAlignedRect()

    def _tile_scr_rect(self, level: int, t_col: int, t_row: int) -> QRectF:
        """Screen rectangle of a tile: the arithmetic of ``grids.tile_l0_rect`` and
        :meth:`scr_rect` inlined, since a paint does this for every tile on screen."""
        grids = self._canvas.grids
        assert grids is not None
        grid = grids.grid(level)
        size = grid.tile_size
        ds = grids.levels[level].downsample
        lv_x, lv_y = t_col * size, t_row * size
        lv_x1 = min(lv_x + size, grid.lv_width)
        lv_y1 = min(lv_y + size, grid.lv_height)
        return _scr_box(
            self._transform(), self._ratio(), lv_x * ds, lv_y * ds, lv_x1 * ds, lv_y1 * ds
        )

    # -- scrolling --------------------------------------------------------------------
    def scroll_shown_frame(self, shown: ViewTransform, now: ViewTransform) -> bool:
        """Pan what is on screen by whole pixels instead of painting it all again.

        Only for a pure pan by whole screen pixels that are whole device pixels too (a
        mouse drag) with no tool drawing on top: the frame is moved in the backing
        store, and only the strips that came into view, the scale bar, the legend and
        the child widgets (which stay put on screen) are painted.  Returns whether it
        did so.
        """
        canvas = self._canvas
        if canvas.tool is not None or canvas.source is None or not canvas.isVisible():
            return False
        if now.scale != shown.scale:
            return False
        scr_dx = (shown.l0_x - now.l0_x) * now.scale
        scr_dy = (shown.l0_y - now.l0_y) * now.scale
        dx, dy = round(scr_dx), round(scr_dy)
        if abs(scr_dx - dx) > 1e-6 or abs(scr_dy - dy) > 1e-6:
            return False
        # tiles sit on whole device pixels: a shift by a fraction of one would not
        # reproduce a fresh paint (fractional ratios such as 1.5)
        ratio = self._ratio()
        dev_dx, dev_dy = scr_to_dev(dx, ratio), scr_to_dev(dy, ratio)
        if abs(dev_dx - round(dev_dx)) > 1e-6 or abs(dev_dy - round(dev_dy)) > 1e-6:
            return False
        if abs(dx) >= canvas.width() or abs(dy) >= canvas.height():
            return False
        canvas.scroll(dx, dy, canvas.rect())
        for fixed in self._screen_fixed_rects():
            canvas.update(fixed)
            canvas.update(fixed.translated(dx, dy))
        return True

    def _screen_fixed_rects(self) -> list[QRect]:
        """Where the canvas shows things that do not move with the slide."""
        canvas = self._canvas
        rects = [
            child.geometry()
            for child in canvas.children()
            if isinstance(child, QWidget) and child.isVisible()
        ]
        if canvas.show_scale_bar and self._scale_bar_image is not None:
            bar = _corner_scr_rect(bottom_left, canvas, self._scale_bar_image)
            rects.append(bar.toAlignedRect())
        legend = self.legend_scr_rect()
        if legend is not None:
            rects.append(legend.toAlignedRect())
        return rects

    def legend_scr_rect(self) -> QRectF | None:
        """Where the legend is on screen (``None`` when none is shown): in the canvas's
        ``legend_corner``, moved past the scale bar and the child widgets (the overview
        map) in that corner, or under the pointer while it is dragged."""
        canvas = self._canvas
        image = self._legend_image
        if not canvas.show_legend or image is None or canvas.source is None:
            return None
        ratio = self._ratio()
        scr_w, scr_h = dev_to_scr(image.width(), ratio), dev_to_scr(image.height(), ratio)
        drag = canvas.legend_drag_pos
        if drag is not None:
            return QRectF(drag.x(), drag.y(), scr_w, scr_h)
        taken: list[Box] = [
            _dev_box(child.geometry(), ratio)
            for child in canvas.children()
            if isinstance(child, QWidget) and child.isVisible()
        ]
        if canvas.show_scale_bar and self._scale_bar_image is not None:
            bar = _corner_scr_rect(bottom_left, canvas, self._scale_bar_image)
            taken.append(_dev_box(bar, ratio))
        dev_w = round(scr_to_dev(canvas.width(), ratio))
        dev_h = round(scr_to_dev(canvas.height(), ratio))
        dev_x, dev_y = place_in_corner(
            canvas.legend_corner, dev_w, dev_h, image.width(), image.height(), ratio, taken
        )
        return QRectF(dev_to_scr(dev_x, ratio), dev_to_scr(dev_y, ratio), scr_w, scr_h)

    # -- painting ---------------------------------------------------------------------
    def paint(self, painter: QPainter, region: QRegion) -> None:
        """One paint of the canvas (``region``: the part Qt asked for)."""
        canvas = self._canvas
        self.paint_count += 1
        self._paint_transform = canvas.viewport.transform()
        self._paint_glass(painter)
        if canvas.source is not None and canvas.grids is not None:
            self._paint_slide(painter, region)
            self._layer_painter.paint(
                painter,
                canvas.layers,
                canvas.viewport.transform(),
                (canvas.width(), canvas.height()),
            )
            for paint_overlay in canvas.overlay_painters:
                paint_overlay(painter, canvas)
            if canvas.tool is not None:
                canvas.tool.paint(painter, canvas)
            if canvas.show_scale_bar:
                self._paint_scale_bar(painter)
            if canvas.show_legend:
                self._paint_legend(painter)
        self._paint_transform = None

    def _paint_glass(self, painter: QPainter) -> None:
        canvas = self._canvas
        if canvas.source is None:
            painter.fillRect(canvas.rect(), BACKGROUND)
            return
        # only around the slide: the slide's own area is painted over anyway
        slide = self.scr_rect(Rect(0, 0, *canvas.source.info.dimensions))
        w, h = float(canvas.width()), float(canvas.height())
        top, bottom = max(0.0, slide.top()), min(h, slide.bottom())
        left, right = max(0.0, slide.left()), min(w, slide.right())
        for part in (
            QRectF(0, 0, w, top),
            QRectF(0, bottom, w, h - bottom),
            QRectF(0, top, left, bottom - top),
            QRectF(right, top, w - right, bottom - top),
        ):
            if part.width() > 0 and part.height() > 0:
                painter.fillRect(part, BACKGROUND)

    def _paint_legend(self, painter: QPainter) -> None:
        canvas = self._canvas
        legends = canvas.legends()
        ratio = self._ratio()
        if (legends, ratio) != self._legend_key:
            self._legend_key = (legends, ratio)
            self._legend_image = _hidpi_image(render_legends(legends, ratio), ratio)
        image = self._legend_image
        target = self.legend_scr_rect()
        if image is not None and target is not None:
            painter.drawImage(target, image)

    def _paint_scale_bar(self, painter: QPainter) -> None:
        canvas = self._canvas
        assert canvas.source is not None
        mpp = canvas.mpp
        ratio = self._ratio()
        key = (canvas.viewport.scale, mpp, ratio)
        if key != self._scale_bar_key:
            self._scale_bar_key = key
            # per device pixel and grown by the ratio: the bar of an export at this ratio
            bar = render_scale_bar(1.0 / canvas.viewport.dev_scale, mpp, ratio)
            self._scale_bar_image = _hidpi_image(bar.rgba, ratio) if bar is not None else None
        image = self._scale_bar_image
        if image is not None:
            painter.drawImage(_corner_scr_rect(bottom_left, canvas, image), image)

    def _paint_slide(self, painter: QPainter, region: QRegion) -> None:
        canvas = self._canvas
        assert canvas.source is not None and canvas.grids is not None
        assert canvas.plan is not None
        info = canvas.source.info
        cache = canvas.bridge.cache
        source_id = info.source_id
        plan = canvas.plan
        # while the view moves, tiles are scaled the cheap way; a last paint once it has
        # settled draws them smoothly (see SlideCanvas._on_view_changed)
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, not canvas.moving)
        missing: list[tuple[int, int]] = []
        ready: list[tuple[QRectF, QImage]] = []
        for t_col, t_row in plan.visible:
            key = TileKey(source_id, plan.level, t_col, t_row)
            tile = cache.get(key)
            target = self._tile_scr_rect(plan.level, t_col, t_row)
            if isinstance(tile, DecodedTile):
                # after a pan only the strips that came into view are painted
                if region.intersects(target.toAlignedRect()):
                    ready.append((target, self.adjusted.image(key, tile, canvas.adjustment)))
            else:
                missing.append((t_col, t_row))
        self.last_paint_time = time.perf_counter()
        if not missing:
            self.last_sharp_paint_time = self.last_paint_time
        else:
            # glass white where not even a stand-in exists yet
            painter.fillRect(self.scr_rect(Rect(0, 0, *info.dimensions)), QColor(255, 255, 255))
            self._paint_fallbacks(painter, missing)
        for target, image in ready:
            painter.drawImage(target, image)
        failed = [
            t
            for t in missing
            if canvas.bridge.scheduler.is_failed(TileKey(source_id, plan.level, *t))
        ]
        if failed:
            painter.save()
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(_hatch_brush())
            for t_col, t_row in failed:
                painter.drawRect(self._tile_scr_rect(plan.level, t_col, t_row))
            painter.restore()

    def _paint_fallbacks(self, painter: QPainter, missing: list[tuple[int, int]]) -> None:
        """Stand-ins for missing sharp tiles: the best cached coarser tile, else the thumbnail.

        Tiles that only the thumbnail can stand in for get it in one scaled draw over
        their bounding box (after a jump that is every tile on screen), then the coarser
        tiles go on top.
        """
        canvas = self._canvas
        assert canvas.source is not None and canvas.grids is not None
        assert canvas.plan is not None
        info = canvas.source.info
        grids = canvas.grids
        level = canvas.plan.level
        cache = canvas.bridge.cache
        stand_ins: dict[TileKey, DecodedTile] = {}
        need_thumbnail: Rect | None = None
        for t_col, t_row in missing:
            l0_tile = grids.tile_l0_rect(level, t_col, t_row)
            l0_cx, l0_cy = l0_tile.center
            for coarser in range(level + 1, grids.level_count):
                c_col, c_row = grids.covering_tile(coarser, l0_cx, l0_cy)
                key = TileKey(info.source_id, coarser, c_col, c_row)
                tile = cache.peek(key)
                if isinstance(tile, DecodedTile):
                    stand_ins[key] = tile
                    break
            else:
                need_thumbnail = (
                    l0_tile if need_thumbnail is None else need_thumbnail.union(l0_tile)
                )
        if need_thumbnail is not None and canvas.thumbnail is not None:
            self._paint_thumbnail(painter, need_thumbnail)
        for key, tile in stand_ins.items():
            image = self.adjusted.image(key, tile, canvas.adjustment)
            painter.drawImage(self._tile_scr_rect(key.level, key.t_col, key.t_row), image)

    def _paint_thumbnail(self, painter: QPainter, l0_area: Rect) -> None:
        """The thumbnail over a level-0 area of the slide (and of the screen)."""
        canvas = self._canvas
        thumbnail = canvas.thumbnail
        assert canvas.source is not None and thumbnail is not None
        if thumbnail.isNull():
            return
        l0_w, l0_h = canvas.source.info.dimensions
        scr_w, scr_h = canvas.viewport.scr_size
        l0_view = canvas.viewport.transform().scr_rect_to_l0(Rect(0, 0, scr_w, scr_h))
        area = l0_area.intersect(Rect(0, 0, l0_w, l0_h)).intersect(l0_view)
        if area.is_empty():
            return
        sx, sy = thumbnail.width() / l0_w, thumbnail.height() / l0_h
        source_rect = QRectF(area.x * sx, area.y * sy, area.w * sx, area.h * sy)
        painter.drawImage(self.scr_rect(area), self._shown_thumbnail(thumbnail), source_rect)

    def _shown_thumbnail(self, thumbnail: QImage) -> QImage:
        """The thumbnail under the canvas's display adjustment (made once per change)."""
        adjustment = self._canvas.adjustment
        made_from, made_for, shown = self._thumbnail
        if made_from is not thumbnail or made_for != adjustment or shown is None:
            shown = adjusted_image(thumbnail, adjustment)
            self._thumbnail = (thumbnail, adjustment, shown)
        return shown
