"""A result as a class map: the most likely class of every raster cell, and how sure it is.

:class:`ClassMap` is the Qt-free data a viewer needs for a class-map layer, its legend
and its hover text, and what the slide report (:mod:`inference.results.slide_report`)
and the heatmap TIFF's class-map page are made from.  It has the geometry of the
result's raster (:meth:`raster_geometry`: level-0 origin of cell ``(0, 0)`` and level-0
pixels per cell), so it lines up with the heatmaps.

Contract for a cell with probabilities ``p`` (``C`` classes):

* ``labels``: ``argmax(p)`` (the first class on a tie) as int16; :data:`NO_VALUE` (-1)
  where the result has no value.  A one-output model (``C == 1``) has one class, which
  applies at ``p >= threshold`` (the card's ``slidelens.threshold``); below it the cell
  is :data:`NO_CLASS` (-2): computed tissue that is not the class.
* ``confidence``: the probability of the cell's class (``1 - p`` for :data:`NO_CLASS`),
  float32, NaN without a value.
* ``margin``: the most likely class's probability minus the runner-up's (``|2p - 1|``
  with one output): small where the model hesitates between two classes.

Areas count whole cells (a cell at the slide's edge counts whole).  No torch, no Qt.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from inference.core.geometry import raster_index

#: Label of a cell without a value (not computed, background, outside the region).
NO_VALUE = -1
#: Label of a computed cell of a one-output model whose probability is below threshold.
NO_CLASS = -2


class ClassResult(Protocol):
    """What a class map needs of a result (``ResultGrid`` and ``SegmentationMap`` have it)."""

    @property
    def class_names(self) -> tuple[str, ...]: ...

    def raster_geometry(self) -> tuple[tuple[float, float], float]: ...

    def probabilities(self, rows: slice = ..., cols: slice = ...) -> np.ndarray: ...


def certainty(probs: np.ndarray) -> np.ndarray:
    """``(h, w)`` float32: one minus the normalised entropy of ``(C, h, w)`` probabilities,
    ``1 - H(p) / log(C)`` with ``0 log 0 = 0``: 1 where one class has all the probability,
    0 where all ``C`` are equally likely; NaN where a cell has no value.  A one-output
    model's ``p`` is read as the two classes ``p`` and ``1 - p``.  Outputs that do not
    sum to one (a sigmoid per class) are shared out first (``p / sum(p)``), so three
    classes at 0.9 each are as undecided as three at 1/3; a cell of all zeros is 0."""
    values = np.asarray(probs, np.float32)
    if len(values) == 1:
        values = np.concatenate([values, 1.0 - values])
    filled = np.isfinite(values).all(axis=0)
    p = np.clip(np.nan_to_num(values, nan=0.0), 0.0, None)
    total = p.sum(axis=0)
    p = np.where(total > 0, p / np.where(total > 0, total, 1.0), 1.0 / len(values))
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * np.log(p), 0.0)
    entropy = -terms.sum(axis=0) / np.log(len(values))
    return np.where(filled, np.clip(1.0 - entropy, 0.0, 1.0), np.nan).astype(np.float32)


@dataclass(frozen=True)
class Region:
    """One connected region of a class (8-connected cells), in level-0 pixels:
    ``l0_rect`` its bounding box ``(x, y, w, h)``, ``l0_point`` the centre of its most
    interior cell (always inside the region: where a "go to" button should go),
    ``cells`` its size in cells."""

    l0_rect: tuple[float, float, float, float]
    l0_point: tuple[float, float]
    cells: int

    def to_dict(self, cell_area_mm2: float | None) -> dict[str, Any]:
        return {
            "l0_rect": [round(v, 2) for v in self.l0_rect],
            "l0_point": [round(v, 2) for v in self.l0_point],
            "cells": self.cells,
            "area_mm2": None if cell_area_mm2 is None else round(self.cells * cell_area_mm2, 6),
        }


@dataclass(frozen=True)
class ClassMap:
    """The class map of one result (see the module docstring for the contract)."""

    class_names: tuple[str, ...]
    labels: np.ndarray
    confidence: np.ndarray
    margin: np.ndarray
    l0_origin: tuple[float, float]
    l0_per_px: float

    @classmethod
    def from_result(cls, result: ClassResult, *, threshold: float = 0.5) -> ClassMap:
        """The class map of ``result`` (one snapshot of its probabilities); ``threshold``
        applies to one-output models only."""
        probs = np.asarray(result.probabilities(), np.float32)
        origin, l0_per_px = result.raster_geometry()
        valid = np.isfinite(probs).all(axis=0)
        labels = np.full(valid.shape, NO_VALUE, np.int16)
        confidence = np.full(valid.shape, np.nan, np.float32)
        margin = np.full(valid.shape, np.nan, np.float32)
        if valid.any():
            values = probs[:, valid]
            if len(probs) == 1:
                p = values[0]
                on = p >= threshold
                labels[valid] = np.where(on, 0, NO_CLASS).astype(np.int16)
                confidence[valid] = np.where(on, p, 1.0 - p)
                margin[valid] = np.abs(2.0 * p - 1.0)
            else:
                best = np.argmax(values, axis=0)
                top = np.take_along_axis(values, best[None], axis=0)[0]
                runner_up = np.partition(values, -2, axis=0)[-2]
                labels[valid] = best.astype(np.int16)
                confidence[valid] = top
                margin[valid] = top - runner_up
        return cls(
            class_names=tuple(result.class_names),
            labels=labels,
            confidence=confidence,
            margin=margin,
            l0_origin=(float(origin[0]), float(origin[1])),
            l0_per_px=float(l0_per_px),
        )

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.labels.shape[0]), int(self.labels.shape[1])

    def raster_geometry(self) -> tuple[tuple[float, float], float]:
        """Level-0 top-left of cell ``(0, 0)`` and level-0 pixels per cell."""
        return self.l0_origin, self.l0_per_px

    @property
    def valid_cells(self) -> int:
        """Cells with a value (computed tissue)."""
        return int(np.count_nonzero(self.labels != NO_VALUE))

    def counts(self) -> np.ndarray:
        """``(C,)`` int64: the cells of each class."""
        classified = self.labels[self.labels >= 0]
        return np.bincount(classified, minlength=self.num_classes)[: self.num_classes].astype(
            np.int64
        )

    def cell_area_mm2(self, mpp: float | None) -> float | None:
        """The area of one cell in mm² for level-0 ``mpp`` (``None`` without one)."""
        if mpp is None or not mpp > 0:
            return None
        side_mm = self.l0_per_px * mpp / 1000.0
        return side_mm * side_mm

    def class_at(self, l0_x: float, l0_y: float) -> tuple[int, float] | None:
        """``(label, confidence)`` of the cell under a level-0 point (the label may be
        :data:`NO_CLASS`), or ``None`` outside the raster or where there is no value."""
        index = raster_index(l0_x, l0_y, self.l0_origin, self.l0_per_px, self.shape)
        if index is None:
            return None
        label = int(self.labels[index])
        if label == NO_VALUE:
            return None
        return label, float(self.confidence[index])

    def largest_region(self, class_index: int) -> Region | None:
        """The largest 8-connected region of ``class_index`` (the first found on a tie),
        or ``None`` when no cell has that class."""
        import cv2

        cells = (self.labels == class_index).astype(np.uint8)
        if not cells.any():
            return None
        count, components, stats, _ = cv2.connectedComponentsWithStats(cells, connectivity=8)
        areas = stats[1:count, cv2.CC_STAT_AREA]
        k = 1 + int(np.argmax(areas))
        x, y = int(stats[k, cv2.CC_STAT_LEFT]), int(stats[k, cv2.CC_STAT_TOP])
        w, h = int(stats[k, cv2.CC_STAT_WIDTH]), int(stats[k, cv2.CC_STAT_HEIGHT])
        region = np.pad((components == k).astype(np.uint8), 1)
        depth = cv2.distanceTransform(region, cv2.DIST_L2, 3)[1:-1, 1:-1]
        row, col = np.unravel_index(int(np.argmax(depth)), depth.shape)
        d, (o_x, o_y) = self.l0_per_px, self.l0_origin
        return Region(
            l0_rect=(o_x + x * d, o_y + y * d, w * d, h * d),
            l0_point=(o_x + (col + 0.5) * d, o_y + (row + 0.5) * d),
            cells=int(areas[k - 1]),
        )
