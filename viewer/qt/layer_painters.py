"""Painters for the layer models: each visible layer drawn as one scaled image or path."""

from __future__ import annotations

import weakref

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QImage, QPainter, QPainterPath, QPen, QPolygonF

from inference.geometry import ViewTransform
from viewer.layers.base import Layer, LayerStack
from viewer.layers.heatmap import ColourImage, HeatmapLayer
from viewer.layers.masks import MaskLayer, PolygonLayer


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
        image = QImage(rgba.data, w, h, 4 * w, QImage.Format.Format_RGBA8888)
        self._images[layer] = (colour.version, rgba, image)  # rgba keeps the pixels alive
        return image


class LayerPainter:
    """Paints a :class:`LayerStack` bottom first under a view transform."""

    def __init__(self) -> None:
        self._images = _ImageCache()

    def paint(self, painter: QPainter, stack: LayerStack, transform: ViewTransform) -> None:
        for layer in stack:
            if not layer.visible or layer.opacity <= 0:
                continue
            painter.save()
            painter.setOpacity(layer.opacity)
            if isinstance(layer, HeatmapLayer):
                smooth = layer.interpolation == "smooth"
                self._paint_image(painter, layer, layer.colour_image(), transform, smooth)
            elif isinstance(layer, MaskLayer):
                self._paint_image(painter, layer, layer.colour_image(), transform, False)
            elif isinstance(layer, PolygonLayer):
                self._paint_polygons(painter, layer, transform)
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
        scr_x, scr_y = transform.l0_to_scr(colour.l0_x, colour.l0_y)
        target = QRectF(
            scr_x, scr_y, colour.l0_width * transform.scale, colour.l0_height * transform.scale
        )
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, smooth)
        painter.drawImage(target, image, QRectF(image.rect()))

    def _paint_polygons(
        self, painter: QPainter, layer: PolygonLayer, transform: ViewTransform
    ) -> None:
        path = QPainterPath()
        for polygon in layer.polygons:
            scr = (polygon - (transform.l0_x, transform.l0_y)) * transform.scale
            path.addPolygon(QPolygonF([QPointF(float(x), float(y)) for x, y in scr]))
            path.closeSubpath()
        pen = QPen(QColor(*layer.colour), layer.line_width)
        pen.setCosmetic(True)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        painter.setPen(pen)
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawPath(path)
