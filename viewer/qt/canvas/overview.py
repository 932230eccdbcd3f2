"""The overview map: the whole slide in miniature with the viewport rectangle on it."""

from __future__ import annotations

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QImage, QMouseEvent, QPainter, QPaintEvent, QPen, QPixmap
from PySide6.QtWidgets import QWidget

from viewer.tiles.viewport import ViewportModel

#: The longer side of the overview, in screen pixels.
OVERVIEW_SIDE = 220


class OverviewMap(QWidget):
    """Shows the thumbnail and where the view is; click or drag to move the view there."""

    def __init__(self, viewport: ViewportModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._viewport = viewport
        self._thumbnail: QImage | None = None
        self._scaled: QPixmap | None = None
        self._dragging = False
        viewport.changed.connect(self._on_view_changed)
        self.setCursor(Qt.CursorShape.PointingHandCursor)
        self.setToolTip("Overview: click or drag to move the view")
        # it covers itself with the thumbnail: without this, each of its repaints (one per
        # view change) would repaint the canvas beneath it a second time
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)
        self.hide()

    def _on_view_changed(self) -> None:
        self.update()

    def set_thumbnail(self, thumbnail: QImage | None) -> None:
        self._thumbnail = thumbnail
        self._scaled = None
        if thumbnail is None or thumbnail.isNull():
            self.hide()
            return
        ratio = thumbnail.width() / max(1, thumbnail.height())
        if ratio >= 1:
            self.resize(OVERVIEW_SIDE, max(24, round(OVERVIEW_SIDE / ratio)))
        else:
            self.resize(max(24, round(OVERVIEW_SIDE * ratio)), OVERVIEW_SIDE)
        self.update()

    def has_thumbnail(self) -> bool:
        return self._thumbnail is not None and not self._thumbnail.isNull()

    def _per_l0(self) -> tuple[float, float]:
        l0_w, l0_h = self._viewport.l0_size
        return self.width() / l0_w, self.height() / l0_h

    def paintEvent(self, event: QPaintEvent) -> None:
        if not self.has_thumbnail():
            return
        assert self._thumbnail is not None
        if self._scaled is None or self._scaled.size() != self.size():
            # scaled once per size; repaints (every view change) just blit it
            self._scaled = QPixmap.fromImage(
                self._thumbnail.scaled(
                    self.size(),
                    Qt.AspectRatioMode.IgnoreAspectRatio,
                    Qt.TransformationMode.SmoothTransformation,
                )
            )
        painter = QPainter(self)
        painter.drawPixmap(0, 0, self._scaled)
        painter.setPen(QPen(QColor(90, 90, 90), 1))
        painter.drawRect(self.rect().adjusted(0, 0, -1, -1))
        sx, sy = self._per_l0()
        view = self._viewport.visible_l0_rect()
        box = QRectF(view.x * sx, view.y * sy, max(3.0, view.w * sx), max(3.0, view.h * sy))
        painter.setPen(QPen(QColor(230, 30, 30), 2))
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawRect(box.intersected(QRectF(self.rect()).adjusted(1, 1, -1, -1)))
        painter.end()

    def _move_view(self, pos: QPointF) -> None:
        sx, sy = self._per_l0()
        self._viewport.center_on(pos.x() / sx, pos.y() / sy)

    def mousePressEvent(self, event: QMouseEvent) -> None:
        if event.button() == Qt.MouseButton.LeftButton:
            self._dragging = True
            self._move_view(event.position())
        event.accept()

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        if self._dragging:
            self._move_view(event.position())
        event.accept()

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        self._dragging = False
        event.accept()
