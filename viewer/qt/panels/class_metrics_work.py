"""The Metrics panel's class report, made off the GUI thread, and its files; which
heatmaps the panel offers, one per result.  Qt-free.

A result of three or more classes is compared with its ground truth read as class
indices (:func:`inference.evaluation.class_truth.load_class_truth`), the way
``slidelens evaluate`` does (:mod:`inference.cli.evaluate_classes`): the truth file is
the one the truth layer was loaded from, GeoJSON class names are mapped by the card's
``slidelens.truth_classes`` of the model that made the result (its ``model_folder`` in
the layer's provenance), and the figures are
:func:`inference.evaluation.multiclass.compute_class_metrics`'s.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from viewer.layers.base import Layer
from viewer.layers.heatmap import HeatmapLayer
from viewer.result_layers import MULTI_CLASS, result_model_card

if TYPE_CHECKING:
    from inference.engine.tissue import TissueMask
    from inference.evaluation.multiclass import ClassReport, ClassSamples
    from inference.evaluation.sampling import RasterResult
    from inference.evaluation.truth import TruthMask
    from inference.slides import SlideSource

#: Results of this many classes or more get the class report (and, in the window, a
#: class map); fewer keep the binary one.
MIN_CLASSES = MULTI_CLASS


def wants_class_report(class_names: tuple[str, ...] | list[str]) -> bool:
    """Whether a result of ``class_names`` is evaluated as a class report."""
    return len(class_names) >= MIN_CLASSES


def heatmap_choices(layers: Iterable[Layer]) -> list[HeatmapLayer]:
    """The heatmap layers of ``layers`` (in that order) to choose from, one per result:
    a result of many classes is shown by several layers (class map, confidence, one
    probability per class) that share its result object; the first of them is listed."""
    chosen: list[HeatmapLayer] = []
    for layer in layers:
        if isinstance(layer, HeatmapLayer) and all(layer.result is not c.result for c in chosen):
            chosen.append(layer)
    return chosen


def choice_index(listed: Sequence[Layer], current: object) -> int:
    """Where ``current`` (the layer chosen before) is in ``listed``, else the layer that
    shows its result, else 0."""
    for i, layer in enumerate(listed):
        if layer is current:
            return i
    result = getattr(current, "result", None)
    for i, layer in enumerate(listed):
        if result is not None and getattr(layer, "result", None) is result:
            return i
    return 0


def card_truth_classes(provenance: Mapping[str, Any]) -> Mapping[str, str] | None:
    """``slidelens.truth_classes`` of the card of the model that made the result
    (:func:`~viewer.result_layers.result_model_card`); ``None`` when it has no such
    mapping or the card cannot be read (the truth's own message then names any class
    it cannot place)."""
    from inference.models.card import ModelError

    try:
        mapping = result_model_card(provenance).truth_classes
    except (ModelError, OSError):
        return None
    return dict(mapping) or None


def result_snapshot(result: Any) -> Any:
    """``result`` as it is now: a copy of a result grid or segmentation map (a running
    job keeps folding batches into the layer's own result), anything else as it is."""
    from inference.results.store import ResultGrid, SegmentationMap, result_from_arrays

    if isinstance(result, ResultGrid | SegmentationMap):
        arrays = {k: v.copy() for k, v in result.arrays().items()}
        return result_from_arrays(result.meta(), arrays)
    return result


@dataclass(frozen=True)
class ClassComparison:
    """What one comparison made: the tissue and class truth (kept for the next
    comparison on the same inputs), the samples and their report."""

    tissue: TissueMask
    truth: TruthMask
    samples: ClassSamples
    report: ClassReport


def compare_classes(
    source: SlideSource,
    result: RasterResult,
    truth_path: Path,
    provenance: Mapping[str, Any],
    *,
    tissue: TissueMask | None = None,
    truth: TruthMask | None = None,
    mpp: float | None = None,
) -> ClassComparison:
    """Compare ``result`` (made by the model ``provenance`` records) with the class
    truth at ``truth_path`` over the tissue of ``source``.  ``tissue`` and ``truth``,
    when given, are used instead of being computed or read again.  Slow: call it off
    the GUI thread.  Raises :class:`~inference.evaluation.truth.TruthError` (a binary
    mask, a label or GeoJSON class the model has no class for: the message names the
    file and the cause) or :class:`~inference.evaluation.sampling.MetricsError`."""
    from inference.engine.tissue import tissue_mask
    from inference.evaluation.class_truth import load_class_truth
    from inference.evaluation.multiclass import collect_class_samples, compute_class_metrics

    dims = source.info.dimensions
    if truth is None:
        truth = load_class_truth(
            truth_path,
            dims,
            result.class_names,
            truth_classes=card_truth_classes(provenance),
            l0_origin=source.info.l0_bounds_origin,  # GeoJSON counts from the bounds
        )
    if tissue is None:
        tissue = tissue_mask(source)
    samples = collect_class_samples(result, truth, tissue, l0_dimensions=dims)
    return ClassComparison(tissue, truth, samples, compute_class_metrics(samples, mpp=mpp))


def class_caption(report: ClassReport, slide: Path | None, model: str) -> str:
    """What the saved files are about: ``slide a.tiff, model m, truth a.mask.png`` (as
    ``slidelens evaluate`` writes it)."""
    truth = report.truth_path.name if report.truth_path else "ground truth"
    slide_name = slide.name if slide is not None else "(no slide)"
    return f"slide {slide_name}, model {model}, truth {truth}"


def class_file_paths(csv_path: Path) -> tuple[Path, Path, Path]:
    """Where :func:`write_class_files` writes for ``csv_path``: ``<stem>.csv`` (per-class
    figures), ``<stem>.confusion.csv`` and ``<stem>.confusion.png``."""
    stem = csv_path.with_suffix("")
    return (
        stem.with_suffix(".csv"),
        Path(f"{stem}.confusion.csv"),
        Path(f"{stem}.confusion.png"),
    )


def write_class_files(csv_path: Path, report: ClassReport, caption: str) -> list[Path]:
    """Write the per-class metrics CSV, the confusion CSV and the confusion PNG
    (:func:`class_file_paths`), each with ``caption``; return their paths.  Raises
    :class:`OSError` when one cannot be written."""
    from inference.evaluation.class_plots import (
        write_class_confusion_csv,
        write_class_confusion_png,
        write_class_metrics_csv,
    )

    metrics_csv, confusion_csv, confusion_png = class_file_paths(csv_path)
    return [
        write_class_metrics_csv(metrics_csv, report, caption=caption),
        write_class_confusion_csv(confusion_csv, report, caption=caption),
        write_class_confusion_png(confusion_png, report, caption=caption),
    ]
