"""Paints level-0 tiles of a synthetic prostate biopsy from its label map.

Each region has its own texture, chosen so that the patterns differ the way a
pathologist tells them apart (sizes in micrometres, so they hold at any pixel size):

* **stroma** (label 1): pink fibromuscular stroma with wavy eosin fibres, sparse
  spindle-shaped fibroblast nuclei and a few small round lymphocytes (the texture of
  the tumour slides' stroma);
* **benign glands** (2): large glands (radius 52-76 um) with folded, papillary outlines,
  apart in stroma; a tall band of pale, clear cytoplasm around a wide empty lumen,
  small round nuclei in one row at the base;
* **Gleason pattern 3** (3): small, round, well-formed glands (radius 17-28 um), each
  separate from the next by stroma; a thin ring of purple (amphophilic) cytoplasm with
  enlarged dark nuclei around a small round lumen;
* **Gleason pattern 4** (4): large fused nests (radius 68-98 um) of purple cytoplasm
  crowded with nuclei and punched through by many small round lumens (cribriform),
  touching one another with only thin stroma between;
* **Gleason pattern 5** (5): solid sheets and cords of crowded, pleomorphic dark nuclei
  with no lumens at all, split only by thin strands of stroma.

Glands and nests sit on jittered lattices in level-0 coordinates; a gland exists where
the label map at its centre is its pattern.  Every number about a gland or nucleus is a
hash of its lattice cell (:func:`inference.slides.synth.noise.hash_uniform`) and tiles are
painted on a padded canvas, so a tile looks the same whenever and next to whatever it
is painted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from inference.slides.synth.noise import hash_uniform, value_noise
from inference.slides.synth.prostate_layout import (
    BENIGN,
    GLEASON3,
    GLEASON4,
    GLEASON5,
    STROMA,
    ProstateLayout,
)
from inference.slides.synth.render import GLASS_RGB, fibre_angles, stroma_noise

_STROMA_LIGHT = np.array([240, 190, 218], dtype=np.float32)
_STROMA_FIBRE = np.array([218, 120, 170], dtype=np.float32)
_PALE_CYTOPLASM = np.array([240, 222, 236], dtype=np.float32)
_PURPLE_CYTOPLASM = np.array([200, 146, 200], dtype=np.float32)
_LUMEN = np.array([248, 242, 248], dtype=np.float32)
_HAEMATOXYLIN = np.array([48, 26, 102], dtype=np.float32)

_SHIFT = 4  # fixed-point bits of cv2.fillPoly's sub-pixel vertices
_NUCLEUS_VERTICES = 10


@dataclass(frozen=True)
class _GlandKind:
    """Glands of one pattern: lattice spacing, radius range, outline folds (harmonic
    amplitude), epithelium thickness, lumen holes (cribriform), nuclei along the ring."""

    label: int
    key: int
    spacing_um: float
    radius_um: tuple[float, float]
    fold: float
    folds: tuple[int, int]
    epithelium_um: float
    holes: bool
    ring_nuclei: bool
    pale: bool


_GLANDS: tuple[_GlandKind, ...] = (
    _GlandKind(BENIGN, 31, 165.0, (52.0, 76.0), 0.10, (5, 8), 15.0, False, True, True),
    _GlandKind(GLEASON3, 32, 68.0, (17.0, 28.0), 0.05, (3, 5), 8.0, False, True, False),
    _GlandKind(GLEASON4, 33, 150.0, (68.0, 98.0), 0.16, (3, 6), 0.0, True, False, False),
)
_MAX_RADIUS_UM = 98.0 * 1.25
#: Lumens of a cribriform nest: spacing and radius range (um), inset from its edge.
_HOLE_SPACING_UM = 24.0
_HOLE_RADIUS_UM = (4.5, 8.5)
_HOLE_INSET_UM = 11.0


@dataclass(frozen=True)
class _NucleusKind:
    radius_um: tuple[float, float]
    aspect: tuple[float, float]
    darkness: tuple[float, float]


_BASAL = _NucleusKind((2.6, 3.4), (0.75, 1.0), (0.55, 0.75))
_GLAND3 = _NucleusKind((3.6, 5.0), (0.7, 1.0), (0.8, 0.97))
_CROWDED = _NucleusKind((3.6, 6.5), (0.6, 1.0), (0.75, 0.98))
_FIBROBLAST = _NucleusKind((4.0, 6.5), (0.25, 0.45), (0.5, 0.7))
_LYMPHOCYTE = _NucleusKind((2.4, 3.2), (0.85, 1.0), (0.85, 1.0))
#: The cell grid of scattered nuclei (um) and expected nuclei per cell.
_CELL_UM = 13.0
_SLOTS = 4
_PER_CELL = {GLEASON4: 1.5, GLEASON5: 2.4}
_FIBROBLASTS_PER_CELL = 0.22
_LYMPHOCYTES_PER_CELL = 0.08


@dataclass(frozen=True)
class _Glands:
    """The glands of one kind reaching a canvas: lattice cell, centre (level-0), radius
    (px) and the outline's folds, phase, aspect and angle."""

    ii: np.ndarray
    jj: np.ndarray
    gx: np.ndarray
    gy: np.ndarray
    radius: np.ndarray
    folds: np.ndarray
    phase: np.ndarray
    aspect: np.ndarray
    angle: np.ndarray


def _lerp(bounds: tuple[float, float], t: np.ndarray) -> np.ndarray:
    return bounds[0] + (bounds[1] - bounds[0]) * t


class ProstateRenderer:
    """Renders any level-0 window of one synthetic biopsy (thread-safe, stateless)."""

    def __init__(self, layout: ProstateLayout, seed: int, mpp: float) -> None:
        self.layout = layout
        self.seed = seed
        self.mpp = mpp
        self._pad = math.ceil(_MAX_RADIUS_UM / mpp) + 4
        self._fibre_angles = fibre_angles(seed, 17)

    def render(self, l0_x: int, l0_y: int, width: int, height: int) -> np.ndarray:
        """``(height, width, 3)`` uint8 RGB of the level-0 window at ``(l0_x, l0_y)``."""
        layout = self.layout
        if not layout.has_tissue(l0_x, l0_y, width, height):
            return np.full((height, width, 3), GLASS_RGB, dtype=np.uint8)
        pad = self._pad
        cx, cy, cw, ch = l0_x - pad, l0_y - pad, width + 2 * pad, height + 2 * pad
        pale = np.zeros((ch, cw), np.uint8)
        purple = np.zeros((ch, cw), np.uint8)
        lumen = np.zeros((ch, cw), np.uint8)
        nuclei: list[np.ndarray] = []
        for kind in _GLANDS:
            self._glands(kind, cx, cy, cw, ch, pale if kind.pale else purple, lumen, nuclei)
        sheet_canvas = self._sheet_canvas(cx, cy, cw, ch)
        epithelium = np.maximum(np.maximum(pale, purple), sheet_canvas)
        self._scattered(cx, cy, cw, ch, epithelium, lumen, nuclei)
        stain_canvas = self._paint_nuclei(nuclei, cx, cy, cw, ch)

        args = (l0_x, l0_y, width, height)
        crop = (slice(pad, pad + height), slice(pad, pad + width))
        cords = value_noise(self.seed + 41, *args, cell_px=30 / self.mpp, stretch=4.0, angle=0.7)
        strands = np.clip(1.0 - np.abs(cords - 0.5) / 0.035, 0.0, 1.0)
        sheet = sheet_canvas[crop].astype(np.float32) / 255.0 * (1.0 - 0.9 * strands)
        pale_w = pale[crop].astype(np.float32)[..., None] / 255.0
        purple_w = np.maximum(purple[crop].astype(np.float32) / 255.0, sheet)[..., None]
        lumen_w = lumen[crop].astype(np.float32)[..., None] / 255.0

        fine, mid, fibres = stroma_noise(self.seed, args, self.mpp, self._fibre_angles)
        fibre_weight = np.clip(0.15 + 0.6 * fibres + 0.25 * (mid - 0.5), 0, 1)
        rgb = _STROMA_LIGHT + (_STROMA_FIBRE - _STROMA_LIGHT) * fibre_weight
        rgb = rgb + (_PALE_CYTOPLASM * (0.97 + 0.06 * mid) - rgb) * pale_w
        rgb = rgb + (_PURPLE_CYTOPLASM * (0.95 + 0.1 * mid) - rgb) * purple_w
        rgb = rgb + (_LUMEN - rgb) * lumen_w
        stain = np.clip(stain_canvas[crop][..., None] * (0.82 + 0.4 * (fine - 0.5)), 0, 1)
        rgb = rgb + (_HAEMATOXYLIN - rgb) * stain

        tissue = layout.tissue_window(*args)[..., None]
        glass = np.array(GLASS_RGB, dtype=np.float32)
        out = glass + (rgb - glass) * tissue + (fine - 0.5) * 4.0
        return np.clip(out + 0.5, 0, 255).astype(np.uint8)

    # -- glands --------------------------------------------------------------------------

    def _glands(
        self,
        kind: _GlandKind,
        cx: int,
        cy: int,
        cw: int,
        ch: int,
        epithelium: np.ndarray,
        lumen: np.ndarray,
        nuclei: list[np.ndarray],
    ) -> None:
        """Draw the glands of ``kind`` that reach the canvas at level-0 ``(cx, cy)``."""
        spacing = kind.spacing_um / self.mpp
        reach = kind.radius_um[1] * 1.25 / self.mpp
        i0, i1 = math.floor((cx - reach) / spacing) - 1, math.floor((cx + cw + reach) / spacing) + 1
        j0, j1 = math.floor((cy - reach) / spacing) - 1, math.floor((cy + ch + reach) / spacing) + 1
        jj, ii = np.mgrid[j0 : j1 + 1, i0 : i1 + 1]
        ii, jj = ii.ravel(), jj.ravel()

        def u(field: int) -> np.ndarray:
            return hash_uniform(self.seed + kind.key, ii, jj, field)

        jitter = 0.3
        gx = (ii + 0.5 + jitter * (u(1) - 0.5)) * spacing
        gy = (jj + 0.5 + jitter * (u(2) - 0.5)) * spacing
        keep = self.layout.labels_at(gx, gy) == kind.label
        if not keep.any():
            return
        radius = _lerp(kind.radius_um, u(3)) / self.mpp
        aspect = 0.75 + 0.25 * u(4)
        angle = u(5) * math.pi
        folds = kind.folds[0] + np.floor(u(6) * (kind.folds[1] - kind.folds[0] + 1))
        phase = u(7) * 2 * math.pi
        ii, jj, gx, gy = ii[keep], jj[keep], gx[keep], gy[keep]
        radius, aspect, angle = radius[keep], aspect[keep], angle[keep]
        folds, phase = folds[keep], phase[keep]
        vertices = 48 if kind.fold > 0.08 else 28
        phi = 2 * math.pi * np.arange(vertices) / vertices
        waves = self._waves(kind, folds, phase, phi)  # (glands, vertices)
        for g in range(len(gx)):
            wave = waves[g]
            outline = self._ring(gx[g], gy[g], radius[g] * wave, aspect[g], angle[g], phi, cx, cy)
            cv2.fillPoly(epithelium, [outline], 255, lineType=cv2.LINE_AA, shift=_SHIFT)
            if kind.holes:
                continue
            inner_r = np.maximum(radius[g] * wave - kind.epithelium_um / self.mpp, 2.0 / self.mpp)
            inner = self._ring(gx[g], gy[g], inner_r, aspect[g], angle[g], phi, cx, cy)
            cv2.fillPoly(lumen, [inner], 255, lineType=cv2.LINE_AA, shift=_SHIFT)
        if kind.holes:
            self._holes(kind, ii, jj, gx, gy, radius, cx, cy, lumen)
        elif kind.ring_nuclei:
            spec = _BASAL if kind.pale else _GLAND3
            inset = (3.5 if kind.pale else kind.epithelium_um / 2) / self.mpp
            glands = _Glands(ii, jj, gx, gy, radius, folds, phase, aspect, angle)
            nuclei.append(self._ring_nuclei(kind, glands, phi, inset, spec))

    @staticmethod
    def _waves(
        kind: _GlandKind, folds: np.ndarray, phase: np.ndarray, phi: np.ndarray
    ) -> np.ndarray:
        """The folded outline of each gland: radius factor at angles ``phi``."""
        f, p = folds[:, None], phase[:, None]
        wave = 1.0 + kind.fold * np.cos(f * phi + p)
        wave += 0.5 * kind.fold * np.cos((f + 3) * phi + 2.1 * p)
        out: np.ndarray = wave
        return out

    @staticmethod
    def _ring(
        gx: float,
        gy: float,
        r: np.ndarray,
        aspect: float,
        angle: float,
        phi: np.ndarray,
        cx: int,
        cy: int,
    ) -> np.ndarray:
        lx, ly = r * np.cos(phi), r * np.sin(phi) * aspect
        ca, sa = math.cos(angle), math.sin(angle)
        x = gx - cx + lx * ca - ly * sa
        y = gy - cy + lx * sa + ly * ca
        return np.round(np.stack([x, y], axis=-1) * (1 << _SHIFT)).astype(np.int32)

    def _holes(
        self,
        kind: _GlandKind,
        ii: np.ndarray,
        jj: np.ndarray,
        gx: np.ndarray,
        gy: np.ndarray,
        radius: np.ndarray,
        cx: int,
        cy: int,
        lumen: np.ndarray,
    ) -> None:
        """Punch the round lumens of cribriform nests (in nest order)."""
        step = _HOLE_SPACING_UM / self.mpp
        parts_a, parts_b, owner = [], [], []
        for g in range(len(gx)):
            n = math.ceil(radius[g] / step)
            b, a = np.mgrid[-n : n + 1, -n : n + 1]
            parts_a.append(a.ravel())
            parts_b.append(b.ravel())
            owner.append(np.full(a.size, g))
        if not owner:
            return
        a, b, g_of = np.concatenate(parts_a), np.concatenate(parts_b), np.concatenate(owner)
        seed = self.seed + kind.key + 1000
        key_i, key_j = ii[g_of] * 1000 + a, jj[g_of] * 1000 + b

        def u(field: int) -> np.ndarray:
            return hash_uniform(seed, key_i, key_j, field)

        nest_x, nest_y, nest_r = gx[g_of], gy[g_of], radius[g_of]
        hx = nest_x + (a + 0.5 * (b % 2) + 0.35 * (u(1) - 0.5)) * step
        hy = nest_y + (b * 0.866 + 0.35 * (u(2) - 0.5)) * step
        hr = _lerp(_HOLE_RADIUS_UM, u(3)) / self.mpp
        inside = np.hypot(hx - nest_x, hy - nest_y) + hr < nest_r * 0.82 - _HOLE_INSET_UM / self.mpp
        for x, y, r in zip(hx[inside], hy[inside], hr[inside], strict=True):
            centre = (round((x - cx) * (1 << _SHIFT)), round((y - cy) * (1 << _SHIFT)))
            cv2.circle(lumen, centre, round(r * (1 << _SHIFT)), 255, -1, cv2.LINE_AA, _SHIFT)

    def _ring_nuclei(
        self,
        kind: _GlandKind,
        glands: _Glands,
        phi: np.ndarray,
        inset: float,
        spec: _NucleusKind,
    ) -> np.ndarray:
        """Nuclei in one row along each gland's ring, ``inset`` inside its outline (gland
        by gland, round each ring)."""
        spacing = (7.5 if kind.pale else 8.5) / self.mpp
        counts = np.maximum(6, (2 * math.pi * glands.radius / spacing).astype(np.int64))
        g = np.repeat(np.arange(len(counts)), counts)
        starts = np.repeat(np.cumsum(counts) - counts, counts)
        k = np.arange(len(g)) - starts
        seed = self.seed + kind.key + 2000
        key_i, key_j = glands.ii[g], glands.jj[g]

        def u(field: int) -> np.ndarray:
            return hash_uniform(seed, key_i, key_j, k, field)

        theta = 2 * math.pi * (k + 0.3 * (u(1) - 0.5)) / counts[g]
        # the outline's radius at theta, linear between its vertices (np.interp's rule)
        step = 2 * math.pi / len(phi)
        t = np.mod(theta, 2 * math.pi)
        below = np.minimum(np.floor(t / step).astype(np.int64), len(phi) - 1)
        frac = (t - below * step) / step
        waves = self._waves(kind, glands.folds[g], glands.phase[g], phi)
        rows = np.arange(len(g))
        r0 = glands.radius[g] * waves[rows, below]
        r1 = glands.radius[g] * waves[rows, (below + 1) % len(phi)]
        r_at = r0 + frac * (r1 - r0) - inset
        aspect, angle = glands.aspect[g], glands.angle[g]
        lx, ly = r_at * np.cos(theta), r_at * np.sin(theta) * aspect
        ca, sa = np.cos(angle), np.sin(angle)
        x = glands.gx[g] + lx * ca - ly * sa
        y = glands.gy[g] + lx * sa + ly * ca
        return self._nucleus_rows(x, y, spec, u(2), u(3), u(4), theta)

    def _nucleus_rows(
        self,
        x: np.ndarray,
        y: np.ndarray,
        spec: _NucleusKind,
        u_radius: np.ndarray,
        u_aspect: np.ndarray,
        u_dark: np.ndarray,
        angle: np.ndarray,
    ) -> np.ndarray:
        """``(n, 6)`` rows of x, y (level-0), radius (px), aspect, darkness, angle."""
        return np.stack(
            [
                x,
                y,
                _lerp(spec.radius_um, u_radius) / self.mpp,
                _lerp(spec.aspect, u_aspect),
                _lerp(spec.darkness, u_dark),
                angle,
            ],
            axis=1,
        )

    # -- sheets and scattered nuclei -----------------------------------------------------

    def _sheet_canvas(self, cx: int, cy: int, cw: int, ch: int) -> np.ndarray:
        """Pattern 5 sheets over the padded canvas, uint8 0..255 (no cords: the nuclei
        that fall on a thin strand stay, as single cells in the stroma do)."""
        sheet = self.layout.soft_window(GLEASON5, cx, cy, cw, ch)
        return np.round(sheet * 255).astype(np.uint8)

    def _scattered(
        self,
        cx: int,
        cy: int,
        cw: int,
        ch: int,
        epithelium: np.ndarray,
        lumen: np.ndarray,
        nuclei: list[np.ndarray],
    ) -> None:
        """Nuclei on a cell grid: crowded in pattern 4 nests and pattern 5 sheets (not in
        lumens), fibroblasts and lymphocytes in stroma."""
        cell = _CELL_UM / self.mpp
        i0, i1 = math.floor(cx / cell), math.floor((cx + cw) / cell)
        j0, j1 = math.floor(cy / cell), math.floor((cy + ch) / cell)
        jj, ii = np.mgrid[j0 : j1 + 1, i0 : i1 + 1]
        ii = np.repeat(ii.ravel(), _SLOTS)
        jj = np.repeat(jj.ravel(), _SLOTS)
        slot = np.tile(np.arange(_SLOTS), len(ii) // _SLOTS)

        def u(field: int) -> np.ndarray:
            return hash_uniform(self.seed + 51, ii, jj, slot, field)

        x = (ii + u(1)) * cell
        y = (jj + u(2)) * cell
        col = np.clip(np.floor(x - cx).astype(np.intp), 0, cw - 1)
        row = np.clip(np.floor(y - cy).astype(np.intp), 0, ch - 1)
        on_epi = epithelium[row, col] > 127
        in_lumen = lumen[row, col] > 100
        label = self.layout.labels_at(x, y)
        presence = u(0)
        crowd = np.zeros(len(x))
        for lab, per_cell in _PER_CELL.items():
            crowd[label == lab] = per_cell / _SLOTS
        crowded = on_epi & ~in_lumen & (presence < crowd)
        stroma = (~on_epi) & (~in_lumen) & (label >= STROMA)
        p_f = _FIBROBLASTS_PER_CELL / _SLOTS
        p_l = _LYMPHOCYTES_PER_CELL / _SLOTS
        fibro = stroma & (presence < p_f)
        lymph = stroma & (presence >= p_f) & (presence < p_f + p_l)
        angle = u(6) * math.pi
        for chosen, spec in ((crowded, _CROWDED), (fibro, _FIBROBLAST), (lymph, _LYMPHOCYTE)):
            if chosen.any():
                rows = self._nucleus_rows(
                    x[chosen],
                    y[chosen],
                    spec,
                    u(3)[chosen],
                    u(4)[chosen],
                    u(5)[chosen],
                    angle[chosen],
                )
                nuclei.append(rows)

    def _paint_nuclei(
        self, nuclei: list[np.ndarray], cx: int, cy: int, cw: int, ch: int
    ) -> np.ndarray:
        """Stain 0..1 of every nucleus over the padded canvas."""
        stain = np.zeros((ch, cw), np.uint8)
        if not nuclei:
            return stain.astype(np.float32)
        rows = np.concatenate(nuclei)
        x, y, r, aspect, dark, angle = rows.T
        margin = r + 2
        visible = (x + margin > cx) & (x - margin < cx + cw) & (y + margin > cy)
        visible &= y - margin < cy + ch
        x, y, r, aspect, dark, angle = (v[visible] for v in (x, y, r, aspect, dark, angle))
        phi = 2 * math.pi * np.arange(_NUCLEUS_VERTICES) / _NUCLEUS_VERTICES
        wobble = 1.0 + 0.08 * np.cos(3 * phi[None, :] + angle[:, None] * 7.0)
        lx = r[:, None] * wobble * np.cos(phi)
        ly = r[:, None] * wobble * np.sin(phi) * aspect[:, None]
        ca, sa = np.cos(angle)[:, None], np.sin(angle)[:, None]
        vx = x[:, None] - cx + lx * ca - ly * sa
        vy = y[:, None] - cy + lx * sa + ly * ca
        points = np.round(np.stack([vx, vy], axis=-1) * (1 << _SHIFT)).astype(np.int32)
        values = np.round(dark * 255).astype(int)
        for polygon, value in zip(points, values, strict=True):
            cv2.fillPoly(stain, [polygon], int(value), lineType=cv2.LINE_AA, shift=_SHIFT)
        return stain.astype(np.float32) / 255.0
