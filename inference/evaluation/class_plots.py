"""Figures and tables of an N-class :class:`~inference.evaluation.multiclass.ClassReport`:
the confusion matrix as a plot (PNG) and as CSV, and the per-class figures as CSV.  The
viewer and ``slidelens evaluate`` use the same functions.

Plots use matplotlib's object API on an Agg canvas (safe off the GUI thread, imported
lazily), as :mod:`inference.evaluation.plots` does; every file is written atomically.
An optional ``caption`` (e.g. "slide a.tiff, model m, truth a.mask.png") is written under
the plot and as the first row of the CSVs, so the files say what they are about.
"""

from __future__ import annotations

import csv
import io
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from inference.core.atomic_io import atomic_write_bytes, atomic_write_text
from inference.evaluation.multiclass import ClassReport
from inference.evaluation.plots import PNG_DPI, csv_cell, figure_png

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: Characters per line of a caption.
_CAPTION_CHARS = 72


def class_confusion_figure(
    report: ClassReport, *, caption: str | None = None, size_in: tuple[float, float] | None = None
) -> Figure:
    """The ``C x C`` confusion matrix (rows truth, columns predicted), coloured by each
    row's share; every square shows its count and its share of the row."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    count = len(report.class_names)
    side = max(4.2, 1.0 + 0.85 * count)
    figure = Figure(figsize=size_in or (side + 0.6, side), layout="constrained")
    FigureCanvasAgg(figure)
    ax = figure.add_subplot()
    shares = np.array(
        [[np.nan if v is None else v for v in row] for row in report.confusion_normalised],
        np.float64,
    )
    ax.imshow(np.nan_to_num(shares, nan=0.0), cmap="Blues", vmin=0.0, vmax=1.0)
    for row in range(count):
        for col in range(count):
            share = shares[row, col]
            text = f"{int(report.confusion[row, col]):,}"
            if np.isfinite(share):
                text += f"\n{100 * share:.0f} %"
            ax.text(
                col,
                row,
                text,
                ha="center",
                va="center",
                fontsize="x-small",
                color="white" if np.isfinite(share) and share > 0.5 else "black",
            )
    names = list(report.class_names)
    ax.set_xticks(range(count), labels=names, rotation=45, ha="right")
    ax.set_yticks(range(count), labels=names)
    ax.set_xlabel("Predicted (most likely class)")
    ax.set_ylabel("Ground truth")
    ax.set_title(
        f"Confusion: {count} classes, {report.n_samples:,} tissue grid squares",
        fontsize="medium",
    )
    if caption:
        text = "\n".join(textwrap.wrap(caption, _CAPTION_CHARS))
        figure.supxlabel(text, fontsize="x-small", color="0.25")
    return figure


def write_class_confusion_png(
    path: str | Path, report: ClassReport, *, caption: str | None = None, dpi: int = PNG_DPI
) -> Path:
    """Write :func:`class_confusion_figure` as a PNG; return the path."""
    path = Path(path)
    figure = class_confusion_figure(report, caption=caption)
    atomic_write_bytes(path, figure_png(figure, dpi=dpi))
    return path


def write_class_confusion_csv(
    path: str | Path, report: ClassReport, *, caption: str | None = None
) -> Path:
    """Write the confusion matrix as CSV: ``table,truth,<class>...`` rows, first the
    counts (``table`` = ``count``), then each row's shares (``row_share``; empty for a
    class the truth does not hold); return the path."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    if caption:
        writer.writerow([f"# {caption}"])
    names = list(report.class_names)
    writer.writerow(["table", "truth", *names])
    for name, row in zip(names, report.confusion.tolist(), strict=True):
        writer.writerow(["count", name, *row])
    for name, shares in zip(names, report.confusion_normalised, strict=True):
        writer.writerow(["row_share", name, *(csv_cell(v) for v in shares)])
    path = Path(path)
    atomic_write_text(path, buffer.getvalue())
    return path


#: The per-class columns of :func:`write_class_metrics_csv`.
CLASS_COLUMNS = (
    "sensitivity",
    "specificity",
    "precision",
    "dice",
    "iou",
    "auc",
)


def write_class_metrics_csv(
    path: str | Path, report: ClassReport, *, caption: str | None = None
) -> Path:
    """Write one row per class (``class``, truth and predicted grid squares, then
    :data:`CLASS_COLUMNS`) and then the overall figures as ``overall`` rows (``metric``
    in the ``class`` column's place); undefined values are empty; return the path."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    if caption:
        writer.writerow([f"# {caption}"])
    writer.writerow(["class", "truth_squares", "predicted_squares", *CLASS_COLUMNS])
    for figures in report.per_class:
        values = [getattr(figures, column) for column in CLASS_COLUMNS]
        writer.writerow(
            [
                figures.name,
                figures.truth_count,
                figures.predicted_count,
                *(csv_cell(v) for v in values),
            ]
        )
    for name in ("accuracy", "macro_f1", "quadratic_weighted_kappa"):
        writer.writerow([f"overall:{name}", "", "", csv_cell(getattr(report, name))])
    path = Path(path)
    atomic_write_text(path, buffer.getvalue())
    return path
