"""Mask and polygon layers: tissue masks and ground truth aligned to the slide."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from viewer.layers.base import Layer
from viewer.layers.heatmap import ColourImage
from viewer.layers.legend import ClassLegend


class MaskLayer(Layer):
    """A binary mask (tissue, ground-truth tumour...) at ``l0_per_px`` level-0 px per pixel.

    Drawn as one colour where the mask is set; ``outline_only`` draws just its border.
    """

    kind = "mask"

    def __init__(
        self,
        name: str,
        mask: np.ndarray,
        l0_per_px: float,
        *,
        colour: tuple[int, int, int] = (0, 200, 80),
        opacity: float = 0.4,
        l0_origin: tuple[float, float] = (0.0, 0.0),
        provenance: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(name, opacity=opacity)
        if mask.ndim != 2:
            raise ValueError(f"a mask must be 2-D, not of shape {mask.shape}")
        if l0_per_px <= 0:
            raise ValueError("l0_per_px must be positive")
        self.mask = mask.astype(bool)
        self.l0_per_px = float(l0_per_px)
        self.l0_origin = l0_origin
        self._colour = colour
        self._outline_only = False
        self.provenance = dict(provenance or {})
        self._version = 0
        self._cached: ColourImage | None = None
        self._rings: list[np.ndarray] | None = None

    @property
    def colour(self) -> tuple[int, int, int]:
        return self._colour

    @colour.setter
    def colour(self, value: tuple[int, int, int]) -> None:
        if value != self._colour:
            self._colour = value
            self._version += 1
            self.changed.emit("colour")

    @property
    def outline_only(self) -> bool:
        return self._outline_only

    @outline_only.setter
    def outline_only(self, value: bool) -> None:
        if value != self._outline_only:
            self._outline_only = bool(value)
            self._version += 1
            self.changed.emit("outline_only")

    def outline_rings(self) -> list[np.ndarray]:
        """The mask's borders as closed rings in level-0 px (``(k, 2)`` arrays), through the
        centres of its border pixels; what an outline is drawn from at any zoom."""
        if self._rings is None:
            self._rings = rings_of(self.mask, self.l0_per_px, self.l0_origin)
        return self._rings

    def outline_groups(self) -> list[tuple[list[np.ndarray], tuple[int, int, int]]]:
        """The outlines to draw, each group of rings with its colour: the mask's borders
        in the layer's colour (a label image draws one group per class)."""
        return [(self.outline_rings(), self._colour)]

    def colour_image(self) -> ColourImage:
        if self._cached is not None and self._cached.version == self._version:
            return self._cached
        shown = self.mask
        if self._outline_only:
            import cv2

            eroded = cv2.erode(self.mask.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
            shown = self.mask & ~eroded
        rgba = np.zeros((*self.mask.shape, 4), np.uint8)
        rgba[shown, :3] = self._colour
        rgba[shown, 3] = 255
        self._cached = ColourImage(rgba, *self.l0_origin, self.l0_per_px, self._version)
        return self._cached

    def legend(self) -> ClassLegend:
        return ClassLegend(self.name, ((self.name, self._colour),))

    def value_at(self, l0_x: float, l0_y: float) -> bool | None:
        col = int((l0_x - self.l0_origin[0]) // self.l0_per_px)
        row = int((l0_y - self.l0_origin[1]) // self.l0_per_px)
        if 0 <= row < self.mask.shape[0] and 0 <= col < self.mask.shape[1]:
            return bool(self.mask[row, col])
        return None


class LabelMaskLayer(MaskLayer):
    """A label image (ground truth of many classes: pixel value = class index) at
    ``l0_per_px`` level-0 px per pixel, each class above 0 in its own colour.

    ``mask`` is where any class above 0 is (what a binary comparison uses);
    ``class_names[k]`` and ``colours[k]`` name and colour label ``k``.  Outlines are
    drawn per class (:meth:`outline_groups`); the legend lists the classes present.
    """

    kind = "label-mask"

    def __init__(
        self,
        name: str,
        labels: np.ndarray,
        l0_per_px: float,
        class_names: Sequence[str],
        colours: Sequence[tuple[int, int, int]],
        *,
        opacity: float = 0.9,
        l0_origin: tuple[float, float] = (0.0, 0.0),
        provenance: dict[str, Any] | None = None,
    ) -> None:
        if labels.ndim != 2:
            raise ValueError(f"a label image must be 2-D, not of shape {labels.shape}")
        top = int(labels.max()) if labels.size else 0
        if len(class_names) <= top or len(colours) != len(class_names):
            raise ValueError(f"labels up to {top} need as many names and colours")
        super().__init__(
            name,
            labels > 0,
            l0_per_px,
            opacity=opacity,
            l0_origin=l0_origin,
            provenance=provenance,
        )
        self.labels = np.asarray(labels)
        self.class_names = tuple(class_names)
        self.colours: tuple[tuple[int, int, int], ...] = tuple(
            (int(c[0]), int(c[1]), int(c[2])) for c in colours
        )
        self.present = tuple(int(k) for k in np.unique(self.labels) if k > 0)
        self._groups: list[tuple[list[np.ndarray], tuple[int, int, int]]] | None = None

    def outline_groups(self) -> list[tuple[list[np.ndarray], tuple[int, int, int]]]:
        """Each class's borders (rings in level-0 px, as :meth:`MaskLayer.outline_rings`)
        with its colour, class by class."""
        if self._groups is None:
            self._groups = [
                (rings_of(self.labels == k, self.l0_per_px, self.l0_origin), self.colours[k])
                for k in self.present
            ]
        return self._groups

    def colour_image(self) -> ColourImage:
        if self._cached is not None and self._cached.version == self._version:
            return self._cached
        import cv2

        rgba = np.zeros((*self.labels.shape, 4), np.uint8)
        for k in self.present:
            shown = self.labels == k
            if self.outline_only:
                eroded = cv2.erode(shown.astype(np.uint8), np.ones((3, 3), np.uint8))
                shown &= ~eroded.astype(bool)
            rgba[shown, :3] = self.colours[k]
            rgba[shown, 3] = 255
        self._cached = ColourImage(rgba, *self.l0_origin, self.l0_per_px, self._version)
        return self._cached

    def legend(self) -> ClassLegend:
        return ClassLegend(
            self.name, tuple((self.class_names[k], self.colours[k]) for k in self.present)
        )


def rings_of(
    mask: np.ndarray, l0_per_px: float, l0_origin: tuple[float, float]
) -> list[np.ndarray]:
    """The borders of a boolean raster as closed rings in level-0 px (``(k, 2)`` arrays),
    through the centres of its border pixels."""
    import cv2

    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
    ox, oy = l0_origin
    return [
        (c[:, 0, :].astype(np.float64) + 0.5) * l0_per_px + (ox, oy)
        for c in contours
        if len(c) >= 3
    ]


class PolygonLayer(Layer):
    """Polygons in level-0 pixels (e.g. ground-truth regions from GeoJSON), outlined."""

    kind = "polygons"

    def __init__(
        self,
        name: str,
        polygons: Sequence[np.ndarray],
        *,
        colour: tuple[int, int, int] = (220, 30, 30),
        line_width: float = 2.0,
        opacity: float = 1.0,
        provenance: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(name, opacity=opacity)
        self.polygons = [np.asarray(p, np.float64).reshape(-1, 2) for p in polygons]
        self.colour = colour
        self.line_width = line_width
        self.provenance = dict(provenance or {})

    def legend(self) -> ClassLegend:
        return ClassLegend(self.name, ((self.name, self.colour),))

    def bounds(self) -> tuple[float, float, float, float] | None:
        """``(l0_x0, l0_y0, l0_x1, l0_y1)`` of all polygons, or ``None`` when empty."""
        if not self.polygons:
            return None
        allpts = np.concatenate(self.polygons)
        x0, y0 = allpts.min(axis=0)
        x1, y1 = allpts.max(axis=0)
        return float(x0), float(y0), float(x1), float(y1)


def tissue_mask_layer(mask: np.ndarray, l0_per_px: float) -> MaskLayer:
    """The layer that shows a slide's tissue mask (the engine's, at ``l0_per_px``)."""
    return MaskLayer(
        "Tissue mask",
        mask,
        l0_per_px,
        colour=(40, 160, 60),
        opacity=0.35,
        provenance={"kind": "tissue", "l0_per_px": l0_per_px},
    )


def is_tissue_layer(layer: Layer) -> bool:
    """Whether ``layer`` is a tissue mask layer made by :func:`tissue_mask_layer`."""
    return isinstance(layer, MaskLayer) and layer.provenance.get("kind") == "tissue"
