"""Where a layer may paint: inside the slide, and (unless the user turns it off) on tissue.

A segmentation model paints whole tiles: blocks on the glass around the tissue, and a
strip past the slide's right and bottom edges where the last tiles reach beyond it.
:class:`LayerClip` says which raster pixels of a layer to keep: a pixel is kept when
its centre lies inside the slide and, when clipping to tissue, on a tissue pixel of the
slide's tissue mask (the engine's, see ``inference.engine.tissue``).  Qt-free.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class LayerClip:
    """The slide's level-0 size and, when known, its tissue mask: ``tissue`` pixel
    ``(i, j)`` covers level-0 ``[j * tissue_l0_per_px, (j + 1) * tissue_l0_per_px)``
    horizontally (likewise vertically)."""

    l0_slide_size: tuple[int, int]
    tissue: np.ndarray | None = field(default=None, compare=False)
    tissue_l0_per_px: float = 1.0

    @property
    def has_tissue(self) -> bool:
        return self.tissue is not None and self.tissue.size > 0

    def keep(
        self,
        l0_origin: tuple[float, float],
        l0_per_px: float,
        rows: slice,
        cols: slice,
        *,
        to_tissue: bool,
    ) -> np.ndarray:
        """``(len(rows), len(cols))`` bool: which pixels of a raster window to keep.

        The raster's pixel ``(r, c)`` covers level-0 ``[x0 + c * l0_per_px, ...)`` from
        ``l0_origin = (x0, y0)``; ``rows``/``cols`` are plain slices with start and stop.
        ``to_tissue`` also drops pixels off the tissue (ignored without a mask).
        """
        r = np.arange(rows.start or 0, rows.stop)
        c = np.arange(cols.start or 0, cols.stop)
        l0_cx = l0_origin[0] + (c + 0.5) * l0_per_px
        l0_cy = l0_origin[1] + (r + 0.5) * l0_per_px
        w, h = self.l0_slide_size
        in_x = (l0_cx >= 0) & (l0_cx < w)
        in_y = (l0_cy >= 0) & (l0_cy < h)
        keep = in_y[:, None] & in_x[None, :]
        if to_tissue and self.tissue is not None and self.tissue.size:
            mask = self.tissue
            m_h, m_w = mask.shape
            m_x = np.floor(l0_cx / self.tissue_l0_per_px).astype(np.int64)
            m_y = np.floor(l0_cy / self.tissue_l0_per_px).astype(np.int64)
            ok_x = (m_x >= 0) & (m_x < m_w)
            ok_y = (m_y >= 0) & (m_y < m_h)
            on = mask[np.clip(m_y, 0, m_h - 1)[:, None], np.clip(m_x, 0, m_w - 1)[None, :]]
            keep &= on & ok_y[:, None] & ok_x[None, :]
        return keep
