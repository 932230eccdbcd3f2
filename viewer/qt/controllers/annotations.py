"""Annotations in the main window: per-slide sets loaded and saved through the
:class:`AnnotationStore`, crash recovery, autosave, the panel, the tools and the menu.

Saving: Ctrl+S writes the slide's annotation file atomically (with a ``.bak``); every
change also schedules an autosave to a separate recovery file a couple of seconds
later, so a crash loses at most that.  Opening a slide with newer recovered work asks
whether to restore it; closing a slide or quitting with unsaved changes asks whether
to save.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Qt, QTimer
from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import QDockWidget, QFileDialog, QMainWindow, QMenu, QMessageBox

from inference.core.geometry import Rect
from viewer.annotations import (
    AnnotationClass,
    AnnotationFileError,
    AnnotationKind,
    AnnotationSet,
    AnnotationStore,
    export_geojson,
    import_geojson,
    load_user_palette,
)
from viewer.annotations.model import ClassPalette
from viewer.layers.annotation_layer import AnnotationLayer
from viewer.qt.canvas.annotation_tools import (
    DragShapeTool,
    FreehandTool,
    PointsTool,
    PolygonTool,
    SelectTool,
)
from viewer.qt.canvas.tools import CanvasTool
from viewer.qt.messages import show_warning
from viewer.qt.panels.annotations import TOOLS, AnnotationsPanel

if TYPE_CHECKING:
    from viewer.qt.canvas.slide_canvas import SlideCanvas
    from viewer.qt.controllers.slide_opener import OpenedSlide

log = logging.getLogger(__name__)

GEOJSON_FILTER = "GeoJSON (*.geojson *.json);;All files (*)"
#: Seconds after the last change before the recovery file is written.
AUTOSAVE_DELAY_MS = 2000


class AnnotationController(QObject):
    """Owns the open slide's :class:`AnnotationSet` and everything around it."""

    def __init__(
        self,
        window: QMainWindow,
        canvas: SlideCanvas,
        store: AnnotationStore | None = None,
    ) -> None:
        super().__init__(window)
        self.window = window
        self.canvas = canvas
        self.store = store if store is not None else AnnotationStore()
        self._annotations: AnnotationSet | None = None
        self.layer: AnnotationLayer | None = None
        self.last_message = ""
        self.panel = AnnotationsPanel()
        self.dock = QDockWidget("Annotations", window)
        self.dock.setObjectName("annotations-dock")
        self.dock.setWidget(self.panel)
        window.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.dock)
        self.panel.tool_chosen.connect(self.choose_tool)
        self.panel.focus_requested.connect(self.focus_on)
        canvas.tool_changed.connect(self._on_tool_changed)
        self._autosave_timer = QTimer(self)
        self._autosave_timer.setSingleShot(True)
        self._autosave_timer.setInterval(AUTOSAVE_DELAY_MS)
        self._autosave_timer.timeout.connect(self.autosave)
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

        def action(text: str, slot: object, key: str = "") -> QAction:
            item = QAction(text, self.window)
            if key:
                item.setShortcut(QKeySequence(key))
            item.triggered.connect(slot)
            return item

        self.save_action = action("&Save annotations", self.save, "Ctrl+S")
        self.import_action = action("&Import GeoJSON…", self.choose_import)
        self.export_action = action("&Export GeoJSON…", self.choose_export)
        self.undo_action = action("&Undo", self.undo, "Ctrl+Z")
        self.redo_action = action("&Redo", self.redo, "Ctrl+Shift+Z")
        self.delete_action = action("&Delete selected", self.delete_selected, "Delete")

    def populate_menu(self, menu: QMenu) -> None:
        for tool_id, *_ in TOOLS:
            menu.addAction(self.tool_actions[tool_id])
        menu.addSeparator()
        for item in (self.undo_action, self.redo_action, self.delete_action):
            menu.addAction(item)
        menu.addSeparator()
        for item in (self.save_action, self.import_action, self.export_action):
            menu.addAction(item)
        menu.addSeparator()
        menu.addAction(self.dock.toggleViewAction())

    def _update_actions(self) -> None:
        annotations = self._annotations
        has = annotations is not None
        for item in (self.save_action, self.import_action, self.export_action):
            item.setEnabled(has)
        for item in self.tool_actions.values():
            item.setEnabled(has)
        self.undo_action.setEnabled(bool(annotations and annotations.can_undo))
        self.redo_action.setEnabled(bool(annotations and annotations.can_redo))
        self.delete_action.setEnabled(bool(annotations and annotations.selection))

    # -- tools ------------------------------------------------------------------------
    def make_tool(self, tool_id: str) -> CanvasTool | None:
        """The canvas tool for a tool id of :data:`TOOLS` (``None`` for panning)."""
        if tool_id == "select":
            return SelectTool(self)
        if tool_id == "polygon":
            return PolygonTool(self)
        if tool_id == "freehand":
            return FreehandTool(self)
        if tool_id == "points":
            return PointsTool(self)
        kinds = {
            "rectangle": AnnotationKind.RECTANGLE,
            "ellipse": AnnotationKind.ELLIPSE,
            "ruler": AnnotationKind.RULER,
        }
        return DragShapeTool(self, kinds[tool_id]) if tool_id in kinds else None

    def choose_tool(self, tool_id: str) -> None:
        if self._annotations is None and tool_id != "pan":
            return
        tool = self.make_tool(tool_id)
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
        info = opened.source.info
        palette = self._starting_palette()
        result = self.store.open(info.source_id, info.mpp, palette=palette)
        annotations = result.annotations
        if result.recovery is not None:
            answer = QMessageBox.question(
                self.window,
                "Recover unsaved annotations?",
                f"SlideLens found annotation work on {opened.path.name} that was not saved "
                f"(autosaved {result.recovery.saved_at}), probably from a session that "
                "ended unexpectedly.\n\nRestore it?",
                QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                QMessageBox.StandardButton.Yes,
            )
            if answer == QMessageBox.StandardButton.Yes:
                annotations = self.store.recover(info.source_id, info.mpp, palette=palette)
            else:
                self.store.discard_recovery(info.source_id)
        for message in result.messages:
            self._tell(message)
        self._install(annotations)

    def _starting_palette(self) -> ClassPalette:
        try:
            classes = load_user_palette()
        except AnnotationFileError as exc:
            self._tell(str(exc))
            classes = []
        return ClassPalette(classes) if classes else ClassPalette()

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
        self.panel.set_annotations(annotations)
        if annotations is not None:
            annotations.history_changed.connect(self._on_history)
            annotations.selection_changed.connect(self._on_selection)
            self.layer = AnnotationLayer(annotations)
            self.canvas.layers.append(self.layer)
        self._update_actions()

    def slide_closed(self) -> None:
        self._autosave_timer.stop()
        if self.canvas.tool is not None and getattr(self.canvas.tool, "target", None) is self:
            self.canvas.set_tool(None)
        self._install(None)

    def confirm_close(self, slide_name: str = "this slide") -> bool:
        """Before the slide goes away: ask to save unsaved changes.  ``False``: the
        user cancelled and the slide must stay."""
        annotations = self._annotations
        if annotations is None or not annotations.dirty:
            return True
        answer = QMessageBox.question(
            self.window,
            "Unsaved annotations",
            f"The annotations on {slide_name} have unsaved changes. Save them?",
            QMessageBox.StandardButton.Save
            | QMessageBox.StandardButton.Discard
            | QMessageBox.StandardButton.Cancel,
            QMessageBox.StandardButton.Save,
        )
        if answer == QMessageBox.StandardButton.Cancel:
            return False
        if answer == QMessageBox.StandardButton.Save:
            return self.save()
        self._autosave_timer.stop()
        self.store.discard_recovery(annotations.source_id)
        return True

    # -- saving -----------------------------------------------------------------------
    def _on_history(self) -> None:
        self._update_actions()
        if self._annotations is not None and self._annotations.dirty:
            self._autosave_timer.start()

    def _on_selection(self, *_: object) -> None:
        self._update_actions()

    def autosave(self) -> None:
        if self._annotations is None:
            return
        try:
            self.store.autosave(self._annotations)
        except OSError as exc:
            self._tell(f"Autosave of annotations failed: {exc}")

    def save(self) -> bool:
        """Save now (atomically, keeping a backup).  Returns whether it worked."""
        if self._annotations is None:
            return True
        try:
            path = self.store.save(self._annotations)
        except (OSError, AnnotationFileError) as exc:
            show_warning(
                self.window,
                "Annotations not saved",
                f"Could not save the annotations: {exc}\n\nYour work is still open; free "
                "some disk space or fix the folder's permissions and save again.",
            )
            return False
        self._autosave_timer.stop()
        self._tell(f"Annotations saved to {path}")
        return True

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

    # -- GeoJSON ----------------------------------------------------------------------
    def choose_import(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self.window, "Import annotations (GeoJSON)", "", GEOJSON_FILTER
        )
        if path:
            self.import_file(Path(path))

    def import_file(self, path: Path) -> int:
        """Add the annotations of a GeoJSON file (QuPath's or ours); returns how many."""
        if self._annotations is None:
            return 0
        try:
            result = import_geojson(path)
        except AnnotationFileError as exc:
            show_warning(self.window, "Cannot import annotations", str(exc))
            self.last_message = str(exc)
            return 0
        added = list(result.annotations)
        self._annotations.add_many(added, text=f"Import {path.name}", renew_duplicate_ids=True)
        self._tell(result.summary())
        return len(added)

    def choose_export(self) -> None:
        path, _ = QFileDialog.getSaveFileName(
            self.window, "Export annotations (GeoJSON)", "annotations.geojson", GEOJSON_FILTER
        )
        if path:
            self.export_file(Path(path))

    def export_file(self, path: Path) -> bool:
        if self._annotations is None:
            return False
        try:
            export_geojson(path, self._annotations.annotations(), palette=self._annotations.palette)
        except (OSError, AnnotationFileError) as exc:
            show_warning(self.window, "Cannot export annotations", f"{path}: {exc}")
            self.last_message = str(exc)
            return False
        self._tell(f"Exported {len(self._annotations)} annotations to {path}")
        return True

    def _tell(self, message: str) -> None:
        self.last_message = message
        log.info("%s", message)
        self.window.statusBar().showMessage(message, 8000)
