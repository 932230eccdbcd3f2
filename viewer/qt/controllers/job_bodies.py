"""The worker-thread side of model runs: what a job asks for (:class:`JobSpec`), the
models kept loaded (:class:`ModelPool`), the bodies that run a job or restore a slide's
cached results (:func:`run_job_body`, :func:`restore_cached_body`) and the payloads they
emit, each tagged with the :class:`SlideTag` of the slide it was made for.

:mod:`viewer.qt.controllers.inference_jobs` queues these bodies on the inference worker
and turns their payloads into layers on the GUI thread.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from inference.core.geometry import Rect
from viewer.qt.inference_worker import SlideTag
from viewer.result_layers import domain_record, restored_domain

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
class PreparedPayload:
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
class CachedPayload:
    """A finished result found in the cache (for a job, or restored on opening), with
    what a segmentation layer is clipped to (the slide's size and tissue mask)."""

    slide: SlideTag
    result: InferenceResult
    provenance: dict[str, Any]
    tissue: TissueMask | None = None
    l0_slide_size: tuple[int, int] | None = None


@dataclass(frozen=True)
class UntrustedPayload:
    """The job's model is a program (TorchScript, ``.pt2``) the user has not trusted yet."""

    slide: SlideTag
    path: Path
    sha256: str
    message: str
    #: What kind of program: ``"torchscript"`` or ``"pt2"`` (a ``torch.export`` archive).
    kind: str = "torchscript"


@dataclass(frozen=True)
class BatchPayload:
    """One batch of a running job."""

    slide: SlideTag
    batch: BatchResult


#: What job and restore tasks emit; each says which slide it was made for.
SlidePayload = PreparedPayload | CachedPayload | UntrustedPayload | BatchPayload


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
    an ``UntrustedPayload`` (and stops), or a ``CachedPayload``, or a ``PreparedPayload``
    then one ``BatchPayload`` per batch, each tagged with ``spec.slide``.
    ``between_batches`` runs after each batch (the worker's urgent tasks)."""
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
        emit(
            UntrustedPayload(
                spec.slide, exc.path or spec.model_folder, exc.sha256, str(exc), exc.kind
            )
        )
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
            emit(CachedPayload(spec.slide, cached.result, meta, prepared.tissue, size))
            return
        emit(
            PreparedPayload(
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
            emit(BatchPayload(spec.slide, batch))
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
    """Worker-thread side of restoring a slide's cached results: emits ``CachedPayload`` (tagged
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
        # the entry's key is the result's identity, also for results `slidelens infer`
        # cached (their meta does not repeat it)
        meta = {**cached.meta, "cache_key": key, "from_cache": True}
        size: tuple[int, int] | None = None
        if source is not None:
            domain = restored_domain(meta, source.info.properties)
            if domain is not None:
                meta["domain"] = domain
            size = source.info.dimensions
            if cached.result.task == "segmentation" and tissue is None:
                tissue = _tissue_of(source)
        emit(CachedPayload(slide, cached.result, meta, tissue, size))


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
