"""Result grids and slide doubles for compositor, figure and export tests."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from inference.engine.job import BatchResult
from inference.engine.patches import PatchGrid
from inference.results.store import ResultGrid
from inference.slides.base import SlideInfo, rgb_to_bgrx
from viewer.annotations import AnnotationClass

TUMOUR = AnnotationClass("Tumour", (200, 0, 0))


class PatternSource:
    """An in-memory :class:`SlideSource` of any size whose pixels are a formula of their
    level-0 position (reads cost what the output costs, never the slide's size)."""

    def __init__(
        self, width: int, height: int, *, mpp: float | None = 0.5, levels: int = 3
    ) -> None:
        dims = tuple((math.ceil(width / 4**k), math.ceil(height / 4**k)) for k in range(levels))
        self._info = SlideInfo(
            path=Path("/virtual/pattern.tiff"),
            source_id="pattern-source",
            vendor="test",
            level_dimensions=dims,
            level_downsamples=tuple(float(4**k) for k in range(levels)),
            mpp=mpp,
            objective_power=None,
        )

    @property
    def info(self) -> SlideInfo:
        return self._info

    @staticmethod
    def expected(l0_x: np.ndarray, l0_y: np.ndarray) -> np.ndarray:
        """The RGB of level-0 pixels at columns ``l0_x`` and rows ``l0_y`` (1-D)."""
        x, y = np.asarray(l0_x, np.int32).ravel(), np.asarray(l0_y, np.int32).ravel()
        out = np.empty((len(y), len(x), 3), np.uint8)
        out[..., 0] = np.add.outer(y // 5 % 200, x // 7 % 200) % 200 + 40
        out[..., 1] = (x // 11 % 180 + 50)[None, :]
        out[..., 2] = (y // 13 % 180 + 50)[:, None]
        return out

    def read_region(self, level: int, lv_x: int, lv_y: int, w: int, h: int) -> np.ndarray:
        ds = int(self._info.level_downsamples[level])
        l0_x = (lv_x + np.arange(w)) * ds
        l0_y = (lv_y + np.arange(h)) * ds
        rgb = self.expected(l0_x, l0_y)
        lv_w, lv_h = self._info.level_dimensions[level]
        rgb[:, (l0_x < 0) | (l0_x >= lv_w * ds)] = 255
        rgb[(l0_y < 0) | (l0_y >= lv_h * ds)] = 255
        return rgb

    def read_region_bgrx(self, level: int, lv_x: int, lv_y: int, w: int, h: int) -> np.ndarray:
        return rgb_to_bgrx(self.read_region(level, lv_x, lv_y, w, h))

    def associated_image(self, name: str) -> np.ndarray:
        raise KeyError(name)

    def thumbnail(self, max_size: int) -> np.ndarray:
        return self.read_region(self._info.level_count - 1, 0, 0, 8, 8)

    def close(self) -> None:
        pass


def result_grid(
    probs: np.ndarray, l0_patch: int, l0_origin: tuple[int, int] = (0, 0)
) -> ResultGrid:
    """A two-class result ("benign", "tumour") whose tumour probability per patch is
    ``probs`` (rows, cols); NaN patches are not computed.  Built through ``add`` like the
    engine's batches."""
    rows, cols = probs.shape
    grid = PatchGrid(l0_patch, l0_patch, l0_origin, cols, rows)
    result = ResultGrid(grid, ("benign", "tumour"))
    r, c = np.nonzero(np.isfinite(probs))
    p_ij = np.stack([c, r], axis=1).astype(np.int32)
    tumour = probs[r, c].astype(np.float32)
    batch = BatchResult(
        job_id=0,
        grid=grid,
        class_names=("benign", "tumour"),
        p_ij=p_ij,
        l0_xy=grid.l0_xy(p_ij),
        probs=np.stack([1 - tumour, tumour], axis=1),
        l0_per_px=None,
        background_p_ij=np.zeros((0, 2), np.int32),
        unreadable_p_ij=np.zeros((0, 2), np.int32),
        done=len(p_ij),
        total=len(p_ij),
        skipped_background=0,
    )
    result.add(batch)
    return result
