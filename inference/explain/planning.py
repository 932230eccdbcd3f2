"""Which patches an explanation covers and the canvas they are blended into.

Contract: :func:`plan_patch` plans the model patch under a level-0 point (the patch of
the whole-slide grid at the model's spacing, as the engine lays it out);
:func:`plan_region` every tissue patch of a level-0 rectangle (tissue rule of
:mod:`inference.engine.tissue`), on a grid anchored at the rectangle with the request's
overlap, and refuses a rectangle outside the slide, without tissue or with too many
patches (:class:`~inference.explain.methods.ExplainError`).  A :class:`Plan` also fixes
the canvas: origin, level-0 pixels per CAM pixel, shape and each patch's tile side.
:func:`seg_masks` gives, per planned patch, its input pixels inside the plan's region.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from inference.core.geometry import Rect, patch_size_on_slide
from inference.engine.patches import PatchGrid, make_patch_grid, slide_mpp, stride_for_overlap
from inference.engine.tissue import TissueMask, tissue_mask
from inference.explain.methods import ExplainError, method_spec
from inference.explain.requests import (
    DEFAULT_REGION_OVERLAP,
    SLOW_METHOD_REGION_OVERLAP,
    CamRequest,
)

if TYPE_CHECKING:
    from inference.engine.job import ModelLike
    from inference.slides import SlideSource


@dataclass
class Plan:
    """Patches to explain and the canvas they are blended into."""

    grid: PatchGrid
    p_ij: np.ndarray
    l0_origin: tuple[float, float]
    l0_per_px: float
    shape: tuple[int, int]
    tile_px: int
    region: Rect  # segmentation targets cover the patch's part inside it
    kind: str  # "patch" or "region"
    background_patches: int = 0


def input_size(model: ModelLike) -> int:
    """The model's input side in pixels (the card's ``input_size``, else its patch side)."""
    return int(getattr(model.card, "input_size", model.card.patch_size_pixels))


def plan_patch(
    source: SlideSource, model: ModelLike, l0_x: float, l0_y: float, mpp: float | None
) -> Plan:
    """The whole-slide grid's patch holding level-0 point ``(l0_x, l0_y)``."""
    info = source.info
    width, height = info.dimensions
    if not (0 <= l0_x < width and 0 <= l0_y < height):
        raise ExplainError(
            f"point ({l0_x:g}, {l0_y:g}) is outside the slide {info.path.name} "
            f"({width} x {height} level-0 pixels)"
        )
    grid = make_patch_grid(info, model.card, mpp_override=mpp)
    p = grid.p_index_of(l0_x, l0_y)
    assert p is not None  # inside the slide means inside the grid
    rect = grid.patch_l0_rect(*p)
    tile = max(1, min(input_size(model), grid.l0_patch))
    return Plan(
        grid=grid,
        p_ij=np.array([p], np.int32),
        l0_origin=(rect.x, rect.y),
        l0_per_px=grid.l0_patch / tile,
        shape=(tile, tile),
        tile_px=tile,
        region=rect,
        kind="patch",
    )


def plan_region(
    source: SlideSource,
    model: ModelLike,
    l0_rect: Rect,
    request: CamRequest,
    mpp: float | None,
    tissue: TissueMask | None,
) -> Plan:
    """Every tissue patch of ``l0_rect`` on a grid anchored at its corner (see the module)."""
    info = source.info
    width, height = info.dimensions
    region = l0_rect.intersect(Rect(0, 0, width, height))
    if l0_rect.is_empty() or region.is_empty():
        raise ExplainError(
            f"region {l0_rect.to_int()} lies outside the slide {info.path.name} "
            f"({width} x {height} level-0 pixels)"
        )
    x0, y0, w, h = region.to_int()
    region = Rect(x0, y0, w, h)
    l0_patch = patch_size_on_slide(
        int(model.card.patch_size_pixels),
        float(model.card.spacing_um_px),
        slide_mpp(info, mpp),
    )
    overlap = request.overlap
    if overlap is None:
        slow = method_spec(request.method).slow
        overlap = SLOW_METHOD_REGION_OVERLAP if slow else DEFAULT_REGION_OVERLAP
    try:
        l0_stride = stride_for_overlap(l0_patch, overlap)
    except ValueError as exc:
        raise ExplainError(str(exc)) from None
    cols = 1 if w <= l0_patch else math.ceil((w - l0_patch) / l0_stride) + 1
    rows = 1 if h <= l0_patch else math.ceil((h - l0_patch) / l0_stride) + 1
    grid = PatchGrid(
        l0_patch=l0_patch, l0_stride=l0_stride, l0_origin=(x0, y0), p_cols=cols, p_rows=rows
    )
    p_ij = grid.all_p_ij()
    if request.tissue_threshold > 0:
        if tissue is None:
            tissue = tissue_mask(source)
        # the tissue a patch brings to the region, not what it has past the region's edge
        rects = grid.l0_rects(p_ij)
        clipped = np.array(
            [Rect(*r).intersect(region).to_int() for r in rects], np.float64
        ).reshape(-1, 4)
        keep = tissue.fractions_in(clipped) >= request.tissue_threshold
        background = int((~keep).sum())
        p_ij = p_ij[keep]
    else:
        background = 0
    if len(p_ij) == 0:
        raise ExplainError(
            f"region {region.to_int()} of {info.path.name} holds no tissue (every patch is "
            f"background at tissue threshold {request.tissue_threshold}); pick a region "
            "with tissue"
        )
    if len(p_ij) > request.max_patches:
        raise ExplainError(
            f"region {region.to_int()} of {info.path.name} holds {len(p_ij)} tissue patches, "
            f"more than {request.max_patches} at once; explain a smaller region"
        )
    fit = math.floor(l0_patch * request.max_side / max(w, h))
    tile = max(1, min(input_size(model), l0_patch, fit))
    l0_per_px = l0_patch / tile
    shape = (max(1, math.ceil(h / l0_per_px)), max(1, math.ceil(w / l0_per_px)))
    return Plan(
        grid=grid,
        p_ij=p_ij,
        l0_origin=(float(x0), float(y0)),
        l0_per_px=l0_per_px,
        shape=shape,
        tile_px=tile,
        region=region,
        kind="region",
        background_patches=background,
    )


def seg_masks(plan: Plan, size: int) -> list[np.ndarray]:
    """Per patch, the input pixels inside the plan's region (segmentation targets)."""
    out = []
    region = plan.region
    scale = size / plan.grid.l0_patch
    for l0_x, l0_y in plan.grid.l0_xy(plan.p_ij):
        x0 = int(np.clip(round((region.x - l0_x) * scale), 0, size))
        x1 = int(np.clip(round((region.right - l0_x) * scale), 0, size))
        y0 = int(np.clip(round((region.y - l0_y) * scale), 0, size))
        y1 = int(np.clip(round((region.bottom - l0_y) * scale), 0, size))
        mask = np.zeros((size, size), bool)
        mask[y0:y1, x0:x1] = True
        out.append(mask)
    return out
