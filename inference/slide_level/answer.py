"""A slide-level answer: the label, its probabilities, how it was made, and per-patch maps.

Contract: a :class:`SlideAnswer` is what every aggregator returns.  ``p_ij`` lists the
patches it read ``(col, row)`` in raster order; ``maps`` ``(K, n)`` are per-patch values
over them (attention of a MIL head, summing to one per branch; class activation of a
conv-pool head; the deciding class's probability for a rule), named by ``map_names``
and of kind ``map_kind``; ``ranking`` ``(n,)`` orders patches for the report's gallery
(highest first).  :meth:`SlideAnswer.slide_keys` is what ``<stem>.slide.json`` gets
(``slide_label``, ``slide_probabilities``, ``aggregation``); :meth:`SlideAnswer.map_grid`
lays the maps out on the result's patch grid (NaN where no patch was read), as stored
in the result archive.  No torch.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: Digits kept in JSON.
_DIGITS = 6
#: What ``map_kind`` may be.
MAP_KINDS = ("attention", "class activation", "probability")


@dataclass(frozen=True, eq=False)
class SlideAnswer:
    """One slide's answer (see the module docstring)."""

    label: str
    class_names: tuple[str, ...]
    probabilities: np.ndarray  # (C,)
    aggregation: Mapping[str, Any]
    p_ij: np.ndarray  # (n, 2) int32
    maps: np.ndarray | None = None  # (K, n) float32
    map_names: tuple[str, ...] = ()
    map_kind: str = "attention"
    ranking: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))

    @property
    def probability(self) -> float:
        """The probability of the label."""
        return float(self.probabilities[self.class_names.index(self.label)])

    def output_columns(self) -> dict[str, float]:
        """``slide_prob_<class>`` for every class: the answer as numbers, for a batch's
        summary table (the label is the most probable class)."""
        return {
            f"slide_prob_{name}": round(float(p), _DIGITS)
            for name, p in zip(self.class_names, self.probabilities, strict=True)
        }

    def slide_keys(self) -> dict[str, Any]:
        """``slide_label``, ``slide_probabilities`` (class -> probability) and
        ``aggregation`` (what made them), for ``<stem>.slide.json``."""
        return {
            "slide_label": self.label,
            "slide_probabilities": {
                name: round(float(p), _DIGITS)
                for name, p in zip(self.class_names, self.probabilities, strict=True)
            },
            "aggregation": {
                **dict(self.aggregation),
                "patches": len(self.p_ij),
                "maps": self.map_kind if self.maps is not None else None,
            },
        }

    def top_patches(self, count: int) -> np.ndarray:
        """Indices (into ``p_ij``) of the ``count`` highest-ranked patches, best first."""
        count = min(int(count), len(self.ranking))
        if count <= 0:
            return np.zeros(0, np.intp)
        part = np.argpartition(-self.ranking, count - 1)[:count]
        return part[np.argsort(-self.ranking[part], kind="stable")]

    def archive_arrays(self, p_rows: int, p_cols: int) -> dict[str, np.ndarray]:
        """What the result archive keeps of the answer: the maps on the patch grid under
        their kind (``attention``, ``class_activation`` or ``probability``) and their
        names (``map_names``); ``{}`` without maps."""
        grid = self.map_grid(p_rows, p_cols)
        if grid is None:
            return {}
        return {
            self.map_kind.replace(" ", "_"): grid,
            "map_names": np.array(self.map_names, dtype=str),
        }

    def map_grid(self, p_rows: int, p_cols: int) -> np.ndarray | None:
        """``(K, p_rows, p_cols)`` float32 maps on the patch grid, NaN where no patch was
        read (``None`` when the answer has no maps)."""
        if self.maps is None:
            return None
        out = np.full((len(self.maps), p_rows, p_cols), np.nan, np.float32)
        out[:, self.p_ij[:, 1], self.p_ij[:, 0]] = self.maps
        return out
