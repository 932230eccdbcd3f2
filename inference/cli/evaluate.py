"""``slidelens evaluate SLIDE --results DIR --truth MASK|GEOJSON``: score a result against
ground truth.

Reads ``<stem>.result.npz`` that ``slidelens infer --out DIR`` wrote for SLIDE, loads
the ground truth (a mask image or QuPath GeoJSON), computes the slide's tissue mask and
prints the report of :mod:`inference.evaluation.metrics`: human-readable by default, one JSON
object with ``--json``.  ``--roc-png``, ``--confusion-png``, ``--csv`` and ``--roc-csv``
write figures and tables.  Any failure is one line on stderr naming the file and the
cause, with exit code 1 (argparse's own usage errors exit 2).
"""

from __future__ import annotations

import argparse
import json
import sys
import zipfile
import zlib
from pathlib import Path
from typing import TYPE_CHECKING

from inference.cli.args import fraction, parse_region

if TYPE_CHECKING:
    from inference.evaluation.metrics import MetricsReport
    from inference.evaluation.truth import TruthMask
    from inference.results.store import InferenceResult
    from inference.slides import SlideSource

#: Exit codes.
EXIT_OK, EXIT_FAILED = 0, 1
#: ``--json`` thins the ROC curve to at most this many points (the CSV has them all).
JSON_ROC_POINTS = 1000
#: Figures printed as decimals; the others are shares, printed in per cent.
DECIMAL_FIGURES = frozenset({"dice", "iou", "auc"})


class EvaluateError(Exception):
    """A failure reported as one line (the message names the file and the cause)."""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="compare a slide's inference result with ground truth (accuracy, Dice, AUC...)",
        description=(
            "Score the result 'slidelens infer --out DIR' wrote for SLIDE against a "
            "ground-truth mask image or GeoJSON, over tissue only, one sample per result "
            "cell (truth: at least half of the cell's area).  Prints the figures; "
            "optionally writes ROC and confusion plots and CSV tables."
        ),
    )
    parser.add_argument("slide", type=Path, metavar="SLIDE", help="the slide file")
    parser.add_argument(
        "--results", required=True, type=Path, metavar="DIR", help="slidelens infer --out folder"
    )
    parser.add_argument(
        "--truth",
        required=True,
        type=Path,
        metavar="MASK|GEOJSON",
        help="ground truth: mask image aligned to the slide, or GeoJSON polygons",
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
        help="probability at or above which a cell is predicted positive (default 0.5)",
    )
    parser.add_argument("--region", type=parse_region, help="only cells centred in level-0 X,Y,W,H")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--roc-png", type=Path, metavar="FILE", help="write the ROC plot")
    parser.add_argument(
        "--confusion-png", type=Path, metavar="FILE", help="write the confusion matrix plot"
    )
    parser.add_argument("--csv", type=Path, metavar="FILE", help="write the figures as CSV")
    parser.add_argument("--roc-csv", type=Path, metavar="FILE", help="write the ROC curve as CSV")
    parser.set_defaults(handler=evaluate_command)


def _load_result(results_dir: Path, slide: Path) -> tuple[InferenceResult, Path]:
    from inference.results.exports import find_result, read_result_npz

    if not results_dir.is_dir():
        raise EvaluateError(f"{results_dir}: no such results folder")
    try:
        path = find_result(results_dir, slide)
    except FileNotFoundError as exc:
        raise EvaluateError(str(exc)) from exc
    damaged = f"{path.name}: not a readable SlideLens result file"
    # checked first: numpy leaks the open file when np.load meets a damaged archive
    if not zipfile.is_zipfile(path):
        raise EvaluateError(f"{damaged} (not an .npz archive; run slidelens infer --force)")
    try:
        return read_result_npz(path), path
    except ValueError as exc:
        raise EvaluateError(str(exc)) from exc
    except (zipfile.BadZipFile, EOFError, zlib.error) as exc:
        raise EvaluateError(f"{damaged} ({exc}; run slidelens infer --force)") from exc


def _check_run(result_path: Path, source: SlideSource) -> list[str]:
    """Compare the run JSON beside a result with the slide; return notes, raise when the
    result is of a slide of other dimensions."""
    run_json = result_path.with_name(result_path.name.removesuffix(".result.npz") + ".run.json")
    try:
        doc = json.loads(run_json.read_text("utf-8"))
        slide_doc = doc["slide"]
    except (OSError, ValueError, KeyError, TypeError):
        return [f"{run_json.name} missing or unreadable; the result's slide was not checked"]
    info = source.info
    dims = slide_doc.get("dimensions") if isinstance(slide_doc, dict) else None
    if isinstance(dims, list) and tuple(dims) != tuple(info.dimensions):
        raise EvaluateError(
            f"{result_path.name}: computed for a slide of {dims[0]} x {dims[1]} px, but "
            f"{info.path.name} is "
            f"{info.dimensions[0]} x {info.dimensions[1]}; these are not its results"
        )
    if isinstance(slide_doc, dict) and slide_doc.get("source_id") not in (None, info.source_id):
        return [f"{result_path.name} was computed from a file with other content than this slide"]
    return []


def _truth(args: argparse.Namespace, dims: tuple[int, int]) -> TruthMask:
    from inference.evaluation.truth import TruthError, load_truth

    is_geojson = args.truth.suffix.lower() in {".geojson", ".json"}
    if args.truth_class is not None and not is_geojson:
        raise EvaluateError(
            f"{args.truth.name}: --truth-class selects GeoJSON features; a mask image has none"
        )
    try:
        return load_truth(args.truth, dims, class_name=args.truth_class)
    except TruthError as exc:
        raise EvaluateError(str(exc)) from exc


def _report(args: argparse.Namespace) -> tuple[MetricsReport, list[str]]:
    from inference.engine.tissue import tissue_mask
    from inference.evaluation.metrics import MetricsError, evaluate, resolve_class
    from inference.slides import SlideError, open_slide

    try:
        source = open_slide(args.slide)
    except SlideError as exc:
        raise EvaluateError(str(exc)) from exc
    try:
        result, result_path = _load_result(args.results, args.slide)
        notes = _check_run(result_path, source)
        wanted = args.positive_class if args.positive_class is not None else -1
        try:
            class_index = resolve_class(result.class_names, wanted)
        except MetricsError as exc:
            raise EvaluateError(f"{result_path.name}: {exc}") from exc
        dims = source.info.dimensions
        truth = _truth(args, dims)
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
    return report, notes


def _write_outputs(args: argparse.Namespace, report: MetricsReport) -> list[Path]:
    from inference.evaluation.plots import (
        write_confusion_png,
        write_metrics_csv,
        write_roc_csv,
        write_roc_png,
    )

    jobs = (
        (args.roc_png, write_roc_png),
        (args.confusion_png, write_confusion_png),
        (args.csv, write_metrics_csv),
        (args.roc_csv, write_roc_csv),
    )
    written = []
    for path, write in jobs:
        if path is None:
            continue
        try:
            written.append(write(path, report))
        except OSError as exc:
            raise EvaluateError(f"{path.name}: cannot write ({exc.strerror or exc})") from exc
    return written


def format_report(report: MetricsReport, slide: Path) -> str:
    """The human-readable report: a header, the summary line and a table of figures."""
    from inference.evaluation.metrics import FIGURES

    excluded = ", ".join(f"{n:,} {r.replace('_', ' ')}" for r, n in report.excluded.items())
    truth = report.truth_path.name if report.truth_path else "ground truth"
    cm = report.confusion_matrix
    neg, pos = report.confusion_labels
    head = [f"truth {neg}", f"truth {pos}", f"predicted {neg}", f"predicted {pos}"]
    w = max(len(h) for h in head) + 2
    lines = [
        f"{slide.name} vs {truth}: class {report.class_name}, threshold {report.threshold:g} "
        f"({report.task}, cells of {report.cell_l0_px:g} level-0 px)",
        report.summary(),
        "",
        f"samples: {report.n_samples:,} tissue cells ({report.n_positive:,} positive in the "
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
    """The ``evaluate`` handler: returns the exit code."""
    try:
        report, notes = _report(args)
        written = _write_outputs(args, report)
    except EvaluateError as exc:
        print(f"slidelens evaluate: {exc}", file=sys.stderr)
        return EXIT_FAILED
    if args.json:
        doc = report.to_dict(max_roc_points=JSON_ROC_POINTS)
        doc["slide"] = str(args.slide)
        doc["notes"] = [*doc["notes"], *notes]
        doc["written"] = [str(p) for p in written]
        print(json.dumps(doc, allow_nan=False))
    else:
        print(format_report(report, args.slide))
        for note in notes:
            print(f"note: {note}")
        for path in written:
            print(f"wrote {path}")
    return EXIT_OK
