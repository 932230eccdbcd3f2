"""Compare a result of N classes with a ground truth of the same classes.

Usage (``slidelens evaluate`` and the viewer alike)::

    truth = load_class_truth(path, dims, result.class_names, truth_classes=card.truth_classes)
    samples = collect_class_samples(result, truth, tissue)
    report = compute_class_metrics(samples, mpp=mpp)
    report.summary(); report.to_dict()

A sample is one square of the result's grid (a patch, or a segmentation pixel) over
tissue, left out for the reasons of :mod:`inference.evaluation.sampling`.  Its truth is
the class that covers the largest share of its area (exact areas, the first class on a
tie; area past the truth's edge is class 0); its prediction is the most likely class.

Figures (scikit-learn computes them; ``n`` samples, ``C`` classes, classes in the
model's order):

* the ``C x C`` confusion matrix (rows truth, columns predicted; scikit-learn's
  ``confusion_matrix``) and the same with each row divided by its sum (``None`` for a
  class the truth does not hold);
* overall accuracy; macro-F1 (``f1_score(average="macro")`` over the classes in the
  truth or the predictions); Cohen's kappa with quadratic weights over the class
  indices (``cohen_kappa_score(weights="quadratic")``: the classes are taken as ordered,
  as PANDA's labels are), ``None`` when truth and prediction hold a single class;
* per class, one against the rest: sensitivity ``TP/(TP+FN)``, specificity
  ``TN/(TN+FP)``, precision, Dice ``2TP/(2TP+FP+FN)``, IoU ``TP/(TP+FP+FN)`` and ROC AUC of
  the class's probability (``roc_auc_score``), each ``None`` when undefined (no sample
  of the class, or nothing else).

Two-class results keep the binary report of :mod:`inference.evaluation.metrics`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from inference.evaluation.sampling import (
    DEFAULT_MIN_FRACTION,
    MetricsError,
    RasterResult,
    area_fractions,
    check_alignment,
    check_fractions,
    select_cells,
)

if TYPE_CHECKING:
    from inference.core.geometry import Rect
    from inference.engine.tissue import TissueMask
    from inference.evaluation.truth import TruthMask


@dataclass(frozen=True)
class ClassSamples:
    """The scored grid squares of one result against one N-class truth.

    ``rows``/``cols`` index the result's raster; ``probs`` ``(n, C)`` are the class
    probabilities, ``truth`` ``(n,)`` the truth class and ``truth_share`` the share of
    the square that class covers; ``excluded`` counts the squares left out per reason.
    """

    class_names: tuple[str, ...]
    task: str
    raster_shape: tuple[int, int]
    l0_origin: tuple[float, float]
    l0_per_px: float
    rows: np.ndarray
    cols: np.ndarray
    probs: np.ndarray
    truth: np.ndarray
    truth_share: np.ndarray
    excluded: Mapping[str, int]
    truth_path: Path | None = None
    min_tissue_fraction: float = DEFAULT_MIN_FRACTION
    notes: tuple[str, ...] = field(default=())

    @property
    def n(self) -> int:
        return len(self.truth)

    @staticmethod
    def pooled(parts: Sequence[ClassSamples]) -> ClassSamples:
        """The samples of several slides (same classes) as one set, for figures over a
        cohort: probabilities, truth and exclusions are joined; the geometry is the first
        part's (``rows``/``cols`` index each slide's own raster)."""
        if not parts:
            raise MetricsError("nothing to pool: no samples")
        first = parts[0]
        if any(p.class_names != first.class_names for p in parts):
            raise MetricsError("samples of results with other classes cannot be pooled")
        excluded = {k: sum(int(p.excluded.get(k, 0)) for p in parts) for k in first.excluded}
        notes = tuple(n for p in parts for n in p.notes)
        return replace(
            first,
            rows=np.concatenate([p.rows for p in parts]),
            cols=np.concatenate([p.cols for p in parts]),
            probs=np.concatenate([p.probs for p in parts]),
            truth=np.concatenate([p.truth for p in parts]),
            truth_share=np.concatenate([p.truth_share for p in parts]),
            excluded=excluded,
            truth_path=None if len(parts) > 1 else first.truth_path,
            notes=notes,
        )

    @property
    def predicted(self) -> np.ndarray:
        """``(n,)`` the most likely class of each sample (the first on a tie)."""
        return np.argmax(self.probs, axis=1).astype(np.int64)


def collect_class_samples(
    result: RasterResult,
    truth: TruthMask,
    tissue: TissueMask | None,
    *,
    l0_region: Rect | None = None,
    l0_dimensions: tuple[int, int] | None = None,
    min_tissue_fraction: float = DEFAULT_MIN_FRACTION,
) -> ClassSamples:
    """Every grid square of ``result`` that is computed tissue, with its truth class from
    ``truth`` (whose labels are class indices: :func:`load_class_truth`).  Raises
    :class:`MetricsError` for a result of fewer than two classes, a truth that does not
    line up with the slide or holds a label the result has no class for, or nothing left
    to score."""
    check_fractions(DEFAULT_MIN_FRACTION, min_tissue_fraction)
    names = tuple(result.class_names)
    count = len(names)
    if count < 2:
        raise MetricsError("a class report needs a result of at least two classes")
    check_alignment(result, truth, tissue, l0_dimensions)
    shape = result.raster_shape
    l0_origin, l0_per_px = result.raster_geometry()
    probs_all = np.asarray(result.probabilities(), np.float32)
    if probs_all.shape != (count, *shape):
        raise MetricsError(f"result raster is {probs_all.shape[1:]}, expected {shape}")
    has_value = np.asarray(np.isfinite(probs_all).all(axis=0), bool)
    remaining, excluded = select_cells(
        result,
        has_value,
        tissue,
        l0_region=l0_region,
        min_tissue_fraction=min_tissue_fraction,
    )
    labels = truth.label_image
    top = int(labels.max()) if labels.size else 0
    if top >= count:
        raise MetricsError(
            f"{truth.path.name}: holds label {top}, but the result has {count} classes "
            f"({', '.join(names)})"
        )
    rows, cols = np.nonzero(remaining)
    shares = np.empty((len(rows), count), np.float64)
    for k in range(count):
        share = area_fractions(labels == k, truth.l0_per_px, l0_origin, l0_per_px, shape)
        shares[:, k] = share[rows, cols]
    shares[:, 0] += np.clip(1.0 - shares.sum(axis=1), 0.0, 1.0)  # past the truth's edge
    truth_class = np.argmax(shares, axis=1).astype(np.int64)
    notes = [f"{truth.path.name}: {truth.note}"] if truth.note else []
    return ClassSamples(
        class_names=names,
        task=str(result.task),
        raster_shape=(int(shape[0]), int(shape[1])),
        l0_origin=(float(l0_origin[0]), float(l0_origin[1])),
        l0_per_px=float(l0_per_px),
        rows=rows,
        cols=cols,
        probs=probs_all[:, rows, cols].T.astype(np.float64),
        truth=truth_class,
        truth_share=shares[np.arange(len(rows)), truth_class],
        excluded=excluded,
        truth_path=truth.path,
        min_tissue_fraction=min_tissue_fraction,
        notes=tuple(notes),
    )


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None


@dataclass(frozen=True)
class ClassFigures:
    """One class against the rest (see the module docstring)."""

    name: str
    index: int
    tp: int
    fp: int
    fn: int
    tn: int
    auc: float | None

    @property
    def truth_count(self) -> int:
        return self.tp + self.fn

    @property
    def predicted_count(self) -> int:
        return self.tp + self.fp

    @property
    def sensitivity(self) -> float | None:
        return _ratio(self.tp, self.tp + self.fn)

    @property
    def specificity(self) -> float | None:
        return _ratio(self.tn, self.tn + self.fp)

    @property
    def precision(self) -> float | None:
        return _ratio(self.tp, self.tp + self.fp)

    @property
    def dice(self) -> float | None:
        return _ratio(2 * self.tp, 2 * self.tp + self.fp + self.fn)

    @property
    def iou(self) -> float | None:
        return _ratio(self.tp, self.tp + self.fp + self.fn)

    def to_dict(self, square_mm2: float | None) -> dict[str, Any]:
        def area(count: int) -> float | None:
            return None if square_mm2 is None else count * square_mm2

        return {
            "name": self.name,
            "index": self.index,
            "truth_squares": self.truth_count,
            "predicted_squares": self.predicted_count,
            "truth_area_mm2": area(self.truth_count),
            "predicted_area_mm2": area(self.predicted_count),
            "counts": {"tp": self.tp, "fp": self.fp, "fn": self.fn, "tn": self.tn},
            "sensitivity": self.sensitivity,
            "specificity": self.specificity,
            "precision": self.precision,
            "dice": self.dice,
            "iou": self.iou,
            "auc": self.auc,
        }


def _json_safe(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


@dataclass(frozen=True)
class ClassReport:
    """Every figure of one N-class comparison (see the module docstring)."""

    class_names: tuple[str, ...]
    task: str
    confusion: np.ndarray
    accuracy: float | None
    macro_f1: float | None
    quadratic_weighted_kappa: float | None
    per_class: tuple[ClassFigures, ...]
    excluded: Mapping[str, int]
    cell_l0_px: float
    raster_shape: tuple[int, int]
    mpp: float | None = None
    truth_path: Path | None = None
    min_tissue_fraction: float = DEFAULT_MIN_FRACTION
    notes: tuple[str, ...] = field(default=())

    @property
    def n_samples(self) -> int:
        return int(self.confusion.sum())

    @property
    def confusion_normalised(self) -> list[list[float | None]]:
        """Each row of the confusion matrix divided by its sum (``None`` for an empty row)."""
        out: list[list[float | None]] = []
        for row in self.confusion:
            total = int(row.sum())
            out.append([int(v) / total if total else None for v in row])
        return out

    @property
    def square_area_mm2(self) -> float | None:
        """One grid square's area in mm² (``None`` without a pixel size)."""
        if self.mpp is None:
            return None
        side = self.cell_l0_px * self.mpp / 1000.0
        return side * side

    def summary(self) -> str:
        """One line: accuracy, macro-F1, kappa, number of classes and squares."""

        def num(v: float | None) -> str:
            return "n/a" if v is None else f"{v:.3f}"

        accuracy = "n/a" if self.accuracy is None else f"{100 * self.accuracy:.1f} %"
        return (
            f"Accuracy {accuracy}, macro-F1 {num(self.macro_f1)}, quadratic weighted kappa "
            f"{num(self.quadratic_weighted_kappa)} ({len(self.class_names)} classes, "
            f"{self.n_samples:,} tissue grid squares)"
        )

    def to_dict(self) -> dict[str, Any]:
        """Everything as plain JSON values (undefined is ``None``)."""
        doc = {
            "report": "classes",
            "class_names": list(self.class_names),
            "task": self.task,
            "truth": self.truth_path,
            "rules": {
                "sample": "one square of the result's grid (a patch, or a segmentation pixel)",
                "truth": "the class covering the largest share of the square",
                "prediction": "the most likely class",
                "min_tissue_fraction": self.min_tissue_fraction,
            },
            "samples": {
                "n": self.n_samples,
                "excluded": dict(self.excluded),
                "raster_shape": list(self.raster_shape),
                "cell_l0_px": self.cell_l0_px,
            },
            "metrics": {
                "accuracy": self.accuracy,
                "macro_f1": self.macro_f1,
                "quadratic_weighted_kappa": self.quadratic_weighted_kappa,
            },
            "per_class": [c.to_dict(self.square_area_mm2) for c in self.per_class],
            "confusion_matrix": {
                "rows": "truth",
                "columns": "predicted",
                "labels": list(self.class_names),
                "matrix": self.confusion.tolist(),
                "row_normalised": self.confusion_normalised,
            },
            "mpp": self.mpp,
            "summary": self.summary(),
            "notes": list(self.notes),
        }
        cleaned: dict[str, Any] = _json_safe(doc)
        return cleaned


def quadratic_weighted_kappa(
    truth: np.ndarray, predicted: np.ndarray, labels: list[int]
) -> float | None:
    """Cohen's kappa with quadratic weights (scikit-learn) over ordered ``labels``;
    ``None`` when truth and prediction hold one and the same single label (undefined)."""
    from sklearn.metrics import cohen_kappa_score

    if len(truth) == 0 or len(np.union1d(truth, predicted)) < 2:
        return None
    return float(cohen_kappa_score(truth, predicted, labels=labels, weights="quadratic"))


def compute_class_metrics(samples: ClassSamples, *, mpp: float | None = None) -> ClassReport:
    """The report of ``samples``; ``mpp`` (level-0 um per pixel) adds areas in mm².
    Raises :class:`MetricsError` when there are no samples."""
    from sklearn.metrics import confusion_matrix, f1_score, roc_auc_score

    if samples.n == 0:
        raise MetricsError("nothing to evaluate: no samples")
    count = len(samples.class_names)
    labels = list(range(count))
    truth, predicted = samples.truth, samples.predicted
    matrix = confusion_matrix(truth, predicted, labels=labels).astype(np.int64)
    n = int(matrix.sum())
    per_class = []
    for k, name in enumerate(samples.class_names):
        tp = int(matrix[k, k])
        fn = int(matrix[k].sum()) - tp
        fp = int(matrix[:, k].sum()) - tp
        positive = truth == k
        auc = None
        if positive.any() and not positive.all():
            auc = float(roc_auc_score(positive, samples.probs[:, k]))
        per_class.append(ClassFigures(name, k, tp, fp, fn, n - tp - fn - fp, auc))
    return ClassReport(
        class_names=samples.class_names,
        task=samples.task,
        confusion=matrix,
        accuracy=float(np.trace(matrix)) / n,
        macro_f1=float(f1_score(truth, predicted, average="macro", zero_division=0)),
        quadratic_weighted_kappa=quadratic_weighted_kappa(truth, predicted, labels),
        per_class=tuple(per_class),
        excluded=dict(samples.excluded),
        cell_l0_px=samples.l0_per_px,
        raster_shape=samples.raster_shape,
        mpp=mpp if mpp is not None and mpp > 0 else None,
        truth_path=samples.truth_path,
        min_tissue_fraction=samples.min_tissue_fraction,
        notes=samples.notes,
    )


def evaluate_classes(
    result: RasterResult,
    truth: TruthMask,
    tissue: TissueMask | None,
    *,
    mpp: float | None = None,
    l0_region: Rect | None = None,
    l0_dimensions: tuple[int, int] | None = None,
    min_tissue_fraction: float = DEFAULT_MIN_FRACTION,
) -> ClassReport:
    """:func:`collect_class_samples` then :func:`compute_class_metrics`."""
    samples = collect_class_samples(
        result,
        truth,
        tissue,
        l0_region=l0_region,
        l0_dimensions=l0_dimensions,
        min_tissue_fraction=min_tissue_fraction,
    )
    return compute_class_metrics(samples, mpp=mpp)
