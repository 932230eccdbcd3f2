"""Layers that are not a model's output: ground truth (a mask image or GeoJSON, drawn as
an outline) and the tissue mask.  Both are read or computed off the GUI thread; each
answer says which opened slide it was for, and one for a slide closed meanwhile is
dropped (:meth:`ReferenceLayers.slide_closed` also forgets every pending answer)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject
from PySide6.QtWidgets import QFileDialog, QWidget

from viewer.layers.base import Layer, LayerStack
from viewer.layers.heatmap import HeatmapLayer
from viewer.layers.masks import MaskLayer, is_tissue_layer, tissue_mask_layer
from viewer.qt.background import BackgroundCalls
from viewer.result_layers import MULTI_CLASS
from viewer.truth_layers import truth_layer

if TYPE_CHECKING:
    from viewer.qt.controllers.slide_opener import OpenedSlide
    from viewer.qt.inference_worker import SlideTag

TRUTH_FILTER = "Ground truth (*.png *.tif *.tiff *.jpg *.bmp *.geojson *.json);;All files (*)"


class ReferenceLayers(QObject):
    """Adds ground-truth and tissue-mask layers for the open slide.

    ``current()`` is the open slide (a result for a slide that has been closed since is
    dropped), ``select(layer)`` shows a new layer in the Layers panel, and
    ``warn(title, message)`` reports a failure.
    """

    def __init__(
        self,
        window: QWidget,
        layers: LayerStack,
        current: Callable[[], OpenedSlide | None],
        select: Callable[[Layer], None],
        warn: Callable[[str, str], None],
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.window = window
        self.layers = layers
        self._current = current
        self._select = select
        self._warn = warn
        self.background = BackgroundCalls(self)

    def _still_open(self, slide: SlideTag) -> bool:
        """Whether ``slide`` (that opening of it) is still the open slide."""
        opened = self._current()
        return opened is not None and opened.tag == slide

    def slide_closed(self) -> None:
        """The open slide is closing: nothing still being read or computed for it will
        be shown."""
        self.background.forget_pending()

    def choose_truth(self) -> None:
        opened = self._current()
        if opened is None:
            return
        path, _ = QFileDialog.getOpenFileName(
            self.window, "Load ground truth", str(opened.path.parent), TRUTH_FILTER
        )
        if path:
            self.load_truth(Path(path))

    def load_truth(self, path: Path) -> None:
        """Read a mask image or GeoJSON off the GUI thread and add it as an outline layer
        (made and traced there too; see :func:`~viewer.truth_layers.truth_layer`)."""
        opened = self._current()
        if opened is None:
            return
        from inference.evaluation.truth import load_truth

        dims = opened.source.info.dimensions
        origin = opened.source.info.l0_bounds_origin  # GeoJSON counts from the bounds
        slide = opened.tag
        classes = self._model_classes()

        def read() -> MaskLayer:
            layer = truth_layer(load_truth(path, dims, l0_origin=origin), path, classes)
            layer.outline_groups()  # traced here, not on the first paint
            return layer

        def done(layer: MaskLayer) -> None:
            if not self._still_open(slide):
                return
            self.layers.add(layer)
            self._select(layer)

        self.background.call(
            read,
            done,
            lambda message: self._warn("Could not load the ground truth", message),
            name="slidelens-truth",
        )

    def _model_classes(self) -> tuple[str, ...] | None:
        """The classes of the top multi-class result on screen (label ``k`` of a label
        image is its class ``k``), or ``None``."""
        for layer in reversed(list(self.layers)):
            if type(layer) is HeatmapLayer and len(layer.class_names) >= MULTI_CLASS:
                return tuple(layer.class_names)
        return None

    def show_tissue(self) -> None:
        """Show the tissue mask layer (computing it off the GUI thread when needed)."""
        opened = self._current()
        if opened is None:
            return
        for layer in self.layers:
            if is_tissue_layer(layer):
                layer.visible = True
                self._select(layer)
                return
        from inference.engine.tissue import TissueMask, tissue_mask

        source = opened.source
        slide = opened.tag

        def done(tissue: TissueMask) -> None:
            if not self._still_open(slide):
                return
            layer = tissue_mask_layer(tissue.mask, tissue.l0_per_px)
            self.layers.insert(0, layer)
            self._select(layer)

        self.background.call(
            lambda: tissue_mask(source),
            done,
            lambda message: self._warn("Could not compute the tissue mask", message),
            name="slidelens-tissue",
        )
