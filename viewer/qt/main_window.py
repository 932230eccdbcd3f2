"""The main window: canvas, overview, menus, toolbar, status bar, drag-and-drop."""

from __future__ import annotations

from pathlib import Path

import qtawesome as qta
from PySide6.QtCore import QPoint, Qt, QTimer
from PySide6.QtGui import (
    QAction,
    QCloseEvent,
    QDragEnterEvent,
    QDropEvent,
    QImage,
    QKeySequence,
    QResizeEvent,
    QShowEvent,
)
from PySide6.QtWidgets import (
    QFileDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QToolBar,
)

from inference.core.geometry import scale_for_magnification
from inference.slides import SlideSource
from viewer.qt.canvas.overview import OverviewMap
from viewer.qt.canvas.slide_canvas import SlideCanvas
from viewer.qt.canvas.tile_bridge import TileBridge
from viewer.qt.controllers.analysis import AnalysisController
from viewer.qt.controllers.annotations import AnnotationController
from viewer.qt.controllers.explain import ExplainController
from viewer.qt.controllers.export import ExportController
from viewer.qt.controllers.slide_opener import OpenedSlide, SlideOpener
from viewer.qt.dialogs import SlidePropertiesDialog
from viewer.settings import Settings, load_settings, save_settings

SLIDE_FILTER = (
    "Slides and images (*.svs *.tif *.tiff *.ndpi *.vms *.vmu *.scn *.mrxs *.svslide *.bif "
    "*.dcm *.png *.jpg *.jpeg *.bmp *.webp);;All files (*)"
)
MAGNIFICATIONS = (1.25, 5.0, 10.0, 20.0, 40.0)
_OVERVIEW_MARGIN = 10


class MainWindow(QMainWindow):
    """One slide at a time; a failed open leaves the current slide exactly as it was."""

    def __init__(self, settings: Settings | None = None) -> None:
        super().__init__()
        self.settings = settings if settings is not None else load_settings()
        self.setWindowTitle("SlideLens")
        self.resize(1400, 900)
        self.setAcceptDrops(True)
        self.bridge = TileBridge(cache_mb=self.settings.tile_cache_mb, parent=self)
        self.canvas = SlideCanvas(self.bridge, self)
        self.setCentralWidget(self.canvas)
        self.overview = OverviewMap(self.canvas.viewport, self.canvas)
        self.analysis = AnalysisController(self, self.canvas, self.settings)
        self.annotations = AnnotationController(self, self.canvas)
        self.exports = ExportController(self, self.canvas)
        self.explain = ExplainController(
            self,
            self.canvas,
            self.analysis.worker,
            self.analysis.jobs.pool,
            self.analysis.models_panel,
        )
        # one tab group on the right: models, annotations, explanations; layers and
        # metrics below (tabified once, all together, or Qt leaves a stale tab bar)
        self.tabifyDockWidget(self.analysis.models_dock, self.annotations.dock)
        self.tabifyDockWidget(self.analysis.models_dock, self.explain.dock)
        self.analysis.models_dock.raise_()
        self.opener = SlideOpener(self)
        self.opener.opened.connect(self._on_opened)
        self.opener.failed.connect(self._on_open_failed)
        self.current: OpenedSlide | None = None
        self.last_error: str | None = None
        self._error_box: QMessageBox | None = None
        self._warmed = False
        self._build_actions()
        self._build_menus()
        self._build_toolbar()
        self._build_status_bar()
        self.canvas.view_changed.connect(self._update_view_status)
        self.canvas.cursor_moved.connect(self._update_cursor_status)
        self.canvas.cursor_left.connect(lambda: self.cursor_label.setText(""))
        self.canvas.cursor_left.connect(lambda: self.analysis.values_label.setText(""))
        self.canvas.installEventFilter(self)
        self._update_actions()

    # -- construction -----------------------------------------------------------------
    def _action(
        self, text: str, slot: object, icon: str | None = None, shortcut: str | None = None
    ) -> QAction:
        action = QAction(text, self)
        if icon:
            action.setIcon(qta.icon(icon))
        if shortcut:
            action.setShortcut(QKeySequence(shortcut))
        action.triggered.connect(slot)
        return action

    def _build_actions(self) -> None:
        self.open_action = self._action(
            "&Open…", self.choose_and_open, "fa5s.folder-open", "Ctrl+O"
        )
        self.close_action = self._action("&Close slide", self.close_slide, "fa5s.times", "Ctrl+W")
        self.properties_action = self._action(
            "Slide &properties…", self.show_properties, "fa5s.info-circle", "Ctrl+I"
        )
        self.quit_action = self._action("&Quit", self.close, None, "Ctrl+Q")
        self.fit_action = self._action(
            "&Fit slide", lambda: self.canvas.viewport.fit(), "fa5s.expand", "0"
        )
        self.one_to_one_action = self._action(
            "1:1 (one slide pixel per screen pixel)",
            lambda: self.canvas.viewport.set_scale(1.0),
            "fa5s.search",
            "1",
        )
        self.zoom_in_action = self._action(
            "Zoom &in", lambda: self.canvas.viewport.zoom_by(1.5625), "fa5s.search-plus", "Ctrl++"
        )
        self.zoom_out_action = self._action(
            "Zoom &out", lambda: self.canvas.viewport.zoom_by(0.64), "fa5s.search-minus", "Ctrl+-"
        )
        self.magnification_actions = [
            self._action(f"{mag:g}x", lambda _=False, m=mag: self.set_magnification(m))
            for mag in MAGNIFICATIONS
        ]
        self.overview_action = self._action(
            "&Overview map", self._toggle_overview, "fa5s.map", "Ctrl+M"
        )
        self.overview_action.setCheckable(True)
        self.overview_action.setChecked(True)
        self.scale_bar_action = self._action(
            "&Scale bar", self._toggle_scale_bar, "fa5s.ruler-horizontal"
        )
        self.scale_bar_action.setCheckable(True)
        self.scale_bar_action.setChecked(True)
        self.controls_action = self._action(
            "&Mouse and keyboard…", self.show_controls, "fa5s.keyboard", "F1"
        )

    def _build_menus(self) -> None:
        bar = self.menuBar()
        file_menu = bar.addMenu("&File")
        file_menu.addAction(self.open_action)
        self.recent_menu = file_menu.addMenu("Open &recent")
        self.recent_menu.aboutToShow.connect(self._fill_recent_menu)
        file_menu.addAction(self.properties_action)
        file_menu.addSeparator()
        self.exports.populate_menu(file_menu)
        file_menu.addSeparator()
        file_menu.addAction(self.close_action)
        file_menu.addAction(self.quit_action)
        view_menu = bar.addMenu("&View")
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
        for action in self.analysis.view_actions():
            view_menu.addAction(action)
        analysis_menu = bar.addMenu("&Analysis")
        self.analysis.populate_menu(analysis_menu)
        analysis_menu.addSeparator()
        self.explain.populate_menu(analysis_menu)
        annotations_menu = bar.addMenu("A&nnotations")
        self.annotations.populate_menu(annotations_menu)
        help_menu = bar.addMenu("&Help")
        help_menu.addAction(self.controls_action)

    def _build_toolbar(self) -> None:
        toolbar = QToolBar("Navigation", self)
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
        self.addToolBar(toolbar)

    def _build_status_bar(self) -> None:
        status = self.statusBar()
        self.cursor_label = QLabel()
        self.magnification_label = QLabel()
        self.zoom_label = QLabel()
        for label in (self.cursor_label, self.magnification_label, self.zoom_label):
            label.setMinimumWidth(90)
            status.addPermanentWidget(label)
        self.cursor_label.setMinimumWidth(330)
        status.showMessage("Open a slide: File > Open, drag a file here, or `slidelens SLIDE`")

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
        self.analysis.slide_opened(opened)
        self.canvas.set_slide(opened.source, opened.thumbnail)
        self.overview.set_thumbnail(opened.thumbnail)
        self._place_overview()
        if previous is not None:
            self.bridge.release_source(previous.source)
        self.settings.add_recent(opened.path)
        save_settings(self.settings)
        self.setWindowTitle(f"{opened.path.name} — SlideLens")
        self.annotations.slide_opened(opened)
        self.exports.set_slide(opened)
        self.explain.set_slide(opened)
        info = opened.source.info
        mpp = f"{info.mpp:.3f} µm/px" if info.mpp else "no pixel size (measurements in px)"
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
        self.bridge.release_source(self.current.source)
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

    def _fill_recent_menu(self) -> None:
        self.recent_menu.clear()
        if not self.settings.recent_files:
            self.recent_menu.addAction("(none)").setEnabled(False)
        for path in self.settings.recent_files:
            action = self.recent_menu.addAction(Path(path).name)
            action.setToolTip(path)
            action.triggered.connect(lambda _=False, p=path: self.open_path(p))

    # -- view -------------------------------------------------------------------------
    def set_magnification(self, magnification: float) -> None:
        if self.current is None:
            return
        info = self.current.source.info
        scale = scale_for_magnification(magnification, info.mpp, info.objective_power)
        if scale is None:
            self.statusBar().showMessage(
                "This slide states neither pixel size nor objective power; use 1:1 instead", 6000
            )
            return
        self.canvas.viewport.set_scale(scale)

    def _toggle_overview(self) -> None:
        self._place_overview()

    def _toggle_scale_bar(self) -> None:
        self.canvas.show_scale_bar = self.scale_bar_action.isChecked()
        self.canvas.update()

    def _place_overview(self) -> None:
        visible = self.overview_action.isChecked() and self.overview.has_thumbnail()
        self.overview.setVisible(visible)
        if visible:
            pos = QPoint(
                self.canvas.width() - self.overview.width() - _OVERVIEW_MARGIN, _OVERVIEW_MARGIN
            )
            self.overview.move(pos)
            self.overview.raise_()

    def eventFilter(self, watched: object, event: object) -> bool:
        if watched is self.canvas and isinstance(event, QResizeEvent):
            QTimer.singleShot(0, self._place_overview)
        return False

    def _update_actions(self) -> None:
        has_slide = self.current is not None
        for action in (
            self.close_action,
            self.properties_action,
            self.fit_action,
            self.one_to_one_action,
            self.zoom_in_action,
            self.zoom_out_action,
            *self.magnification_actions,
        ):
            action.setEnabled(has_slide)
        if self.current is not None:
            info = self.current.source.info
            can_mag = bool(info.mpp or info.objective_power)
            for action in self.magnification_actions:
                action.setEnabled(can_mag)
                if not can_mag:
                    action.setToolTip("This slide states neither pixel size nor objective power")

    def _update_view_status(self) -> None:
        if self.current is None:
            self.magnification_label.setText("")
            self.zoom_label.setText("")
            return
        mag = self.canvas.magnification()
        self.magnification_label.setText(f"{mag:.1f}x" if mag is not None else "mag: n/a")
        self.zoom_label.setText(f"zoom {self.canvas.viewport.scale * 100:.3g}%")

    def _update_cursor_status(self, l0_x: float, l0_y: float) -> None:
        if self.current is None:
            return
        info = self.current.source.info
        l0_w, l0_h = info.dimensions
        if not (0 <= l0_x < l0_w and 0 <= l0_y < l0_h):
            self.cursor_label.setText("")
            return
        text = f"x {l0_x:,.0f}  y {l0_y:,.0f} px"
        if info.mpp:
            text += f"  ({l0_x * info.mpp:,.1f}, {l0_y * info.mpp:,.1f} µm)"
        self.cursor_label.setText(text)
        self.analysis.update_values(l0_x, l0_y)

    # -- dialogs ----------------------------------------------------------------------
    def show_properties(self) -> SlidePropertiesDialog | None:
        if self.current is None:
            return None
        dialog = SlidePropertiesDialog(self.current.source.info, self.current.associated, self)
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
            if self.settings.preload_models:
                self.analysis.warm_up()

    def closeEvent(self, event: QCloseEvent) -> None:
        name = self.current.path.name if self.current is not None else "this slide"
        if not self.annotations.confirm_close(name):
            event.ignore()
            return
        self.annotations.slide_closed()
        self.analysis.shutdown()
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
