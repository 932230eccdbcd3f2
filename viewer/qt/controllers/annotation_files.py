"""Where the open slide's annotations are kept: loading them through the
:class:`AnnotationStore` (offering to recover unsaved work), saving, autosave, the
save-before-closing question, and GeoJSON import and export.

GeoJSON files count their coordinates from the top-left corner of the slide's bounds,
as QuPath does (see :mod:`viewer.annotations.geojson`); saved annotation files are in
level-0 pixels.

Saving: Ctrl+S writes the slide's annotation file atomically (with a ``.bak``); every
change also schedules an autosave to a separate recovery file a couple of seconds
later, so a crash loses at most that.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, QTimer
from PySide6.QtWidgets import QFileDialog, QMainWindow, QMessageBox, QWidget

from viewer.annotations import (
    AnnotationFileError,
    AnnotationSet,
    AnnotationStore,
    ClassPalette,
    ConflictPolicy,
    apply_import,
    export_geojson,
    import_geojson,
    load_user_palette,
    plan_import,
)
from viewer.qt.messages import show_warning
from viewer.qt.save_dialog import ask_save_path, start_folder
from viewer.save_locations import output_name

if TYPE_CHECKING:
    from viewer.qt.controllers.slide_opener import OpenedSlide

log = logging.getLogger(__name__)

GEOJSON_FILTER = "GeoJSON (*.geojson *.json);;All files (*)"
#: Seconds after the last change before the recovery file is written.
AUTOSAVE_DELAY_MS = 2000


def ask_conflict_policy(parent: QWidget, question: str) -> ConflictPolicy | None:
    """Ask once what to do with imported annotations already on the slide; ``None``
    when the user cancels the import."""
    box = QMessageBox(
        QMessageBox.Icon.Question, "Annotations already here", question, parent=parent
    )
    buttons = {
        box.addButton("Replace", QMessageBox.ButtonRole.AcceptRole): ConflictPolicy.REPLACE,
        box.addButton("Keep both", QMessageBox.ButtonRole.AcceptRole): ConflictPolicy.KEEP_BOTH,
        box.addButton("Skip", QMessageBox.ButtonRole.AcceptRole): ConflictPolicy.SKIP,
    }
    box.addButton(QMessageBox.StandardButton.Cancel)
    box.setDefaultButton(next(b for b, p in buttons.items() if p is ConflictPolicy.SKIP))
    box.exec()
    clicked = box.clickedButton()
    return next((p for b, p in buttons.items() if b is clicked), None)


class AnnotationFiles(QObject):
    """Loads, saves, autosaves, imports and exports the annotations of the open slide.

    ``current()`` is the open slide's :class:`AnnotationSet` (``None`` without one).
    ``last_message`` is the last thing said in the status bar or a warning.
    """

    def __init__(
        self,
        window: QMainWindow,
        store: AnnotationStore,
        current: Callable[[], AnnotationSet | None],
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.window = window
        self.store = store
        self._current = current
        #: The level-0 point GeoJSON files count from: the open slide's bounds' corner.
        self._l0_origin = (0.0, 0.0)
        #: The open slide's file (save dialogs open beside it and name it).
        self.slide_path: Path | None = None
        self.last_message = ""
        self._autosave_timer = QTimer(self)
        self._autosave_timer.setSingleShot(True)
        self._autosave_timer.setInterval(AUTOSAVE_DELAY_MS)
        self._autosave_timer.timeout.connect(self.autosave)

    # -- opening and closing ----------------------------------------------------------
    def load(self, opened: OpenedSlide) -> AnnotationSet | None:
        """The slide's annotations (offering to restore recovered unsaved work)."""
        info = opened.source.info
        self.slide_path = opened.path
        bounds = info.l0_bounds
        self._l0_origin = (float(bounds.x), float(bounds.y))
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
            self.tell(message)
        return annotations

    def _starting_palette(self) -> ClassPalette:
        try:
            classes = load_user_palette()
        except AnnotationFileError as exc:
            self.tell(str(exc))
            classes = []
        return ClassPalette(classes) if classes else ClassPalette()

    def confirm_close(self, slide_name: str = "this slide") -> bool:
        """Before the slide goes away: ask to save unsaved changes.  ``False``: the
        user cancelled and the slide must stay."""
        annotations = self._current()
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
    def changed(self) -> None:
        """The annotations changed: autosave them soon if they are unsaved."""
        annotations = self._current()
        if annotations is not None and annotations.dirty:
            self._autosave_timer.start()

    def stop_autosave(self) -> None:
        self._autosave_timer.stop()

    def autosave(self) -> None:
        annotations = self._current()
        if annotations is None:
            return
        try:
            self.store.autosave(annotations)
        except OSError as exc:
            self.tell(f"Autosave of annotations failed: {exc}")

    def save(self) -> bool:
        """Save now (atomically, keeping a backup).  Returns whether it worked."""
        annotations = self._current()
        if annotations is None:
            return True
        try:
            path = self.store.save(annotations)
        except (OSError, AnnotationFileError) as exc:
            show_warning(
                self.window,
                "Annotations not saved",
                f"Could not save the annotations: {exc}\n\nYour work is still open; free "
                "some disk space or fix the folder's permissions and save again.",
            )
            return False
        self._autosave_timer.stop()
        self.tell(f"Annotations saved to {path}")
        return True

    # -- GeoJSON ----------------------------------------------------------------------
    def choose_import(self) -> None:
        start = str(start_folder(self.slide_path))
        path, _ = QFileDialog.getOpenFileName(
            self.window, "Import annotations (GeoJSON)", start, GEOJSON_FILTER
        )
        if path:
            self.import_file(Path(path))

    def import_file(self, path: Path) -> int:
        """Add the annotations of a GeoJSON file (QuPath's or ours); returns how many
        were added or replaced.

        Coordinates count from the slide's bounds, as in QuPath.  When some of the
        file's annotations have ids already on the slide, the user is asked once
        whether to replace them, keep both (new ids) or skip them (or cancel)."""
        annotations = self._current()
        if annotations is None:
            return 0
        try:
            result = import_geojson(path, l0_origin=self._l0_origin)
        except AnnotationFileError as exc:
            show_warning(self.window, "Cannot import annotations", str(exc))
            self.last_message = str(exc)
            return 0
        plan = plan_import(result.annotations, annotations)
        policy = ConflictPolicy.KEEP_BOTH
        if plan.has_conflicts:
            chosen = ask_conflict_policy(self.window, plan.question(path.name))
            if chosen is None:
                self.tell(f"Import of {path.name} cancelled; nothing was added")
                return 0
            policy = chosen
        outcome = apply_import(plan, annotations, policy, text=f"Import {path.name}")
        message = f"{path.name}: {outcome.summary()}"
        if result.skipped:
            reasons = ", ".join(f"{n} {why}" for why, n in result.skipped.items())
            message += f" {result.skipped_count} features could not be read ({reasons})."
        self.tell(message)
        return outcome.added + outcome.replaced

    def choose_export(self) -> None:
        name = output_name(self.slide_path, "annotations", suffix=".geojson")
        path = ask_save_path(
            self.window, "Export annotations (GeoJSON)", self.slide_path, name, GEOJSON_FILTER
        )
        if path is not None:
            self.export_file(path)

    def export_file(self, path: Path) -> bool:
        """Write the annotations as GeoJSON counted from the slide's bounds (QuPath's
        coordinates for the slide); returns whether it did."""
        annotations = self._current()
        if annotations is None:
            return False
        try:
            export_geojson(
                path,
                annotations.annotations(),
                palette=annotations.palette,
                l0_origin=self._l0_origin,
            )
        except (OSError, AnnotationFileError) as exc:
            show_warning(self.window, "Cannot export annotations", f"{path}: {exc}")
            self.last_message = str(exc)
            return False
        self.tell(f"Exported {len(annotations)} annotations to {path}")
        return True

    def tell(self, message: str) -> None:
        """Say ``message`` in the status bar (and the log)."""
        self.last_message = message
        log.info("%s", message)
        self.window.statusBar().showMessage(message, 8000)
