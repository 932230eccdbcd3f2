"""Deterministic, seamless noise for synthetic slides: a value depends only on where it is.

Every random number here is a hash of integer coordinates and a seed, never the state
of a generator, so a tile renders the same whichever order tiles are made in, and
neighbouring tiles meet without seams.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

_U64 = np.uint64
_GOLDEN = _U64(0x9E3779B97F4A7C15)
_MIX1 = _U64(0xBF58476D1CE4E5B9)
_MIX2 = _U64(0x94D049BB133111EB)
_KEY_MULTIPLIERS = tuple(
    _U64(m)
    for m in (
        0xD6E8FEB86659FD93,
        0xA0761D6478BD642F,
        0xE7037ED1A0B428DB,
        0x8EBC6AF09C88C6E3,
        0x589965CC75374CC3,
        0x1D8E4E27C47D124F,
    )
)


def _splitmix(h: np.ndarray) -> np.ndarray:
    h = h + _GOLDEN
    h = (h ^ (h >> _U64(30))) * _MIX1
    h = (h ^ (h >> _U64(27))) * _MIX2
    return h ^ (h >> _U64(31))


def hash_uniform(seed: int, *keys: np.ndarray | int) -> np.ndarray:
    """Uniform floats in ``[0, 1)``, one per element of the broadcast integer ``keys``.

    The same seed and keys always give the same numbers, on every platform.
    """
    if len(keys) > len(_KEY_MULTIPLIERS):
        raise ValueError(f"at most {len(_KEY_MULTIPLIERS)} keys")
    arrays = np.broadcast_arrays(*(np.asarray(k, dtype=np.int64) for k in keys))
    h = np.full(arrays[0].shape, seed & 0xFFFFFFFFFFFFFFFF, dtype=np.uint64)
    h = _splitmix(h)
    for key, mult in zip(arrays, _KEY_MULTIPLIERS, strict=False):
        h = _splitmix(h ^ (key.astype(np.uint64) * mult))
    return (h >> _U64(11)).astype(np.float64) * (1.0 / (1 << 53))


def value_noise(
    seed: int,
    l0_x: int,
    l0_y: int,
    width: int,
    height: int,
    cell_px: float,
    *,
    stretch: float = 1.0,
    angle: float = 0.0,
) -> np.ndarray:
    """Smooth noise in ``[0, 1]`` over the level-0 window ``(l0_x, l0_y, width, height)``.

    Random values sit on a lattice ``cell_px`` apart in level-0 pixels (``cell_px *
    stretch`` along the direction ``angle``, in radians) and are interpolated
    bicubically, so the field is continuous across any window edges.  Stretched noise
    has elongated features, like fibres.  Returns ``(height, width)`` float32.
    """
    cos_a, sin_a = math.cos(angle), math.sin(angle)
    # level-0 point -> lattice coordinates
    to_lattice = np.array(
        [
            [cos_a / (cell_px * stretch), sin_a / (cell_px * stretch)],
            [-sin_a / cell_px, cos_a / cell_px],
        ]
    )
    corners = np.array(
        [[l0_x, l0_y], [l0_x + width, l0_y], [l0_x, l0_y + height], [l0_x + width, l0_y + height]],
        dtype=np.float64,
    )
    lattice_corners = corners @ to_lattice.T
    i0, j0 = np.floor(lattice_corners.min(axis=0)).astype(int) - 2
    i1, j1 = np.floor(lattice_corners.max(axis=0)).astype(int) + 3
    lat_j, lat_i = np.mgrid[j0:j1, i0:i1]
    lattice = hash_uniform(seed, lat_i, lat_j).astype(np.float32)
    # destination pixel (u, v) is level-0 (l0_x + u, l0_y + v)
    offset = to_lattice @ np.array([l0_x, l0_y], dtype=np.float64) - np.array([i0, j0])
    matrix = np.hstack([to_lattice, offset[:, None]])
    out = cv2.warpAffine(
        lattice,
        matrix,
        (width, height),
        flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REPLICATE,
    )
    return np.clip(out, 0.0, 1.0)


def value_noise_at(seed: int, l0_x: np.ndarray, l0_y: np.ndarray, cell_px: float) -> np.ndarray:
    """The same kind of lattice noise at scattered level-0 points (bilinear, smoothstep).

    Continuous in space; not identical to :func:`value_noise` (which is bicubic).
    """
    fx, fy = (
        np.asarray(l0_x, dtype=np.float64) / cell_px,
        np.asarray(l0_y, dtype=np.float64) / cell_px,
    )
    ix, iy = np.floor(fx).astype(np.int64), np.floor(fy).astype(np.int64)
    tx, ty = fx - ix, fy - iy
    tx, ty = tx * tx * (3 - 2 * tx), ty * ty * (3 - 2 * ty)
    v00, v10 = hash_uniform(seed, ix, iy), hash_uniform(seed, ix + 1, iy)
    v01, v11 = hash_uniform(seed, ix, iy + 1), hash_uniform(seed, ix + 1, iy + 1)
    top = v00 + (v10 - v00) * tx
    bottom = v01 + (v11 - v01) * tx
    return top + (bottom - top) * ty


def smooth_random_field(
    rng: np.random.Generator, shape: tuple[int, int], sigma: float
) -> np.ndarray:
    """A low-resolution Gaussian-blurred random field scaled to ``[0, 1]`` (for layouts)."""
    noise = rng.random(shape, dtype=np.float32)
    field: np.ndarray = cv2.GaussianBlur(
        noise, (0, 0), sigmaX=max(sigma, 0.5), borderType=cv2.BORDER_REFLECT
    )
    lo, hi = float(field.min()), float(field.max())
    return (field - lo) / (hi - lo) if hi > lo else np.zeros_like(field)
