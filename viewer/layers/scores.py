"""Per-patch score layers: attention of a slide-level head, similarity to a clicked patch.

:class:`ScoreGrid` holds ``K`` named channels of one value per patch of a result's grid
(NaN where a patch has none) with the raster geometry of that result's
:class:`~inference.results.store.ResultGrid` (cells of one stride, centred on their
patches), so it lines up with the model's heatmap.  It shows its values either **raw**
or as **rank percentiles** (each patch's rank among the channel's patches, 0 for the
lowest to 1 for the highest, ties sharing their mean rank): attention is a softmax over
every patch of a slide, so raw values are tiny and one strong region makes every other
one look cold; percentiles show the ordering everywhere.  The chosen scaling is what
:meth:`ScoreGrid.probabilities` returns; :meth:`ScoreGrid.raw_at` always gives the raw
values.

:class:`ScoreLayer` is a :class:`~viewer.layers.heatmap.HeatmapLayer` over a
:class:`ScoreGrid` (painted, exported and listed in the Layers panel like one) with a
``scaling`` setting; switching it resets the layer's colour range to the scaling's
(``raw``: from the lowest to the highest value; ``percentile``: 0 to 1).  Its kinds:
:class:`AttentionLayer` and :class:`SimilarityLayer`.  Qt-free.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Literal

import numpy as np

from inference.core.geometry import Rect, raster_index, raster_window
from inference.engine.patches import PatchGrid
from viewer.layers.heatmap import HeatmapLayer

Scaling = Literal["raw", "percentile"]
SCALINGS: tuple[Scaling, ...] = ("raw", "percentile")
#: What the legend says of each scaling.
SCALING_LABELS: Mapping[str, str] = {"raw": "", "percentile": "(rank percentile)"}


def rank_percentiles(values: np.ndarray) -> np.ndarray:
    """Each finite value's rank among the finite values, scaled to 0..1 (ties share
    their mean rank; a single value is 1); NaN stays NaN."""
    out = np.full(values.shape, np.nan, np.float32)
    finite = np.isfinite(values)
    v = values[finite].astype(np.float64)
    if v.size == 0:
        return out
    if v.size == 1:
        out[finite] = 1.0
        return out
    order = np.argsort(v, kind="mergesort")
    ordered = v[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    ends = np.r_[starts[1:], len(ordered)]
    mean_rank = (starts + ends - 1) / 2.0  # 0-based mean rank of each run of ties
    ranks = np.empty(v.size, np.float64)
    ranks[order] = np.repeat(mean_rank, ends - starts)
    out[finite] = (ranks / (v.size - 1)).astype(np.float32)
    return out


class ScoreGrid:
    """``K`` named per-patch channels on a patch grid, raw or as rank percentiles."""

    task: ClassVar[str] = "classification"

    def __init__(
        self, grid: PatchGrid, values: np.ndarray, names: Sequence[str], scaling: Scaling = "raw"
    ) -> None:
        values = np.asarray(values, np.float32)
        if values.ndim == 2:
            values = values[None]
        if values.shape[1:] != (grid.p_rows, grid.p_cols) or len(names) != len(values):
            raise ValueError(
                f"{len(names)} names and values of shape {values.shape} for a grid of "
                f"{grid.p_rows} x {grid.p_cols} patches"
            )
        self.grid = grid
        self.class_names: tuple[str, ...] = tuple(names)
        self.raw = values
        self._percentiles: np.ndarray | None = None
        self.scaling: Scaling = scaling

    @property
    def shown(self) -> np.ndarray:
        """``(K, rows, cols)`` values in the current scaling."""
        if self.scaling == "raw":
            return self.raw
        if self._percentiles is None:
            self._percentiles = np.stack([rank_percentiles(v) for v in self.raw])
        return self._percentiles

    def raw_range(self, channel: int = 0) -> tuple[float, float]:
        """The lowest and highest raw value of a channel (``(0, 1)`` when it has none)."""
        finite = self.raw[channel][np.isfinite(self.raw[channel])]
        if finite.size == 0:
            return 0.0, 1.0
        low, high = float(finite.min()), float(finite.max())
        return (low, high) if high > low else (low, low + 1e-6)

    # -- the heatmap's GridResult --------------------------------------------------------
    @property
    def raster_shape(self) -> tuple[int, int]:
        return self.grid.p_rows, self.grid.p_cols

    def raster_geometry(self) -> tuple[tuple[float, float], float]:
        margin = (self.grid.l0_patch - self.grid.l0_stride) / 2.0
        origin = (self.grid.l0_origin[0] + margin, self.grid.l0_origin[1] + margin)
        return origin, float(self.grid.l0_stride)

    def probabilities(self, rows: slice = slice(None), cols: slice = slice(None)) -> np.ndarray:
        return self.shown[:, rows, cols]

    def raster_window(self, l0_rect: Rect) -> tuple[slice, slice]:
        origin, l0_per_px = self.raster_geometry()
        return raster_window(l0_rect, origin, l0_per_px, self.raster_shape)

    def _index(self, l0_x: float, l0_y: float) -> tuple[int, int] | None:
        origin, l0_per_px = self.raster_geometry()
        return raster_index(l0_x, l0_y, origin, l0_per_px, self.raster_shape)

    def values_at(self, l0_x: float, l0_y: float) -> np.ndarray | None:
        index = self._index(l0_x, l0_y)
        if index is None:
            return None
        values = self.shown[:, index[0], index[1]]
        return values if np.isfinite(values).all() else None

    def raw_at(self, l0_x: float, l0_y: float) -> np.ndarray | None:
        """The raw values under a level-0 point (``None`` where there are none)."""
        index = self._index(l0_x, l0_y)
        if index is None:
            return None
        values = self.raw[:, index[0], index[1]]
        return values if np.isfinite(values).all() else None


class ScoreLayer(HeatmapLayer):
    """A :class:`ScoreGrid` shown as a heatmap, raw or as rank percentiles (see module)."""

    kind = "scores"

    def __init__(
        self,
        name: str,
        scores: ScoreGrid,
        *,
        value_label: str = "",
        colormap: str = "inferno",
        opacity: float = 0.6,
        provenance: Mapping[str, Any] | None = None,
    ) -> None:
        self.scores = scores
        self.base_label = value_label
        super().__init__(
            name,
            scores,
            class_index=0,
            colormap=colormap,
            opacity=opacity,
            value_range=self._range_for(scores.scaling),
            value_label=self._label_for(scores.scaling),
            provenance=provenance,
        )

    def _range_for(self, scaling: Scaling) -> tuple[float, float]:
        return (0.0, 1.0) if scaling == "percentile" else self.scores.raw_range(0)

    def _label_for(self, scaling: Scaling) -> str:
        return " ".join(p for p in (self.base_label, SCALING_LABELS[scaling]) if p)

    @property
    def scaling(self) -> Scaling:
        return self.scores.scaling

    @scaling.setter
    def scaling(self, value: Scaling) -> None:
        if value not in SCALINGS:
            raise ValueError(f"scaling must be 'raw' or 'percentile', not {value!r}")
        if value == self.scores.scaling:
            return
        self.scores.scaling = value
        self.value_label = self._label_for(value)
        channel = max(0, self.class_index)
        low, high = (0.0, 1.0) if value == "percentile" else self.scores.raw_range(channel)
        self._vmin, self._vmax = low, high
        self._settings_changed("scaling")

    def settings(self) -> dict[str, Any]:
        return {**super().settings(), "scaling": self.scaling}


class AttentionLayer(ScoreLayer):
    """A slide-level head's per-patch attention (or class activation)."""

    kind = "attention"


class SimilarityLayer(ScoreLayer):
    """Every patch's cosine similarity to a clicked patch."""

    kind = "similarity"
