"""``slidelens evaluate SLIDE --results DIR --truth MASK|GEOJSON``: score a result against
ground truth.

Reads ``<stem>.result.npz`` that ``slidelens infer --out DIR`` wrote for SLIDE, loads
the ground truth (a mask image or QuPath GeoJSON), computes the slide's tissue mask and
prints the report of :mod:`inference.evaluation.metrics`: human-readable by default, one JSON
object with ``--json``.  ``--roc-png``, ``--confusion-png``, ``--csv`` and ``--roc-csv``
write figures and tables.  Any failure is one line on stderr naming the file and the
cause; the exit code (:mod:`inference.cli.exit_codes`) is 1 when a file cannot be read,
does not belong to the slide or cannot be written, 2 when an option names what the
files do not hold (a class, a GeoJSON class of a mask image) or is malformed.

A result of more than two classes, several slides, or a slide without ``--truth`` (its
``<stem>.mask.png`` and ``<stem>.truth.json`` are found beside it) get the class report
and the slide-level ``cohort`` section of :mod:`inference.cli.evaluate_classes`.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from inference.cli.args import fraction, parse_region
from inference.cli.evaluate_inputs import EvaluateError, check_run, load_result, model_name
from inference.cli.exit_codes import EXIT_OK, EXIT_USAGE

if TYPE_CHECKING:
    from inference.evaluation.metrics import MetricsReport
    from inference.evaluation.plots import EvaluationContext
    from inference.evaluation.truth import TruthMask

#: ``--json`` thins the ROC curve to at most this many points (the CSV has them all).
JSON_ROC_POINTS = 1000
#: Figures printed as decimals; the others are shares, printed in per cent.
DECIMAL_FIGURES = frozenset({"dice", "iou", "auc"})


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="compare a slide's inference result with ground truth (accuracy, Dice, AUC...)",
        description=(
            "Score the result 'slidelens infer --out DIR' wrote for SLIDE against a "
            "ground-truth mask image or GeoJSON, over tissue only, one sample per square of "
            "the result's grid: a patch, or a segmentation pixel (truth: at least half of "
            "the square's area).  Prints the figures; "
            "optionally writes ROC and confusion plots and CSV tables.  A result of more "
            "than two classes gets the class report (confusion matrix, accuracy, macro-F1, "
            "kappa, per-class AUC, Dice, IoU); several slides, each with <stem>.mask.png "
            "and <stem>.truth.json beside it, add a slide-level cohort section (grade "
            "kappa, accuracy and confusion)."
        ),
    )
    parser.add_argument("slides", nargs="+", type=Path, metavar="SLIDE", help="the slide file(s)")
    parser.add_argument(
        "--results", required=True, type=Path, metavar="DIR", help="slidelens infer --out folder"
    )
    parser.add_argument(
        "--truth",
        type=Path,
        metavar="MASK|GEOJSON",
        help="ground truth: mask image aligned to the slide, or GeoJSON polygons "
        "(default: <stem>.mask.png beside each slide)",
    )
    parser.add_argument(
        "--class",
        dest="positive_class",
        metavar="NAME",
        help="the model class scored as positive (default: the model's last class)",
    )
    parser.add_argument(
        "--truth-class",
        metavar="NAME",
        help="only GeoJSON features of this classification (default: all polygons)",
    )
    parser.add_argument(
        "--threshold",
        type=fraction,
        default=0.5,
        help="probability at or above which a grid square is predicted positive (default 0.5)",
    )
    parser.add_argument(
        "--region", type=parse_region, help="only grid squares centred in level-0 X,Y,W,H"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--roc-png", type=Path, metavar="FILE", help="write the ROC plot")
    parser.add_argument(
        "--confusion-png", type=Path, metavar="FILE", help="write the confusion matrix plot"
    )
    parser.add_argument(
        "--confusion-csv",
        type=Path,
        metavar="FILE",
        help="write the confusion matrix (counts and row shares) as CSV (class reports)",
    )
    parser.add_argument("--csv", type=Path, metavar="FILE", help="write the figures as CSV")
    parser.add_argument("--roc-csv", type=Path, metavar="FILE", help="write the ROC curve as CSV")
    parser.set_defaults(handler=evaluate_command)


def _truth(
    args: argparse.Namespace, dims: tuple[int, int], l0_origin: tuple[float, float]
) -> TruthMask:
    from inference.evaluation.truth import TruthError, load_truth

    is_geojson = args.truth.suffix.lower() in {".geojson", ".json"}
    if args.truth_class is not None and not is_geojson:
        raise EvaluateError(
            f"{args.truth.name}: --truth-class selects GeoJSON features; a mask image has none",
            EXIT_USAGE,
        )
    try:
        return load_truth(args.truth, dims, class_name=args.truth_class, l0_origin=l0_origin)
    except TruthError as exc:
        raise EvaluateError(str(exc)) from exc


def _report(args: argparse.Namespace) -> tuple[MetricsReport, list[str], str]:
    """The report, notes on the inputs, and the model's name."""
    from inference.engine.tissue import tissue_mask
    from inference.evaluation.metrics import MetricsError, evaluate, resolve_class
    from inference.slides import SlideError, open_slide

    try:
        source = open_slide(args.slide)
    except SlideError as exc:
        raise EvaluateError(str(exc)) from exc
    try:
        result, result_path = load_result(args.results, args.slide)
        notes = check_run(result_path, source)
        model = model_name(result_path)
        wanted = args.positive_class if args.positive_class is not None else -1
        try:
            class_index = resolve_class(result.class_names, wanted)
        except MetricsError as exc:
            raise EvaluateError(f"{result_path.name}: {exc}", EXIT_USAGE) from exc
        dims = source.info.dimensions
        truth = _truth(args, dims, source.info.l0_bounds_origin)
        try:
            report = evaluate(
                result,
                truth,
                tissue_mask(source),
                class_index,
                args.threshold,
                mpp=source.info.mpp,
                l0_region=args.region,
                l0_dimensions=dims,
            )
        except MetricsError as exc:
            message = str(exc)  # it names the truth file where that is at fault
            if not message.startswith(f"{truth.path.name}:"):
                message = f"{result_path.name}: {message}"
            raise EvaluateError(message) from exc
    except SlideError as exc:  # a tile the tissue mask needs could not be read
        raise EvaluateError(str(exc)) from exc
    finally:
        source.close()
    return report, notes, model


def _write_outputs(
    args: argparse.Namespace, report: MetricsReport, context: EvaluationContext
) -> list[Path]:
    """Write the files asked for; the metrics CSV and the PNGs name the ``context``."""
    from inference.evaluation.plots import (
        write_confusion_png,
        write_metrics_csv,
        write_roc_csv,
        write_roc_png,
    )

    jobs: tuple[tuple[Path | None, Callable[[Path], Path]], ...] = (
        (args.roc_png, lambda path: write_roc_png(path, report, context)),
        (args.confusion_png, lambda path: write_confusion_png(path, report, context)),
        (args.csv, lambda path: write_metrics_csv(path, report, context)),
        (args.roc_csv, lambda path: write_roc_csv(path, report)),
    )
    written = []
    for path, write in jobs:
        if path is None:
            continue
        try:
            written.append(write(path))
        except OSError as exc:
            raise EvaluateError(f"{path.name}: cannot write ({exc.strerror or exc})") from exc
    return written


def format_report(report: MetricsReport, slide: Path, model: str = "unknown model") -> str:
    """The human-readable report: a header, the summary line and a table of figures."""
    from inference.evaluation.metrics import FIGURES

    excluded = ", ".join(f"{n:,} {r.replace('_', ' ')}" for r, n in report.excluded.items())
    truth = report.truth_path.name if report.truth_path else "ground truth"
    cm = report.confusion_matrix
    neg, pos = report.confusion_labels
    head = [f"truth {neg}", f"truth {pos}", f"predicted {neg}", f"predicted {pos}"]
    w = max(len(h) for h in head) + 2
    lines = [
        f"{slide.name} ({model}) vs {truth}: class {report.class_name}, "
        f"threshold {report.threshold:g} "
        f"({report.task}, grid squares of {report.cell_l0_px:g} level-0 px)",
        report.summary(),
        "",
        f"samples: {report.n_samples:,} tissue grid squares ({report.n_positive:,} positive in the "
        f"truth); excluded: {excluded}",
        "",
        f"{'':<{w}}{head[2]:>{w}}{head[3]:>{w}}",
        f"{head[0]:<{w}}{cm[0, 0]:>{w},}{cm[0, 1]:>{w},}",
        f"{head[1]:<{w}}{cm[1, 0]:>{w},}{cm[1, 1]:>{w},}",
        "",
    ]
    label_width = max(len(label) for _, label in FIGURES)
    for key, label in FIGURES:
        value = getattr(report, key)
        if value is None:
            shown = "n/a"
        elif key in DECIMAL_FIGURES:
            shown = f"{value:.4f}"
        else:
            shown = f"{100 * value:.2f} %"
        lines.append(f"  {label:<{label_width}}  {shown}")
    areas = report.areas_mm2()
    if areas:
        lines.append(
            "  areas (mm²): "
            + ", ".join(f"{name.replace('_', ' ')} {value:.3f}" for name, value in areas.items())
        )
    lines += [f"note: {note}" for note in report.notes]
    return "\n".join(lines)


def evaluate_command(args: argparse.Namespace) -> int:
    """The ``evaluate`` handler: returns the exit code.  Several slides, a slide without
    ``--truth`` or a result of more than two classes get the class and cohort reports of
    :mod:`inference.cli.evaluate_classes`."""
    from inference.cli.evaluate_classes import class_evaluate_command, wants_class_report
    from inference.evaluation.plots import EvaluationContext

    if wants_class_report(args):
        return class_evaluate_command(args)
    args.slide = args.slides[0]

    try:
        report, notes, model = _report(args)
        context = EvaluationContext.of(report, slide=args.slide.name, model=model)
        written = _write_outputs(args, report, context)
    except EvaluateError as exc:
        print(f"slidelens evaluate: {exc}", file=sys.stderr)
        return exc.code
    if args.json:
        doc = report.to_dict(max_roc_points=JSON_ROC_POINTS)
        doc["slide"] = str(args.slide)
        doc["model"] = model
        doc["notes"] = [*doc["notes"], *notes]
        doc["written"] = [str(p) for p in written]
        print(json.dumps(doc, allow_nan=False))
    else:
        print(format_report(report, args.slide, model))
        for note in notes:
            print(f"note: {note}")
        for path in written:
            print(f"wrote {path}")
    return EXIT_OK
