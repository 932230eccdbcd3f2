"""Projects in the window: File > New / Open project, the slide browser, paging, and
"Run on project".

Contract:

* A project (:class:`~viewer.projects.model.Project`) is made from a folder of slides
  (:meth:`ProjectController.new_project`) or opened from its file; it is saved to its
  file a moment after each change (and when closed), and remembered in the recent
  projects.  Its slides' facts and thumbnails are read on a background thread; each
  payload names the project (a token) and the slide, and is dropped when the project
  has changed since.
* The slide browser dock lists them; double-click or Enter opens a slide in the window;
  Page Up / Page Down open the previous / next slide in the browser's order, and the
  result layers of the next slide take the look of the last one
  (:class:`~viewer.projects.paging.LayerCarry`).
* "Run on project" runs the model selected in the Models panel on every slide through
  :class:`~viewer.qt.controllers.project_runs.ProjectRuns` (a Dask batch on a background
  thread, results in the project's results folder); each slide's status and progress
  show in the browser as they change, only for the run under way.  A slide that
  finishes while it is open shows its result at once (from the result cache).
* The pixel size typed for a slide of the project (:mod:`viewer.pixel_size`) is kept in
  the project and used for that slide in runs.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QFileDialog, QMainWindow, QMenu

from inference.batch.cluster import ClusterRequest
from inference.batch.inputs import BatchItem
from inference.batch.progress import format_duration
from inference.batch.runner import BatchOutcome, BatchRequest, BatchUpdate
from inference.batch.settings import SlideSettings
from viewer.projects.facts import SlideFacts, annotation_file, read_slide_facts, scanner_name
from viewer.projects.model import DONE, PROJECT_SUFFIX, Project
from viewer.projects.paging import LayerCarry
from viewer.projects.recent import RecentProjects
from viewer.projects.storage import ProjectFileError, load_project, save_project
from viewer.qt.actions import make_action
from viewer.qt.canvas.tile_bridge import rgb_to_qimage
from viewer.qt.controllers.project_runs import ProjectRuns
from viewer.qt.messages import show_warning
from viewer.qt.panels.slide_browser import ICON_SIDE, SlideBrowserPanel
from viewer.qt.window_docks import add_dock

if TYPE_CHECKING:
    from viewer.pixel_size import SlidePixelSize
    from viewer.qt.canvas.slide_canvas import SlideCanvas
    from viewer.qt.controllers.analysis import AnalysisController
    from viewer.qt.controllers.slide_opener import OpenedSlide, SlideOpener

log = logging.getLogger(__name__)

PROJECT_FILTER = f"SlideLens projects (*{PROJECT_SUFFIX});;All files (*)"
#: Milliseconds after the last change before the project file is written.
SAVE_DELAY_MS = 1000
#: Extra tries of a slide that fails in a run started from the viewer.
RUN_RETRIES = 1

_tokens = itertools.count(1)


class ProjectController(QObject):
    """The window's projects (see the module docstring)."""

    facts_ready = Signal(int, str, object)  # project token, slide name, SlideFacts

    def __init__(
        self,
        window: QMainWindow,
        canvas: SlideCanvas,
        opener: SlideOpener,
        analysis: AnalysisController,
        pixel_size: SlidePixelSize,
        open_path: Callable[[Path], None],
        current: Callable[[], OpenedSlide | None],
        recent: RecentProjects | None = None,
    ) -> None:
        super().__init__(window)
        self.window = window
        self.analysis = analysis
        self.pixel_size = pixel_size
        self.open_path = open_path
        self.current = current
        self.recent = recent if recent is not None else RecentProjects()
        self.project: Project | None = None
        self._token = 0
        self._facts_stop = threading.Event()
        self._facts_thread: threading.Thread | None = None
        #: How runs started here get their cluster (a local one, sized by the cores).
        self.cluster_request = ClusterRequest()
        self.runs = ProjectRuns(self)
        self.runs.update.connect(self._on_update)
        self.runs.finished.connect(self._on_finished)
        self.carry = LayerCarry(canvas.layers)
        self._paging_to: Path | None = None
        self.last_message = ""

        self.panel = SlideBrowserPanel()
        self.dock = add_dock(window, "Slides", "slides-dock", self.panel, sides_only=True)
        window.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, self.dock)
        self.dock.hide()
        self.panel.open_requested.connect(self.open_index)
        self.panel.run_requested.connect(self.run_on_project)
        self.panel.stop_requested.connect(self.stop_run)
        self.panel.add_requested.connect(self.choose_and_add_slides)

        self._save_timer = QTimer(self)
        self._save_timer.setSingleShot(True)
        self._save_timer.setInterval(SAVE_DELAY_MS)
        self._save_timer.timeout.connect(self.save_now)
        self.facts_ready.connect(self._on_facts)
        opener.opened.connect(self._on_slide_opened)
        pixel_size.changed.connect(self._on_pixel_size_changed)
        self._build_actions()

    # -- actions and menus ------------------------------------------------------------
    def _build_actions(self) -> None:
        window = self.window
        self.new_action = make_action(
            window, "&New project from folder…", self.choose_and_new, icon="fa5s.folder-plus"
        )
        self.open_action = make_action(
            window, "Open pro&ject…", self.choose_and_open, icon="fa5s.book-open"
        )
        self.close_action = make_action(window, "Close project", self.close_project)
        self.add_action = make_action(
            window, "Add slides to project…", self.choose_and_add_slides, icon="fa5s.plus"
        )
        self.run_action = make_action(
            window, "Run model on &project", self.run_on_project, icon="fa5s.play"
        )
        self.stop_action = make_action(window, "Stop the project run", self.stop_run)
        self.previous_action = make_action(window, "Previous slide in project", self.previous)
        self.previous_action.setShortcut(QKeySequence(Qt.Key.Key_PageUp))
        self.next_action = make_action(window, "Next slide in project", self.next)
        self.next_action.setShortcut(QKeySequence(Qt.Key.Key_PageDown))
        self._update_actions()

    def populate_file_menu(self, menu: QMenu, before: QAction | None = None) -> None:
        """Put the project items into the File menu (above ``before``, else at the end)."""
        self.recent_menu = QMenu("Open recent pro&ject", menu)
        self.recent_menu.aboutToShow.connect(self._fill_recent_menu)
        items: list[QAction | QMenu | None] = [
            None,
            self.new_action,
            self.open_action,
            self.recent_menu,
            self.add_action,
            self.run_action,
            self.stop_action,
            self.previous_action,
            self.next_action,
            self.close_action,
        ]
        for item in items:
            if item is None:
                item = QAction(menu)
                item.setSeparator(True)
            if isinstance(item, QMenu):
                item = item.menuAction()
            if before is not None:
                menu.insertAction(before, item)
            else:
                menu.addAction(item)
        toggle = self.dock.toggleViewAction()
        toggle.setText("Show the slide &browser")
        if before is not None:
            menu.insertAction(before, toggle)
        else:
            menu.addAction(toggle)

    def _fill_recent_menu(self) -> None:
        self.recent_menu.clear()
        if not self.recent.paths:
            self.recent_menu.addAction("(none)").setEnabled(False)
        for path in self.recent.paths:
            action = self.recent_menu.addAction(path.name.removesuffix(PROJECT_SUFFIX))
            action.setToolTip(str(path))
            action.triggered.connect(lambda _=False, p=path: self.open_project(p))

    def _update_actions(self) -> None:
        has_project = self.project is not None
        running = self.runs.running
        for action in (self.close_action, self.add_action, self.previous_action, self.next_action):
            action.setEnabled(has_project)
        self.run_action.setEnabled(has_project and not running)
        self.stop_action.setEnabled(running)
        self.panel.set_running(running)

    # -- projects ---------------------------------------------------------------------
    def choose_and_new(self) -> None:
        folder = QFileDialog.getExistingDirectory(self.window, "New project: the folder of slides")
        if not folder:
            return
        suggested = Path(folder) / f"{Path(folder).name}{PROJECT_SUFFIX}"
        path, _ = QFileDialog.getSaveFileName(
            self.window, "Save the project as", str(suggested), PROJECT_FILTER
        )
        if path:
            self.new_project(Path(folder), Path(path))

    def new_project(self, folder: Path, path: Path) -> Project | None:
        """Make a project of the slides below ``folder``, save it at ``path``, show it."""
        if not path.name.endswith(PROJECT_SUFFIX):
            path = path.with_name(path.name.removesuffix(".json") + PROJECT_SUFFIX)
        try:
            project = Project.from_folder(folder, path)
            save_project(project)
        except (OSError, ValueError) as exc:
            self._warn("Could not make the project", f"{path}: {exc}")
            return None
        self._set_project(project)
        self.window.statusBar().showMessage(
            f"Project {project.name}: {len(project)} slides from {folder}", 8000
        )
        return project

    def choose_and_open(self) -> None:
        start = str(self.recent.paths[0].parent) if self.recent.paths else ""
        path, _ = QFileDialog.getOpenFileName(self.window, "Open project", start, PROJECT_FILTER)
        if path:
            self.open_project(Path(path))

    def open_project(self, path: Path) -> bool:
        """Open the project file ``path`` (the open one is saved and closed first)."""
        try:
            project = load_project(path)
        except ProjectFileError as exc:
            self.recent.remove(path)
            self._warn("Could not open the project", str(exc))
            return False
        self._set_project(project)
        if project.load_problems:
            self.window.statusBar().showMessage(
                f"{path.name}: {len(project.load_problems)} entries skipped "
                f"({project.load_problems[0]})",
                10000,
            )
        return True

    def close_project(self) -> None:
        """Save and close the project (a run under way stops first)."""
        if self.runs.running:
            self.runs.stop()
            self.runs.wait(60.0)
        self._set_project(None)

    def _set_project(self, project: Project | None) -> None:
        if self.project is not None:
            self.save_now()
            self.project.changed.disconnect(self._schedule_save)
            self.project.slide_changed.disconnect(self._schedule_save)
        self._facts_stop.set()
        self.carry.drop()
        self.project = project
        self._token = next(_tokens)
        self.panel.set_project(project)
        if project is not None:
            project.changed.connect(self._schedule_save)
            project.changed.connect(self._read_facts)
            project.slide_changed.connect(self._schedule_save)
            if project.path is not None:
                self.recent.add(project.path)
            self.dock.setWindowTitle(f"Slides — {project.name}")
            self.dock.show()
            self.dock.raise_()
            self._read_facts()
            opened = self.current()
            if opened is not None:
                self._on_slide_opened(opened)
        else:
            self.dock.setWindowTitle("Slides")
            self.dock.hide()
        self._update_actions()

    def choose_and_add_slides(self) -> None:
        if self.project is None:
            return
        paths, _ = QFileDialog.getOpenFileNames(
            self.window, "Add slides to the project", "", "All files (*)"
        )
        self.add_slides([Path(p) for p in paths])

    def add_slides(self, paths: Sequence[Path]) -> list[int]:
        """Add slide files to the project; the indices of those added."""
        if self.project is None:
            return []
        return self.project.add_slides(paths)

    # -- saving -----------------------------------------------------------------------
    def _schedule_save(self, *_: object) -> None:
        if self.project is not None and self.project.dirty:
            self._save_timer.start()

    def save_now(self) -> None:
        """Write the project file now when it changed."""
        self._save_timer.stop()
        project = self.project
        if project is None or project.path is None or not project.dirty:
            return
        try:
            save_project(project)
        except OSError as exc:
            self.window.statusBar().showMessage(f"The project was not saved: {exc}", 10000)

    # -- slide facts, off the GUI thread ----------------------------------------------
    def _read_facts(self) -> None:
        project = self.project
        if project is None:
            return
        wanted = [(s.name, s.path) for s in project.slides]
        thumbs = self.panel.model.thumbnails
        todo = [(n, p) for n, p in wanted if n not in thumbs]
        if not todo:
            return
        self._facts_stop.set()
        stop = threading.Event()
        self._facts_stop = stop
        token = self._token

        def work() -> None:
            for name, path in todo:
                if stop.is_set():
                    return
                self.facts_ready.emit(token, name, read_slide_facts(path, ICON_SIDE * 2))

        self._facts_thread = threading.Thread(
            target=work, name="slidelens-project-facts", daemon=True
        )
        self._facts_thread.start()

    def wait_for_facts(self, timeout: float = 30.0) -> None:
        """Join the facts thread (for tests and shutdown)."""
        if self._facts_thread is not None:
            self._facts_thread.join(timeout)

    def _on_facts(self, token: int, name: str, facts: SlideFacts) -> None:
        project = self.project
        if token != self._token or project is None:
            return  # for a project closed since
        index = project.index_of(name)
        if index is None:
            return
        if facts.thumbnail is not None:
            image = rgb_to_qimage(facts.thumbnail).scaled(
                ICON_SIDE,
                ICON_SIDE,
                Qt.AspectRatioMode.KeepAspectRatio,
                Qt.TransformationMode.SmoothTransformation,
            )
            self.panel.model.set_thumbnail(name, image)
        if facts.error:
            project.update(index, facts_error=facts.error)
            return
        typed = self.pixel_size.store.get(facts.source_id) if not facts.mpp else None
        project.update(
            index,
            width=facts.width,
            height=facts.height,
            mpp=facts.mpp,
            scanner=facts.scanner,
            source_id=facts.source_id,
            facts_error="",
            typed_mpp=typed if typed is not None else project[index].typed_mpp,
            annotations=annotation_file(facts.source_id),
        )

    # -- opening and paging ------------------------------------------------------------
    def open_index(self, index: int) -> None:
        """Open the project's slide ``index`` in the window."""
        if self.project is None or not 0 <= index < len(self.project):
            return
        self.carry.drop()
        self._paging_to = None
        self.open_path(self.project[index].path)

    def previous(self) -> None:
        self.page(-1)

    def next(self) -> None:
        self.page(1)

    def page(self, step: int) -> int | None:
        """Open the slide ``step`` rows away in the browser's order, keeping the look of
        the result layers; the project index opened (``None``: no such slide)."""
        project = self.project
        if project is None:
            return None
        order = self.panel.shown_order()
        if not order:
            return None
        opened = self.current()
        here = project.index_of_path(opened.path) if opened is not None else None
        start = 0 if step > 0 else len(order) - 1  # from outside the list: its first
        position = order.index(here) + step if here in order else start
        if not 0 <= position < len(order):
            where = "last" if step > 0 else "first"
            self.window.statusBar().showMessage(f"This is the {where} slide of the project", 4000)
            return None
        index = order[position]
        self.carry.take()
        self._paging_to = project[index].path
        self.open_path(project[index].path)
        return index

    def _on_slide_opened(self, opened: OpenedSlide) -> None:
        if self.current() is not opened:
            return  # the window kept the slide that was open
        if self._paging_to is not None and opened.path != self._paging_to:
            self.carry.drop()  # opened some other way than paging
        self._paging_to = None
        project = self.project
        if project is None:
            return
        index = project.index_of_path(opened.path)
        if index is None:
            self.carry.drop()
            return
        info = opened.source.info
        width, height = info.dimensions
        project.update(
            index,
            width=int(width),
            height=int(height),
            mpp=info.mpp,
            scanner=scanner_name(info),
            source_id=info.source_id,
            facts_error="",
            typed_mpp=self.pixel_size.typed,
            annotations=annotation_file(info.source_id),
        )
        self.panel.select(index)

    def _on_pixel_size_changed(self, _mpp: object) -> None:
        """Keep the pixel size typed for the open slide in the project."""
        opened, project = self.current(), self.project
        if opened is None or project is None or self.pixel_size.info is not opened.source.info:
            return
        index = project.index_of_path(opened.path)
        if index is not None:
            project.update(index, typed_mpp=self.pixel_size.typed)

    # -- running ------------------------------------------------------------------------
    def run_on_project(self) -> str | None:
        """Run the Models panel's model on every slide; the run id (``None``: not run)."""
        project = self.project
        if project is None or self.runs.running:
            return None
        models = self.analysis.models_panel
        folder, entry = models.selected_folder(), models.selected_entry()
        if folder is None or entry is None or not entry.ok:
            self._warn("No model selected", "Choose a model in the Models panel first.")
            return None
        if len(project) == 0:
            return None
        self.save_now()
        items = [
            BatchItem.for_file(s.path, s.name, mpp=None if s.mpp else s.typed_mpp)
            for s in project.slides
        ]
        settings = SlideSettings(device=models.device or "auto", batch_size=models.batch_size)
        request = BatchRequest(
            items, project.results_folder, str(folder), settings, retries=RUN_RETRIES
        )
        project.model = str(folder)
        run_id = self.runs.start(request, self.cluster_request)
        self.panel.figures_label.setText(f"Starting workers for {len(items)} slides…")
        self._update_actions()
        return run_id

    def stop_run(self) -> None:
        if self.runs.running:
            self.runs.stop()
            self.panel.figures_label.setText("Stopping… finished slides stay done")

    def _on_update(self, update: BatchUpdate) -> None:
        if update.run_id != self.runs.run_id or self.project is None:
            return  # a run of another project, or one stopped since
        if update.kind in ("plan", "slide"):
            for state in update.states:
                index = self.project.apply_batch_state(state)
                if index is not None and state.status == DONE:
                    self._show_result_if_open(index)
        if update.kind in ("cluster", "note"):
            self.last_message = update.message
            self.window.statusBar().showMessage(update.message.replace("\n", "; "), 10000)
        figures = update.figures
        if figures.total:
            failed = f", {figures.failed} failed" if figures.failed else ""
            self.panel.figures_label.setText(
                f"{figures.done + figures.skipped} of {figures.total} slides done{failed} · "
                f"{figures.patches_per_s:.1f} patches/s · {format_duration(figures.eta_s)} left"
            )

    def _show_result_if_open(self, index: int) -> None:
        opened = self.current()
        if self.project is None or opened is None:
            return
        if self.project.index_of_path(opened.path) == index:
            self.analysis.jobs.restore_cached(opened.tag, opened.source)

    def _on_finished(self, run_id: str, outcome: BatchOutcome | None, message: str) -> None:
        if run_id != self.runs.run_id:
            return
        self._update_actions()
        if outcome is None:
            self.panel.figures_label.setText("The run could not start")
            self._warn("Could not run on the project", message)
            return
        figures = outcome.figures
        verb = "stopped" if outcome.interrupted else "finished"
        text = (
            f"Run {verb}: {figures.done} done, {figures.skipped} already done, "
            f"{figures.failed} failed, {figures.cancelled} not run"
        )
        self.panel.figures_label.setText(text)
        self.window.statusBar().showMessage(text, 10000)
        self.save_now()

    # -- closing ------------------------------------------------------------------------
    def shutdown(self) -> None:
        """Stop a run and the facts reader, and save the project (the window closes)."""
        self._facts_stop.set()
        if self.runs.running:
            self.runs.stop()
            self.runs.wait(60.0)
        self.save_now()

    def _warn(self, title: str, message: str) -> None:
        self.last_message = message
        show_warning(self.window, title, message)
