"""Patch embeddings kept with a result: one float16 row per computed patch.

Contract: :class:`PatchEmbeddings` collects the ``(n, D)`` embeddings of a job's
batches (:attr:`~inference.engine.job.BatchResult.embeddings`) under their patch
indices ``(col, row)`` of the result's grid.  A patch computed again (a region run over
a slide's earlier one) keeps its latest row.  :meth:`PatchEmbeddings.p_ij` and
:meth:`PatchEmbeddings.matrix` give the rows in raster order (row by row, then column),
the order :meth:`~inference.results.store.ResultGrid.patch_table` lists patches in, so
aggregators and similarity search index both alike.  Stored as float16 beside the
result's arrays (``embedding_p_ij``, ``embeddings``) in the result cache and in
``slidelens infer``'s ``.result.npz``, so slide-level answers and similarity search never
run the patch model again.  No torch.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

#: Array names in a result's archive.
P_IJ_KEY = "embedding_p_ij"
MATRIX_KEY = "embeddings"


class PatchEmbeddings:
    """Embeddings of ``width`` values per patch of a ``(p_rows, p_cols)`` grid."""

    def __init__(self, p_rows: int, p_cols: int, width: int, layer: str = "") -> None:
        if width < 1:
            raise ValueError(f"an embedding needs at least one value, not {width}")
        self.shape = (int(p_rows), int(p_cols))
        self.width = int(width)
        #: The layer the embeddings were taken from (as the engine names it).
        self.layer = layer
        self._parts: list[tuple[np.ndarray, np.ndarray]] = []
        self._p_ij: np.ndarray | None = np.zeros((0, 2), np.int32)
        self._matrix: np.ndarray | None = np.zeros((0, self.width), np.float16)

    def add(self, p_ij: np.ndarray, embeddings: np.ndarray) -> None:
        """Keep ``embeddings`` ``(n, D)`` of the patches ``p_ij`` ``(n, 2)`` (col, row)."""
        p_ij = np.asarray(p_ij, np.int32).reshape(-1, 2)
        values = np.asarray(embeddings)
        if len(p_ij) == 0:
            return
        if values.shape != (len(p_ij), self.width):
            raise ValueError(
                f"embeddings of shape {values.shape} for {len(p_ij)} patches; "
                f"expected ({len(p_ij)}, {self.width})"
            )
        self._parts.append((p_ij.copy(), values.astype(np.float16)))
        self._p_ij = self._matrix = None

    def _settle(self) -> tuple[np.ndarray, np.ndarray]:
        if self._p_ij is None or self._matrix is None:
            p_ij = np.concatenate([p for p, _ in self._parts])
            matrix = np.concatenate([m for _, m in self._parts])
            flat = p_ij[:, 1].astype(np.int64) * self.shape[1] + p_ij[:, 0]
            # the last row of a patch wins: unique over the reversed order
            _, last = np.unique(flat[::-1], return_index=True)
            keep = len(flat) - 1 - last  # ascending raster order, as np.unique sorts
            self._p_ij, self._matrix = p_ij[keep], matrix[keep]
            self._parts = [(self._p_ij, self._matrix)]
        return self._p_ij, self._matrix

    def __len__(self) -> int:
        return len(self._settle()[0])

    def p_ij(self) -> np.ndarray:
        """``(n, 2)`` int32 patch indices (col, row) in raster order."""
        return self._settle()[0]

    def matrix(self) -> np.ndarray:
        """``(n, D)`` float16 embeddings, rows as :meth:`p_ij`."""
        return self._settle()[1]

    def index_of(self, p_col: int, p_row: int) -> int | None:
        """The row of patch ``(p_col, p_row)``, or ``None`` when it has no embedding."""
        p_ij = self.p_ij()
        flat = p_ij[:, 1].astype(np.int64) * self.shape[1] + p_ij[:, 0]
        target = int(p_row) * self.shape[1] + int(p_col)
        at = int(np.searchsorted(flat, target))
        return at if at < len(flat) and flat[at] == target else None

    def meta(self) -> dict[str, object]:
        return {"embedding_width": self.width, "embedding_layer": self.layer}

    def arrays(self) -> dict[str, np.ndarray]:
        return {P_IJ_KEY: self.p_ij(), MATRIX_KEY: self.matrix()}

    @classmethod
    def from_arrays(
        cls,
        p_rows: int,
        p_cols: int,
        meta: Mapping[str, object],
        arrays: Mapping[str, np.ndarray],
    ) -> PatchEmbeddings | None:
        """The embeddings stored by :meth:`meta` and :meth:`arrays` (``None`` when the
        result has none); raises ``ValueError`` when they do not fit the grid."""
        width = meta.get("embedding_width")
        if width is None or MATRIX_KEY not in arrays:
            return None
        out = cls(p_rows, p_cols, int(str(width)), str(meta.get("embedding_layer", "")))
        p_ij = np.asarray(arrays[P_IJ_KEY], np.int32)
        matrix = np.asarray(arrays[MATRIX_KEY])
        if len(p_ij) and (
            p_ij.min() < 0 or p_ij[:, 0].max() >= p_cols or p_ij[:, 1].max() >= p_rows
        ):
            raise ValueError("embedding patch indices outside the result's grid")
        out.add(p_ij, matrix)
        return out
