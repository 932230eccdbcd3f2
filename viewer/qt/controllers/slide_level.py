"""Slide-level predictions in the window: the Slide report panel, the attention layer, and
"find regions like this one".

**Run** (the panel's button or Analysis > Slide-level prediction): a task on the
inference worker (:mod:`viewer.qt.controllers.slide_level_tasks`) answers the open
slide with the chosen slide-level model; progress shows in the panel.  The answer
fills the panel (label, probabilities, aggregation, a gallery of the top patches; a
click on one centres the view on it) and its per-patch maps become an
:class:`~viewer.layers.scores.AttentionLayer` (one class per branch: per-class
attention for CLAM-MB), shown as rank percentiles or raw values as the panel says.

**Find regions like this one** (the panel's tool button, or ``K``): a click on the
slide searches the stored embeddings of the answer's result
(:class:`~inference.slide_level.search.PatchSearch`, built once per answer) for the
ten most similar patches, off the GUI thread (:class:`~viewer.qt.background.BackgroundCalls`);
the similarity of every patch becomes a :class:`~viewer.layers.scores.SimilarityLayer`
(replaced by the next click), the places and the clicked patch outline layers, and the
places a list in the panel.

Every payload carries the slide and the request it was made for; another slide's, or
an earlier request's, is dropped.  Opening another slide cancels what was asked for
the old one and clears the panel.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QMainWindow, QMenu

from inference.core.geometry import Rect
from inference.models.domain import warning_of
from viewer.layers.masks import PolygonLayer
from viewer.layers.scores import AttentionLayer, ScoreGrid, SimilarityLayer
from viewer.pixel_size import SlidePixelSize
from viewer.qt import dialogs
from viewer.qt.background import BackgroundCalls
from viewer.qt.canvas.tools import RectangleTool, reflect_tool
from viewer.qt.controllers.job_bodies import ModelPool
from viewer.qt.controllers.slide_level_tasks import (
    SlideLevelOutcome,
    SlideLevelProgress,
    SlideLevelTask,
    slide_level_task,
)
from viewer.qt.domain_questions import DomainQuestions
from viewer.qt.inference_worker import PRIORITY_SLIDE, InferenceWorker
from viewer.qt.panels.slide_report import SlideReportPanel
from viewer.qt.window_docks import add_dock

if TYPE_CHECKING:
    from inference.slide_level.search import PatchSearch, SimilarPlaces
    from viewer.qt.canvas.slide_canvas import SlideCanvas
    from viewer.qt.controllers.slide_opener import OpenedSlide
    from viewer.qt.panels.models import ModelsPanel

#: The similar places' outline colour, and the clicked patch's.
PLACES_COLOUR = (0, 220, 255)
QUERY_COLOUR = (255, 214, 0)
#: How many similar places a click lists.
TOP_PLACES = 10


def slide_level_models(models_panel: ModelsPanel | None = None) -> list[tuple[str, Path]]:
    """``(label, folder)`` of every slide-level model: slide-level heads, then patch
    models whose card declares an aggregation."""
    from inference.models.registry import list_slide_heads
    from inference.slide_level.head_card import SlideHeadError, load_head_card

    found: list[tuple[str, Path]] = []
    for folder in list_slide_heads():
        try:
            card = load_head_card(folder)
        except SlideHeadError:
            continue
        found.append((f"{folder.name} ({card.type} over {card.feature_extractor})", folder))
    entries = models_panel.entries() if models_panel is not None else []
    for entry in entries:
        if entry.card is not None and entry.card.aggregation:
            kind = entry.card.aggregation.get("type", "?")
            found.append((f"{entry.name} ({kind} of its patch outputs)", entry.folder))
    return found


class SlideLevelController(QObject):
    """Owns the Slide report panel, its tasks and layers (see the module docstring).

    ``answered(outcome)`` fires when an answer is shown, ``similar_found(places)`` when
    a search's places are, ``failed(message)`` when either cannot be made.
    """

    answered = Signal(object)
    similar_found = Signal(object)
    failed = Signal(str)

    def __init__(
        self,
        window: QMainWindow,
        canvas: SlideCanvas,
        worker: InferenceWorker,
        pool: ModelPool,
        models_panel: ModelsPanel | None = None,
        pixel_size: SlidePixelSize | None = None,
        cache_folder: Path | None = None,
        domain_questions: DomainQuestions | None = None,
    ) -> None:
        super().__init__(window)
        self.window = window
        self.canvas = canvas
        self.worker = worker
        self.pool = pool
        self.models_panel = models_panel
        self.pixel_size = pixel_size if pixel_size is not None else SlidePixelSize()
        self.cache_folder = cache_folder
        self.opened: OpenedSlide | None = None
        self.request_id = 0
        self.outcome: SlideLevelOutcome | None = None
        self.search: PatchSearch | None = None
        self.places: SimilarPlaces | None = None
        self.attention_layer: AttentionLayer | None = None
        self.similarity_layer: SimilarityLayer | None = None
        self.places_layer: PolygonLayer | None = None
        self.query_layer: PolygonLayer | None = None
        self.last_error: str | None = None
        self._tasks: set[int] = set()
        #: Asked once per slide and model before a model runs outside its domain (the
        #: window's, shared with the Models panel's runs).
        self.domain_questions = domain_questions or DomainQuestions(window)
        self._search_call: int | None = None
        self.calls = BackgroundCalls(self)
        self.panel = SlideReportPanel()
        self.dock = add_dock(
            window, "Slide report", "slide-report-dock", self.panel, scrollable=True
        )
        self.panel.run_requested.connect(lambda: self.run())
        self.panel.scaling_changed.connect(self._scaling_changed)
        self.panel.go_to.connect(self.go_to)
        self.panel.similar_toggled.connect(self._tool_toggled)
        canvas.tool_changed.connect(self._on_tool_changed)
        worker.partial.connect(self._on_partial)
        worker.finished.connect(self._on_finished)
        worker.failed.connect(self._on_failed)
        self.run_action = QAction("Slide-level &prediction (whole slide)", window)
        self.run_action.triggered.connect(lambda: self.run())
        self.similar_action = QAction("Find regions &like this one (click a patch)", window)
        self.similar_action.setShortcut(QKeySequence("K"))
        self.similar_action.setCheckable(True)
        self.similar_action.triggered.connect(self.panel.similar_button.setChecked)
        if models_panel is not None:
            models_panel.folder_added.connect(lambda _folder: self.fill_models())
        self.fill_models()
        self.set_slide(None)

    def populate_menu(self, menu: QMenu) -> None:
        menu.addAction(self.run_action)
        menu.addAction(self.similar_action)
        menu.addAction(self.dock.toggleViewAction())

    def fill_models(self) -> None:
        self.panel.set_models(slide_level_models(self.models_panel))

    # -- slide ---------------------------------------------------------------------------
    def set_slide(self, opened: OpenedSlide | None) -> None:
        """Another slide (or none): its tasks are cancelled, the panel and layers cleared."""
        if self.opened is not None:
            self.worker.cancel_slide(self.opened.tag)
        for task_id in list(self._tasks):
            self.worker.cancel(task_id)
        self.calls.forget_pending()
        self.request_id += 1
        self.opened = opened
        self.outcome = self.search = self.places = None
        self.attention_layer = self.similarity_layer = None
        self.places_layer = self.query_layer = None
        self.panel.clear()
        self.panel.similar_button.setChecked(False)
        self.panel.similar_button.setEnabled(False)
        self.panel.run_button.setEnabled(opened is not None and self.panel.model_folder is not None)
        self.run_action.setEnabled(opened is not None)
        self.similar_action.setEnabled(False)

    # -- running -----------------------------------------------------------------------
    def run(self, folder: Path | None = None) -> int:
        """Answer the open slide with ``folder`` (default: the panel's choice); returns
        the task id (-1 when nothing was asked)."""
        folder = folder or self.panel.model_folder
        if self.opened is None or folder is None:
            self._fail("Open a slide and choose a slide-level model first.")
            return -1
        source = self.opened.source
        if not self.domain_questions.accepted(Path(folder), self.opened.source.info):
            return -1
        mpp_override = None
        if source.info.mpp is None:  # asked once per slide, then remembered
            mpp_override = dialogs.require_slide_mpp(self.window, self.pixel_size)
            if mpp_override is None:
                return -1
        self.request_id += 1
        task = SlideLevelTask(
            slide=self.opened.tag,
            request_id=self.request_id,
            slide_path=self.opened.path,
            source=source,
            folder=Path(folder),
            device=self.models_panel.device if self.models_panel is not None else None,
            mpp_override=mpp_override,
            cache_folder=self.cache_folder,
        )
        task_id = self.worker.submit(
            slide_level_task(self.pool, task, self.worker.run_urgent),
            priority=PRIORITY_SLIDE,
            label=f"slide-level prediction ({Path(folder).name})",
            slide=task.slide,
        )
        self._tasks.add(task_id)
        self.panel.clear("Working…")
        self.panel.hint.setText(f"Running {Path(folder).name} on the whole slide…")
        self.dock.raise_()
        return task_id

    def _wanted(self, payload: object) -> bool:
        if self.opened is None or not isinstance(payload, SlideLevelProgress | SlideLevelOutcome):
            return False
        return payload.slide == self.opened.tag and payload.request_id == self.request_id

    def _on_partial(self, task_id: int, payload: object) -> None:
        if task_id not in self._tasks or not self._wanted(payload):
            return
        if isinstance(payload, SlideLevelProgress):
            self.panel.show_progress(payload.done, payload.total)
        elif isinstance(payload, SlideLevelOutcome):
            self._show(payload)

    def _on_finished(self, task_id: int, cancelled: bool) -> None:
        if task_id in self._tasks:
            self._tasks.discard(task_id)
            self.panel.hide_progress()
            if cancelled and self.outcome is None:
                self.panel.clear("Cancelled.")

    def _on_failed(self, task_id: int, message: str) -> None:
        if task_id not in self._tasks:
            return
        self._tasks.discard(task_id)
        self.panel.hide_progress()
        self.panel.clear("No answer.")
        self._fail(message)

    def _fail(self, message: str) -> None:
        self.last_error = message
        self.panel.hint.setText(message)
        self.window.statusBar().showMessage(message, 8000)
        self.failed.emit(message)

    # -- showing -------------------------------------------------------------------------
    def _show(self, outcome: SlideLevelOutcome) -> None:
        self.outcome = outcome
        answer, result = outcome.answer, outcome.result
        warning = warning_of(outcome.provenance)
        self.panel.show_answer(
            answer.label,
            answer.probability,
            dict(zip(answer.class_names, map(float, answer.probabilities), strict=True)),
            answer.aggregation,
            warning,
        )
        source = "from the result cache" if outcome.from_cache else "computed now"
        self.panel.hint.setText(
            f"{answer.aggregation.get('name', '')}: {len(answer.p_ij):,} patches ({source})."
        )
        kind = answer.map_kind
        self.panel.show_gallery(
            [
                (item.rgb, item.l0_rect, f"{item.rank}. {kind} {item.value:.3g}")
                for item in outcome.gallery
            ]
        )
        grid = answer.map_grid(result.grid.p_rows, result.grid.p_cols)
        if grid is not None:
            self._replace_attention(grid, answer.map_names, kind, outcome.provenance, warning)
        self.search = None
        self.similar_action.setEnabled(False)
        if result.embeddings is not None and len(result.embeddings):
            self._build_search(outcome)
        self.answered.emit(outcome)

    def _replace_attention(
        self,
        grid: np.ndarray,
        names: tuple[str, ...],
        kind: str,
        provenance: dict[str, Any],
        warning: str,
    ) -> None:
        if self.attention_layer is not None and self.attention_layer in self.canvas.layers:
            self.canvas.layers.remove(self.attention_layer)
        assert self.outcome is not None
        scores = ScoreGrid(self.outcome.result.grid, grid, names, scaling=self._scaling())
        head = str(self.outcome.answer.aggregation.get("name", "slide-level"))
        layer = AttentionLayer(
            f"{head} {kind}",
            scores,
            value_label=kind if names != (kind,) else "",
            provenance={**provenance, "method": kind},
        )
        layer.warning = warning
        self.canvas.layers.add(layer)
        self.attention_layer = layer

    def _scaling(self) -> Any:
        return "percentile" if self.panel.scaling == "percentile" else "raw"

    def _scaling_changed(self, scaling: str) -> None:
        for layer in (self.attention_layer, self.similarity_layer):
            if layer is not None:
                layer.scaling = "percentile" if scaling == "percentile" else "raw"

    def go_to(self, l0_rect: tuple[float, ...]) -> None:
        """Centre the view on a level-0 rectangle, zoomed so that it is well seen."""
        x, y, w, h = (float(v) for v in l0_rect[:4])
        viewport = self.canvas.viewport
        scr_w, scr_h = viewport.scr_size
        view = viewport.transform().scr_rect_to_l0(Rect(0, 0, scr_w, scr_h))
        if w > 0.5 * view.w or h > 0.5 * view.h or w < 0.05 * view.w:
            # the patch a fifth of the view: its tissue and its surroundings both show
            viewport.set_scale(min(scr_w / max(1.0, 5 * w), scr_h / max(1.0, 5 * h)))
        viewport.center_on(x + w / 2, y + h / 2)

    # -- similarity ------------------------------------------------------------------------
    def _build_search(self, outcome: SlideLevelOutcome) -> None:
        from inference.slide_level.search import PatchSearch

        slide, request = outcome.slide, outcome.request_id

        def done(search: object) -> None:
            if self.opened is None or slide != self.opened.tag or request != self.request_id:
                return
            self.search = cast("PatchSearch", search)
            self.panel.similar_button.setEnabled(True)
            self.similar_action.setEnabled(True)

        self.calls.call(lambda: PatchSearch(outcome.result), done, self._fail, "slidelens-index")

    def _tool_toggled(self, on: bool) -> None:
        self.similar_action.setChecked(on)
        if on and self.opened is not None and self.search is not None:
            self.canvas.set_tool(
                RectangleTool(
                    "similar",
                    lambda rect: self.find_similar(rect.x + rect.w / 2, rect.y + rect.h / 2),
                    self.find_similar,
                    status_hint="Click a patch to find regions like it (Esc: stop)",
                    colour=None,
                    sticky=True,
                )
            )
            self.dock.raise_()
        elif not on and getattr(self.canvas.tool, "name", "") == "similar":
            self.canvas.set_tool(None)

    def _on_tool_changed(self, tool: object) -> None:
        reflect_tool(tool, "similar", self.panel.similar_button, self.similar_action)

    def find_similar(self, l0_x: float, l0_y: float) -> int:
        """Search for the places most like the patch at a level-0 point, off the GUI
        thread; returns the call's id (-1 when there is nothing to search)."""
        search, opened = self.search, self.opened
        if search is None or opened is None:
            self._fail("Run a slide-level model first: similarity search reads its embeddings.")
            return -1
        if self._search_call is not None:
            self.calls.forget(self._search_call)
        slide, request = opened.tag, self.request_id

        def done(found: object) -> None:
            if self.opened is None or slide != self.opened.tag or request != self.request_id:
                return
            self._show_places(cast("SimilarPlaces", found))

        self._search_call = self.calls.call(
            lambda: search.at(l0_x, l0_y, TOP_PLACES), done, self._fail, "slidelens-similar"
        )
        return self._search_call

    def _show_places(self, found: SimilarPlaces) -> None:
        assert self.outcome is not None
        self.places = found
        grid = self.outcome.result.grid
        layers = self.canvas.layers
        for old in (self.similarity_layer, self.places_layer, self.query_layer):
            if old is not None and old in layers:
                layers.remove(old)
        q = found.query
        scores = ScoreGrid(
            grid, found.similarity_grid, ("cosine similarity",), scaling=self._scaling()
        )
        provenance = {
            **self.outcome.provenance,
            "method": "cosine similarity of embeddings",
            "query_l0_rect": list(q.l0_rect),
        }
        self.similarity_layer = SimilarityLayer(
            f"Similar to ({q.l0_rect[0]:,.0f}, {q.l0_rect[1]:,.0f})",
            scores,
            colormap="viridis",
            provenance=provenance,
        )
        self.similarity_layer.warning = warning_of(self.outcome.provenance)
        layers.add(self.similarity_layer)
        rings = [_ring(p.l0_rect) for p in found.places]
        self.places_layer = PolygonLayer(
            f"{len(rings)} most similar places", rings, colour=PLACES_COLOUR, line_width=2.5
        )
        layers.add(self.places_layer)
        self.query_layer = PolygonLayer("Clicked patch", [_ring(q.l0_rect)], colour=QUERY_COLOUR)
        layers.add(self.query_layer)
        self.panel.show_similar(
            [
                (
                    p.l0_rect,
                    f"{p.rank}. similarity {p.similarity:.4f} at "
                    f"({p.l0_centre[0]:,.0f}, {p.l0_centre[1]:,.0f})",
                )
                for p in found.places
            ]
        )
        self.panel.hint.setText(
            f"{len(found.places)} places most like the patch at ({q.l0_rect[0]:,.0f}, "
            f"{q.l0_rect[1]:,.0f}), found in {found.seconds * 1000:.1f} ms."
        )
        self.similar_found.emit(found)


def _ring(rect: tuple[float, float, float, float]) -> np.ndarray:
    x, y, w, h = rect
    return np.array([[x, y], [x + w, y], [x + w, y + h], [x, y + h], [x, y]], np.float64)
