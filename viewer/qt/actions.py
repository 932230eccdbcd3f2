"""One way to make a menu or toolbar action, for the window and its controllers."""

from __future__ import annotations

from collections.abc import Callable

import qtawesome as qta
from PySide6.QtCore import QObject
from PySide6.QtGui import QAction, QKeySequence


def make_action(
    parent: QObject,
    text: str,
    slot: Callable[..., object],
    *,
    icon: str | None = None,
    shortcut: str = "",
) -> QAction:
    """An action that calls ``slot`` when triggered (``icon``: a qtawesome name)."""
    action = QAction(text, parent)
    if icon:
        action.setIcon(qta.icon(icon))
    if shortcut:
        action.setShortcut(QKeySequence(shortcut))
    action.triggered.connect(slot)
    return action
