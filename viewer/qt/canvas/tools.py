"""Canvas tools: modes that take the left mouse button from panning (draw a region,
click to explain, annotate).  The middle button and the keyboard always pan and zoom."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QAction, QColor, QKeyEvent, QMouseEvent, QPainter, QPen
from PySide6.QtWidgets import QAbstractButton

from inference.core.geometry import Rect
from viewer.tiles.viewport import ViewportModel

#: A drag shorter than this (screen px) is a click.
CLICK_SLOP_SCR = 4.0


def cosmetic_pen(
    colour: QColor,
    scr_width: float,
    painter: QPainter,
    style: Qt.PenStyle = Qt.PenStyle.SolidLine,
) -> QPen:
    """A pen ``scr_width`` screen (logical) px wide at any zoom.

    Qt draws a cosmetic pen's width in device pixels, untouched by the painter's
    device pixel ratio; the width is multiplied by that ratio here, so outlines keep
    their size on a HiDPI screen (and match an export at the screen's ratio, which
    grows its lines by it too).
    """
    device = painter.device()
    ratio = device.devicePixelRatioF() if device is not None else 1.0
    pen = QPen(colour, scr_width * ratio, style)
    pen.setCosmetic(True)
    return pen


class ToolCanvas(Protocol):
    """What a tool needs from the canvas it works on (the slide canvas is one)."""

    @property
    def viewport(self) -> ViewportModel: ...

    def update(self) -> None:
        """Repaint (the tool's feedback changed)."""

    def set_tool(self, tool: CanvasTool | None) -> None:
        """Make ``tool`` the active tool (``None``: back to panning)."""


class CanvasTool:
    """Base class: every handler returns whether it used the event."""

    name = "tool"
    cursor = Qt.CursorShape.CrossCursor
    status_hint = ""

    def press(self, canvas: ToolCanvas, event: QMouseEvent) -> bool:
        return False

    def move(self, canvas: ToolCanvas, event: QMouseEvent) -> bool:
        return False

    def release(self, canvas: ToolCanvas, event: QMouseEvent) -> bool:
        return False

    def double_click(self, canvas: ToolCanvas, event: QMouseEvent) -> bool:
        return False

    def key_press(self, canvas: ToolCanvas, event: QKeyEvent) -> bool:
        return False

    def hover(self, canvas: ToolCanvas, event: QMouseEvent) -> None:
        """The mouse moved with no button held (for previews such as a polygon's next edge)."""

    def paint(self, painter: QPainter, canvas: ToolCanvas) -> None:
        """Draw the tool's feedback over the slide and layers."""

    def cancel(self, canvas: ToolCanvas) -> None:
        """Escape was pressed or another tool was chosen."""


class RectangleTool(CanvasTool):
    """Drag a rectangle (or, with ``on_click``, click a point) on the slide, once.

    ``on_rect(l0_rect)`` gets the dragged rectangle in level-0 pixels, clipped to the
    slide; ``on_click(l0_x, l0_y)`` a click.  The tool ends itself afterwards unless
    ``sticky``.
    """

    def __init__(
        self,
        name: str,
        on_rect: Callable[[Rect], object],
        on_click: Callable[[float, float], object] | None = None,
        *,
        status_hint: str = "",
        colour: QColor | None = None,
        sticky: bool = False,
    ) -> None:
        self.name = name
        self.status_hint = status_hint
        self._on_rect = on_rect
        self._on_click = on_click
        self._colour = colour or QColor(255, 200, 0)
        self._sticky = sticky
        self._start: QPointF | None = None
        self._end: QPointF | None = None

    def press(self, canvas: ToolCanvas, event: QMouseEvent) -> bool:
        if event.button() != Qt.MouseButton.LeftButton:
            return False
        self._start = self._end = event.position()
        return True

    def move(self, canvas: ToolCanvas, event: QMouseEvent) -> bool:
        if self._start is None:
            return False
        self._end = event.position()
        canvas.update()
        return True

    def release(self, canvas: ToolCanvas, event: QMouseEvent) -> bool:
        if self._start is None or event.button() != Qt.MouseButton.LeftButton:
            return False
        start, end = self._start, event.position()
        self._start = self._end = None
        canvas.update()
        transform = canvas.viewport.transform()
        dragged = max(abs(end.x() - start.x()), abs(end.y() - start.y())) > CLICK_SLOP_SCR
        if not self._sticky:
            canvas.set_tool(None)
        if dragged:
            x0, y0 = transform.scr_to_l0(min(start.x(), end.x()), min(start.y(), end.y()))
            x1, y1 = transform.scr_to_l0(max(start.x(), end.x()), max(start.y(), end.y()))
            l0_w, l0_h = canvas.viewport.l0_size
            rect = Rect(x0, y0, x1 - x0, y1 - y0).intersect(Rect(0, 0, l0_w, l0_h))
            if not rect.is_empty():
                self._on_rect(rect)
        elif self._on_click is not None:
            self._on_click(*transform.scr_to_l0(end.x(), end.y()))
        return True

    def paint(self, painter: QPainter, canvas: ToolCanvas) -> None:
        if self._start is None or self._end is None:
            return
        painter.save()
        painter.setPen(cosmetic_pen(self._colour, 2, painter, Qt.PenStyle.DashLine))
        fill = QColor(self._colour)
        fill.setAlpha(40)
        painter.setBrush(fill)
        painter.drawRect(QRectF(self._start, self._end).normalized())
        painter.restore()

    def cancel(self, canvas: ToolCanvas) -> None:
        self._start = self._end = None
        canvas.update()


def reflect_tool(tool: object, name: str, button: QAbstractButton, action: QAction) -> None:
    """Show on a panel's toggle button and its menu action whether the canvas tool is
    the one called ``name`` (the button is set without emitting, so it asks nothing)."""
    on = getattr(tool, "name", "") == name
    blocked = button.blockSignals(True)
    button.setChecked(on)
    button.blockSignals(blocked)
    action.setChecked(on)
