"""Paints an :class:`AnnotationLayer`: outlines in class colours (QuPath style), light
fills, points as dots, rulers with their length, and handles on the selection."""

from __future__ import annotations

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QBrush, QColor, QFont, QPainter, QPainterPath, QPen, QPolygonF

from inference.core.geometry import Rect, ViewTransform
from viewer.annotations import Annotation, AnnotationKind
from viewer.layers.annotation_layer import AnnotationLayer
from viewer.qt.canvas.tools import cosmetic_pen

#: Screen sizes (px) of what annotation drawing adds to the geometry.
LINE_WIDTH = 2.0
SELECTED_WIDTH = 3.0
POINT_RADIUS = 5.0
HANDLE_SIZE = 7.0


def _scr_points(transform: ViewTransform, ring: tuple[tuple[float, float], ...]) -> list[QPointF]:
    s, ox, oy = transform.scale, transform.l0_x, transform.l0_y
    return [QPointF((x - ox) * s, (y - oy) * s) for x, y in ring]


def measurement_label(layer: AnnotationLayer, annotation: Annotation) -> str:
    """A ruler's length, in µm (or px when the slide has no pixel size)."""
    m = layer.annotations.measure(annotation)
    return f"{m.length:,.1f} {m.length_unit}"


def paint_annotation_layer(
    painter: QPainter,
    layer: AnnotationLayer,
    transform: ViewTransform,
    scr_size: tuple[int, int],
) -> None:
    """Draw every annotation that reaches the screen, selected ones on top."""
    view = transform.scr_rect_to_l0(Rect(0, 0, *scr_size))
    margin = 20 / transform.scale  # labels and handles reach past the geometry
    selection = layer.annotations.selection
    visible: list[Annotation] = []
    for annotation in layer.annotations:
        x0, y0, x1, y1 = annotation.l0_bounds
        if x1 < view.x - margin or y1 < view.y - margin:
            continue
        if x0 > view.right + margin or y0 > view.bottom + margin:
            continue
        visible.append(annotation)
    visible.sort(key=lambda a: a.id in selection)
    painter.save()
    painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
    font = QFont(painter.font())
    font.setPointSizeF(9.0)
    painter.setFont(font)
    for annotation in visible:
        _paint_one(painter, layer, annotation, transform, annotation.id in selection)
    painter.restore()


def _paint_one(
    painter: QPainter,
    layer: AnnotationLayer,
    annotation: Annotation,
    transform: ViewTransform,
    selected: bool,
) -> None:
    colour = QColor(*annotation.colour)
    pen = cosmetic_pen(colour, SELECTED_WIDTH if selected else LINE_WIDTH, painter)
    if selected:
        pen.setColor(colour.lighter(130))
    painter.setPen(pen)
    kind = annotation.kind
    rings = annotation.l0_rings()
    label_at: QPointF | None = None
    if kind is AnnotationKind.POINT:
        painter.setBrush(QBrush(colour))
        points = _scr_points(transform, rings[0])
        for point in points:
            painter.drawEllipse(point, POINT_RADIUS, POINT_RADIUS)
        label_at = points[0] + QPointF(POINT_RADIUS + 3, 0)
    elif kind is AnnotationKind.RULER:
        line = _scr_points(transform, rings[0])
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawPolyline(QPolygonF(line))
        for end in (line[0], line[-1]):
            painter.drawEllipse(end, 2.5, 2.5)
        middle = line[len(line) // 2] if len(line) > 2 else (line[0] + line[1]) / 2
        _label(painter, middle + QPointF(6, -6), measurement_label(layer, annotation))
    else:
        path = QPainterPath()
        path.setFillRule(Qt.FillRule.OddEvenFill)
        for ring in rings:
            path.addPolygon(QPolygonF(_scr_points(transform, ring)))
            path.closeSubpath()
        fill = QColor(colour)
        fill.setAlpha(layer.fill_alpha * (2 if selected else 1) if layer.fill_alpha else 0)
        painter.setBrush(QBrush(fill) if fill.alpha() else Qt.BrushStyle.NoBrush)
        painter.drawPath(path)
        bounds = path.boundingRect()
        label_at = QPointF(bounds.left(), bounds.top() - 4)
    if layer.show_labels and label_at is not None:
        text = annotation.name or (annotation.class_name or "")
        if text:
            _label(painter, label_at, text)
    if selected:
        _paint_handles(painter, annotation, transform)


def _label(painter: QPainter, at: QPointF, text: str) -> None:
    metrics = painter.fontMetrics()
    box = QRectF(
        at.x(), at.y() - metrics.height(), metrics.horizontalAdvance(text) + 8, metrics.height() + 2
    )
    painter.save()
    painter.setPen(Qt.PenStyle.NoPen)
    painter.setBrush(QColor(255, 255, 255, 200))
    painter.drawRoundedRect(box, 3, 3)
    painter.setPen(QColor(20, 20, 20))
    painter.drawText(box, Qt.AlignmentFlag.AlignCenter, text)
    painter.restore()


def _paint_handles(painter: QPainter, annotation: Annotation, transform: ViewTransform) -> None:
    painter.save()
    painter.setPen(QPen(QColor(20, 20, 20), 1))
    painter.setBrush(QColor(255, 255, 255))
    half = HANDLE_SIZE / 2
    for ring in annotation.handles():
        for point in _scr_points(transform, ring):
            painter.drawRect(QRectF(point.x() - half, point.y() - half, HANDLE_SIZE, HANDLE_SIZE))
    painter.restore()
