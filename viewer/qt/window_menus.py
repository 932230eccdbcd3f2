"""The main window's own actions (open, close, zoom, magnification presets, overview
map, scale bar, help), its menu bar with the controllers' menus, and the navigation
toolbar."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from PySide6.QtGui import QAction
from PySide6.QtWidgets import QMainWindow, QToolBar

from inference.core.geometry import is_upsampled, scan_magnification
from inference.slides import SlideInfo
from viewer.qt.actions import make_action
from viewer.qt.canvas.slide_canvas import SlideCanvas
from viewer.qt.controllers.analysis import AnalysisController
from viewer.qt.controllers.annotations import AnnotationController
from viewer.qt.controllers.explain import ExplainController
from viewer.qt.controllers.export import ExportController
from viewer.settings import Settings

MAGNIFICATIONS = (1.25, 5.0, 10.0, 20.0, 40.0)


def preset_label(
    magnification: float, info: SlideInfo | None, mpp: float | None = None
) -> tuple[str, str]:
    """The text and tooltip of a magnification preset for the open slide (``mpp``: its
    effective pixel size): a preset above the scan's own magnification says
    "(upsampled)", as a 40x view of a 20x scan only enlarges its pixels."""
    text = f"{magnification:g}x"
    if info is None:
        return text, f"Zoom to {text}"
    mpp = mpp or info.mpp
    scanned = scan_magnification(mpp, info.objective_power)
    if scanned is None:
        return text, "This slide states neither pixel size nor objective power"
    if is_upsampled(magnification, mpp, info.objective_power):
        return (
            f"{text} (upsampled)",
            f"Zoom to {text}: this slide was scanned at {scanned:.3g}x, so {text} enlarges "
            "its pixels and shows no more detail (upsampled)",
        )
    return text, f"Zoom to {text} (the slide was scanned at {scanned:.3g}x)"


class WindowCommands(Protocol):
    """What the window's own menu items do (the main window is one)."""

    def choose_and_open(self) -> None: ...

    def open_path(self, path: str | Path) -> None: ...

    def close_slide(self) -> bool: ...

    def show_properties(self) -> object: ...

    def show_controls(self) -> None: ...

    def set_magnification(self, magnification: float) -> None: ...

    def place_overview(self) -> None:
        """Show or hide the overview map as its action says."""


class WindowMenus:
    """Builds and enables the main window's actions, menus and toolbar."""

    def __init__(
        self,
        window: QMainWindow,
        canvas: SlideCanvas,
        settings: Settings,
        commands: WindowCommands,
    ) -> None:
        self.window = window
        self.canvas = canvas
        self.settings = settings
        self.commands = commands
        self._build_actions()

    def _build_actions(self) -> None:
        window, commands, viewport = self.window, self.commands, self.canvas.viewport

        def action(
            text: str,
            slot: Callable[..., object],
            icon: str | None = None,
            shortcut: str = "",
        ) -> QAction:
            return make_action(window, text, slot, icon=icon, shortcut=shortcut)

        self.open_action = action("&Open…", commands.choose_and_open, "fa5s.folder-open", "Ctrl+O")
        self.close_action = action("&Close slide", commands.close_slide, "fa5s.times", "Ctrl+W")
        self.properties_action = action(
            "Slide &properties…", commands.show_properties, "fa5s.info-circle", "Ctrl+I"
        )
        self.quit_action = action("&Quit", window.close, None, "Ctrl+Q")
        self.fit_action = action("&Fit slide", lambda: viewport.fit(), "fa5s.expand", "0")
        self.one_to_one_action = action(
            "1:1 (one slide pixel per screen pixel)",
            lambda: viewport.set_dev_scale(1.0),  # per device pixel: sharp on HiDPI
            "fa5s.search",
            "1",
        )
        self.zoom_in_action = action(
            "Zoom &in", lambda: viewport.zoom_by(1.5625), "fa5s.search-plus", "Ctrl++"
        )
        self.zoom_out_action = action(
            "Zoom &out", lambda: viewport.zoom_by(0.64), "fa5s.search-minus", "Ctrl+-"
        )
        self.magnification_actions = [
            action(f"{mag:g}x", lambda _=False, m=mag: commands.set_magnification(m))
            for mag in MAGNIFICATIONS
        ]
        self.overview_action = action(
            "&Overview map", commands.place_overview, "fa5s.map", "Ctrl+M"
        )
        self.overview_action.setCheckable(True)
        self.overview_action.setChecked(True)
        self.scale_bar_action = action(
            "&Scale bar", self._toggle_scale_bar, "fa5s.ruler-horizontal"
        )
        self.scale_bar_action.setCheckable(True)
        self.scale_bar_action.setChecked(True)
        self.controls_action = action(
            "&Mouse and keyboard…", commands.show_controls, "fa5s.keyboard", "F1"
        )

    def build_menu_bar(
        self,
        analysis: AnalysisController,
        explain: ExplainController,
        annotations: AnnotationController,
        exports: ExportController,
    ) -> None:
        """File, View, Analysis, Annotations and Help, with the controllers' items."""
        bar = self.window.menuBar()
        self.file_menu = file_menu = bar.addMenu("&File")
        file_menu.addAction(self.open_action)
        self.recent_menu = file_menu.addMenu("Open &recent")
        self.recent_menu.aboutToShow.connect(self._fill_recent_menu)
        file_menu.addAction(self.properties_action)
        file_menu.addSeparator()
        exports.populate_menu(file_menu)
        file_menu.addSeparator()
        file_menu.addAction(self.close_action)
        file_menu.addAction(self.quit_action)
        view_menu = bar.addMenu("&View")
        self.view_menu = view_menu
        for action in (
            self.fit_action,
            self.one_to_one_action,
            self.zoom_in_action,
            self.zoom_out_action,
        ):
            view_menu.addAction(action)
        mag_menu = view_menu.addMenu("&Magnification")
        for action in self.magnification_actions:
            mag_menu.addAction(action)
        view_menu.addSeparator()
        view_menu.addAction(self.overview_action)
        view_menu.addAction(self.scale_bar_action)
        for action in analysis.view_actions():
            view_menu.addAction(action)
        self.analysis_menu = analysis_menu = bar.addMenu("&Analysis")
        analysis.populate_menu(analysis_menu)
        analysis_menu.addSeparator()
        explain.populate_menu(analysis_menu)
        annotations_menu = bar.addMenu("A&nnotations")
        annotations.populate_menu(annotations_menu)
        help_menu = bar.addMenu("&Help")
        help_menu.addAction(self.controls_action)

    def build_toolbar(self) -> None:
        toolbar = QToolBar("Navigation", self.window)
        toolbar.setObjectName("navigation-toolbar")
        toolbar.setMovable(False)
        for action in (self.open_action, self.properties_action):
            toolbar.addAction(action)
        toolbar.addSeparator()
        for action in (
            self.fit_action,
            self.one_to_one_action,
            self.zoom_out_action,
            self.zoom_in_action,
        ):
            toolbar.addAction(action)
        toolbar.addSeparator()
        for action in self.magnification_actions:
            toolbar.addAction(action)
        toolbar.addSeparator()
        toolbar.addAction(self.overview_action)
        self.window.addToolBar(toolbar)

    def update_enabled(self, info: SlideInfo | None, mpp: float | None = None) -> None:
        """Enable what needs a slide when one (with ``info``; ``mpp``: its effective
        pixel size, when the user typed one) is open."""
        for action in (
            self.close_action,
            self.properties_action,
            self.fit_action,
            self.one_to_one_action,
            self.zoom_in_action,
            self.zoom_out_action,
            *self.magnification_actions,
        ):
            action.setEnabled(info is not None)
        for action, magnification in zip(self.magnification_actions, MAGNIFICATIONS, strict=True):
            text, tip = preset_label(magnification, info, mpp)
            action.setText(text)
            action.setToolTip(tip)
        if info is not None:
            can_mag = bool(info.mpp or mpp or info.objective_power)
            for action in self.magnification_actions:
                action.setEnabled(can_mag)

    def _toggle_scale_bar(self) -> None:
        self.canvas.show_scale_bar = self.scale_bar_action.isChecked()
        self.canvas.update()

    def _fill_recent_menu(self) -> None:
        self.recent_menu.clear()
        if not self.settings.recent_files:
            self.recent_menu.addAction("(none)").setEnabled(False)
        for path in self.settings.recent_files:
            action = self.recent_menu.addAction(Path(path).name)
            action.setToolTip(path)
            action.triggered.connect(lambda _=False, p=path: self.commands.open_path(p))
