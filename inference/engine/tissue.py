"""Tissue mask at low resolution, so background patches are never sent to a model.

Background rule: a pixel is background when it is near-white (HSV value at least
``white_level``) *and* unsaturated (HSV saturation at most ``max_saturation``).  Stained
tissue is saturated (eosin pink, haematoxylin purple) even where it is pale, and dark
debris is not near-white, so both count as tissue.  A small morphological opening
removes specks of dust, and a closing fills pin-holes, before the mask is used.

The mask is built from a coarse pyramid level, read in chunks so that a slide without
coarse levels still takes bounded memory.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from inference.core.geometry import Rect, best_level_for_downsample

if TYPE_CHECKING:
    from inference.slides import SlideSource

#: Default level-0 pixels per mask pixel.
TARGET_DOWNSAMPLE = 32.0
#: The mask's longer side is at most this many pixels (the downsample grows to fit).
MAX_MASK_SIDE = 2048
#: HSV value (0-255) at or above which a pixel is "near white".
WHITE_LEVEL = 215
#: HSV saturation (0-1) at or below which a pixel is "unsaturated".
MAX_SATURATION = 0.10
#: Default minimum tissue fraction for a patch to be computed.
DEFAULT_TISSUE_THRESHOLD = 0.1
#: Longest side, in pixels of the level read, of one chunk read while building the mask.
_CHUNK_LV_PX = 4096


@dataclass(frozen=True)
class TissueMask:
    """A boolean tissue mask; mask pixel ``(i, j)`` covers level-0 pixels
    ``[j * l0_per_px, (j + 1) * l0_per_px) x [i * l0_per_px, (i + 1) * l0_per_px)``.
    """

    mask: np.ndarray
    l0_per_px: float
    _integral: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        h, w = self.mask.shape
        integral = np.zeros((h + 1, w + 1), np.int64)
        integral[1:, 1:] = self.mask.astype(np.int64).cumsum(0).cumsum(1)
        object.__setattr__(self, "_integral", integral)

    @property
    def tissue_fraction(self) -> float:
        """The fraction of the slide that is tissue."""
        return float(self.mask.mean()) if self.mask.size else 0.0

    def fractions_in(self, l0_xywh: np.ndarray) -> np.ndarray:
        """Tissue fraction of each level-0 rectangle ``(n, 4)`` (x, y, w, h) -> ``(n,)``.

        Each rectangle is widened to whole mask pixels; parts outside the slide count
        as background.
        """
        rects = np.asarray(l0_xywh, dtype=np.float64).reshape(-1, 4)
        if len(rects) == 0:
            return np.zeros(0, np.float64)
        h, w = self.mask.shape
        scale = 1.0 / self.l0_per_px
        x0 = np.floor(rects[:, 0] * scale).astype(np.int64)
        y0 = np.floor(rects[:, 1] * scale).astype(np.int64)
        x1 = np.maximum(np.ceil((rects[:, 0] + rects[:, 2]) * scale).astype(np.int64), x0 + 1)
        y1 = np.maximum(np.ceil((rects[:, 1] + rects[:, 3]) * scale).astype(np.int64), y0 + 1)
        area = (x1 - x0) * (y1 - y0)
        cx0, cx1 = np.clip(x0, 0, w), np.clip(x1, 0, w)
        cy0, cy1 = np.clip(y0, 0, h), np.clip(y1, 0, h)
        ii = self._integral
        inside = ii[cy1, cx1] - ii[cy0, cx1] - ii[cy1, cx0] + ii[cy0, cx0]
        return inside / area

    def fraction_in(self, l0_rect: Rect) -> float:
        """Tissue fraction of one level-0 rectangle."""
        rect = np.array([[l0_rect.x, l0_rect.y, l0_rect.w, l0_rect.h]], np.float64)
        return float(self.fractions_in(rect)[0])


def background_rule(
    rgb: np.ndarray, *, white_level: int = WHITE_LEVEL, max_saturation: float = MAX_SATURATION
) -> np.ndarray:
    """``True`` where an RGB uint8 image is background (near-white and unsaturated)."""
    import cv2

    hsv = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2HSV)
    value = hsv[..., 2]
    saturation = hsv[..., 1]
    return (value >= white_level) & (saturation <= round(max_saturation * 255))


def clean_mask(tissue: np.ndarray) -> np.ndarray:
    """Open (drop specks) then close (fill pin-holes) with a 3 x 3 square."""
    import cv2

    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (3, 3))
    img: np.ndarray = tissue.astype(np.uint8)
    img = cv2.morphologyEx(img, cv2.MORPH_OPEN, kernel)
    img = cv2.morphologyEx(img, cv2.MORPH_CLOSE, kernel)
    return img.astype(bool)


def tissue_mask(
    source: SlideSource,
    *,
    target_downsample: float = TARGET_DOWNSAMPLE,
    max_side: int = MAX_MASK_SIDE,
    white_level: int = WHITE_LEVEL,
    max_saturation: float = MAX_SATURATION,
) -> TissueMask:
    """The tissue mask of a slide at about ``target_downsample`` level-0 px per mask px."""
    import cv2

    info = source.info
    width, height = info.dimensions
    l0_per_px = max(float(target_downsample), max(width, height) / max_side, 1.0)
    m_w, m_h = max(1, math.ceil(width / l0_per_px)), max(1, math.ceil(height / l0_per_px))
    level = best_level_for_downsample(info.level_downsamples, l0_per_px)
    lv_ds = float(info.level_downsamples[level])
    chunk = max(1, int(_CHUNK_LV_PX * lv_ds / l0_per_px))
    rgb = np.empty((m_h, m_w, 3), np.uint8)
    for m_y0 in range(0, m_h, chunk):
        m_y1 = min(m_h, m_y0 + chunk)
        for m_x0 in range(0, m_w, chunk):
            m_x1 = min(m_w, m_x0 + chunk)
            lv_x = round(m_x0 * l0_per_px / lv_ds)
            lv_y = round(m_y0 * l0_per_px / lv_ds)
            lv_w = max(1, round(m_x1 * l0_per_px / lv_ds) - lv_x)
            lv_h = max(1, round(m_y1 * l0_per_px / lv_ds) - lv_y)
            region = source.read_region(level, lv_x, lv_y, lv_w, lv_h)
            size = (m_x1 - m_x0, m_y1 - m_y0)
            if region.shape[1::-1] != size:
                region = cv2.resize(region, size, interpolation=cv2.INTER_AREA)
            rgb[m_y0:m_y1, m_x0:m_x1] = region
    background = background_rule(rgb, white_level=white_level, max_saturation=max_saturation)
    return TissueMask(mask=clean_mask(~background), l0_per_px=l0_per_px)
