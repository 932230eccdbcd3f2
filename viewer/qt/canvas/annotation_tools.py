"""Annotation tools for the canvas: draw rectangles, ellipses, polygons, freehand shapes,
points and rulers, and select, move, reshape and delete what is drawn.

Every edit goes through the :class:`AnnotationSet`, so it is undoable and saved.  The
tools stay active until another is chosen (Esc returns to panning); the middle mouse
button and the keyboard always pan and zoom.
"""

from __future__ import annotations

import uuid
from typing import Protocol

import cv2
import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QKeyEvent, QMouseEvent, QPainter, QPainterPath, QPen, QPolygonF

from viewer.annotations import Annotation, AnnotationClass, AnnotationKind, AnnotationSet
from viewer.qt.canvas.tools import CLICK_SLOP_SCR, CanvasTool, ToolCanvas, cosmetic_pen

#: How near (screen px) a click must be to pick an outline, point or handle.
PICK_RADIUS_SCR = 6.0
#: Freehand strokes keep a point every this many screen px, then are simplified.
FREEHAND_STEP_SCR = 2.0


class AnnotationTarget(Protocol):
    """Where tools put what they draw."""

    @property
    def annotations(self) -> AnnotationSet | None: ...

    @property
    def current_class(self) -> AnnotationClass | None: ...


def _l0(canvas: ToolCanvas, pos: QPointF) -> tuple[float, float]:
    return canvas.viewport.transform().scr_to_l0(pos.x(), pos.y())


def _scr(canvas: ToolCanvas, l0_x: float, l0_y: float) -> QPointF:
    x, y = canvas.viewport.transform().l0_to_scr(l0_x, l0_y)
    return QPointF(x, y)


def _preview_pen(painter: QPainter) -> QPen:
    return cosmetic_pen(QColor(255, 210, 0), 2, painter, Qt.PenStyle.DashLine)


class _DrawTool(CanvasTool):
    """Shared by the drawing tools: add an annotation with the current class, select it."""

    cursor = Qt.CursorShape.CrossCursor

    def __init__(self, target: AnnotationTarget) -> None:
        self.target = target

    def _add(self, annotation: Annotation) -> Annotation | None:
        annotations = self.target.annotations
        if annotations is None:
            return None
        stored = annotations.add(annotation)
        annotations.select([stored.id])
        return stored

    def _meta(self) -> dict[str, object]:
        return {"classification": self.target.current_class}


class DragShapeTool(_DrawTool):
    """Rectangle, ellipse (Shift: square, circle) or ruler, drawn by dragging."""

    def __init__(self, target: AnnotationTarget, kind: AnnotationKind) -> None:
        super().__init__(target)
        if kind not in (AnnotationKind.RECTANGLE, AnnotationKind.ELLIPSE, AnnotationKind.RULER):
            raise ValueError(f"{kind} is not drawn by dragging")
        self.kind = kind
        self.name = str(kind)
        self.status_hint = f"Drag to draw a {kind} (Esc: back to panning)"
        self._start: QPointF | None = None
        self._end: QPointF | None = None
        self._square = False

    def press(self, canvas: ToolCanvas, event: QMouseEvent) -> bool:
        if event.button() != Qt.MouseButton.LeftButton:
            return False
        self._start = self._end = event.position()
        return True

    def move(self, canvas: ToolCanvas, event: QMouseEvent) -> bool:
        if self._start is None:
            return False
        self._end = event.position()
        self._square = bool(event.modifiers() & Qt.KeyboardModifier.ShiftModifier)
        canvas.update()
        return True

    def _corner(self) -> QPointF:
        assert self._start is not None and self._end is not None
        end = self._end
        if self._square and self.kind is not AnnotationKind.RULER:
            dx, dy = end.x() - self._start.x(), end.y() - self._start.y()
            side = max(abs(dx), abs(dy))
            end = QPointF(
                self._start.x() + (side if dx >= 0 else -side),
                self._start.y() + (side if dy >= 0 else -side),
            )
        return end

    def release(self, canvas: ToolCanvas, event: QMouseEvent) -> bool:
        if self._start is None or event.button() != Qt.MouseButton.LeftButton:
            return False
        self._end = event.position()
        start, end = self._start, self._corner()
        self._start = self._end = None
        canvas.update()
        if max(abs(end.x() - start.x()), abs(end.y() - start.y())) <= CLICK_SLOP_SCR:
            return True  # a click draws nothing
        (x0, y0), (x1, y1) = _l0(canvas, start), _l0(canvas, end)
        if self.kind is AnnotationKind.RULER:
            self._add(Annotation.ruler([(x0, y0), (x1, y1)], **self._meta()))
        elif self.kind is AnnotationKind.ELLIPSE:
            self._add(Annotation.ellipse(x0, y0, x1, y1, **self._meta()))
        else:
            self._add(Annotation.rectangle(x0, y0, x1, y1, **self._meta()))
        return True

    def paint(self, painter: QPainter, canvas: ToolCanvas) -> None:
        if self._start is None or self._end is None:
            return
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        painter.setPen(_preview_pen(painter))
        painter.setBrush(Qt.BrushStyle.NoBrush)
        end = self._corner()
        if self.kind is AnnotationKind.RULER:
            painter.drawLine(self._start, end)
            annotations = self.target.annotations
            (x0, y0), (x1, y1) = _l0(canvas, self._start), _l0(canvas, end)
            length = float(np.hypot(x1 - x0, y1 - y0))
            mpp = annotations.mpp if annotations is not None else None
            text = f"{length * mpp:,.1f} µm" if mpp else f"{length:,.0f} px"
            painter.setPen(QColor(255, 255, 255))
            painter.drawText(end + QPointF(8, -8), text)
        elif self.kind is AnnotationKind.ELLIPSE:
            painter.drawEllipse(QRectF(self._start, end).normalized())
        else:
            painter.drawRect(QRectF(self._start, end).normalized())
        painter.restore()

    def cancel(self, canvas: ToolCanvas) -> None:
        self._start = self._end = None
        canvas.update()


class PolygonTool(_DrawTool):
    """Click the vertices; double-click, Enter or a click on the first vertex closes it.
    Backspace removes the last vertex, Esc drops the polygon."""

    name = "polygon"
    status_hint = "Click vertices; double-click or Enter to close (Backspace: undo a vertex)"

    def __init__(self, target: AnnotationTarget) -> None:
        super().__init__(target)
        self._vertices: list[tuple[float, float]] = []
        self._hover: QPointF | None = None

    def press(self, canvas: ToolCanvas, event: QMouseEvent) -> bool:
        if event.button() != Qt.MouseButton.LeftButton:
            return False
        pos = event.position()
        if len(self._vertices) >= 3:
            first = _scr(canvas, *self._vertices[0])
            if (first - pos).manhattanLength() <= 2 * PICK_RADIUS_SCR:
                self._finish(canvas)
                return True
        self._vertices.append(_l0(canvas, pos))
        canvas.update()
        return True

    def release(self, canvas: ToolCanvas, event: QMouseEvent) -> bool:
        return event.button() == Qt.MouseButton.LeftButton and bool(self._vertices)

    def move(self, canvas: ToolCanvas, event: QMouseEvent) -> bool:
        return bool(self._vertices)

    def hover(self, canvas: ToolCanvas, event: QMouseEvent) -> None:
        self._hover = event.position()
        if self._vertices:
            canvas.update()

    def double_click(self, canvas: ToolCanvas, event: QMouseEvent) -> bool:
        # the press before the double-click already added this vertex
        self._finish(canvas)
        return True

    def key_press(self, canvas: ToolCanvas, event: QKeyEvent) -> bool:
        key = event.key()
        if key in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and self._vertices:
            self._finish(canvas)
            return True
        if key == Qt.Key.Key_Backspace and self._vertices:
            self._vertices.pop()
            canvas.update()
            return True
        if key == Qt.Key.Key_Escape and self._vertices:
            self.cancel(canvas)
            return True
        return False

    def _finish(self, canvas: ToolCanvas) -> None:
        vertices = _dedupe(self._vertices, 1.0 / canvas.viewport.scale)
        self._vertices = []
        canvas.update()
        if len(vertices) >= 3:
            self._add(Annotation.polygon(vertices, **self._meta()))  # type: ignore[arg-type]

    def paint(self, painter: QPainter, canvas: ToolCanvas) -> None:
        if not self._vertices:
            return
        points = [_scr(canvas, *v) for v in self._vertices]
        if self._hover is not None:
            points.append(self._hover)
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        painter.setPen(_preview_pen(painter))
        painter.drawPolyline(QPolygonF(points))
        painter.setBrush(QColor(255, 210, 0))
        for point in points[: len(self._vertices)]:
            painter.drawEllipse(point, 3, 3)
        painter.restore()

    def cancel(self, canvas: ToolCanvas) -> None:
        self._vertices = []
        canvas.update()


class FreehandTool(_DrawTool):
    """Press, draw the outline, release: a closed freehand shape."""

    name = "freehand"
    status_hint = "Drag around a region to outline it"

    def __init__(self, target: AnnotationTarget) -> None:
        super().__init__(target)
        self._stroke: list[QPointF] = []

    def press(self, canvas: ToolCanvas, event: QMouseEvent) -> bool:
        if event.button() != Qt.MouseButton.LeftButton:
            return False
        self._stroke = [event.position()]
        return True

    def move(self, canvas: ToolCanvas, event: QMouseEvent) -> bool:
        if not self._stroke:
            return False
        pos = event.position()
        if (pos - self._stroke[-1]).manhattanLength() >= FREEHAND_STEP_SCR:
            self._stroke.append(pos)
            canvas.update()
        return True

    def release(self, canvas: ToolCanvas, event: QMouseEvent) -> bool:
        if not self._stroke or event.button() != Qt.MouseButton.LeftButton:
            return False
        stroke, self._stroke = self._stroke, []
        canvas.update()
        if len(stroke) < 3:
            return True
        scr = np.array([[p.x(), p.y()] for p in stroke], np.float32)
        simplified = cv2.approxPolyDP(scr, 0.75, True)[:, 0, :]
        if len(simplified) < 3:
            return True
        vertices = [_l0(canvas, QPointF(float(x), float(y))) for x, y in simplified]
        self._add(Annotation.freehand(vertices, **self._meta()))
        return True

    def paint(self, painter: QPainter, canvas: ToolCanvas) -> None:
        if len(self._stroke) < 2:
            return
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        painter.setPen(_preview_pen(painter))
        painter.drawPolyline(QPolygonF(self._stroke))
        painter.restore()

    def cancel(self, canvas: ToolCanvas) -> None:
        self._stroke = []
        canvas.update()


class PointsTool(_DrawTool):
    """Each click adds a point to the current points annotation (one object, many points,
    as QuPath's Points); Enter starts a new one."""

    name = "points"
    status_hint = "Click to add points; Enter starts a new set of points"

    def __init__(self, target: AnnotationTarget) -> None:
        super().__init__(target)
        self._current: str | None = None

    def press(self, canvas: ToolCanvas, event: QMouseEvent) -> bool:
        if event.button() != Qt.MouseButton.LeftButton:
            return False
        annotations = self.target.annotations
        if annotations is None:
            return True
        xy = _l0(canvas, event.position())
        current = annotations.find(self._current) if self._current else None
        if current is None or current.kind is not AnnotationKind.POINT:
            stored = self._add(Annotation.points([xy], **self._meta()))
            self._current = stored.id if stored is not None else None
        else:
            grown = current.with_vertex_inserted(0, len(current.l0_points), xy)
            annotations.replace(grown, text="Add point")
        return True

    def release(self, canvas: ToolCanvas, event: QMouseEvent) -> bool:
        return event.button() == Qt.MouseButton.LeftButton

    def key_press(self, canvas: ToolCanvas, event: QKeyEvent) -> bool:
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            self._current = None
            return True
        return False

    def cancel(self, canvas: ToolCanvas) -> None:
        self._current = None


class SelectTool(CanvasTool):
    """Click to select (Shift: add or remove), drag a selected shape to move it, drag a
    handle to reshape it, Delete to delete.  Dragging empty slide pans."""

    name = "select"
    cursor = Qt.CursorShape.ArrowCursor
    status_hint = "Click to select; drag to move; drag a handle to reshape; Delete deletes"

    def __init__(self, target: AnnotationTarget) -> None:
        self.target = target
        self._drag: str | None = None  # "move" | "vertex"
        self._last: tuple[float, float] | None = None
        self._vertex: tuple[str, int, int] | None = None
        self._merge_key = ""
        self._band: tuple[QPointF, QPointF] | None = None

    def press(self, canvas: ToolCanvas, event: QMouseEvent) -> bool:
        annotations = self.target.annotations
        if annotations is None or event.button() != Qt.MouseButton.LeftButton:
            return False
        pos = event.position()
        l0_x, l0_y = _l0(canvas, pos)
        tolerance = PICK_RADIUS_SCR / canvas.viewport.scale
        shift = bool(event.modifiers() & Qt.KeyboardModifier.ShiftModifier)
        self._merge_key = uuid.uuid4().hex
        handle = annotations.vertex_at(l0_x, l0_y, tolerance, annotations.selection)
        if handle is not None and not shift:
            self._drag = "vertex"
            self._vertex = (handle.annotation_id, handle.ring, handle.index)
            return True
        hit = annotations.annotation_at(l0_x, l0_y, tolerance)
        if hit is None:
            if shift:
                self._band = (pos, pos)
                return True
            annotations.clear_selection()
            return False  # the canvas pans
        if shift:
            annotations.select([hit.id], "toggle")
            return True
        if hit.id not in annotations.selection:
            annotations.select([hit.id])
        self._drag = "move"
        self._last = (l0_x, l0_y)
        return True

    def move(self, canvas: ToolCanvas, event: QMouseEvent) -> bool:
        annotations = self.target.annotations
        if annotations is None:
            return False
        pos = event.position()
        if self._band is not None:
            self._band = (self._band[0], pos)
            canvas.update()
            return True
        l0_x, l0_y = _l0(canvas, pos)
        if self._drag == "vertex" and self._vertex is not None:
            annotation_id, ring, index = self._vertex
            annotations.move_vertex(
                annotation_id, ring, index, (l0_x, l0_y), merge_key=self._merge_key
            )
            return True
        if self._drag == "move" and self._last is not None:
            dx, dy = l0_x - self._last[0], l0_y - self._last[1]
            self._last = (l0_x, l0_y)
            if dx or dy:
                annotations.move(annotations.selection, dx, dy, merge_key=self._merge_key)
            return True
        return False

    def release(self, canvas: ToolCanvas, event: QMouseEvent) -> bool:
        if event.button() != Qt.MouseButton.LeftButton:
            return False
        used = self._drag is not None or self._band is not None
        annotations = self.target.annotations
        if self._band is not None and annotations is not None:
            (ax, ay), (bx, by) = _l0(canvas, self._band[0]), _l0(canvas, self._band[1])
            inside = annotations.in_rect(
                min(ax, bx), min(ay, by), max(ax, bx), max(ay, by), fully_inside=True
            )
            annotations.select([a.id for a in inside], "add")
            canvas.update()
        self._drag = None
        self._vertex = None
        self._last = None
        self._band = None
        return used

    def key_press(self, canvas: ToolCanvas, event: QKeyEvent) -> bool:
        annotations = self.target.annotations
        if annotations is None:
            return False
        if event.key() in (Qt.Key.Key_Delete, Qt.Key.Key_Backspace) and annotations.selection:
            annotations.delete(annotations.selection)
            return True
        if event.key() == Qt.Key.Key_Escape and annotations.selection:
            annotations.clear_selection()
            return True
        return False

    def paint(self, painter: QPainter, canvas: ToolCanvas) -> None:
        if self._band is None:
            return
        painter.save()
        painter.setPen(_preview_pen(painter))
        path = QPainterPath()
        path.addRect(QRectF(*self._band).normalized())
        painter.drawPath(path)
        painter.restore()


_DRAG_KINDS = {
    "rectangle": AnnotationKind.RECTANGLE,
    "ellipse": AnnotationKind.ELLIPSE,
    "ruler": AnnotationKind.RULER,
}


def make_annotation_tool(target: AnnotationTarget, tool_id: str) -> CanvasTool | None:
    """The canvas tool for a tool id of the Annotations panel's ``TOOLS`` (``None`` for
    panning or an unknown id)."""
    if tool_id == "select":
        return SelectTool(target)
    if tool_id == "polygon":
        return PolygonTool(target)
    if tool_id == "freehand":
        return FreehandTool(target)
    if tool_id == "points":
        return PointsTool(target)
    kind = _DRAG_KINDS.get(tool_id)
    return DragShapeTool(target, kind) if kind is not None else None


def _dedupe(vertices: list[tuple[float, float]], l0_eps: float) -> list[tuple[float, float]]:
    """Drop vertices that repeat the previous one (a double-click adds one twice)."""
    out: list[tuple[float, float]] = []
    for x, y in vertices:
        if not out or abs(x - out[-1][0]) > l0_eps or abs(y - out[-1][1]) > l0_eps:
            out.append((x, y))
    return out
