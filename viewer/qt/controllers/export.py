"""Figures from the window: export the view or a region (PNG/TIFF + provenance sidecar),
or copy the view to the clipboard.  The same compositor as ``slidelens export``.

The compositor snapshots the layers on the GUI thread; composing and writing run on a
background thread with progress in the status bar and a cancel, so a large region at
full resolution never freezes the window.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtGui import QGuiApplication, QImage
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QMainWindow,
    QMenu,
    QMessageBox,
    QProgressBar,
    QToolButton,
    QWidget,
)

from inference.core.geometry import Rect
from viewer.export.compositor import figure_size_text, is_large_figure
from viewer.export.figure import ExportResult, region_compositor, view_compositor, write_figure
from viewer.export.scene import ExportError, FigureOptions
from viewer.qt.actions import make_action
from viewer.qt.background import BackgroundCalls
from viewer.qt.canvas.tools import RectangleTool
from viewer.qt.messages import show_warning
from viewer.qt.save_dialog import ask_save_path
from viewer.save_locations import model_names, output_name

if TYPE_CHECKING:
    from inference.slides import SlideSource
    from viewer.export.compositor import Compositor
    from viewer.pixel_size import SlidePixelSize
    from viewer.qt.canvas.slide_canvas import SlideCanvas
    from viewer.qt.controllers.slide_opener import OpenedSlide

FIGURE_FILTER = "PNG image (*.png);;TIFF image (*.tif *.tiff)"


def confirm_large_figure(parent: QWidget, width: int, height: int) -> bool:
    """Ask whether to write a figure larger than a figure needs (see
    :data:`~viewer.export.compositor.LARGE_FIGURE_PIXELS`); ``True`` to write it."""
    answer = QMessageBox.question(
        parent,
        "Large figure",
        f"This figure will be {figure_size_text(width, height)}.\n\n"
        "A coarser pixel size (more µm/px) gives a smaller file. Write it anyway?",
        QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
        QMessageBox.StandardButton.No,
    )
    return answer == QMessageBox.StandardButton.Yes


class FigureDialog(QDialog):
    """Options of a figure: caption, scale bar, legend, and its pixel size.

    For a view, the size is a multiple of the screen's device pixels (1x, 2x, 4x;
    ``view_size`` is the view in device pixels, so "1x" on a HiDPI screen is the
    picture the screen shows); for a region, µm per pixel (or slide pixels per pixel
    without mpp), with the output size shown live.
    """

    def __init__(
        self,
        parent: QWidget,
        title: str,
        *,
        region: Rect | None,
        mpp: float | None,
        view_size: tuple[int, int] | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle(title)
        self.region = region
        self.mpp = mpp
        self.caption = QLineEdit()
        self.caption.setPlaceholderText("Optional caption, printed under the figure")
        self.scale_bar = QCheckBox("Scale bar")
        self.scale_bar.setChecked(True)
        self.legend = QCheckBox("Legends")
        self.legend.setChecked(True)
        self.size_label = QLabel()
        form = QFormLayout(self)
        form.addRow("Caption", self.caption)
        form.addRow("", self.scale_bar)
        form.addRow("", self.legend)
        self.view_scale = QComboBox()
        self.pixel_size = QDoubleSpinBox()
        if region is None:
            for factor in (1, 2, 4):
                self.view_scale.addItem(f"{factor}x the screen", factor)
            self.view_scale.setCurrentIndex(1)
            form.addRow("Resolution", self.view_scale)
            self._view_size = view_size or (0, 0)
            self.view_scale.currentIndexChanged.connect(self._update_size)
        else:
            self.pixel_size.setDecimals(3)
            self.pixel_size.setRange(0.01 if mpp else 1.0, 1e5)
            full = mpp if mpp else 1.0
            # a default that keeps the figure within about 4,000 px on its longer side
            longest = max(region.w, region.h)
            self.pixel_size.setValue(max(full, full * longest / 4000))
            self.pixel_size.setSuffix(" µm/px" if mpp else " slide px per px")
            self.pixel_size.valueChanged.connect(self._update_size)
            form.addRow("Pixel size", self.pixel_size)
        form.addRow("Output", self.size_label)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)
        self._update_size()

    def l0_per_px(self) -> float:
        value = self.pixel_size.value()
        return value / self.mpp if self.mpp else value

    def view_factor(self) -> float:
        return float(self.view_scale.currentData() or 1)

    def _update_size(self) -> None:
        if self.region is None:
            f = self.view_factor()
            w, h = self._view_size
            self.size_label.setText(f"{round(w * f):,} x {round(h * f):,} px")
        else:
            s = self.l0_per_px()
            self.size_label.setText(
                f"{round(self.region.w / s):,} x {round(self.region.h / s):,} px"
            )

    def options(self) -> FigureOptions:
        return FigureOptions(
            scale_bar=self.scale_bar.isChecked(),
            legend=self.legend.isChecked(),
            caption=self.caption.text().strip(),
        )


class ExportController(QObject):
    """File > Export view / Export region / Copy view to clipboard.

    A figure being written or a view being copied reads its slide on a background thread
    until it ends, also after the slide is closed: :meth:`when_done_reading` holds the
    slide's closing until then (an OpenSlide handle must not close under a reader)."""

    finished = Signal(object)  # ExportResult, or an error message (str)

    def __init__(
        self, window: QMainWindow, canvas: SlideCanvas, pixel_size: SlidePixelSize | None = None
    ) -> None:
        super().__init__(window)
        self.window = window
        self.canvas = canvas
        #: The open slide's effective pixel size (a typed one goes into the figure).
        self.pixel_size = pixel_size
        self.opened: OpenedSlide | None = None
        self.background = BackgroundCalls(self)
        self.last_result: ExportResult | None = None
        self.last_error: str | None = None
        self._cancel = threading.Event()
        #: Slides (by ``id``) a figure or a copy is reading now, and how many of them.
        self._reading: dict[int, int] = {}
        self._after_reading: dict[int, list[Callable[[], None]]] = {}
        self._progress = (0, 0)
        self.progress_bar = QProgressBar()
        self.progress_bar.setMaximumWidth(140)
        self.cancel_button = QToolButton()
        self.cancel_button.setText("Cancel export")
        self.cancel_button.clicked.connect(self._cancel.set)
        for widget in (self.progress_bar, self.cancel_button):
            widget.hide()
            window.statusBar().addPermanentWidget(widget)
        self._progress_timer = QTimer(self)
        self._progress_timer.setInterval(200)
        self._progress_timer.timeout.connect(self._show_progress)
        self.export_view_action = make_action(
            window, "Export &view as figure…", self.export_view, shortcut="Ctrl+E"
        )
        self.export_region_action = make_action(
            window, "Export &region as figure…", self.export_region
        )
        self.copy_action = make_action(
            window, "&Copy view to clipboard", self.copy_view, shortcut="Ctrl+Shift+C"
        )
        self.set_slide(None)

    def populate_menu(self, menu: QMenu) -> None:
        for action in (self.export_view_action, self.export_region_action, self.copy_action):
            menu.addAction(action)

    def set_slide(self, opened: OpenedSlide | None) -> None:
        self.opened = opened
        for action in (self.export_view_action, self.export_region_action, self.copy_action):
            action.setEnabled(opened is not None)

    @property
    def busy(self) -> bool:
        return self.progress_bar.isVisible()

    def when_done_reading(self, source: SlideSource, action: Callable[[], None]) -> None:
        """Run ``action`` (close ``source``) once no figure or copy reads ``source``: at
        once when none does, else when the last one ends (done, failed or cancelled)."""
        if self._reading.get(id(source)):
            self._after_reading.setdefault(id(source), []).append(action)
        else:
            action()

    def shutdown(self) -> None:
        """The window closes: cancel a figure being written and wait for the readers."""
        self._cancel.set()
        self.background.wait(10.0)

    def _start_reading(self, source: SlideSource) -> Callable[[], None]:
        """Count ``source`` as read until the returned function is called (once)."""
        key = id(source)
        self._reading[key] = self._reading.get(key, 0) + 1
        ended = False

        def end() -> None:
            nonlocal ended
            if ended:
                return
            ended = True
            self._reading[key] -= 1
            if self._reading[key] == 0:
                del self._reading[key]
                for action in self._after_reading.pop(key, []):
                    action()

        return end

    # -- composing ----------------------------------------------------------------------
    def _typed_mpp(self) -> float | None:
        """The pixel size the user typed for the open slide (when it states none)."""
        return self.pixel_size.typed if self.pixel_size is not None else None

    def _mpp(self) -> float | None:
        assert self.opened is not None
        return self.opened.source.info.mpp or self._typed_mpp()

    def view_compositor(self, options: FigureOptions, pixel_ratio: float) -> Compositor:
        """What the canvas shows now (call on the GUI thread: it snapshots the layers)."""
        assert self.opened is not None
        canvas = self.canvas
        return view_compositor(
            self.opened.source,
            canvas.layers,
            canvas.viewport.transform(),
            (canvas.width(), canvas.height()),
            show_scale_bar=options.scale_bar and canvas.show_scale_bar,
            show_legend=options.legend and canvas.show_legend,
            caption=options.caption,
            pixel_ratio=pixel_ratio,
            typed_mpp=self._typed_mpp(),
            adjustment=canvas.adjustment,
            legend_corner=canvas.legend_corner,
        )

    def export_view(self) -> None:
        """Export the view at 1x, 2x or 4x the screen's *device* pixels (1x is what a
        HiDPI screen shows, pixel for pixel, like the clipboard copy)."""
        if self.opened is None or self.busy:
            return
        ratio = self.canvas.devicePixelRatioF()
        size = (round(self.canvas.width() * ratio), round(self.canvas.height() * ratio))
        dialog = FigureDialog(
            self.window,
            "Export view",
            region=None,
            mpp=self._mpp(),
            view_size=size,
        )
        if dialog.exec() != QDialog.DialogCode.Accepted:
            return
        path = self._ask_path("view")
        if path is not None:
            pixel_ratio = dialog.view_factor() * ratio
            self.write(self.view_compositor(dialog.options(), pixel_ratio), path)

    def export_region(self) -> None:
        """Drag the region on the slide, then choose the figure's options."""
        if self.opened is None or self.busy:
            return
        self.canvas.set_tool(
            RectangleTool(
                "figure-region",
                self._export_region_of,
                status_hint="Drag the region of the figure (Esc cancels)",
                colour=None,
            )
        )
        self.window.statusBar().showMessage("Drag the region of the figure (Esc cancels)", 8000)

    def _export_region_of(self, l0_region: Rect) -> None:
        opened = self.opened
        if opened is None:
            return
        dialog = FigureDialog(self.window, "Export region", region=l0_region, mpp=self._mpp())
        if dialog.exec() != QDialog.DialogCode.Accepted or not self._still_open(opened):
            return
        try:
            compositor = region_compositor(
                opened.source,
                self.canvas.layers,
                l0_region,
                l0_per_px=dialog.l0_per_px(),
                options=dialog.options(),
                typed_mpp=self._typed_mpp(),
                adjustment=self.canvas.adjustment,
            )
        except ExportError as exc:
            self._fail(str(exc))
            return
        width, height = compositor.width, compositor.height
        if is_large_figure(width, height) and not confirm_large_figure(self.window, width, height):
            self.window.statusBar().showMessage("Figure not exported", 6000)
            return
        path = self._ask_path("region")
        if path is not None and self._still_open(opened):
            self.write(compositor, path)

    def _still_open(self, opened: OpenedSlide) -> bool:
        """Whether ``opened`` is still the open slide after a dialog (another may have
        been opened meanwhile: its region or its handle is not this figure's)."""
        if self.opened is opened:
            return True
        self.window.statusBar().showMessage(
            f"Figure not exported: {opened.path.name} was closed meanwhile", 8000
        )
        return False

    def _ask_path(self, what: str) -> Path | None:
        """Where to save a figure of the ``what`` ("view", "region"): its suggested name
        says the slide and the models of the visible heatmaps."""
        assert self.opened is not None
        shown = (getattr(layer, "provenance", {}) for layer in self.canvas.layers if layer.visible)
        models = "+".join(model_names(shown))
        name = output_name(self.opened.path, models, what, suffix=".png")
        return ask_save_path(self.window, "Save figure", self.opened.path, name, FIGURE_FILTER)

    def write(self, compositor: Compositor, path: Path) -> None:
        """Write a figure on a background thread (progress and cancel in the status bar)."""
        self._cancel.clear()
        self._progress = (0, 0)
        self.progress_bar.setRange(0, 0)
        self.progress_bar.show()
        self.cancel_button.show()
        cancel = self._cancel
        end_reading = self._start_reading(compositor.scene.source)

        def progress(done: int, total: int) -> None:
            self._progress = (done, total)  # shown by the GUI thread's timer

        def work() -> ExportResult:
            return write_figure(compositor, path, progress=progress, cancelled=cancel.is_set)

        self.window.statusBar().showMessage(
            f"Exporting {compositor.width:,} x {compositor.height:,} px to {path.name}…"
        )
        self._progress_timer.start()

        def done(result: ExportResult) -> None:
            end_reading()
            self._done(result)

        def failed(message: str) -> None:
            end_reading()
            self._fail(message)

        try:
            self.background.call(work, done, failed, name="slidelens-export")
        except Exception as exc:  # no thread could start: nothing reads the slide
            failed(str(exc))

    def _show_progress(self) -> None:
        done, total = self._progress
        if total:
            self.progress_bar.setRange(0, total)
            self.progress_bar.setValue(done)

    def _finish_progress(self) -> None:
        self._progress_timer.stop()
        self.progress_bar.hide()
        self.cancel_button.hide()

    def _done(self, result: ExportResult) -> None:
        self._finish_progress()
        self.last_result = result
        self.last_error = None
        self.window.statusBar().showMessage(
            f"Saved {result.path.name} ({result.width:,} x {result.height:,} px"
            + (f", {result.um_per_px:.3g} µm/px" if result.um_per_px else "")
            + f") in {result.seconds:.1f} s",
            10000,
        )
        self.finished.emit(result)

    def _fail(self, message: str) -> None:
        self._finish_progress()
        self.last_error = message
        if self._cancel.is_set():
            self.window.statusBar().showMessage("Export cancelled; no file was written", 8000)
        else:
            show_warning(self.window, "Figure not exported", message)
        self.finished.emit(message)

    # -- clipboard ----------------------------------------------------------------------
    def copy_view(self) -> None:
        """Put exactly what the canvas shows on the clipboard (composed off the GUI thread)."""
        if self.opened is None:
            return
        compositor = self.view_compositor(FigureOptions(), self.canvas.devicePixelRatioF())
        end_reading = self._start_reading(compositor.scene.source)

        def failed(message: str) -> None:
            end_reading()
            self._fail(message)

        def done(rgb: np.ndarray) -> None:
            end_reading()
            h, w = rgb.shape[:2]
            data = np.ascontiguousarray(rgb)
            image = QImage(data.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()
            QGuiApplication.clipboard().setImage(image)
            self.window.statusBar().showMessage(f"Copied the view ({w} x {h} px)", 6000)
            self.finished.emit(image)

        try:
            self.background.call(compositor.compose, done, failed, name="slidelens-copy")
        except Exception as exc:  # no thread could start: nothing reads the slide
            failed(str(exc))
