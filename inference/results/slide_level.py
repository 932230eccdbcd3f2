"""Slide-level outputs: a few numbers per slide made from its patch results.

SlideLens's models are patch models; a study table needs one row per slide.  Contract:
:func:`slide_level_outputs` summarises a finished result over its computed (tissue)
patches, the same way for classification and segmentation (a segmentation patch's
probabilities are its mean over the patch):

* ``fraction_<class>``: the share of computed patches whose most probable class it is;
* ``max_prob_<last class>``: the highest probability of the last class (the class the
  heatmap shows, the "positive" class of a two-class model) in any patch.

With the ``grading`` a model's card declares (:class:`~inference.results.grading.GradingSpec`),
the slide's grade from its class map (:func:`~inference.results.grading.grade_class_map`,
the grade the slide report gives) is added: ``isup_grade`` (0-5), ``gleason_primary``
and ``gleason_secondary`` (0 without tumour).

A result without computed patches gives ``{}``.  Values are plain floats rounded to six
decimals (they go into CSV and JSON).
"""

from __future__ import annotations

import numpy as np

from inference.results.grading import GradingSpec, grade_class_map
from inference.results.store import InferenceResult

#: Digits kept in the table.
_DIGITS = 6


def slide_level_outputs(
    result: InferenceResult, grading: GradingSpec | None = None, *, threshold: float = 0.5
) -> dict[str, float]:
    """``{"fraction_<class>": ..., "max_prob_<last class>": ...}`` and, with ``grading``,
    the grade (see the module; ``threshold``: a one-output model's class map)."""
    computed = result.computed
    count = int(computed.sum())
    if count == 0:
        return {}
    probs = result.patch_probs[:, computed]  # (C, n)
    winners = np.argmax(probs, axis=0)
    outputs = {
        f"fraction_{name}": round(float(np.count_nonzero(winners == index)) / count, _DIGITS)
        for index, name in enumerate(result.class_names)
    }
    last = result.class_names[-1]
    outputs[f"max_prob_{last}"] = round(float(np.max(probs[-1])), _DIGITS)
    if grading is not None:
        from inference.results.class_map import ClassMap

        grade = grade_class_map(ClassMap.from_result(result, threshold=threshold), grading)
        outputs["isup_grade"] = float(grade.isup_grade)
        outputs["gleason_primary"] = float(grade.primary or 0)
        outputs["gleason_secondary"] = float(grade.secondary or 0)
    return outputs
