"""Figures and tables of a :class:`~inference.evaluation.metrics.MetricsReport`: ROC and confusion
plots (PNG), the figures and the ROC curve as CSV.  The GUI and ``slidelens evaluate``
use the same functions.  This module depends on :mod:`inference.evaluation.metrics`;
metrics never imports it.

The files are read later, away from the slide: an :class:`EvaluationContext` (slide,
model, ground truth, threshold) given to the writers is written inside them, in the
metrics CSV as rows and on each PNG as a caption, the same words in both.

Plots are drawn with matplotlib's object API on an Agg canvas (no pyplot, no global
backend switch, safe off the GUI thread); :func:`roc_figure` and
:func:`confusion_figure` return the ``Figure`` for a panel to embed.  Every file is
written atomically (temporary sibling, then rename).  matplotlib is imported lazily.
"""

from __future__ import annotations

import csv
import io
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from inference.core.atomic_io import atomic_write_bytes, atomic_write_text
from inference.evaluation.metrics import FIGURES, MetricsReport

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: Default figure size (inches) and resolution of the written PNGs.
FIGURE_SIZE_IN = (4.6, 4.2)
PNG_DPI = 150
#: The plotted ROC curve is thinned to this many points (files and reports keep all).
ROC_PLOT_POINTS = 4000


#: Characters per line of a PNG's caption.
CAPTION_CHARS = 64


@dataclass(frozen=True)
class EvaluationContext:
    """What a metrics file is about: the ``slide`` and ``model`` (names), the ground
    ``truth`` (file name) and the ``threshold``, written inside the files so that they
    say it on their own.  :meth:`of` takes the truth and the threshold from a report."""

    slide: str
    model: str
    truth: str
    threshold: float

    @classmethod
    def of(cls, report: MetricsReport, *, slide: str, model: str) -> EvaluationContext:
        truth = report.truth_path.name if report.truth_path is not None else "ground truth"
        return cls(slide=slide, model=model, truth=truth, threshold=report.threshold)

    def caption(self) -> str:
        """One line naming all four, e.g.
        ``slide a.svs, model demo, truth a.mask.png, threshold 0.5``."""
        return (
            f"slide {self.slide}, model {self.model}, truth {self.truth}, "
            f"threshold {self.threshold:g}"
        )

    def rows(self) -> list[tuple[str, str, str]]:
        """``(key, label, value)`` rows for the metrics CSV (the threshold has its own)."""
        return [
            ("slide", "Slide", self.slide),
            ("model", "Model", self.model),
            ("truth", "Ground truth", self.truth),
        ]

    def check(self, report: MetricsReport) -> None:
        """:class:`ValueError` when the context's threshold is not the report's."""
        if abs(self.threshold - report.threshold) > 1e-9:
            raise ValueError(
                f"the context's threshold {self.threshold:g} is not the report's "
                f"{report.threshold:g}"
            )


def _new_figure(size_in: tuple[float, float]) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=size_in, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _caption(figure: Figure, report: MetricsReport, context: EvaluationContext | None) -> None:
    """Write the context under the figure (nothing without one)."""
    if context is None:
        return
    context.check(report)
    text = "\n".join(textwrap.wrap(context.caption(), CAPTION_CHARS))
    figure.supxlabel(text, fontsize="x-small", color="0.25")


def roc_figure(
    report: MetricsReport,
    *,
    size_in: tuple[float, float] = FIGURE_SIZE_IN,
    context: EvaluationContext | None = None,
) -> Figure:
    """The ROC curve with its AUC, the chance diagonal and the operating point at the
    report's threshold, captioned with ``context``.  When the ROC is undefined (one
    truth class) the axes say why."""
    figure = _new_figure(size_in)
    ax = figure.add_subplot()
    ax.plot([0, 1], [0, 1], linestyle="--", color="0.6", linewidth=1, label="chance")
    if len(report.roc):
        auc = "n/a" if report.auc is None else f"{report.auc:.3f}"
        curve = report.roc.thinned(ROC_PLOT_POINTS)
        ax.plot(
            curve.fpr,
            curve.tpr,
            color="tab:red",
            linewidth=1.8,
            label=f"{report.class_name} (AUC {auc})",
        )
        if report.fpr is not None and report.tpr is not None:
            ax.plot(
                [report.fpr],
                [report.tpr],
                marker="o",
                color="black",
                linestyle="none",
                label=f"threshold {report.threshold:g}",
            )
        ax.legend(loc="lower right", fontsize="small")
    else:
        ax.text(
            0.5,
            0.55,
            "ROC undefined:\nthe ground truth has only one class\nin the evaluated tissue",
            ha="center",
            va="center",
            fontsize="small",
        )
    ax.set_xlim(-0.01, 1.01)
    ax.set_ylim(-0.01, 1.01)
    ax.set_aspect("equal")
    ax.set_xlabel("False positive rate (1 - specificity)")
    ax.set_ylabel("True positive rate (sensitivity)")
    ax.set_title(
        f"ROC: {report.class_name}, {report.n_samples:,} tissue grid squares", fontsize="medium"
    )
    ax.grid(True, alpha=0.3)
    _caption(figure, report, context)
    return figure


def confusion_figure(
    report: MetricsReport,
    *,
    size_in: tuple[float, float] = FIGURE_SIZE_IN,
    context: EvaluationContext | None = None,
) -> Figure:
    """The 2 x 2 confusion matrix (rows truth, columns predicted), each cell with its
    count and its share of all samples, captioned with ``context``."""
    figure = _new_figure(size_in)
    ax = figure.add_subplot()
    matrix = report.confusion_matrix
    total = max(1, int(matrix.sum()))
    ax.imshow(matrix / total, cmap="Blues", vmin=0.0, vmax=1.0)
    names = ("TN", "FP"), ("FN", "TP")
    for row in range(2):
        for col in range(2):
            share = matrix[row, col] / total
            ax.text(
                col,
                row,
                f"{names[row][col]}\n{int(matrix[row, col]):,}\n{100 * share:.1f} %",
                ha="center",
                va="center",
                color="white" if share > 0.5 else "black",
                fontsize="small",
            )
    labels = report.confusion_labels
    ax.set_xticks([0, 1], labels=list(labels))
    ax.set_yticks([0, 1], labels=list(labels))
    ax.set_xlabel(f"Predicted (probability >= {report.threshold:g})")
    ax.set_ylabel("Ground truth")
    ax.set_title(f"Confusion: {report.class_name}", fontsize="medium")
    _caption(figure, report, context)
    return figure


def figure_png(figure: Figure, *, dpi: int = PNG_DPI) -> bytes:
    """A figure rendered as PNG bytes."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight", pad_inches=0.08)
    return buffer.getvalue()


def write_roc_png(
    path: str | Path,
    report: MetricsReport,
    context: EvaluationContext | None = None,
    *,
    dpi: int = PNG_DPI,
) -> Path:
    """Write :func:`roc_figure` (captioned with ``context``) as a PNG; return the path."""
    path = Path(path)
    atomic_write_bytes(path, figure_png(roc_figure(report, context=context), dpi=dpi))
    return path


def write_confusion_png(
    path: str | Path,
    report: MetricsReport,
    context: EvaluationContext | None = None,
    *,
    dpi: int = PNG_DPI,
) -> Path:
    """Write :func:`confusion_figure` (captioned with ``context``) as a PNG; return the
    path."""
    path = Path(path)
    atomic_write_bytes(path, figure_png(confusion_figure(report, context=context), dpi=dpi))
    return path


def csv_cell(value: float | int | str | None) -> str:
    """A figure as a CSV cell: empty for none, six significant digits for a float."""
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def metrics_rows(
    report: MetricsReport, context: EvaluationContext | None = None
) -> list[tuple[str, str, str]]:
    """``(key, label, value)`` rows of every figure and count, after the ``context``'s
    slide, model and truth; undefined values are ''."""
    rows: list[tuple[str, str, float | int | str | None]] = []
    if context is not None:
        context.check(report)
        rows += context.rows()
    rows += [
        ("class", "Positive class", report.class_name),
        ("threshold", "Threshold (probability >=)", report.threshold),
        ("n_samples", "Samples (tissue grid squares)", report.n_samples),
        ("tp", "True positives", report.tp),
        ("tn", "True negatives", report.tn),
        ("fp", "False positives", report.fp),
        ("fn", "False negatives", report.fn),
    ]
    rows += [(key, label, getattr(report, key)) for key, label in FIGURES]
    rows += [
        (f"excluded_{reason}", f"Excluded: {reason.replace('_', ' ')}", count)
        for reason, count in report.excluded.items()
    ]
    rows.append(("cell_l0_px", "Grid square side (level-0 px)", report.cell_l0_px))
    for name, area in (report.areas_mm2() or {}).items():
        rows.append((f"{name}_area_mm2", f"Area {name.replace('_', ' ')} (mm²)", area))
    return [(key, label, csv_cell(value)) for key, label, value in rows]


def write_metrics_csv(
    path: str | Path, report: MetricsReport, context: EvaluationContext | None = None
) -> Path:
    """Write ``metric,label,value`` rows (:func:`metrics_rows`, with ``context``);
    return the path."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["metric", "label", "value"])
    writer.writerows(metrics_rows(report, context))
    path = Path(path)
    atomic_write_text(path, buffer.getvalue())
    return path


def write_roc_csv(path: str | Path, report: MetricsReport) -> Path:
    """Write the ROC curve as ``threshold,fpr,tpr`` rows (first threshold ``inf``;
    only the header when the ROC is undefined); return the path."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["threshold", "fpr", "tpr"])
    roc = report.roc
    for threshold, fpr, tpr in zip(
        roc.thresholds.tolist(), roc.fpr.tolist(), roc.tpr.tolist(), strict=True
    ):
        writer.writerow([repr(threshold), repr(fpr), repr(tpr)])
    path = Path(path)
    atomic_write_text(path, buffer.getvalue())
    return path
