"""Heatmap layers: a model's per-class probabilities as one small colour image."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Protocol

import numpy as np

from viewer.layers.base import Layer
from viewer.layers.colormaps import CONTINUOUS, apply_class_palette, apply_colormap

Interpolation = Literal["nearest", "smooth"]
#: Events that change how a layer is composited, not its colour image.
_NON_PIXEL_EVENTS = frozenset({"visible", "opacity", "name"})
#: ``class_index`` value that shows the most probable class in class colours.
ARGMAX = -1


class GridResult(Protocol):
    """What a heatmap needs of an inference result (``inference.results`` provides it)."""

    task: ClassVar[str]
    class_names: tuple[str, ...]

    def probabilities(self) -> np.ndarray: ...

    def heatmap(self, class_index: int = -1) -> tuple[np.ndarray, tuple[float, float], float]: ...


@dataclass(frozen=True)
class ColourImage:
    """An RGBA image whose pixel ``(0, 0)`` starts at level-0 ``(l0_x, l0_y)``."""

    rgba: np.ndarray  # (h, w, 4) uint8, straight alpha
    l0_x: float
    l0_y: float
    l0_per_px: float
    version: int

    @property
    def l0_width(self) -> float:
        return self.rgba.shape[1] * self.l0_per_px

    @property
    def l0_height(self) -> float:
        return self.rgba.shape[0] * self.l0_per_px


class HeatmapLayer(Layer):
    """One model result shown as a heatmap: a class's probability, or the argmax map.

    Display settings: ``class_index`` (or :data:`ARGMAX`), ``colormap``, ``vmin`` /
    ``vmax``, ``threshold`` (hide values below; ``None`` shows all), ``interpolation``
    (``"nearest"`` shows true patches, ``"smooth"`` blends them).  The result may grow
    while a job runs: call :meth:`notify_data_changed` after folding a batch.
    """

    kind = "heatmap"

    def __init__(
        self,
        name: str,
        result: GridResult,
        *,
        class_index: int | None = None,
        colormap: str = "viridis",
        opacity: float = 0.5,
        provenance: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(name, opacity=opacity)
        self.result = result
        n = len(result.class_names)
        self._class_index = (n - 1 if n > 1 else 0) if class_index is None else class_index
        self._colormap = colormap
        self._vmin = 0.0
        self._vmax = 1.0
        self._threshold: float | None = None
        self._interpolation: Interpolation = "nearest"
        self.provenance: dict[str, Any] = dict(provenance or {})
        self.progress: tuple[int, int] | None = None  # (done, total) while a job runs
        self._version = 0
        self._cached: ColourImage | None = None
        self._probabilities: np.ndarray | None = None

    # -- settings ---------------------------------------------------------------------
    @property
    def class_names(self) -> tuple[str, ...]:
        return self.result.class_names

    @property
    def task(self) -> str:
        return self.result.task

    @property
    def class_index(self) -> int:
        return self._class_index

    @class_index.setter
    def class_index(self, value: int) -> None:
        if value != ARGMAX and not 0 <= value < len(self.class_names):
            raise ValueError(f"class index {value} outside 0..{len(self.class_names) - 1}")
        self._set("_class_index", value, "class_index")

    @property
    def colormap(self) -> str:
        return self._colormap

    @colormap.setter
    def colormap(self, value: str) -> None:
        if value not in CONTINUOUS:
            raise ValueError(f"unknown colormap {value!r}")
        self._set("_colormap", value, "colormap")

    @property
    def value_range(self) -> tuple[float, float]:
        return self._vmin, self._vmax

    @value_range.setter
    def value_range(self, value: tuple[float, float]) -> None:
        vmin, vmax = float(value[0]), float(value[1])
        if not vmin < vmax:
            raise ValueError(f"range minimum {vmin} must be below maximum {vmax}")
        if (vmin, vmax) != (self._vmin, self._vmax):
            self._vmin, self._vmax = vmin, vmax
            self._version += 1
            self.changed.emit("value_range")

    @property
    def threshold(self) -> float | None:
        return self._threshold

    @threshold.setter
    def threshold(self, value: float | None) -> None:
        self._set("_threshold", None if value is None else float(value), "threshold")

    @property
    def interpolation(self) -> Interpolation:
        return self._interpolation

    @interpolation.setter
    def interpolation(self, value: Interpolation) -> None:
        if value not in ("nearest", "smooth"):
            raise ValueError(f"interpolation must be 'nearest' or 'smooth', not {value!r}")
        self._set("_interpolation", value, "interpolation")

    # -- data -------------------------------------------------------------------------
    def notify_data_changed(self) -> None:
        """The result gained values (a batch was folded in): recolour on next paint."""
        self._probabilities = None
        self._version += 1
        self.changed.emit("data")

    def _set(self, attribute: str, value: object, event: str) -> None:
        if getattr(self, attribute) != value:
            setattr(self, attribute, value)
            if event not in _NON_PIXEL_EVENTS:
                self._version += 1
            self.changed.emit(event)

    def probabilities(self) -> np.ndarray:
        """``(C, h, w)`` probabilities, NaN where nothing was computed (cached)."""
        if self._probabilities is None:
            self._probabilities = self.result.probabilities()
        return self._probabilities

    def _geometry(self) -> tuple[tuple[float, float], float]:
        _, origin, l0_per_px = self.result.heatmap(0)
        return origin, l0_per_px

    def colour_image(self) -> ColourImage:
        """The layer as RGBA, recomputed only after data or a colour setting changed."""
        key_version = self._version
        if self._cached is not None and self._cached.version == key_version:
            return self._cached
        probs = self.probabilities()
        (l0_x, l0_y), l0_per_px = self._geometry()
        if self._class_index == ARGMAX:
            filled = np.isfinite(probs).all(axis=0)
            classes = np.where(filled, np.nan_to_num(probs, nan=-1).argmax(axis=0), -1)
            if self._threshold is not None:
                classes = np.where(
                    np.nan_to_num(probs.max(axis=0), nan=0) >= self._threshold, classes, -1
                )
            rgba = apply_class_palette(classes, len(self.class_names))
        else:
            rgba = apply_colormap(
                probs[self._class_index], self._colormap, self._vmin, self._vmax, self._threshold
            )
        self._cached = ColourImage(rgba, l0_x, l0_y, l0_per_px, key_version)
        return self._cached

    def values_at(self, l0_x: float, l0_y: float) -> dict[str, float] | None:
        """Class probabilities under a level-0 point, or ``None`` where there are none."""
        probs = self.probabilities()
        (o_x, o_y), l0_per_px = self._geometry()
        col = math.floor((l0_x - o_x) / l0_per_px)
        row = math.floor((l0_y - o_y) / l0_per_px)
        if not (0 <= row < probs.shape[1] and 0 <= col < probs.shape[2]):
            return None
        values = probs[:, row, col]
        if not np.isfinite(values).all():
            return None
        return {name: float(v) for name, v in zip(self.class_names, values, strict=True)}
