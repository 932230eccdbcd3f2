"""Annotations > Export measurements: the open slide's measurement table as CSV (see
:mod:`viewer.annotations.measurement_table`), with the mean of every visible heatmap
inside each annotation.

The annotations (immutable values) and snapshots of the visible heatmaps are taken on
the GUI thread; the table is computed and written on a background thread, and the
answer names the slide it was for, so one for a slide closed meanwhile is dropped.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QMainWindow

from viewer.annotations.measurement_table import (
    HeatmapRaster,
    measurement_table,
    write_measurement_csv,
)
from viewer.layers.heatmap import HeatmapLayer
from viewer.qt.background import BackgroundCalls
from viewer.qt.messages import show_warning
from viewer.qt.save_dialog import ask_save_path
from viewer.save_locations import model_names, output_name

if TYPE_CHECKING:
    from viewer.annotations import AnnotationSet
    from viewer.layers.base import LayerStack

CSV_FILTER = "CSV (*.csv);;All files (*)"


class MeasurementExport(QObject):
    """Writes the measurement table of ``current()`` (the open slide's annotations) on
    ``slide_path()`` (its file), with the heatmaps of ``layers`` that are visible.

    Signals ``finished(path_or_none)`` after each export; ``last_message`` is what it
    said last.
    """

    finished = Signal(object)

    def __init__(
        self,
        window: QMainWindow,
        layers: LayerStack,
        current: Callable[[], AnnotationSet | None],
        slide_path: Callable[[], Path | None],
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.window = window
        self.layers = layers
        self._current = current
        self._slide_path = slide_path
        self.background = BackgroundCalls(self)
        self.last_message = ""

    def visible_heatmaps(self) -> list[HeatmapLayer]:
        """The heatmap layers shown now, top first (as the legend lists them), each result
        once per class: a result's class map or confidence layer brings every class, so
        its single-class layers add nothing."""
        layers = [x for x in self.layers if isinstance(x, HeatmapLayer) and x.visible]
        every_class = {id(x.result) for x in layers if x.class_index < 0}
        kept: list[HeatmapLayer] = []
        seen: set[tuple[int, int]] = set()
        for layer in reversed(layers):
            whole = id(layer.result) in every_class
            if whole and layer.class_index >= 0:
                continue
            key = (id(layer.result), -1 if whole else layer.class_index)
            if key not in seen:
                seen.add(key)
                kept.append(layer)
        return kept

    def choose(self) -> None:
        """Ask where (in the slide's folder, ``<slide>.<models>.measurements.csv``), then
        export."""
        annotations, slide = self._current(), self._slide_path()
        if annotations is None:
            return
        models = "+".join(model_names(x.provenance for x in self.visible_heatmaps()))
        name = output_name(slide, models, "measurements", suffix=".csv")
        path = ask_save_path(self.window, "Export measurements", slide, name, CSV_FILTER)
        if path is not None:
            self.export(path)

    def export(self, path: Path) -> bool:
        """Start writing the table to ``path``; ``False`` when there is nothing to
        measure (no slide)."""
        annotations, slide = self._current(), self._slide_path()
        if annotations is None:
            return False
        values = annotations.annotations()
        mpp = annotations.mpp
        source_id = annotations.source_id
        rasters = [HeatmapRaster.of(layer) for layer in self.visible_heatmaps()]
        slide_name = slide.name if slide is not None else ""

        def work() -> Path:
            table = measurement_table(values, mpp, slide=slide_name, heatmaps=rasters)
            return write_measurement_csv(path, table)

        def done(written: Path) -> None:
            current = self._current()
            if current is None or current.source_id != source_id:
                return  # the slide was closed meanwhile
            units = "µm" if mpp is not None else "px (the slide states no pixel size)"
            layers = f", with {len(rasters)} heatmap layer(s)" if rasters else ""
            self._tell(f"Measurements of {len(values)} annotations in {units}{layers}: {written}")
            self.finished.emit(written)

        def failed(message: str) -> None:
            self._tell(f"Could not write the measurements to {path}: {message}")
            show_warning(self.window, "Measurements not exported", self.last_message)
            self.finished.emit(None)

        self.window.statusBar().showMessage(f"Writing measurements to {path.name}…")
        self.background.call(work, done, failed, name="slidelens-measurements")
        return True

    def _tell(self, message: str) -> None:
        self.last_message = message
        self.window.statusBar().showMessage(message, 10000)
