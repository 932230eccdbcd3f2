"""A result on screen written as files, as ``slidelens infer`` writes them, for QuPath and
other tools: ``<stem>.csv`` (one row per computed square, a ``prob_<class>`` column per
class), ``<stem>.geojson`` (QuPath tiles classified by the most likely class, every
probability in ``measurements``, coordinates from the slide's bounds corner),
``<stem>.heatmap.tiff`` (a pyramid per class and the class map for three classes or more)
and ``<stem>.slide.json`` (class areas and, for a grading model, the grade).

Contract: :func:`write_result_files` writes the four files with the writers of
:mod:`inference.results.exports` and :mod:`inference.results.slide_report`, each
atomically, in that order; it raises ``OSError`` when one cannot be written (the files
written before it stay).  The slide report holds the class areas and the grade, not a
slide-level model's answer (``slidelens infer --model HEAD`` adds that).  Slow on a large
result: call it off the GUI thread, on a result that no longer grows.  Qt-free.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from inference.models.card import ModelCard
    from inference.results.store import InferenceResult

#: The suffixes of the files, after the stem.
SUFFIXES = (".csv", ".geojson", ".heatmap.tiff", ".slide.json")


@dataclass(frozen=True)
class ResultFileSlide:
    """What the files say of the slide: its file name, content id, level-0 pixel size
    (``None``: areas unknown) and where QuPath's coordinates start (its bounds corner)."""

    name: str
    source_id: str
    mpp: float | None
    l0_origin: tuple[float, float] = (0.0, 0.0)


def result_file_paths(folder: Path, stem: str) -> tuple[Path, ...]:
    """The files :func:`write_result_files` writes, in :data:`SUFFIXES` order."""
    return tuple(Path(folder) / f"{stem}{suffix}" for suffix in SUFFIXES)


def stem_of(path: Path) -> str:
    """The stem a chosen file name stands for: ``a.model.geojson`` -> ``a.model`` (any of
    :data:`SUFFIXES` removed; a name without one is the stem itself)."""
    name = Path(path).name
    for suffix in SUFFIXES:
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name


def write_result_files(
    result: InferenceResult,
    folder: Path,
    stem: str,
    *,
    slide: ResultFileSlide,
    card: ModelCard | None,
    model: Mapping[str, Any],
) -> list[Path]:
    """Write ``result`` as files (see the module docstring) into ``folder``; ``card`` is
    the model's (its threshold for a one-output model, its grading rule; ``None``: 0.5
    and no grade), ``model`` what the report says of it (name, SHA-256)."""
    from inference.results.exports import write_csv, write_geojson, write_heatmap_tiff
    from inference.results.grading import GradingError, GradingSpec
    from inference.results.slide_report import slide_report, write_slide_report

    csv_path, geojson_path, heatmap_path, report_path = result_file_paths(folder, stem)
    threshold = card.threshold if card is not None else 0.5
    grading: GradingSpec | None = None
    if card is not None:
        try:
            grading = GradingSpec.from_card(card)
        except GradingError:
            grading = None  # the report then says nothing of a grade
        if grading is not None and not set(grading.patterns) <= set(result.class_names):
            grading = None
    write_csv(csv_path, result)
    write_geojson(geojson_path, result, threshold=threshold, l0_origin=slide.l0_origin)
    write_heatmap_tiff(
        heatmap_path,
        result,
        mpp=slide.mpp,
        extra={"slide": slide.name, "source_id": slide.source_id},
        threshold=threshold,
    )
    report = slide_report(
        result,
        mpp=slide.mpp,
        grading=grading,
        threshold=threshold,
        slide=slide.name,
        model=dict(model),
    )
    write_slide_report(report_path, report)
    return [csv_path, geojson_path, heatmap_path, report_path]
