"""The keyboard goes back to the slide canvas whenever a dialog of the window closes.

Without a window manager (a kiosk, Xvfb, some remote desktops) nobody activates the
main window again when a dialog closes, so keyboard shortcuts and the canvas's keys
(arrows, ``+``/``-``, ``0``, tools) do nothing until the slide is clicked; with one,
focus returns to whichever widget had it, often a panel's spin box that swallows the
keys.  :class:`DialogFocusReturn` watches every dialog of the application (one
event filter, so no dialog call site can forget it: message boxes, file and input
dialogs, the window's own dialogs) and, once the last one of the main window has
closed, activates the main window and gives the canvas the keyboard.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, Qt, QTimer
from PySide6.QtWidgets import QApplication, QDialog, QWidget


class DialogFocusReturn(QObject):
    """Returns the keyboard to ``canvas`` after each dialog of ``window`` closes.

    Installed on the application when made; ``returned`` counts the returns (for
    tests).  A dialog belongs to ``window`` when its parent chain reaches it.
    """

    def __init__(self, window: QWidget, canvas: QWidget) -> None:
        super().__init__(window)
        self.window = window
        self.canvas = canvas
        self.returned = 0
        self._pending = False
        app = QApplication.instance()
        if app is not None:
            app.installEventFilter(self)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if (
            event.type() == QEvent.Type.Hide
            and isinstance(watched, QDialog)
            and self._belongs(watched)
            and not self._pending
        ):
            self._pending = True
            # after the dialog is gone and Qt has done its own focus handling
            QTimer.singleShot(0, self.return_focus)
        return False

    def _belongs(self, dialog: QDialog) -> bool:
        parent = dialog.parentWidget()
        return parent is not None and parent.window() is self.window

    def return_focus(self) -> None:
        """Activate the window and focus the canvas, unless another dialog of the
        window is still open (its own close will bring us back here)."""
        self._pending = False
        if not self.window.isVisible() or QApplication.activeModalWidget() is not None:
            return
        for widget in QApplication.topLevelWidgets():
            if isinstance(widget, QDialog) and widget.isVisible() and self._belongs(widget):
                return
        self.window.activateWindow()
        self.canvas.setFocus(Qt.FocusReason.OtherFocusReason)
        self.returned += 1
