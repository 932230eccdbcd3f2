"""Pixel arithmetic shared by the compositor's tiles: resampling and "source over" blending.

Tiles are composed in a float32 ``(h, w, 3)`` buffer of RGB values 0..255 (no alpha: a
figure is opaque) and rounded to uint8 once at the end, so stacking layers does not
accumulate rounding errors.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class Sprite:
    """A small straight-alpha RGBA image placed with its top-left pixel at output pixel
    ``(x, y)`` of the whole figure (scale bar, legend, caption, a ruler's label)."""

    rgba: np.ndarray
    x: int
    y: int

    @property
    def width(self) -> int:
        return int(self.rgba.shape[1])

    @property
    def height(self) -> int:
        return int(self.rgba.shape[0])

    def overlaps(self, out_x: int, out_y: int, w: int, h: int) -> bool:
        """Whether the sprite touches the output rectangle ``[out_x, out_x + w) x ...``."""
        return (
            self.rgba.size > 0
            and self.x < out_x + w
            and out_x < self.x + self.width
            and self.y < out_y + h
            and out_y < self.y + self.height
        )


def blend_sprite(buf: np.ndarray, out_x: int, out_y: int, sprite: Sprite) -> None:
    """Composite ``sprite`` over the tile ``buf`` whose pixel ``(0, 0)`` is output pixel
    ``(out_x, out_y)``; only the overlapping part is touched."""
    th, tw = buf.shape[:2]
    x0, y0 = max(sprite.x, out_x), max(sprite.y, out_y)
    x1 = min(sprite.x + sprite.width, out_x + tw)
    y1 = min(sprite.y + sprite.height, out_y + th)
    if x1 <= x0 or y1 <= y0:
        return
    part = sprite.rgba[y0 - sprite.y : y1 - sprite.y, x0 - sprite.x : x1 - sprite.x]
    alpha = part[..., 3:4].astype(np.float32) * (1.0 / 255.0)
    target = buf[y0 - out_y : y1 - out_y, x0 - out_x : x1 - out_x]
    target *= 1.0 - alpha
    target += part[..., :3].astype(np.float32) * alpha


def blend_premultiplied(
    buf: np.ndarray, rgba: np.ndarray, opacity: float, rows: slice, cols: slice
) -> None:
    """``buf[rows, cols] = rgba over buf`` for premultiplied float ``rgba`` at ``opacity``
    (what ``QPainter.setOpacity`` then ``drawImage`` of a premultiplied image does)."""
    target = buf[rows, cols]
    alpha = rgba[..., 3:4] * (opacity / 255.0)
    target *= 1.0 - alpha
    target += rgba[..., :3] * opacity


def blend_coverage(
    buf: np.ndarray, coverage: np.ndarray, colour: tuple[int, int, int], opacity: float = 1.0
) -> None:
    """Paint ``colour`` over ``buf`` where the uint8 ``coverage`` mask is set (255 full,
    in between anti-aliased edges), at ``opacity``.  Only the mask's bounding box is
    touched."""
    x, y, w, h = cv2.boundingRect(coverage)
    if w == 0 or h == 0:
        return
    alpha = coverage[y : y + h, x : x + w, None].astype(np.float32) * (opacity / 255.0)
    target = buf[y : y + h, x : x + w]
    target *= 1.0 - alpha
    target += np.asarray(colour, np.float32) * alpha


def sample_bilinear(image: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Bilinear samples of ``image`` ``(h, w, c)`` at columns ``u`` and rows ``v``.

    ``u`` (length ``tw``) and ``v`` (length ``th``) are positions in pixel-centre
    coordinates (pixel ``k`` is centred on ``k``); positions beyond the edge take the
    edge pixel.  Returns float32 ``(th, tw, c)``.  The grid is separable (an axis-aligned
    scale and shift), so only the 4 neighbours of each sample are gathered: cost and
    memory are those of the output, whatever the size of ``image``.
    """
    h, w = image.shape[:2]
    u = np.clip(u, 0.0, w - 1.0)
    v = np.clip(v, 0.0, h - 1.0)
    c0 = np.floor(u).astype(np.intp)
    r0 = np.floor(v).astype(np.intp)
    c1 = np.minimum(c0 + 1, w - 1)
    r1 = np.minimum(r0 + 1, h - 1)
    fu = (u - c0).astype(np.float32)[None, :, None]
    fv = (v - r0).astype(np.float32)[:, None, None]
    top = image[np.ix_(r0, c0)].astype(np.float32)
    top += (image[np.ix_(r0, c1)].astype(np.float32) - top) * fu
    bottom = image[np.ix_(r1, c0)].astype(np.float32)
    bottom += (image[np.ix_(r1, c1)].astype(np.float32) - bottom) * fu
    top += (bottom - top) * fv
    return top


def sample_nearest(image: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Nearest samples of ``image`` at edge coordinates ``u``, ``v`` (pixel ``k`` covers
    ``[k, k + 1)``), clamped to the image; returns ``(len(v), len(u), c)`` of its dtype."""
    h, w = image.shape[:2]
    cols = np.clip(np.floor(u), 0, w - 1).astype(np.intp)
    rows = np.clip(np.floor(v), 0, h - 1).astype(np.intp)
    return image[np.ix_(rows, cols)]


def to_uint8(buf: np.ndarray) -> np.ndarray:
    """A float tile rounded and clipped to uint8."""
    return np.clip(buf + 0.5, 0.0, 255.0).astype(np.uint8)
