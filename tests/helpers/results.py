"""Engine batches and result grids built by hand, for result, cache and metrics tests."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from inference.engine.job import BatchResult
from inference.engine.patches import PatchGrid
from inference.results.store import (
    ResultGrid,
    collect,
)

NAMES = ("benign", "tumour")


def batch(
    grid: PatchGrid,
    p_ij: list[tuple[int, int]],
    probs: np.ndarray,
    *,
    background: Sequence[tuple[int, int]] = (),
    l0_per_px: float | None = None,
) -> BatchResult:
    ij = np.array(p_ij, np.int32).reshape(-1, 2)
    return BatchResult(
        job_id=1,
        grid=grid,
        class_names=NAMES,
        p_ij=ij,
        l0_xy=grid.l0_xy(ij),
        probs=np.asarray(probs, np.float32),
        l0_per_px=l0_per_px,
        background_p_ij=np.array(background, np.int32).reshape(-1, 2),
        unreadable_p_ij=np.zeros((0, 2), np.int32),
        done=len(ij),
        total=len(ij),
        skipped_background=len(background),
    )


def classification_result() -> ResultGrid:
    grid = PatchGrid(l0_patch=224, l0_stride=224, l0_origin=(0, 0), p_cols=4, p_rows=3)
    rng = np.random.default_rng(0)
    p = rng.random((10, 1)).astype(np.float32)
    ij = [(c, r) for r in range(3) for c in range(4)][:10]
    return collect([batch(grid, ij, np.hstack([1 - p, p]), background=[(2, 2), (3, 2)])])  # type: ignore[return-value]
