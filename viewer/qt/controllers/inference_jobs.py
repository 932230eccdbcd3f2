"""Runs models on the open slide through the inference worker and grows heatmap layers.

The GUI thread builds a :class:`JobSpec` and calls :meth:`InferenceJobs.submit`; the
body runs on the worker thread: it loads the model (kept loaded for the next job),
prepares the job, and either finds the finished result in the on-disk cache or runs the
engine, emitting one message per batch.  On the GUI thread each message is folded into
the job's own copy of the result and the layer recolours just what the batch touched,
so the heatmap grows while the pathologist keeps panning.  Finished results go to the
cache; reopening the slide restores them without running anything.

Every payload a task emits carries the :class:`SlideTag` of the slide it was made for;
:meth:`InferenceJobs.set_slide` names the slide on screen, and a payload for any other
(a slide closed meanwhile, or an earlier opening of this one) is dropped.  Closing a
slide cancels every task queued or running for it: model jobs and cache restores.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from PySide6.QtCore import QObject, Signal

from inference.core.eta import RemainingTime
from inference.core.geometry import Rect
from viewer.layer_memory import LayerSettingsStore, apply_settings, restore_index, result_identity
from viewer.layers.base import Layer, LayerStack
from viewer.layers.heatmap import HeatmapLayer
from viewer.layers.masks import MaskLayer, tissue_mask_layer
from viewer.qt.inference_worker import (
    PRIORITY_SLIDE,
    PRIORITY_VIEW,
    InferenceWorker,
    SlideTag,
)
from viewer.result_layers import domain_record, dress_layer, layer_clip, restored_domain

if TYPE_CHECKING:
    from inference.engine.job import BatchResult
    from inference.engine.patches import PatchGrid
    from inference.engine.tissue import TissueMask
    from inference.models import LoadedModel
    from inference.results.store import InferenceResult
    from inference.slides import SlideSource

log = logging.getLogger(__name__)

Scope = Literal["view", "region", "slide"]
SCOPE_LABELS: dict[str, str] = {
    "view": "current view",
    "region": "drawn region",
    "slide": "whole slide",
}
#: Cached results restored when a slide opens, at most this many.
MAX_RESTORED = 8


@dataclass(frozen=True)
class JobSpec:
    """One model run asked for by the user.

    ``l0_region``: the rectangle computed first (``view`` / ``slide``: the visible area;
    ``region``: the drawn one); only it is computed unless ``scope == "slide"``.
    ``opening``: which opening of the slide asked (see :class:`SlideTag`).
    ``mpp_override``: the pixel size the user typed for a slide that states none.
    """

    slide_path: Path
    source_id: str
    model_folder: Path
    scope: Scope
    l0_region: Rect | None
    device: str | None = None
    batch_size: int = 32
    mpp_override: float | None = None
    trust: bool = False
    opening: int = 0

    @property
    def slide(self) -> SlideTag:
        """The slide (and opening) this job's payloads are for."""
        return SlideTag(self.source_id, self.opening)

    @property
    def model_name(self) -> str:
        return self.model_folder.name

    @property
    def label(self) -> str:
        return f"{self.model_name} on the {SCOPE_LABELS[self.scope]}"


@dataclass(frozen=True)
class _Prepared:
    """What the GUI needs before the first batch: the grid and how results look."""

    slide: SlideTag
    grid: PatchGrid
    class_names: tuple[str, ...]
    task: str
    l0_per_px: float | None
    seg_tile_px: int | None
    total: int
    tissue: TissueMask | None
    model_sha256: str
    provenance: dict[str, Any]
    #: The slide's level-0 size, which a segmentation layer is clipped to.
    l0_slide_size: tuple[int, int] | None = None


@dataclass(frozen=True)
class _Cached:
    """A finished result found in the cache (for a job, or restored on opening), with
    what a segmentation layer is clipped to (the slide's size and tissue mask)."""

    slide: SlideTag
    result: InferenceResult
    provenance: dict[str, Any]
    tissue: TissueMask | None = None
    l0_slide_size: tuple[int, int] | None = None


@dataclass(frozen=True)
class _Untrusted:
    """The job's model is TorchScript the user has not trusted yet."""

    slide: SlideTag
    path: Path
    sha256: str
    message: str


@dataclass(frozen=True)
class _Batch:
    """One batch of a running job."""

    slide: SlideTag
    batch: BatchResult


#: What job and restore tasks emit; each says which slide it was made for.
SlidePayload = _Prepared | _Cached | _Untrusted | _Batch


@dataclass
class JobState:
    """A job as the GUI sees it."""

    job_id: int
    spec: JobSpec
    status: Literal["queued", "running", "done", "cancelled", "failed"] = "queued"
    done: int = 0
    total: int = 0
    started_at: float | None = None
    first_batch_at: float | None = None
    last_batch_at: float | None = None
    layer: HeatmapLayer | None = None
    result: InferenceResult | None = None
    from_cache: bool = False
    #: The time left, from the recent throughput (fed one update per batch).
    remaining: RemainingTime = field(default_factory=RemainingTime)

    def eta_s(self, now: float | None = None) -> float | None:
        """Seconds left as of ``now`` (``time.monotonic()``), counting down between
        batches; ``None`` until the estimate is stable (see :class:`RemainingTime`)."""
        return self.remaining.seconds_left(time.monotonic() if now is None else now)


class ModelPool:
    """Loaded models kept on the worker thread (one per folder, weights file and device).

    Only the worker thread touches it, so it needs no lock.
    """

    def __init__(self) -> None:
        self._models: dict[tuple[str, str, float], LoadedModel] = {}

    def get(self, folder: Path, device: str, trust: bool) -> LoadedModel:
        from inference.models import load_model
        from inference.models.loading import find_weights

        weights, _kind = find_weights(folder)
        key = (str(folder.resolve()), device, weights.stat().st_mtime)
        model = self._models.get(key)
        if model is None:
            model = load_model(folder, trust=trust, device=device)
            self._models = {k: v for k, v in self._models.items() if k[0] != key[0]}
            self._models[key] = model
        return model


def _provenance(spec: JobSpec, model: LoadedModel, params: dict[str, Any]) -> dict[str, Any]:
    import torch

    import inference

    typed = spec.mpp_override is not None
    return {
        "model": spec.model_name,
        "model_folder": str(spec.model_folder),
        "model_sha256": model.sha256,
        "architecture": model.card.architecture,
        "scope": spec.scope,
        "slide": str(spec.slide_path),
        "source_id": spec.source_id,
        # a slide that states no pixel size was run at the size the user typed
        "mpp_source": "typed" if typed else "slide",
        **({"typed_mpp": spec.mpp_override} if typed else {}),
        "params": params,
        "torch": torch.__version__,
        "slidelens": getattr(inference, "__version__", None) or _package_version(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }


def _package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("slidelens")
    except PackageNotFoundError:
        return "unknown"


def run_job_body(
    spec: JobSpec,
    pool: ModelPool,
    cancel: threading.Event,
    emit: Callable[[object], None],
    cache_folder: Path | None = None,
    between_batches: Callable[[], object] | None = None,
) -> None:
    """The worker-thread side of a job (see the module docstring).  Emits, in order:
    ``_Untrusted`` (and stops), or ``_Cached``, or ``_Prepared`` then ``_Batch``es, each
    tagged with ``spec.slide``.  ``between_batches`` runs after each batch (the
    worker's urgent tasks)."""
    from inference.engine.device import resolve_device
    from inference.engine.job import InferenceJob
    from inference.engine.prepare import prepare
    from inference.engine.runner import run_prepared
    from inference.models import UntrustedModelError
    from inference.results.cache import ResultCache
    from inference.results.store import new_result

    device = resolve_device(spec.device)
    try:
        model = pool.get(spec.model_folder, device, spec.trust)
    except UntrustedModelError as exc:
        emit(_Untrusted(spec.slide, exc.path or spec.model_folder, exc.sha256, str(exc)))
        return
    job = InferenceJob(
        slide=spec.slide_path,
        model=model,
        device=device,
        batch_size=spec.batch_size,
        region=spec.l0_region,
        only_region=spec.scope != "slide",
        mpp_override=spec.mpp_override,
    )
    cache = ResultCache(cache_folder)
    with prepare(job) as prepared:
        params = prepared.params()
        key = ResultCache.key(spec.source_id, model.sha256, params)
        provenance = _provenance(spec, model, params)
        # what the model was made for, against this slide (a warning on its layers)
        provenance["domain"] = domain_record(model.card, prepared.source.info.properties)
        provenance["cache_key"] = key  # the result's identity (remembered settings)
        size = prepared.source.info.dimensions
        cached = cache.load(key)
        if cached is not None:
            meta = {**provenance, **cached.meta, "domain": provenance["domain"]}
            meta["from_cache"] = True
            emit(_Cached(spec.slide, cached.result, meta, prepared.tissue, size))
            return
        emit(
            _Prepared(
                slide=spec.slide,
                grid=prepared.grid,
                class_names=prepared.class_names,
                task=prepared.task,
                l0_per_px=prepared.l0_per_px,
                seg_tile_px=prepared.seg_tile_px,
                total=len(prepared.order),
                tissue=prepared.tissue,
                model_sha256=model.sha256,
                provenance=provenance,
                l0_slide_size=size,
            )
        )
        result: InferenceResult | None = None
        for batch in run_prepared(prepared, cancel=cancel):
            if result is None:
                result = new_result(batch)
            result.add(batch)
            emit(_Batch(spec.slide, batch))
            if between_batches is not None:
                between_batches()
        if result is not None and not cancel.is_set():
            cache.save(key, result, {**provenance, "cache_key": key})


def restore_cached_body(
    slide: SlideTag,
    cache_folder: Path | None,
    emit: Callable[[object], None],
    cancel: threading.Event | None = None,
    source: SlideSource | None = None,
) -> None:
    """Worker-thread side of restoring a slide's cached results: emits ``_Cached`` (tagged
    with ``slide``) for each whole-slide result (newest per model), and for region
    results of models with no whole-slide result, newest first, at most
    :data:`MAX_RESTORED`; stops early once ``cancel`` is set.  With the slide's
    ``source``, each result's model is checked against the slide (its domain warning)
    and segmentation results get the slide's size and tissue mask for their clip."""
    from inference.results.cache import ResultCache

    cache = ResultCache(cache_folder)
    chosen: dict[tuple[str, str], tuple[str, dict[str, Any]]] = {}
    for key, meta in cache.entries_for(slide.source_id):
        model = str(meta.get("model_sha256", ""))
        scope = "slide" if meta.get("scope") == "slide" else "region"
        if (model, scope) not in chosen:
            chosen[(model, scope)] = (key, meta)
    picks = [
        pick
        for (model, scope), pick in chosen.items()
        if scope == "slide" or (model, "slide") not in chosen
    ]
    tissue: TissueMask | None = None
    for key, _meta in picks[:MAX_RESTORED]:
        if cancel is not None and cancel.is_set():
            return
        cached = cache.load(key)
        if cached is None:
            continue
        meta = {**cached.meta, "from_cache": True}
        size: tuple[int, int] | None = None
        if source is not None:
            domain = restored_domain(meta, source.info.properties)
            if domain is not None:
                meta["domain"] = domain
            size = source.info.dimensions
            if cached.result.task == "segmentation" and tissue is None:
                tissue = _tissue_of(source)
        emit(_Cached(slide, cached.result, meta, tissue, size))


def _tissue_of(source: SlideSource) -> TissueMask | None:
    """The slide's tissue mask, as a job computes it; ``None`` (clip to the slide only)
    when the slide cannot be read for it."""
    from inference.engine.tissue import tissue_mask
    from inference.slides import SlideError

    try:
        return tissue_mask(source)
    except (SlideError, OSError, ValueError) as exc:
        log.warning("%s: no tissue mask to clip results to (%s)", source.info.path.name, exc)
        return None


class InferenceJobs(QObject):
    """The GUI's side of model runs: queue, progress, layers, cancel (see module doc).

    ``slide`` is the slide on screen (:meth:`set_slide`); only payloads tagged with it
    reach the layers.  Signals: ``changed()`` whenever a job's state or progress
    changes (for the status bar), ``failed(job_id, message)``,
    ``untrusted(spec, path, sha256, message)`` when a TorchScript model needs the
    user's trust, ``layer_added(layer)``.
    """

    changed = Signal()
    failed = Signal(int, str)
    untrusted = Signal(object, str, str, str)
    layer_added = Signal(object)
    device_info = Signal(object)  # dict: {"cuda": bool, "torch": version} after warm-up

    def __init__(
        self,
        worker: InferenceWorker,
        layers: LayerStack,
        cache_folder: Path | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.worker = worker
        self.layers = layers
        self.cache_folder = cache_folder
        self.jobs: dict[int, JobState] = {}
        self.slide: SlideTag | None = None
        self.pool = ModelPool()
        self._restore_tasks: set[int] = set()
        self._warm_task: int | None = None
        self._tissue_layers: dict[str, MaskLayer] = {}
        #: Settings remembered per slide and result, given back to results restored
        #: from the cache (set by the owner; ``None``: nothing is remembered).
        self.remembered: LayerSettingsStore | None = None
        #: The stack positions restored layers were saved at (see ``restore_index``).
        self._orders: weakref.WeakKeyDictionary[Layer, int] = weakref.WeakKeyDictionary()
        worker.started.connect(self._on_started)
        worker.partial.connect(self._on_partial)
        worker.finished.connect(self._on_finished)
        worker.failed.connect(self._on_failed)

    # -- submitting --------------------------------------------------------------------
    def submit(self, spec: JobSpec) -> int:
        """Queue a model run; returns its id at once (the GUI never waits)."""
        pool, folder, worker = self.pool, self.cache_folder, self.worker

        def body(cancel: threading.Event, emit: Callable[[object], None]) -> None:
            run_job_body(spec, pool, cancel, emit, folder, worker.run_urgent)

        priority = PRIORITY_SLIDE if spec.scope == "slide" else PRIORITY_VIEW
        job_id = self.worker.submit(body, priority=priority, label=spec.label, slide=spec.slide)
        self.jobs[job_id] = JobState(job_id, spec)
        self.changed.emit()
        return job_id

    def restore_cached(self, slide: SlideTag, source: SlideSource | None = None) -> int:
        """Show the slide's cached results (loaded on the worker thread; with the open
        ``source``, checked against the slide and clipped as fresh results are)."""
        folder = self.cache_folder

        def body(cancel: threading.Event, emit: Callable[[object], None]) -> None:
            restore_cached_body(slide, folder, emit, cancel, source)

        task_id = self.worker.submit(
            body, priority=PRIORITY_VIEW - 1, label="cached results", slide=slide
        )
        self._restore_tasks.add(task_id)
        return task_id

    def warm_up(self) -> int:
        """Import torch (and the explanation library) on the worker thread now, right
        after the window appears, rather than stalling the first real job; reports
        whether CUDA is available through ``device_info``."""

        def body(cancel: threading.Event, emit: Callable[[object], None]) -> None:
            import torch

            from inference.explain.service import preload

            try:
                preload()  # pytorch-grad-cam and what it imports: ~2 s, once
            except ImportError as exc:  # explanations say so themselves when asked
                log.info("explanations unavailable: %s", exc)
            from viewer.layers.colormaps import CONTINUOUS, lut

            for name in CONTINUOUS:  # the first heatmap or CAM would import matplotlib
                lut(name)
            emit({"cuda": bool(torch.cuda.is_available()), "torch": torch.__version__})

        self._warm_task = self.worker.submit(body, priority=-1, label="loading torch")
        return self._warm_task

    def cancel(self, job_id: int) -> None:
        self.worker.cancel(job_id)

    def cancel_all(self) -> None:
        for job_id, state in self.jobs.items():
            if state.status in ("queued", "running"):
                self.worker.cancel(job_id)

    def active(self) -> list[JobState]:
        """Running and queued jobs, running first."""
        order = {task_id: i for i, (task_id, _label) in enumerate(self.worker.pending())}
        states = [s for s in self.jobs.values() if s.status in ("queued", "running")]
        return sorted(states, key=lambda s: order.get(s.job_id, len(order)))

    def set_slide(self, slide: SlideTag | None) -> None:
        """The slide on screen changed: the old one's tasks are cancelled and its payloads
        dropped from now on (see :meth:`forget_slide`)."""
        self.forget_slide()
        self.slide = slide

    def forget_slide(self) -> None:
        """The slide was closed: cancel every task queued or running for it (jobs and
        cache restores) and drop whatever they would still send."""
        if self.slide is not None:
            self.worker.cancel_slide(self.slide)
        self.slide = None
        self.cancel_all()
        for state in self.jobs.values():
            state.layer = None
            state.result = None
        self._tissue_layers.clear()
        self._orders.clear()
        self.changed.emit()

    # -- worker messages (GUI thread) -----------------------------------------------------
    def _on_started(self, task_id: int, _label: str) -> None:
        state = self.jobs.get(task_id)
        if state is not None:
            state.status = "running"
            state.started_at = time.monotonic()
            self.changed.emit()

    def _on_partial(self, task_id: int, payload: object) -> None:
        if task_id == self._warm_task:
            self.device_info.emit(payload)
            return
        if not isinstance(payload, SlidePayload) or payload.slide != self.slide:
            return  # made for a slide that has been closed since (or for none we know)
        if task_id in self._restore_tasks:
            if isinstance(payload, _Cached):
                self._add_cached_layer(payload, None)
            return
        state = self.jobs.get(task_id)
        if state is None or state.status not in ("queued", "running"):
            return
        if isinstance(payload, _Untrusted):
            self.untrusted.emit(state.spec, str(payload.path), payload.sha256, payload.message)
        elif isinstance(payload, _Cached):
            state.from_cache = True
            state.result = payload.result
            state.layer = self._add_cached_layer(payload, state.spec)
        elif isinstance(payload, _Prepared):
            self._on_prepared(state, payload)
        else:
            self._on_batch(state, payload.batch)

    def _on_prepared(self, state: JobState, prepared: _Prepared) -> None:
        from inference.results.store import ResultGrid, SegmentationMap

        result: InferenceResult
        if prepared.task == "segmentation":
            assert prepared.l0_per_px is not None and prepared.seg_tile_px is not None
            result = SegmentationMap(
                prepared.grid, prepared.class_names, prepared.l0_per_px, prepared.seg_tile_px
            )
        else:
            result = ResultGrid(prepared.grid, prepared.class_names)
        state.result = result
        state.total = prepared.total
        layer = HeatmapLayer(state.spec.label, result, provenance=prepared.provenance, opacity=0.5)
        dress_layer(layer, layer_clip(prepared.l0_slide_size, prepared.tissue))
        layer.progress = (0, prepared.total)
        state.layer = layer
        self.layers.add(layer)
        self.layer_added.emit(layer)
        if prepared.tissue is not None:
            self._add_tissue_layer(state.spec.source_id, prepared.tissue)
        self.changed.emit()

    def _on_batch(self, state: JobState, batch: BatchResult) -> None:
        if state.result is None or state.layer is None or state.layer not in self.layers:
            return  # the slide was closed or the layer removed: nothing to show
        state.last_batch_at = time.monotonic()
        if state.first_batch_at is None:
            state.first_batch_at = state.last_batch_at
        state.result.add(batch)
        state.done, state.total = batch.done, batch.total
        state.remaining.update(batch.done, batch.total, state.last_batch_at)
        state.layer.progress = (batch.done, batch.total)
        state.layer.notify_data_changed(state.result.batch_l0_bounds(batch) or None)
        if len(batch.background_p_ij):
            state.layer.notify_data_changed()
        self.changed.emit()

    def _on_finished(self, task_id: int, cancelled: bool) -> None:
        if task_id in self._restore_tasks:
            self._restore_tasks.discard(task_id)
            return
        state = self.jobs.get(task_id)
        if state is None:
            return
        state.status = "cancelled" if cancelled else "done"
        if state.layer is not None:
            state.layer.progress = None
            if cancelled:
                state.layer.provenance["incomplete"] = True
                state.layer.name = f"{state.layer.name} (cancelled)"
            state.layer.notify_data_changed()
        self.changed.emit()

    def _on_failed(self, task_id: int, message: str) -> None:
        self._restore_tasks.discard(task_id)
        state = self.jobs.get(task_id)
        if state is None:
            return
        state.status = "failed"
        if state.layer is not None:
            state.layer.progress = None
        if state.spec.slide == self.slide:  # a closed slide's job fails unannounced
            self.failed.emit(task_id, f"{state.spec.label} failed: {message}")
        self.changed.emit()

    # -- layers ---------------------------------------------------------------------------
    def _add_cached_layer(self, cached: _Cached, spec: JobSpec | None) -> HeatmapLayer:
        meta = cached.provenance
        if spec is not None:
            name = spec.label
        else:
            scope = SCOPE_LABELS.get(str(meta.get("scope")), "region")
            name = f"{meta.get('model', 'model')} on the {scope}"
        # the name is the legend's title: the cached state is the Layers panel's to show
        layer = HeatmapLayer(name, cached.result, provenance=meta, opacity=0.5)
        dress_layer(layer, layer_clip(cached.l0_slide_size, cached.tissue))
        index = self._restore_settings(layer)
        if index is None:
            self.layers.add(layer)
        else:
            self.layers.insert(index, layer)
        self.layer_added.emit(layer)
        self.changed.emit()
        return layer

    def _restore_settings(self, layer: HeatmapLayer) -> int | None:
        """Give a result that came back from the cache the settings remembered for it on
        this slide; returns where it goes in the stack (``None``: on top, as new)."""
        store, slide, result_id = self.remembered, self.slide, result_identity(layer)
        if store is None or slide is None or result_id is None:
            return None
        found = store.get(slide.source_id, result_id)
        if found is None:
            return None
        settings, order = found
        apply_settings(layer, settings)
        if order is None:
            return None
        self._orders[layer] = order
        present = {id(other): saved for other, saved in self._orders.items()}
        return restore_index(self.layers, order, present)

    def _add_tissue_layer(self, source_id: str, tissue: TissueMask) -> None:
        layer = self._tissue_layers.get(source_id)
        if layer is not None and layer in self.layers:
            return
        layer = tissue_mask_layer(tissue.mask, tissue.l0_per_px)
        layer.visible = False
        self.layers.insert(0, layer)
        self._tissue_layers[source_id] = layer
