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
from viewer.layer_memory import LayerSettingsStore, apply_settings, restore_index, result_identity
from viewer.layers.base import Layer, LayerStack
from viewer.layers.heatmap import HeatmapLayer
from viewer.layers.masks import MaskLayer, tissue_mask_layer
from viewer.qt.controllers.job_bodies import (
    SCOPE_LABELS,
    CachedPayload,
    JobSpec,
    ModelPool,
    PreparedPayload,
    SlidePayload,
    UntrustedPayload,
    restore_cached_body,
    run_job_body,
)
from viewer.qt.inference_worker import (
    PRIORITY_SLIDE,
    PRIORITY_VIEW,
    InferenceWorker,
    SlideTag,
)
from viewer.result_layers import dress_layer, layer_clip, result_layers

if TYPE_CHECKING:
    from inference.engine.job import BatchResult
    from inference.engine.tissue import TissueMask
    from inference.results.store import InferenceResult
    from inference.slides import SlideSource

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReadyResult:
    """A finished result of the open slide: a job that ran to the end, or a result
    found in (or restored from) the cache.  ``layers`` are the layers it is shown as,
    the primary one first (the class map of a multi-class result); ``provenance`` is
    the primary layer's (model, ``model_folder``, ``scope``, ``cache_key``, ...; the user
    may have removed every layer by the time the result is announced);
    ``restored``: brought back from the cache as the slide opened (no one asked)."""

    slide: SlideTag
    result: InferenceResult
    provenance: dict[str, Any]
    layers: tuple[HeatmapLayer, ...]
    restored: bool = False


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
    #: The primary layer of the job's result (the class map of a multi-class result).
    layer: HeatmapLayer | None = None
    #: Every layer of the result, the primary one first (see ``result_layers``).
    layers: list[HeatmapLayer] = field(default_factory=list)
    result: InferenceResult | None = None
    from_cache: bool = False
    #: The time left, from the recent throughput (fed one update per batch).
    remaining: RemainingTime = field(default_factory=RemainingTime)

    def eta_s(self, now: float | None = None) -> float | None:
        """Seconds left as of ``now`` (``time.monotonic()``), counting down between
        batches; ``None`` until the estimate is stable (see :class:`RemainingTime`)."""
        return self.remaining.seconds_left(time.monotonic() if now is None else now)


class InferenceJobs(QObject):
    """The GUI's side of model runs: queue, progress, layers, cancel (see module doc).

    ``slide`` is the slide on screen (:meth:`set_slide`); only payloads tagged with it
    reach the layers.  Signals: ``changed()`` whenever a job's state or progress
    changes (for the status bar), ``failed(job_id, message)``,
    ``untrusted(spec, path, sha256, message, kind)`` when a program model (``kind``
    ``"torchscript"`` or ``"pt2"``) needs the user's trust, ``layer_added(layer)``,
    ``result_ready(ReadyResult)`` when a result of the open slide is complete (a job
    done, or a result from the cache).
    """

    changed = Signal()
    failed = Signal(int, str)
    untrusted = Signal(object, str, str, str, str)
    layer_added = Signal(object)
    result_ready = Signal(object)  # ReadyResult: a result finished or restored
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
        for state in self.jobs.values():  # the closed slide's results may be freed
            state.layer = None
            state.layers = []
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
            if isinstance(payload, CachedPayload):
                self._add_cached_layers(payload, None)
            return
        state = self.jobs.get(task_id)
        if state is None or state.status not in ("queued", "running"):
            return
        if isinstance(payload, UntrustedPayload):
            self.untrusted.emit(
                state.spec, str(payload.path), payload.sha256, payload.message, payload.kind
            )
        elif isinstance(payload, CachedPayload):
            state.from_cache = True
            shown = self._reuse_shown(payload, state.spec)
            state.layers = shown or self._add_cached_layers(payload, state.spec)
            state.layer = state.layers[0]
            # the result on screen, not a second copy of it
            state.result = state.layers[0].result if shown else payload.result  # type: ignore[assignment]
        elif isinstance(payload, PreparedPayload):
            self._on_prepared(state, payload)
        else:
            self._on_batch(state, payload.batch)

    def _on_prepared(self, state: JobState, prepared: PreparedPayload) -> None:
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
        clip = layer_clip(prepared.l0_slide_size, prepared.tissue)
        state.layers = result_layers(state.spec.label, result, prepared.provenance, clip)
        state.layer = state.layers[0]
        for layer in reversed(state.layers):  # the primary layer on top
            layer.progress = (0, prepared.total)
            self.layers.add(layer)
        self.layer_added.emit(state.layer)
        if prepared.tissue is not None:
            self._add_tissue_layer(state.spec.source_id, prepared.tissue)
        self.changed.emit()

    def _on_batch(self, state: JobState, batch: BatchResult) -> None:
        if state.result is None:
            return  # the slide was closed: nothing to keep
        # kept whole even while none of its layers is shown: the result is still announced
        state.result.add(batch)
        state.last_batch_at = time.monotonic()
        if state.first_batch_at is None:
            state.first_batch_at = state.last_batch_at
        state.done, state.total = batch.done, batch.total
        state.remaining.update(batch.done, batch.total, state.last_batch_at)
        l0_bounds = state.result.batch_l0_bounds(batch) or None
        for layer in state.layers:
            if layer not in self.layers:
                continue
            layer.progress = (batch.done, batch.total)
            layer.notify_data_changed(None if len(batch.background_p_ij) else l0_bounds)
        self.changed.emit()

    def _on_finished(self, task_id: int, cancelled: bool) -> None:
        if task_id in self._restore_tasks:
            self._restore_tasks.discard(task_id)
            return
        state = self.jobs.get(task_id)
        if state is None:
            return
        state.status = "cancelled" if cancelled else "done"
        for layer in state.layers:
            layer.progress = None
            if cancelled and not state.from_cache:  # a result from the cache is whole
                layer.provenance["incomplete"] = True
                layer.name = f"{layer.name} (cancelled)"
            layer.notify_data_changed()
        if state.layers and not cancelled and state.result is not None and not state.from_cache:
            self._announce(state.result, state.layers)
        self.changed.emit()

    def _announce(
        self, result: InferenceResult, layers: list[HeatmapLayer], restored: bool = False
    ) -> None:
        """Tell listeners (the slide report) that a result of the open slide is ready."""
        if self.slide is not None:
            provenance = layers[0].provenance
            ready = ReadyResult(self.slide, result, provenance, tuple(layers), restored)
            self.result_ready.emit(ready)

    def _on_failed(self, task_id: int, message: str) -> None:
        self._restore_tasks.discard(task_id)
        state = self.jobs.get(task_id)
        if state is None:
            return
        state.status = "failed"
        for layer in state.layers:
            layer.progress = None
            if not state.from_cache:  # what came before the failure: part of a result
                layer.provenance["incomplete"] = True
                layer.name = f"{layer.name} (failed)"
        if state.spec.slide == self.slide:  # a closed slide's job fails unannounced
            self.failed.emit(task_id, f"{state.spec.label} failed: {message}")
        self.changed.emit()

    # -- layers ---------------------------------------------------------------------------
    def _shown_layers(self, cache_key: object) -> list[HeatmapLayer]:
        """The layers on screen of the whole result cached under ``cache_key``: plain
        result layers (not a cancelled run's, not attention or similarity layers that
        carry the key too) of one result object, the primary one first (the class map, or
        the only layer); ``[]`` when it is not shown."""
        if not isinstance(cache_key, str) or not cache_key:
            return []
        found = [
            layer
            for layer in reversed(list(self.layers))
            if type(layer) is HeatmapLayer
            and layer.provenance.get("cache_key") == cache_key
            and not layer.provenance.get("incomplete")
        ]
        found.sort(key=lambda layer: layer.provenance.get("view") not in (None, "class map"))
        return [layer for layer in found if layer.result is found[0].result]

    def _reuse_shown(self, cached: CachedPayload, spec: JobSpec) -> list[HeatmapLayer]:
        """Asked again for a result on screen: show its layers (views the user removed
        come back) instead of copying them, and announce it; returns its layers, the
        primary one first, or ``[]`` when the result is not on screen."""
        shown = self._shown_layers(cached.provenance.get("cache_key"))
        if not shown:
            return []
        by_view = {layer.provenance.get("view"): layer for layer in shown}
        clip = layer_clip(cached.l0_slide_size, cached.tissue)
        layers: list[HeatmapLayer] = []
        for fresh in result_layers(spec.label, shown[0].result, cached.provenance, clip):
            layer = by_view.get(fresh.provenance.get("view"))
            if layer is None:
                layer = fresh
                self.layers.add(layer)
            layers.append(layer)
        domain = cached.provenance.get("domain")
        for layer in layers:  # the model was checked against the slide just now
            if domain is not None:
                layer.provenance["domain"] = domain
            dress_layer(layer, None)
        layers[0].visible = True
        self.layer_added.emit(layers[0])
        self._announce(layers[0].result, layers)  # type: ignore[arg-type]
        self.changed.emit()
        return layers

    def _add_cached_layers(self, cached: CachedPayload, spec: JobSpec | None) -> list[HeatmapLayer]:
        """Show a finished result from the cache, each layer with the settings and the
        place remembered for it; returns its layers, the primary one first."""
        meta = cached.provenance
        if spec is not None:
            name = spec.label
        else:
            scope = SCOPE_LABELS.get(str(meta.get("scope")), "region")
            name = f"{meta.get('model', 'model')} on the {scope}"
        # the name is the legend's title: the cached state is the Layers panel's to show
        clip = layer_clip(cached.l0_slide_size, cached.tissue)
        layers = result_layers(name, cached.result, meta, clip)
        for layer in reversed(layers):  # the primary layer on top, unless remembered
            index = self._restore_settings(layer)
            if index is None:
                self.layers.add(layer)
            else:
                self.layers.insert(index, layer)
        self.layer_added.emit(layers[0])
        self._announce(cached.result, layers, restored=spec is None)
        self.changed.emit()
        return layers

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
