"""The worker side of slide-level predictions: the task the slide report puts on the
inference worker, and what it emits.  The task body runs on the worker thread.

One task answers one slide with one slide-level model (a slide-level head's folder, or
a patch model whose card declares ``slidelens.aggregation``;
:func:`~inference.slide_level.pipeline.resolve_pipeline`): it finds the patch model's
finished result in the result cache (with embeddings when the aggregator reads them)
or runs the engine over the whole slide, emitting :class:`SlideLevelProgress` per
batch and letting urgent tasks (explanations) run between batches; it saves the result
in the cache (so the patch heatmap comes back when the slide is opened again), makes
the answer from the stored arrays, reads the gallery's patches and emits one
:class:`SlideLevelOutcome`.  Every payload carries the slide (:class:`SlideTag`) and the
request it was made for.  What cannot be answered (a model that declares no
aggregation, a slide without a pixel size) raises
:class:`~viewer.qt.inference_worker.TaskRefused` with the reason.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from viewer.qt.controllers.job_bodies import ModelPool
from viewer.qt.inference_worker import SlideTag, TaskBody, TaskRefused

if TYPE_CHECKING:
    from inference.results.store import InferenceResult
    from inference.slide_level.answer import SlideAnswer
    from inference.slides import SlideSource

#: Side of a gallery thumbnail, in pixels.
THUMB_PX = 96


@dataclass(frozen=True)
class SlideLevelTask:
    """One slide-level prediction to make (see the module docstring)."""

    slide: SlideTag
    request_id: int
    slide_path: Path
    source: SlideSource
    folder: Path
    device: str | None = None
    mpp_override: float | None = None
    cache_folder: Path | None = None


@dataclass(frozen=True)
class SlideLevelProgress:
    """``done`` of ``total`` patches computed for ``slide`` and ``request_id``."""

    slide: SlideTag
    request_id: int
    done: int
    total: int


@dataclass(frozen=True)
class GalleryItem:
    """One of the top patches: its rank (1 = first), level-0 rectangle ``(x, y, w, h)``,
    the value that ranked it and its pixels (``(h, w, 3)`` uint8 RGB)."""

    rank: int
    l0_rect: tuple[float, float, float, float]
    value: float
    rgb: np.ndarray


@dataclass(frozen=True, eq=False)
class SlideLevelOutcome:
    """A finished answer for ``slide`` and ``request_id``: the patch model's result
    (with its embeddings), the answer, the gallery and the provenance of its layers."""

    slide: SlideTag
    request_id: int
    result: InferenceResult
    answer: SlideAnswer
    gallery: tuple[GalleryItem, ...]
    provenance: dict[str, Any] = field(default_factory=dict)
    from_cache: bool = False


def read_thumbnail(source: SlideSource, l0_rect: tuple[float, float, float, float]) -> np.ndarray:
    """The pixels of a level-0 rectangle, at most :data:`THUMB_PX` on a side, read from
    the coarsest level that still has them at that size (worker thread)."""
    x, y, w, h = l0_rect
    info = source.info
    scale = max(w, h) / THUMB_PX
    level = max(
        (i for i, d in enumerate(info.level_downsamples) if d <= max(1.0, scale)), default=0
    )
    ds = info.level_downsamples[level]
    lv_w, lv_h = max(1, round(w / ds)), max(1, round(h / ds))
    rgb = source.read_region(level, round(x / ds), round(y / ds), lv_w, lv_h)
    side = (max(1, round(w / max(scale, 1.0))), max(1, round(h / max(scale, 1.0))))
    return cv2.resize(rgb, side, interpolation=cv2.INTER_AREA)


def slide_level_task(
    pool: ModelPool,
    task: SlideLevelTask,
    between_batches: Callable[[], object] | None = None,
) -> TaskBody:
    """The task's body (see the module docstring)."""

    def body(cancel: threading.Event, emit: Callable[[object], None]) -> None:
        from inference.engine.device import resolve_device
        from inference.engine.job import InferenceJob
        from inference.engine.patches import MissingMppError
        from inference.engine.prepare import prepare
        from inference.engine.runner import run_prepared
        from inference.models.domain import check_domain
        from inference.results.cache import ResultCache
        from inference.results.store import new_result
        from inference.slide_level.aggregate import AggregationFailed
        from inference.slide_level.pipeline import resolve_pipeline

        pipeline = resolve_pipeline(task.folder)
        aggregator = pipeline.aggregator
        if aggregator is None:
            raise TaskRefused(
                f"{task.folder.name} declares no slide-level aggregation "
                "(slidelens.aggregation in its card); choose a slide-level model"
            )
        device = resolve_device(task.device)
        model = pool.get(pipeline.patch_folder, device, trust=False)
        job = InferenceJob(
            slide=task.slide_path,
            model=model,
            device=device,
            mpp_override=task.mpp_override,
            embeddings=aggregator.needs_embeddings,
            embedding_layer=aggregator.embedding_layer,
        )
        cache = ResultCache(task.cache_folder)
        try:
            prepared_job = prepare(job)
        except MissingMppError as exc:
            raise TaskRefused(str(exc)) from exc
        with prepared_job as prepared:
            params = prepared.params()
            key = ResultCache.key(task.slide.source_id, model.sha256, params)
            properties = prepared.source.info.properties
            card = model.card
            provenance: dict[str, Any] = {
                "model": card.name,
                "model_folder": str(pipeline.patch_folder),
                "model_sha256": model.sha256,
                "architecture": card.architecture,
                "scope": "slide",
                "slide": str(task.slide_path),
                "source_id": task.slide.source_id,
                "mpp_source": "typed" if task.mpp_override is not None else "slide",
                "params": params,
                "cache_key": key,
                "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
                "domain": check_domain(card.name, card.domain, properties).to_dict(),
            }
            cached = cache.load(key)
            result: InferenceResult | None
            if cached is not None:
                result = cached.result
            else:
                result = None
                for batch in run_prepared(prepared, cancel=cancel):
                    if result is None:
                        result = new_result(batch)
                    result.add(batch)
                    emit(SlideLevelProgress(task.slide, task.request_id, batch.done, batch.total))
                    if between_batches is not None:
                        between_batches()
                if cancel.is_set() or result is None:
                    return
                cache.save(key, result, provenance)
        try:
            answer = aggregator(result)
        except AggregationFailed as exc:
            raise TaskRefused(str(exc)) from exc
        head = pipeline.head_card
        if head is not None:  # the head's own domain: not for diagnosis, its slides
            provenance["domain"] = check_domain(head.name, head.domain, properties).to_dict()
        provenance["slide_level"] = {**answer.slide_keys(), "head": aggregator.name}
        gallery = []
        spec_gallery = aggregator.spec.gallery
        grid = result.grid
        for rank, index in enumerate(answer.top_patches(spec_gallery), 1):
            col, row = (int(v) for v in answer.p_ij[index])
            rect = grid.patch_l0_rect(col, row)
            l0_rect = (rect.x, rect.y, rect.w, rect.h)
            rgb = read_thumbnail(task.source, l0_rect)
            gallery.append(GalleryItem(rank, l0_rect, float(answer.ranking[index]), rgb))
        emit(
            SlideLevelOutcome(
                task.slide,
                task.request_id,
                result,
                answer,
                tuple(gallery),
                provenance,
                from_cache=cached is not None,
            )
        )

    return body
