"""The slide canvas: paints cached tiles under the view transform and turns mouse and
keyboard input into viewport changes.  It never reads a slide."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np
from PySide6.QtCore import QPointF, QRect, QRectF, Qt, QTimer, Signal
from PySide6.QtGui import (
    QBrush,
    QColor,
    QImage,
    QKeyEvent,
    QMouseEvent,
    QPainter,
    QPaintEvent,
    QPen,
    QRegion,
    QResizeEvent,
    QWheelEvent,
)
from PySide6.QtWidgets import QWidget

from inference.core.geometry import Rect, ViewTransform, magnification_at
from inference.slides import SlideSource
from viewer.export.legend_render import render_legends
from viewer.export.scale_bar_render import bottom_left, bottom_right, render_scale_bar
from viewer.export.scene import layer_legends
from viewer.layers.base import LayerStack
from viewer.layers.legend import Legend
from viewer.qt.canvas.layer_painters import LayerPainter
from viewer.qt.canvas.tile_bridge import DecodedTile, TileBridge
from viewer.qt.canvas.tools import CanvasTool
from viewer.tiles.keys import TileKey
from viewer.tiles.planner import TileGridSet, ViewPlan, plan_view
from viewer.tiles.viewport import ViewportModel

#: Colour of glass outside the slide.
BACKGROUND = QColor(48, 50, 54)
#: Wheel zoom per notch (120 units of angle delta).
WHEEL_ZOOM_PER_NOTCH = 1.25
#: Milliseconds after the last view change before tiles are repainted smoothly.
SETTLE_MS = 120
#: Tiles that arrive within this many milliseconds are shown by one repaint.
TILE_REPAINT_MS = 30
#: More arrived tiles than this are repainted by one whole-canvas paint.
MAX_TILE_RECTS = 64
#: Keyboard pan step as a fraction of the view.
KEY_PAN_FRACTION = 0.15

#: A painter for an overlay layer: ``paint(painter, canvas)`` after the tiles.  What it
#: draws must be anchored to the slide: a whole-pixel pan scrolls the painted frame.
OverlayPainter = Callable[[QPainter, "SlideCanvas"], None]


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


class SlideCanvas(QWidget):
    """A raster widget that shows one slide like a map.

    Drag to pan, wheel to zoom about the cursor, double-click to zoom in (Shift: out),
    arrow keys to pan, ``+``/``-`` to zoom, ``0`` to fit.  While a sharp tile is
    missing the best cached coarser tile is stretched in its place, then the thumbnail.
    """

    cursor_moved = Signal(float, float)  # level-0 x, y under the cursor
    cursor_left = Signal()
    view_changed = Signal()
    tool_changed = Signal(object)  # the active CanvasTool or None

    def __init__(self, bridge: TileBridge, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.bridge = bridge
        self.viewport = ViewportModel()
        self.viewport.changed.connect(self._on_view_changed)
        self.source: SlideSource | None = None
        self.grids: TileGridSet | None = None
        self.thumbnail: QImage | None = None
        self.plan: ViewPlan | None = None
        self.show_scale_bar = True
        self.layers = LayerStack()
        self._layer_painter = LayerPainter()
        for signal in (self.layers.inserted, self.layers.removed, self.layers.moved):
            signal.connect(self._on_layers_changed)
        self.layers.layer_changed.connect(self._on_layers_changed)
        self.overlay_painters: list[OverlayPainter] = []
        self.tool: CanvasTool | None = None
        self.show_legend = True
        self._legend_key: tuple[Legend, ...] = ()
        self._legend_image: QImage | None = None
        self._scale_bar_key: tuple[float, float | None] | None = None
        self._scale_bar_image: QImage | None = None
        self._drag_from: QPointF | None = None
        #: The view changed in the last moments: paint fast, then once smoothly.
        self._moving = False
        self._settle_timer = QTimer(self)
        self._settle_timer.setSingleShot(True)
        self._settle_timer.setInterval(SETTLE_MS)
        self._settle_timer.timeout.connect(self._settled)
        self._paint_transform: ViewTransform | None = None
        #: The view (and screen size) the frame on screen shows, or will once the
        #: pending paints are done.
        self._shown: tuple[ViewTransform | None, tuple[int, int]] = (None, (0, 0))
        self._tile_repaint = QTimer(self)
        self._tile_repaint.setSingleShot(True)
        self._tile_repaint.setInterval(TILE_REPAINT_MS)
        self._tile_repaint.timeout.connect(self._repaint_arrived)
        self._arrived: list[TileKey] = []
        self.paint_count = 0
        #: ``time.perf_counter()`` of the last paint, and of the last with every tile sharp.
        self.last_paint_time = 0.0
        self.last_sharp_paint_time = 0.0
        self.setMouseTracking(True)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)
        self.setMinimumSize(200, 150)
        bridge.tile_loaded.connect(self._on_tile_loaded)
        bridge.tile_failed.connect(self._on_tile_loaded)

    # -- slide ------------------------------------------------------------------------
    def set_slide(self, source: SlideSource, thumbnail: QImage | None) -> None:
        """Show a slide that was opened (and thumbnailed) off the GUI thread."""
        self.source = source
        self.grids = TileGridSet(source.info)
        self.thumbnail = thumbnail
        self.bridge.add_source(source, self.grids)
        self.viewport.resize(self.width(), self.height())
        self.viewport.set_slide_size(*source.info.dimensions)

    def clear_slide(self) -> None:
        self.source = None
        self.grids = None
        self.thumbnail = None
        self.plan = None
        self.update()

    def set_tool(self, tool: CanvasTool | None) -> None:
        """Make ``tool`` take the left mouse button (``None``: back to panning)."""
        if self.tool is not None and self.tool is not tool:
            self.tool.cancel(self)
        self.tool = tool
        if tool is None:
            self.unsetCursor()
        else:
            self.setCursor(tool.cursor)
        self.tool_changed.emit(tool)
        self.update()

    # -- view updates -----------------------------------------------------------------
    def _on_view_changed(self) -> None:
        self._moving = True
        self._settle_timer.start()
        self._request_tiles()
        shown, shown_size = self._shown
        now = self.viewport.transform()
        self._shown = (now, self.viewport.scr_size)
        if (
            shown is None
            or shown_size != self.viewport.scr_size
            or not self._scroll_shown_frame(shown, now)
        ):
            self.update()
        self.view_changed.emit()

    def _scroll_shown_frame(self, shown: ViewTransform, now: ViewTransform) -> bool:
        """Pan what is on screen by whole pixels instead of painting it all again.

        Only for a pure pan by whole screen pixels (a mouse drag) with no tool drawing
        on top: the frame is moved in the backing store, and only the strips that
        came into view, the scale bar, the legend and the child widgets (which stay
        put on screen) are painted.  Returns whether it did so.
        """
        if self.tool is not None or self.source is None or not self.isVisible():
            return False
        if now.scale != shown.scale:
            return False
        scr_dx = (shown.l0_x - now.l0_x) * now.scale
        scr_dy = (shown.l0_y - now.l0_y) * now.scale
        dx, dy = round(scr_dx), round(scr_dy)
        if abs(scr_dx - dx) > 1e-6 or abs(scr_dy - dy) > 1e-6:
            return False
        if abs(dx) >= self.width() or abs(dy) >= self.height():
            return False
        self.scroll(dx, dy, self.rect())
        for fixed in self._screen_fixed_rects():
            self.update(fixed)
            self.update(fixed.translated(dx, dy))
        return True

    def _screen_fixed_rects(self) -> list[QRect]:
        """Where the canvas shows things that do not move with the slide."""
        w, h = self.width(), self.height()
        children = self.findChildren(QWidget, options=Qt.FindChildOption.FindDirectChildrenOnly)
        rects = [child.geometry() for child in children if child.isVisible()]
        if self.show_scale_bar and self._scale_bar_image is not None:
            image = self._scale_bar_image
            rects.append(
                QRect(
                    *bottom_left(w, h, image.width(), image.height()), image.width(), image.height()
                )
            )
        if self.show_legend and self._legend_image is not None:
            image = self._legend_image
            rects.append(
                QRect(
                    *bottom_right(w, h, image.width(), image.height()),
                    image.width(),
                    image.height(),
                )
            )
        return rects

    def _settled(self) -> None:
        self._moving = False
        self.update()

    def _request_tiles(self) -> None:
        if self.grids is None or self.source is None:
            return
        scr_w, scr_h = self.viewport.scr_size
        self.plan = plan_view(self.grids, self.viewport.transform(), scr_w, scr_h)
        source_id = self.source.info.source_id
        plan = self.plan
        keys = [TileKey(source_id, plan.coarse_level, c, r) for c, r in plan.coarse_visible]
        keys += [TileKey(source_id, plan.level, c, r) for c, r in plan.visible]
        keys += [TileKey(source_id, plan.level, c, r) for c, r in plan.prefetch]
        self.bridge.scheduler.request(keys)

    def _on_layers_changed(self, *_: object) -> None:
        self.update()

    def _on_tile_loaded(self, key: TileKey, *_: object) -> None:
        # tiles arrive in bursts: repaint for them at most every TILE_REPAINT_MS, so a
        # burst costs a paint or two, not one per tile, while the user pans
        if self.source is None or key.source_id != self.source.info.source_id:
            return
        self._arrived.append(key)
        if not self._tile_repaint.isActive():
            self._tile_repaint.start()

    def _repaint_arrived(self) -> None:
        """Repaint where the tiles that arrived lie on screen (not the whole canvas)."""
        arrived, self._arrived = self._arrived, []
        if self.grids is None:
            return
        if len(arrived) > MAX_TILE_RECTS:
            self.update()
            return
        region = QRegion()
        for key in arrived:
            if key.level < self.grids.level_count:
                l0_rect = self.grids.tile_l0_rect(key.level, key.t_col, key.t_row)
                # a pixel of margin: smooth scaling reaches a little past a tile's edge
                region += self._scr_rect(l0_rect).adjusted(-1, -1, 1, 1)
        self.update(region.intersected(self.rect()))

    def visible_tiles_ready(self) -> bool:
        """Whether every on-screen tile of the sharp level is in the cache."""
        if self.plan is None or self.source is None:
            return False
        source_id = self.source.info.source_id
        return all(
            TileKey(source_id, self.plan.level, c, r) in self.bridge.cache
            or self.bridge.scheduler.is_failed(TileKey(source_id, self.plan.level, c, r))
            for c, r in self.plan.visible
        )

    # -- painting ---------------------------------------------------------------------
    def _scr_rect(self, l0_rect: Rect) -> QRect:
        """Integer screen rectangle of a level-0 rectangle; neighbours share edges exactly."""
        t = self._paint_transform or self.viewport.transform()
        return _scr_box(t, l0_rect.x, l0_rect.y, l0_rect.right, l0_rect.bottom)

    def _tile_scr_rect(self, level: int, t_col: int, t_row: int) -> QRect:
        """Screen rectangle of a tile: the arithmetic of ``grids.tile_l0_rect`` and
        :meth:`_scr_rect` inlined, since a paint does this for every tile on screen."""
        assert self.grids is not None
        grid = self.grids.grid(level)
        size = grid.tile_size
        ds = self.grids.levels[level].downsample
        lv_x, lv_y = t_col * size, t_row * size
        lv_x1 = min(lv_x + size, grid.lv_width)
        lv_y1 = min(lv_y + size, grid.lv_height)
        t = self._paint_transform or self.viewport.transform()
        return _scr_box(t, lv_x * ds, lv_y * ds, lv_x1 * ds, lv_y1 * ds)

    def paintEvent(self, event: QPaintEvent) -> None:
        self.paint_count += 1
        self._paint_transform = self.viewport.transform()
        painter = QPainter(self)
        if self.source is None:
            painter.fillRect(self.rect(), BACKGROUND)
        else:
            # only around the slide: the slide's own area is painted over anyway
            slide = self._scr_rect(Rect(0, 0, *self.source.info.dimensions))
            w, h = self.width(), self.height()
            top, bottom = max(0, slide.top()), min(h, slide.bottom() + 1)
            for part in (
                QRect(0, 0, w, top),
                QRect(0, bottom, w, h - bottom),
                QRect(0, top, max(0, slide.left()), bottom - top),
                QRect(slide.right() + 1, top, w - slide.right() - 1, bottom - top),
            ):
                if part.width() > 0 and part.height() > 0:
                    painter.fillRect(part, BACKGROUND)
        if self.source is not None and self.grids is not None:
            if self.plan is None:
                self._request_tiles()
            self._paint_slide(painter, event.region())
            self._layer_painter.paint(
                painter, self.layers, self.viewport.transform(), (self.width(), self.height())
            )
            for paint_overlay in self.overlay_painters:
                paint_overlay(painter, self)
            if self.tool is not None:
                self.tool.paint(painter, self)
            if self.show_scale_bar:
                self._paint_scale_bar(painter)
            if self.show_legend:
                self._paint_legend(painter)
        painter.end()
        self._paint_transform = None

    def legends(self) -> tuple[Legend, ...]:
        """Legends of the visible layers that have one, top layer first (what an
        exported figure of this view shows too)."""
        return layer_legends(self.layers)

    def _paint_legend(self, painter: QPainter) -> None:
        legends = self.legends()
        if legends != self._legend_key:
            self._legend_key = legends
            self._legend_image = _rgba_to_qimage(render_legends(legends))
        image = self._legend_image
        if image is not None:
            painter.drawImage(
                *bottom_right(self.width(), self.height(), image.width(), image.height()), image
            )

    def _paint_scale_bar(self, painter: QPainter) -> None:
        assert self.source is not None
        mpp = self.source.info.mpp
        key = (self.viewport.scale, mpp)
        if key != self._scale_bar_key:
            self._scale_bar_key = key
            bar = render_scale_bar(1.0 / self.viewport.scale, mpp)
            self._scale_bar_image = _rgba_to_qimage(bar.rgba) if bar is not None else None
        image = self._scale_bar_image
        if image is not None:
            painter.drawImage(
                *bottom_left(self.width(), self.height(), image.width(), image.height()), image
            )

    def _paint_slide(self, painter: QPainter, region: QRegion) -> None:
        assert self.source is not None and self.grids is not None and self.plan is not None
        info = self.source.info
        cache = self.bridge.cache
        source_id = info.source_id
        plan = self.plan
        # while the view moves, tiles are scaled the cheap way; a last paint once it has
        # settled draws them smoothly (see _on_view_changed)
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, not self._moving)
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
            painter.fillRect(self._scr_rect(Rect(0, 0, *info.dimensions)), QColor(255, 255, 255))
            self._paint_fallbacks(painter, missing)
        for target, image in ready:
            painter.drawImage(target, image)
        failed = [
            t
            for t in missing
            if self.bridge.scheduler.is_failed(TileKey(source_id, plan.level, *t))
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
        assert self.source is not None and self.grids is not None and self.plan is not None
        info = self.source.info
        grids = self.grids
        level = self.plan.level
        cache = self.bridge.cache
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
        if need_thumbnail is not None and self.thumbnail is not None:
            self._paint_thumbnail(painter, need_thumbnail)
        for key, tile in stand_ins.items():
            painter.drawImage(self._tile_scr_rect(key.level, key.t_col, key.t_row), tile.image)

    def _paint_thumbnail(self, painter: QPainter, l0_area: Rect) -> None:
        """The thumbnail over a level-0 area of the slide (and of the screen)."""
        assert self.source is not None and self.thumbnail is not None
        if self.thumbnail.isNull():
            return
        l0_w, l0_h = self.source.info.dimensions
        scr_w, scr_h = self.viewport.scr_size
        l0_view = self.viewport.transform().scr_rect_to_l0(Rect(0, 0, scr_w, scr_h))
        area = l0_area.intersect(Rect(0, 0, l0_w, l0_h)).intersect(l0_view)
        if area.is_empty():
            return
        sx, sy = self.thumbnail.width() / l0_w, self.thumbnail.height() / l0_h
        source_rect = QRectF(area.x * sx, area.y * sy, area.w * sx, area.h * sy)
        painter.drawImage(QRectF(self._scr_rect(area)), self.thumbnail, source_rect)

    # -- input ------------------------------------------------------------------------
    def resizeEvent(self, event: QResizeEvent) -> None:
        self.viewport.resize(event.size().width(), event.size().height())
        super().resizeEvent(event)

    def wheelEvent(self, event: QWheelEvent) -> None:
        notches = event.angleDelta().y() / 120.0
        if notches:
            pos = event.position()
            self.viewport.zoom_by(WHEEL_ZOOM_PER_NOTCH**notches, (pos.x(), pos.y()))
        event.accept()

    def mousePressEvent(self, event: QMouseEvent) -> None:
        if self.tool is not None and self.source is not None and self.tool.press(self, event):
            return
        if event.button() in (Qt.MouseButton.LeftButton, Qt.MouseButton.MiddleButton):
            self._drag_from = event.position()
            self.setCursor(Qt.CursorShape.ClosedHandCursor)
        super().mousePressEvent(event)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        pos = event.position()
        if self._drag_from is not None:
            delta = pos - self._drag_from
            self._drag_from = pos
            self.viewport.pan_by_scr(delta.x(), delta.y())
        elif self.tool is not None and self.source is not None:
            if event.buttons() == Qt.MouseButton.NoButton:
                self.tool.hover(self, event)
            else:
                self.tool.move(self, event)
        l0_x, l0_y = self.viewport.transform().scr_to_l0(pos.x(), pos.y())
        self.cursor_moved.emit(l0_x, l0_y)
        super().mouseMoveEvent(event)

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        if self._drag_from is None and self.tool is not None and self.tool.release(self, event):
            return
        self._drag_from = None
        if self.tool is None:
            self.unsetCursor()
        else:
            self.setCursor(self.tool.cursor)
        super().mouseReleaseEvent(event)

    def mouseDoubleClickEvent(self, event: QMouseEvent) -> None:
        if self.tool is not None:
            self.tool.double_click(self, event)
            return
        pos = event.position()
        out = bool(event.modifiers() & Qt.KeyboardModifier.ShiftModifier)
        self.viewport.zoom_by(0.5 if out else 2.0, (pos.x(), pos.y()))

    def leaveEvent(self, event: object) -> None:
        self.cursor_left.emit()

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if self.tool is not None and self.tool.key_press(self, event):
            return
        key = event.key()
        scr_w, scr_h = self.viewport.scr_size
        step_x, step_y = scr_w * KEY_PAN_FRACTION, scr_h * KEY_PAN_FRACTION
        pans = {
            Qt.Key.Key_Left: (step_x, 0.0),
            Qt.Key.Key_Right: (-step_x, 0.0),
            Qt.Key.Key_Up: (0.0, step_y),
            Qt.Key.Key_Down: (0.0, -step_y),
        }
        if key in pans:
            self.viewport.pan_by_scr(*pans[Qt.Key(key)])
        elif key in (Qt.Key.Key_Plus, Qt.Key.Key_Equal):
            self.viewport.zoom_by(WHEEL_ZOOM_PER_NOTCH**2)
        elif key in (Qt.Key.Key_Minus, Qt.Key.Key_Underscore):
            self.viewport.zoom_by(WHEEL_ZOOM_PER_NOTCH**-2)
        elif key == Qt.Key.Key_0:
            self.viewport.fit()
        elif key == Qt.Key.Key_Escape and self.tool is not None:
            self.set_tool(None)
        else:
            super().keyPressEvent(event)

    # -- facts for the status bar -----------------------------------------------------
    def magnification(self) -> float | None:
        if self.source is None:
            return None
        info = self.source.info
        return magnification_at(self.viewport.scale, info.mpp, info.objective_power)

    def pen_for_outline(self) -> QPen:
        return QPen(QColor(255, 255, 255), 1)
