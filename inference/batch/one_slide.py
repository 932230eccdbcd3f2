"""One slide into one folder: the unit of work of ``slidelens infer`` and ``slidelens batch``.

Contract: :func:`infer_slide` runs a loaded model over one slide and writes, into the
folder it is given, ``<stem>.csv`` (one row per patch), ``<stem>.geojson`` (QuPath),
``<stem>.heatmap.tiff`` (pyramidal probability of the last class; every class and the
class map too for more than two classes), ``<stem>.result.npz`` (the whole result),
``<stem>.slide.json`` (the slide report: class areas, largest regions, the grade of a
grading model) and ``<stem>.run.json`` (model hash, parameters, versions, timings,
counts), the JSON last, with ``"status": "complete"`` (:func:`is_complete` checks it).
The result cache is asked first unless the settings say ``force`` or ``no_cache``.
Errors propagate (a :class:`~inference.slides.SlideError` names the file and the cause);
:func:`describe_failure` turns one into the line both commands print and record.

Progress is reported to an optional :class:`PatchProgress` made per computed slide;
drawing it is the caller's business.  torch is imported inside the functions only.
"""

from __future__ import annotations

import logging
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from inference.batch.settings import SlideSettings

if TYPE_CHECKING:
    from inference.engine.job import BatchResult, ModelLike
    from inference.engine.prepare import PreparedJob
    from inference.results.exports import OutputPaths
    from inference.results.store import InferenceResult
    from inference.slide_level.aggregate import Aggregator
    from inference.slide_level.answer import SlideAnswer

log = logging.getLogger(__name__)

#: Written in the run JSON once every output of a slide is in place.
STATUS_COMPLETE = "complete"


class PatchProgress(Protocol):
    """What :func:`infer_slide` tells about a slide being computed."""

    def update(self, batch: BatchResult) -> None:
        """A batch is done (``batch.done`` of ``batch.total`` patches)."""

    def close(self, note: str = "") -> None:
        """The slide is computed; ``note`` says what was skipped."""


#: Makes the progress of one slide (called only when the slide is computed, not cached).
ProgressFactory = Callable[[Path], PatchProgress]


@dataclass
class SlideRun:
    """What happened to one slide.

    ``status`` is ``"done"``, ``"cached"`` (served from the result cache), ``"skipped"``
    (results already there) or ``"failed"`` (``message`` says why).  ``result`` is the
    finished result when this process made or loaded it (not kept in reprs), ``answer``
    the slide-level answer when an aggregator made one.
    """

    slide: Path
    status: str
    message: str = ""
    counts: dict[str, int] = field(default_factory=dict)
    source_id: str = ""
    result: InferenceResult | None = field(default=None, repr=False, compare=False)
    answer: SlideAnswer | None = field(default=None, repr=False, compare=False)


def output_stem(path: Path) -> str:
    """The stem of a slide's output files: the file name without its extension
    (``.ome.tiff`` counts as one)."""
    name = path.name
    for suffix in (".ome.tiff", ".ome.tif"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def output_paths(out_dir: Path, slide: Path, stem: str | None = None) -> OutputPaths:
    """The files :func:`infer_slide` writes for ``slide`` into ``out_dir``."""
    from inference.results.exports import OutputPaths

    return OutputPaths.for_slide(out_dir, stem or output_stem(slide))


def is_complete(paths: OutputPaths) -> bool:
    """Every output exists and the run JSON says the run completed."""
    import json

    if not all(p.is_file() for p in paths.all()):
        return False
    try:
        doc = json.loads(paths.metadata.read_text("utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(doc, dict) and doc.get("status") == STATUS_COMPLETE


def versions() -> dict[str, str]:
    """Versions of what produced the results."""
    from importlib import metadata

    out = {"python": platform.python_version(), "platform": platform.platform()}
    for dist in ("slidelens", "torch", "torchvision", "numpy", "openslide-python", "openslide-bin"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "not installed"
    import torch

    out["torch"] = torch.__version__  # with its build tag, e.g. +cu130
    out["cuda"] = str(torch.version.cuda)
    if torch.cuda.is_available():
        out["gpu"] = torch.cuda.get_device_name()
    try:
        import openslide

        out["openslide_library"] = str(openslide.__library_version__)
    except (ImportError, AttributeError):
        pass
    return out


def is_user_error(exc: BaseException) -> bool:
    """A failure caused by the input (slide, model, options), not by a bug."""
    from inference.engine.job import InferenceError
    from inference.models import ModelError
    from inference.slides import SlideError

    return isinstance(exc, SlideError | ModelError | InferenceError | ValueError | OSError)


def describe_failure(exc: BaseException) -> str:
    """The message of a failed slide: the error's own sentence for bad input, prefixed
    with ``unexpected <Type>:`` for anything else."""
    kind = "" if is_user_error(exc) else f"unexpected {type(exc).__name__}: "
    return f"{kind}{exc}"


def load_slide_model(name_or_folder: str, *, trust: bool, device: str) -> ModelLike:
    """The model ``--model`` names (a bundled or user model, or a folder), loaded."""
    from inference.models import load_model, resolve_model

    folder = resolve_model(name_or_folder)
    model: ModelLike = load_model(folder, trust=trust, device=device)
    return model


def _card_doc(model: ModelLike) -> Any:
    raw = getattr(model.card, "raw", None)
    if raw:
        return dict(raw)
    return {
        k: getattr(model.card, k)
        for k in ("name", "class_names", "patch_size_pixels", "spacing_um_px", "task")
    }


def infer_slide(
    slide: Path,
    model: ModelLike,
    settings: SlideSettings,
    device: str,
    out_dir: Path,
    *,
    stem: str | None = None,
    progress: ProgressFactory | None = None,
    aggregator: Aggregator | None = None,
) -> SlideRun:
    """Run ``model`` on ``slide`` and write its outputs into ``out_dir`` (which exists).

    With an ``aggregator`` (:mod:`inference.slide_level`) the job also keeps the patch
    embeddings when the aggregator reads them, the slide-level answer is added to
    ``<stem>.slide.json`` (``slide_label``, ``slide_probabilities``, ``aggregation``) and
    its per-patch maps (attention) to the result archive.

    ``device`` is the resolved device (``cpu``, ``cuda[:N]``); ``stem`` names the files
    (default :func:`output_stem`).  Returns the run with status ``"done"`` or
    ``"cached"``, its counts, the slide's ``source_id`` and the result; raises on
    failure, leaving whatever was written (callers that need all-or-nothing write into a
    temporary folder, as the batch runner does).
    """
    from inference.engine.job import InferenceJob
    from inference.engine.prepare import prepare
    from inference.results.cache import ResultCache
    from inference.results.exports import (
        write_csv,
        write_geojson,
        write_heatmap_tiff,
        write_json,
        write_result_npz,
    )
    from inference.slides import open_slide

    paths = output_paths(out_dir, slide, stem)
    t_start = time.perf_counter()
    source = open_slide(slide)
    source_id = source.info.source_id
    try:
        job = InferenceJob(
            slide=source,
            model=model,
            device=device,
            batch_size=settings.batch_size,
            overlap=settings.overlap,
            region=settings.region,
            only_region=settings.region is not None,
            mpp_override=settings.mpp,
            tissue_threshold=settings.tissue_threshold,
            num_readers=settings.num_readers,
            cpu_lanes=settings.cpu_lanes,
            torch_threads=settings.torch_threads,
            trust=settings.trust,
            embeddings=aggregator is not None and aggregator.needs_embeddings,
            embedding_layer=aggregator.embedding_layer if aggregator is not None else None,
        )
        with prepare(job) as prepared:
            params = prepared.params()
            cache = None if settings.no_cache else ResultCache()
            key = ResultCache.key(source.info.source_id, model.sha256, params)
            cached = cache.load(key) if cache is not None and not settings.force else None
            t_infer = time.perf_counter()
            result: InferenceResult | None
            if cached is not None:
                result = cached.result
                counts = {k: int(v) for k, v in cached.meta.get("counts", {}).items()}
            else:
                result, counts = _infer(prepared, slide, progress)
                if cache is not None and result is not None:
                    # the viewer restores cached results by these keys when the slide opens
                    cache_meta = {
                        "counts": counts,
                        "slide": str(slide),
                        "source_id": source.info.source_id,
                        "model": Path(str(model.card.name)).name,
                        "model_sha256": model.sha256,
                        "scope": "slide" if settings.region is None else "region",
                        "created": datetime.now(UTC).isoformat(timespec="seconds"),
                    }
                    cache.save(key, result, cache_meta)
            t_export = time.perf_counter()
            assert result is not None
            # the slide-level answer reads the stored arrays, never the patch model
            answer = aggregator(result) if aggregator is not None else None
            grid = result.grid
            extra = answer.archive_arrays(grid.p_rows, grid.p_cols) if answer else None
            write_csv(paths.csv, result)
            write_geojson(
                paths.geojson,
                result,
                threshold=model.card.threshold,
                l0_origin=source.info.l0_bounds_origin,  # where QuPath counts from
            )
            write_result_npz(paths.result, result, extra=extra)
            geometry = write_heatmap_tiff(
                paths.heatmap,
                result,
                mpp=prepared.mpp,
                extra={"slide": slide.name, "source_id": source.info.source_id},
                threshold=model.card.threshold,
            )
            _write_slide_report(paths.slide_report, result, model, slide, prepared.mpp)
            if answer is not None:  # after the report: its keys join the report's
                from inference.slide_level.slide_json import write_slide_answer

                write_slide_answer(
                    paths.slide_report, answer, result, mpp=prepared.mpp, slide=slide.name
                )
            t_end = time.perf_counter()
            doc = _metadata(prepared, settings, slide, paths, params, key, counts, geometry)
            doc["from_cache"] = cached is not None
            if answer is not None:
                doc["slide_level"] = answer.slide_keys()
            doc["timings"] = {
                "prepare_s": prepared.timings.get("prepare_s", 0.0),
                "tissue_s": prepared.timings.get("tissue_s", 0.0),
                "inference_s": t_export - t_infer,
                "export_s": t_end - t_export,
                "total_s": t_end - t_start,
                "patches_per_s": (
                    counts.get("computed", 0) / (t_export - t_infer)
                    if cached is None and t_export > t_infer
                    else None
                ),
            }
            write_json(paths.metadata, doc)
    finally:
        source.close()
    return SlideRun(
        slide,
        "cached" if cached is not None else "done",
        counts=counts,
        source_id=source_id,
        result=result,
        answer=answer,
    )


def _write_slide_report(
    path: Path, result: InferenceResult, model: ModelLike, slide: Path, mpp: float | None
) -> None:
    """``<stem>.slide.json``: class areas, largest regions and, for a grading model, the
    grade (:mod:`inference.results.slide_report`)."""
    from inference.results.grading import GradingSpec
    from inference.results.slide_report import slide_report, write_slide_report

    report = slide_report(
        result,
        mpp=mpp,
        grading=GradingSpec.from_card(model.card),
        threshold=model.card.threshold,
        slide=slide.name,
        model={"name": Path(str(model.card.name)).name, "sha256": model.sha256},
    )
    write_slide_report(path, report)


class _NoProgress:
    def update(self, batch: BatchResult) -> None:
        pass

    def close(self, note: str = "") -> None:
        pass


def _infer(
    prepared: PreparedJob, slide: Path, progress: ProgressFactory | None
) -> tuple[InferenceResult | None, dict[str, int]]:
    from inference.engine.runner import run_prepared
    from inference.results.store import new_result

    bar: PatchProgress = progress(slide) if progress is not None else _NoProgress()
    result: InferenceResult | None = None
    unreadable = 0
    for batch in run_prepared(prepared):
        if result is None:
            result = new_result(batch)
        result.add(batch)
        unreadable += len(batch.unreadable_p_ij)
        bar.update(batch)
    background = len(prepared.background_p_ij)
    bar.close(f"{background} background patches skipped" if background else "")
    counts = {
        "patches": prepared.grid.count,
        "computed": len(prepared.order) - unreadable,
        "background": background,
        "unreadable": unreadable,
    }
    return result, counts


def _metadata(
    prepared: PreparedJob,
    settings: SlideSettings,
    slide: Path,
    paths: OutputPaths,
    params: dict[str, Any],
    key: str,
    counts: dict[str, int],
    geometry: dict[str, Any],
) -> dict[str, Any]:
    info = prepared.source.info
    model = prepared.model
    region = settings.region
    return {
        "status": STATUS_COMPLETE,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "slide": {
            "path": str(slide.resolve()),
            "source_id": info.source_id,
            "vendor": info.vendor,
            "dimensions": list(info.dimensions),
            "mpp": info.mpp,
            "mpp_used": prepared.mpp,
            "mpp_from": "--mpp" if settings.mpp is not None else "slide",
        },
        "model": {
            "name": model.card.name,
            "sha256": model.sha256,
            "folder": str(getattr(model.card, "folder", "")),
            "weights": str(getattr(model, "weights_path", "")),
            # which form ran (eager, pt2, onnx, torchscript) and the measurement that chose it
            "backend": getattr(model, "backend", None),
            "card": _card_doc(model),
        },
        "parameters": {
            **params,
            "device": prepared.device,
            "batch_size": settings.batch_size,
            "num_readers": prepared.num_readers,
            "cpu_lanes": prepared.lanes,
            "torch_threads": prepared.cpu_threads,
            "region": None if region is None else list(region.to_int()),
        },
        "counts": counts,
        "cache_key": key,
        "outputs": {
            "csv": paths.csv.name,
            "geojson": paths.geojson.name,
            "heatmap": paths.heatmap.name,
            "slide_report": paths.slide_report.name,
        },
        "heatmap": geometry,
        "versions": versions(),
    }
