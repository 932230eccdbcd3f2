"""What an explanation is asked for and what it returns, as plain data.

Contract: a :class:`CamRequest` says what to explain and how (method, class, layer,
overlap, normalisation, batch sizes, limits); a :class:`CamResult` is a CAM in slide
coordinates with its shared normalisation, scores and provenance; a :class:`MethodInfo`
is a method as the viewer lists it, available or not (with why).  Nothing here computes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from inference.core.geometry import Rect
from inference.engine.tissue import DEFAULT_TISSUE_THRESHOLD

#: Default percentile of a region's raw values that maps to the top of the colour scale.
DEFAULT_PERCENTILE = 99.0
#: Default overlap of region patches (fraction of the patch side) blended at the seams:
#: half a patch for fast methods (every point lies in the interior of some patch, so the
#: border effects of zero padding fade out), a quarter for slow ones (fewer patches).
DEFAULT_REGION_OVERLAP = 0.5
SLOW_METHOD_REGION_OVERLAP = 0.25
#: Longest side of a CAM canvas in pixels; CAM pixels grow coarser to fit.
MAX_CAM_SIDE = 4096
#: A region with more tissue patches than this is refused (ask for a smaller one).
MAX_REGION_PATCHES = 2048


@dataclass(frozen=True)
class CamRequest:
    """What to explain and how.

    ``target``: class index or name (``None``: the predicted class; for a region, the
    class with the highest mean probability over its patches).  ``layer``: dotted module
    path (``None``: the card's ``cam_target_layer``).  ``overlap``: fraction of the patch
    side that region patches share (``None``: :data:`DEFAULT_REGION_OVERLAP`, or
    :data:`SLOW_METHOD_REGION_OVERLAP` for slow methods).  ``percentile``: the raw value
    mapped to 1 is this percentile over the whole canvas; ``vmax`` fixes it instead (e.g.
    to compare two explanations).  ``patch_batch`` / ``masked_batch``: starting batch
    sizes (``None``: by device); they halve on out-of-memory.
    """

    method: str = "gradcam"
    target: int | str | None = None
    layer: str | None = None
    overlap: float | None = None
    percentile: float = DEFAULT_PERCENTILE
    vmax: float | None = None
    tissue_threshold: float = DEFAULT_TISSUE_THRESHOLD
    patch_batch: int | None = None
    masked_batch: int | None = None
    ig_steps: int = 32
    occlusion_grid: int = 7
    max_side: int = MAX_CAM_SIDE
    max_patches: int = MAX_REGION_PATCHES


@dataclass(frozen=True, eq=False)
class CamResult:
    """A CAM in slide coordinates.

    ``raw``: ``(H, W)`` float32, the blended raw map (non-negative, method units), NaN where
    no patch was explained (background).  CAM pixel ``(i, j)`` covers level-0
    ``[x0 + j * l0_per_px, x0 + (j + 1) * l0_per_px)`` (and likewise in y) with
    ``(x0, y0) = l0_origin``.  ``vmax``: the shared normalisation; displayed value =
    ``clip(raw / vmax, 0, 1)`` (:meth:`normalised`).  ``scores``: class name to probability
    (mean over the explained patches, or over the region's pixels for segmentation).
    ``patch_l0_rects``: ``(n, 4)`` int64 x, y, w, h of the explained patches;
    ``patch_scores``: their ``(n, C)`` probabilities.  ``provenance``: JSON-ready record of
    model, method, layer, class, normalisation, timing and versions.
    """

    raw: np.ndarray
    l0_origin: tuple[float, float]
    l0_per_px: float
    vmax: float
    class_index: int
    class_name: str
    scores: Mapping[str, float]
    patch_l0_rects: np.ndarray
    patch_scores: np.ndarray
    provenance: Mapping[str, Any] = field(default_factory=dict)

    @property
    def l0_rect(self) -> Rect:
        """The level-0 rectangle the canvas covers."""
        h, w = self.raw.shape
        return Rect(self.l0_origin[0], self.l0_origin[1], w * self.l0_per_px, h * self.l0_per_px)

    def normalised(self) -> np.ndarray:
        """``clip(raw / vmax, 0, 1)`` as float32, NaN kept where nothing was explained."""
        with np.errstate(invalid="ignore"):
            return np.clip(self.raw / self.vmax, 0.0, 1.0).astype(np.float32)


@dataclass(frozen=True)
class MethodInfo:
    """A method as the viewer lists it: ``available`` with a ``reason`` (tooltip) if not."""

    name: str
    label: str
    description: str
    hook_based: bool
    class_specific: bool
    slow: bool
    available: bool
    reason: str | None = None
