"""Marks on the slide for what a panel is showing (the patch or region the Explain panel
explains): outlines of level-0 rectangles, dashed while the work is under way, and a
cross for a clicked point not yet resolved to its patch.  An overlay painter of the
canvas (``SlideCanvas.overlay_painters``): anchored to the slide, drawn over the layers.
"""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QPainter

from inference.core.geometry import Rect
from viewer.qt.canvas.tools import ToolCanvas, cosmetic_pen

#: The outline: a light line over a dark one, visible on pale and on dark tissue.
MARK_COLOUR = QColor(255, 214, 0)
UNDER_COLOUR = QColor(20, 20, 20, 200)
#: Screen px: line width, and half the side of a point's cross.
LINE_PX = 2.0
CROSS_PX = 9.0


@dataclass(frozen=True)
class Mark:
    """One outlined level-0 rectangle (an empty one is a point, drawn as a cross);
    ``pending``: the work on it is under way (dashed)."""

    l0_rect: Rect
    pending: bool = False


class AreaMarks:
    """The marks one panel shows, as an overlay painter: ``marks(painter, canvas)``.

    :meth:`show` replaces them and repaints the canvas it was given; nothing is drawn
    without marks.
    """

    def __init__(self, canvas: ToolCanvas) -> None:
        self._canvas = canvas
        self.marks: tuple[Mark, ...] = ()

    def show(self, *marks: Mark) -> None:
        if marks != self.marks:
            self.marks = marks
            self._canvas.update()

    def clear(self) -> None:
        self.show()

    def __call__(self, painter: QPainter, canvas: ToolCanvas) -> None:
        if not self.marks:
            return
        t = canvas.viewport.transform()
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        painter.setBrush(Qt.BrushStyle.NoBrush)
        for mark in self.marks:
            style = Qt.PenStyle.DashLine if mark.pending else Qt.PenStyle.SolidLine
            r = mark.l0_rect
            x0, y0 = t.l0_to_scr(r.x, r.y)
            if r.w <= 0 or r.h <= 0:
                centre = QPointF(x0, y0)
                for colour, width in ((UNDER_COLOUR, LINE_PX + 2), (MARK_COLOUR, LINE_PX)):
                    painter.setPen(cosmetic_pen(colour, width, painter))
                    painter.drawLine(centre - QPointF(CROSS_PX, 0), centre + QPointF(CROSS_PX, 0))
                    painter.drawLine(centre - QPointF(0, CROSS_PX), centre + QPointF(0, CROSS_PX))
                continue
            x1, y1 = t.l0_to_scr(r.right, r.bottom)
            box = QRectF(x0, y0, x1 - x0, y1 - y0)
            painter.setPen(cosmetic_pen(UNDER_COLOUR, LINE_PX + 2, painter))
            painter.drawRect(box)
            painter.setPen(cosmetic_pen(MARK_COLOUR, LINE_PX, painter, style))
            painter.drawRect(box)
        painter.restore()
