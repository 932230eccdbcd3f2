"""The Metrics panel's class report of a result of many classes: the comparison run
off the GUI thread (:class:`ClassComparer`), overall accuracy, macro-F1 and quadratic
weighted kappa with a per-class table (:class:`ClassFiguresView`), and the N x N
confusion matrix, drawn off the GUI thread (:class:`ClassConfusionView`) as ``slidelens
evaluate`` draws it (:mod:`inference.evaluation.class_plots`)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QGridLayout,
    QHeaderView,
    QLabel,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from viewer.layers.heatmap import HeatmapLayer
from viewer.layers.masks import MaskLayer
from viewer.qt.background import BackgroundCalls
from viewer.qt.panels.class_metrics_work import ClassComparison, compare_classes, result_snapshot

if TYPE_CHECKING:
    from inference.engine.tissue import TissueMask
    from inference.evaluation.multiclass import ClassReport
    from inference.evaluation.truth import TruthMask
    from inference.slides import SlideSource

#: Overall figures shown, as (label, report attribute, format).
OVERALL: tuple[tuple[str, str, str], ...] = (
    ("Accuracy", "accuracy", "pct"),
    ("Macro-F1", "macro_f1", "num"),
    ("Quadratic weighted kappa", "quadratic_weighted_kappa", "num"),
)
#: Per-class columns after the class name and its truth area, as (header, attribute).
CLASS_COLUMNS: tuple[tuple[str, str], ...] = (
    ("AUC", "auc"),
    ("Dice", "dice"),
    ("IoU", "iou"),
    ("Sensitivity", "sensitivity"),
    ("Specificity", "specificity"),
)
TABLE_HEADERS: tuple[str, ...] = ("Class", "Truth area", *(h for h, _ in CLASS_COLUMNS))
#: Size (inches) and resolution of the confusion plot shown in the panel.
PLOT_SIZE_IN = (4.6, 4.2)
PLOT_DPI = 72


def format_value(value: float | None, kind: str) -> str:
    """A figure as shown: ``"pct"`` as a percentage, else three decimals; ``"n/a"``
    when undefined."""
    if value is None:
        return "n/a"
    return f"{100 * value:.1f} %" if kind == "pct" else f"{value:.3f}"


class ClassComparer:
    """Runs :func:`compare_classes` on ``background``, keeping the class truth it read
    for the next comparison of the same truth layer and model (a running job's result
    is compared again and again)."""

    def __init__(self, background: BackgroundCalls) -> None:
        self.background = background
        self._truth: tuple[tuple[object, ...], TruthMask] | None = None

    def forget_truth(self) -> None:
        """Read the truth again next time (another slide)."""
        self._truth = None

    def compare(
        self,
        source: SlideSource,
        heatmap: HeatmapLayer,
        truth: MaskLayer,
        tissue: TissueMask | None,
        mpp: float | None,
        done: Callable[[ClassComparison], None],
        failed: Callable[[str], None],
    ) -> None:
        """Compare ``heatmap``'s result (a copy of it as it is now) with the file
        ``truth`` was loaded from; ``done(comparison)`` or ``failed(message)`` is called
        on the GUI thread (at once when ``truth`` records no file)."""
        path = truth.provenance.get("source")
        if not isinstance(path, str) or not path:
            failed(f"{truth.name}: no file recorded; load the ground truth from a file")
            return
        result = result_snapshot(heatmap.result)
        provenance = dict(heatmap.provenance)
        key = (truth, path, tuple(heatmap.class_names), provenance.get("model_folder"))
        known = self._truth[1] if self._truth is not None and self._truth[0] == key else None

        def work() -> ClassComparison:
            return compare_classes(
                source, result, Path(path), provenance, tissue=tissue, truth=known, mpp=mpp
            )

        def answered(comparison: ClassComparison) -> None:
            self._truth = (key, comparison.truth)
            done(comparison)

        self.background.call(work, answered, failed, name="slidelens-class-metrics")


class ClassFiguresView(QWidget):
    """The overall figures and the per-class table of one :class:`ClassReport`."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.figure_labels: dict[str, QLabel] = {}
        grid = QGridLayout()
        grid.setContentsMargins(0, 0, 0, 0)
        for row, (label, attr, _kind) in enumerate(OVERALL):
            value = QLabel("–")
            value.setAlignment(Qt.AlignmentFlag.AlignRight)
            value.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            self.figure_labels[attr] = value
            grid.addWidget(QLabel(label), row, 0)
            grid.addWidget(value, row, 1)
        self.table = QTableWidget(0, len(TABLE_HEADERS))
        self.table.setHorizontalHeaderLabels(list(TABLE_HEADERS))
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(grid)
        layout.addWidget(self.table)

    def show_report(self, report: ClassReport) -> None:
        """Fill the figures and one table row per class (truth area: the class's share
        of the scored tissue grid squares)."""
        for _label, attr, kind in OVERALL:
            self.figure_labels[attr].setText(format_value(getattr(report, attr), kind))
        total = report.n_samples
        self.table.setRowCount(len(report.per_class))
        for row, figures in enumerate(report.per_class):
            share = figures.truth_count / total if total else None
            cells = [figures.name, format_value(share, "pct")]
            cells += [format_value(getattr(figures, attr), "num") for _h, attr in CLASS_COLUMNS]
            for col, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if col:
                    item.setTextAlignment(
                        Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
                    )
                self.table.setItem(row, col, item)
        self._fit_rows()

    def clear(self) -> None:
        for value in self.figure_labels.values():
            value.setText("–")
        self.table.setRowCount(0)
        self._fit_rows()

    def cell_text(self, row: int, column: str) -> str:
        """The text shown in ``row`` under the header ``column``."""
        item = self.table.item(row, TABLE_HEADERS.index(column))
        return item.text() if item is not None else ""

    def _fit_rows(self) -> None:
        # every row shown: the panel scrolls as a whole, not the table
        height = self.table.horizontalHeader().height() + 2 * self.table.frameWidth()
        height += sum(self.table.rowHeight(r) for r in range(self.table.rowCount()))
        self.table.setFixedHeight(height)


class ClassConfusionView(QLabel):
    """The confusion matrix of the last report shown, rendered on ``background``; a
    drawing for a report replaced meanwhile is dropped.  Signals ``plot_ready()`` when
    a drawing is shown and ``plot_failed(message)``."""

    plot_ready = Signal()
    plot_failed = Signal(str)

    def __init__(self, background: BackgroundCalls, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.background = background
        self.report: ClassReport | None = None

    def show_report(self, report: ClassReport) -> None:
        self.report = report

        def work() -> bytes:
            from inference.evaluation.class_plots import class_confusion_figure
            from inference.evaluation.plots import figure_png

            figure = class_confusion_figure(report, size_in=PLOT_SIZE_IN)
            return figure_png(figure, dpi=PLOT_DPI)

        def done(png: bytes) -> None:
            if report is not self.report:
                return
            pixmap = QPixmap()
            pixmap.loadFromData(png)
            self.setPixmap(pixmap)
            self.plot_ready.emit()

        def failed(message: str) -> None:
            if report is self.report:
                self.plot_failed.emit(message)

        self.background.call(work, done, failed, name="slidelens-class-plot")

    def clear(self) -> None:
        self.report = None
        super().clear()
