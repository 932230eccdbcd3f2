"""Builds the application: Qt, the main window, and the slide given on the command line."""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from PySide6.QtWidgets import QApplication

from inference.cli.exit_codes import EXIT_NO_WINDOW
from viewer.platform_check import platform_problem
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
    """Show the main window, open ``slide`` if given, and run until the window closes.

    Returns :data:`EXIT_NO_WINDOW`, having said why and what to install, when Qt could
    not open a window here (it would abort the process instead).
    """
    if QApplication.instance() is None and (problem := platform_problem()) is not None:
        print(problem, file=sys.stderr)
        return EXIT_NO_WINDOW
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    app = create_app()
    window = MainWindow()
    tune_for_interaction()
    window.show()
    if slide is not None:
        window.open_path(slide)
    return app.exec()
