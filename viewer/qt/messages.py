"""Messages that never block: a warning box opens window-modal and returns at once, so
the app (and any job) keeps running behind it."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox, QWidget

#: Boxes kept alive while they are open (Qt would otherwise lose them).
_open_boxes: list[QMessageBox] = []


def show_warning(parent: QWidget, title: str, message: str) -> QMessageBox:
    """Open a warning box and return it without waiting for the user."""
    box = QMessageBox(QMessageBox.Icon.Warning, title, message, parent=parent)
    box.setWindowModality(Qt.WindowModality.WindowModal)
    box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    _open_boxes.append(box)
    box.finished.connect(lambda _result, b=box: _open_boxes.remove(b) if b in _open_boxes else None)
    box.open()
    return box
