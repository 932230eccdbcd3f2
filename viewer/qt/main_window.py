"""The main window: canvas, overview, menus, toolbar, status bar, drag-and-drop.

The menus and toolbar are built by :mod:`window_menus`, the status bar labels by
:mod:`window_status`, the side panels by the controllers (see :mod:`window_docks`).
The window owns the open slide's effective pixel size (:class:`SlidePixelSize`: the
slide's own, else the one the user typed for it); the scale bar, measurements, model
jobs, explanations and figures read it, and follow its ``changed`` event.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QPoint, Qt, QTimer
from PySide6.QtGui import (
    QCloseEvent,
    QDragEnterEvent,
    QDropEvent,
    QImage,
    QResizeEvent,
    QShowEvent,
)
from PySide6.QtWidgets import QFileDialog, QLabel, QMainWindow, QMessageBox

from inference.core.geometry import scale_for_magnification
from inference.slides import SlideSource
from viewer.pixel_size import SlidePixelSize, TypedPixelSizes
from viewer.qt.canvas.overview import OverviewMap
from viewer.qt.canvas.slide_canvas import SlideCanvas
from viewer.qt.canvas.tile_bridge import TileBridge
from viewer.qt.controllers.analysis import AnalysisController
from viewer.qt.controllers.annotations import AnnotationController
from viewer.qt.controllers.class_report import ClassReportController
from viewer.qt.controllers.display import DisplayController
from viewer.qt.controllers.explain import ExplainController
from viewer.qt.controllers.export import ExportController
from viewer.qt.controllers.projects import ProjectController
from viewer.qt.controllers.slide_level import SlideLevelController
from viewer.qt.controllers.slide_opener import OpenedSlide, SlideOpener
from viewer.qt.dialogs import SlidePropertiesDialog
from viewer.qt.focus import DialogFocusReturn
from viewer.qt.window_docks import split_column, tabify_docks
from viewer.qt.window_menus import WindowMenus
from viewer.qt.window_status import StatusLabels
from viewer.settings import Settings, apply_result_cache, load_settings, save_settings

SLIDE_FILTER = (
    "Slides and images (*.svs *.tif *.tiff *.ndpi *.vms *.vmu *.scn *.mrxs *.svslide *.bif "
    "*.dcm *.png *.jpg *.jpeg *.bmp *.webp);;All files (*)"
)
_OVERVIEW_MARGIN = 10
#: Share of the right-hand dock column for the layers and metrics panels.
LOWER_DOCKS = 0.55


class MainWindow(QMainWindow):
    """One slide at a time; a failed open leaves the current slide exactly as it was."""

    def __init__(self, settings: Settings | None = None) -> None:
        super().__init__()
        self.settings = settings if settings is not None else load_settings()
        apply_result_cache(self.settings)  # before anything opens the result cache
        self.setWindowTitle("SlideLens")
        self.resize(1400, 900)
        self.setAcceptDrops(True)
        self.bridge = TileBridge(cache_mb=self.settings.tile_cache_mb, parent=self)
        self.canvas = SlideCanvas(self.bridge, self)
        self.setCentralWidget(self.canvas)
        # every dialog gives the keyboard back to the slide when it closes
        self.focus_return = DialogFocusReturn(self, self.canvas)
        self.overview = OverviewMap(self.canvas.viewport, self.canvas)
        self.pixel_size = SlidePixelSize(TypedPixelSizes())
        self.analysis = AnalysisController(
            self, self.canvas, self.settings, pixel_size=self.pixel_size
        )
        self.annotations = AnnotationController(self, self.canvas, pixel_size=self.pixel_size)
        self.exports = ExportController(self, self.canvas, self.pixel_size)
        self.explain = ExplainController(
            self,
            self.canvas,
            self.analysis.worker,
            self.analysis.jobs.pool,
            self.analysis.models_panel,
            pixel_size=self.pixel_size,
        )
        # one tab group on the right: models, annotations, explanations; layers and
        # metrics below (tabified once, all together, or Qt leaves a stale tab bar)
        self.slide_level = SlideLevelController(  # slide report, attention, similar regions
            self,
            self.canvas,
            self.analysis.worker,
            self.analysis.jobs.pool,
            self.analysis.models_panel,
            pixel_size=self.pixel_size,
            cache_folder=self.analysis.jobs.cache_folder,
            domain_questions=self.analysis.domain_questions,
        )
        self.class_report = ClassReportController(  # grade and class areas, in figures too
            self.analysis.jobs,
            self.slide_level.panel,
            self.pixel_size,
            self.slide_level.go_to,
            self,
        )
        self.class_report.message.connect(lambda text: self.statusBar().showMessage(text, 8000))
        tabify_docks(
            self,
            self.analysis.models_dock,
            self.annotations.dock,
            self.explain.dock,
            self.slide_level.dock,
        )
        self.opener = SlideOpener(self)
        self.opener.opened.connect(self._on_opened)
        self.opener.failed.connect(self._on_open_failed)
        self.current: OpenedSlide | None = None
        self.last_error: str | None = None
        self._error_box: QMessageBox | None = None
        self._warmed = False
        self.menus = WindowMenus(self, self.canvas, self.settings, self)
        self.menus.build_menu_bar(self.analysis, self.explain, self.annotations, self.exports)
        self.menus.analysis_menu.addSeparator()
        self.slide_level.populate_menu(self.menus.analysis_menu)
        self.display = DisplayController(self, self.canvas)  # brightness, contrast, gamma
        self.display.populate_menu(self.menus.view_menu)
        self.projects = ProjectController(  # File > projects, the slide browser, PgUp/PgDown
            self, self.canvas, self.opener, self.analysis, self.pixel_size,
            self.open_path, lambda: self.current,
        )  # fmt: skip
        self.projects.populate_file_menu(self.menus.file_menu, self.menus.properties_action)
        self.menus.build_toolbar()
        self.status_labels = StatusLabels(self.statusBar())
        self.canvas.view_changed.connect(self._update_view_status)
        self.canvas.cursor_moved.connect(self._update_cursor_status)
        self.canvas.cursor_left.connect(self.status_labels.clear_cursor)
        self.canvas.cursor_left.connect(lambda: self.analysis.values_label.setText(""))
        self.canvas.installEventFilter(self)
        self.pixel_size.changed.connect(self._on_pixel_size_changed)
        problems = [p for p in (*self.settings.problems, self.pixel_size.store.problem) if p]
        if problems:  # a damaged or wrong file of ours: said, and the defaults used
            self.statusBar().showMessage("  ·  ".join(problems), 15000)
        self._update_actions()

    @property
    def cursor_label(self) -> QLabel:
        return self.status_labels.cursor_label

    @property
    def magnification_label(self) -> QLabel:
        return self.status_labels.magnification_label

    @property
    def zoom_label(self) -> QLabel:
        return self.status_labels.zoom_label

    # -- opening ----------------------------------------------------------------------
    def choose_and_open(self) -> None:
        start = (
            str(Path(self.settings.recent_files[0]).parent) if self.settings.recent_files else ""
        )
        path, _ = QFileDialog.getOpenFileName(self, "Open slide", start, SLIDE_FILTER)
        if path:
            self.open_path(path)

    def open_path(self, path: str | Path) -> None:
        """Open a slide in the background; the current slide stays until the new one is ready."""
        self.statusBar().showMessage(f"Opening {Path(path).name}…")
        self.opener.open(path)

    def _on_opened(self, opened: OpenedSlide) -> None:
        previous = self.current
        if previous is not None and not self.annotations.confirm_close(previous.path.name):
            opened.source.close()  # the user kept the open slide and its unsaved work
            self.statusBar().showMessage(f"{opened.path.name} was not opened", 6000)
            return
        if previous is not None:
            self.annotations.slide_closed()
        self.current = opened
        self.last_error = None
        self.pixel_size.set_slide(opened.source.info)
        self.analysis.slide_opened(opened)
        self.display.slide_opened()
        self.canvas.set_slide(opened.source, opened.thumbnail)
        self.canvas.set_mpp(self.pixel_size.mpp)
        self.overview.set_thumbnail(opened.thumbnail)
        self.place_overview()
        if previous is not None:  # once no figure being written reads it any more
            self._release(previous.source)
        self.settings.add_recent(opened.path)
        save_settings(self.settings)
        self.setWindowTitle(f"{opened.path.name} — SlideLens")
        self.annotations.slide_opened(opened)
        self.exports.set_slide(opened)
        self.explain.set_slide(opened)
        self.slide_level.set_slide(opened)
        self.class_report.set_slide(opened)
        info = opened.source.info
        typed = self.pixel_size.typed
        mpp = (
            f"{info.mpp:.3f} µm/px"
            if info.mpp
            else f"{typed:.3f} µm/px (typed)"
            if typed
            else "no pixel size (measurements in px)"
        )
        self.statusBar().showMessage(
            f"{opened.path.name}: {info.dimensions[0]:,} x {info.dimensions[1]:,} px, "
            f"{info.vendor}, {mpp}",
            8000,
        )
        self._update_actions()
        self._update_view_status()

    def _on_open_failed(self, path: str, message: str) -> None:
        self.last_error = message
        self.statusBar().showMessage(f"Could not open {Path(path).name}", 8000)
        box = QMessageBox(QMessageBox.Icon.Warning, "Could not open slide", message, parent=self)
        box.setInformativeText(
            "The slide that was open is still open."
            if self.current is not None
            else "Choose another file with File > Open."
        )
        box.setWindowModality(Qt.WindowModality.WindowModal)
        box.open()
        self._error_box = box

    def close_slide(self) -> bool:
        """Close the open slide (asking about unsaved annotations); ``False`` if the user
        chose to keep it open."""
        if self.current is None:
            return True
        if not self.annotations.confirm_close(self.current.path.name):
            return False
        self.annotations.slide_closed()
        self.analysis.slide_closed()
        self.exports.set_slide(None)
        self.explain.set_slide(None)
        self.slide_level.set_slide(None)
        self.class_report.set_slide(None)
        self.pixel_size.set_slide(None)
        self._release(self.current.source)
        self.current = None
        self.canvas.clear_slide()
        self.overview.set_thumbnail(None)
        self.setWindowTitle("SlideLens")
        self._update_actions()
        self._update_view_status()
        return True

    @property
    def source(self) -> SlideSource | None:
        return self.current.source if self.current else None

    # -- view -------------------------------------------------------------------------
    def set_magnification(self, magnification: float) -> None:
        """Zoom to an apparent magnification, counted per device pixel (see
        :func:`~inference.core.geometry.magnification_at`)."""
        if self.current is None:
            return
        info = self.current.source.info
        mpp = self.pixel_size.mpp
        scale = scale_for_magnification(magnification, mpp, info.objective_power)
        if scale is None:
            self.statusBar().showMessage(
                "This slide states neither pixel size nor objective power; use 1:1 instead", 6000
            )
            return
        self.canvas.viewport.set_dev_scale(scale)

    def place_overview(self) -> None:
        """Show the overview map in the canvas's top right corner, if its action says so
        and there is a thumbnail."""
        visible = self.menus.overview_action.isChecked() and self.overview.has_thumbnail()
        self.overview.setVisible(visible)
        if visible:
            pos = QPoint(
                self.canvas.width() - self.overview.width() - _OVERVIEW_MARGIN, _OVERVIEW_MARGIN
            )
            self.overview.move(pos)
            self.overview.raise_()

    def eventFilter(self, watched: object, event: object) -> bool:
        if watched is self.canvas and isinstance(event, QResizeEvent):
            QTimer.singleShot(0, self.place_overview)
        return False

    def _update_actions(self) -> None:
        info = self.current.source.info if self.current is not None else None
        self.menus.update_enabled(info, self.pixel_size.mpp)

    def _on_pixel_size_changed(self, mpp: float | None) -> None:
        """The open slide's pixel size was typed or changed: scale bar, magnification."""
        if self.current is not None and self.canvas.source is self.current.source:
            self.canvas.set_mpp(mpp)
        self._update_actions()
        self._update_view_status()

    def _update_view_status(self) -> None:
        self.status_labels.show_view(self.canvas, self.current is not None)

    def _update_cursor_status(self, l0_x: float, l0_y: float) -> None:
        if self.current is None:
            return
        info, mpp = self.current.source.info, self.pixel_size.mpp
        if self.status_labels.show_cursor(info, l0_x, l0_y, mpp):
            self.analysis.update_values(l0_x, l0_y)

    # -- dialogs ----------------------------------------------------------------------
    def show_properties(self) -> SlidePropertiesDialog | None:
        if self.current is None:
            return None
        dialog = SlidePropertiesDialog(
            self.current.source.info, self.current.associated, self, self.pixel_size
        )
        dialog.open()
        return dialog

    def show_controls(self) -> None:
        QMessageBox.information(self, "Mouse and keyboard", CONTROLS_HELP)

    # -- drag and drop ----------------------------------------------------------------
    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if event.mimeData().hasUrls() and any(u.isLocalFile() for u in event.mimeData().urls()):
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        paths = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        if paths:
            self.open_path(paths[0])
            event.acceptProposedAction()

    # -- closing ----------------------------------------------------------------------
    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        if not self._warmed:
            self._warmed = True
            # the lower dock group (layers, metrics) needs room for its controls too
            QTimer.singleShot(
                0,
                lambda: split_column(
                    self, self.analysis.models_dock, self.analysis.layers_dock, LOWER_DOCKS
                ),
            )
            if self.settings.preload_models:
                self.analysis.warm_up()

    def _release(self, source: SlideSource) -> None:
        """Close a slide that left the screen, once no figure or copy reads it."""
        self.exports.when_done_reading(source, lambda: self.bridge.release_source(source))

    def closeEvent(self, event: QCloseEvent) -> None:
        name = self.current.path.name if self.current is not None else "this slide"
        if not self.annotations.confirm_close(name):
            event.ignore()
            return
        self.annotations.slide_closed()
        self.projects.shutdown()
        self.analysis.shutdown()
        self.exports.shutdown()
        self.class_report.calls.wait(5.0)
        self.opener.wait(5.0)
        self.bridge.shutdown()
        save_settings(self.settings)
        super().closeEvent(event)

    def thumbnail(self) -> QImage | None:
        return self.current.thumbnail if self.current else None


CONTROLS_HELP = """\
Pan: drag with the left or middle button, or the arrow keys.
Zoom: mouse wheel (about the cursor), + and -, double-click (Shift+double-click zooms out).
Fit the slide: 0.   One slide pixel per screen pixel: 1.
Magnification presets: View > Magnification (1.25x to 40x).
Overview map: click or drag in it to move the view (Ctrl+M shows or hides it).
Open: Ctrl+O, drag a file onto the window, or File > Open recent.
Slide properties, label and macro images: Ctrl+I."""
