"""Analysis > Export result files: the model result chosen in the Layers panel written as
``slidelens infer`` writes it (CSV, QuPath GeoJSON, heatmap TIFF, slide report; see
:mod:`viewer.result_files`), to take it to QuPath or a script without running the model
again from the command line.

The save dialog opens beside the slide and proposes ``<slide>.<model>.geojson``; the
other files go beside it under the same stem.  The files are written off the GUI thread;
the status bar names them, a failure is a warning naming the cause.  A result still
being computed, or one whose run was cancelled or failed, is refused with a message (its
files would be partial).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QMainWindow

from viewer.layers.base import Layer
from viewer.layers.heatmap import HeatmapLayer
from viewer.qt.actions import make_action
from viewer.qt.background import BackgroundCalls
from viewer.qt.messages import show_warning
from viewer.qt.save_dialog import ask_save_path
from viewer.result_files import ResultFileSlide, stem_of, write_result_files
from viewer.result_layers import result_model_card
from viewer.save_locations import model_names, output_name

if TYPE_CHECKING:
    from viewer.pixel_size import SlidePixelSize
    from viewer.qt.controllers.slide_opener import OpenedSlide

FILE_FILTER = "QuPath GeoJSON, with CSV, TIFF and slide report beside it (*.geojson)"


def is_result_layer(layer: Layer | None) -> bool:
    """Whether ``layer`` shows a model's result (not an explanation, attention or
    similarity layer)."""
    return type(layer) is HeatmapLayer and layer.result.task != "explanation"


class ResultFilesExport(QObject):
    """See the module docstring.  ``selected()`` is the Layers panel's chosen layer,
    ``current()`` the open slide.  ``finished(object)``: the paths written, or the
    message of a failure."""

    finished = Signal(object)

    def __init__(
        self,
        window: QMainWindow,
        selected: Callable[[], Layer | None],
        current: Callable[[], OpenedSlide | None],
        pixel_size: SlidePixelSize,
    ) -> None:
        super().__init__(window)
        self.window = window
        self._selected = selected
        self._current = current
        self.pixel_size = pixel_size
        self.background = BackgroundCalls(self)
        self.last_error: str | None = None
        self.action = make_action(window, "Export result &files (CSV, GeoJSON, TIFF)…", self.choose)

    def choose(self) -> None:
        """Ask where, then write the chosen result's files."""
        opened, layer = self._current(), self._selected()
        if opened is None:
            return
        if not isinstance(layer, HeatmapLayer) or not is_result_layer(layer):
            self._warn("Choose a model's result in the Layers panel first.")
            return
        if layer.progress is not None:
            self._warn(f"{layer.name} is still being computed; export it when it is done.")
            return
        if layer.provenance.get("incomplete"):
            self._warn(
                f"{layer.name} is only part of a result (its run was cancelled or failed); "
                "run the model again to export it."
            )
            return
        models = "+".join(model_names([layer.provenance]))
        name = output_name(opened.path, models, suffix=".geojson")
        path = ask_save_path(self.window, "Export result files", opened.path, name, FILE_FILTER)
        if path is not None:
            self.write(layer, opened, path.parent, stem_of(path))

    def write(self, layer: HeatmapLayer, opened: OpenedSlide, folder: Path, stem: str) -> int:
        """Write ``layer``'s result as ``folder/<stem>.*`` off the GUI thread."""
        info = opened.source.info
        slide = ResultFileSlide(
            info.path.name, info.source_id, self.pixel_size.mpp, info.l0_bounds_origin
        )
        provenance = dict(layer.provenance)
        result = layer.result
        model: dict[str, Any] = {
            "name": (model_names([provenance]) or ["model"])[0],
            "sha256": provenance.get("model_sha256"),
        }

        def work() -> list[Path]:
            from inference.models.card import ModelError

            try:
                card = result_model_card(provenance)
            except (ModelError, OSError):
                card = None  # a one-output threshold of 0.5, and no grade
            return write_result_files(
                result,  # type: ignore[arg-type]  # a result grid or segmentation map
                folder,
                stem,
                slide=slide,
                card=card,
                model=model,
            )

        self.window.statusBar().showMessage(f"Writing {stem}.geojson, .csv, .heatmap.tiff…")
        return self.background.call(work, self._done, self._failed, name="slidelens-results")

    def _done(self, paths: Any) -> None:
        self.last_error = None
        names = ", ".join(Path(p).name for p in paths)
        self.window.statusBar().showMessage(f"Wrote {names}", 10000)
        self.finished.emit(paths)

    def _failed(self, message: str) -> None:
        self._warn(f"The result files were not written: {message}")
        self.finished.emit(message)

    def _warn(self, message: str) -> None:
        self.last_error = message
        self.window.statusBar().showMessage(message, 8000)
        self._box = show_warning(self.window, "Export result files", message)
