"""Panning by whole pixels moves the frame on screen and paints only what came into view;
what the screen then shows equals a fresh paint of the whole canvas."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import QEvent, QObject
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot

from tests.qt.qt_helpers import TIMEOUT_MS, fit_on_screen, grab, open_slide_in
from viewer.qt.main_window import MainWindow


def _rgb(image: QImage) -> np.ndarray:
    image = image.convertToFormat(QImage.Format.Format_RGB888)
    rows = np.frombuffer(image.constBits(), np.uint8, image.sizeInBytes())
    rows = rows.reshape(image.height(), image.bytesPerLine())
    return rows[:, : image.width() * 3].reshape(image.height(), image.width(), 3).copy()


class _PaintedArea(QObject):
    """Records the area (in pixels) of every paint event of the watched widget."""

    def __init__(self) -> None:
        super().__init__()
        self.areas: list[int] = []

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.Paint:
            region = event.region()  # type: ignore[attr-defined]
            self.areas.append(sum(rect.width() * rect.height() for rect in region))
        return False


def _on_screen(window: MainWindow) -> np.ndarray:
    """The canvas as the window's backing store holds it (not a fresh paint), in device
    pixels from its top-left corner.

    At ``QT_SCALE_FACTOR`` > 1 the offscreen platform clips a grab, in device pixels,
    to the window's size in logical pixels (its own quirk), so only the top-left part
    of the canvas comes back there; at scale 1 all of it.
    """
    canvas = window.canvas
    top_left = canvas.mapTo(window, canvas.rect().topLeft())
    shot = canvas.screen().grabWindow(
        window.winId(), top_left.x(), top_left.y(), canvas.width(), canvas.height()
    )
    return _rgb(shot.toImage())


def test_whole_pixel_pans_scroll_the_frame_and_match_a_full_paint(
    qtbot: QtBot, window: MainWindow, synthetic_slide: Path
) -> None:
    # a screen grab sees only what lies on the screen (small offscreen: 800 x 800 device
    # pixels, only 400 x 400 logical ones at QT_SCALE_FACTOR=2)
    fit_on_screen(window, 1000, 700)
    screen = window.screen().availableGeometry()
    qtbot.waitUntil(lambda: screen.contains(window.frameGeometry()), timeout=TIMEOUT_MS)
    open_slide_in(qtbot, window, synthetic_slide)
    canvas, viewport = window.canvas, window.canvas.viewport
    # 1:1 per device pixel: tiles are drawn unscaled on any screen, so the frame painted
    # smoothly once the view settled equals the quick paints while it moves
    viewport.set_dev_scale(1.0)
    viewport.center_on(2048, 1536)
    qtbot.waitUntil(canvas.visible_tiles_ready, timeout=TIMEOUT_MS)
    # load the tiles of the path back first, so the pans below find them all cached
    viewport.pan_by_scr(60, 42)
    qtbot.waitUntil(canvas.visible_tiles_ready, timeout=TIMEOUT_MS)
    # and the prefetched ones just off screen (four times as many at 2 device px per
    # px): a late burst of them would repaint the whole canvas during the pans
    scheduler = canvas.bridge.scheduler
    qtbot.waitUntil(lambda: scheduler.wait_idle(timeout=0), timeout=TIMEOUT_MS)
    qtbot.wait(300)

    spy = _PaintedArea()
    canvas.installEventFilter(spy)
    for _ in range(6):
        viewport.pan_by_scr(-10, -7)
        QApplication.processEvents()
    on_screen = _on_screen(window)
    canvas.removeEventFilter(spy)

    full = canvas.width() * canvas.height()
    assert len(spy.areas) >= 1
    # each pan painted the strips that came into view (and the fixed overlays), not all
    assert max(spy.areas) < full / 4
    fresh = grab(window)  # device pixels
    rows, cols = on_screen.shape[:2]
    assert rows <= fresh.shape[0] and cols <= fresh.shape[1]
    assert rows >= fresh.shape[0] / 3 and cols >= fresh.shape[1] / 3, "too little on screen"
    if window.devicePixelRatioF() == 1.0:
        assert on_screen.shape == fresh.shape
    assert np.array_equal(on_screen, fresh[:rows, :cols])


def test_zoom_still_repaints_the_whole_canvas(
    qtbot: QtBot, window: MainWindow, synthetic_slide: Path
) -> None:
    open_slide_in(qtbot, window, synthetic_slide)
    canvas = window.canvas
    qtbot.wait(300)
    spy = _PaintedArea()
    canvas.installEventFilter(spy)
    canvas.viewport.zoom_by(1.25)
    QApplication.processEvents()
    canvas.removeEventFilter(spy)
    # all of it but what the overview map, an opaque child, covers
    assert spy.areas and max(spy.areas) > canvas.width() * canvas.height() / 2
