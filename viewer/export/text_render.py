"""Text and boxes rendered to RGBA arrays with Pillow (no Qt), for overlays on figures.

The canvas shows the same images (scale bar, legends), so the screen and an exported
figure use one font and one look.
"""

from __future__ import annotations

import importlib.util
from functools import cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

#: Dark ink for text and bars (the canvas's scale bar colour).
INK = (20, 20, 20, 255)
#: The translucent white of overlay boxes.
BOX = (255, 255, 255, 200)

Font = ImageFont.FreeTypeFont | ImageFont.ImageFont

_DEJAVU = {False: "DejaVuSans.ttf", True: "DejaVuSans-Bold.ttf"}


@cache
def _dejavu_path(bold: bool) -> Path | None:
    """DejaVu Sans as bundled with matplotlib (found without importing it), or ``None``.

    Pillow's own bundled font has no ``µ``; DejaVu has every glyph a label needs.
    """
    spec = importlib.util.find_spec("matplotlib")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / "mpl-data" / "fonts" / "ttf" / _DEJAVU[bold]
        if path.is_file():
            return path
    return None


@cache
def font(size_px: int, bold: bool = False) -> Font:
    """DejaVu Sans (bold or regular) at ``size_px`` pixels; Pillow's default font where
    DejaVu is missing (then :func:`printable` spells ``µ`` as ``u``)."""
    size = max(6, int(size_px))
    path = _dejavu_path(bold)
    if path is not None:
        return ImageFont.truetype(str(path), size)
    return ImageFont.load_default(size=size)


def printable(text: str) -> str:
    """``text`` with ``µ`` spelled ``u`` when the font in use has no such glyph."""
    return text if _dejavu_path(False) is not None else text.replace("µ", "u")


def text_box(text: str, size_px: int, bold: bool = False) -> tuple[int, int, int, int]:
    """``(left, top, right, bottom)`` of ``text`` drawn at ``(0, 0)`` with anchor ``"la"``."""
    draw = ImageDraw.Draw(Image.new("RGBA", (1, 1)))
    left, top, right, bottom = draw.textbbox(
        (0, 0), printable(text), font=font(size_px, bold), anchor="la"
    )
    return int(left), int(top), int(right), int(bottom)


def draw_text(
    draw: ImageDraw.ImageDraw,
    xy: tuple[float, float],
    text: str,
    size_px: int,
    *,
    bold: bool = False,
    fill: tuple[int, int, int, int] = INK,
    anchor: str = "la",
) -> None:
    """Draw ``text`` at ``xy`` (Pillow anchor semantics) in the regular or bold face."""
    draw.text(xy, printable(text), fill=fill, font=font(size_px, bold), anchor=anchor)


def wrap_text(text: str, size_px: int, max_width: int) -> list[str]:
    """``text`` broken into lines at spaces so each fits in ``max_width`` pixels.

    Explicit newlines are kept; a single word wider than ``max_width`` stays on its own
    line (it is clipped where it is drawn, never dropped).
    """
    lines: list[str] = []
    for paragraph in text.splitlines() or [""]:
        current = ""
        for word in paragraph.split(" "):
            candidate = word if not current else f"{current} {word}"
            left, _, right, _ = text_box(candidate, size_px)
            if right - left <= max_width or not current:
                current = candidate
            else:
                lines.append(current)
                current = word
        lines.append(current)
    return lines


def render_label(text: str, scale: float = 1.0) -> np.ndarray:
    """A small boxed text label (a ruler's length, a shape's name) as the canvas draws
    it: 12 px text centred in a translucent white box; ``(h, w, 4)`` straight RGBA."""
    size = max(7, round(12 * scale))
    pad_x, pad_y = max(1, round(4 * scale)), max(1, round(2 * scale))
    left, top, right, bottom = text_box(text, size)
    image = Image.new("RGBA", (right - left + 2 * pad_x, bottom - top + 2 * pad_y), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    draw.rounded_rectangle(
        (0, 0, image.width - 1, image.height - 1), radius=max(1, round(3 * scale)), fill=BOX
    )
    draw_text(draw, (pad_x - left, pad_y - top), text, size)
    return np.asarray(image, dtype=np.uint8).copy()


def render_caption(text: str, max_width: int, scale: float = 1.0) -> np.ndarray:
    """A boxed caption, wrapped to at most ``max_width`` pixels wide; straight RGBA.

    An empty ``text`` gives a ``(0, 0, 4)`` array.
    """
    if not text.strip():
        return np.zeros((0, 0, 4), np.uint8)
    size = max(8, round(14 * scale))
    pad = max(2, round(8 * scale))
    gap = max(1, round(3 * scale))
    lines = wrap_text(text.strip(), size, max(1, max_width - 2 * pad))
    boxes = [text_box(line, size) for line in lines]
    line_h = max(max(b[3] for b in boxes) - min(b[1] for b in boxes), size)
    width = min(max_width, max(b[2] for b in boxes) + 2 * pad)
    height = len(lines) * line_h + (len(lines) - 1) * gap + 2 * pad
    image = Image.new("RGBA", (max(1, width), height), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    draw.rounded_rectangle(
        (0, 0, image.width - 1, image.height - 1), radius=max(2, round(4 * scale)), fill=BOX
    )
    top = min(b[1] for b in boxes)
    for index, line in enumerate(lines):
        draw_text(draw, (pad, pad - top + index * (line_h + gap)), line, size)
    return np.asarray(image, dtype=np.uint8).copy()
