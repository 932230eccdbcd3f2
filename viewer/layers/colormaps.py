"""Colour lookup tables for heatmaps (256 x 3 uint8) and the class palette.

Class colours come from :mod:`inference.core.palette`, the one palette the viewer and
every export share; :data:`CLASS_PALETTE`, :func:`class_colour` and
:func:`result_class_colours` are re-exported here.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

import numpy as np

from inference.core.palette import CLASS_PALETTE, class_colour, result_class_colours

__all__ = [
    "CLASS_PALETTE",
    "CONTINUOUS",
    "apply_class_palette",
    "apply_colormap",
    "class_colour",
    "lut",
    "result_class_colours",
]

#: Colormaps offered for probability heatmaps.
CONTINUOUS = ("viridis", "magma", "inferno", "jet", "turbo", "gray")


@cache
def lut(name: str) -> np.ndarray:
    """A read-only ``(256, 3)`` uint8 table for ``name`` (one of :data:`CONTINUOUS`)."""
    if name not in CONTINUOUS:
        raise ValueError(f"unknown colormap {name!r}; choose one of {', '.join(CONTINUOUS)}")
    if name == "gray":
        ramp = np.arange(256, dtype=np.uint8)
        table = np.stack([ramp, ramp, ramp], axis=1)
    else:
        from matplotlib import colormaps  # lazily: only when a heatmap is first coloured

        table = (colormaps[name](np.linspace(0, 1, 256))[:, :3] * 255 + 0.5).astype(np.uint8)
    table.setflags(write=False)
    return table


def apply_colormap(
    values: np.ndarray, name: str, vmin: float, vmax: float, threshold: float | None = None
) -> np.ndarray:
    """``(h, w)`` floats to ``(h, w, 4)`` RGBA uint8.

    Values are scaled linearly from ``[vmin, vmax]`` to the table; NaN, and values below
    ``threshold`` when given, are fully transparent.
    """
    span = vmax - vmin if vmax > vmin else 1.0
    finite = np.isfinite(values)
    scaled = np.clip((np.nan_to_num(values, nan=vmin) - vmin) / span, 0.0, 1.0)
    index = (scaled * 255 + 0.5).astype(np.uint8)
    rgba = np.empty((*values.shape, 4), np.uint8)
    rgba[..., :3] = lut(name)[index]
    shown = (
        finite if threshold is None else finite & (np.nan_to_num(values, nan=-np.inf) >= threshold)
    )
    rgba[..., 3] = np.where(shown, 255, 0).astype(np.uint8)
    return rgba


def apply_class_palette(
    classes: np.ndarray, class_names: Sequence[str], hidden: frozenset[int] = frozenset()
) -> np.ndarray:
    """``(h, w)`` class indices (-1 for none) to RGBA in the colours of
    :func:`result_class_colours`; classes in ``hidden`` are transparent."""
    n_classes = len(class_names)
    table = np.zeros((n_classes + 1, 4), np.uint8)
    for k, colour in enumerate(result_class_colours(class_names)):
        table[k, :3] = colour
        table[k, 3] = 0 if k in hidden else 255
    return table[np.where(classes < 0, n_classes, classes)]
