"""Helpers shared by the offscreen Qt tests: open a slide and wait, grab the canvas."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QDockWidget, QFileDialog
from pytestqt.qtbot import QtBot

from viewer.qt.main_window import MainWindow

TIMEOUT_MS = 20_000


def open_slide_in(qtbot: QtBot, window: MainWindow, path: Path) -> None:
    """Open ``path`` and wait until its visible tiles are painted sharp."""
    window.open_path(path)
    qtbot.waitUntil(
        lambda: window.current is not None and window.current.path == path, timeout=TIMEOUT_MS
    )
    qtbot.waitUntil(window.canvas.visible_tiles_ready, timeout=TIMEOUT_MS)


def grab(window: MainWindow) -> np.ndarray:
    """The canvas as it is painted now, ``(h, w, 3)`` uint8 RGB."""
    image = window.canvas.grab().toImage().convertToFormat(QImage.Format.Format_RGB888)
    ptr = image.constBits()
    arr = np.frombuffer(ptr, np.uint8, image.sizeInBytes()).reshape(
        image.height(), image.bytesPerLine()
    )
    return arr[:, : image.width() * 3].reshape(image.height(), image.width(), 3).copy()


def tissue_fraction(rgb: np.ndarray) -> float:
    """Share of pixels that look like stained tissue (not glass, not the dark background)."""
    rgb = rgb.astype(np.int16)
    saturation = rgb.max(axis=2) - rgb.min(axis=2)
    return float(((saturation > 25) & (rgb.max(axis=2) > 60)).mean())


def fit_on_screen(window: MainWindow, width: int, height: int) -> None:
    """Hide the side panels and size the window to ``width x height``, or less where
    the screen's available area is smaller, at that area's top-left corner.

    The offscreen screen is 800 x 800 device pixels, so only 400 x 400 logical pixels
    at ``QT_SCALE_FACTOR=2``; what lies off the screen is missing from ``grabWindow``.
    """
    for dock in window.findChildren(QDockWidget):
        dock.hide()
    layout = window.layout()
    if layout is not None:
        layout.activate()  # the smaller minimum size without the panels, now
    available = window.screen().availableGeometry()
    frame = window.frameGeometry().size() - window.geometry().size()
    window.resize(
        min(width, available.width() - frame.width()),
        min(height, available.height() - frame.height()),
    )
    window.move(available.topLeft())


def answer_save_dialogs(monkeypatch: pytest.MonkeyPatch, path: Path) -> list[str]:
    """Make every save dialog answer ``path`` at once, with the remembered save folders
    forgotten; returns the folders the dialogs opened in, as they are asked."""
    import viewer.qt.save_dialog
    from viewer.save_locations import SaveFolders

    opened_at: list[str] = []

    def save_dialog(_parent: object, _title: str, start: str, _filter: str) -> tuple[str, str]:
        opened_at.append(start)
        return str(path), ""

    monkeypatch.setattr(QFileDialog, "getSaveFileName", save_dialog)
    monkeypatch.setattr(viewer.qt.save_dialog, "SAVE_FOLDERS", SaveFolders())
    return opened_at
