"""The scale bar as an RGBA image, with no Qt: the canvas and exported figures draw this one.

A bar has a round length (1, 2 or 5 times a power of ten) in µm, or in level-0 px when
the slide has no pixel size, and is at most :data:`MAX_BAR_PX` pixels long (times the
overlay ``scale``).  It sits with its label in a translucent white rounded box, placed
in the bottom-left corner :data:`MARGIN_PX` from both edges.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from inference.core.geometry import nice_length
from viewer.export.text_render import BOX, INK, draw_text, text_box

#: The longest the bar may be, in output pixels at overlay scale 1.
MAX_BAR_PX = 160
#: Distance of corner overlays (scale bar, legend, caption) from the image edges.
MARGIN_PX = 14
#: Bars shorter than this many pixels are not drawn (nothing sensible fits).
MIN_BAR_PX = 4
_BOX_H = 30
_PAD_X = 8
_BAR_TOP = 20
_BAR_H = 4
_TEXT_TOP = 2
_TEXT_ROW = 16
_FONT_PX = 13


def scale_bar_label(length: float, has_mpp: bool) -> str:
    """``"250 µm"``, ``"1 mm"``, or ``"500 px"`` when the slide has no pixel size."""
    if not has_mpp:
        return f"{length:g} px"
    if length >= 1000:
        return f"{length / 1000:g} mm"
    return f"{length:g} µm"


@dataclass(frozen=True)
class ScaleBarSpec:
    """What a bar says: ``length`` in µm (or level-0 px without mpp), its ``label``, and
    ``bar_px``, the exact length in output pixels (drawn rounded to whole pixels)."""

    length: float
    unit: str
    label: str
    bar_px: float


def scale_bar_spec(
    l0_per_px: float, mpp: float | None, max_bar_px: float = MAX_BAR_PX
) -> ScaleBarSpec | None:
    """The round-number bar for an image of ``l0_per_px`` level-0 px per output pixel.

    ``None`` when the bar would be shorter than :data:`MIN_BAR_PX`.
    """
    if not l0_per_px > 0:
        raise ValueError(f"l0_per_px must be positive, not {l0_per_px}")
    unit_per_px = l0_per_px * (mpp if mpp else 1.0)
    length = nice_length(max_bar_px * unit_per_px)
    bar_px = length / unit_per_px
    if bar_px < MIN_BAR_PX:
        return None
    has_mpp = bool(mpp)
    return ScaleBarSpec(length, "µm" if has_mpp else "px", scale_bar_label(length, has_mpp), bar_px)


@dataclass(frozen=True)
class ScaleBarImage:
    """A rendered bar: ``rgba`` ``(h, w, 4)`` uint8 straight alpha, the bar's own pixels at
    ``bar_rect`` ``(x, y, w, h)`` inside it (``w == round(spec.bar_px)``)."""

    rgba: np.ndarray
    spec: ScaleBarSpec
    bar_rect: tuple[int, int, int, int]

    @property
    def width(self) -> int:
        return int(self.rgba.shape[1])

    @property
    def height(self) -> int:
        return int(self.rgba.shape[0])


def render_scale_bar(
    l0_per_px: float, mpp: float | None, scale: float = 1.0
) -> ScaleBarImage | None:
    """The boxed bar and label for ``l0_per_px`` level-0 px per output pixel.

    ``scale`` enlarges the box, bar, font and the maximum bar length together (figures
    at print resolution, HiDPI screens).  ``None`` when no bar fits (see
    :func:`scale_bar_spec`).  Pure function of its arguments, cheap (well under a ms).
    """
    spec = scale_bar_spec(l0_per_px, mpp, MAX_BAR_PX * scale)
    if spec is None:
        return None
    pad = round(_PAD_X * scale)
    font_px = max(7, round(_FONT_PX * scale))
    left, top, right, bottom = text_box(spec.label, font_px, bold=True)
    bar_w = max(1, round(spec.bar_px))
    box_w = max(bar_w, right - left) + 2 * pad
    box_h = round(_BOX_H * scale)
    image = Image.new("RGBA", (box_w, box_h), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    draw.rounded_rectangle((0, 0, box_w - 1, box_h - 1), radius=max(1, round(4 * scale)), fill=BOX)
    text_y = round(_TEXT_TOP * scale) + (round(_TEXT_ROW * scale) - (bottom - top)) / 2 - top
    draw_text(draw, (pad - left, text_y), spec.label, font_px, bold=True)
    bar_y, bar_h = round(_BAR_TOP * scale), max(1, round(_BAR_H * scale))
    rgba = np.asarray(image, dtype=np.uint8).copy()
    rgba[bar_y : bar_y + bar_h, pad : pad + bar_w] = INK  # exact pixels, no anti-aliasing
    return ScaleBarImage(rgba, spec, (pad, bar_y, bar_w, bar_h))


def bottom_left(
    area_w: int, area_h: int, item_w: int, item_h: int, scale: float = 1.0
) -> tuple[int, int]:
    """Top-left ``(x, y)`` of an item of ``item_w x item_h`` in the bottom-left corner."""
    margin = round(MARGIN_PX * scale)
    return margin, area_h - item_h - margin


def bottom_right(
    area_w: int, area_h: int, item_w: int, item_h: int, scale: float = 1.0
) -> tuple[int, int]:
    """Top-left ``(x, y)`` of an item in the bottom-right corner (where legends go)."""
    margin = round(MARGIN_PX * scale)
    return area_w - item_w - margin, area_h - item_h - margin


def top_left(
    area_w: int, area_h: int, item_w: int, item_h: int, scale: float = 1.0
) -> tuple[int, int]:
    """Top-left ``(x, y)`` of an item in the top-left corner (where captions go)."""
    margin = round(MARGIN_PX * scale)
    return margin, margin
