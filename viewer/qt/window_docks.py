"""Dock widgets of the main window: the side panels and how they are tabbed together."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDockWidget, QFrame, QMainWindow, QScrollArea, QWidget


def add_dock(
    window: QMainWindow,
    title: str,
    object_name: str,
    widget: QWidget,
    *,
    scrollable: bool = False,
    sides_only: bool = False,
) -> QDockWidget:
    """Put ``widget`` in a dock on the right of ``window``.

    ``scrollable``: in a scroll area, so the panel's contents never force the window to
    grow; ``sides_only``: the dock may go left or right only.
    """
    dock = QDockWidget(title, window)
    dock.setObjectName(object_name)
    if scrollable:
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setWidget(widget)
        dock.setWidget(scroll)
    else:
        dock.setWidget(widget)
    if sides_only:
        dock.setAllowedAreas(
            Qt.DockWidgetArea.LeftDockWidgetArea | Qt.DockWidgetArea.RightDockWidgetArea
        )
    window.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, dock)
    return dock


def tabify_docks(window: QMainWindow, front: QDockWidget, *others: QDockWidget) -> None:
    """Put ``others`` in tabs behind ``front``, which stays on top."""
    for other in others:
        window.tabifyDockWidget(front, other)
    front.raise_()


def split_column(
    window: QMainWindow, upper: QDockWidget, lower: QDockWidget, lower_share: float
) -> None:
    """Give ``lower`` (and the docks tabbed with it) ``lower_share`` of the height of the
    dock column it shares with ``upper``, so both panels' controls show without
    scrolling (Qt would otherwise give the upper one most of it).  Call it once the
    window is laid out (shown): the column's height is measured."""
    column = upper.height() + lower.height()
    if column <= 2:
        return
    lower_px = round(column * lower_share)
    window.resizeDocks([upper, lower], [column - lower_px, lower_px], Qt.Orientation.Vertical)
