"""Mouse, wheel and keyboard input on the slide canvas.

The legend is dragged with the left button to any corner (it snaps to the corner of
the quarter it is dropped in).  Otherwise the active tool sees a mouse or key event
first; what it does not use pans and zooms the view: drag to pan, wheel to zoom about
the cursor, double-click to zoom in (Shift: out), arrow keys to pan, ``+``/``-`` to
zoom, ``0`` to fit, Esc to put the tool away.
"""

from __future__ import annotations

from typing import Protocol

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QKeyEvent, QMouseEvent, QWheelEvent

from inference.slides import SlideSource
from viewer.export.corners import Corner, nearest_corner
from viewer.qt.canvas.tools import CanvasTool, ToolCanvas

#: Wheel zoom per notch (120 units of angle delta).
WHEEL_ZOOM_PER_NOTCH = 1.25
#: Keyboard pan step as a fraction of the view.
KEY_PAN_FRACTION = 0.15


class InputCanvas(ToolCanvas, Protocol):
    """What input handling needs from the canvas (the slide canvas is one)."""

    @property
    def source(self) -> SlideSource | None: ...

    @property
    def tool(self) -> CanvasTool | None: ...

    legend_drag_pos: QPointF | None

    def setCursor(self, cursor: Qt.CursorShape, /) -> None: ...

    def unsetCursor(self) -> None: ...

    def legend_scr_rect(self) -> QRectF | None: ...

    def set_legend_corner(self, corner: Corner) -> None: ...

    def width(self) -> int: ...

    def height(self) -> int: ...

    def update(self) -> None: ...


class CanvasInput:
    """Turns the canvas's input events into tool calls or viewport changes.

    The handlers that return a bool say whether the event was used up; the canvas then
    skips Qt's default handling of it.
    """

    def __init__(self, canvas: InputCanvas) -> None:
        self._canvas = canvas
        self._drag_from: QPointF | None = None
        #: While the legend is dragged: the pointer's offset from its top-left corner.
        self._legend_grab: QPointF | None = None

    def wheel(self, event: QWheelEvent) -> None:
        notches = event.angleDelta().y() / 120.0
        if notches:
            pos = event.position()
            self._canvas.viewport.zoom_by(WHEEL_ZOOM_PER_NOTCH**notches, (pos.x(), pos.y()))
        event.accept()

    def press(self, event: QMouseEvent) -> bool:
        canvas = self._canvas
        legend = canvas.legend_scr_rect()
        if (
            event.button() == Qt.MouseButton.LeftButton
            and legend is not None
            and legend.contains(event.position())
        ):
            self._legend_grab = event.position() - legend.topLeft()
            canvas.legend_drag_pos = legend.topLeft()
            canvas.setCursor(Qt.CursorShape.ClosedHandCursor)
            return True
        tool = canvas.tool
        if tool is not None and canvas.source is not None and tool.press(canvas, event):
            return True
        if event.button() in (Qt.MouseButton.LeftButton, Qt.MouseButton.MiddleButton):
            self._drag_from = event.position()
            canvas.setCursor(Qt.CursorShape.ClosedHandCursor)
        return False

    def move(self, event: QMouseEvent) -> None:
        canvas = self._canvas
        tool = canvas.tool
        if self._legend_grab is not None:
            canvas.legend_drag_pos = event.position() - self._legend_grab
            canvas.update()
        elif self._drag_from is not None:
            pos = event.position()
            delta = pos - self._drag_from
            self._drag_from = pos
            canvas.viewport.pan_by_scr(delta.x(), delta.y())
        elif tool is not None and canvas.source is not None:
            if event.buttons() == Qt.MouseButton.NoButton:
                tool.hover(canvas, event)
            else:
                tool.move(canvas, event)
        elif event.buttons() == Qt.MouseButton.NoButton:
            legend = canvas.legend_scr_rect()
            if legend is not None and legend.contains(event.position()):
                canvas.setCursor(Qt.CursorShape.OpenHandCursor)  # it can be dragged
            else:
                canvas.unsetCursor()

    def release(self, event: QMouseEvent) -> bool:
        canvas = self._canvas
        if self._legend_grab is not None:
            self._legend_grab = None
            dropped = canvas.legend_scr_rect()
            canvas.legend_drag_pos = None
            if dropped is not None:
                centre = dropped.center()
                corner = nearest_corner(centre.x(), centre.y(), canvas.width(), canvas.height())
                canvas.set_legend_corner(corner)
            canvas.update()
            if canvas.tool is None:
                canvas.unsetCursor()
            else:
                canvas.setCursor(canvas.tool.cursor)
            return True
        tool = canvas.tool
        if self._drag_from is None and tool is not None and tool.release(canvas, event):
            return True
        self._drag_from = None
        tool = canvas.tool
        if tool is None:
            canvas.unsetCursor()
        else:
            canvas.setCursor(tool.cursor)
        return False

    def double_click(self, event: QMouseEvent) -> None:
        canvas = self._canvas
        if canvas.tool is not None:
            canvas.tool.double_click(canvas, event)
            return
        pos = event.position()
        out = bool(event.modifiers() & Qt.KeyboardModifier.ShiftModifier)
        canvas.viewport.zoom_by(0.5 if out else 2.0, (pos.x(), pos.y()))

    def key_press(self, event: QKeyEvent) -> bool:
        canvas = self._canvas
        if canvas.tool is not None and canvas.tool.key_press(canvas, event):
            return True
        key = event.key()
        viewport = canvas.viewport
        scr_w, scr_h = viewport.scr_size
        step_x, step_y = scr_w * KEY_PAN_FRACTION, scr_h * KEY_PAN_FRACTION
        pans = {
            Qt.Key.Key_Left: (step_x, 0.0),
            Qt.Key.Key_Right: (-step_x, 0.0),
            Qt.Key.Key_Up: (0.0, step_y),
            Qt.Key.Key_Down: (0.0, -step_y),
        }
        if key in pans:
            viewport.pan_by_scr(*pans[Qt.Key(key)])
        elif key in (Qt.Key.Key_Plus, Qt.Key.Key_Equal):
            viewport.zoom_by(WHEEL_ZOOM_PER_NOTCH**2)
        elif key in (Qt.Key.Key_Minus, Qt.Key.Key_Underscore):
            viewport.zoom_by(WHEEL_ZOOM_PER_NOTCH**-2)
        elif key == Qt.Key.Key_0:
            viewport.fit()
        elif key == Qt.Key.Key_Escape and canvas.tool is not None:
            canvas.set_tool(None)
        else:
            return False
        return True
