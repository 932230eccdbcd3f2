"""Where corner overlays go (legends, warnings), on the canvas and on figures alike.

An item is placed in one of the four corners, :data:`~viewer.export.scale_bar_render.
MARGIN_PX` (times the overlay scale) from both edges, then moved along the side, away
from its corner, past whatever already occupies that corner (the scale bar bottom-left,
a caption top-left, the overview map on the canvas) so nothing hides anything.  Qt-free.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, cast

from viewer.export.scale_bar_render import MARGIN_PX

Corner = Literal["top-left", "top-right", "bottom-left", "bottom-right"]
CORNERS: tuple[Corner, ...] = ("top-left", "top-right", "bottom-left", "bottom-right")
#: Where legends go unless the user drags them elsewhere.
DEFAULT_LEGEND_CORNER: Corner = "bottom-right"
#: ``(x, y, w, h)`` in the pixels of the area an item is placed in.
Box = tuple[float, float, float, float]


def as_corner(value: object, default: Corner = DEFAULT_LEGEND_CORNER) -> Corner:
    """``value`` when it names a corner, else ``default`` (for settings read from disk)."""
    return cast(Corner, value) if value in CORNERS else default


def place_in_corner(
    corner: Corner,
    area_w: float,
    area_h: float,
    item_w: float,
    item_h: float,
    scale: float = 1.0,
    taken: Sequence[Box] = (),
) -> tuple[int, int]:
    """Top-left ``(x, y)`` of an ``item_w x item_h`` item in ``corner`` of the area,
    moved vertically (down from a top corner, up from a bottom one) past every ``taken``
    box it would overlap."""
    margin = round(MARGIN_PX * scale)
    left = corner.endswith("left")
    top = corner.startswith("top")
    x = margin if left else area_w - item_w - margin
    y = margin if top else area_h - item_h - margin
    for _ in range(len(taken) + 1):
        hit = next((b for b in taken if _overlaps((x, y, item_w, item_h), b)), None)
        if hit is None:
            break
        _, by, _, bh = hit
        y = by + bh + margin if top else by - item_h - margin
    return round(x), round(y)


def nearest_corner(centre_x: float, centre_y: float, area_w: float, area_h: float) -> Corner:
    """The corner of the quarter of the area that holds ``(centre_x, centre_y)``."""
    vertical = "top" if centre_y < area_h / 2 else "bottom"
    horizontal = "left" if centre_x < area_w / 2 else "right"
    return cast(Corner, f"{vertical}-{horizontal}")


def _overlaps(a: Box, b: Box) -> bool:
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]
