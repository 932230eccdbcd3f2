"""Heatmap layers: a model's per-class probabilities as one small colour image."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Protocol

import numpy as np

from inference.core.geometry import Rect
from inference.results.class_map import certainty
from viewer.layers.base import Layer
from viewer.layers.clipping import LayerClip
from viewer.layers.colormaps import (
    CONTINUOUS,
    apply_class_palette,
    apply_colormap,
    result_class_colours,
)
from viewer.layers.legend import ClassLegend, ColourBarLegend, Legend

Interpolation = Literal["nearest", "smooth"]
#: Events that change how a layer is composited, not its colour image.
_NON_PIXEL_EVENTS = frozenset({"visible", "opacity", "name", "warning"})
#: ``class_index`` value that shows the most probable class in class colours.
ARGMAX = -1
#: ``class_index`` values that show how sure the model is, on a colour bar: the most
#: likely class's probability, or one minus the entropy (0 where every class is equally
#: likely, 1 where one class has it all; see :func:`~inference.results.class_map.certainty`).
TOP_PROBABILITY = -2
ONE_MINUS_ENTROPY = -3
#: The confidence measures by ``class_index``, with their names in settings and legends.
CONFIDENCE_MEASURES: dict[int, str] = {
    TOP_PROBABILITY: "top probability",
    ONE_MINUS_ENTROPY: "1 - entropy",
}


class GridResult(Protocol):
    """What a heatmap needs of a result raster (``inference.results.store`` provides it).

    The raster has ``raster_shape`` pixels; pixel ``(0, 0)`` starts at level-0
    ``raster_geometry()[0]`` and each pixel is ``raster_geometry()[1]`` level-0 px wide.
    """

    task: ClassVar[str]
    class_names: tuple[str, ...]

    @property
    def raster_shape(self) -> tuple[int, int]: ...

    def raster_geometry(self) -> tuple[tuple[float, float], float]: ...

    def probabilities(self, rows: slice = ..., cols: slice = ...) -> np.ndarray: ...

    def raster_window(self, l0_rect: Rect) -> tuple[slice, slice]: ...

    def values_at(self, l0_x: float, l0_y: float) -> np.ndarray | None: ...


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
    """One model result shown as a heatmap: a class's probability, the argmax map (the
    class map), or how confident the model is (:data:`CONFIDENCE_MEASURES`).

    Display settings: ``class_index`` (a class, :data:`ARGMAX`, :data:`TOP_PROBABILITY`
    or :data:`ONE_MINUS_ENTROPY`), ``colormap``, ``vmin`` /
    ``vmax``, ``threshold`` (hide values below; ``None`` shows all), ``interpolation``
    (``"nearest"`` shows true patches, ``"smooth"`` blends them).  The result may grow
    while a job runs: call :meth:`notify_data_changed` with the level-0 area a batch
    touched, and only that part is recoloured on the next :meth:`colour_image`.
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
        value_range: tuple[float, float] = (0.0, 1.0),
        value_label: str = "probability",
        provenance: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(name, opacity=opacity)
        self.result = result
        n = len(result.class_names)
        self._class_index = (n - 1 if n > 1 else 0) if class_index is None else class_index
        if colormap not in CONTINUOUS:
            raise ValueError(f"unknown colormap {colormap!r}")
        self._colormap = colormap
        self._vmin, self._vmax = float(value_range[0]), float(value_range[1])
        self._threshold: float | None = None
        self._interpolation: Interpolation = "nearest"
        self.value_label = value_label
        self.provenance: dict[str, Any] = dict(provenance or {})
        self.progress: tuple[int, int] | None = None  # (done, total) while a job runs
        self._version = 0
        self._cached: ColourImage | None = None
        self._rgba: np.ndarray | None = None
        self._full_recolour = True
        self._dirty: tuple[slice, slice] | None = None
        self._clip: LayerClip | None = None
        self._clip_to_tissue = True

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
        n = len(self.class_names)
        if value in (ARGMAX, *CONFIDENCE_MEASURES):
            if n < 2:
                raise ValueError("a one-output result has no most likely class or confidence")
        elif not 0 <= value < n:
            raise ValueError(f"class index {value} outside 0..{n - 1}")
        self._set("_class_index", value, "class_index")

    @property
    def shows(self) -> str:
        """What the layer shows, as settings name it: a class name, ``"argmax"``, or a
        confidence measure (``"top probability"``, ``"1 - entropy"``)."""
        return shown_name(self._class_index, self.class_names)

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
            self._settings_changed("value_range")

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

    @property
    def clips(self) -> bool:
        """Whether the layer is clipped (segmentation maps: to the slide and, while
        :attr:`clip_to_tissue`, to the tissue; see :meth:`set_clip`)."""
        return self.result.task == "segmentation"

    @property
    def clip_to_tissue(self) -> bool:
        return self._clip_to_tissue

    @clip_to_tissue.setter
    def clip_to_tissue(self, value: bool) -> None:
        self._set("_clip_to_tissue", bool(value), "clip_to_tissue")

    @property
    def clip(self) -> LayerClip | None:
        return self._clip

    def set_clip(self, clip: LayerClip | None) -> None:
        """The slide's size and tissue mask a segmentation layer is clipped to (``None``:
        unclipped); other layers ignore it."""
        self._clip = clip
        self._settings_changed("clip")

    @property
    def short_name(self) -> str:
        """The model (and method, for an explanation) the layer shows, for labels that
        have little room (the status bar); the layer's name when it records none."""
        prov = self.provenance
        model = prov.get("model")
        if isinstance(model, Mapping):
            model = model.get("name")
        method = prov.get("method_label") or prov.get("method")
        base = str(model) if model else self.name
        return f"{base} {method}" if method else base

    def settings(self) -> dict[str, Any]:
        """The display settings, for provenance sidecars and exports."""
        clipped = {"clip_to_tissue": self._clip_to_tissue} if self.clips else {}
        return {
            **clipped,
            "class": self.shows,
            "colormap": self._colormap,
            "range": [self._vmin, self._vmax],
            "threshold": self._threshold,
            "interpolation": self._interpolation,
            "opacity": self.opacity,
            "visible": self.visible,
        }

    # -- data -------------------------------------------------------------------------
    def notify_data_changed(self, l0_rect: Rect | None = None) -> None:
        """The result gained values inside ``l0_rect`` (everywhere when ``None``):
        recolour that part on the next paint."""
        if l0_rect is None:
            self._full_recolour = True
        else:
            rows, cols = self.result.raster_window(l0_rect)
            if rows.start == rows.stop or cols.start == cols.stop:
                return
            if self._dirty is not None:
                old_r, old_c = self._dirty
                rows = slice(min(rows.start, old_r.start), max(rows.stop, old_r.stop))
                cols = slice(min(cols.start, old_c.start), max(cols.stop, old_c.stop))
            self._dirty = (rows, cols)
        self._version += 1
        self.changed.emit("data")

    def _set(self, attribute: str, value: object, event: str) -> None:
        if getattr(self, attribute) != value:
            setattr(self, attribute, value)
            if event in _NON_PIXEL_EVENTS:
                self.changed.emit(event)
            else:
                self._settings_changed(event)

    def _settings_changed(self, event: str) -> None:
        self._full_recolour = True
        self._version += 1
        self.changed.emit(event)

    def probabilities(self) -> np.ndarray:
        """``(C, h, w)`` probabilities, NaN where nothing was computed."""
        return self.result.probabilities()

    def _colour(self, probs: np.ndarray, rows: slice, cols: slice) -> np.ndarray:
        """Premultiplied RGBA (alpha 0 or 255) of the ``(C, h, w)`` probabilities of the
        raster window ``rows, cols`` (transparent where the layer is clipped)."""
        if self._class_index == ARGMAX:
            filled = np.isfinite(probs).all(axis=0)
            classes = np.where(filled, np.nan_to_num(probs, nan=-1).argmax(axis=0), -1)
            if self._threshold is not None:
                classes = np.where(
                    np.nan_to_num(probs.max(axis=0), nan=0) >= self._threshold, classes, -1
                )
            rgba = apply_class_palette(classes, self.class_names)
        elif self._class_index in CONFIDENCE_MEASURES:
            rgba = apply_colormap(
                self.confidence(probs), self._colormap, self._vmin, self._vmax, self._threshold
            )
        else:
            rgba = apply_colormap(
                probs[self._class_index], self._colormap, self._vmin, self._vmax, self._threshold
            )
        rgba[rgba[..., 3] == 0] = 0
        keep = self._kept(rows, cols)
        if keep is not None:
            rgba[~keep] = 0
        return rgba

    def confidence(self, probs: np.ndarray) -> np.ndarray:
        """``(h, w)`` confidence of ``(C, h, w)`` probabilities by the measure shown (the
        top probability unless :data:`ONE_MINUS_ENTROPY`); NaN without values."""
        if self._class_index == ONE_MINUS_ENTROPY:
            return certainty(probs)
        filled = np.isfinite(probs).all(axis=0)
        top = np.nan_to_num(probs, nan=-1.0).max(axis=0)
        return np.where(filled, top, np.nan).astype(np.float32)

    def _kept(self, rows: slice, cols: slice) -> np.ndarray | None:
        """Which pixels of a raster window the clip keeps (``None``: all of them)."""
        if not self.clips or self._clip is None:
            return None
        origin, l0_per_px = self.result.raster_geometry()
        return self._clip.keep(origin, l0_per_px, rows, cols, to_tissue=self._clip_to_tissue)

    def colour_image(self) -> ColourImage:
        """The layer as premultiplied RGBA; only what changed since the last call is
        recoloured (the whole image after a setting changed)."""
        if self._cached is not None and self._cached.version == self._version:
            return self._cached
        if self._full_recolour or self._rgba is None:
            h, w = self.result.raster_shape
            self._rgba = self._colour(self.result.probabilities(), slice(0, h), slice(0, w))
        elif self._dirty is not None:
            rows, cols = self._dirty
            self._rgba[rows, cols] = self._colour(self.result.probabilities(rows, cols), rows, cols)
        self._full_recolour = False
        self._dirty = None
        (l0_x, l0_y), l0_per_px = self.result.raster_geometry()
        self._cached = ColourImage(self._rgba, l0_x, l0_y, l0_per_px, self._version)
        return self._cached

    def values_at(self, l0_x: float, l0_y: float) -> dict[str, float] | None:
        """Class probabilities under a level-0 point, or ``None`` where there are none
        (or where the layer is clipped away)."""
        values = self.result.values_at(l0_x, l0_y)
        if values is None:
            return None
        if self.clips and self._clip is not None:
            (o_x, o_y), px = self.result.raster_geometry()
            col, row = int((l0_x - o_x) // px), int((l0_y - o_y) // px)
            keep = self._kept(slice(row, row + 1), slice(col, col + 1))
            if keep is not None and not keep.all():
                return None
        return {name: float(v) for name, v in zip(self.class_names, values, strict=True)}

    def legend(self) -> Legend:
        """What the colours mean: a colour bar (a class's values or the confidence), or
        the class colours of the argmax map."""
        if self._class_index == ARGMAX:
            return ClassLegend(
                self.name,
                tuple(zip(self.class_names, result_class_colours(self.class_names), strict=True)),
                warning=self.warning,
            )
        if self._class_index in CONFIDENCE_MEASURES:
            label = f"confidence ({CONFIDENCE_MEASURES[self._class_index]})"
        else:
            label = f"{self.class_names[self._class_index]} {self.value_label}"
        return ColourBarLegend(
            self.name,
            label,
            self._colormap,
            self._vmin,
            self._vmax,
            self._threshold,
            warning=self.warning,
        )


def shown_name(class_index: int, class_names: tuple[str, ...]) -> str:
    """The settings name of a ``class_index`` (see :attr:`HeatmapLayer.shows`)."""
    if class_index == ARGMAX:
        return "argmax"
    if class_index in CONFIDENCE_MEASURES:
        return CONFIDENCE_MEASURES[class_index]
    return class_names[class_index]


def shown_index(name: str, class_names: tuple[str, ...]) -> int:
    """The ``class_index`` a settings name means (the inverse of :func:`shown_name`).
    Raises ``ValueError`` naming the choices when it means none."""
    if name == "argmax":
        return ARGMAX
    for index, measure in CONFIDENCE_MEASURES.items():
        if name == measure:
            return index
    if name in class_names:
        return class_names.index(name)
    choices = [*class_names, "argmax", *CONFIDENCE_MEASURES.values()]
    raise ValueError(f"no class {name!r}; choose one of {', '.join(choices)}")
