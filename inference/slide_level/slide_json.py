"""The slide-level answer in ``<stem>.slide.json``, beside the slide report's other keys.

Contract: :func:`write_slide_answer` adds ``slide_label``, ``slide_probabilities`` and
``aggregation`` (:meth:`~inference.slide_level.answer.SlideAnswer.slide_keys`) to the
slide report at ``path``: a report already there (the grading keys written for the same
run) keeps every other key; without one, the general report of the result
(:func:`~inference.results.slide_report.slide_report`) is written first.  The file is
replaced atomically.  :func:`inference.evaluation.slide_labels.read_predicted_label`
reads the answer back (for cohort evaluation).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from inference.results.slide_report import (
    read_slide_report,
    slide_report,
    write_slide_report,
)
from inference.results.store import InferenceResult
from inference.slide_level.answer import SlideAnswer

#: The keys this module adds.
SLIDE_KEYS = ("slide_label", "slide_probabilities", "aggregation")


def write_slide_answer(
    path: Path,
    answer: SlideAnswer,
    result: InferenceResult,
    *,
    mpp: float | None,
    slide: str | None = None,
    model: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Add the answer's keys to the report at ``path`` (see the module); returns it."""
    path = Path(path)
    try:
        report = read_slide_report(path) if path.is_file() else None
    except ValueError:
        report = None  # not a report (an older run's, damaged): written afresh
    if report is None:
        report = slide_report(result, mpp=mpp, slide=slide, model=model)
    report.update(answer.slide_keys())
    write_slide_report(path, report)
    return report
