"""Slide-level labels over a cohort: the predicted slide label against the true one.

Each slide contributes one :class:`SlideLabel`: the answer ``slidelens infer`` wrote into
``<stem>.slide.json`` (``slide_label``, ``slide_probabilities``; see
:mod:`inference.slide_level.slide_json`) and the true label, the ``slide_label`` key of
``<stem>.truth.json`` beside the slide.  :func:`slide_label_summary` gives the keys the
``cohort`` section of ``slidelens evaluate`` adds, over the slides that have both:

* ``slide_label_slides``: how many;
* ``slide_label_accuracy``: the share whose predicted label is the true one;
* ``slide_label_auc``: with two slide classes, the ROC AUC of the probability of the
  positive class (the second class of the answer, e.g. ``tumour``; named in
  ``slide_label_positive_class``); with more, the mean of each class's one-vs-rest AUC
  over the classes present and absent in truth; ``None`` when every slide has the same
  true label;
* ``slide_labels``: the per-slide rows.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from inference.evaluation.roc import roc_auc


@dataclass(frozen=True)
class SlideLabel:
    """One slide's true and predicted label, and the predicted probabilities."""

    slide: str
    truth: str
    predicted: str
    probabilities: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        return {
            "slide": self.slide,
            "truth_slide_label": self.truth,
            "predicted_slide_label": self.predicted,
            "slide_probabilities": dict(self.probabilities),
        }


def read_predicted_label(path: Path) -> tuple[str, dict[str, float]] | None:
    """``(slide_label, slide_probabilities)`` of a slide report (``None`` when it holds
    no slide-level answer).  Raises ``ValueError`` naming an unreadable file."""
    try:
        doc = json.loads(Path(path).read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"{Path(path).name}: not a readable slide report ({exc})") from exc
    label = doc.get("slide_label") if isinstance(doc, dict) else None
    probabilities = doc.get("slide_probabilities") if isinstance(doc, dict) else None
    if not isinstance(label, str) or not isinstance(probabilities, dict):
        return None
    return label, {str(k): float(v) for k, v in probabilities.items()}


def read_truth_label(path: Path) -> str | None:
    """The ``slide_label`` of a ``<stem>.truth.json`` (``None`` when it has none).
    Raises ``ValueError`` naming an unreadable file."""
    try:
        doc = json.loads(Path(path).read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"{Path(path).name}: not a readable truth file ({exc})") from exc
    label = doc.get("slide_label") if isinstance(doc, dict) else None
    return label if isinstance(label, str) and label else None


def slide_label_summary(labels: Sequence[SlideLabel]) -> dict[str, Any]:
    """The cohort keys of the slide labels (see the module docstring)."""
    classes = list(labels[0].probabilities) if labels else []
    truth = np.array([s.truth for s in labels])
    predicted = np.array([s.predicted for s in labels])
    auc: float | None = None
    positive: str | None = None
    if len(classes) == 2:
        positive = classes[1]
        scores = np.array([s.probabilities.get(positive, 0.0) for s in labels])
        auc = roc_auc(scores, truth == positive)
    elif len(classes) > 2:
        aucs = [
            roc_auc(np.array([s.probabilities.get(c, 0.0) for s in labels]), truth == c)
            for c in classes
        ]
        known = [a for a in aucs if a is not None]
        auc = float(np.mean(known)) if known else None
    return {
        "slide_label_slides": len(labels),
        "slide_label_accuracy": float((truth == predicted).mean()) if len(labels) else None,
        "slide_label_auc": auc,
        "slide_label_positive_class": positive,
        "slide_labels": [s.to_dict() for s in labels],
    }


def format_slide_labels(cohort: dict[str, Any]) -> str:
    """The human-readable line of the slide-label keys."""
    auc, accuracy = cohort["slide_label_auc"], cohort["slide_label_accuracy"]
    positive = cohort.get("slide_label_positive_class")
    return (
        f"slide labels: {cohort['slide_label_slides']} slides, AUC "
        f"{'n/a' if auc is None else f'{auc:.3f}'}"
        f"{f' (positive class {positive})' if positive else ''}, accuracy "
        f"{'n/a' if accuracy is None else f'{100 * accuracy:.1f} %'}"
    )
