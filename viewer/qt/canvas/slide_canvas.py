"""The slide canvas: a widget that shows one slide like a map.  It holds the view state
(slide, viewport, layers, active tool), asks for the tiles the view needs and schedules
repaints; :mod:`canvas_painter` paints it and :mod:`canvas_input` turns input into
viewport changes.  It never reads a slide.

On a HiDPI screen the canvas works per device pixel: it keeps the viewport's
``device_pixel_ratio`` equal to its own (also when the window moves to another
screen), so the level it reads, the zoom "1:1" and the magnification are per device
pixel, and what it paints is what an export of the view at that ratio shows."""

from __future__ import annotations

from PySide6.QtCore import QEvent, QPointF, QRectF, Qt, QTimer, Signal
from PySide6.QtGui import (
    QColor,
    QImage,
    QKeyEvent,
    QMouseEvent,
    QPainter,
    QPaintEvent,
    QPen,
    QRegion,
    QResizeEvent,
    QShowEvent,
    QWheelEvent,
)
from PySide6.QtWidgets import QWidget

from inference.core.geometry import ViewTransform, magnification_at
from inference.slides import SlideSource
from viewer.export.corners import DEFAULT_LEGEND_CORNER, Corner
from viewer.export.scene import layer_legends
from viewer.layers.base import LayerStack
from viewer.layers.legend import Legend
from viewer.qt.canvas.canvas_input import CanvasInput
from viewer.qt.canvas.canvas_painter import CanvasPainter, OverlayPainter
from viewer.qt.canvas.tile_bridge import TileBridge
from viewer.qt.canvas.tools import CanvasTool
from viewer.tiles.adjustment import NEUTRAL, DisplayAdjustment
from viewer.tiles.keys import TileKey
from viewer.tiles.planner import TileGridSet, ViewPlan, plan_view
from viewer.tiles.viewport import ViewportModel

__all__ = ["OverlayPainter", "SlideCanvas"]

#: Milliseconds after the last view change before tiles are repainted smoothly.
SETTLE_MS = 120
#: Tiles that arrive within this many milliseconds are shown by one repaint.
TILE_REPAINT_MS = 30
#: More arrived tiles than this are repainted by one whole-canvas paint.
MAX_TILE_RECTS = 64


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
    legend_moved = Signal(str)  # the corner the user dragged the legend to

    def __init__(self, bridge: TileBridge, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.bridge = bridge
        self.viewport = ViewportModel()
        self._painter = CanvasPainter(self)
        self._input = CanvasInput(self)
        self.viewport.changed.connect(self._on_view_changed)
        self.source: SlideSource | None = None
        self.grids: TileGridSet | None = None
        self.thumbnail: QImage | None = None
        self.plan: ViewPlan | None = None
        self.show_scale_bar = True
        #: Brightness, contrast and gamma of the slide's pixels (:meth:`set_adjustment`).
        self.adjustment: DisplayAdjustment = NEUTRAL
        #: µm per level-0 pixel for the scale bar and magnification: the slide's own
        #: (set with the slide), or the effective one the window gives (:meth:`set_mpp`).
        self.mpp: float | None = None
        self.layers = LayerStack()
        for signal in (self.layers.inserted, self.layers.removed, self.layers.moved):
            signal.connect(self._on_layers_changed)
        self.layers.layer_changed.connect(self._on_layers_changed)
        self.overlay_painters: list[OverlayPainter] = []
        self.tool: CanvasTool | None = None
        self.show_legend = True
        #: The corner the legend sits in; the user drags it to another (``legend_moved``).
        self.legend_corner: Corner = DEFAULT_LEGEND_CORNER
        #: While the legend is dragged: its top-left corner in screen px.
        self.legend_drag_pos: QPointF | None = None
        #: The view changed in the last moments: paint fast, then once smoothly.
        self.moving = False
        self._settle_timer = QTimer(self)
        self._settle_timer.setSingleShot(True)
        self._settle_timer.setInterval(SETTLE_MS)
        self._settle_timer.timeout.connect(self._settled)
        #: The view (screen size, device pixel ratio) the frame on screen shows, or will
        #: once the pending paints are done.
        self._shown: tuple[ViewTransform | None, tuple[int, int], float] = (None, (0, 0), 1.0)
        self._tile_repaint = QTimer(self)
        self._tile_repaint.setSingleShot(True)
        self._tile_repaint.setInterval(TILE_REPAINT_MS)
        self._tile_repaint.timeout.connect(self._repaint_arrived)
        self._arrived: list[TileKey] = []
        self.setMouseTracking(True)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)
        self.setMinimumSize(200, 150)
        bridge.tile_loaded.connect(self._on_tile_loaded)
        bridge.tile_failed.connect(self._on_tile_loaded)

    # -- paint statistics (for benchmarks) --------------------------------------------
    @property
    def paint_count(self) -> int:
        return self._painter.paint_count

    @property
    def last_paint_time(self) -> float:
        """``time.perf_counter()`` of the last paint of the slide."""
        return self._painter.last_paint_time

    @property
    def last_sharp_paint_time(self) -> float:
        """``time.perf_counter()`` of the last paint with every visible tile sharp."""
        return self._painter.last_sharp_paint_time

    # -- slide ------------------------------------------------------------------------
    def set_slide(self, source: SlideSource, thumbnail: QImage | None) -> None:
        """Show a slide that was opened (and thumbnailed) off the GUI thread."""
        self.source = source
        self.mpp = source.info.mpp
        self.grids = TileGridSet(source.info)
        self.thumbnail = thumbnail
        self.bridge.add_source(source, self.grids)
        self.sync_device_pixel_ratio()
        self.viewport.resize(self.width(), self.height())
        self.viewport.set_slide_size(*source.info.dimensions, source.info.l0_bounds)

    def set_adjustment(self, adjustment: DisplayAdjustment) -> None:
        """Show the slide's pixels under ``adjustment``: the tiles painted next go
        through its lookup table (see :mod:`adjusted_tiles`); none is read again."""
        if adjustment != self.adjustment:
            self.adjustment = adjustment
            self.update()

    def set_mpp(self, mpp: float | None) -> None:
        """The pixel size to show the slide with (e.g. one the user typed for a slide
        that states none; ``None``: unknown, the scale bar is in px)."""
        if mpp != self.mpp:
            self.mpp = mpp
            self.update()
            self.view_changed.emit()  # the magnification may have changed

    def clear_slide(self) -> None:
        self.source = None
        self.mpp = None
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
        self.moving = True
        self._settle_timer.start()
        self._request_tiles()
        shown, shown_size, shown_ratio = self._shown
        now = self.viewport.transform()
        ratio = self.viewport.device_pixel_ratio
        self._shown = (now, self.viewport.scr_size, ratio)
        if (
            shown is None
            or shown_size != self.viewport.scr_size
            or shown_ratio != ratio
            or not self._painter.scroll_shown_frame(shown, now)
        ):
            self.update()
        self.view_changed.emit()

    def _settled(self) -> None:
        self.moving = False
        self.update()

    def _request_tiles(self) -> None:
        if self.grids is None or self.source is None:
            return
        scr_w, scr_h = self.viewport.scr_size
        self.plan = plan_view(
            self.grids,
            self.viewport.transform(),
            scr_w,
            scr_h,
            self.viewport.device_pixel_ratio,
        )
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
                region += self._painter.scr_update_rect(l0_rect).adjusted(-1, -1, 1, 1)
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
    def sync_device_pixel_ratio(self) -> None:
        """Give the viewport this widget's device pixel ratio (a no-op when unchanged)."""
        self.viewport.set_device_pixel_ratio(self.devicePixelRatioF())

    def event(self, event: QEvent) -> bool:
        if event.type() in (
            QEvent.Type.DevicePixelRatioChange,
            QEvent.Type.ScreenChangeInternal,
        ):
            self.sync_device_pixel_ratio()
        return super().event(event)

    def showEvent(self, event: QShowEvent) -> None:
        self.sync_device_pixel_ratio()
        super().showEvent(event)

    def paintEvent(self, event: QPaintEvent) -> None:
        # a safety net: Qt announces ratio changes, but a paint must never use a stale one
        self.sync_device_pixel_ratio()
        if self.source is not None and self.grids is not None and self.plan is None:
            self._request_tiles()
        painter = QPainter(self)
        self._painter.paint(painter, event.region())
        painter.end()

    def legend_scr_rect(self) -> QRectF | None:
        """Where the legend is on screen, as last painted (``None``: none shown)."""
        return self._painter.legend_scr_rect()

    def set_legend_corner(self, corner: Corner) -> None:
        """Put the legend in ``corner``; emits ``legend_moved`` when it moved."""
        if corner != self.legend_corner:
            self.legend_corner = corner
            self.legend_moved.emit(corner)
        self.update()

    def legends(self) -> tuple[Legend, ...]:
        """Legends of the visible layers that have one, top layer first (what an
        exported figure of this view shows too)."""
        return layer_legends(self.layers)

    # -- input ------------------------------------------------------------------------
    def resizeEvent(self, event: QResizeEvent) -> None:
        self.viewport.resize(event.size().width(), event.size().height())
        super().resizeEvent(event)

    def wheelEvent(self, event: QWheelEvent) -> None:
        self._input.wheel(event)

    def mousePressEvent(self, event: QMouseEvent) -> None:
        if not self._input.press(event):
            super().mousePressEvent(event)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        self._input.move(event)
        pos = event.position()
        l0_x, l0_y = self.viewport.transform().scr_to_l0(pos.x(), pos.y())
        self.cursor_moved.emit(l0_x, l0_y)
        super().mouseMoveEvent(event)

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        if not self._input.release(event):
            super().mouseReleaseEvent(event)

    def mouseDoubleClickEvent(self, event: QMouseEvent) -> None:
        self._input.double_click(event)

    def leaveEvent(self, event: object) -> None:
        self.cursor_left.emit()

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if not self._input.key_press(event):
            super().keyPressEvent(event)

    # -- facts for the status bar -----------------------------------------------------
    def magnification(self) -> float | None:
        """The apparent magnification, per device pixel (see
        :func:`~inference.core.geometry.magnification_at`): 40x on a 0.25 µm/px slide is
        one slide pixel per device pixel on any screen."""
        if self.source is None:
            return None
        info = self.source.info
        return magnification_at(self.viewport.dev_scale, self.mpp, info.objective_power)

    def pen_for_outline(self) -> QPen:
        return QPen(QColor(255, 255, 255), 1)
