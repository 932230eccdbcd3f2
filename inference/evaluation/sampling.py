"""The samples a result is scored on: one per raster cell of the result, over tissue only.

A result (a classification :class:`~inference.results.store.ResultGrid` or a segmentation
:class:`~inference.results.store.SegmentationMap`) is a raster of cells, each
``l0_per_px`` level-0 pixels square (:meth:`raster_geometry`).  Every cell is one
sample, scored by the positive class's probability in it.  Its truth is decided by
area, exactly: the share of the cell's level-0 area that the ground-truth mask covers
(:func:`area_fractions`, computed from the mask's pixel squares, not by sampling), and
the cell is positive when that share is at least ``min_truth_fraction`` (0.5).  Parts of
a cell outside the mask (past the slide's edge) count as not positive.

A cell is left out, and counted under the first reason that applies, when:

1. ``outside_region``: a region was given and the cell's centre is not in it;
2. ``background``: it has no value because the engine skipped its patch as background;
3. ``uncomputed``: it has no value for another reason (not run yet, cancelled,
   unreadable, outside the computed region);
4. ``non_tissue``: less than ``min_tissue_fraction`` (0.5) of its area is tissue in the
   slide's tissue mask (same exact area rule as the truth).

Shares are compared with a tolerance of :data:`FRACTION_TOLERANCE`, so a cell that the
truth covers exactly half-way is positive whatever the floating-point rounding.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from inference.core.geometry import Rect
from inference.evaluation.roc import RocCurve, roc_auc, roc_curve

if TYPE_CHECKING:
    from inference.engine.tissue import TissueMask
    from inference.evaluation.truth import TruthMask

#: Area shares within this of a rule's limit count as reaching it.
FRACTION_TOLERANCE = 1e-9
#: Reasons a cell is not a sample, in the order they are tested.
EXCLUSION_REASONS: tuple[str, ...] = ("outside_region", "background", "uncomputed", "non_tissue")
#: Default share of a cell that must be truth (tissue) for it to be truth (tissue).
DEFAULT_MIN_FRACTION = 0.5
#: Cells processed at once by :func:`area_fractions` are bounded by this many elements.
_BLOCK_ELEMENTS = 4_000_000
#: The four outcomes of a sample in :meth:`EvaluationSamples.outcome_map`.
OUTCOME_EXCLUDED, OUTCOME_TN, OUTCOME_FP, OUTCOME_FN, OUTCOME_TP = -1, 0, 1, 2, 3


class MetricsError(ValueError):
    """A comparison that cannot be made; the message says what and why (and names the
    ground-truth file where one is concerned)."""


class RasterResult(Protocol):
    """What the metrics need of a result (``ResultGrid`` and ``SegmentationMap`` have it)."""

    @property
    def class_names(self) -> tuple[str, ...]: ...

    @property
    def task(self) -> str: ...

    @property
    def raster_shape(self) -> tuple[int, int]: ...

    def raster_geometry(self) -> tuple[tuple[float, float], float]: ...

    def probabilities(self, rows: slice = ..., cols: slice = ...) -> np.ndarray: ...


def resolve_class(class_names: Sequence[str], positive_class: int | str) -> int:
    """The index of ``positive_class`` in ``class_names``: an index (negative counts from
    the end) or a name (exact, else case-insensitive when that is unambiguous).  Raises
    :class:`MetricsError` listing the classes."""
    names = list(class_names)
    listed = ", ".join(names)
    if isinstance(positive_class, bool) or not isinstance(positive_class, int | str):
        raise MetricsError(f"class must be a name or an index, not {positive_class!r}")
    if isinstance(positive_class, int):
        if not -len(names) <= positive_class < len(names):
            raise MetricsError(
                f"class index {positive_class} is out of range; the model has "
                f"{len(names)} classes ({listed})"
            )
        return positive_class % len(names)
    if positive_class in names:
        return names.index(positive_class)
    folded = [i for i, n in enumerate(names) if n.casefold() == positive_class.casefold()]
    if len(folded) == 1:
        return folded[0]
    raise MetricsError(f"unknown class {positive_class!r}; the model's classes are: {listed}")


# -- exact area shares ---------------------------------------------------------------------


def _integral_at(cumulative: np.ndarray, positions: np.ndarray, axis: int) -> np.ndarray:
    """Linear interpolation of a cumulative sum (leading zero included) along ``axis`` at
    fractional ``positions`` clipped to its range: the exact integral of a piecewise
    constant function from 0 to each position."""
    n = cumulative.shape[axis] - 1
    pos = np.clip(positions, 0.0, float(n))
    lower = np.minimum(np.floor(pos).astype(np.intp), max(n - 1, 0))
    frac = pos - lower
    low = np.take(cumulative, lower, axis=axis)
    high = np.take(cumulative, np.minimum(lower + 1, n), axis=axis)
    shape = [1] * cumulative.ndim
    shape[axis] = len(positions)
    out: np.ndarray = low + frac.reshape(shape) * (high - low)
    return out


def area_fractions(
    mask: np.ndarray,
    mask_l0_per_px: float,
    l0_origin: tuple[float, float],
    l0_per_px: float,
    shape: tuple[int, int],
) -> np.ndarray:
    """The exact share of each cell of a raster that ``mask`` covers.

    ``mask`` pixel ``(i, j)`` is the level-0 square ``[j*m, (j+1)*m) x [i*m, (i+1)*m)``
    with ``m = mask_l0_per_px``; raster cell ``(r, c)`` is the level-0 square at
    ``l0_origin + (c, r) * l0_per_px`` of side ``l0_per_px``.  Returns ``shape``
    float64 values in ``[0, 1]``: covered area over the cell's whole area (outside the
    mask counts as not covered).  Separable integral images, processed in blocks of rows
    so memory stays bounded for any mask and raster size.
    """
    rows, cols = shape
    out = np.zeros((rows, cols), np.float64)
    m_h, m_w = mask.shape
    if rows == 0 or cols == 0 or m_h == 0 or m_w == 0:
        return out
    scale = l0_per_px / mask_l0_per_px  # mask px per raster cell side
    o_x, o_y = l0_origin[0] / mask_l0_per_px, l0_origin[1] / mask_l0_per_px
    x_edges = o_x + np.arange(cols + 1, dtype=np.float64) * scale
    y_edges = o_y + np.arange(rows + 1, dtype=np.float64) * scale
    mask_rows_per_row = math.ceil(scale) + 1
    per_block = max(1, _BLOCK_ELEMENTS // (mask_rows_per_row * (m_w + cols + 2)))
    for r0 in range(0, rows, per_block):
        r1 = min(rows, r0 + per_block)
        i0 = min(m_h, max(0, math.floor(y_edges[r0])))
        i1 = min(m_h, max(i0, math.ceil(y_edges[r1])))
        if i1 == i0:
            continue  # these cells lie above or below the mask
        band = mask[i0:i1].astype(np.float64)
        cum_x = np.zeros((i1 - i0, m_w + 1), np.float64)
        np.cumsum(band, axis=1, out=cum_x[:, 1:])
        per_row = np.diff(_integral_at(cum_x, x_edges, axis=1), axis=1)  # (band, cols)
        cum_y = np.zeros((i1 - i0 + 1, cols), np.float64)
        np.cumsum(per_row, axis=0, out=cum_y[1:])
        block = np.diff(_integral_at(cum_y, y_edges[r0 : r1 + 1] - i0, axis=0), axis=0)
        out[r0:r1] = block / (scale * scale)
    clipped: np.ndarray = np.clip(out, 0.0, 1.0)
    return clipped


# -- samples ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class EvaluationSamples:
    """The scored cells of one result against one ground truth, ready for any threshold
    (:func:`inference.evaluation.metrics.compute_metrics` per threshold is cheap: the AUC and the
    ROC curve are computed once and kept).

    ``rows``/``cols`` are the raster indices of the samples (row by row), ``scores`` the
    positive class's probability, ``truth_fraction`` the exact share of each cell the
    truth covers and ``truth`` whether that reaches ``min_truth_fraction``.  ``excluded``
    counts the cells left out per reason (:data:`EXCLUSION_REASONS`); samples plus
    excluded cells make up the whole raster.
    """

    class_index: int
    class_names: tuple[str, ...]
    task: str
    raster_shape: tuple[int, int]
    l0_origin: tuple[float, float]
    l0_per_px: float
    rows: np.ndarray
    cols: np.ndarray
    scores: np.ndarray
    truth_fraction: np.ndarray
    truth: np.ndarray
    excluded: Mapping[str, int]
    truth_path: Path | None = None
    min_truth_fraction: float = DEFAULT_MIN_FRACTION
    min_tissue_fraction: float = DEFAULT_MIN_FRACTION
    notes: tuple[str, ...] = field(default=())

    @property
    def class_name(self) -> str:
        return self.class_names[self.class_index]

    @property
    def n(self) -> int:
        """The number of samples."""
        return len(self.scores)

    @property
    def n_positive(self) -> int:
        """Samples the truth calls positive."""
        return int(self.truth.sum())

    @cached_property
    def auc(self) -> float | None:
        """ROC AUC of the scores against the truth (threshold-free; computed once)."""
        return roc_auc(self.scores, self.truth)

    @cached_property
    def roc(self) -> RocCurve:
        """The ROC curve (threshold-free; computed once)."""
        return roc_curve(self.scores, self.truth)

    def predicted(self, threshold: float) -> np.ndarray:
        """``(n,)`` bool: a sample is predicted positive when its score is ``>= threshold``."""
        return self.scores >= threshold

    def outcome_map(self, threshold: float) -> np.ndarray:
        """``raster_shape`` int8 map of each cell's outcome at ``threshold``:
        :data:`OUTCOME_TP`, ``_FP``, ``_FN``, ``_TN``, or :data:`OUTCOME_EXCLUDED` for
        cells that are not samples.  Same geometry as the result's raster, so the viewer
        can draw it as a layer."""
        out = np.full(self.raster_shape, OUTCOME_EXCLUDED, np.int8)
        predicted = self.predicted(threshold)
        codes = np.where(
            self.truth,
            np.where(predicted, OUTCOME_TP, OUTCOME_FN),
            np.where(predicted, OUTCOME_FP, OUTCOME_TN),
        )
        out[self.rows, self.cols] = codes.astype(np.int8)
        return out


def _background_cells(result: RasterResult, shape: tuple[int, int]) -> np.ndarray:
    """``shape`` bool: cells whose patch the engine skipped as background.

    Classification cells are patches.  A segmentation pixel belongs to the patch whose
    stride cell holds its centre.  Other result types report none.
    """
    from inference.results.store import ResultGrid, SegmentationMap

    if isinstance(result, ResultGrid):
        return np.asarray(result.background, bool)
    out = np.zeros(shape, bool)
    if isinstance(result, SegmentationMap):
        grid = result.grid
        (o_x, o_y), l0_per_px = result.raster_geometry()
        l0_x = o_x + (np.arange(shape[1]) + 0.5) * l0_per_px
        l0_y = o_y + (np.arange(shape[0]) + 0.5) * l0_per_px
        p_col = np.floor((l0_x - grid.l0_origin[0]) / grid.l0_stride).astype(np.intp)
        p_row = np.floor((l0_y - grid.l0_origin[1]) / grid.l0_stride).astype(np.intp)
        ok_c = (p_col >= 0) & (p_col < grid.p_cols)
        ok_r = (p_row >= 0) & (p_row < grid.p_rows)
        bg = result.background[np.clip(p_row, 0, grid.p_rows - 1)][
            :, np.clip(p_col, 0, grid.p_cols - 1)
        ]
        out[np.ix_(ok_r, ok_c)] = bg[np.ix_(ok_r, ok_c)]
    return out


def check_alignment(
    result: RasterResult,
    truth: TruthMask,
    tissue: TissueMask | None,
    l0_dimensions: tuple[int, int] | None,
) -> None:
    """Refuse a truth, tissue mask or result that does not cover the same slide."""
    name = truth.path.name
    t_w, t_h = truth.mask.shape[1] * truth.l0_per_px, truth.mask.shape[0] * truth.l0_per_px
    if l0_dimensions is not None:
        l0_w, l0_h = float(l0_dimensions[0]), float(l0_dimensions[1])
        slack = truth.l0_per_px + 1.0
        for got, want in ((t_w, l0_w), (t_h, l0_h)):
            if abs(got - want) > max(slack, 0.02 * want):
                raise MetricsError(
                    f"{name}: the ground truth covers {t_w:.0f} x {t_h:.0f} level-0 px but "
                    f"the slide is {l0_w:.0f} x {l0_h:.0f}; it is not this slide's ground truth"
                )
    if tissue is not None:
        s_w = tissue.mask.shape[1] * tissue.l0_per_px
        s_h = tissue.mask.shape[0] * tissue.l0_per_px
        slack = truth.l0_per_px + tissue.l0_per_px + 1.0
        for got, want in ((t_w, s_w), (t_h, s_h)):
            if abs(got - want) > max(slack, 0.02 * want):
                raise MetricsError(
                    f"{name}: the ground truth covers {t_w:.0f} x {t_h:.0f} level-0 px but "
                    f"the tissue mask {s_w:.0f} x {s_h:.0f}; they are not of the same slide"
                )
    (o_x, o_y), l0_per_px = result.raster_geometry()
    n_rows, n_cols = result.raster_shape
    raster = Rect(o_x, o_y, n_cols * l0_per_px, n_rows * l0_per_px)
    if raster.intersect(Rect(0.0, 0.0, t_w, t_h)).is_empty():
        raise MetricsError(
            f"{name}: the result covers level-0 x {raster.x:.0f}..{raster.right:.0f}, "
            f"y {raster.y:.0f}..{raster.bottom:.0f}, outside the ground truth "
            f"(0..{t_w:.0f}, 0..{t_h:.0f}); the result and the truth are not of the same slide"
        )
    if l0_dimensions is not None and not (
        0 <= o_x < l0_dimensions[0] and 0 <= o_y < l0_dimensions[1]
    ):
        raise MetricsError(
            f"the result starts at level-0 ({o_x:.0f}, {o_y:.0f}), outside the slide "
            f"({l0_dimensions[0]} x {l0_dimensions[1]}); it was computed for another slide"
        )


def select_cells(
    result: RasterResult,
    has_value: np.ndarray,
    tissue: TissueMask | None,
    *,
    l0_region: Rect | None = None,
    min_tissue_fraction: float = DEFAULT_MIN_FRACTION,
) -> tuple[np.ndarray, dict[str, int]]:
    """The cells of ``result``'s raster that are samples (see the module docstring):
    ``(raster_shape)`` bool, and the cells left out per reason (every reason of
    :data:`EXCLUSION_REASONS`, in order).  ``has_value`` says which cells hold a value.
    Raises :class:`MetricsError` when no cell is left."""
    shape = result.raster_shape
    l0_origin, l0_per_px = result.raster_geometry()
    remaining = np.ones(shape, bool)
    excluded: dict[str, int] = {}

    def drop(reason: str, cells: np.ndarray) -> None:
        hit = remaining & cells
        excluded[reason] = int(hit.sum())
        remaining[hit] = False

    in_region = np.ones(shape, bool)
    if l0_region is not None:
        c_x = l0_origin[0] + (np.arange(shape[1]) + 0.5) * l0_per_px
        c_y = l0_origin[1] + (np.arange(shape[0]) + 0.5) * l0_per_px
        in_x = (c_x >= l0_region.x) & (c_x < l0_region.right)
        in_y = (c_y >= l0_region.y) & (c_y < l0_region.bottom)
        in_region = in_y[:, None] & in_x[None, :]
    drop("outside_region", ~in_region)
    drop("background", ~has_value & _background_cells(result, shape))
    drop("uncomputed", ~has_value)
    if tissue is not None:
        tissue_share = area_fractions(tissue.mask, tissue.l0_per_px, l0_origin, l0_per_px, shape)
        drop("non_tissue", tissue_share < min_tissue_fraction - FRACTION_TOLERANCE)
    else:
        excluded["non_tissue"] = 0

    if not remaining.any():
        reasons = ", ".join(f"{n:,} {r.replace('_', ' ')}" for r, n in excluded.items() if n)
        raise MetricsError(
            f"nothing to evaluate: none of the result's {remaining.size:,} grid squares is "
            f"computed tissue ({reasons or 'empty raster'})"
        )
    return remaining, {reason: excluded.get(reason, 0) for reason in EXCLUSION_REASONS}


def check_fractions(min_truth_fraction: float, min_tissue_fraction: float) -> None:
    """Refuse minimum shares outside ``(0, 1]`` (:class:`MetricsError`)."""
    for label, value in (("truth", min_truth_fraction), ("tissue", min_tissue_fraction)):
        if not 0.0 < value <= 1.0:
            raise MetricsError(f"minimum {label} fraction must be in (0, 1], not {value}")


def collect_samples(
    result: RasterResult,
    truth: TruthMask,
    tissue: TissueMask | None,
    positive_class: int | str,
    *,
    l0_region: Rect | None = None,
    l0_dimensions: tuple[int, int] | None = None,
    min_truth_fraction: float = DEFAULT_MIN_FRACTION,
    min_tissue_fraction: float = DEFAULT_MIN_FRACTION,
) -> EvaluationSamples:
    """Score every cell of ``result`` that is computed tissue against ``truth``.

    ``tissue`` is the slide's tissue mask (``None``: every cell counts as tissue);
    ``l0_region`` keeps only cells whose centre lies in it; ``l0_dimensions`` (the
    slide's level-0 width, height) enables the strictest alignment checks.  Takes one
    snapshot of the result's probabilities, so a result still growing is scored as it
    is now.  Raises :class:`MetricsError` for an unknown class, a truth or tissue mask
    that does not line up with the slide, or when no cell is left to score.
    """
    check_fractions(min_truth_fraction, min_tissue_fraction)
    class_index = resolve_class(result.class_names, positive_class)
    check_alignment(result, truth, tissue, l0_dimensions)
    shape = result.raster_shape
    l0_origin, l0_per_px = result.raster_geometry()
    scores_all = np.asarray(result.probabilities()[class_index], np.float64)
    if scores_all.shape != shape:
        raise MetricsError(f"result raster is {scores_all.shape}, expected {shape}")
    remaining, excluded = select_cells(
        result,
        np.isfinite(scores_all),
        tissue,
        l0_region=l0_region,
        min_tissue_fraction=min_tissue_fraction,
    )
    rows, cols = np.nonzero(remaining)
    truth_share = area_fractions(truth.mask, truth.l0_per_px, l0_origin, l0_per_px, shape)
    fractions = truth_share[rows, cols]
    positive = fractions >= min_truth_fraction - FRACTION_TOLERANCE
    notes: list[str] = [f"{truth.path.name}: {truth.note}"] if truth.note else []
    if not positive.any():
        notes.append(
            f"the ground truth ({truth.path.name}) has no positive grid square in the "
            "evaluated tissue; sensitivity, AUC and the ROC curve are undefined"
        )
    elif positive.all():
        notes.append(
            f"every evaluated grid square is positive in the ground truth ({truth.path.name}); "
            "specificity, AUC and the ROC curve are undefined"
        )
    return EvaluationSamples(
        class_index=class_index,
        class_names=tuple(result.class_names),
        task=str(result.task),
        raster_shape=(int(shape[0]), int(shape[1])),
        l0_origin=(float(l0_origin[0]), float(l0_origin[1])),
        l0_per_px=float(l0_per_px),
        rows=rows,
        cols=cols,
        scores=scores_all[rows, cols],
        truth_fraction=fractions,
        truth=positive,
        excluded=excluded,
        truth_path=truth.path,
        min_truth_fraction=min_truth_fraction,
        min_tissue_fraction=min_tissue_fraction,
        notes=tuple(notes),
    )
