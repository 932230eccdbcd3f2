"""Slides made in memory for engine and explanation tests: an ``ArraySource`` double and
tissue-like images.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from inference.core.geometry import Rect
from inference.slides import SlideInfo, TileReadError
from inference.slides.base import rgb_to_bgrx

WHITE = 242


class ArraySource:
    """A SlideSource over an in-memory RGB image with a 2x pyramid (outside reads white)."""

    def __init__(
        self,
        rgb: np.ndarray,
        *,
        mpp: float | None = 0.5,
        levels: int = 3,
        bad_l0_rect: Rect | None = None,
        name: str = "array.tiff",
    ) -> None:
        self.levels = [np.ascontiguousarray(rgb)]
        for _ in range(levels - 1):
            prev = self.levels[-1]
            h, w = prev.shape[:2]
            self.levels.append(cv2.resize(prev, (w // 2, h // 2), interpolation=cv2.INTER_AREA))
        self.bad_l0_rect = bad_l0_rect
        self.reads = 0
        self.closed = False
        self._info = SlideInfo(
            path=Path(name),
            source_id="array-" + str(abs(hash(rgb.tobytes())) % 10**12),
            vendor="array",
            level_dimensions=tuple((a.shape[1], a.shape[0]) for a in self.levels),
            level_downsamples=tuple(float(2**i) for i in range(levels)),
            mpp=mpp,
            objective_power=None,
        )

    @property
    def info(self) -> SlideInfo:
        return self._info

    def read_region(self, level: int, lv_x: int, lv_y: int, w: int, h: int) -> np.ndarray:
        self.reads += 1
        ds = self._info.level_downsamples[level]
        if self.bad_l0_rect is not None:
            hit = self.bad_l0_rect.intersect(Rect(lv_x * ds, lv_y * ds, w * ds, h * ds))
            if not hit.is_empty():
                raise TileReadError(self._info.path, "damaged tile (test)")
        img = self.levels[level]
        out = np.full((h, w, 3), 255, np.uint8)
        x0, y0 = max(lv_x, 0), max(lv_y, 0)
        x1, y1 = min(lv_x + w, img.shape[1]), min(lv_y + h, img.shape[0])
        if x1 > x0 and y1 > y0:
            out[y0 - lv_y : y1 - lv_y, x0 - lv_x : x1 - lv_x] = img[y0:y1, x0:x1]
        return out

    def read_region_bgrx(self, level: int, lv_x: int, lv_y: int, w: int, h: int) -> np.ndarray:
        return rgb_to_bgrx(self.read_region(level, lv_x, lv_y, w, h))

    def associated_image(self, name: str) -> np.ndarray:
        raise KeyError(name)

    def thumbnail(self, max_size: int) -> np.ndarray:
        return self.levels[-1]

    def close(self) -> None:
        self.closed = True


def tissue_image(width: int, height: int, *, seed: int = 0, tissue_cols: float = 1.0) -> np.ndarray:
    """Pink-purple textured tissue on the left ``tissue_cols`` fraction, white glass after."""
    rng = np.random.default_rng(seed)
    img = np.full((height, width, 3), WHITE, np.uint8)
    tw = int(width * tissue_cols)
    noise = rng.integers(0, 90, (height, tw, 1))
    base = np.array([200, 110, 170])
    img[:, :tw] = np.clip(base - noise + rng.integers(-10, 10, (height, tw, 3)), 0, 255)
    return img


DARK = (120, 60, 130)  # haematoxylin-like purple: darkness ~0.6


LIGHT = (230, 180, 210)  # pale eosin: darkness ~0.19, still tissue (saturated)


def two_tone(width: int = 256, height: int = 128, seed: int = 0) -> np.ndarray:
    """Left half dark purple tissue, right half pale pink tissue, both with texture."""
    rng = np.random.default_rng(seed)
    img = np.empty((height, width, 3), np.uint8)
    half = width // 2
    noise = rng.integers(-12, 13, (height, width, 3))
    img[:, :half] = np.clip(np.array(DARK) + noise[:, :half], 0, 255)
    img[:, half:] = np.clip(np.array(LIGHT) + noise[:, half:], 0, 255)
    return img
