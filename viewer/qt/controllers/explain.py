"""Explain a click: the Explain tool, its panel, and CAM requests on the inference worker.

A click explains the model patch under the cursor; a drag explains every tissue patch
of the rectangle, blended with one shared normalisation.  Requests run on the inference
worker at the highest priority: a running whole-slide job pauses between two batches to
let them through.  Slow methods (Score-CAM) report progress and can be cancelled.  The
result shows in the panel (patch, CAM, class scores, provenance) and becomes a layer
when pinned.

While the panel shows an explanation, the slide shows where it is: the patch or the
region outlined (dashed while it is being made).  Changing the method beside it
explains the same place again with the new second method.

Each click or drag is one request; what the worker sends back carries the slide and
the request it was made for, and only the open slide's latest request is shown.  A
slide that states no pixel size is explained at the one the user typed for it (asked
once per slide, see :mod:`viewer.pixel_size`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QMainWindow, QMenu

from inference.core.geometry import Rect
from viewer.layers.heatmap import HeatmapLayer
from viewer.pixel_size import SlidePixelSize
from viewer.qt import dialogs
from viewer.qt.canvas.marks import AreaMarks, Mark
from viewer.qt.canvas.tools import RectangleTool, reflect_tool
from viewer.qt.controllers.explain_tasks import (
    CAM_COLORMAP,
    CamProgress,
    CamTask,
    ExplainOutcome,
    ModelInfo,
    cam_layer,
    cam_task,
    model_info_task,
)
from viewer.qt.controllers.job_bodies import ModelPool
from viewer.qt.inference_worker import PRIORITY_EXPLAIN, InferenceWorker
from viewer.qt.panels.explain import ExplainPanel, describe_cam
from viewer.qt.window_docks import add_dock

if TYPE_CHECKING:
    from inference.explain.requests import CamResult
    from viewer.qt.canvas.slide_canvas import SlideCanvas
    from viewer.qt.controllers.slide_opener import OpenedSlide
    from viewer.qt.panels.models import ModelsPanel

#: The panel's hint before anything went wrong.
HINT = "Click a spot or drag a region on the slide."


@dataclass(frozen=True)
class _Asked:
    """Where and with what the latest click or drag asked for an explanation (a new
    second method explains the same again)."""

    folder: Path
    point: tuple[float, float] | None
    region: Rect | None
    target: str | None
    layer: str | None


def explained_area(cam: CamResult) -> Rect:
    """The level-0 rectangle an explanation is of: its patch, or the region asked for
    (clipped to the slide)."""
    region = cam.provenance.get("geometry", {}).get("region")
    if cam.provenance.get("kind") == "region" and isinstance(region, list | tuple):
        return Rect(*(float(v) for v in region))
    x, y, w, h = (float(v) for v in cam.patch_l0_rects[0])
    return Rect(x, y, w, h)


class ExplainController(QObject):
    """Owns the Explain panel and tool; sends requests to the worker; pins results.

    ``cam_ready(outcome)`` fires when an explanation arrives; ``failed(message)`` when
    one cannot be made (the message names the model, method or region and the cause).
    """

    cam_ready = Signal(object)
    failed = Signal(str)

    def __init__(
        self,
        window: QMainWindow,
        canvas: SlideCanvas,
        worker: InferenceWorker,
        pool: ModelPool,
        models_panel: ModelsPanel,
        pixel_size: SlidePixelSize | None = None,
    ) -> None:
        super().__init__(window)
        self.window = window
        self.canvas = canvas
        self.worker = worker
        self.pool = pool
        self.models_panel = models_panel
        self.pixel_size = pixel_size if pixel_size is not None else SlidePixelSize()
        self.opened: OpenedSlide | None = None
        #: The latest click or drag; what the worker sends for an older one is dropped.
        self.request_id = 0
        self.info: ModelInfo | None = None
        self.outcomes: dict[int, ExplainOutcome] = {}
        self.last_error: str | None = None
        self._tasks: dict[int, str] = {}  # task id -> "info" | "cam:<slot>:<request>"
        #: The task whose results each panel view shows now (a re-run replaces one).
        self._slot_tasks: dict[int, int] = {}
        self._asked: _Asked | None = None
        #: The explained patch or region, outlined on the slide while the panel shows it.
        self.marks = AreaMarks(canvas)
        canvas.overlay_painters.append(self.marks)
        self._pinned: list[HeatmapLayer] = []
        self.panel = ExplainPanel()
        # scrollable: its tab group shares the dock column with the layers panel
        self.dock = add_dock(window, "Explain", "explain-dock", self.panel, scrollable=True)
        self.panel.tool_toggled.connect(self._tool_toggled)
        self.panel.model_chosen.connect(self._load_info_if_shown)
        self.panel.cancel_requested.connect(self.cancel)
        self.panel.pin_requested.connect(self.pin)
        self.panel.beside_combo.currentIndexChanged.connect(lambda _i: self._beside_changed())
        models_panel.list.currentItemChanged.connect(lambda *_: self._follow_models_panel())
        models_panel.folder_added.connect(lambda _folder: self._fill_models())
        canvas.tool_changed.connect(self._on_tool_changed)
        worker.partial.connect(self._on_partial)
        worker.finished.connect(self._on_finished)
        worker.failed.connect(self._on_failed)
        self.action = QAction("E&xplain (click or drag on the slide)", window)
        self.action.setShortcut(QKeySequence("X"))
        self.action.setCheckable(True)
        self.action.triggered.connect(lambda checked: self.panel.tool_button.setChecked(checked))
        self._fill_models()

    def populate_menu(self, menu: QMenu) -> None:
        menu.addAction(self.action)
        menu.addAction(self.dock.toggleViewAction())

    # -- models -----------------------------------------------------------------------
    def _fill_models(self) -> None:
        entries = [
            (entry.name, entry.folder)
            for entry in self.models_panel.entries()
            if entry.card is not None
        ]
        self.panel.set_models(entries, self.models_panel.selected_folder())
        self._load_info_if_shown()

    def _load_info_if_shown(self, *_: object) -> None:
        """Ask for the chosen model's methods, classes and layers, but only once the panel
        is on screen: loading a model imports torch, which is not free while panning."""
        folder = self.panel.model_combo.currentData()
        if (
            folder
            and self.dock.isVisible()
            and (self.info is None or str(self.info.folder) != folder)
        ):
            self.load_model_info(folder)

    def _follow_models_panel(self) -> None:
        folder = self.models_panel.selected_folder()
        index = self.panel.model_combo.findData(str(folder))
        if index < 0:
            self._fill_models()
        elif index != self.panel.model_combo.currentIndex():
            self.panel.model_combo.setCurrentIndex(index)

    @property
    def model_folder(self) -> Path | None:
        folder = self.panel.model_combo.currentData()
        return Path(folder) if folder else None

    def load_model_info(self, folder: object) -> None:
        """Ask the worker which methods, classes and layers the model has."""
        if not folder:
            return
        task = model_info_task(self.pool, Path(str(folder)), self.models_panel.device)
        task_id = self.worker.submit(task, priority=PRIORITY_EXPLAIN, label="model details")
        self._tasks[task_id] = "info"

    # -- slide and tool ---------------------------------------------------------------
    def set_slide(self, opened: OpenedSlide | None) -> None:
        """Another slide (or none): explanations asked for the old one are cancelled, and
        whatever they would still send is dropped."""
        self.cancel()
        if self.opened is not None:
            self.worker.cancel_slide(self.opened.tag)
        self.request_id += 1
        self.opened = opened
        self._pinned = []
        self._asked = None
        self._slot_tasks.clear()
        self.outcomes.clear()
        # nothing of the old slide stays: titles, images, errors, progress, outlines
        for view in self.panel.views:
            view.clear()
        self.panel.hint.setText(HINT)
        self.last_error = None
        self.marks.clear()
        self.panel.tool_button.setEnabled(opened is not None)
        self.action.setEnabled(opened is not None)

    def _tool_toggled(self, on: bool) -> None:
        if on:
            self._load_info_if_shown()
        if on and self.opened is not None:
            self.canvas.set_tool(
                RectangleTool(
                    "explain",
                    self.explain_region,
                    self.explain_point,
                    status_hint="Click a spot or drag a region to explain (Esc: stop)",
                    sticky=True,
                )
            )
            self.dock.raise_()
        elif not on and getattr(self.canvas.tool, "name", "") == "explain":
            self.canvas.set_tool(None)

    def _on_tool_changed(self, tool: object) -> None:
        reflect_tool(tool, "explain", self.panel.tool_button, self.action)

    # -- requests ---------------------------------------------------------------------
    def explain_point(self, l0_x: float, l0_y: float) -> list[int]:
        """Explain the model patch under a level-0 point (and the second method beside)."""
        return self._request(point=(l0_x, l0_y), region=None)

    def explain_region(self, l0_rect: Rect) -> list[int]:
        """Explain every tissue patch of a level-0 rectangle."""
        return self._request(point=None, region=l0_rect)

    def _request(self, point: tuple[float, float] | None, region: Rect | None) -> list[int]:
        folder = self.model_folder
        if self.opened is None or folder is None:
            self._fail("Choose a model in the Explain panel first.")
            return []
        self.cancel()
        self.request_id += 1
        self.outcomes.clear()
        self._slot_tasks.clear()
        self.panel.hint.setText(HINT)
        asked = _Asked(folder, point, region, self.panel.target, self.panel.layer)
        self._asked = asked
        methods = [self.panel.method]
        if self.panel.beside and self.panel.beside != self.panel.method:
            methods.append(self.panel.beside)
        ids = []
        for slot, view in enumerate(self.panel.views):
            view.clear("Working…" if slot < len(methods) else "")
        where = region if region is not None else Rect(*(point or (0.0, 0.0)), 0.0, 0.0)
        self.marks.show(Mark(where, pending=True))
        for slot, method in enumerate(methods):
            task_id = self._submit(folder, method, slot, point, region, asked)
            if task_id < 0:
                for view in self.panel.views:
                    view.clear("")
                self._asked = None
                self.marks.clear()
                return []
            ids.append(task_id)
        return ids

    def _beside_changed(self) -> None:
        """The second method changed: explain the latest click or drag with it (and
        nothing beside, for "(none)"); the first explanation stays."""
        asked = self._asked
        if asked is None or self.opened is None:
            return
        for task_id, kind in list(self._tasks.items()):
            if kind.startswith("cam:1:"):
                self.worker.cancel(task_id)
        self._slot_tasks.pop(1, None)
        self.outcomes.pop(1, None)
        view = self.panel.views[1]
        beside = self.panel.beside
        if beside is None or beside == self.panel.method:
            view.clear("")
            return
        view.clear("Working…")
        if self._submit(asked.folder, beside, 1, asked.point, asked.region, asked) < 0:
            view.clear("")

    def _submit(
        self,
        folder: Path,
        method: str,
        slot: int,
        point: tuple[float, float] | None,
        region: Rect | None,
        asked: _Asked,
    ) -> int:
        assert self.opened is not None
        from inference.explain.requests import CamRequest

        source = self.opened.source
        request = CamRequest(method=method, target=asked.target, layer=asked.layer)
        where = (
            f"patch at ({point[0]:,.0f}, {point[1]:,.0f})"
            if point is not None
            else f"region {region.w:,.0f} x {region.h:,.0f} px"  # type: ignore[union-attr]
        )
        mpp_override = None
        if source.info.mpp is None:  # asked once per slide, then remembered
            mpp_override = dialogs.require_slide_mpp(self.window, self.pixel_size)
            if mpp_override is None:
                return -1
        task = CamTask(
            slide=self.opened.tag,
            request_id=self.request_id,
            source=source,
            folder=folder,
            device=self.models_panel.device,
            request=request,
            point=point,
            region=region,
            mpp_override=mpp_override,
            where=where,
            slot=slot,
        )
        task_id = self.worker.submit(
            cam_task(self.pool, task),
            priority=PRIORITY_EXPLAIN,
            label=f"explain ({method})",
            slide=task.slide,
        )
        self._tasks[task_id] = f"cam:{slot}:{self.request_id}"
        self._slot_tasks[slot] = task_id
        return task_id

    def cancel(self) -> None:
        for task_id, kind in list(self._tasks.items()):
            if kind.startswith("cam"):
                self.worker.cancel(task_id)
        self.panel.hide_progress()

    # -- worker messages --------------------------------------------------------------
    def _on_partial(self, task_id: int, payload: object) -> None:
        kind = self._tasks.get(task_id)
        if kind is None:
            return
        if isinstance(payload, ModelInfo):
            self.info = payload
            self.panel.set_methods(payload.methods)
            self.panel.set_classes(payload.class_names)
            self.panel.set_layers(payload.layers, payload.default_layer)
        elif (
            not isinstance(payload, CamProgress | ExplainOutcome)
            or not self._wanted(payload)
            or self._slot_tasks.get(payload.slot) != task_id
        ):
            return  # for a slide closed since, an earlier click, or a replaced method
        elif isinstance(payload, CamProgress):
            self.panel.show_progress(payload.done, payload.total, payload.patches)
        elif isinstance(payload, ExplainOutcome):
            self.outcomes[payload.slot] = payload
            cam = payload.cam
            view = self.panel.views[payload.slot]
            view.setTitle(f"{cam.provenance.get('method_label', 'CAM')}: {payload.where}")
            view.show_result(
                payload.patch_rgb,
                payload.overlay_rgb,
                describe_cam(dict(cam.provenance), dict(cam.scores)),
                vmax=cam.vmax,
                colormap=CAM_COLORMAP,
            )
            self.marks.show(Mark(explained_area(cam)))
            self.cam_ready.emit(payload)

    def _wanted(self, payload: object) -> bool:
        """Whether a CAM payload is for the open slide's latest request."""
        if not isinstance(payload, CamProgress | ExplainOutcome) or self.opened is None:
            return False
        return payload.slide == self.opened.tag and payload.request_id == self.request_id

    def _current_cam(self, kind: str | None) -> int | None:
        """The panel slot of a CAM task of the latest request (``None`` for any other)."""
        if kind is None or not kind.startswith("cam"):
            return None
        _cam, slot, request = kind.split(":")
        return int(slot) if int(request) == self.request_id else None

    def _on_finished(self, task_id: int, cancelled: bool) -> None:
        kind = self._tasks.pop(task_id, None)
        if kind is not None and not any(k.startswith("cam") for k in self._tasks.values()):
            self.panel.hide_progress()
        slot = self._current_cam(kind)
        if slot is not None and cancelled and self._slot_tasks.get(slot) == task_id:
            self.panel.views[slot].clear("Cancelled.")
            self._forget_slot(slot)

    def _on_failed(self, task_id: int, message: str) -> None:
        kind = self._tasks.pop(task_id, None)
        if kind is None:
            return
        slot = self._current_cam(kind)
        if kind.startswith("cam") and slot is None:
            return  # an earlier click's, or a closed slide's: no longer asked for
        self.panel.hide_progress()
        if slot is not None and self._slot_tasks.get(slot) == task_id:
            self.panel.views[slot].clear("")
            self._forget_slot(slot)
        self._fail(message)

    def _forget_slot(self, slot: int) -> None:
        """A view's explanation failed or was cancelled: no outline for it any more."""
        self._slot_tasks.pop(slot, None)
        self.outcomes.pop(slot, None)
        if not self._slot_tasks and not self.outcomes:
            self.marks.clear()

    def _fail(self, message: str) -> None:
        self.last_error = message
        self.panel.hint.setText(message)
        self.window.statusBar().showMessage(message, 8000)
        self.failed.emit(message)

    # -- pinning ----------------------------------------------------------------------
    def pin(self, slot: int = 0) -> HeatmapLayer | None:
        """Put an explanation on the slide as a layer (with its provenance)."""
        outcome = self.outcomes.get(slot)
        if outcome is None:
            return None
        layer = cam_layer(outcome)
        self.canvas.layers.add(layer)
        self._pinned.append(layer)
        return layer
