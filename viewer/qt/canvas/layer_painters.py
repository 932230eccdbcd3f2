"""Painters for the layer models: each visible layer drawn as one scaled image or path."""

from __future__ import annotations

import math
import weakref

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QImage, QPainter, QPainterPath, QPolygonF

from inference.core.geometry import Rect, ViewTransform
from viewer.layers.annotation_layer import AnnotationLayer
from viewer.layers.base import Layer, LayerStack
from viewer.layers.heatmap import ColourImage, HeatmapLayer
from viewer.layers.masks import MaskLayer, PolygonLayer
from viewer.qt.canvas.annotation_painter import paint_annotation_layer
from viewer.qt.canvas.tools import cosmetic_pen


class _ImageCache:
    """QImages of layers' colour images, rebuilt only when the colour image changes."""

    def __init__(self) -> None:
        self._images: weakref.WeakKeyDictionary[Layer, tuple[int, np.ndarray, QImage]] = (
            weakref.WeakKeyDictionary()
        )

    def image_for(self, layer: Layer, colour: ColourImage) -> QImage:
        cached = self._images.get(layer)
        if cached is not None and cached[0] == colour.version and cached[1] is colour.rgba:
            return cached[2]
        rgba = np.ascontiguousarray(colour.rgba)
        h, w = rgba.shape[:2]
        # colour images are premultiplied (transparent pixels are all zero), which Qt
        # composites without converting the whole image on every paint
        image = QImage(rgba.data, w, h, 4 * w, QImage.Format.Format_RGBA8888_Premultiplied)
        self._images[layer] = (colour.version, rgba, image)  # rgba keeps the pixels alive
        return image


class LayerPainter:
    """Paints a :class:`LayerStack` bottom first under a view transform."""

    def __init__(self) -> None:
        self._images = _ImageCache()
        self._scr_size = (1, 1)

    def paint(
        self,
        painter: QPainter,
        stack: LayerStack,
        transform: ViewTransform,
        scr_size: tuple[int, int],
    ) -> None:
        """Paint every visible layer, bottom first, over a widget of ``scr_size``."""
        self._scr_size = scr_size
        for layer in stack:
            if not layer.visible or layer.opacity <= 0:
                continue
            painter.save()
            painter.setOpacity(layer.opacity)
            if isinstance(layer, HeatmapLayer):
                smooth = layer.interpolation == "smooth"
                self._paint_image(painter, layer, layer.colour_image(), transform, smooth)
            elif isinstance(layer, MaskLayer) and layer.outline_only:
                for rings, colour in layer.outline_groups():
                    self._paint_rings(painter, rings, colour, 2.0, transform)
            elif isinstance(layer, MaskLayer):
                self._paint_image(painter, layer, layer.colour_image(), transform, False)
            elif isinstance(layer, PolygonLayer):
                self._paint_polygons(painter, layer, transform)
            elif isinstance(layer, AnnotationLayer):
                paint_annotation_layer(painter, layer, transform, scr_size)
            painter.restore()

    def _paint_image(
        self,
        painter: QPainter,
        layer: Layer,
        colour: ColourImage,
        transform: ViewTransform,
        smooth: bool,
    ) -> None:
        if colour.rgba.size == 0:
            return
        image = self._images.image_for(layer, colour)
        # Only the image pixels on screen (plus one for smooth filtering) are drawn, so a
        # deep zoom never asks Qt to scale the whole image to a huge target.
        scr_w, scr_h = self._scr_size
        l0_view = transform.scr_rect_to_l0(Rect(0, 0, scr_w, scr_h))
        px = colour.l0_per_px
        h, w = colour.rgba.shape[:2]
        margin = 1 if smooth else 0
        c0 = max(0, math.floor((l0_view.x - colour.l0_x) / px) - margin)
        r0 = max(0, math.floor((l0_view.y - colour.l0_y) / px) - margin)
        c1 = min(w, math.ceil((l0_view.right - colour.l0_x) / px) + margin)
        r1 = min(h, math.ceil((l0_view.bottom - colour.l0_y) / px) + margin)
        if c1 <= c0 or r1 <= r0:
            return
        scr_x, scr_y = transform.l0_to_scr(colour.l0_x + c0 * px, colour.l0_y + r0 * px)
        scale = px * transform.scale
        target = QRectF(scr_x, scr_y, (c1 - c0) * scale, (r1 - r0) * scale)
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, smooth)
        painter.drawImage(target, image, QRectF(c0, r0, c1 - c0, r1 - r0))

    def _paint_polygons(
        self, painter: QPainter, layer: PolygonLayer, transform: ViewTransform
    ) -> None:
        self._paint_rings(painter, layer.polygons, layer.colour, layer.line_width, transform)

    def _paint_rings(
        self,
        painter: QPainter,
        rings: list[np.ndarray],
        colour: tuple[int, int, int],
        line_width: float,
        transform: ViewTransform,
    ) -> None:
        """Closed outlines a constant ``line_width`` screen px wide at any zoom."""
        path = QPainterPath()
        for polygon in rings:
            scr = (polygon - (transform.l0_x, transform.l0_y)) * transform.scale
            path.addPolygon(QPolygonF([QPointF(float(x), float(y)) for x, y in scr]))
            path.closeSubpath()
        pen = cosmetic_pen(QColor(*colour), line_width, painter)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        painter.setPen(pen)
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawPath(path)
