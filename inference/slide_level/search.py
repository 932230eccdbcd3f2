"""Find regions like this one on a result: a level-0 point in, the most similar places out.

Contract: a :class:`PatchSearch` wraps a result's stored embeddings in a
:class:`~inference.slide_level.similarity.SimilarityIndex` (made once);
:meth:`PatchSearch.at` takes a level-0 point, finds the patch under it (the patch whose
stride cell holds it; it must have an embedding), and returns :class:`SimilarPlaces`:
the ``top`` most similar other patches, best first, as level-0 rectangles and centres
with their cosine similarity, and the similarity of every patch laid out on the
result's patch grid (NaN where a patch has no embedding) for a similarity layer.
Raises :class:`SearchError` (a sentence for a person) when the result has no
embeddings or the point has no patch with one.  No torch, no Qt.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from inference.results.store import InferenceResult
from inference.slide_level.similarity import SimilarityIndex


class SearchError(ValueError):
    """A search cannot be made (no embeddings, no patch at the point)."""


@dataclass(frozen=True)
class Place:
    """One similar place: its rank (1 = most similar), patch index, level-0 rectangle
    ``(x, y, w, h)`` and centre, and cosine similarity to the clicked patch."""

    rank: int
    p_col: int
    p_row: int
    l0_rect: tuple[float, float, float, float]
    similarity: float

    @property
    def l0_centre(self) -> tuple[float, float]:
        x, y, w, h = self.l0_rect
        return x + w / 2, y + h / 2

    def to_dict(self) -> dict[str, Any]:
        return {
            "rank": self.rank,
            "patch": [self.p_col, self.p_row],
            "l0_rect": [round(v, 2) for v in self.l0_rect],
            "l0_centre": [round(v, 2) for v in self.l0_centre],
            "similarity": round(self.similarity, 6),
        }


@dataclass(frozen=True, eq=False)
class SimilarPlaces:
    """A search's answer: the clicked patch (as a :class:`Place` of rank 0, similarity
    1), the places, and ``(p_rows, p_cols)`` similarity of every patch (NaN without an
    embedding)."""

    query: Place
    places: tuple[Place, ...]
    similarity_grid: np.ndarray
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "query": self.query.to_dict(),
            "places": [p.to_dict() for p in self.places],
            "search_ms": round(self.seconds * 1000, 3),
        }


class PatchSearch:
    """Similarity search over one result's embeddings (see the module docstring)."""

    def __init__(self, result: InferenceResult) -> None:
        embeddings = result.embeddings
        if embeddings is None or len(embeddings) == 0:
            raise SearchError(
                "this result has no patch embeddings; run the model with embeddings first "
                "(a slide-level run keeps them)"
            )
        self.grid = result.grid
        self.p_ij = embeddings.p_ij()
        self.index = SimilarityIndex(embeddings.matrix())
        self._rows: dict[tuple[int, int], int] = {
            (int(c), int(r)): i for i, (c, r) in enumerate(self.p_ij)
        }

    def row_at(self, l0_x: float, l0_y: float) -> int:
        """The embedding row of the patch under a level-0 point."""
        found = self.grid.p_index_of(l0_x, l0_y)
        row = self._rows.get(found) if found is not None else None
        if row is None:
            raise SearchError(
                f"no patch with an embedding at ({l0_x:,.0f}, {l0_y:,.0f}); click on tissue "
                "the model has seen"
            )
        return row

    def _place(self, rank: int, row: int, similarity: float) -> Place:
        col, prow = (int(v) for v in self.p_ij[row])
        rect = self.grid.patch_l0_rect(col, prow)
        return Place(rank, col, prow, (rect.x, rect.y, rect.w, rect.h), float(similarity))

    def at(self, l0_x: float, l0_y: float, top: int = 10) -> SimilarPlaces:
        """The ``top`` places most like the patch under ``(l0_x, l0_y)``."""
        import time

        t0 = time.perf_counter()
        row = self.row_at(l0_x, l0_y)
        hits = self.index.query(row, top)
        seconds = time.perf_counter() - t0
        grid = np.full((self.grid.p_rows, self.grid.p_cols), np.nan, np.float32)
        grid[self.p_ij[:, 1], self.p_ij[:, 0]] = hits.similarity
        places = tuple(
            self._place(rank, int(r), float(s))
            for rank, (r, s) in enumerate(zip(hits.top, hits.top_similarity, strict=True), 1)
        )
        return SimilarPlaces(self._place(0, row, 1.0), places, grid, seconds)
