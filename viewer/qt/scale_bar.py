"""The scale bar drawn in a corner of the canvas (and of exported views)."""

from __future__ import annotations

from PySide6.QtCore import QRect, QRectF, Qt
from PySide6.QtGui import QColor, QFont, QPainter

from inference.geometry import nice_length

#: The longest the bar may be, in screen pixels.
MAX_BAR_SCR = 160
_MARGIN = 14


def scale_bar_label(length: float, has_mpp: bool) -> str:
    """``"250 µm"``, ``"1 mm"``, or ``"500 px"`` when the slide has no pixel size."""
    if not has_mpp:
        return f"{length:g} px"
    if length >= 1000:
        return f"{length / 1000:g} mm"
    return f"{length:g} µm"


def scale_bar_length(scale: float, mpp: float | None) -> tuple[float, float]:
    """``(length in µm or px, length in screen px)`` of a round-number bar."""
    l0_per_scr = 1.0 / scale
    unit_per_scr = l0_per_scr * (mpp if mpp else 1.0)
    length = nice_length(MAX_BAR_SCR * unit_per_scr)
    return length, length / unit_per_scr


def paint_scale_bar(painter: QPainter, area: QRect, scale: float, mpp: float | None) -> None:
    """A bar with its label in the bottom-left corner of ``area``, readable on any tissue."""
    length, scr_len = scale_bar_length(scale, mpp)
    if scr_len < 4:
        return
    label = scale_bar_label(length, mpp is not None)
    painter.save()
    font = QFont(painter.font())
    font.setPointSizeF(9.5)
    font.setBold(True)
    painter.setFont(font)
    metrics = painter.fontMetrics()
    text_w = metrics.horizontalAdvance(label)
    box_w = max(scr_len, text_w) + 16
    box = QRectF(area.left() + _MARGIN, area.bottom() - _MARGIN - 34, box_w, 30)
    painter.setPen(Qt.PenStyle.NoPen)
    painter.setBrush(QColor(255, 255, 255, 200))
    painter.drawRoundedRect(box, 4, 4)
    bar = QRectF(box.left() + 8, box.bottom() - 10, scr_len, 4)
    painter.fillRect(bar, QColor(20, 20, 20))
    painter.setPen(QColor(20, 20, 20))
    painter.drawText(
        QRectF(box.left() + 8, box.top() + 2, box_w - 16, 16),
        Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
        label,
    )
    painter.restore()
