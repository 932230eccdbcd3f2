"""Whole-slide overviews made from the pyramid, for any :class:`SlideSource`."""

from __future__ import annotations

import cv2
import numpy as np

from inference.core.geometry import best_level_for_downsample
from inference.slides.base import SlideSource

#: A level larger than this many pixels is not read whole for a thumbnail.
_MAX_THUMBNAIL_SOURCE_PIXELS = 8192 * 8192


def thumbnail_from_levels(source: SlideSource, max_size: int) -> np.ndarray:
    """An RGB overview whose longer side is ``max_size`` (or the slide's, if smaller).

    Reads the coarsest level that still has at least ``max_size`` pixels on the longer
    side, then shrinks it with area averaging.
    """
    info = source.info
    l0_w, l0_h = info.dimensions
    l0_per_px = max(l0_w, l0_h) / max_size
    level = best_level_for_downsample(info.level_downsamples, max(1.0, l0_per_px))
    lv_w, lv_h = info.level_dimensions[level]
    while level > 0 and lv_w * lv_h > _MAX_THUMBNAIL_SOURCE_PIXELS:
        level -= 1  # never happens for real pyramids; keeps memory bounded regardless
        lv_w, lv_h = info.level_dimensions[level]
    if lv_w * lv_h > _MAX_THUMBNAIL_SOURCE_PIXELS:
        raise ValueError(f"{info.path.name}: no pyramid level small enough for a thumbnail")
    region = source.read_region(level, 0, 0, lv_w, lv_h)
    scale = min(1.0, max_size / max(l0_w, l0_h)) * info.level_downsamples[level]
    out_w, out_h = max(1, round(lv_w * scale)), max(1, round(lv_h * scale))
    if (out_w, out_h) == (lv_w, lv_h):
        return region
    return cv2.resize(region, (out_w, out_h), interpolation=cv2.INTER_AREA)
