"""Annotations in the main window: the open slide's :class:`AnnotationSet` with its layer,
the panel, the tools, editing commands and the menu.

Loading, saving, autosave, crash recovery and GeoJSON files are :mod:`annotation_files`'
part: opening a slide with newer recovered work asks whether to restore it; closing a
slide or quitting with unsaved changes asks whether to save.

Measurements use the open slide's effective pixel size (``pixel_size``: the slide's
own, else the one the user typed) and follow it when it changes.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject
from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import QMainWindow, QMenu

from inference.core.geometry import Rect
from viewer.annotations import AnnotationClass, AnnotationSet, AnnotationStore
from viewer.layers.annotation_layer import AnnotationLayer
from viewer.qt.actions import make_action
from viewer.qt.canvas.annotation_tools import make_annotation_tool
from viewer.qt.canvas.tools import CanvasTool
from viewer.qt.controllers.annotation_files import AnnotationFiles
from viewer.qt.controllers.measurement_export import MeasurementExport
from viewer.qt.panels.annotations import TOOLS, AnnotationsPanel
from viewer.qt.window_docks import add_dock

if TYPE_CHECKING:
    from viewer.pixel_size import SlidePixelSize
    from viewer.qt.canvas.slide_canvas import SlideCanvas
    from viewer.qt.controllers.slide_opener import OpenedSlide


class AnnotationController(QObject):
    """Owns the open slide's :class:`AnnotationSet` and everything around it."""

    def __init__(
        self,
        window: QMainWindow,
        canvas: SlideCanvas,
        store: AnnotationStore | None = None,
        pixel_size: SlidePixelSize | None = None,
    ) -> None:
        super().__init__(window)
        self.window = window
        self.canvas = canvas
        self.store = store if store is not None else AnnotationStore()
        self.pixel_size = pixel_size
        self._annotations: AnnotationSet | None = None
        self.layer: AnnotationLayer | None = None
        self.files = AnnotationFiles(window, self.store, lambda: self._annotations, self)
        self.measurements = MeasurementExport(
            window, canvas.layers, lambda: self._annotations, lambda: self.files.slide_path, self
        )
        self.panel = AnnotationsPanel()
        self.dock = add_dock(window, "Annotations", "annotations-dock", self.panel)
        self.panel.tool_chosen.connect(self.choose_tool)
        self.panel.focus_requested.connect(self.focus_on)
        canvas.tool_changed.connect(self._on_tool_changed)
        if pixel_size is not None:
            pixel_size.changed.connect(self._on_pixel_size_changed)
        self._build_actions()
        self._update_actions()

    # -- the AnnotationTarget the tools draw into --------------------------------------
    @property
    def annotations(self) -> AnnotationSet | None:
        return self._annotations

    @property
    def current_class(self) -> AnnotationClass | None:
        return self.panel.current_class

    # -- actions and menu -------------------------------------------------------------
    def _build_actions(self) -> None:
        self.tool_actions: dict[str, QAction] = {}
        group = QActionGroup(self)
        for tool_id, _icon, label, key in TOOLS:
            tool_action = QAction(label, self.window)
            tool_action.setCheckable(True)
            if tool_id != "pan":  # Esc is the canvas's
                tool_action.setShortcut(QKeySequence(key))
            tool_action.triggered.connect(lambda _=False, t=tool_id: self.choose_tool(t))
            group.addAction(tool_action)
            self.tool_actions[tool_id] = tool_action
        self.tool_actions["pan"].setChecked(True)

        window, files = self.window, self.files
        self.save_action = make_action(window, "&Save annotations", self.save, shortcut="Ctrl+S")
        self.import_action = make_action(window, "&Import GeoJSON…", files.choose_import)
        self.export_action = make_action(window, "&Export GeoJSON…", files.choose_export)
        self.measurements_action = make_action(
            window, "Export &measurements (CSV)…", self.measurements.choose
        )
        self.measurements_action.setToolTip(
            "One row per annotation: area, perimeter, length, centroid, class, note and "
            "the mean of each visible heatmap inside it"
        )
        self.undo_action = make_action(window, "&Undo", self.undo, shortcut="Ctrl+Z")
        self.redo_action = make_action(window, "&Redo", self.redo, shortcut="Ctrl+Shift+Z")
        self.delete_action = make_action(
            window, "&Delete selected", self.delete_selected, shortcut="Delete"
        )

    def populate_menu(self, menu: QMenu) -> None:
        for tool_id, *_ in TOOLS:
            menu.addAction(self.tool_actions[tool_id])
        menu.addSeparator()
        for item in (self.undo_action, self.redo_action, self.delete_action):
            menu.addAction(item)
        menu.addSeparator()
        for item in (
            self.save_action,
            self.import_action,
            self.export_action,
            self.measurements_action,
        ):
            menu.addAction(item)
        menu.addSeparator()
        menu.addAction(self.dock.toggleViewAction())

    def _update_actions(self) -> None:
        annotations = self._annotations
        has = annotations is not None
        for item in (
            self.save_action,
            self.import_action,
            self.export_action,
            self.measurements_action,
        ):
            item.setEnabled(has)
        for item in self.tool_actions.values():
            item.setEnabled(has)
        self.undo_action.setEnabled(bool(annotations and annotations.can_undo))
        self.redo_action.setEnabled(bool(annotations and annotations.can_redo))
        self.delete_action.setEnabled(bool(annotations and annotations.selection))

    # -- tools ------------------------------------------------------------------------
    def choose_tool(self, tool_id: str) -> None:
        if self._annotations is None and tool_id != "pan":
            return
        tool = make_annotation_tool(self, tool_id)
        self.canvas.set_tool(tool)
        if tool is not None and tool.status_hint:
            self.window.statusBar().showMessage(tool.status_hint, 6000)

    def _on_tool_changed(self, tool: CanvasTool | None) -> None:
        tool_id = getattr(tool, "name", "pan") if tool is not None else "pan"
        ours = {t for t, *_ in TOOLS}
        shown = tool_id if tool_id in ours else "pan"
        self.panel.show_tool(shown)
        self.tool_actions[shown].setChecked(True)

    # -- slide lifecycle --------------------------------------------------------------
    def slide_opened(self, opened: OpenedSlide) -> None:
        """Load the slide's annotations (offering to recover unsaved work)."""
        self._install(self.files.load(opened))

    def _install(self, annotations: AnnotationSet | None) -> None:
        if self.layer is not None:
            self.layer.disconnect()
            if self.layer in self.canvas.layers:
                self.canvas.layers.remove(self.layer)
            self.layer = None
        if self._annotations is not None:
            self._annotations.history_changed.disconnect(self._on_history)
            self._annotations.selection_changed.disconnect(self._on_selection)
        self._annotations = annotations
        if annotations is not None:
            self._on_pixel_size_changed()
        self.panel.set_annotations(annotations)
        if annotations is not None:
            annotations.history_changed.connect(self._on_history)
            annotations.selection_changed.connect(self._on_selection)
            self.layer = AnnotationLayer(annotations)
            self.canvas.layers.append(self.layer)
        self._update_actions()

    def _on_pixel_size_changed(self, *_: object) -> None:
        """Measure the open slide's annotations with its effective pixel size."""
        annotations, pixel_size = self._annotations, self.pixel_size
        if annotations is None or pixel_size is None or pixel_size.info is None:
            return
        if pixel_size.info.source_id == annotations.source_id:
            annotations.set_mpp(pixel_size.mpp)

    def slide_closed(self) -> None:
        self.files.stop_autosave()
        if self.canvas.tool is not None and getattr(self.canvas.tool, "target", None) is self:
            self.canvas.set_tool(None)
        self._install(None)

    def confirm_close(self, slide_name: str = "this slide") -> bool:
        """Before the slide goes away: ask to save unsaved changes.  ``False``: the
        user cancelled and the slide must stay."""
        return self.files.confirm_close(slide_name)

    def _on_history(self) -> None:
        self._update_actions()
        self.files.changed()

    def _on_selection(self, *_: object) -> None:
        self._update_actions()

    # -- files ------------------------------------------------------------------------
    @property
    def last_message(self) -> str:
        """The last thing said about loading, saving, importing or exporting."""
        return self.files.last_message

    def autosave(self) -> None:
        self.files.autosave()

    def save(self) -> bool:
        """Save now (atomically, keeping a backup).  Returns whether it worked."""
        return self.files.save()

    def import_file(self, path: Path) -> int:
        """Add the annotations of a GeoJSON file (QuPath's or ours); returns how many."""
        return self.files.import_file(path)

    def export_file(self, path: Path) -> bool:
        return self.files.export_file(path)

    # -- editing ----------------------------------------------------------------------
    def undo(self) -> None:
        if self._annotations is not None:
            self._annotations.undo()

    def redo(self) -> None:
        if self._annotations is not None:
            self._annotations.redo()

    def delete_selected(self) -> None:
        if self._annotations is not None and self._annotations.selection:
            self._annotations.delete(self._annotations.selection)

    def focus_on(self, annotation_id: str) -> None:
        """Centre the view on an annotation, zooming out if it does not fit."""
        if self._annotations is None:
            return
        annotation = self._annotations.find(annotation_id)
        if annotation is None:
            return
        self._annotations.select([annotation_id])
        x0, y0, x1, y1 = annotation.l0_bounds
        viewport = self.canvas.viewport
        scr_w, scr_h = viewport.scr_size
        view = viewport.transform().scr_rect_to_l0(Rect(0, 0, scr_w, scr_h))
        if (x1 - x0) > 0.9 * view.w or (y1 - y0) > 0.9 * view.h:
            viewport.set_scale(0.8 * min(scr_w / max(1.0, x1 - x0), scr_h / max(1.0, y1 - y0)))
        viewport.center_on((x0 + x1) / 2, (y0 + y1) / 2)
