"""Legends (colour bars and class keys) rendered to RGBA arrays, with no Qt.

The canvas shows the same image the figure exporter burns into a figure, so what a
pathologist sees on screen is what goes into the report.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw

from viewer.export.text_render import Font, font, printable
from viewer.layers.colormaps import lut
from viewer.layers.legend import ClassLegend, ColourBarLegend, Legend

_BAR_W = 160
_BAR_H = 10
_SWATCH = 12
_PAD = 8
_GAP = 6
_INK = (25, 25, 25, 255)
_BOX = (255, 255, 255, 225)
#: A legend's warning lines (``Legend.warning``): dark red on a pale red band.
_WARN_INK = (165, 0, 0, 255)
_WARN_BAND = (255, 226, 222, 255)


def _font(size: int) -> Font:
    return font(size)


def _format_value(value: float) -> str:
    return f"{value:.3g}"


def _text_size(
    draw: ImageDraw.ImageDraw, text: str, size: int, bold: bool = False
) -> tuple[int, int]:
    left, top, right, bottom = draw.textbbox((0, 0), printable(text), font=font(size, bold))
    return int(right - left), int(bottom - top)


def _warning_lines(legend: Legend) -> list[str]:
    """A legend's warning as the lines drawn, the first marked with a warning sign."""
    lines = [line for line in legend.warning.splitlines() if line.strip()]
    if lines:
        # DejaVu has the sign; Pillow's fallback font (which printable() detects by its
        # missing µ) has not
        mark = "\u26a0 " if printable("µ") == "µ" else "! "
        lines[0] = mark + lines[0]
    return lines


def render_legends(legends: Sequence[Legend], scale: float = 1.0) -> np.ndarray:
    """One boxed image holding every legend, stacked; ``(h, w, 4)`` uint8 straight RGBA.

    A legend's ``warning`` lines go under its title, bold, dark red on a pale red band.
    ``scale`` enlarges everything (exports at print resolution).  An empty sequence
    gives a ``(0, 0, 4)`` array.
    """
    if not legends:
        return np.zeros((0, 0, 4), np.uint8)
    title_px = max(8, round(12 * scale))
    small_px = max(7, round(10 * scale))
    pad, gap = round(_PAD * scale), round(_GAP * scale)
    bar_w, bar_h, swatch = round(_BAR_W * scale), round(_BAR_H * scale), round(_SWATCH * scale)
    measure = ImageDraw.Draw(Image.new("RGBA", (1, 1)))

    # lay out first, so the box fits its contents exactly
    blocks: list[tuple[Legend, int, int]] = []
    width = 0
    for legend in legends:
        title_w, title_h = _text_size(measure, legend.title, title_px)
        warn = [_text_size(measure, line, small_px, bold=True) for line in _warning_lines(legend)]
        title_w = max([title_w] + [w for w, _ in warn])
        title_h += sum(gap + h for _, h in warn)
        if isinstance(legend, ColourBarLegend):
            label_w, label_h = _text_size(measure, legend.label, small_px)
            block_w = max(title_w, bar_w, label_w)
            block_h = title_h + gap + bar_h + gap + label_h + gap + label_h
        else:
            rows = [_text_size(measure, name, small_px) for name, _ in legend.entries]
            block_w = max([title_w] + [swatch + gap + w for w, _ in rows])
            block_h = title_h + sum(gap + max(swatch, h) for _, h in rows)
        blocks.append((legend, block_w, block_h))
        width = max(width, block_w)
    height = sum(h for _, _, h in blocks) + gap * 2 * (len(blocks) - 1)
    image = Image.new("RGBA", (width + 2 * pad, height + 2 * pad), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    draw.rounded_rectangle(
        (0, 0, image.width - 1, image.height - 1), radius=max(2, round(4 * scale)), fill=_BOX
    )

    y = pad
    for index, (legend, _block_w, block_h) in enumerate(blocks):
        top = y
        draw.text((pad, y), printable(legend.title), fill=_INK, font=_font(title_px), anchor="lt")
        y += _text_size(measure, legend.title, title_px)[1] + gap
        for line in _warning_lines(legend):
            _, line_h = _text_size(measure, line, small_px, bold=True)
            draw.rectangle(
                (
                    pad - gap // 2,
                    y - gap // 2,
                    image.width - 1 - pad + gap // 2,
                    y + line_h + gap // 2,
                ),
                fill=_WARN_BAND,
            )
            draw.text(
                (pad, y), printable(line), fill=_WARN_INK, font=font(small_px, True), anchor="lt"
            )
            y += line_h + gap
        if isinstance(legend, ColourBarLegend):
            y = _draw_colour_bar(image, draw, legend, pad, y, bar_w, bar_h, gap, small_px)
        else:
            y = _draw_classes(draw, legend, pad, y, swatch, gap, small_px, measure)
        y = top + block_h + (2 * gap if index < len(blocks) - 1 else 0)
    return np.asarray(image, dtype=np.uint8).copy()


def _draw_colour_bar(
    image: Image.Image,
    draw: ImageDraw.ImageDraw,
    legend: ColourBarLegend,
    x: int,
    y: int,
    bar_w: int,
    bar_h: int,
    gap: int,
    text_px: int,
) -> int:
    ramp = lut(legend.colormap)[np.linspace(0, 255, bar_w).round().astype(int)]
    bar = np.repeat(ramp[None, :, :], bar_h, axis=0)
    alpha = np.full((bar_h, bar_w, 1), 255, np.uint8)
    if legend.threshold is not None:
        span = legend.vmax - legend.vmin
        cut = round((legend.threshold - legend.vmin) / span * bar_w) if span > 0 else 0
        alpha[:, : max(0, min(bar_w, cut))] = 70  # hidden values are shown faded
    image.alpha_composite(Image.fromarray(np.concatenate([bar, alpha], axis=2)), (x, y))
    draw.rectangle((x, y, x + bar_w - 1, y + bar_h - 1), outline=_INK)
    y += bar_h + gap // 2
    lo, hi = _format_value(legend.vmin), _format_value(legend.vmax)
    draw.text((x, y), printable(lo), fill=_INK, font=_font(text_px), anchor="lt")
    draw.text((x + bar_w, y), printable(hi), fill=_INK, font=_font(text_px), anchor="rt")
    mid = _format_value((legend.vmin + legend.vmax) / 2)
    draw.text((x + bar_w // 2, y), printable(mid), fill=_INK, font=_font(text_px), anchor="mt")
    y += _text_size(draw, lo, text_px)[1] + gap
    label = legend.label
    if legend.threshold is not None:
        label += f" (hidden below {_format_value(legend.threshold)})"
    draw.text((x, y), printable(label), fill=_INK, font=_font(text_px), anchor="lt")
    return y + _text_size(draw, label, text_px)[1]


def _draw_classes(
    draw: ImageDraw.ImageDraw,
    legend: ClassLegend,
    x: int,
    y: int,
    swatch: int,
    gap: int,
    text_px: int,
    measure: ImageDraw.ImageDraw,
) -> int:
    for name, colour in legend.entries:
        _, text_h = _text_size(measure, name, text_px)
        row_h = max(swatch, text_h)
        top = y + (row_h - swatch) // 2
        draw.rectangle(
            (x, top, x + swatch - 1, top + swatch - 1), fill=(*colour, 255), outline=_INK
        )
        draw.text(
            (x + swatch + gap, y + row_h // 2),
            printable(name),
            fill=_INK,
            font=_font(text_px),
            anchor="lm",
        )
        y += row_h + gap
    return y
