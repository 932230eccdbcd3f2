"""A CAM explanation as a heatmap raster, so it is shown, tuned, pinned and exported
like any other layer (one "class": the explained class's relevance, 0..1)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Protocol

import numpy as np

from inference.core.geometry import Rect, raster_index, raster_window


class CamLike(Protocol):
    """What :class:`inference.explain.service.CamResult` provides (read-only)."""

    @property
    def l0_origin(self) -> tuple[float, float]: ...

    @property
    def l0_per_px(self) -> float: ...

    @property
    def class_name(self) -> str: ...

    @property
    def provenance(self) -> Mapping[str, Any]: ...

    def normalised(self) -> np.ndarray: ...


class CamRaster:
    """The :class:`~viewer.layers.heatmap.GridResult` of a CAM: ``clip(raw / vmax, 0, 1)``
    (the explanation's one shared normalisation), NaN where nothing was explained."""

    task: ClassVar[str] = "explanation"

    def __init__(self, cam: CamLike, label: str) -> None:
        self.cam = cam
        self.class_names: tuple[str, ...] = (label,)
        self._values = cam.normalised()[None]

    @property
    def raster_shape(self) -> tuple[int, int]:
        return int(self._values.shape[1]), int(self._values.shape[2])

    def raster_geometry(self) -> tuple[tuple[float, float], float]:
        return (float(self.cam.l0_origin[0]), float(self.cam.l0_origin[1])), self.cam.l0_per_px

    def probabilities(self, rows: slice = slice(None), cols: slice = slice(None)) -> np.ndarray:
        return self._values[:, rows, cols].copy()

    def raster_window(self, l0_rect: Rect) -> tuple[slice, slice]:
        origin, l0_per_px = self.raster_geometry()
        return raster_window(l0_rect, origin, l0_per_px, self.raster_shape)

    def values_at(self, l0_x: float, l0_y: float) -> np.ndarray | None:
        origin, l0_per_px = self.raster_geometry()
        index = raster_index(l0_x, l0_y, origin, l0_per_px, self.raster_shape)
        if index is None:
            return None
        value = self._values[:, index[0], index[1]]
        return value if np.isfinite(value).all() else None
