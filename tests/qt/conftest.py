"""Qt fixtures: a main window per test, closed (with its threads) afterwards."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pytestqt.qtbot import QtBot

from viewer.qt.main_window import MainWindow
from viewer.settings import Settings


def forget_unsaved_annotations(win: MainWindow) -> None:
    """A test that leaves unsaved annotations must not meet the save prompt when its
    window is closed (a modal dialog would wait forever offscreen)."""
    annotations = win.annotations.annotations
    if annotations is not None and annotations.dirty:
        annotations.mark_clean()


def new_window(qtbot: QtBot) -> MainWindow:
    """A shown main window that pytest-qt closes after the test."""
    win = MainWindow(Settings())
    qtbot.addWidget(win, before_close_func=forget_unsaved_annotations)
    win.resize(1000, 700)
    win.show()
    qtbot.waitExposed(win)
    return win


@pytest.fixture
def window(qtbot: QtBot) -> Iterator[MainWindow]:
    win = new_window(qtbot)
    yield win
    forget_unsaved_annotations(win)
    win.close()
