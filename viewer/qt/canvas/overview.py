"""The overview map: the slide's scanned area in miniature with the viewport rectangle on
it.  Slides that state bounds (MIRAX, Hamamatsu VMS) are shown within their bounds, not
with the empty glass around them."""

from __future__ import annotations

from PySide6.QtCore import QPointF, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QImage, QMouseEvent, QPainter, QPaintEvent, QPen, QPixmap
from PySide6.QtWidgets import QWidget

from inference.core.geometry import Rect
from viewer.tiles.viewport import ViewportModel

#: The longer side of the overview, in screen pixels.
OVERVIEW_SIDE = 220


def crop_to_l0_rect(thumbnail: QImage, l0_size: tuple[int, int], l0_rect: Rect) -> QImage:
    """The part of a whole-slide thumbnail that shows ``l0_rect`` (to the nearest whole
    thumbnail pixel outward); the thumbnail itself when that is all of it."""
    l0_w, l0_h = l0_size
    sx, sy = thumbnail.width() / max(1, l0_w), thumbnail.height() / max(1, l0_h)
    area = QRectF(l0_rect.x * sx, l0_rect.y * sy, l0_rect.w * sx, l0_rect.h * sy)
    crop = area.toAlignedRect().intersected(thumbnail.rect())
    if crop.isEmpty() or crop == thumbnail.rect():
        return thumbnail
    return thumbnail.copy(crop)


class OverviewMap(QWidget):
    """Shows the thumbnail within the slide's bounds (``viewport.l0_bounds``) and where
    the view is; click or drag to move the view there."""

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
        """Show a thumbnail of the whole slide, cropped to the viewport's bounds (so
        call this after the viewport has the slide); ``None`` hides the map."""
        self._scaled = None
        if thumbnail is None or thumbnail.isNull():
            self._thumbnail = thumbnail
            self.hide()
            return
        thumbnail = crop_to_l0_rect(thumbnail, self._viewport.l0_size, self._viewport.l0_bounds)
        self._thumbnail = thumbnail
        ratio = thumbnail.width() / max(1, thumbnail.height())
        if ratio >= 1:
            self.resize(OVERVIEW_SIDE, max(24, round(OVERVIEW_SIDE / ratio)))
        else:
            self.resize(max(24, round(OVERVIEW_SIDE * ratio)), OVERVIEW_SIDE)
        self.update()

    def has_thumbnail(self) -> bool:
        return self._thumbnail is not None and not self._thumbnail.isNull()

    def _per_l0(self) -> tuple[float, float]:
        """Map pixels per level-0 pixel, across and down."""
        bounds = self._viewport.l0_bounds
        return self.width() / bounds.w, self.height() / bounds.h

    def paintEvent(self, event: QPaintEvent) -> None:
        if not self.has_thumbnail():
            return
        assert self._thumbnail is not None
        ratio = self.devicePixelRatioF()
        dev_size = QSize(round(self.width() * ratio), round(self.height() * ratio))
        if self._scaled is None or self._scaled.size() != dev_size:
            # scaled once per size, to device pixels (sharp on HiDPI); repaints (every
            # view change) just blit it
            self._scaled = QPixmap.fromImage(
                self._thumbnail.scaled(
                    dev_size,
                    Qt.AspectRatioMode.IgnoreAspectRatio,
                    Qt.TransformationMode.SmoothTransformation,
                )
            )
            self._scaled.setDevicePixelRatio(ratio)
        painter = QPainter(self)
        painter.drawPixmap(0, 0, self._scaled)
        painter.setPen(QPen(QColor(90, 90, 90), 1))
        painter.drawRect(self.rect().adjusted(0, 0, -1, -1))
        sx, sy = self._per_l0()
        bounds = self._viewport.l0_bounds
        view = self._viewport.visible_l0_rect()
        box = QRectF(
            (view.x - bounds.x) * sx,
            (view.y - bounds.y) * sy,
            max(3.0, view.w * sx),
            max(3.0, view.h * sy),
        )
        painter.setPen(QPen(QColor(230, 30, 30), 2))
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawRect(box.intersected(QRectF(self.rect()).adjusted(1, 1, -1, -1)))
        painter.end()

    def _move_view(self, pos: QPointF) -> None:
        sx, sy = self._per_l0()
        bounds = self._viewport.l0_bounds
        self._viewport.center_on(bounds.x + pos.x() / sx, bounds.y + pos.y() / sy)

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
