"""View > Display adjustment: brightness, contrast and gamma of the slide, their panel,
a reset, and a status-bar note while the slide is shown adjusted.

The adjustment lives in a Qt-free :class:`DisplayAdjustmentModel`; the canvas shows the
slide under it (a lookup table on decoded tiles, never a new read of the slide) and
exported figures use and record the canvas's.  A newly opened slide starts as scanned:
stains vary from slide to slide, and an adjustment carried over unnoticed would mislead.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QObject
from PySide6.QtWidgets import QDockWidget, QLabel, QMainWindow, QMenu

from viewer.qt.actions import make_action
from viewer.qt.panels.display import DisplayPanel
from viewer.qt.window_docks import add_dock
from viewer.tiles.adjustment import DisplayAdjustment, DisplayAdjustmentModel

if TYPE_CHECKING:
    from viewer.qt.canvas.slide_canvas import SlideCanvas


class DisplayController(QObject):
    """Owns the display adjustment, its panel (a dock, hidden until asked for) and its
    View menu items; keeps the canvas, the panel and the status-bar note in step."""

    def __init__(self, window: QMainWindow, canvas: SlideCanvas) -> None:
        super().__init__(window)
        self.window = window
        self.canvas = canvas
        self.model = DisplayAdjustmentModel()
        self.panel = DisplayPanel()
        self.dock: QDockWidget = add_dock(
            window, "Display", "display-dock", self.panel, sides_only=True
        )
        self.dock.hide()
        self.note = QLabel()
        self.note.setToolTip("The slide is shown with a display adjustment (View > Display)")
        self.note.hide()
        window.statusBar().addPermanentWidget(self.note)
        self.show_action = make_action(
            window, "&Display adjustment…", self.show_panel, icon="fa5s.adjust"
        )
        self.reset_action = make_action(
            window, "&Reset display adjustment", self.model.reset, shortcut="Ctrl+Shift+0"
        )
        self.panel.adjustment_changed.connect(self.model.set)
        self.panel.reset_requested.connect(self.model.reset)
        self.model.changed.connect(self._on_changed)
        self._on_changed(self.model.value)

    @property
    def adjustment(self) -> DisplayAdjustment:
        return self.model.value

    def populate_menu(self, menu: QMenu) -> None:
        """The View menu's items: open the panel, reset."""
        menu.addAction(self.show_action)
        menu.addAction(self.reset_action)

    def show_panel(self) -> None:
        self.dock.show()
        self.dock.raise_()

    def slide_opened(self) -> None:
        """A new slide starts as scanned."""
        self.model.reset()

    def _on_changed(self, adjustment: DisplayAdjustment) -> None:
        self.canvas.set_adjustment(adjustment)
        self.panel.show_adjustment(adjustment)
        self.reset_action.setEnabled(not adjustment.is_identity)
        self.note.setVisible(not adjustment.is_identity)
        self.note.setText(f"Display: {adjustment.describe()}")
