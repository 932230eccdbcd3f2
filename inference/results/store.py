"""Result grids built from the engine's batches (the on-disk cache is
:mod:`inference.results.cache`).

* :class:`ResultGrid` (classification): per-class probabilities on a grid of cells, one
  cell per patch.  Cell ``(c, r)`` is the stride-sized square centred on patch
  ``(c, r)``; without overlap that is the patch itself.  With overlap every cell holds
  the average of the patches that cover it, weighted by the area they cover.  The raw
  per-patch probabilities are kept too (for CSV and GeoJSON export).
* :class:`SegmentationMap` (segmentation): per-class probability maps at a stated
  downsample (``l0_per_px``), blended from overlapping tiles with a Hann window so the
  seams of the sliding window disappear.

Cells or pixels without a value are NaN; patches skipped as background are recorded in
``background`` and never carry a value.  A classification job run with embeddings keeps
them too (:attr:`ResultGrid.embeddings`, a
:class:`~inference.results.embeddings.PatchEmbeddings`), saved and loaded with the rest.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

# atomic_write and atomic_write_text moved to inference.core.atomic_io; they stay importable
# from here because export_results and older callers import them from this module.
from inference.core.geometry import Rect, raster_index, raster_window
from inference.engine.patches import PatchGrid
from inference.results.embeddings import PatchEmbeddings

if TYPE_CHECKING:
    from inference.engine.job import BatchResult


#: Bumped when the cache layout changes; older entries then read as misses.
CACHE_FORMAT = 1


def _check_batch_grid(grid: PatchGrid, batch: BatchResult) -> None:
    if batch.grid != grid:
        raise ValueError(f"batch of grid {batch.grid} folded into a result of grid {grid}")


class _PatchResults:
    """What classification and segmentation results share: the grid, per-patch values."""

    task: ClassVar[str] = ""

    def __init__(self, grid: PatchGrid, class_names: Iterable[str]) -> None:
        self.grid = grid
        self.class_names: tuple[str, ...] = tuple(class_names)
        if not self.class_names:
            raise ValueError("a result needs at least one class")
        shape = (len(self.class_names), grid.p_rows, grid.p_cols)
        #: Raw per-patch probabilities (segmentation: mean over the patch), NaN if absent.
        self.patch_probs = np.full(shape, np.nan, np.float32)
        #: Patches skipped because they are background.
        self.background = np.zeros((grid.p_rows, grid.p_cols), bool)
        #: Patch embeddings, when the job asked for them (``None`` otherwise).
        self.embeddings: PatchEmbeddings | None = None

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def computed(self) -> np.ndarray:
        """``(p_rows, p_cols)`` bool: patches the model has seen."""
        return ~np.isnan(self.patch_probs[0])

    @property
    def coverage(self) -> float:
        """The fraction of the grid's patches that are resolved (computed or background)."""
        return float((self.computed | self.background).mean())

    def _mark(self, batch: BatchResult) -> None:
        _check_batch_grid(self.grid, batch)
        if len(batch.background_p_ij):
            bg = np.asarray(batch.background_p_ij)
            self.background[bg[:, 1], bg[:, 0]] = True

    def _fold_embeddings(self, batch: BatchResult) -> None:
        values = batch.embeddings
        if values is None or len(batch.p_ij) == 0:
            return
        if self.embeddings is None:
            self.embeddings = PatchEmbeddings(
                self.grid.p_rows, self.grid.p_cols, int(values.shape[1]), batch.embedding_layer
            )
        self.embeddings.add(np.asarray(batch.p_ij), values)

    def patch_table(self) -> tuple[np.ndarray, np.ndarray]:
        """Computed patches, row by row: level-0 ``(n, 4)`` int64 x, y, w, h; ``(n, C)`` probs."""
        rows, cols = np.nonzero(self.computed)
        p_ij = np.stack([cols, rows], axis=1)
        xy = self.grid.l0_xy(p_ij)
        size = np.full((len(xy), 2), self.grid.l0_patch, np.int64)
        probs = self.patch_probs[:, rows, cols].T.astype(np.float32)
        return np.concatenate([xy, size], axis=1), probs

    def heatmap(self, class_index: int = -1) -> tuple[np.ndarray, tuple[float, float], float]:
        """One class's probabilities as an image, its level-0 origin and level-0 px per pixel."""
        origin, l0_per_px = self.raster_geometry()
        return self.probabilities()[class_index], origin, l0_per_px

    def raster_geometry(self) -> tuple[tuple[float, float], float]:
        """Level-0 top-left of pixel ``(0, 0)`` of :meth:`probabilities`, and level-0 px
        per pixel."""
        raise NotImplementedError

    @property
    def raster_shape(self) -> tuple[int, int]:
        """``(rows, cols)`` of :meth:`probabilities`."""
        raise NotImplementedError

    def probabilities(self, rows: slice = slice(None), cols: slice = slice(None)) -> np.ndarray:
        """``(C, h, w)`` float32 probabilities (of the window ``rows`` x ``cols``), NaN
        where there is no value."""
        raise NotImplementedError

    def raster_window(self, l0_rect: Rect) -> tuple[slice, slice]:
        """The ``(rows, cols)`` slices of the raster pixels that ``l0_rect`` touches
        (clipped; empty slices when it misses the raster)."""
        origin, l0_per_px = self.raster_geometry()
        return raster_window(l0_rect, origin, l0_per_px, self.raster_shape)

    def values_at(self, l0_x: float, l0_y: float) -> np.ndarray | None:
        """``(C,)`` probabilities of the raster pixel under a level-0 point, or ``None``
        outside the raster or where there is no value."""
        origin, l0_per_px = self.raster_geometry()
        index = raster_index(l0_x, l0_y, origin, l0_per_px, self.raster_shape)
        if index is None:
            return None
        row, col = index
        values = self.probabilities(slice(row, row + 1), slice(col, col + 1))[:, 0, 0]
        return values if np.isfinite(values).all() else None

    def batch_l0_bounds(self, batch: BatchResult) -> Rect | None:
        """The level-0 rectangle a batch's patches cover (``None`` for an empty batch)."""
        if len(batch.p_ij) == 0:
            return None
        xy = np.asarray(batch.l0_xy)
        x0, y0 = xy.min(axis=0)
        x1, y1 = xy.max(axis=0) + self.grid.l0_patch
        return Rect(float(x0), float(y0), float(x1 - x0), float(y1 - y0))

    def argmax(self) -> np.ndarray:
        """The most probable class per cell or pixel (int16), -1 where there is no value."""
        probs = self.probabilities()
        valid = ~np.isnan(probs).any(axis=0)
        out = np.full(probs.shape[1:], -1, np.int16)
        if valid.any():
            out[valid] = np.argmax(probs[:, valid], axis=0).astype(np.int16)
        return out

    # -- persistence ---------------------------------------------------------------

    def meta(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "class_names": list(self.class_names),
            "grid": self.grid.to_dict(),
            **(self.embeddings.meta() if self.embeddings is not None else {}),
        }

    def arrays(self) -> dict[str, np.ndarray]:
        return {"patch_probs": self.patch_probs, "background": self.background}

    def stored_arrays(self) -> dict[str, np.ndarray]:
        """:meth:`arrays` and the embeddings' arrays, when there are embeddings: what
        the cache and the result archive keep (see :func:`result_from_arrays`)."""
        extra = self.embeddings.arrays() if self.embeddings is not None else {}
        return {**self.arrays(), **extra}

    def _load_arrays(self, arrays: Mapping[str, np.ndarray]) -> None:
        for name, current in self.arrays().items():
            value = np.asarray(arrays[name])
            if value.shape != current.shape:
                raise ValueError(f"{name}: shape {value.shape}, expected {current.shape}")
            current[...] = value


def _overlap_weights(grid: PatchGrid) -> list[tuple[int, float]]:
    """``(d, w)``: a patch adds weight ``w`` to the cell ``d`` cells from its own (1-D).

    Cell ``i`` spans ``[i*s + m, i*s + m + s)`` with ``m = (P - s) / 2``; patch ``j``
    spans ``[j*s, j*s + P)``; ``w`` is the covered fraction of the cell.
    """
    p, s = float(grid.l0_patch), float(grid.l0_stride)
    m = (p - s) / 2.0
    reach = math.ceil(p / s) + 1
    weights = []
    for d in range(-reach, reach + 1):
        covered = min(p, d * s + m + s) - max(0.0, d * s + m)
        if covered > 1e-9:
            weights.append((d, covered / s))
    return weights


class ResultGrid(_PatchResults):
    """Classification results on the patch grid (see the module docstring)."""

    task: ClassVar[str] = "classification"

    def __init__(self, grid: PatchGrid, class_names: Iterable[str]) -> None:
        super().__init__(grid, class_names)
        self.sums = np.zeros((self.num_classes, grid.p_rows, grid.p_cols), np.float64)
        #: Summed overlap weights per cell (the "counts" of the averaging).
        self.weights = np.zeros((grid.p_rows, grid.p_cols), np.float64)
        one_d = _overlap_weights(grid)
        self._offsets = [(dx, dy, wx * wy) for dx, wx in one_d for dy, wy in one_d]

    def add(self, batch: BatchResult) -> None:
        """Fold one batch in (classification batches only)."""
        self._mark(batch)
        if len(batch.p_ij) == 0:
            return
        if batch.probs.ndim != 2:
            raise ValueError("a segmentation batch cannot be folded into a ResultGrid")
        self._fold_embeddings(batch)
        p_ij = np.asarray(batch.p_ij, np.int64)
        probs = np.asarray(batch.probs, np.float64).T  # (C, n)
        self.patch_probs[:, p_ij[:, 1], p_ij[:, 0]] = probs
        for dx, dy, w in self._offsets:
            cols, rows = p_ij[:, 0] + dx, p_ij[:, 1] + dy
            ok = (cols >= 0) & (cols < self.grid.p_cols) & (rows >= 0) & (rows < self.grid.p_rows)
            if not ok.any():
                continue
            # indices within one offset are unique, so plain fancy-index += is exact
            self.sums[:, rows[ok], cols[ok]] += w * probs[:, ok]
            self.weights[rows[ok], cols[ok]] += w

    def probabilities(self, rows: slice = slice(None), cols: slice = slice(None)) -> np.ndarray:
        """``(C, p_rows, p_cols)`` float32 averaged probabilities (or a window of them),
        NaN where none."""
        sums = self.sums[:, rows, cols]
        weights = self.weights[rows, cols]
        out = np.full(sums.shape, np.nan, np.float32)
        has = (weights > 0) & ~self.background[rows, cols]
        out[:, has] = (sums[:, has] / weights[has]).astype(np.float32)
        return out

    def cell_l0_origin(self) -> tuple[float, float]:
        """Level-0 top-left corner of cell ``(0, 0)`` (cells are ``l0_stride`` wide)."""
        margin = (self.grid.l0_patch - self.grid.l0_stride) / 2.0
        return self.grid.l0_origin[0] + margin, self.grid.l0_origin[1] + margin

    def raster_geometry(self) -> tuple[tuple[float, float], float]:
        return self.cell_l0_origin(), float(self.grid.l0_stride)

    @property
    def raster_shape(self) -> tuple[int, int]:
        return self.grid.p_rows, self.grid.p_cols

    def arrays(self) -> dict[str, np.ndarray]:
        return {**super().arrays(), "sums": self.sums, "weights": self.weights}


def hann_weights(tile_px: int, floor: float = 1e-3) -> np.ndarray:
    """A ``(t, t)`` separable Hann window sampled at pixel centres, never below ``floor``."""
    i = np.arange(tile_px, dtype=np.float64)
    w1 = np.sin(np.pi * (i + 0.5) / tile_px) ** 2
    return np.maximum(np.outer(w1, w1), floor).astype(np.float32)


class SegmentationMap(_PatchResults):
    """Segmentation probability maps at ``l0_per_px`` level-0 px per map pixel."""

    task: ClassVar[str] = "segmentation"

    def __init__(
        self, grid: PatchGrid, class_names: Iterable[str], l0_per_px: float, tile_px: int
    ) -> None:
        super().__init__(grid, class_names)
        self.l0_per_px = float(l0_per_px)
        self.tile_px = int(tile_px)
        extent = grid.l0_extent
        m_w = max(1, math.ceil(extent.w / self.l0_per_px))
        m_h = max(1, math.ceil(extent.h / self.l0_per_px))
        self.sums = np.zeros((self.num_classes, m_h, m_w), np.float32)
        self.weights = np.zeros((m_h, m_w), np.float32)
        self._window = hann_weights(self.tile_px)

    def add(self, batch: BatchResult) -> None:
        """Fold one batch of ``(n, C, t, t)`` probability tiles in."""
        self._mark(batch)
        if len(batch.p_ij) == 0:
            return
        tiles = np.asarray(batch.probs, np.float32)
        if tiles.ndim != 4 or tiles.shape[2:] != (self.tile_px, self.tile_px):
            raise ValueError(f"expected (n, C, {self.tile_px}, {self.tile_px}) tiles")
        if batch.l0_per_px is not None and not math.isclose(batch.l0_per_px, self.l0_per_px):
            raise ValueError("batch tiles are at a different downsample than the map")
        p_ij = np.asarray(batch.p_ij, np.int64)
        self.patch_probs[:, p_ij[:, 1], p_ij[:, 0]] = tiles.mean(axis=(2, 3)).T
        m_h, m_w = self.weights.shape
        ox, oy = self.grid.l0_origin
        t = self.tile_px
        for k, (l0_x, l0_y) in enumerate(self.grid.l0_xy(p_ij)):
            m_x = round((l0_x - ox) / self.l0_per_px)
            m_y = round((l0_y - oy) / self.l0_per_px)
            w, h = min(t, m_w - m_x), min(t, m_h - m_y)
            if w <= 0 or h <= 0:
                continue
            win = self._window[:h, :w]
            self.sums[:, m_y : m_y + h, m_x : m_x + w] += tiles[k, :, :h, :w] * win
            self.weights[m_y : m_y + h, m_x : m_x + w] += win

    def probabilities(self, rows: slice = slice(None), cols: slice = slice(None)) -> np.ndarray:
        """``(C, H, W)`` float32 blended probabilities (or a window of them), NaN where no
        tile reached."""
        sums = self.sums[:, rows, cols]
        weights = self.weights[rows, cols]
        out = np.full(sums.shape, np.nan, np.float32)
        has = weights > 0
        out[:, has] = sums[:, has] / weights[has]
        return out

    def raster_geometry(self) -> tuple[tuple[float, float], float]:
        return (float(self.grid.l0_origin[0]), float(self.grid.l0_origin[1])), self.l0_per_px

    @property
    def raster_shape(self) -> tuple[int, int]:
        return self.weights.shape[0], self.weights.shape[1]

    def meta(self) -> dict[str, Any]:
        return {**super().meta(), "l0_per_px": self.l0_per_px, "tile_px": self.tile_px}

    def arrays(self) -> dict[str, np.ndarray]:
        return {**super().arrays(), "sums": self.sums, "weights": self.weights}


InferenceResult = ResultGrid | SegmentationMap


def new_result(batch: BatchResult) -> InferenceResult:
    """An empty result of the right kind for a job's batches."""
    if batch.probs.ndim == 4:
        if batch.l0_per_px is None:
            raise ValueError("segmentation batch without l0_per_px")
        return SegmentationMap(
            batch.grid, batch.class_names, batch.l0_per_px, int(batch.probs.shape[-1])
        )
    return ResultGrid(batch.grid, batch.class_names)


def collect(batches: Iterable[BatchResult]) -> InferenceResult | None:
    """Fold a whole run into one result (``None`` if the run yielded nothing)."""
    result: InferenceResult | None = None
    for batch in batches:
        if result is None:
            result = new_result(batch)
        result.add(batch)
    return result


def result_from_arrays(
    meta: Mapping[str, Any], arrays: Mapping[str, np.ndarray]
) -> InferenceResult:
    """Rebuild a result from :meth:`meta` and :meth:`arrays` (raises on any mismatch)."""
    grid = PatchGrid.from_dict(meta["grid"])
    names = [str(n) for n in meta["class_names"]]
    result: InferenceResult
    if meta["task"] == "segmentation":
        result = SegmentationMap(grid, names, float(meta["l0_per_px"]), int(meta["tile_px"]))
    elif meta["task"] == "classification":
        result = ResultGrid(grid, names)
    else:
        raise ValueError(f"unknown task {meta['task']!r}")
    result._load_arrays(arrays)
    result.embeddings = PatchEmbeddings.from_arrays(grid.p_rows, grid.p_cols, meta, arrays)
    return result
