"""ROC analysis: the ROC curve and its area, exact with ties, as scikit-learn computes them.

* :func:`roc_auc`: the Mann-Whitney statistic with average ranks for ties, i.e. the
  share of (positive, negative) pairs in which the positive scores higher, ties counting
  one half; equal to ``sklearn.metrics.roc_auc_score``.
* :func:`roc_curve`: the points of ``sklearn.metrics.roc_curve`` (thresholds descending,
  starting at ``(0, 0)`` with threshold ``+inf``, collinear intermediate points dropped).

Both take ``O(n log n)``; ``None`` / an empty curve when the labels hold one class.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float | None:
    """Area under the ROC curve by ranks (average ranks over ties); ``None`` when the
    labels hold only one class.  Exact: equals the share of (positive, negative) pairs
    in which the positive scores higher, ties counting one half."""
    values = np.asarray(scores, np.float64).ravel()
    positive = np.asarray(labels, bool).ravel()
    if values.shape != positive.shape:
        raise ValueError(f"{values.shape[0]} scores but {positive.shape[0]} labels")
    if np.isnan(values).any():
        raise ValueError("scores contain NaN")
    n_pos = int(positive.sum())
    n_neg = len(positive) - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    order = np.argsort(values, kind="mergesort")
    ordered = values[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    ends = np.r_[starts[1:], len(ordered)]
    # 1-based ranks; every member of a run of equal scores gets the run's mean rank
    group_rank = (starts + 1 + ends) / 2.0
    ranks = np.empty(len(values), np.float64)
    ranks[order] = np.repeat(group_rank, ends - starts)
    u = float(ranks[positive].sum()) - n_pos * (n_pos + 1) / 2.0
    return u / (n_pos * n_neg)


@dataclass(frozen=True)
class RocCurve:
    """ROC points in threshold order: ``fpr[k], tpr[k]`` are the rates when samples
    scoring ``>= thresholds[k]`` are called positive.  ``thresholds[0]`` is ``+inf``
    (nothing positive).  Empty when the truth holds only one class."""

    fpr: np.ndarray
    tpr: np.ndarray
    thresholds: np.ndarray

    def __len__(self) -> int:
        return len(self.fpr)

    def thinned(self, max_points: int) -> RocCurve:
        """At most ``max_points`` (>= 2) of the points, evenly by index, both ends kept."""
        if max_points < 2:
            raise ValueError("a thinned ROC curve keeps at least 2 points")
        if len(self) <= max_points:
            return self
        keep = np.unique(np.round(np.linspace(0, len(self) - 1, max_points)).astype(np.intp))
        return RocCurve(self.fpr[keep], self.tpr[keep], self.thresholds[keep])


def roc_curve(
    scores: np.ndarray, labels: np.ndarray, *, drop_intermediate: bool = True
) -> RocCurve:
    """The ROC curve as scikit-learn's ``roc_curve`` computes it (see :class:`RocCurve`)."""
    values = np.asarray(scores, np.float64).ravel()
    positive = np.asarray(labels, bool).ravel()
    n_pos = int(positive.sum())
    n_neg = len(positive) - n_pos
    if n_pos == 0 or n_neg == 0:
        empty = np.zeros(0, np.float64)
        return RocCurve(empty, empty.copy(), empty.copy())
    order = np.argsort(-values, kind="mergesort")
    ordered = values[order]
    last_of_run = np.r_[np.flatnonzero(np.diff(ordered)), len(ordered) - 1]
    tps = np.cumsum(positive[order], dtype=np.int64)[last_of_run]
    fps = 1 + last_of_run - tps
    thresholds = ordered[last_of_run]
    if drop_intermediate and len(fps) > 2:
        keep = np.flatnonzero(
            np.r_[True, np.logical_or(np.diff(fps, 2) != 0, np.diff(tps, 2) != 0), True]
        )
        fps, tps, thresholds = fps[keep], tps[keep], thresholds[keep]
    return RocCurve(
        fpr=np.r_[0.0, fps / n_neg],
        tpr=np.r_[0.0, tps / n_pos],
        thresholds=np.r_[np.inf, thresholds],
    )
