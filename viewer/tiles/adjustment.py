"""Brightness, contrast and gamma of the slide's pixels on screen and in figures.  Qt-free.

A :class:`DisplayAdjustment` is one 256-entry lookup table applied alike to the red,
green and blue of every slide pixel: contrast about mid grey, then brightness, then
gamma.  The canvas applies it to copies of decoded tiles as it paints them (once per
tile and adjustment; never by reading the slide again), the figure compositor to the
slide pixels it reads, before layers, annotations and overlays, and the figure's
provenance records it: screen and figure agree.
Heatmaps, outlines and annotations are never adjusted.

:class:`DisplayAdjustmentModel` holds the adjustment in effect and announces changes.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
from psygnal import Signal

#: The ranges the controls offer (and :class:`DisplayAdjustment` accepts).
BRIGHTNESS_RANGE = (-1.0, 1.0)
CONTRAST_RANGE = (0.25, 4.0)
GAMMA_RANGE = (0.2, 5.0)


@dataclass(frozen=True)
class DisplayAdjustment:
    """How slide pixels are shown: ``v`` in ``[0, 1]`` becomes
    ``clip((v - 0.5) * contrast + 0.5 + brightness, 0, 1) ** gamma``.

    ``brightness`` is a fraction of the full range added (-1 to 1, 0 leaves it);
    ``contrast`` a factor about mid grey (0.25 to 4, 1 leaves it); ``gamma`` an
    exponent (0.2 to 5, 1 leaves it; below 1 lightens the mid-tones, above 1 darkens
    them).  Out-of-range or non-finite values raise :class:`ValueError`.
    """

    brightness: float = 0.0
    contrast: float = 1.0
    gamma: float = 1.0

    def __post_init__(self) -> None:
        for name, value, (low, high) in (
            ("brightness", self.brightness, BRIGHTNESS_RANGE),
            ("contrast", self.contrast, CONTRAST_RANGE),
            ("gamma", self.gamma, GAMMA_RANGE),
        ):
            if not (math.isfinite(value) and low <= value <= high):
                raise ValueError(f"{name} must be between {low:g} and {high:g}, not {value}")

    @functools.cached_property
    def is_identity(self) -> bool:
        """Whether it changes no pixel (then nothing is applied at all)."""
        return bool(np.array_equal(self.lut(), _IDENTITY))

    def lut(self) -> np.ndarray:
        """The ``(256,)`` uint8 table: ``lut[v]`` is how value ``v`` is shown."""
        return _lut(self.brightness, self.contrast, self.gamma)

    def apply(self, pixels: np.ndarray) -> np.ndarray:
        """``(h, w, 3)`` RGB (or ``(h, w, 4)`` RGBA / BGRX, the fourth channel kept)
        uint8 pixels adjusted, as a new array; the input itself when identity."""
        if self.is_identity:
            return pixels
        pixels = np.ascontiguousarray(pixels)
        out = cv2.LUT(pixels, self.lut())
        if pixels.ndim == 3 and pixels.shape[2] == 4:
            # one table for all four and the fourth put back: twice as fast as cv2.LUT
            # with a four-channel table
            out[..., 3] = pixels[..., 3]
        return out

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (settings, figure provenance)."""
        return {
            "brightness": self.brightness,
            "contrast": self.contrast,
            "gamma": self.gamma,
            "formula": "clip((v - 0.5) * contrast + 0.5 + brightness, 0, 1) ** gamma, "
            "v = R, G, B / 255 of the slide pixels (not of layers or annotations)",
        }

    @classmethod
    def from_dict(cls, doc: object) -> DisplayAdjustment:
        """The adjustment of :meth:`to_dict`'s form; :class:`ValueError` if malformed."""
        if not isinstance(doc, dict):
            raise ValueError("a display adjustment is an object with brightness, contrast, gamma")
        try:
            return cls(
                float(doc.get("brightness", 0.0)),
                float(doc.get("contrast", 1.0)),
                float(doc.get("gamma", 1.0)),
            )
        except (TypeError, ValueError) as exc:
            raise ValueError(f"bad display adjustment: {exc}") from None

    def describe(self) -> str:
        """``"brightness +10 %, contrast x1.25, gamma 0.8"`` (``"none"`` when identity)."""
        if self.is_identity:
            return "none"
        parts = []
        if self.brightness:
            parts.append(f"brightness {100 * self.brightness:+.0f} %")
        if self.contrast != 1.0:
            parts.append(f"contrast x{self.contrast:.2f}")
        if self.gamma != 1.0:
            parts.append(f"gamma {self.gamma:.2f}")
        return ", ".join(parts)


#: No adjustment.
NEUTRAL = DisplayAdjustment()
_IDENTITY = np.arange(256, dtype=np.uint8)


@functools.lru_cache(maxsize=64)
def _lut(brightness: float, contrast: float, gamma: float) -> np.ndarray:
    v = np.arange(256, dtype=np.float64) / 255.0
    out = np.clip((v - 0.5) * contrast + 0.5 + brightness, 0.0, 1.0) ** gamma
    table = np.round(out * 255.0).astype(np.uint8)
    table.flags.writeable = False  # shared by every caller
    return table


class DisplayAdjustmentModel:
    """The adjustment in effect; ``changed(DisplayAdjustment)`` fires when it changes."""

    changed = Signal(object)

    def __init__(self) -> None:
        self._value = NEUTRAL

    @property
    def value(self) -> DisplayAdjustment:
        return self._value

    def set(self, value: DisplayAdjustment) -> None:
        if value != self._value:
            self._value = value
            self.changed.emit(value)

    def update(self, **changes: float) -> None:
        """Change some of brightness, contrast and gamma (values clipped to their range)."""
        ranges = {"brightness": BRIGHTNESS_RANGE, "contrast": CONTRAST_RANGE, "gamma": GAMMA_RANGE}
        current = self._value.to_dict()
        for name, value in changes.items():
            low, high = ranges[name]
            current[name] = min(high, max(low, float(value)))
        self.set(DisplayAdjustment(current["brightness"], current["contrast"], current["gamma"]))

    def reset(self) -> None:
        self.set(NEUTRAL)
