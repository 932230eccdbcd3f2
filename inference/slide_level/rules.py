"""Rule aggregators: a slide's label from its stored patch probabilities, without a model.

Contract: :func:`apply_rule` turns the probabilities ``(n, C)`` of a slide's computed
patches into per-class scores ``s`` (each in 0..1) by one rule of
:data:`~inference.slide_level.spec.RULES`:

* ``mean``: the mean probability of each class over the patches;
* ``max``: the highest probability of each class in any patch;
* ``top_k_mean``: the mean of each class's ``k`` highest probabilities (all when fewer);
* ``quantile``: each class's ``q`` quantile (linear interpolation, NumPy's default);
* ``area_fraction``: the share of patches whose probability of the class is at least
  ``patch_threshold``;
* ``majority``: the share of patches whose most probable class it is.

The label: with a positive class (the spec's ``positive_class``, or the last class of a
one- or two-class model), that class when its score reaches ``decision_threshold``,
else the best-scoring other class (``no <class>`` for a one-class model); the slide
probabilities are then ``s_pos`` for the positive class and ``1 - s_pos`` for the
other.  Without one (three or more classes), the label is the best-scoring class and
the probabilities are the scores divided by their sum.  The raw scores go into the
answer's ``aggregation`` record.  No torch.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from inference.slide_level.answer import SlideAnswer
from inference.slide_level.spec import AggregationSpec


class RuleError(ValueError):
    """A rule cannot be applied (no patches, a positive class the model lacks)."""


def rule_scores(probs: np.ndarray, spec: AggregationSpec) -> np.ndarray:
    """``(C,)`` float64 per-class scores of the ``(n, C)`` probabilities (see the module)."""
    p = np.asarray(probs, np.float64)
    if p.ndim != 2 or len(p) == 0:
        raise RuleError("no computed patches to aggregate")
    if spec.type == "mean":
        return p.mean(axis=0)
    if spec.type == "max":
        return p.max(axis=0)
    if spec.type == "top_k_mean":
        k = min(spec.k, len(p))
        return np.sort(p, axis=0)[-k:].mean(axis=0)
    if spec.type == "quantile":
        return np.quantile(p, spec.q, axis=0)
    if spec.type == "area_fraction":
        return (p >= spec.patch_threshold).mean(axis=0)
    if spec.type == "majority":
        winners = np.argmax(p, axis=1)
        return np.bincount(winners, minlength=p.shape[1]) / len(p)
    raise RuleError(f"{spec.type!r} is not a rule")


def positive_class(class_names: Sequence[str], spec: AggregationSpec) -> int | None:
    """The index of the class whose score decides, or ``None`` (see the module)."""
    if spec.positive_class is not None:
        if spec.positive_class not in class_names:
            raise RuleError(
                f"positive_class {spec.positive_class!r} is not a class of the model "
                f"({', '.join(class_names)})"
            )
        return list(class_names).index(spec.positive_class)
    return len(class_names) - 1 if len(class_names) <= 2 else None


def apply_rule(
    probs: np.ndarray, p_ij: np.ndarray, class_names: Sequence[str], spec: AggregationSpec
) -> SlideAnswer:
    """The slide's answer by ``spec``'s rule over the patches ``p_ij`` (see the module)."""
    names = tuple(class_names)
    scores = rule_scores(probs, spec)
    pos = positive_class(names, spec)
    p = np.asarray(probs, np.float32)
    if pos is None:
        total = float(scores.sum())
        probabilities = scores / total if total > 0 else np.full(len(names), 1.0 / len(names))
        label_index = int(np.argmax(scores))
        out_names = names
        label = names[label_index]
        decider = label_index
    else:
        s_pos = float(scores[pos])
        if len(names) == 1:
            out_names = (f"no {names[0]}", names[0])
            probabilities = np.array([1.0 - s_pos, s_pos])
            label = names[0] if s_pos >= spec.decision_threshold else out_names[0]
        else:
            others = [i for i in range(len(names)) if i != pos]
            other = max(others, key=lambda i: scores[i])
            out_names = names
            probabilities = np.zeros(len(names))
            probabilities[pos] = s_pos
            probabilities[other] = 1.0 - s_pos
            label = names[pos] if s_pos >= spec.decision_threshold else names[other]
        decider = pos
    record = {
        **spec.to_dict(),
        "positive_class": names[pos] if pos is not None else None,
        "scores": {name: round(float(v), 6) for name, v in zip(names, scores, strict=True)},
    }
    return SlideAnswer(
        label=label,
        class_names=out_names,
        probabilities=np.asarray(probabilities, np.float64),
        aggregation=record,
        p_ij=np.asarray(p_ij, np.int32),
        maps=p[:, decider][None, :],
        map_names=(names[decider],),
        map_kind="probability",
        ranking=p[:, decider],
    )
