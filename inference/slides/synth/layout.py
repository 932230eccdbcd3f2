"""Where a synthetic slide has tissue and tumour: low-resolution fields made from a seed.

The layout is a small stack of fields at ``l0_per_px`` level-0 pixels per layout
pixel: tissue (0 glass .. 1 tissue), tumour (0 .. 1, only inside tissue) and stain
density.  The renderer interpolates it per tile; the ground truth is its tumour field
thresholded at one half, so truth and pixels agree by construction.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import cv2
import numpy as np

from inference.slides.synth.noise import smooth_random_field

#: The layout's longer side stays at or below this many pixels.
MAX_LAYOUT_SIDE = 2048
#: Soft edge of tissue and tumour, in layout pixels.
_EDGE_PX = 1.5

TISSUE, TUMOUR, DENSITY = 0, 1, 2


@dataclass(frozen=True)
class _Blob:
    """An irregular closed shape: a rotated, squashed circle with a wavy radius (l0 px)."""

    l0_cx: float
    l0_cy: float
    l0_radius: float
    aspect: float
    angle: float
    harmonics: tuple[tuple[int, float, float], ...]  # (k, amplitude, phase)

    def signed_distance(self, l0_x: np.ndarray, l0_y: np.ndarray) -> np.ndarray:
        """Approximate distance inside the outline (positive) in level-0 pixels."""
        dx, dy = l0_x - self.l0_cx, l0_y - self.l0_cy
        cos_a, sin_a = math.cos(self.angle), math.sin(self.angle)
        u = dx * cos_a + dy * sin_a
        v = (-dx * sin_a + dy * cos_a) / self.aspect
        rho = np.hypot(u, v)
        phi = np.arctan2(v, u)
        radius = np.full_like(rho, self.l0_radius)
        for k, amplitude, phase in self.harmonics:
            radius += self.l0_radius * amplitude * np.cos(k * phi + phase)
        return (radius - rho) * self.aspect


def _random_blob(
    rng: np.random.Generator,
    l0_cx: float,
    l0_cy: float,
    l0_radius: float,
    irregularity: float,
    max_k: int,
) -> _Blob:
    harmonics = tuple(
        (k, float(rng.uniform(0.0, irregularity / k)), float(rng.uniform(0, 2 * math.pi)))
        for k in range(2, max_k + 1)
    )
    return _Blob(
        l0_cx=l0_cx,
        l0_cy=l0_cy,
        l0_radius=l0_radius,
        aspect=float(rng.uniform(0.6, 1.0)),
        angle=float(rng.uniform(0, math.pi)),
        harmonics=harmonics,
    )


def layout_l0_per_px(l0_width: int, l0_height: int) -> int:
    """Level-0 pixels per layout pixel: the smallest power of two >= 8 that keeps the
    layout's longer side within :data:`MAX_LAYOUT_SIDE`."""
    l0_per_px = 8
    while max(l0_width, l0_height) / l0_per_px > MAX_LAYOUT_SIDE:
        l0_per_px *= 2
    return l0_per_px


@dataclass(frozen=True)
class SynthLayout:
    """The fields of one synthetic slide; ``fields[..., TISSUE | TUMOUR | DENSITY]``."""

    l0_width: int
    l0_height: int
    l0_per_px: int
    fields: np.ndarray  # (h, w, 3) float32

    @property
    def truth_mask(self) -> np.ndarray:
        """Tumour ground truth, one bool per layout pixel."""
        return (self.fields[..., TUMOUR] > 0.5) & (self.fields[..., TISSUE] > 0.5)

    @property
    def tissue_mask(self) -> np.ndarray:
        return self.fields[..., TISSUE] > 0.5

    def has_tissue(self, l0_x: int, l0_y: int, width: int, height: int) -> bool:
        """Whether any tissue (even a soft edge) reaches the level-0 window."""
        d = self.l0_per_px
        x0, y0 = max(0, l0_x // d - 1), max(0, l0_y // d - 1)
        x1, y1 = (l0_x + width) // d + 2, (l0_y + height) // d + 2
        window = self.fields[y0:y1, x0:x1, TISSUE]
        return bool(window.size) and float(window.max()) > 0.0

    def window(self, l0_x: int, l0_y: int, width: int, height: int) -> np.ndarray:
        """The fields bilinearly interpolated at every level-0 pixel of a window.

        Pixel ``(u, v)`` is sampled at level-0 ``(l0_x + u, l0_y + v)``, so windows
        that share pixels agree on them.  Returns ``(height, width, 3)`` float32.
        """
        d = float(self.l0_per_px)
        matrix = np.array([[1 / d, 0, (l0_x + 0.5) / d - 0.5], [0, 1 / d, (l0_y + 0.5) / d - 0.5]])
        return cv2.warpAffine(
            self.fields,
            matrix,
            (width, height),
            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_REPLICATE,
        )

    def sample(self, l0_x: np.ndarray, l0_y: np.ndarray) -> np.ndarray:
        """The fields at arbitrary level-0 points (bilinear); ``(n, 3)`` for ``n`` points."""
        d = float(self.l0_per_px)
        h, w = self.fields.shape[:2]
        fx = np.clip(np.asarray(l0_x, dtype=np.float64) / d - 0.5, 0, w - 1)
        fy = np.clip(np.asarray(l0_y, dtype=np.float64) / d - 0.5, 0, h - 1)
        x0, y0 = np.floor(fx).astype(np.intp), np.floor(fy).astype(np.intp)
        x1, y1 = np.minimum(x0 + 1, w - 1), np.minimum(y0 + 1, h - 1)
        ax, ay = (fx - x0)[:, None], (fy - y0)[:, None]
        f = self.fields
        top = f[y0, x0] * (1 - ax) + f[y0, x1] * ax
        bottom = f[y1, x0] * (1 - ax) + f[y1, x1] * ax
        return (top * (1 - ay) + bottom * ay).astype(np.float32)


def make_layout(l0_width: int, l0_height: int, seed: int, tumour_scale: float = 1.0) -> SynthLayout:
    """Two to four tissue islands on glass, most with one or two irregular tumour regions.

    ``tumour_scale`` scales every tumour region's size (1: as drawn; smaller: small
    tumours; 0: a slide without tumour); the islands are the same for a seed whatever
    it is.  Every layout with ``tumour_scale > 0`` has some tumour and some tissue that
    is not tumour.
    """
    if not 0.0 <= tumour_scale <= 1.0:
        raise ValueError(f"tumour_scale must be 0 .. 1; got {tumour_scale}")
    rng = np.random.default_rng([seed, 0x5EED])
    d = layout_l0_per_px(l0_width, l0_height)
    lay_w, lay_h = math.ceil(l0_width / d), math.ceil(l0_height / d)
    l0_y, l0_x = np.mgrid[0:lay_h, 0:lay_w].astype(np.float32)
    l0_x, l0_y = (l0_x + 0.5) * d, (l0_y + 0.5) * d

    islands = _place_islands(rng, l0_width, l0_height)
    tissue = np.full((lay_h, lay_w), -np.inf, dtype=np.float32)
    for blob in islands:
        tissue = np.maximum(tissue, blob.signed_distance(l0_x, l0_y))
    rough = smooth_random_field(rng, (lay_h, lay_w), sigma=max(lay_w, lay_h) / 80) - 0.5
    mean_radius = float(np.mean([b.l0_radius for b in islands]))
    tissue += rough * 0.25 * mean_radius

    tumour = np.full((lay_h, lay_w), -np.inf, dtype=np.float32)
    tumour_blobs = _place_tumours(rng, islands)
    if tumour_scale != 1.0:  # same random draws, smaller regions (none at 0)
        tumour_blobs = [
            replace(b, l0_radius=b.l0_radius * tumour_scale)
            for b in tumour_blobs
            if tumour_scale > 0
        ]
    for blob in tumour_blobs:
        tumour = np.maximum(tumour, blob.signed_distance(l0_x, l0_y))
    rough_t = smooth_random_field(rng, (lay_h, lay_w), sigma=max(lay_w, lay_h) / 120) - 0.5
    if tumour_blobs:
        tumour += rough_t * 0.3 * float(np.mean([b.l0_radius for b in tumour_blobs]))
    tumour = np.minimum(tumour, tissue)

    edge = _EDGE_PX * d
    fields = np.empty((lay_h, lay_w, 3), dtype=np.float32)
    fields[..., TISSUE] = np.clip(0.5 + tissue / edge, 0.0, 1.0)
    fields[..., TUMOUR] = np.clip(0.5 + tumour / edge, 0.0, 1.0)
    fields[..., DENSITY] = smooth_random_field(rng, (lay_h, lay_w), sigma=max(lay_w, lay_h) / 40)
    return SynthLayout(l0_width, l0_height, d, fields)


def _place_islands(rng: np.random.Generator, l0_width: int, l0_height: int) -> list[_Blob]:
    side = min(l0_width, l0_height)
    count = int(rng.integers(2, 5))
    islands: list[_Blob] = []
    for _ in range(count):
        radius = side * float(rng.uniform(0.17, 0.30)) * (1.25 if count == 2 else 1.0)
        for _attempt in range(30):
            margin = radius * 1.05
            cx = float(rng.uniform(margin, max(margin, l0_width - margin)))
            cy = float(rng.uniform(margin, max(margin, l0_height - margin)))
            if all(
                math.hypot(cx - o.l0_cx, cy - o.l0_cy) > 0.9 * (radius + o.l0_radius)
                for o in islands
            ):
                break
        islands.append(_random_blob(rng, cx, cy, radius, irregularity=0.35, max_k=5))
    return islands


def _place_tumours(rng: np.random.Generator, islands: list[_Blob]) -> list[_Blob]:
    tumours: list[_Blob] = []
    for index, island in enumerate(islands):
        largest = index == int(np.argmax([b.l0_radius for b in islands]))
        if not largest and rng.random() > 0.8:
            continue
        for _ in range(int(rng.integers(1, 3))):
            radius = island.l0_radius * float(rng.uniform(0.3, 0.5))
            offset = island.l0_radius * float(rng.uniform(0.0, 0.4)) * island.aspect
            angle = float(rng.uniform(0, 2 * math.pi))
            cx = island.l0_cx + offset * math.cos(angle)
            cy = island.l0_cy + offset * math.sin(angle)
            tumours.append(_random_blob(rng, cx, cy, radius, irregularity=0.6, max_k=7))
    return tumours
