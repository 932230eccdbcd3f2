"""Paints level-0 tiles of a synthetic H&E-like slide from its layout.

Glass is near-white.  Tissue is pink stroma with wavy eosin fibres and sparse nuclei
(elongated fibroblasts, small round dark lymphocytes).  Tumour is dense: many larger,
darker, irregular nuclei over lilac cytoplasm, with few fibres.  Nuclei live on a
level-0 grid of cells and every number about them is a hash of the cell, so a tile
looks the same whenever and next to whatever it is painted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from inference.slides.synth.layout import DENSITY, TISSUE, TUMOUR, SynthLayout
from inference.slides.synth.noise import hash_uniform, value_noise, value_noise_at

GLASS_RGB = (242, 242, 244)
_STROMA_LIGHT = np.array([244, 198, 224], dtype=np.float32)
_STROMA_FIBRE = np.array([222, 128, 178], dtype=np.float32)
_TUMOUR_CYTOPLASM = np.array([214, 160, 208], dtype=np.float32)
_HAEMATOXYLIN = np.array([50, 28, 104], dtype=np.float32)

#: Side of one nucleus cell (um); each cell holds up to ``_SLOTS`` nuclei.
_CELL_UM = 16.0
_SLOTS = 4
_VERTICES = 10
#: Fixed-point bits for cv2.fillPoly's sub-pixel vertices.
_SHIFT = 4
_PAD = 4


@dataclass(frozen=True)
class _NucleusKind:
    """Size in um (radius of the long axis), shape and stain of one kind of nucleus."""

    radius_um: tuple[float, float]
    aspect: tuple[float, float]
    jitter: float
    darkness: tuple[float, float]


_TUMOUR = _NucleusKind(radius_um=(4.0, 8.0), aspect=(0.6, 1.0), jitter=0.22, darkness=(0.7, 0.97))
_FIBROBLAST = _NucleusKind(
    radius_um=(4.0, 6.5), aspect=(0.25, 0.45), jitter=0.06, darkness=(0.5, 0.7)
)
_LYMPHOCYTE = _NucleusKind(
    radius_um=(2.4, 3.2), aspect=(0.85, 1.0), jitter=0.05, darkness=(0.85, 1.0)
)
#: Expected nuclei per cell: tumour; stromal fibroblasts and lymphocytes.
_TUMOUR_PER_CELL = 1.7
_FIBROBLASTS_PER_CELL = 0.3
_LYMPHOCYTES_PER_CELL = 0.1
_MAX_RADIUS_UM = 9.5


def fibre_angles(seed: int, salt: int) -> tuple[float, float]:
    """The two orientations (radians) of a slide's stroma fibres, from its seed."""
    turns = hash_uniform(seed, np.arange(2), salt)
    return (
        float(turns[0]) * math.pi,
        float(turns[0] + 0.3 + 0.4 * turns[1]) * math.pi,
    )


def stroma_noise(
    seed: int, args: tuple[int, int, int, int], mpp: float, angles: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(fine, mid, fibres)``, each ``(h, w, 1)`` in [0, 1], of the level-0 window
    ``args`` (x, y, width, height): fine grain (1.5 um), mid-scale mottling (20 um) and
    stroma fibres.  Fibres are contour lines of stretched noise: long, wavy, roughly
    parallel bands ~8 um apart, in two orientations that take turns across the tissue."""
    px = 1.0 / mpp
    fine = value_noise(seed + 11, *args, cell_px=1.5 * px)[..., None]
    mid = value_noise(seed + 12, *args, cell_px=20 * px)[..., None]
    bundles = []
    for k, angle in enumerate(angles):
        n = value_noise(seed + 13 + k, *args, cell_px=18 * px, stretch=6.0, angle=angle)
        bundles.append((0.5 + 0.5 * np.cos(2 * np.pi * 3.0 * n)) ** 3)
    turn = value_noise(seed + 15, *args, cell_px=150 * px)
    turn = np.clip((turn - 0.5) * 4 + 0.5, 0, 1)
    fibres = (bundles[0] * turn + bundles[1] * (1 - turn))[..., None]
    return fine, mid, fibres


class TileRenderer:
    """Renders any level-0 window of one synthetic slide (thread-safe, stateless)."""

    def __init__(self, layout: SynthLayout, seed: int, mpp: float) -> None:
        self.layout = layout
        self.seed = seed
        self.mpp = mpp
        self._cell_px = max(4.0, _CELL_UM / mpp)
        self._margin_px = math.ceil(_MAX_RADIUS_UM / mpp)
        self._fibre_angles = fibre_angles(seed, 7)

    def render(self, l0_x: int, l0_y: int, width: int, height: int) -> np.ndarray:
        """``(height, width, 3)`` uint8 RGB of the level-0 window at ``(l0_x, l0_y)``."""
        if not self.layout.has_tissue(l0_x, l0_y, width, height):
            return np.full((height, width, 3), GLASS_RGB, dtype=np.uint8)
        fields = self.layout.window(l0_x, l0_y, width, height)
        tissue = fields[..., TISSUE, None]
        tumour = fields[..., TUMOUR, None]
        density = fields[..., DENSITY, None]

        args = (l0_x, l0_y, width, height)
        fine, mid, fibres = stroma_noise(self.seed, args, self.mpp, self._fibre_angles)
        fibre_weight = np.clip(
            0.1 + 0.55 * fibres * (0.4 + 0.6 * density) + 0.25 * (mid - 0.5), 0, 1
        )
        stroma = _STROMA_LIGHT + (_STROMA_FIBRE - _STROMA_LIGHT) * fibre_weight
        cytoplasm = _TUMOUR_CYTOPLASM * (0.95 + 0.1 * mid)
        tissue_rgb = stroma + (cytoplasm - stroma) * (0.85 * tumour)

        stain = self._nuclei(l0_x, l0_y, width, height)[..., None]
        stain = np.clip(stain * (0.82 + 0.4 * (fine - 0.5)), 0, 1)
        tissue_rgb += (_HAEMATOXYLIN - tissue_rgb) * stain

        glass = np.array(GLASS_RGB, dtype=np.float32)
        rgb = glass + (tissue_rgb - glass) * tissue + (fine - 0.5) * 4.0
        return np.clip(rgb + 0.5, 0, 255).astype(np.uint8)

    def _nuclei(self, l0_x: int, l0_y: int, width: int, height: int) -> np.ndarray:
        """Stain amount 0..1 of every nucleus reaching the window, ``(height, width)``."""
        cell, margin = self._cell_px, self._margin_px
        cx0 = math.floor((l0_x - margin) / cell)
        cy0 = math.floor((l0_y - margin) / cell)
        cx1 = math.floor((l0_x + width + margin) / cell)
        cy1 = math.floor((l0_y + height + margin) / cell)
        cy, cx = np.mgrid[cy0 : cy1 + 1, cx0 : cx1 + 1]
        cx, cy = cx.ravel(), cy.ravel()
        at_centre = self.layout.sample((cx + 0.5) * cell, (cy + 0.5) * cell)
        tissue = at_centre[:, TISSUE, None]
        is_tumour_cell = (at_centre[:, TUMOUR, None] > 0.5) & (tissue > 0.5)

        slot = np.arange(_SLOTS)[None, :]
        cxs, cys = cx[:, None], cy[:, None]
        presence = hash_uniform(self.seed, cxs, cys, slot, 0)
        # tumour cells grow in nests: denser and looser patches ~100 um across
        nests = value_noise_at(self.seed + 21, (cx + 0.5) * cell, (cy + 0.5) * cell, 50 / self.mpp)
        p_tumour = _TUMOUR_PER_CELL / _SLOTS * tissue * (0.45 + 1.1 * nests[:, None])
        p_fibro = _FIBROBLASTS_PER_CELL / _SLOTS * tissue
        p_lymph = _LYMPHOCYTES_PER_CELL / _SLOTS * tissue
        kind = np.zeros(presence.shape, dtype=np.int8)
        kind[is_tumour_cell & (presence < p_tumour)] = 1
        normal = ~is_tumour_cell
        kind[normal & (presence < p_fibro)] = 2
        kind[normal & (presence >= p_fibro) & (presence < p_fibro + p_lymph)] = 3

        # cv2's anti-aliased fill treats the image border specially: paint on a padded
        # canvas so that pixels near a tile edge match the neighbouring tile's.
        pad = _PAD
        stain = np.zeros((height + 2 * pad, width + 2 * pad), dtype=np.uint8)
        cell_i, slot_i = np.nonzero(kind)
        if cell_i.size == 0:
            return np.zeros((height, width), dtype=np.float32)
        n_cx, n_cy, n_slot = cx[cell_i], cy[cell_i], slot_i
        n_kind = kind[cell_i, slot_i]

        def u(field: int) -> np.ndarray:
            return hash_uniform(self.seed, n_cx, n_cy, n_slot, field)

        pos_x = (n_cx + u(1)) * cell - l0_x + pad
        pos_y = (n_cy + u(2)) * cell - l0_y + pad
        radius = np.empty(n_kind.shape)
        aspect = np.empty(n_kind.shape)
        jitter = np.empty(n_kind.shape)
        darkness = np.empty(n_kind.shape)
        for code, spec in ((1, _TUMOUR), (2, _FIBROBLAST), (3, _LYMPHOCYTE)):
            sel = n_kind == code
            radius[sel] = _lerp(spec.radius_um, u(3)[sel]) / self.mpp
            aspect[sel] = _lerp(spec.aspect, u(4)[sel])
            jitter[sel] = spec.jitter
            darkness[sel] = _lerp(spec.darkness, u(5)[sel])
        angle = u(6) * math.pi

        vertex = np.arange(_VERTICES)
        wobble = hash_uniform(
            self.seed, n_cx[:, None], n_cy[:, None], n_slot[:, None], 100 + vertex
        )
        phi = 2 * math.pi * vertex / _VERTICES
        r = radius[:, None] * (1 + jitter[:, None] * (2 * wobble - 1))
        local_x = r * np.cos(phi)
        local_y = r * np.sin(phi) * aspect[:, None]
        cos_a, sin_a = np.cos(angle)[:, None], np.sin(angle)[:, None]
        vx = pos_x[:, None] + local_x * cos_a - local_y * sin_a
        vy = pos_y[:, None] + local_x * sin_a + local_y * cos_a
        points = np.round(np.stack([vx, vy], axis=-1) * (1 << _SHIFT)).astype(np.int32)
        values = np.round(darkness * 255).astype(int)
        for polygon, value in zip(points, values, strict=True):
            cv2.fillPoly(stain, [polygon], int(value), lineType=cv2.LINE_AA, shift=_SHIFT)
        return stain[pad:-pad, pad:-pad].astype(np.float32) / 255.0


def _lerp(bounds: tuple[float, float], t: np.ndarray) -> np.ndarray:
    return bounds[0] + (bounds[1] - bounds[0]) * t
