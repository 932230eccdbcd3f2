"""How a slide-level answer is made: the ``slidelens.aggregation`` object of a card.

A patch model's card may declare it (``slidelens.aggregation``); a slide-level head's
folder declares it by its WSInfer-MIL config (:mod:`inference.slide_level.head_card`).
Keys (every one optional except ``type``):

* ``type``: a rule over the stored patch probabilities (:data:`RULES`: ``mean``,
  ``max``, ``top_k_mean``, ``quantile``, ``area_fraction``, ``majority``) or a learned
  head (:data:`HEADS`: ``abmil``, gated attention; ``clam``, CLAM-SB or CLAM-MB over
  embeddings; ``conv_pool``, convolutions over the grid of patch outputs then global
  pooling);
* ``k`` (top_k_mean, default 10), ``q`` (quantile, default 0.9), ``patch_threshold``
  (area_fraction: a patch counts for a class at or above this probability, default 0.5);
* ``positive_class``: the class whose score decides the label (rules; default: the last
  class of a one- or two-class model, none for more classes), ``decision_threshold``
  (default 0.5): the label is the positive class when its score reaches it;
* ``weights`` (heads declared in a patch card: a file of the model folder, safetensors
  preferred), ``class_names`` (the slide classes of a head; default the patch model's),
  ``input`` (conv_pool: ``probabilities`` or ``embeddings``, default ``probabilities``);
* ``gallery``: how many top patches the slide report shows (default 8).

:func:`parse_aggregation` checks the object and raises :class:`AggregationError`
naming every problem; :meth:`AggregationSpec.to_dict` is what ``<stem>.slide.json``
records under ``aggregation``.  No torch.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: Rules over patch probabilities.
RULES = ("mean", "max", "top_k_mean", "quantile", "area_fraction", "majority")
#: Learned heads over embeddings (or, for conv_pool, either input).
HEADS = ("abmil", "clam", "conv_pool")
#: Other names accepted for a type (WSInfer-MIL and CLAM spell them so).
ALIASES = {"clam_sb": "clam", "clam_mb": "clam", "clam-sb": "clam", "clam-mb": "clam"}
#: conv_pool inputs.
INPUTS = ("probabilities", "embeddings")
_KEYS = frozenset(
    {
        "type",
        "k",
        "q",
        "patch_threshold",
        "positive_class",
        "decision_threshold",
        "weights",
        "class_names",
        "input",
        "gallery",
    }
)


class AggregationError(ValueError):
    """An aggregation object is invalid; the message names ``where`` and each problem."""


@dataclass(frozen=True)
class AggregationSpec:
    """A checked aggregation object (see the module docstring).

    ``folder`` is where ``weights`` are looked up, ``name`` what the report calls the
    aggregation (a head folder's name; the type otherwise).
    """

    type: str
    k: int = 10
    q: float = 0.9
    patch_threshold: float = 0.5
    positive_class: str | None = None
    decision_threshold: float = 0.5
    weights: str | None = None
    class_names: tuple[str, ...] = ()
    input: str = "probabilities"
    gallery: int = 8
    folder: Path | None = field(default=None, compare=False)
    name: str = ""

    @property
    def is_rule(self) -> bool:
        return self.type in RULES

    @property
    def needs_embeddings(self) -> bool:
        """Whether the answer is made from patch embeddings (the job must return them)."""
        return self.type in ("abmil", "clam") or (
            self.type == "conv_pool" and self.input == "embeddings"
        )

    def to_dict(self) -> dict[str, Any]:
        """The parameters that made the answer (``aggregation`` in ``<stem>.slide.json``)."""
        out: dict[str, Any] = {"type": self.type, "name": self.name or self.type}
        if self.type == "top_k_mean":
            out["k"] = self.k
        elif self.type == "quantile":
            out["q"] = self.q
        elif self.type == "area_fraction":
            out["patch_threshold"] = self.patch_threshold
        if self.is_rule:
            out["positive_class"] = self.positive_class
            out["decision_threshold"] = self.decision_threshold
        else:
            out["weights"] = self.weights
            out["input"] = "embeddings" if self.needs_embeddings else "probabilities"
        return out


def parse_aggregation(
    data: Any,
    where: str,
    *,
    folder: Path | None = None,
    name: str = "",
    weights: str | None = None,
) -> AggregationSpec:
    """Check an aggregation object; raise :class:`AggregationError` listing its problems.
    ``weights``: the head's weights file when the folder, not the object, names it (a
    slide-level head's folder)."""
    problems = aggregation_problems(data, weights_given=weights is not None)
    if problems:
        raise AggregationError(f"{where}: " + "; ".join(problems))
    kind = ALIASES.get(str(data["type"]), str(data["type"]))
    return AggregationSpec(
        type=kind,
        k=int(data.get("k", 10)),
        q=float(data.get("q", 0.9)),
        patch_threshold=float(data.get("patch_threshold", 0.5)),
        positive_class=data.get("positive_class"),
        decision_threshold=float(data.get("decision_threshold", 0.5)),
        weights=data.get("weights", weights),
        class_names=tuple(str(c) for c in data.get("class_names", ())),
        input=str(data.get("input", "probabilities")),
        gallery=int(data.get("gallery", 8)),
        folder=folder,
        name=name,
    )


def aggregation_problems(data: Any, *, weights_given: bool = False) -> list[str]:
    """Every problem of an aggregation object, as ``field 'x': problem`` (empty: valid).
    ``weights_given``: a head's weights are found elsewhere (its folder)."""
    if not isinstance(data, Mapping):
        return ["must be an object with a 'type'"]
    problems: list[str] = []
    unknown = sorted(set(data) - _KEYS)
    if unknown:
        problems.append(
            f"unknown fields {', '.join(unknown)} (allowed: {', '.join(sorted(_KEYS))})"
        )
    kind = ALIASES.get(str(data.get("type")), data.get("type"))
    if kind not in (*RULES, *HEADS):
        problems.append(
            f"field 'type': must be one of {', '.join((*RULES, *HEADS))} (got {kind!r})"
        )

    def number(key: str, low: float, high: float, *, integer: bool = False) -> None:
        if key not in data:
            return
        value = data[key]
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if integer:
            ok = ok and float(value).is_integer()
        if not ok or not low <= float(value) <= high:
            what = "a whole number" if integer else "a number"
            problems.append(
                f"field '{key}': must be {what} from {low:g} to {high:g} (got {value!r})"
            )

    number("k", 1, 1e9, integer=True)
    number("q", 0, 1)
    number("patch_threshold", 0, 1)
    number("decision_threshold", 0, 1)
    number("gallery", 0, 100, integer=True)
    for key in ("positive_class", "weights"):
        if key in data and (not isinstance(data[key], str) or not data[key]):
            problems.append(f"field '{key}': must be a non-empty string")
    weights = data.get("weights")
    if isinstance(weights, str) and (any(c in weights for c in "/\\") or weights.startswith(".")):
        problems.append(
            f"field 'weights': must be a file name in the model folder (got {weights!r})"
        )
    names = data.get("class_names")
    if names is not None and (
        not isinstance(names, list)
        or not names
        or not all(isinstance(n, str) and n for n in names)
        or len(set(names)) != len(names)
    ):
        problems.append("field 'class_names': must be a list of unique, non-empty names")
    if data.get("input", "probabilities") not in INPUTS:
        problems.append(f"field 'input': must be one of {', '.join(INPUTS)}")
    if kind in HEADS and "weights" not in data and not weights_given:
        problems.append(f"field 'weights': a {kind} head needs its weights file")
    return problems
