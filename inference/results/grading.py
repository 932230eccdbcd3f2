"""A slide's grade from its class areas: the Gleason score and the ISUP grade group.

A grading model declares in its card which of its classes are Gleason patterns
(``slidelens.grading``, read by :meth:`GradingSpec.from_card`)::

    "grading": {"rule": "gleason-isup",
                "patterns": {"gleason3": 3, "gleason4": 4, "gleason5": 5},
                "biopsy": true}

so any model with pattern classes reuses the rule.  The rule (:func:`gleason_grade`),
on the area of each pattern (any unit; the tumour is their sum):

* no pattern has any area: no tumour, ISUP grade group 0, no Gleason score;
* the **primary** pattern is the one with the largest area (a tie goes to the higher);
* the **secondary** pattern: in a biopsy (``biopsy``, the default) the highest pattern
  above the primary, whatever its amount, when there is one; otherwise the largest
  other pattern (a tie goes to the higher) that takes at least
  ``min_secondary_fraction`` (5 %) of the tumour; without one the secondary is the
  primary (3+3, 4+4, 5+5).  Away from a biopsy (``biopsy: false``) only the 5 % rule
  applies;
* the ISUP grade group (:func:`isup_grade_group`): 3+3 -> 1, 3+4 -> 2, 4+3 -> 3,
  4+4 / 3+5 / 5+3 -> 4, 4+5 / 5+4 / 5+5 -> 5.

Applied to a model's class map (:func:`grade_class_map`), a pattern whose area is below
``min_pattern_fraction`` of the tissue is taken as noise first (default 0: every cell
counts), because a few misclassified cells of a higher pattern would otherwise change a
biopsy's grade.  No torch, no Qt.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from inference.results.class_map import ClassMap

RULE_GLEASON_ISUP = "gleason-isup"
#: A lower secondary pattern counts from this share of the tumour.
DEFAULT_MIN_SECONDARY_FRACTION = 0.05
#: The Gleason patterns the rule knows.
PATTERNS = (3, 4, 5)


class GradingError(ValueError):
    """A grading declaration that cannot be used (the message says why)."""


def isup_grade_group(primary: int, secondary: int) -> int:
    """The ISUP grade group (1-5) of the Gleason score ``primary + secondary`` (patterns
    3-5).  Raises :class:`GradingError` for another pattern."""
    for pattern in (primary, secondary):
        if pattern not in PATTERNS:
            raise GradingError(f"Gleason pattern {pattern} is not one of 3, 4, 5")
    total = primary + secondary
    if total <= 6:
        return 1
    if total == 7:
        return 2 if primary == 3 else 3
    return 4 if total == 8 else 5


@dataclass(frozen=True)
class GleasonGrade:
    """The grade of one slide: ``primary`` and ``secondary`` pattern (``None`` without
    tumour), the ISUP grade group (0 without tumour) and each pattern's share of the
    tumour (patterns with no area are 0)."""

    primary: int | None
    secondary: int | None
    isup_grade: int
    pattern_fraction_of_tumour: Mapping[int, float] = field(default_factory=dict)

    @property
    def gleason_score(self) -> str | None:
        """``"3+4"``; ``None`` without tumour."""
        if self.primary is None or self.secondary is None:
            return None
        return f"{self.primary}+{self.secondary}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "gleason_score": self.gleason_score,
            "gleason_primary": self.primary,
            "gleason_secondary": self.secondary,
            "isup_grade": self.isup_grade,
            "pattern_fraction_of_tumour": {
                str(p): round(float(f), 6)
                for p, f in sorted(self.pattern_fraction_of_tumour.items())
            },
        }


def gleason_grade(
    pattern_areas: Mapping[int, float],
    *,
    biopsy: bool = True,
    min_secondary_fraction: float = DEFAULT_MIN_SECONDARY_FRACTION,
) -> GleasonGrade:
    """The grade of a slide whose Gleason patterns cover ``pattern_areas`` (pattern ->
    area, any unit), by the rule of the module docstring.  Raises :class:`GradingError`
    for an unknown pattern or a negative area."""
    for pattern, area in pattern_areas.items():
        if pattern not in PATTERNS:
            raise GradingError(f"Gleason pattern {pattern} is not one of 3, 4, 5")
        if not area >= 0:
            raise GradingError(f"the area of pattern {pattern} must be >= 0, not {area}")
    present = {p: float(a) for p, a in pattern_areas.items() if a > 0}
    tumour = sum(present.values())
    if not present:
        return GleasonGrade(None, None, 0, {p: 0.0 for p in PATTERNS})
    shares = {p: present.get(p, 0.0) / tumour for p in PATTERNS}
    primary = max(present, key=lambda p: (present[p], p))
    higher = [p for p in present if p > primary]
    if biopsy and higher:
        secondary = max(higher)
    else:
        others = [p for p in present if p != primary and shares[p] >= min_secondary_fraction]
        secondary = max(others, key=lambda p: (present[p], p)) if others else primary
    return GleasonGrade(primary, secondary, isup_grade_group(primary, secondary), shares)


@dataclass(frozen=True)
class GradingSpec:
    """A card's ``slidelens.grading``: the rule, class name -> Gleason pattern, whether
    slides are biopsies, the 5 % secondary rule's share and the noise floor (share of the
    tissue below which a predicted pattern is ignored)."""

    patterns: Mapping[str, int]
    rule: str = RULE_GLEASON_ISUP
    biopsy: bool = True
    min_secondary_fraction: float = DEFAULT_MIN_SECONDARY_FRACTION
    min_pattern_fraction: float = 0.0

    @classmethod
    def from_data(cls, data: Mapping[str, Any], class_names: tuple[str, ...]) -> GradingSpec:
        """Read a ``slidelens.grading`` object whose pattern classes must be among
        ``class_names``.  Raises :class:`GradingError` naming what is wrong."""
        rule = data.get("rule", RULE_GLEASON_ISUP)
        if rule != RULE_GLEASON_ISUP:
            raise GradingError(f"unknown grading rule {rule!r}; known: {RULE_GLEASON_ISUP}")
        patterns = data.get("patterns")
        if not isinstance(patterns, Mapping) or not patterns:
            raise GradingError("grading needs 'patterns': class name -> Gleason pattern")
        unknown = sorted(set(patterns) - set(class_names))
        if unknown:
            raise GradingError(
                f"grading patterns name {', '.join(map(repr, unknown))}, not classes of the "
                f"model ({', '.join(class_names)})"
            )
        for name, pattern in patterns.items():
            if pattern not in PATTERNS:
                raise GradingError(f"class {name!r}: Gleason pattern must be 3, 4 or 5")
        return cls(
            patterns={str(k): int(v) for k, v in patterns.items()},
            rule=str(rule),
            biopsy=bool(data.get("biopsy", True)),
            min_secondary_fraction=float(
                data.get("min_secondary_fraction", DEFAULT_MIN_SECONDARY_FRACTION)
            ),
            min_pattern_fraction=float(data.get("min_pattern_fraction", 0.0)),
        )

    @classmethod
    def from_card(cls, card: Any) -> GradingSpec | None:
        """The grading a model card declares (a :class:`~inference.models.card.ModelCard`
        or the card's JSON as a mapping); ``None`` when it declares none."""
        if isinstance(card, Mapping):
            sl = card.get("slidelens")
            grading = sl.get("grading") if isinstance(sl, Mapping) else None
            names = tuple(str(n) for n in card.get("class_names", ()))
        else:
            grading = getattr(card, "grading", None)
            names = tuple(getattr(card, "class_names", ()))
        if not grading:
            return None
        return cls.from_data(grading, names)

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "patterns": dict(self.patterns),
            "biopsy": self.biopsy,
            "min_secondary_fraction": self.min_secondary_fraction,
            "min_pattern_fraction": self.min_pattern_fraction,
        }

    def grade_areas(self, class_areas: Mapping[str, float], tissue_area: float) -> GleasonGrade:
        """The grade from the area of each class (any unit) and the tissue's area in the
        same unit; patterns below the noise floor count as absent."""
        floor = self.min_pattern_fraction * tissue_area
        pattern_areas: dict[int, float] = {}
        for name, pattern in self.patterns.items():
            area = float(class_areas.get(name, 0.0))
            if area > 0 and area >= floor:
                pattern_areas[pattern] = pattern_areas.get(pattern, 0.0) + area
        return gleason_grade(
            pattern_areas, biopsy=self.biopsy, min_secondary_fraction=self.min_secondary_fraction
        )


def grade_class_map(class_map: ClassMap, spec: GradingSpec) -> GleasonGrade:
    """The grade of a slide from its class map: class areas in cells, the tissue being
    every cell with a value."""
    counts = class_map.counts()
    areas = {name: float(counts[i]) for i, name in enumerate(class_map.class_names)}
    return spec.grade_areas(areas, float(class_map.valid_cells))
