"""Slide-level agreement over a cohort: predicted against true ISUP grade groups.

Each slide contributes one :class:`SlideGrade`: the grade group its result gives (the
slide report of :mod:`inference.results.slide_report`) and the true one (its
``<stem>.truth.json``, e.g. written by ``slidelens synth --kind prostate``).
:func:`cohort_summary` reports, over the slides that have both:

* ``quadratic_weighted_kappa``: Cohen's kappa with quadratic weights over grade groups
  0-5 (scikit-learn's ``cohen_kappa_score(weights="quadratic")``, PANDA's score);
  ``None`` when every slide has one and the same grade in truth and prediction;
* ``grade_accuracy``: the share of slides graded exactly right;
* ``grade_confusion_matrix``: 6 x 6 counts, rows truth, columns predicted, grade groups
  0-5 (scikit-learn's ``confusion_matrix``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from inference.evaluation.multiclass import quadratic_weighted_kappa

#: The ISUP grade groups (0: no tumour).
GRADE_GROUPS: tuple[int, ...] = (0, 1, 2, 3, 4, 5)


@dataclass(frozen=True)
class SlideGrade:
    """One slide's true and predicted grade group and Gleason score (``None`` when
    unknown or without tumour)."""

    slide: str
    truth_isup: int
    predicted_isup: int
    truth_score: str | None = None
    predicted_score: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "slide": self.slide,
            "truth_isup_grade": self.truth_isup,
            "predicted_isup_grade": self.predicted_isup,
            "truth_gleason_score": self.truth_score,
            "predicted_gleason_score": self.predicted_score,
        }


def read_truth_grade(path: Path) -> tuple[int, str | None]:
    """``(isup_grade, gleason_score)`` of a ``<stem>.truth.json``.  Raises ``ValueError``
    naming the file when it has no ISUP grade group 0-5."""
    try:
        doc = json.loads(Path(path).read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"{Path(path).name}: not a readable truth file ({exc})") from exc
    grade = doc.get("isup_grade") if isinstance(doc, dict) else None
    if isinstance(grade, bool) or not isinstance(grade, int) or grade not in GRADE_GROUPS:
        raise ValueError(f"{Path(path).name}: no 'isup_grade' of 0-5 (got {grade!r})")
    score = doc.get("gleason_score")
    return grade, score if isinstance(score, str) else None


def cohort_summary(grades: Sequence[SlideGrade]) -> dict[str, Any]:
    """The cohort's agreement (see the module docstring) as plain JSON values."""
    from sklearn.metrics import confusion_matrix

    truth = np.array([g.truth_isup for g in grades], np.int64)
    predicted = np.array([g.predicted_isup for g in grades], np.int64)
    labels = list(GRADE_GROUPS)
    matrix = (
        confusion_matrix(truth, predicted, labels=labels).astype(np.int64)
        if len(grades)
        else np.zeros((len(labels), len(labels)), np.int64)
    )
    return {
        "n_slides": len(grades),
        "quadratic_weighted_kappa": quadratic_weighted_kappa(truth, predicted, labels),
        "grade_accuracy": float((truth == predicted).mean()) if len(grades) else None,
        "grade_confusion_matrix": {
            "rows": "truth",
            "columns": "predicted",
            "labels": labels,
            "matrix": matrix.tolist(),
        },
        "slides": [g.to_dict() for g in grades],
    }
