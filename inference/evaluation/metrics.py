"""Compare a result with ground truth: confusion counts, rates, Dice, IoU, ROC and AUC.

Usage (GUI panel and ``slidelens evaluate`` alike)::

    samples = collect_samples(result, truth, tissue, "tumour")   # geometry, once
    report = compute_metrics(samples, threshold=0.5)              # cheap, per threshold
    report.summary(); report.to_dict()

or :func:`evaluate` for both steps.  Figures, tables and files of a report (ROC and
confusion PNGs, CSVs) are in :mod:`inference.evaluation.plots`, which depends on this
module (never the other way).  What a sample is (one raster cell of the result,
over tissue only, truth by exact area share >= 0.5) is defined in
:mod:`inference.evaluation.sampling`.  A sample is predicted positive when the positive
class's probability is ``>= threshold``.

Definitions (``P``/``N`` truth-positive/negative samples, ``n = P + N``):

* rates: TPR (sensitivity) ``TP/P``, TNR (specificity) ``TN/N``, FPR ``FP/N``, FNR
  ``FN/P``, precision (PPV) ``TP/(TP+FP)``, NPV ``TN/(TN+FN)``, accuracy ``(TP+TN)/n``;
* Dice (F1) ``2TP/(2TP+FP+FN)``, IoU (Jaccard) ``TP/(TP+FP+FN)``;
* prevalence = truth area ``P/n``; "mask area" = predicted-positive area ``(TP+FP)/n``:
  shares of the evaluated tissue (every sample has the same area);
* ROC AUC: the Mann-Whitney statistic with average ranks for ties, i.e. the chance
  that a random positive scores above a random negative, ties counting one half; equal
  to scikit-learn's ``roc_auc_score``.  The ROC curve has sklearn's ``roc_curve`` points
  (thresholds descending, starting at ``(0, 0)`` with threshold ``+inf``, collinear
  intermediate points dropped).

A rate whose denominator is zero is undefined: ``None``, never NaN.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from inference.evaluation.roc import RocCurve, roc_auc, roc_curve
from inference.evaluation.sampling import (
    DEFAULT_MIN_FRACTION,
    EXCLUSION_REASONS,
    OUTCOME_EXCLUDED,
    OUTCOME_FN,
    OUTCOME_FP,
    OUTCOME_TN,
    OUTCOME_TP,
    EvaluationSamples,
    MetricsError,
    RasterResult,
    area_fractions,
    collect_samples,
    resolve_class,
)

if TYPE_CHECKING:
    from inference.core.geometry import Rect
    from inference.engine.tissue import TissueMask
    from inference.evaluation.truth import TruthMask

__all__ = [
    "EXCLUSION_REASONS",
    "FIGURES",
    "OUTCOME_EXCLUDED",
    "OUTCOME_FN",
    "OUTCOME_FP",
    "OUTCOME_TN",
    "OUTCOME_TP",
    "EvaluationSamples",
    "MetricsError",
    "MetricsReport",
    "RasterResult",
    "RocCurve",
    "area_fractions",
    "collect_samples",
    "compute_metrics",
    "evaluate",
    "resolve_class",
    "roc_auc",
    "roc_curve",
]


# -- report ----------------------------------------------------------------------------------


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None


def _clean(value: Any) -> Any:
    """JSON-safe: numpy scalars to Python, non-finite floats to ``None``."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100.0 * value:.1f} %"


def _num(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


#: ``(attribute, label)`` of the figures, in the order tables list them.
FIGURES: tuple[tuple[str, str], ...] = (
    ("accuracy", "Accuracy"),
    ("tpr", "Sensitivity (TPR)"),
    ("tnr", "Specificity (TNR)"),
    ("fpr", "False positive rate (FPR)"),
    ("fnr", "False negative rate (FNR)"),
    ("precision", "Precision (PPV)"),
    ("npv", "Negative predictive value (NPV)"),
    ("dice", "Dice (F1)"),
    ("iou", "IoU (Jaccard)"),
    ("auc", "ROC AUC"),
    ("prevalence", "Prevalence (truth area / tissue)"),
    ("predicted_positive_fraction", "Mask area (predicted area / tissue)"),
)


@dataclass(frozen=True)
class MetricsReport:
    """Every figure of one comparison (see the module docstring for definitions).

    Counts are over ``n_samples`` tissue grid squares (raster cells: patches, or
    segmentation pixels) of ``cell_l0_px`` level-0 px a side; ``excluded`` counts the
    squares left out per reason.  User-facing text says "grid squares", never "cells",
    which a pathologist reads as biological cells.  Rates are fractions in [0, 1]
    or ``None`` when undefined.  Areas in mm² are ``None`` without a pixel size.
    """

    class_name: str
    class_index: int
    class_names: tuple[str, ...]
    task: str
    threshold: float
    tp: int
    tn: int
    fp: int
    fn: int
    auc: float | None
    roc: RocCurve
    excluded: Mapping[str, int]
    cell_l0_px: float
    raster_shape: tuple[int, int]
    mpp: float | None = None
    truth_path: Path | None = None
    min_truth_fraction: float = DEFAULT_MIN_FRACTION
    min_tissue_fraction: float = DEFAULT_MIN_FRACTION
    notes: tuple[str, ...] = field(default=())

    # counts
    @property
    def n_samples(self) -> int:
        return self.tp + self.tn + self.fp + self.fn

    @property
    def n_positive(self) -> int:
        """Samples the truth calls positive (``P``)."""
        return self.tp + self.fn

    @property
    def n_negative(self) -> int:
        return self.tn + self.fp

    @property
    def n_predicted_positive(self) -> int:
        return self.tp + self.fp

    @property
    def confusion_matrix(self) -> np.ndarray:
        """``[[TN, FP], [FN, TP]]``: rows truth (negative, positive), columns predicted,
        as scikit-learn's ``confusion_matrix(truth, predicted)``."""
        return np.array([[self.tn, self.fp], [self.fn, self.tp]], np.int64)

    @property
    def confusion_labels(self) -> tuple[str, str]:
        return f"not {self.class_name}", self.class_name

    # rates
    @property
    def accuracy(self) -> float | None:
        return _ratio(self.tp + self.tn, self.n_samples)

    @property
    def tpr(self) -> float | None:
        """Sensitivity, recall."""
        return _ratio(self.tp, self.n_positive)

    @property
    def tnr(self) -> float | None:
        """Specificity."""
        return _ratio(self.tn, self.n_negative)

    @property
    def fpr(self) -> float | None:
        return _ratio(self.fp, self.n_negative)

    @property
    def fnr(self) -> float | None:
        return _ratio(self.fn, self.n_positive)

    @property
    def precision(self) -> float | None:
        """Positive predictive value."""
        return _ratio(self.tp, self.n_predicted_positive)

    @property
    def npv(self) -> float | None:
        return _ratio(self.tn, self.tn + self.fn)

    sensitivity = tpr
    specificity = tnr
    ppv = precision

    @property
    def dice(self) -> float | None:
        """Dice coefficient, equal to F1."""
        return _ratio(2 * self.tp, 2 * self.tp + self.fp + self.fn)

    @property
    def iou(self) -> float | None:
        """Intersection over union (Jaccard index)."""
        return _ratio(self.tp, self.tp + self.fp + self.fn)

    @property
    def prevalence(self) -> float | None:
        """Truth-positive share of the evaluated tissue."""
        return _ratio(self.n_positive, self.n_samples)

    truth_positive_fraction = prevalence

    @property
    def predicted_positive_fraction(self) -> float | None:
        """ "Mask area": the predicted-positive share of the evaluated tissue."""
        return _ratio(self.n_predicted_positive, self.n_samples)

    mask_area = predicted_positive_fraction

    # areas
    @property
    def cell_area_mm2(self) -> float | None:
        """One sample's area in mm², when the slide's pixel size is known."""
        if self.mpp is None:
            return None
        side_mm = self.cell_l0_px * self.mpp / 1000.0
        return side_mm * side_mm

    def areas_mm2(self) -> dict[str, float] | None:
        """Evaluated tissue, truth-positive and predicted-positive areas in mm²."""
        cell = self.cell_area_mm2
        if cell is None:
            return None
        return {
            "tissue": self.n_samples * cell,
            "truth_positive": self.n_positive * cell,
            "predicted_positive": self.n_predicted_positive * cell,
            "true_positive": self.tp * cell,
        }

    def figures(self) -> dict[str, float | None]:
        """The rates of :data:`FIGURES` by attribute name."""
        return {name: getattr(self, name) for name, _ in FIGURES}

    def summary(self) -> str:
        """One line: mask area, accuracy, TPR, FPR, Dice, AUC, class, threshold, n."""
        return (
            f"Mask area {_pct(self.predicted_positive_fraction)}, accuracy "
            f"{_pct(self.accuracy)}, TPR {_pct(self.tpr)}, FPR {_pct(self.fpr)}, Dice "
            f"{_num(self.dice)}, AUC {_num(self.auc)} (class {self.class_name}, threshold "
            f"{self.threshold:g}, {self.n_samples:,} tissue grid squares)"
        )

    def to_dict(self, *, max_roc_points: int | None = None) -> dict[str, Any]:
        """Everything as plain JSON values (no NaN or infinity: undefined is ``None``).
        ``max_roc_points`` thins the ROC curve (:meth:`RocCurve.thinned`)."""
        roc = self.roc if max_roc_points is None else self.roc.thinned(max_roc_points)
        doc = {
            "class": {"name": self.class_name, "index": self.class_index},
            "class_names": list(self.class_names),
            "task": self.task,
            "threshold": self.threshold,
            "truth": self.truth_path,
            "rules": {
                "sample": "one square of the result's grid (a patch, or a segmentation pixel)",
                "positive_prediction": "probability >= threshold",
                "min_truth_fraction": self.min_truth_fraction,
                "min_tissue_fraction": self.min_tissue_fraction,
            },
            "samples": {
                "n": self.n_samples,
                "truth_positive": self.n_positive,
                "truth_negative": self.n_negative,
                "predicted_positive": self.n_predicted_positive,
                "excluded": dict(self.excluded),
                "raster_shape": list(self.raster_shape),
                "cell_l0_px": self.cell_l0_px,
            },
            "counts": {"tp": self.tp, "tn": self.tn, "fp": self.fp, "fn": self.fn},
            "confusion_matrix": {
                "rows": "truth",
                "columns": "predicted",
                "labels": list(self.confusion_labels),
                "matrix": self.confusion_matrix.tolist(),
            },
            "metrics": {
                **self.figures(),
                "sensitivity": self.tpr,
                "specificity": self.tnr,
                "truth_positive_fraction": self.prevalence,
            },
            "mpp": self.mpp,
            "areas_mm2": self.areas_mm2(),
            "roc": {
                "points_total": len(self.roc),
                "fpr": roc.fpr.tolist(),
                "tpr": roc.tpr.tolist(),
                "thresholds": roc.thresholds.tolist(),
            },
            "summary": self.summary(),
            "notes": list(self.notes),
        }
        cleaned: dict[str, Any] = _clean(doc)
        return cleaned


def _check_threshold(threshold: float) -> float:
    value = float(threshold)
    if not 0.0 <= value <= 1.0:
        raise MetricsError(f"threshold must be a probability in [0, 1], not {threshold}")
    return value


def compute_metrics(
    samples: EvaluationSamples, threshold: float = 0.5, *, mpp: float | None = None
) -> MetricsReport:
    """The report of ``samples`` at ``threshold`` (``>= threshold`` is positive);
    ``mpp`` (level-0 microns per pixel) adds areas in mm².  Raises
    :class:`MetricsError` for a threshold outside [0, 1] or no samples."""
    value = _check_threshold(threshold)
    if samples.n == 0:
        raise MetricsError("nothing to evaluate: no samples")
    predicted = samples.predicted(value)
    truth = samples.truth
    tp = int(np.count_nonzero(predicted & truth))
    fp = int(np.count_nonzero(predicted & ~truth))
    fn = int(np.count_nonzero(~predicted & truth))
    tn = samples.n - tp - fp - fn
    return MetricsReport(
        class_name=samples.class_name,
        class_index=samples.class_index,
        class_names=samples.class_names,
        task=samples.task,
        threshold=value,
        tp=tp,
        tn=tn,
        fp=fp,
        fn=fn,
        auc=samples.auc,
        roc=samples.roc,
        excluded=dict(samples.excluded),
        cell_l0_px=samples.l0_per_px,
        raster_shape=samples.raster_shape,
        mpp=mpp if mpp is not None and mpp > 0 else None,
        truth_path=samples.truth_path,
        min_truth_fraction=samples.min_truth_fraction,
        min_tissue_fraction=samples.min_tissue_fraction,
        notes=samples.notes,
    )


def evaluate(
    result: RasterResult,
    truth: TruthMask,
    tissue: TissueMask | None,
    positive_class: int | str,
    threshold: float = 0.5,
    *,
    mpp: float | None = None,
    l0_region: Rect | None = None,
    l0_dimensions: tuple[int, int] | None = None,
    min_truth_fraction: float = DEFAULT_MIN_FRACTION,
    min_tissue_fraction: float = DEFAULT_MIN_FRACTION,
) -> MetricsReport:
    """:func:`collect_samples` then :func:`compute_metrics`.  Raises :class:`MetricsError`."""
    _check_threshold(threshold)
    samples = collect_samples(
        result,
        truth,
        tissue,
        positive_class,
        l0_region=l0_region,
        l0_dimensions=l0_dimensions,
        min_truth_fraction=min_truth_fraction,
        min_tissue_fraction=min_tissue_fraction,
    )
    return compute_metrics(samples, threshold, mpp=mpp)
