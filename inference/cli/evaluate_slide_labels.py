"""``slidelens evaluate``'s slide-label keys: a slide's predicted label against its truth.

:func:`slide_label_of` pairs the answer in ``<stem>.slide.json`` of the results folder
(written by ``slidelens infer`` with a slide-level head or an aggregating card) with the
``slide_label`` of ``<stem>.truth.json`` beside the slide; the cohort's keys are
:func:`inference.evaluation.slide_labels.slide_label_summary`.  A slide without either
contributes nothing; a note says why when it has one but not the other.
"""

from __future__ import annotations

from pathlib import Path

from inference.cli.evaluate_inputs import EvaluateError
from inference.evaluation.slide_labels import SlideLabel, read_predicted_label, read_truth_label


def slide_label_of(results_dir: Path, slide: Path) -> tuple[SlideLabel | None, list[str]]:
    """The slide's label pair (``None`` when it lacks one side) and notes.  Raises
    :class:`~inference.cli.evaluate_inputs.EvaluateError` for an unreadable file."""
    from inference.results.exports import find_result
    from inference.slides.synth.writer import truth_json_path

    try:
        result = find_result(results_dir, slide)
    except FileNotFoundError:
        return None, []
    report = result.with_name(result.name.removesuffix(".result.npz") + ".slide.json")
    truth_path = truth_json_path(slide)
    try:
        predicted = read_predicted_label(report) if report.is_file() else None
        truth = read_truth_label(truth_path) if truth_path.is_file() else None
    except ValueError as exc:
        raise EvaluateError(str(exc)) from exc
    if predicted is None:
        return None, []
    if truth is None:
        return None, [
            f"{report.name} has a slide label but {truth_path.name} gives none "
            "('slide_label'); the slide label is not scored"
        ]
    label, probabilities = predicted
    return SlideLabel(slide.name, truth, label, probabilities), []
