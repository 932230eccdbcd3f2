"""The AI side of the main window: models and layers panels, the Analysis menu, model
runs, ground truth, tissue mask, and what the layers say under the cursor.

The main window tells this controller when a slide opens or closes; everything else
(docks, actions, worker messages) is wired here.  Closing a slide cancels what was
asked for it (model jobs, cache restores, ground truth and tissue masks being read).
A slide that states no pixel size runs models at the one the user typed for it
(asked once per slide, see :mod:`viewer.pixel_size`).  A model that is not for
diagnosis, or a slide outside a model's domain, is asked about once per slide and
model in a session (see :mod:`inference.models.domain`).  How result layers are shown
is remembered per slide (:mod:`viewer.layer_memory`) and so is the legend's corner.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, QTimer
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QLabel, QMainWindow, QMenu, QMessageBox

from inference.core.geometry import Rect
from viewer.export.corners import as_corner
from viewer.layer_memory import LayerSettingsStore
from viewer.layers.heatmap import HeatmapLayer
from viewer.pixel_size import SlidePixelSize
from viewer.qt import dialogs
from viewer.qt.actions import make_action
from viewer.qt.canvas.tools import RectangleTool
from viewer.qt.controllers.inference_jobs import InferenceJobs
from viewer.qt.controllers.job_bodies import JobSpec, Scope
from viewer.qt.controllers.layer_keeper import LayerSettingsKeeper
from viewer.qt.controllers.reference_layers import ReferenceLayers
from viewer.qt.controllers.result_files_export import ResultFilesExport
from viewer.qt.domain_questions import DomainQuestions
from viewer.qt.inference_worker import InferenceWorker
from viewer.qt.messages import show_warning
from viewer.qt.panels.job_status import JobStatus
from viewer.qt.panels.layers import LayersPanel
from viewer.qt.panels.metrics import MetricsPanel
from viewer.qt.panels.models import ModelsPanel
from viewer.qt.window_docks import add_dock, tabify_docks

if TYPE_CHECKING:
    from viewer.qt.canvas.slide_canvas import SlideCanvas
    from viewer.qt.controllers.slide_opener import OpenedSlide
    from viewer.settings import Settings

#: Values of at most this many visible layers are shown under the cursor.
MAX_HOVER_LAYERS = 2


class AnalysisController(QObject):
    """Owns the inference worker and everything that talks to it from the GUI."""

    def __init__(
        self,
        window: QMainWindow,
        canvas: SlideCanvas,
        settings: Settings,
        cache_folder: Path | None = None,
        pixel_size: SlidePixelSize | None = None,
    ) -> None:
        super().__init__(window)
        self.window = window
        self.canvas = canvas
        self.settings = settings
        self.pixel_size = pixel_size if pixel_size is not None else SlidePixelSize()
        self.opened: OpenedSlide | None = None
        self.worker = InferenceWorker(self)
        self.jobs = InferenceJobs(self.worker, canvas.layers, cache_folder, self)
        self.jobs.remembered = LayerSettingsStore()
        self.layer_keeper = LayerSettingsKeeper(canvas.layers, self.jobs.remembered, self)
        self.last_error: str | None = None
        self._message_box: QMessageBox | None = None
        #: Asked once per slide and model before a model runs outside its domain; shared
        #: with the Slide report's runs.
        self.domain_questions = DomainQuestions(window)
        canvas.legend_corner = as_corner(settings.legend_corner)
        canvas.legend_moved.connect(self._remember_legend_corner)

        self.models_panel = ModelsPanel(settings.model_folders)
        self.layers_panel = LayersPanel(canvas.layers)
        self.metrics_panel = MetricsPanel(canvas.layers)
        # scrollable, so a panel's contents never force the window to grow
        self.models_dock, self.layers_dock, self.metrics_dock = (
            add_dock(window, title, name, panel, scrollable=True, sides_only=True)
            for title, name, panel in (
                ("Models", "models-dock", self.models_panel),
                ("Layers", "layers-dock", self.layers_panel),
                ("Metrics", "metrics-dock", self.metrics_panel),
            )
        )
        tabify_docks(window, self.layers_dock, self.metrics_dock)
        self.references = ReferenceLayers(
            window, canvas.layers, lambda: self.opened, self.layers_panel.select, self._warn, self
        )
        self.job_status = JobStatus(self.jobs)
        self.values_label = QLabel()
        self.values_label.setObjectName("layer-values")
        window.statusBar().addPermanentWidget(self.values_label)
        window.statusBar().addPermanentWidget(self.job_status)
        # room for the progress bar from the start, so the canvas does not change size
        # (and the view does not jump) when a job starts or ends
        window.statusBar().setMinimumHeight(self.job_status.sizeHint().height() + 6)

        self.models_panel.run_requested.connect(self.run_model)
        self.models_panel.folder_added.connect(self._remember_folder)
        self.layers_panel.legend_toggled.connect(self._set_legend)
        self.jobs.failed.connect(self._on_job_failed)
        self.jobs.untrusted.connect(self._on_untrusted)
        self.jobs.layer_added.connect(self.layers_panel.select)
        self.jobs.device_info.connect(
            lambda info: self.models_panel.set_cuda_available(info["cuda"])
        )
        self.pixel_size.changed.connect(self._on_pixel_size_changed)
        self._build_actions()

    # -- actions ----------------------------------------------------------------------
    def _action(
        self, text: str, slot: Callable[..., object], icon: str | None = None, key: str = ""
    ) -> QAction:
        return make_action(self.window, text, slot, icon=icon, shortcut=key)

    def _build_actions(self) -> None:
        self.run_view_action = self._action(
            "Run model on &view", lambda: self.run_selected("view"), "fa5s.eye", "Ctrl+R"
        )
        self.run_region_action = self._action(
            "Run model on &region…", lambda: self.run_selected("region"), "fa5s.vector-square"
        )
        self.run_slide_action = self._action(
            "Run model on whole &slide",
            lambda: self.run_selected("slide"),
            "fa5s.layer-group",
            "Ctrl+Shift+R",
        )
        self.cancel_action = self._action(
            "&Cancel all model jobs", self.jobs.cancel_all, "fa5s.stop-circle"
        )
        self.truth_action = self._action(
            "Load &ground truth…", self.choose_truth, "fa5s.check-double", "Ctrl+G"
        )
        self.tissue_action = self._action("Show &tissue mask", self.show_tissue, "fa5s.leaf")
        # the chosen result as infer's files (CSV, QuPath GeoJSON, TIFF, slide report)
        self.result_files = ResultFilesExport(
            self.window, self.layers_panel.selected_layer, lambda: self.opened, self.pixel_size
        )
        self.legend_action = self._action("&Legend", self._toggle_legend, "fa5s.list")
        self.legend_action.setCheckable(True)
        self.legend_action.setChecked(True)

    def populate_menu(self, menu: QMenu) -> None:
        for action in (self.run_view_action, self.run_region_action, self.run_slide_action):
            menu.addAction(action)
        menu.addAction(self.cancel_action)
        menu.addSeparator()
        menu.addAction(self.truth_action)
        menu.addAction(self.tissue_action)
        menu.addAction(self.result_files.action)
        menu.addSeparator()
        menu.addAction(self.models_dock.toggleViewAction())
        menu.addAction(self.layers_dock.toggleViewAction())
        menu.addAction(self.metrics_dock.toggleViewAction())

    def view_actions(self) -> list[QAction]:
        return [self.legend_action]

    def _update_actions(self) -> None:
        has_slide = self.opened is not None
        for action in (
            self.run_view_action,
            self.run_region_action,
            self.run_slide_action,
            self.truth_action,
            self.tissue_action,
            self.result_files.action,
        ):
            action.setEnabled(has_slide)
        self.models_panel.set_slide_open(has_slide)

    def _toggle_legend(self) -> None:
        self._set_legend(self.legend_action.isChecked())

    def _set_legend(self, shown: bool) -> None:
        self.canvas.show_legend = shown
        self.legend_action.setChecked(shown)
        self.layers_panel.legend_check.setChecked(shown)
        self.canvas.update()

    # -- slide lifecycle --------------------------------------------------------------
    def slide_opened(self, opened: OpenedSlide) -> None:
        """A new slide replaced the old one: its jobs stop, its layers go, and the new
        slide's cached results come back."""
        self.slide_closed()
        self.opened = opened
        self.metrics_panel.set_slide(opened.source)
        self._on_pixel_size_changed()
        self.jobs.set_slide(opened.tag)
        self.layer_keeper.set_slide(opened.source.info.source_id, opened.path.name)
        self.jobs.restore_cached(opened.tag, opened.source)
        self._update_actions()

    def slide_closed(self) -> None:
        if self.canvas.tool is not None:
            self.canvas.set_tool(None)
        self.layer_keeper.set_slide(None)
        self.jobs.forget_slide()
        self.references.slide_closed()
        self.canvas.layers.clear()
        self.metrics_panel.set_slide(None)
        self.opened = None
        self.values_label.setText("")
        self._update_actions()

    def warm_up(self) -> None:
        """Load torch on the worker thread once the window is on screen."""
        QTimer.singleShot(0, self.jobs.warm_up)

    def shutdown(self) -> None:
        self.layer_keeper.set_slide(None)
        self.jobs.cancel_all()
        self.worker.stop()
        # a comparison or plot still running when Python exits aborts the process
        self.metrics_panel.set_slide(None)
        self.metrics_panel.background.wait(5.0)
        self.result_files.background.wait(10.0)

    # -- running models ---------------------------------------------------------------
    def run_selected(self, scope: str) -> int | None:
        folder = self.models_panel.selected_folder()
        entry = self.models_panel.selected_entry()
        if folder is None or entry is None or not entry.ok:
            self._warn("No model selected", "Choose a model in the Models panel first.")
            return None
        return self.run_model(folder, scope)

    def run_model(self, folder: Path, scope: str) -> int | None:
        """Queue ``folder``'s model on the open slide: ``view``, ``slide`` (the view first)
        or ``region`` (the user drags it first).  Returns the job id (``None`` when no job
        was queued yet: no slide, or a region still to be drawn)."""
        if self.opened is None:
            return None
        if scope == "region":
            self.canvas.set_tool(
                RectangleTool(
                    "region",
                    lambda rect: self._submit(folder, "region", rect),
                    status_hint="Drag a rectangle for the model to compute (Esc cancels)",
                )
            )
            self.window.statusBar().showMessage(
                "Drag a rectangle on the slide for the model (Esc cancels)", 8000
            )
            return None
        return self._submit(folder, "slide" if scope == "slide" else "view", self.visible_l0_rect())

    def visible_l0_rect(self) -> Rect:
        viewport = self.canvas.viewport
        scr_w, scr_h = viewport.scr_size
        l0_w, l0_h = viewport.l0_size
        view = viewport.transform().scr_rect_to_l0(Rect(0, 0, scr_w, scr_h))
        return view.intersect(Rect(0, 0, l0_w, l0_h))

    def _submit(
        self, folder: Path, scope: Scope, region: Rect | None, trust: bool = False
    ) -> int | None:
        if self.opened is None:
            return None
        info = self.opened.source.info
        mpp_override = None
        if info.mpp is None:  # asked once per slide, then remembered
            mpp_override = dialogs.require_slide_mpp(self.window, self.pixel_size)
            if mpp_override is None:
                return None
        if not self.domain_questions.accepted(folder, self.opened.source.info):
            return None
        spec = JobSpec(
            slide_path=self.opened.path,
            source_id=info.source_id,
            model_folder=folder,
            scope=scope,
            l0_region=region,
            device=self.models_panel.device,
            batch_size=self.models_panel.batch_size,
            mpp_override=mpp_override,
            trust=trust,
            opening=self.opened.opening,
        )
        return self.jobs.submit(spec)

    def _remember_legend_corner(self, corner: str) -> None:
        from viewer.settings import save_settings

        self.settings.legend_corner = as_corner(corner)
        save_settings(self.settings)

    def _on_pixel_size_changed(self, *_: object) -> None:
        """Metrics in µm² once the open slide has a pixel size (typed or changed)."""
        pixel_size = self.pixel_size
        opened = self.opened
        if opened is not None and pixel_size.info is opened.source.info:
            self.metrics_panel.set_mpp(pixel_size.mpp)

    def _on_untrusted(
        self, spec: JobSpec, path: str, sha256: str, message: str, kind: str = "torchscript"
    ) -> None:
        program = "torch.export program" if kind == "pt2" else "TorchScript model"
        answer = QMessageBox.question(
            self.window,
            f"Trust this {program}?",
            f"{message}\n\nRun it anyway? Only say yes if you trust where "
            f"{Path(path).name} came from.",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
            QMessageBox.StandardButton.No,
        )
        if answer == QMessageBox.StandardButton.Yes:
            from inference.models import TrustStore

            TrustStore().trust(sha256, Path(path))
            self._submit(spec.model_folder, spec.scope, spec.l0_region, trust=True)

    def _on_job_failed(self, _job_id: int, message: str) -> None:
        self._warn("Model run failed", message)

    def _remember_folder(self, folder: Path) -> None:
        text = str(folder)
        if text not in self.settings.model_folders:
            self.settings.model_folders.append(text)
            from viewer.settings import save_settings

            save_settings(self.settings)

    # -- ground truth and tissue ------------------------------------------------------
    def choose_truth(self) -> None:
        self.references.choose_truth()

    def load_truth(self, path: Path) -> None:
        """Read a mask image or GeoJSON off the GUI thread and add it as an outline layer."""
        self.references.load_truth(path)

    def show_tissue(self) -> None:
        """Show the tissue mask layer (computing it off the GUI thread when needed)."""
        self.references.show_tissue()

    # -- cursor -----------------------------------------------------------------------
    def update_values(self, l0_x: float, l0_y: float) -> None:
        """Show what the visible heatmaps say under the cursor, top layer first."""
        found: list[tuple[HeatmapLayer, str]] = []
        results: set[int] = set()  # layers of one result say the same: once is enough
        for layer in reversed(list(self.canvas.layers)):
            if not (isinstance(layer, HeatmapLayer) and layer.visible):
                continue
            if id(layer.result) in results:
                continue
            values = layer.values_at(l0_x, l0_y)
            if values is None:
                continue
            results.add(id(layer.result))
            found.append((layer, hover_text(values)))
            if len(found) == MAX_HOVER_LAYERS:
                break
        names = [layer.short_name for layer, _ in found]
        parts = [
            # two layers of one model are told apart by where they were computed
            f"{_hover_name(layer, names.count(name) > 1)}: {text}"
            for (layer, text), name in zip(found, names, strict=True)
        ]
        self.values_label.setText("  |  ".join(parts))

    # -- messages ---------------------------------------------------------------------
    def _warn(self, title: str, message: str) -> None:
        """A non-blocking warning (the app stays usable behind it)."""
        self.last_error = message
        self.window.statusBar().showMessage(title, 8000)
        self._message_box = show_warning(self.window, title, message)


def hover_text(values: dict[str, float]) -> str:
    """What a result says under the cursor: every class's probability, in the result's
    order for one or two classes, most likely first for more (the status bar may cut
    the end: the least likely go there)."""
    if len(values) <= 2:
        return ", ".join(f"{name} {value:.2f}" for name, value in values.items())
    ranked = sorted(values.items(), key=lambda item: -item[1])
    return " · ".join(f"{name} {value:.2f}" for name, value in ranked)


def _hover_name(layer: HeatmapLayer, ambiguous: bool) -> str:
    """A layer's name in the status bar: its short name, with its scope when another
    shown layer has the same short name."""
    scope = layer.provenance.get("scope")
    return f"{layer.short_name} ({scope})" if ambiguous and scope else layer.short_name
