"""Where a synthetic prostate needle biopsy has stroma, benign glands and Gleason patterns.

A slide holds one to three needle cores: long strips of tissue about 0.6 mm wide with
gently curved axes and rough edges.  Inside the tissue, a label map (one label per
layout pixel, PANDA's Radboud convention, :data:`PROSTATE_CLASSES`) says what each
place is: stroma (1), benign glands (2), Gleason pattern 3 (3), 4 (4) or 5 (5); 0 is
background (glass).  The truth mask ``slidelens synth --kind prostate`` writes is this
label map, so truth and pixels agree by construction.

The seed decides the grade first (:func:`plan_for_seed`): ISUP grade group
``seed % 6``, then one of the Gleason scores that give it, the share of the tissue that
is tumour and the share of the tumour the secondary pattern takes.  The regions are
smooth random fields thresholded at the quantile that gives exactly those shares (at
layout resolution), so a slide's pattern areas produce its grade with a wide margin:
a secondary pattern takes 20-40 % of the tumour, never close to the 5 % rule.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from inference.slides.synth.layout import layout_l0_per_px
from inference.slides.synth.noise import smooth_random_field

#: Label value = index: the classes of a prostate label mask (PANDA's Radboud convention).
PROSTATE_CLASSES: tuple[str, ...] = (
    "background",
    "stroma",
    "benign",
    "gleason3",
    "gleason4",
    "gleason5",
)
BACKGROUND, STROMA, BENIGN, GLEASON3, GLEASON4, GLEASON5 = range(6)
#: The names the GeoJSON ground truth gives each label (as a pathologist would write them).
PROSTATE_DISPLAY_NAMES: tuple[str, ...] = (
    "Background",
    "Stroma",
    "Benign",
    "Gleason 3",
    "Gleason 4",
    "Gleason 5",
)
#: Gleason pattern -> label.
PATTERN_LABELS: dict[int, int] = {3: GLEASON3, 4: GLEASON4, 5: GLEASON5}
#: The Gleason scores ``(primary, secondary)`` each ISUP grade group is made from here.
GRADE_SCORES: dict[int, tuple[tuple[int, int], ...]] = {
    0: (),
    1: ((3, 3),),
    2: ((3, 4),),
    3: ((4, 3),),
    4: ((4, 4), (3, 5), (5, 3)),
    5: ((4, 5), (5, 4), (5, 5)),
}
#: Soft edge of the tissue, in layout pixels.
_EDGE_PX = 1.5
#: Physical sizes (um): core width, and the scale of the region fields.
_CORE_WIDTH_UM = (560.0, 680.0)
_REGION_SIGMA_UM = 220.0
_SPLIT_SIGMA_UM = 160.0


@dataclass(frozen=True)
class ProstatePlan:
    """What a seed's slide shows: its ISUP grade group and Gleason score (``primary``
    and ``secondary`` patterns, 0 without tumour), the share of the tissue that is
    tumour, the share of the tumour that is the secondary pattern (0 when the score has
    one pattern) and the share of the non-tumour tissue that is benign glands."""

    isup_grade: int
    primary: int
    secondary: int
    tumour_share: float
    secondary_share: float
    benign_share: float

    @property
    def gleason_score(self) -> str | None:
        """``"3+4"``; ``None`` without tumour."""
        return f"{self.primary}+{self.secondary}" if self.primary else None


def plan_for_seed(seed: int) -> ProstatePlan:
    """The grade and shares of the slide of ``seed``: grade group ``seed % 6`` (so six
    consecutive seeds cover every grade), the rest drawn from the seed."""
    rng = np.random.default_rng([seed, 0x6EA5])
    grade = seed % 6
    scores = GRADE_SCORES[grade]
    if not scores:
        return ProstatePlan(0, 0, 0, 0.0, 0.0, float(rng.uniform(0.25, 0.45)))
    primary, secondary = scores[int(rng.integers(len(scores)))]
    tumour_share = float(rng.uniform(0.3, 0.55))
    secondary_share = 0.0 if primary == secondary else float(rng.uniform(0.2, 0.4))
    return ProstatePlan(
        grade, primary, secondary, tumour_share, secondary_share, float(rng.uniform(0.2, 0.4))
    )


@dataclass(frozen=True)
class ProstateLayout:
    """The label map and soft tissue field of one synthetic biopsy slide.

    ``labels[r, c]`` is the label of layout pixel ``(r, c)``, which covers level-0
    ``[c * l0_per_px, (c + 1) * l0_per_px) x [r * l0_per_px, (r + 1) * l0_per_px)``;
    ``tissue`` is 0 (glass) .. 1 (tissue) at the same pixels, and ``labels > 0`` exactly
    where ``tissue > 0.5``.
    """

    l0_width: int
    l0_height: int
    l0_per_px: int
    tissue: np.ndarray  # (h, w) float32
    labels: np.ndarray  # (h, w) uint8
    plan: ProstatePlan

    @property
    def tissue_mask(self) -> np.ndarray:
        return self.labels > BACKGROUND

    def label_counts(self) -> np.ndarray:
        """Layout pixels per label, ``(len(PROSTATE_CLASSES),)`` int64."""
        return np.bincount(self.labels.ravel(), minlength=len(PROSTATE_CLASSES)).astype(np.int64)

    def has_tissue(self, l0_x: int, l0_y: int, width: int, height: int) -> bool:
        """Whether any tissue (even a soft edge) reaches the level-0 window."""
        d = self.l0_per_px
        x0, y0 = max(0, l0_x // d - 1), max(0, l0_y // d - 1)
        x1, y1 = (l0_x + width) // d + 2, (l0_y + height) // d + 2
        window = self.tissue[y0:y1, x0:x1]
        return bool(window.size) and float(window.max()) > 0.0

    def _warp(
        self, field: np.ndarray, l0_x: int, l0_y: int, width: int, height: int, flag: int
    ) -> np.ndarray:
        d = float(self.l0_per_px)
        matrix = np.array([[1 / d, 0, (l0_x + 0.5) / d - 0.5], [0, 1 / d, (l0_y + 0.5) / d - 0.5]])
        out: np.ndarray = cv2.warpAffine(
            field,
            matrix,
            (width, height),
            flags=flag | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_REPLICATE,
        )
        return out

    def tissue_window(self, l0_x: int, l0_y: int, width: int, height: int) -> np.ndarray:
        """The tissue field bilinearly interpolated at every level-0 pixel of a window
        (pixel ``(u, v)`` at level-0 ``(l0_x + u, l0_y + v)``); ``(height, width)``."""
        out: np.ndarray = self._warp(self.tissue, l0_x, l0_y, width, height, cv2.INTER_LINEAR)
        return out

    def soft_window(self, label: int, l0_x: int, l0_y: int, width: int, height: int) -> np.ndarray:
        """``labels == label`` as 0..1, bilinearly interpolated over a window (soft
        region edges for textures that fill a region)."""
        d = self.l0_per_px
        h, w = self.labels.shape
        x0, y0 = min(max(0, l0_x // d - 2), w - 1), min(max(0, l0_y // d - 2), h - 1)
        x1, y1 = max(x0 + 1, (l0_x + width) // d + 3), max(y0 + 1, (l0_y + height) // d + 3)
        field = (self.labels[y0:y1, x0:x1] == label).astype(np.float32)
        return self._warp(field, l0_x - x0 * d, l0_y - y0 * d, width, height, cv2.INTER_LINEAR)

    def labels_at(self, l0_x: np.ndarray, l0_y: np.ndarray) -> np.ndarray:
        """The label of the layout pixel under each level-0 point (0 outside)."""
        d = self.l0_per_px
        cols = np.floor(np.asarray(l0_x, np.float64) / d).astype(np.intp)
        rows = np.floor(np.asarray(l0_y, np.float64) / d).astype(np.intp)
        h, w = self.labels.shape
        inside = (cols >= 0) & (cols < w) & (rows >= 0) & (rows < h)
        out = np.zeros(cols.shape, np.uint8)
        out[inside] = self.labels[rows[inside], cols[inside]]
        return out


def _quantile_mask(field: np.ndarray, within: np.ndarray, share: float) -> np.ndarray:
    """The ``share`` of the pixels of ``within`` where ``field`` is highest."""
    out = np.zeros(field.shape, bool)
    count = round(share * int(within.sum()))
    if count <= 0:
        return out
    values = field[within]
    order = np.argsort(-values, kind="stable")[:count]
    flat = np.flatnonzero(within)
    out.ravel()[flat[order]] = True
    return out


def _cores(
    rng: np.random.Generator, l0_width: int, l0_height: int, mpp: float, d: int
) -> np.ndarray:
    """Signed distance (level-0 px, positive inside) to the union of the needle cores,
    at layout resolution."""
    lay_w, lay_h = math.ceil(l0_width / d), math.ceil(l0_height / d)
    y, x = np.mgrid[0:lay_h, 0:lay_w].astype(np.float32)
    x, y = (x + 0.5) * d, (y + 0.5) * d
    height_um = l0_height * mpp
    count = int(np.clip(math.floor(height_um / 950.0), 1, 3))
    band = l0_height / count
    inside = np.full((lay_h, lay_w), -np.inf, np.float32)
    for k in range(count):
        width_px = min(float(rng.uniform(*_CORE_WIDTH_UM)) / mpp, 0.62 * band)
        half = width_px / 2.0
        centre = band * (k + 0.5) + float(rng.uniform(-0.08, 0.08)) * band
        amplitude = float(rng.uniform(0.0, 0.12)) * band
        period = l0_width * float(rng.uniform(0.8, 1.6))
        phase = float(rng.uniform(0, 2 * math.pi))
        x0 = l0_width * float(rng.uniform(0.03, 0.1))
        x1 = l0_width * float(rng.uniform(0.9, 0.97))
        axis_y = centre + amplitude * np.sin(2 * math.pi * x / period + phase)
        across = half - np.abs(y - axis_y)
        # rounded ends: distance to the end caps
        along = np.minimum(x - x0, x1 - x)
        core = np.minimum(across, along + half * 0.3)
        inside = np.maximum(inside, core)
    rough = smooth_random_field(rng, (lay_h, lay_w), sigma=60.0 / (mpp * d)) - 0.5
    return inside + rough * 0.25 * float(_CORE_WIDTH_UM[0] / mpp)


def make_prostate_layout(l0_width: int, l0_height: int, seed: int, mpp: float) -> ProstateLayout:
    """The layout of the slide of ``seed`` (see the module): cores, then the regions of
    :func:`plan_for_seed`'s shares, at :func:`layout_l0_per_px` level-0 px per pixel."""
    plan = plan_for_seed(seed)
    rng = np.random.default_rng([seed, 0x9805])
    d = layout_l0_per_px(l0_width, l0_height)
    signed = _cores(rng, l0_width, l0_height, mpp, d)
    tissue_soft = np.clip(0.5 + signed / (_EDGE_PX * d), 0.0, 1.0).astype(np.float32)
    tissue = tissue_soft > 0.5
    shape = tissue.shape
    sigma = _REGION_SIGMA_UM / (mpp * d)
    labels = np.where(tissue, STROMA, BACKGROUND).astype(np.uint8)
    tumour = _quantile_mask(smooth_random_field(rng, shape, sigma), tissue, plan.tumour_share)
    split = smooth_random_field(rng, shape, _SPLIT_SIGMA_UM / (mpp * d))
    benign_field = smooth_random_field(rng, shape, sigma * 0.8)
    if plan.primary:
        secondary = _quantile_mask(split, tumour, plan.secondary_share)
        labels[tumour] = PATTERN_LABELS[plan.primary]
        labels[secondary] = PATTERN_LABELS[plan.secondary]
    benign = _quantile_mask(benign_field, tissue & ~tumour, plan.benign_share)
    labels[benign] = BENIGN
    return ProstateLayout(l0_width, l0_height, d, tissue_soft, labels, plan)
