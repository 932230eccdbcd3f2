"""``slidelens evaluate`` for many classes and many slides: the class report and the cohort.

:func:`wants_class_report` decides: several slides, a slide without ``--truth``, or a
result of more than two classes come here; one slide with ``--truth`` and a result of
one or two classes keeps the binary report of :mod:`inference.cli.evaluate` unchanged.

Per slide (:func:`evaluate_slide`):

* the truth is ``--truth`` (one slide only) or found beside the slide: ``<stem>.mask.png``,
  else ``<stem>.geojson`` (what ``slidelens synth`` writes);
* a result of more than two classes is scored by
  :mod:`inference.evaluation.multiclass` against the truth read as class indices
  (:func:`inference.evaluation.class_truth.load_class_truth`, with the card's
  ``slidelens.truth_classes``); ``--class NAME`` scores that class alone, binary, the
  truth positive where it is that class; a result of one or two classes gets the
  binary report;
* a grading model's slide grade (:func:`inference.results.slide_report.slide_report`, from
  the card recorded in ``<stem>.run.json``) is compared with ``<stem>.truth.json`` beside
  the slide when there is one.

The slides' grades make the ``cohort`` section (:func:`inference.evaluation.cohort.cohort_summary`:
quadratic weighted kappa, grade accuracy, grade confusion matrix); slide-level answers
(``<stem>.slide.json``'s ``slide_label``) against ``slide_label`` in ``<stem>.truth.json``
add the ``slide_label_*`` keys (:mod:`inference.cli.evaluate_slide_labels`: slide-level
AUC and accuracy).  With ``--json`` one
slide prints its report (with ``cohort`` when it has a true grade); several print
``{"slides": [...], "cohort": {...}, "failed": [...]}``.  A slide that fails is reported
on stderr and the others go on; the exit code is then that failure's.
"""

from __future__ import annotations

import argparse
import json
import sys
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from inference.cli.evaluate_inputs import (
    EvaluateError,
    check_run,
    load_result,
    model_name,
    run_doc,
)
from inference.cli.exit_codes import EXIT_OK, EXIT_USAGE

if TYPE_CHECKING:
    from inference.evaluation.cohort import SlideGrade
    from inference.evaluation.multiclass import ClassReport
    from inference.evaluation.truth import TruthMask
    from inference.results.store import InferenceResult

#: ``--json`` thins a binary report's ROC curve to at most this many points.
JSON_ROC_POINTS = 1000
#: Options that write one slide's files.
_FILE_OPTIONS = ("roc_png", "confusion_png", "csv", "roc_csv", "confusion_csv")


def _result_classes(results_dir: Path, slide: Path) -> int | None:
    """How many classes the result of ``slide`` has (``None`` when it cannot be read:
    the caller's own reading reports why)."""
    import numpy as np

    from inference.results.exports import find_result

    try:
        path = find_result(results_dir, slide)
        # checked first: numpy leaks the open file when np.load meets a damaged archive
        if not zipfile.is_zipfile(path):
            return None
        with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as data:
            meta = json.loads(data["meta_json"].tobytes().decode())
        return len(meta["class_names"])
    except Exception:  # unreadable here is reported by the report that reads it
        return None


def wants_class_report(args: argparse.Namespace) -> bool:
    """Whether ``args`` ask for the class or cohort report (see the module)."""
    if len(args.slides) > 1 or args.truth is None or args.confusion_csv is not None:
        return True
    classes = _result_classes(args.results, args.slides[0])
    return classes is not None and classes > 2


def truth_beside(slide: Path) -> Path:
    """The ground truth found beside a slide: ``<stem>.mask.png``, else
    ``<stem>.geojson``.  Raises :class:`EvaluateError` when neither is there."""
    from inference.slides.synth.writer import truth_paths

    mask, geojson = truth_paths(slide)
    for path in (mask, geojson):
        if path.is_file():
            return path
    raise EvaluateError(
        f"{slide.name}: no ground truth beside it (looked for {mask.name} and "
        f"{geojson.name}); give --truth MASK|GEOJSON"
    )


def _check_options(args: argparse.Namespace) -> None:
    several = len(args.slides) > 1
    if several and args.truth is not None:
        raise EvaluateError(
            "--truth names one slide's ground truth; with several slides each one's "
            "<stem>.mask.png is found beside it",
            EXIT_USAGE,
        )
    asked = [f"--{name.replace('_', '-')}" for name in _FILE_OPTIONS if getattr(args, name)]
    if several and asked:
        raise EvaluateError(
            f"{', '.join(asked)} write one slide's files; give one SLIDE", EXIT_USAGE
        )


def _class_truth(
    path: Path,
    dims: tuple[int, int],
    result: InferenceResult,
    card: dict[str, Any],
    l0_origin: tuple[float, float] = (0.0, 0.0),
) -> TruthMask:
    from inference.evaluation.class_truth import load_class_truth
    from inference.evaluation.truth import TruthError

    sl = card.get("slidelens") if isinstance(card.get("slidelens"), dict) else {}
    mapping = sl.get("truth_classes") if isinstance(sl, dict) else None
    try:
        return load_class_truth(
            path,
            dims,
            result.class_names,
            truth_classes=mapping if isinstance(mapping, dict) else None,
            l0_origin=l0_origin,
        )
    except TruthError as exc:
        raise EvaluateError(str(exc)) from exc


def _binary_truth(
    args: argparse.Namespace,
    path: Path,
    dims: tuple[int, int],
    result: InferenceResult,
    class_index: int,
    card: dict[str, Any],
    l0_origin: tuple[float, float] = (0.0, 0.0),
) -> TruthMask:
    """The truth of a binary report: as :mod:`inference.cli.evaluate` reads it for a
    result of two classes; positive where the truth is ``class_index`` for more."""
    from dataclasses import replace

    from inference.evaluation.truth import TruthError, load_truth

    is_geojson = path.suffix.lower() in {".geojson", ".json"}
    if args.truth_class is not None and not is_geojson:
        raise EvaluateError(
            f"{path.name}: --truth-class selects GeoJSON features; a mask image has none",
            EXIT_USAGE,
        )
    if result.num_classes <= 2 or args.truth_class is not None:
        try:
            return load_truth(path, dims, class_name=args.truth_class, l0_origin=l0_origin)
        except TruthError as exc:
            raise EvaluateError(str(exc)) from exc
    truth = _class_truth(path, dims, result, card, l0_origin)
    positive = truth.label_image == class_index
    name = result.class_names[class_index]
    return replace(truth, mask=positive, labels=None, note=f"positive: truth class {name}")


def _grade(
    result: InferenceResult, slide: Path, card: dict[str, Any], mpp: float | None
) -> tuple[dict[str, Any] | None, SlideGrade | None, list[str]]:
    """The slide report's grade, and the slide's grade against ``<stem>.truth.json``."""
    from inference.evaluation.cohort import SlideGrade, read_truth_grade
    from inference.results.grading import GradingError, GradingSpec
    from inference.results.slide_report import slide_report
    from inference.slides.synth.writer import truth_json_path

    try:
        grading = GradingSpec.from_card(card)
    except GradingError as exc:
        return None, None, [f"the model's grading cannot be used: {exc}"]
    if grading is None:
        return None, None, []
    sl = card.get("slidelens") if isinstance(card.get("slidelens"), dict) else {}
    threshold = float(sl.get("threshold", 0.5)) if isinstance(sl, dict) else 0.5
    report = slide_report(result, mpp=mpp, grading=grading, threshold=threshold)
    keys = ("isup_grade", "gleason_score", "gleason_primary", "gleason_secondary")
    predicted = {k: report[k] for k in (*keys, "pattern_fraction_of_tumour", "tumour_fraction")}
    doc: dict[str, Any] = {"predicted": predicted, "truth": None}
    truth_path = truth_json_path(slide)
    if not truth_path.is_file():
        return doc, None, [f"no {truth_path.name} beside the slide; its grade is not scored"]
    try:
        isup, score = read_truth_grade(truth_path)
    except ValueError as exc:
        raise EvaluateError(str(exc)) from exc
    doc["truth"] = {"isup_grade": isup, "gleason_score": score, "file": truth_path.name}
    grade = SlideGrade(slide.name, isup, int(report["isup_grade"]), score, report["gleason_score"])
    return doc, grade, []


def evaluate_slide(
    args: argparse.Namespace, slide: Path
) -> tuple[dict[str, Any], ClassReport | Any, SlideGrade | None, str]:
    """One slide's report document, the report itself (a class report, or the binary
    :class:`~inference.evaluation.metrics.MetricsReport`), its grade (``None`` without
    a grading model or a true grade) and the model's name.  Raises
    :class:`EvaluateError`."""
    from inference.engine.tissue import tissue_mask
    from inference.evaluation.metrics import MetricsError, evaluate, resolve_class
    from inference.evaluation.multiclass import evaluate_classes
    from inference.slides import SlideError, open_slide

    try:
        source = open_slide(slide)
    except SlideError as exc:
        raise EvaluateError(str(exc)) from exc
    try:
        result, result_path = load_result(args.results, slide)
        notes = check_run(result_path, source)
        model = model_name(result_path)
        run = run_doc(result_path) or {}
        card = run.get("model", {}).get("card") if isinstance(run.get("model"), dict) else None
        card = card if isinstance(card, dict) else {}
        slide_doc = run.get("slide") if isinstance(run.get("slide"), dict) else {}
        mpp = slide_doc.get("mpp_used") if isinstance(slide_doc, dict) else None
        mpp = float(mpp) if isinstance(mpp, int | float) else source.info.mpp
        dims = source.info.dimensions
        origin = source.info.l0_bounds_origin  # GeoJSON truth counts from the bounds
        truth_path = args.truth if args.truth is not None else truth_beside(slide)
        tissue = tissue_mask(source)
        report: Any
        try:
            if result.num_classes > 2 and args.positive_class is None:
                truth = _class_truth(truth_path, dims, result, card, origin)
                report = evaluate_classes(
                    result, truth, tissue, mpp=mpp, l0_region=args.region, l0_dimensions=dims
                )
                doc = report.to_dict()
            else:
                wanted = args.positive_class if args.positive_class is not None else -1
                try:
                    index = resolve_class(result.class_names, wanted)
                except MetricsError as exc:
                    raise EvaluateError(f"{result_path.name}: {exc}", EXIT_USAGE) from exc
                truth = _binary_truth(args, truth_path, dims, result, index, card, origin)
                report = evaluate(
                    result,
                    truth,
                    tissue,
                    index,
                    args.threshold,
                    mpp=mpp,
                    l0_region=args.region,
                    l0_dimensions=dims,
                )
                doc = report.to_dict(max_roc_points=JSON_ROC_POINTS)
        except MetricsError as exc:
            message = str(exc)
            if not message.startswith(f"{truth_path.name}:"):
                message = f"{result_path.name}: {message}"
            raise EvaluateError(message) from exc
        grade_doc, grade, grade_notes = _grade(result, slide, card, mpp)
    except SlideError as exc:
        raise EvaluateError(str(exc)) from exc
    finally:
        source.close()
    doc["slide"] = str(slide)
    doc["model"] = model
    doc["grade"] = grade_doc
    doc["notes"] = [*doc["notes"], *notes, *grade_notes]
    return doc, report, grade, model


def _write_files(args: argparse.Namespace, report: Any, slide: Path, model: str) -> list[Path]:
    """The files asked for, for one slide's report (binary or class)."""
    from inference.evaluation.class_plots import (
        write_class_confusion_csv,
        write_class_confusion_png,
        write_class_metrics_csv,
    )
    from inference.evaluation.multiclass import ClassReport
    from inference.evaluation.plots import (
        EvaluationContext,
        write_confusion_png,
        write_metrics_csv,
        write_roc_csv,
        write_roc_png,
    )

    written: list[Path] = []
    jobs: list[tuple[Path, Any]] = []
    if isinstance(report, ClassReport):
        truth = report.truth_path.name if report.truth_path else "ground truth"
        caption = f"slide {slide.name}, model {model}, truth {truth}"
        for option in ("roc_png", "roc_csv"):
            if getattr(args, option):
                raise EvaluateError(
                    f"--{option.replace('_', '-')}: a class report has per-class AUCs, not "
                    "one ROC curve; use --class NAME for one class's ROC",
                    EXIT_USAGE,
                )
        if args.confusion_png:
            jobs.append(
                (
                    args.confusion_png,
                    lambda p: write_class_confusion_png(p, report, caption=caption),
                )
            )
        if args.confusion_csv:
            jobs.append(
                (
                    args.confusion_csv,
                    lambda p: write_class_confusion_csv(p, report, caption=caption),
                )
            )
        if args.csv:
            jobs.append((args.csv, lambda p: write_class_metrics_csv(p, report, caption=caption)))
    else:
        if args.confusion_csv:
            raise EvaluateError(
                "--confusion-csv is the class report's; a binary report writes its 2 x 2 "
                "counts in --csv",
                EXIT_USAGE,
            )
        context = EvaluationContext.of(report, slide=slide.name, model=model)
        if args.roc_png:
            jobs.append((args.roc_png, lambda p: write_roc_png(p, report, context)))
        if args.confusion_png:
            jobs.append((args.confusion_png, lambda p: write_confusion_png(p, report, context)))
        if args.csv:
            jobs.append((args.csv, lambda p: write_metrics_csv(p, report, context)))
        if args.roc_csv:
            jobs.append((args.roc_csv, lambda p: write_roc_csv(p, report)))
    for path, write in jobs:
        try:
            written.append(write(path))
        except OSError as exc:
            raise EvaluateError(f"{path.name}: cannot write ({exc.strerror or exc})") from exc
    return written


def format_class_report(report: ClassReport, slide: Path, model: str) -> str:
    """The human-readable class report: header, summary, per-class table, confusion."""
    truth = report.truth_path.name if report.truth_path else "ground truth"
    names = list(report.class_names)
    width = max(10, *(len(n) for n in names)) + 2

    def num(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.3f}"

    lines = [
        f"{slide.name} ({model}) vs {truth}: {len(names)} classes ({report.task}, grid "
        f"squares of {report.cell_l0_px:g} level-0 px)",
        report.summary(),
        "",
        f"{'class':<{width}}{'truth':>8}{'pred':>8}{'sens':>8}{'spec':>8}{'dice':>8}"
        f"{'iou':>8}{'auc':>8}",
    ]
    for c in report.per_class:
        lines.append(
            f"{c.name:<{width}}{c.truth_count:>8,}{c.predicted_count:>8,}{num(c.sensitivity):>8}"
            f"{num(c.specificity):>8}{num(c.dice):>8}{num(c.iou):>8}{num(c.auc):>8}"
        )
    lines += ["", "confusion (rows truth, columns predicted):"]
    lines.append(" " * width + "".join(f"{n[:9]:>10}" for n in names))
    for name, row in zip(names, report.confusion.tolist(), strict=True):
        lines.append(f"{name:<{width}}" + "".join(f"{v:>10,}" for v in row))
    return "\n".join(lines)


def format_cohort(cohort: dict[str, Any]) -> str:
    """The human-readable cohort section."""
    kappa = cohort["quadratic_weighted_kappa"]
    accuracy = cohort["grade_accuracy"]
    lines = [
        f"cohort: {cohort['n_slides']} slides, quadratic weighted kappa "
        f"{'n/a' if kappa is None else f'{kappa:.3f}'}, grade accuracy "
        f"{'n/a' if accuracy is None else f'{100 * accuracy:.1f} %'}",
        "grade confusion (rows true ISUP grade group, columns predicted):",
        "     " + "".join(f"{g:>5}" for g in cohort["grade_confusion_matrix"]["labels"]),
    ]
    for grade, row in zip(
        cohort["grade_confusion_matrix"]["labels"],
        cohort["grade_confusion_matrix"]["matrix"],
        strict=True,
    ):
        lines.append(f"{grade:>5}" + "".join(f"{v:>5}" for v in row))
    return "\n".join(lines)


def class_evaluate_command(args: argparse.Namespace) -> int:
    """Evaluate every slide of ``args`` (see the module); return the exit code."""
    from inference.evaluation.cohort import cohort_summary
    from inference.evaluation.multiclass import ClassReport

    try:
        _check_options(args)
    except EvaluateError as exc:
        print(f"slidelens evaluate: {exc}", file=sys.stderr)
        return exc.code
    from inference.cli.evaluate_slide_labels import slide_label_of
    from inference.evaluation.slide_labels import (
        SlideLabel,
        format_slide_labels,
        slide_label_summary,
    )

    docs: list[dict[str, Any]] = []
    grades: list[SlideGrade] = []
    labels: list[SlideLabel] = []  # slide-level answers against <stem>.truth.json
    failed: list[dict[str, str]] = []
    code = EXIT_OK
    texts: list[str] = []
    for slide in args.slides:
        try:
            doc, report, grade, model = evaluate_slide(args, slide)
            written = _write_files(args, report, slide, model)
            label, label_notes = slide_label_of(args.results, slide)
        except EvaluateError as exc:
            print(f"slidelens evaluate: {exc}", file=sys.stderr)
            failed.append({"slide": str(slide), "error": str(exc)})
            code = code or exc.code
            continue
        doc["written"] = [str(p) for p in written]
        docs.append(doc)
        if grade is not None:
            grades.append(grade)
        doc["slide_label"] = label.to_dict() if label is not None else None
        doc["notes"] = [*doc["notes"], *label_notes]
        if label is not None:
            labels.append(label)
        if not args.json:
            text = (
                format_class_report(report, slide, model)
                if isinstance(report, ClassReport)
                else f"{slide.name} ({model}): {report.summary()}"
            )
            if doc["grade"] is not None:
                predicted, truth = doc["grade"]["predicted"], doc["grade"]["truth"]
                line = (
                    f"grade: ISUP {predicted['isup_grade']} "
                    f"(Gleason {predicted['gleason_score'] or 'none'})"
                )
                if truth is not None:
                    line += (
                        f"; truth ISUP {truth['isup_grade']} "
                        f"(Gleason {truth['gleason_score'] or 'none'})"
                    )
                text += "\n" + line
            text += "".join(f"\nnote: {note}" for note in doc["notes"])
            text += "".join(f"\nwrote {path}" for path in written)
            texts.append(text)
    cohort = cohort_summary(grades) if grades else None
    if labels:
        cohort = {**(cohort or {}), **slide_label_summary(labels)}
    if args.json:
        if len(args.slides) == 1 and docs:
            out: dict[str, Any] = {**docs[0], "cohort": cohort}
        else:
            out = {"slides": docs, "cohort": cohort, "failed": failed}
        print(json.dumps(out, allow_nan=False))
    else:
        print("\n\n".join(texts))
        if cohort is not None and grades:
            print("\n" + format_cohort(cohort))
        if cohort is not None and labels:
            print("\n" + format_slide_labels(cohort))
    return code
