"""The slide canvas's paint path: glass, the cached tiles (with stand-ins for missing
ones), the layers, overlays and the active tool, then the scale bar and the legend.

It also moves the frame on screen for a pan by whole pixels, so that only the strips
that came into view are painted again.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Protocol, overload

import numpy as np
from PySide6.QtCore import QObject, QRect, QRectF, Qt
from PySide6.QtGui import QBrush, QColor, QImage, QPainter, QRegion
from PySide6.QtWidgets import QWidget

from inference.core.geometry import Rect, ViewTransform
from inference.slides import SlideSource
from viewer.export.legend_render import render_legends
from viewer.export.scale_bar_render import bottom_left, bottom_right, render_scale_bar
from viewer.layers.base import LayerStack
from viewer.layers.legend import Legend
from viewer.qt.canvas.layer_painters import LayerPainter
from viewer.qt.canvas.tile_bridge import DecodedTile, TileBridge
from viewer.qt.canvas.tools import CanvasTool, ToolCanvas
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
    def show_legend(self) -> bool: ...

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


def _scr_box(t: ViewTransform, l0_x0: float, l0_y0: float, l0_x1: float, l0_y1: float) -> QRect:
    """Integer screen rectangle of level-0 corners (rounded, so neighbours share edges)."""
    s = t.scale
    x0 = math.floor((l0_x0 - t.l0_x) * s + 0.5)
    y0 = math.floor((l0_y0 - t.l0_y) * s + 0.5)
    x1 = math.floor((l0_x1 - t.l0_x) * s + 0.5)
    y1 = math.floor((l0_y1 - t.l0_y) * s + 0.5)
    return QRect(x0, y0, x1 - x0, y1 - y0)


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
        self._legend_key: tuple[Legend, ...] = ()
        self._legend_image: QImage | None = None
        self._scale_bar_key: tuple[float, float | None] | None = None
        self._scale_bar_image: QImage | None = None
        self._paint_transform: ViewTransform | None = None
        self.paint_count = 0
        #: ``time.perf_counter()`` of the last paint, and of the last with every tile sharp.
        self.last_paint_time = 0.0
        self.last_sharp_paint_time = 0.0

    # -- geometry ---------------------------------------------------------------------
    def _transform(self) -> ViewTransform:
        return self._paint_transform or self._canvas.viewport.transform()

    def scr_rect(self, l0_rect: Rect) -> QRect:
        """Integer screen rectangle of a level-0 rectangle; neighbours share edges exactly."""
        return _scr_box(self._transform(), l0_rect.x, l0_rect.y, l0_rect.right, l0_rect.bottom)

    def _tile_scr_rect(self, level: int, t_col: int, t_row: int) -> QRect:
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
        return _scr_box(self._transform(), lv_x * ds, lv_y * ds, lv_x1 * ds, lv_y1 * ds)

    # -- scrolling --------------------------------------------------------------------
    def scroll_shown_frame(self, shown: ViewTransform, now: ViewTransform) -> bool:
        """Pan what is on screen by whole pixels instead of painting it all again.

        Only for a pure pan by whole screen pixels (a mouse drag) with no tool drawing
        on top: the frame is moved in the backing store, and only the strips that
        came into view, the scale bar, the legend and the child widgets (which stay
        put on screen) are painted.  Returns whether it did so.
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
        w, h = canvas.width(), canvas.height()
        rects = [
            child.geometry()
            for child in canvas.children()
            if isinstance(child, QWidget) and child.isVisible()
        ]
        if canvas.show_scale_bar and self._scale_bar_image is not None:
            image = self._scale_bar_image
            rects.append(
                QRect(
                    *bottom_left(w, h, image.width(), image.height()), image.width(), image.height()
                )
            )
        if canvas.show_legend and self._legend_image is not None:
            image = self._legend_image
            rects.append(
                QRect(
                    *bottom_right(w, h, image.width(), image.height()),
                    image.width(),
                    image.height(),
                )
            )
        return rects

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
        w, h = canvas.width(), canvas.height()
        top, bottom = max(0, slide.top()), min(h, slide.bottom() + 1)
        for part in (
            QRect(0, 0, w, top),
            QRect(0, bottom, w, h - bottom),
            QRect(0, top, max(0, slide.left()), bottom - top),
            QRect(slide.right() + 1, top, w - slide.right() - 1, bottom - top),
        ):
            if part.width() > 0 and part.height() > 0:
                painter.fillRect(part, BACKGROUND)

    def _paint_legend(self, painter: QPainter) -> None:
        canvas = self._canvas
        legends = canvas.legends()
        if legends != self._legend_key:
            self._legend_key = legends
            self._legend_image = _rgba_to_qimage(render_legends(legends))
        image = self._legend_image
        if image is not None:
            painter.drawImage(
                *bottom_right(canvas.width(), canvas.height(), image.width(), image.height()),
                image,
            )

    def _paint_scale_bar(self, painter: QPainter) -> None:
        canvas = self._canvas
        assert canvas.source is not None
        mpp = canvas.source.info.mpp
        key = (canvas.viewport.scale, mpp)
        if key != self._scale_bar_key:
            self._scale_bar_key = key
            bar = render_scale_bar(1.0 / canvas.viewport.scale, mpp)
            self._scale_bar_image = _rgba_to_qimage(bar.rgba) if bar is not None else None
        image = self._scale_bar_image
        if image is not None:
            painter.drawImage(
                *bottom_left(canvas.width(), canvas.height(), image.width(), image.height()),
                image,
            )

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
        ready: list[tuple[QRect, QImage]] = []
        for t_col, t_row in plan.visible:
            tile = cache.get(TileKey(source_id, plan.level, t_col, t_row))
            target = self._tile_scr_rect(plan.level, t_col, t_row)
            if isinstance(tile, DecodedTile):
                # after a pan only the strips that came into view are painted
                if region.intersects(target):
                    ready.append((target, tile.image))
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
            painter.drawImage(self._tile_scr_rect(key.level, key.t_col, key.t_row), tile.image)

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
        painter.drawImage(QRectF(self.scr_rect(area)), thumbnail, source_rect)
