"""Held-out metrics of the demo models, measured by running the real engine on a slide.

:func:`classifier_metrics` runs :func:`inference.engine.runner.run` over a whole slide and
compares each computed (tissue) patch's tumour probability with the ground truth: the
patch is tumour when the truth covers at least half of its level-0 rectangle.  It
reports ROC AUC and accuracy (the argmax class against that truth).

:func:`segmentation_metrics` runs the engine with a segmentation model, blends the tiles
into its :class:`~inference.results.store.SegmentationMap` and compares the tumour probability
thresholded at one half with the ground truth at the map's resolution, on the pixels the
engine's tissue mask calls tissue.  Pixels without a prediction count as "not tumour".

The same functions produce the numbers written in the cards and the numbers the tests
check.  :func:`grader_metrics` does the same for the prostate grader over several
held-out slides: per-class AUC and confusion matrix over every tissue grid square, and
each slide's grade against its truth.  No torch here (the engine imports it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from inference.evaluation.truth import TruthMask
from inference.models.demo.data import TUMOUR_FRACTION_THRESHOLD, slide_truth

if TYPE_CHECKING:
    from inference.engine.job import ModelLike
    from inference.evaluation.multiclass import ClassReport

#: The class the metrics score.
TUMOUR_CLASS = "tumour"


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve (:func:`inference.evaluation.roc.roc_auc`: exact, average
    ranks for ties).  Raises ``ValueError`` when ``labels`` hold only one class."""
    from inference.evaluation.roc import roc_auc as exact_auc

    auc = exact_auc(scores, labels)
    if auc is None:
        positive = int(np.asarray(labels, bool).sum())
        raise ValueError(
            f"AUC needs both classes; got {positive} positive, "
            f"{np.asarray(labels).size - positive} negative"
        )
    return auc


def dice(pred: np.ndarray, truth: np.ndarray) -> float:
    """``2 |P & T| / (|P| + |T|)`` of two bool arrays; 1.0 when both are empty."""
    pred, truth = np.asarray(pred, bool), np.asarray(truth, bool)
    denom = int(pred.sum()) + int(truth.sum())
    return 1.0 if denom == 0 else 2.0 * int((pred & truth).sum()) / denom


@dataclass(frozen=True)
class ClassifierMetrics:
    """Per tissue patch: ROC AUC of the tumour probability, accuracy of the argmax class,
    how many patches were scored and how many of them are tumour."""

    auc: float
    accuracy: float
    patches: int
    tumour_patches: int

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


@dataclass(frozen=True)
class SegmentationMetrics:
    """On tissue pixels of the map: Dice and IoU of ``p >= 0.5`` against the truth, the
    map's level-0 pixels per pixel, and pixel counts."""

    dice: float
    iou: float
    map_l0_per_px: float
    tissue_pixels: int
    tumour_pixels: int

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def _tumour_index(class_names: tuple[str, ...]) -> int:
    if TUMOUR_CLASS in class_names:
        return class_names.index(TUMOUR_CLASS)
    return len(class_names) - 1


def classifier_metrics(
    slide: str | Path,
    model: str | Path | ModelLike,
    *,
    truth: TruthMask | None = None,
    device: str = "cpu",
    batch_size: int = 64,
) -> ClassifierMetrics:
    """Run the engine with a patch classifier over the whole ``slide`` and score it.

    ``truth`` defaults to the mask ``slidelens synth`` wrote beside the slide.  Raises
    ``ValueError`` when the slide's tissue patches are all tumour or all not tumour.
    """
    from inference.engine.job import InferenceJob
    from inference.engine.runner import run
    from inference.results.store import ResultGrid, collect

    result = collect(
        run(InferenceJob(slide=slide, model=model, device=device, batch_size=batch_size))
    )
    if not isinstance(result, ResultGrid):
        raise ValueError(f"{model} is not a patch classifier (its result is {type(result)})")
    if truth is None:
        truth = _truth_for(slide)
    rows, cols = np.nonzero(result.computed)
    probs = result.patch_probs[:, rows, cols]
    tumour = probs[_tumour_index(result.class_names)]
    predicted = np.argmax(probs, axis=0) == _tumour_index(result.class_names)
    fractions = np.array(
        [
            truth.fraction_in(result.grid.patch_l0_rect(int(c), int(r)))
            for r, c in zip(rows, cols, strict=True)
        ],
        np.float64,
    )
    labels = fractions >= TUMOUR_FRACTION_THRESHOLD
    return ClassifierMetrics(
        auc=roc_auc(tumour, labels),
        accuracy=float((predicted == labels).mean()),
        patches=len(labels),
        tumour_patches=int(labels.sum()),
    )


def segmentation_metrics(
    slide: str | Path,
    model: str | Path | ModelLike,
    *,
    truth: TruthMask | None = None,
    device: str = "cpu",
    batch_size: int = 8,
) -> SegmentationMetrics:
    """Run the engine with a segmentation model over the whole ``slide`` and score it.

    The engine's default overlap and tile size apply (what ``slidelens infer`` does).
    ``truth`` defaults to the mask ``slidelens synth`` wrote beside the slide.
    """
    from inference.engine.job import InferenceJob
    from inference.engine.runner import run
    from inference.engine.tissue import tissue_mask
    from inference.results.store import SegmentationMap, collect
    from inference.slides import open_slide

    source = open_slide(slide)
    try:
        tissue = tissue_mask(source)
        job = InferenceJob(
            slide=source, model=model, device=device, batch_size=batch_size, tissue=tissue
        )
        result = collect(run(job))
        dimensions = source.info.dimensions
    finally:
        source.close()
    if not isinstance(result, SegmentationMap):
        raise ValueError(f"{model} is not a segmentation model (its result is {type(result)})")
    if truth is None:
        truth = _truth_for(slide, dimensions)
    if result.grid.l0_origin != (0, 0):
        raise ValueError("a whole-slide segmentation map starts at the slide's origin")
    probs = result.probabilities()[_tumour_index(result.class_names)]
    shape = (int(probs.shape[0]), int(probs.shape[1]))
    on_map = truth.resampled(shape, result.l0_per_px)
    # the tissue mask is resampled with the truth's nearest-at-centre rule
    on_tissue = TruthMask(tissue.mask, tissue.l0_per_px, Path(str(slide))).resampled(
        shape, result.l0_per_px
    )
    predicted = np.nan_to_num(probs, nan=0.0) >= 0.5
    p, t = predicted[on_tissue], on_map[on_tissue]
    union = int((p | t).sum())
    return SegmentationMetrics(
        dice=dice(p, t),
        iou=1.0 if union == 0 else int((p & t).sum()) / union,
        map_l0_per_px=float(result.l0_per_px),
        tissue_pixels=int(on_tissue.sum()),
        tumour_pixels=int(t.sum()),
    )


def _truth_for(slide: str | Path, dimensions: tuple[int, int] | None = None) -> TruthMask:
    if dimensions is None:
        from inference.slides import open_slide

        source = open_slide(slide)
        try:
            dimensions = source.info.dimensions
        finally:
            source.close()
    return slide_truth(Path(slide), dimensions)


@dataclass(frozen=True)
class GraderMetrics:
    """A grader on held-out slides: the class report of every tissue grid square of every
    slide pooled (:mod:`inference.evaluation.multiclass`; per-class one-vs-rest AUC,
    confusion matrix, accuracy, macro-F1) and each slide's grade against its
    ``<stem>.truth.json`` with the cohort's agreement
    (:func:`inference.evaluation.cohort.cohort_summary`)."""

    report: ClassReport
    cohort: dict[str, Any]

    def card_metrics(self) -> dict[str, float]:
        """The numbers a card's ``metrics`` holds: ``auc_<class>`` (pooled over the
        held-out squares), ``accuracy``, ``macro_f1`` and the slide-level
        ``quadratic_weighted_kappa`` and ``grade_accuracy`` (undefined ones left out)."""
        out = {f"auc_{c.name}": c.auc for c in self.report.per_class}
        out["accuracy"] = self.report.accuracy
        out["macro_f1"] = self.report.macro_f1
        out["quadratic_weighted_kappa"] = self.cohort["quadratic_weighted_kappa"]
        out["grade_accuracy"] = self.cohort["grade_accuracy"]
        return {k: round(float(v), 5) for k, v in out.items() if v is not None}

    def as_dict(self) -> dict[str, Any]:
        report = self.report.to_dict()
        return {
            "squares": report["samples"]["n"],
            "per_class": report["per_class"],
            "confusion_matrix": report["confusion_matrix"],
            "metrics": report["metrics"],
            "cohort": self.cohort,
        }


def grader_metrics(
    slides: Sequence[str | Path],
    model: str | Path | ModelLike,
    *,
    device: str = "cpu",
    batch_size: int = 64,
) -> GraderMetrics:
    """Run the engine with a grading patch classifier over each whole synthetic prostate
    slide and score it against the label mask and ``<stem>.truth.json`` beside it (see
    :class:`GraderMetrics`).  The grade is the slide report's
    (:func:`inference.results.slide_report.slide_report`) with the card's grading."""
    from inference.engine.job import InferenceJob
    from inference.engine.runner import run
    from inference.engine.tissue import tissue_mask
    from inference.evaluation.class_truth import load_class_truth
    from inference.evaluation.cohort import SlideGrade, cohort_summary, read_truth_grade
    from inference.evaluation.multiclass import (
        ClassSamples,
        collect_class_samples,
        compute_class_metrics,
    )
    from inference.models import load_model, resolve_model
    from inference.results.grading import GradingSpec
    from inference.results.slide_report import slide_report
    from inference.results.store import collect
    from inference.slides import open_slide
    from inference.slides.synth.writer import truth_json_path, truth_paths

    loaded = (
        load_model(resolve_model(str(model)), device=device)
        if isinstance(model, str | Path)
        else model
    )
    grading = GradingSpec.from_card(loaded.card)
    if grading is None:
        raise ValueError(f"{loaded.card.name} declares no grading (slidelens.grading)")
    parts: list[ClassSamples] = []
    grades: list[SlideGrade] = []
    mpp: float | None = None
    for slide in slides:
        source = open_slide(slide)
        try:
            tissue = tissue_mask(source)
            job = InferenceJob(
                slide=source, model=loaded, device=device, batch_size=batch_size, tissue=tissue
            )
            result = collect(run(job))
            dimensions = source.info.dimensions
            mpp = source.info.mpp
        finally:
            source.close()
        if result is None:
            raise ValueError(f"{Path(slide).name}: the engine computed nothing")
        mask, _ = truth_paths(Path(slide))
        truth = load_class_truth(mask, dimensions, result.class_names)
        parts.append(collect_class_samples(result, truth, tissue, l0_dimensions=dimensions))
        report = slide_report(result, mpp=mpp, grading=grading, threshold=loaded.card.threshold)
        isup, score = read_truth_grade(truth_json_path(Path(slide)))
        grades.append(
            SlideGrade(
                Path(slide).name, isup, int(report["isup_grade"]), score, report["gleason_score"]
            )
        )
    pooled = compute_class_metrics(ClassSamples.pooled(parts), mpp=mpp)
    return GraderMetrics(report=pooled, cohort=cohort_summary(grades))
