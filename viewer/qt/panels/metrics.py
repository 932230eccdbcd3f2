"""The metrics panel: how good is a heatmap on this slide, against a ground-truth layer?

Pick a heatmap layer, its positive class, a ground-truth layer and a threshold; the
panel shows accuracy, TP/TN/FP/FN rates, Dice, IoU and ROC AUC over the tissue (the
same numbers as ``slidelens evaluate``), a ROC curve and a confusion matrix, and
saves them as PNG and CSV.  Sampling the raster against the truth (the slow part)
runs off the GUI thread; moving the threshold only recounts.

A result of three or more classes gets the class report instead (as ``slidelens
evaluate`` gives it): the truth file is read again as class indices, the most likely
class decides (no positive class, no threshold), and the panel shows accuracy,
macro-F1, quadratic weighted kappa, a per-class table and the N x N confusion matrix
(:mod:`viewer.qt.panels.class_metrics`), and saves the per-class and confusion CSVs and
the confusion PNG.  The heatmap list names each result once, however many layers show it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from viewer.layers.base import Layer, LayerStack
from viewer.layers.heatmap import HeatmapLayer
from viewer.layers.masks import MaskLayer
from viewer.qt.background import BackgroundCalls
from viewer.qt.messages import show_warning
from viewer.qt.panels.class_metrics import (
    ClassComparer,
    ClassConfusionView,
    ClassFiguresView,
    format_value,
)
from viewer.qt.panels.class_metrics_work import (
    ClassComparison,
    choice_index,
    class_caption,
    heatmap_choices,
    result_snapshot,
    wants_class_report,
    write_class_files,
)
from viewer.qt.save_dialog import ask_save_path
from viewer.save_locations import model_names, output_name

if TYPE_CHECKING:
    from inference.engine.tissue import TissueMask
    from inference.evaluation.metrics import MetricsReport
    from inference.evaluation.multiclass import ClassReport, ClassSamples
    from inference.evaluation.plots import EvaluationContext
    from inference.evaluation.sampling import EvaluationSamples
    from inference.slides import SlideSource

#: Figures shown, as (label, report attribute, format).
FIGURES: tuple[tuple[str, str, str], ...] = (
    ("Mask area", "predicted_positive_fraction", "pct"),
    ("Truth area", "prevalence", "pct"),
    ("Accuracy", "accuracy", "pct"),
    ("TP rate (sensitivity)", "tpr", "pct"),
    ("TN rate (specificity)", "tnr", "pct"),
    ("FP rate", "fpr", "pct"),
    ("FN rate", "fnr", "pct"),
    ("Precision", "precision", "pct"),
    ("Dice", "dice", "num"),
    ("IoU", "iou", "num"),
    ("ROC AUC", "auc", "num"),
)


class MetricsPanel(QWidget):
    """Signals ``report_ready(report)`` after every recount (a
    :class:`~inference.evaluation.metrics.MetricsReport`, or in class mode a
    :class:`~inference.evaluation.multiclass.ClassReport`), ``plots_ready()`` when its
    plots are drawn.  ``report`` is the binary report, ``class_report`` the class one;
    only the current mode's is set."""

    report_ready = Signal(object)
    plots_ready = Signal()

    def __init__(self, layers: LayerStack, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.layers = layers
        self.source: SlideSource | None = None
        #: µm per level-0 pixel for areas: the slide's own, or one typed (:meth:`set_mpp`).
        self.mpp: float | None = None
        self.tissue: TissueMask | None = None
        self.samples: EvaluationSamples | None = None
        self.report: MetricsReport | None = None
        #: class mode (a result of 3+ classes): its samples and report
        self.class_mode = False
        self.class_samples: ClassSamples | None = None
        self.class_report: ClassReport | None = None
        self.last_error: str | None = None
        # (result, truth layer) of the comparison shown or under way
        self._compared: tuple[object, object] | None = None
        self.background = BackgroundCalls(self)
        self.class_comparer = ClassComparer(self.background)
        self._request = 0
        self._updating = False

        self.heatmap_combo = QComboBox()
        self.class_combo = QComboBox()
        self.truth_combo = QComboBox()
        # the classes first: the comparison reads the new heatmap's positive class
        self.heatmap_combo.currentIndexChanged.connect(self._fill_classes)
        for combo in (self.heatmap_combo, self.class_combo, self.truth_combo):
            combo.currentIndexChanged.connect(self._inputs_changed)
        self.threshold = QDoubleSpinBox()
        self.threshold.setRange(0.0, 1.0)
        self.threshold.setDecimals(2)
        self.threshold.setSingleStep(0.05)
        self.threshold.setValue(0.5)
        self.threshold_slider = QSlider(Qt.Orientation.Horizontal)
        self.threshold_slider.setRange(0, 100)
        self.threshold_slider.setValue(50)
        self.threshold_slider.valueChanged.connect(lambda v: self.threshold.setValue(v / 100))
        self.threshold.valueChanged.connect(self._threshold_changed)
        threshold_row = QHBoxLayout()
        threshold_row.addWidget(self.threshold_slider, 1)
        threshold_row.addWidget(self.threshold)
        self._recount_timer = QTimer(self)
        self._recount_timer.setSingleShot(True)
        self._recount_timer.setInterval(120)
        self._recount_timer.timeout.connect(self.recount)
        # a heatmap that grows while its job runs is compared again at most this often
        self._resample_timer = QTimer(self)
        self._resample_timer.setSingleShot(True)
        self._resample_timer.setInterval(1500)
        self._resample_timer.timeout.connect(self._inputs_changed)

        inputs = QFormLayout()
        inputs.addRow("Heatmap", self.heatmap_combo)
        inputs.addRow("Positive class", self.class_combo)
        inputs.addRow("Ground truth", self.truth_combo)
        inputs.addRow("Threshold", threshold_row)
        self._inputs, self._threshold_row = inputs, threshold_row

        self.status = QLabel("Load a ground truth (Analysis > Load ground truth) and run a model.")
        self.status.setWordWrap(True)
        self.figure_labels: dict[str, QLabel] = {}
        self.binary_figures = QWidget()
        grid = QGridLayout(self.binary_figures)
        grid.setContentsMargins(0, 0, 0, 0)
        for row, (label, attr, _kind) in enumerate(FIGURES):
            value = QLabel("–")
            value.setAlignment(Qt.AlignmentFlag.AlignRight)
            value.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            self.figure_labels[attr] = value
            grid.addWidget(QLabel(label), row // 2, 2 * (row % 2))
            grid.addWidget(value, row // 2, 2 * (row % 2) + 1)
        self.roc_view = QLabel()
        self.roc_view.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.confusion_view = QLabel()
        self.confusion_view.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.binary_plots = QWidget()
        plots = QHBoxLayout(self.binary_plots)
        plots.setContentsMargins(0, 0, 0, 0)
        plots.addWidget(self.roc_view)
        plots.addWidget(self.confusion_view)
        self.class_figures = ClassFiguresView()
        self.class_confusion = ClassConfusionView(self.background)
        self.class_confusion.plot_ready.connect(self.plots_ready)
        self.class_confusion.plot_failed.connect(self._plot_failed)
        self.save_button = QPushButton("Save PNG + CSV…")
        self.save_button.clicked.connect(self.choose_save)
        self.save_button.setEnabled(False)

        layout = QVBoxLayout(self)
        layout.addLayout(inputs)
        layout.addWidget(self.status)
        layout.addWidget(self.binary_figures)
        layout.addWidget(self.class_figures)
        # the button before the plots: it shows at the default window size
        layout.addWidget(self.save_button)
        layout.addWidget(self.binary_plots)
        layout.addWidget(self.class_confusion)
        layout.addStretch(1)
        self._show_mode(False)
        for signal in (layers.inserted, layers.removed):
            signal.connect(self._layers_changed)
        layers.layer_changed.connect(self._layer_changed)
        self._layers_changed()

    # -- inputs -----------------------------------------------------------------------
    def set_slide(self, source: SlideSource | None) -> None:
        """A new slide: its tissue mask is computed off the GUI thread when first needed;
        what was still being sampled or drawn for the previous one is dropped."""
        self.source = source
        self.mpp = source.info.mpp if source is not None else None
        self.tissue = None
        self.class_comparer.forget_truth()
        self._request += 1
        self.background.forget_pending()
        self._clear()

    def set_mpp(self, mpp: float | None) -> None:
        """Measure areas with this pixel size (e.g. one typed for a slide that states none)."""
        if mpp != self.mpp:
            self.mpp = mpp
            if self.class_mode:
                self._inputs_changed()  # tissue and truth are kept: only sampled again
            else:
                self.recount()

    def _layers_changed(self, *_: object) -> None:
        self._updating = True
        top_first = list(reversed(list(self.layers)))
        truths = [
            layer
            for layer in top_first
            if isinstance(layer, MaskLayer) and layer.provenance.get("kind") == "truth"
        ]
        for combo, listed in (
            (self.heatmap_combo, heatmap_choices(top_first)),
            (self.truth_combo, truths),
        ):
            current = combo.currentData()
            combo.clear()
            for layer in listed:
                combo.addItem(layer.name, layer)
            index = choice_index(listed, current)
            combo.setCurrentIndex(index if combo.count() else -1)
        self._updating = False
        self._fill_classes()
        # another layer of a result already compared (a class map, a probability) is not
        # a reason to compare it again
        heatmap, truth = self.heatmap_combo.currentData(), self.truth_combo.currentData()
        compared = self._compared
        result = getattr(heatmap, "result", None)
        if compared is None or compared[0] is not result or compared[1] is not truth:
            self._inputs_changed()

    def _layer_changed(self, layer: Layer, what: str) -> None:
        # a heatmap that grew (a job still running, or finished) is sampled again
        current = self.heatmap_combo.currentData()
        same = layer is current or (
            isinstance(layer, HeatmapLayer)
            and isinstance(current, HeatmapLayer)
            and layer.result is current.result
        )
        if what == "data" and same and not self._resample_timer.isActive():
            self._resample_timer.start()

    def _fill_classes(self, *_: object) -> None:
        layer = self.heatmap_combo.currentData()
        current = self.class_combo.currentText()
        # as it was: the layer lists may be being refilled (_layers_changed)
        updating, self._updating = self._updating, True
        self.class_combo.clear()
        if isinstance(layer, HeatmapLayer):
            self.class_combo.addItems(list(layer.class_names))
            index = self.class_combo.findText(current)
            self.class_combo.setCurrentIndex(index if index >= 0 else len(layer.class_names) - 1)
        self._updating = updating

    def _clear(self) -> None:
        self._compared = None
        self.samples = None
        self.report = None
        self.class_samples = None
        self.class_report = None
        for value in self.figure_labels.values():
            value.setText("–")
        self.roc_view.clear()
        self.confusion_view.clear()
        self.class_figures.clear()
        self.class_confusion.clear()
        self.save_button.setEnabled(False)

    def _show_mode(self, classes: bool) -> None:
        """Class mode (the most likely class decides) or binary (a positive class and a
        threshold): show the inputs and figures of that mode only."""
        self.class_mode = classes
        self._inputs.setRowVisible(self.class_combo, not classes)
        self._inputs.setRowVisible(self._threshold_row, not classes)
        self.threshold.setEnabled(not classes)
        self.threshold_slider.setEnabled(not classes)
        self.class_combo.setEnabled(not classes)
        for widget in (self.binary_figures, self.binary_plots):
            widget.setVisible(not classes)
        for widget in (self.class_figures, self.class_confusion):
            widget.setVisible(classes)

    def _inputs_changed(self, *_: object) -> None:
        if self._updating:
            return
        heatmap = self.heatmap_combo.currentData()
        truth = self.truth_combo.currentData()
        self._request += 1
        classes = isinstance(heatmap, HeatmapLayer) and wants_class_report(heatmap.class_names)
        if classes != self.class_mode:
            self._clear()
            self._show_mode(classes)
        if self.source is None or not isinstance(heatmap, HeatmapLayer) or truth is None:
            self._clear()
            self.status.setText(
                "Needs a heatmap layer and a ground-truth layer (Analysis > Load ground truth)."
            )
            return
        if heatmap.progress is not None:
            self.status.setText("The model is still running; the figures will follow it.")
        self._compared = (heatmap.result, truth)
        if classes:
            self._sample_classes(self._request, heatmap, truth)
        else:
            self._sample(self._request, heatmap, truth, self.class_combo.currentText())

    def _sample(self, request: int, heatmap: HeatmapLayer, truth: MaskLayer, cls: str) -> None:
        from inference.engine.tissue import tissue_mask
        from inference.evaluation.metrics import collect_samples
        from inference.evaluation.truth import TruthMask

        source = self.source
        assert source is not None
        result = result_snapshot(heatmap.result)
        truth_mask = TruthMask(
            truth.mask, truth.l0_per_px, Path(str(truth.provenance.get("source", "")))
        )
        known_tissue = self.tissue

        def work() -> tuple[Any, Any]:
            tissue = known_tissue if known_tissue is not None else tissue_mask(source)
            samples = collect_samples(
                result,
                truth_mask,
                tissue,
                cls or -1,
                l0_dimensions=source.info.dimensions,
            )
            return tissue, samples

        def done(value: tuple[Any, Any]) -> None:
            if request != self._request:
                return  # inputs changed meanwhile
            self.tissue, self.samples = value
            self.last_error = None
            self.recount()

        def failed(message: str) -> None:
            if request == self._request:
                self._fail(message)

        self.status.setText("Comparing with the ground truth…")
        self.background.call(work, done, failed, name="slidelens-metrics")

    def _sample_classes(self, request: int, heatmap: HeatmapLayer, truth: MaskLayer) -> None:
        """Compare a result of many classes with its truth file read as class indices,
        off the GUI thread; an answer for inputs changed meanwhile is dropped."""
        assert self.source is not None

        def done(comparison: ClassComparison) -> None:
            if request == self._request:
                self.tissue = comparison.tissue
                self.class_samples = comparison.samples
                self.last_error = None
                self._show_class_report(comparison.report)

        def failed(message: str) -> None:
            if request == self._request:
                self._fail(message)

        self.status.setText("Comparing the classes with the ground truth…")
        self.class_comparer.compare(
            self.source, heatmap, truth, self.tissue, self.mpp, done, failed
        )

    def _fail(self, message: str) -> None:
        self._clear()
        self.last_error = message
        self.status.setText(message)

    def _show_class_report(self, report: ClassReport) -> None:
        self.class_report = report
        self.class_figures.show_report(report)
        self.class_confusion.show_report(report)
        self.status.setText(report.summary())
        self.save_button.setEnabled(True)
        self.report_ready.emit(report)

    def _threshold_changed(self, value: float) -> None:
        self.threshold_slider.blockSignals(True)
        self.threshold_slider.setValue(round(value * 100))
        self.threshold_slider.blockSignals(False)
        self._recount_timer.start()

    # -- results ----------------------------------------------------------------------
    def recount(self) -> None:
        """Figures at the current threshold from the samples (fast; GUI thread)."""
        from inference.evaluation.metrics import compute_metrics

        if self.class_mode or self.samples is None or self.source is None:
            return
        report = compute_metrics(self.samples, self.threshold.value(), mpp=self.mpp)
        self.report = report
        for _label, attr, kind in FIGURES:
            self.figure_labels[attr].setText(format_value(getattr(report, attr), kind))
        self.status.setText(report.summary())
        self._show_plots(report)
        self.save_button.setEnabled(True)
        self.report_ready.emit(report)

    def _show_plots(self, report: MetricsReport) -> None:
        """Render the ROC curve and confusion matrix off the GUI thread (matplotlib)."""

        def work() -> tuple[bytes, bytes]:
            from inference.evaluation.plots import confusion_figure, figure_png, roc_figure

            return (
                figure_png(roc_figure(report, size_in=(3.0, 3.0)), dpi=72),
                figure_png(confusion_figure(report, size_in=(3.0, 3.0)), dpi=72),
            )

        def done(pngs: tuple[bytes, bytes]) -> None:
            if report is not self.report:
                return
            for view, png in zip((self.roc_view, self.confusion_view), pngs, strict=True):
                pixmap = QPixmap()
                pixmap.loadFromData(png)
                view.setPixmap(pixmap)
            self.plots_ready.emit()

        self.background.call(work, done, self._plot_failed, name="slidelens-plots")

    def _plot_failed(self, message: str) -> None:
        self.last_error = message
        self.status.setText(f"Plots failed: {message}")

    def _slide_path(self) -> Path | None:
        return self.source.info.path if self.source is not None else None

    def model_name(self) -> str:
        """The model of the compared heatmap, as its layer records it."""
        layer = self.heatmap_combo.currentData()
        provenance = getattr(layer, "provenance", {}) if layer is not None else {}
        names = model_names([provenance])
        return names[0] if names else (layer.name if isinstance(layer, Layer) else "model")

    def context(self) -> EvaluationContext | None:
        """What the saved files are about: slide, model, ground truth and threshold."""
        from inference.evaluation.plots import EvaluationContext

        slide = self._slide_path()
        if self.report is None or slide is None:
            return None
        return EvaluationContext.of(self.report, slide=slide.name, model=self.model_name())

    def choose_save(self) -> None:
        """Ask where to save, in the slide's folder (or where metrics were saved last),
        proposing ``<slide>.<model>.metrics.csv``."""
        if self.report is None and self.class_report is None:
            return
        slide = self._slide_path()
        name = output_name(slide, self.model_name(), "metrics", suffix=".csv")
        title = (
            "Save class metrics (CSV tables and the confusion PNG)"
            if self.class_report is not None
            else "Save metrics (PNG plots and CSV tables)"
        )
        path = ask_save_path(self, title, slide, name, "CSV (*.csv)")
        if path is not None:
            self.save(path)

    def save(self, csv_path: Path) -> list[Path]:
        """Write ``<stem>.csv`` (figures), ``<stem>.roc.csv``, ``<stem>.roc.png`` and
        ``<stem>.confusion.png`` beside ``csv_path``; the metrics CSV and the PNGs name
        the slide, the model, the ground truth and the threshold (:meth:`context`).  In
        class mode: ``<stem>.csv`` (per-class figures), ``<stem>.confusion.csv`` and
        ``<stem>.confusion.png``, captioned with the slide, model and truth.  Returns
        the paths written; nothing (and a warning) when one cannot be written."""
        from inference.evaluation.plots import (
            write_confusion_png,
            write_metrics_csv,
            write_roc_csv,
            write_roc_png,
        )

        stem = csv_path.with_suffix("")
        try:
            if self.class_report is not None:
                caption = class_caption(self.class_report, self._slide_path(), self.model_name())
                return write_class_files(csv_path, self.class_report, caption)
            assert self.report is not None
            context = self.context()
            return [
                write_metrics_csv(stem.with_suffix(".csv"), self.report, context),
                write_roc_csv(Path(f"{stem}.roc.csv"), self.report),
                write_roc_png(Path(f"{stem}.roc.png"), self.report, context),
                write_confusion_png(Path(f"{stem}.confusion.png"), self.report, context),
            ]
        except OSError as exc:
            self.last_error = f"{csv_path}: {exc}"
            show_warning(self, "Metrics not saved", self.last_error)
            return []
