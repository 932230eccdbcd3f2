"""Builds the application: Qt, the main window, and the slide given on the command line."""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from PySide6.QtWidgets import QApplication

from viewer.qt.main_window import MainWindow
from viewer.runtime import tune_for_interaction


def create_app(argv: Sequence[str] = ()) -> QApplication:
    """The QApplication (reused when one exists, as under pytest-qt)."""
    app = QApplication.instance()
    if isinstance(app, QApplication):
        return app
    app = QApplication([sys.argv[0], *argv])
    app.setApplicationName("SlideLens")
    app.setOrganizationName("SlideLens")
    app.setDesktopFileName("slidelens")
    return app


def run_gui(slide: Path | None = None) -> int:
    """Show the main window, open ``slide`` if given, and run until the window closes."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    app = create_app()
    window = MainWindow()
    tune_for_interaction()
    window.show()
    if slide is not None:
        window.open_path(slide)
    return app.exec()
