"""The slide grade: the Gleason-to-ISUP rule on every case, the biopsy and 5 % rules, the
noise floor, and the grading a card declares."""

from __future__ import annotations

from typing import Any

import pytest

from inference.models.card import validate_card_data
from inference.results.grading import (
    GradingError,
    GradingSpec,
    gleason_grade,
    isup_grade_group,
)


@pytest.mark.parametrize(
    ("primary", "secondary", "isup"),
    [
        (3, 3, 1),
        (3, 4, 2),
        (4, 3, 3),
        (4, 4, 4),
        (3, 5, 4),
        (5, 3, 4),
        (4, 5, 5),
        (5, 4, 5),
        (5, 5, 5),
    ],
)
def test_every_gleason_score_has_its_isup_grade_group(
    primary: int, secondary: int, isup: int
) -> None:
    assert isup_grade_group(primary, secondary) == isup


@pytest.mark.parametrize(
    ("areas", "biopsy", "score", "isup"),
    [
        ({}, True, None, 0),
        ({3: 0.0, 4: 0.0}, True, None, 0),
        ({3: 1.0}, True, "3+3", 1),
        ({3: 70, 4: 30}, True, "3+4", 2),
        ({4: 70, 3: 30}, True, "4+3", 3),
        ({4: 100}, True, "4+4", 4),
        ({3: 70, 5: 30}, True, "3+5", 4),
        ({5: 70, 3: 30}, True, "5+3", 4),
        ({4: 70, 5: 30}, True, "4+5", 5),
        ({5: 70, 4: 30}, True, "5+4", 5),
        ({5: 100}, True, "5+5", 5),
        # biopsy: a higher pattern is the secondary whatever its amount
        ({3: 97, 4: 3}, True, "3+4", 2),
        ({3: 99.9, 5: 0.1}, True, "3+5", 4),
        ({3: 60, 4: 38, 5: 2}, True, "3+5", 4),
        ({4: 60, 3: 30, 5: 10}, True, "4+5", 5),
        # a lower pattern counts from 5 % of the tumour
        ({4: 97, 3: 3}, True, "4+4", 4),
        ({4: 95, 3: 5}, True, "4+3", 3),
        ({5: 60, 4: 30, 3: 10}, True, "5+4", 5),
        # away from a biopsy only the 5 % rule applies
        ({3: 97, 4: 3}, False, "3+3", 1),
        ({3: 60, 4: 38, 5: 2}, False, "3+4", 2),
        ({3: 90, 5: 10}, False, "3+5", 4),
        # a tie for the primary goes to the higher pattern
        ({3: 50, 4: 50}, True, "4+3", 3),
    ],
)
def test_gleason_score_from_pattern_areas(
    areas: dict[int, float], biopsy: bool, score: str | None, isup: int
) -> None:
    grade = gleason_grade(areas, biopsy=biopsy)
    assert grade.gleason_score == score
    assert grade.isup_grade == isup
    if score is None:
        assert grade.primary is None and grade.secondary is None
    else:
        assert f"{grade.primary}+{grade.secondary}" == score
        total = sum(areas.values())
        assert grade.pattern_fraction_of_tumour[3] == pytest.approx(areas.get(3, 0) / total)


def test_impossible_patterns_and_areas_are_refused() -> None:
    with pytest.raises(GradingError, match="not one of 3, 4, 5"):
        isup_grade_group(2, 3)
    with pytest.raises(GradingError, match="not one of 3, 4, 5"):
        gleason_grade({6: 1.0})
    with pytest.raises(GradingError, match=">= 0"):
        gleason_grade({3: -1.0})


NAMES = ("background", "stroma", "benign", "g3", "g4", "g5")
GRADING = {"rule": "gleason-isup", "patterns": {"g3": 3, "g4": 4, "g5": 5}, "biopsy": True}


def test_grading_spec_reads_a_card_and_applies_the_noise_floor() -> None:
    card = {"class_names": list(NAMES), "slidelens": {"grading": GRADING}}
    spec = GradingSpec.from_card(card)
    assert spec is not None and spec.patterns == {"g3": 3, "g4": 4, "g5": 5} and spec.biopsy
    areas = {"stroma": 50.0, "g3": 30.0, "g5": 1.0}
    assert spec.grade_areas(areas, tissue_area=100.0).gleason_score == "3+5"
    floored = GradingSpec.from_data({**GRADING, "min_pattern_fraction": 0.02}, NAMES)
    assert floored.grade_areas(areas, tissue_area=100.0).gleason_score == "3+3"
    assert floored.grade_areas({"g5": 2.0}, tissue_area=100.0).gleason_score == "5+5"
    assert GradingSpec.from_card({"class_names": ["a", "b"], "slidelens": {}}) is None


@pytest.mark.parametrize(
    ("grading", "message"),
    [
        ({"rule": "who-2022", "patterns": {"g3": 3}}, "unknown grading rule"),
        ({"rule": "gleason-isup", "patterns": {}}, "needs 'patterns'"),
        ({"rule": "gleason-isup", "patterns": {"tumour": 4}}, "'tumour', not classes"),
        ({"rule": "gleason-isup", "patterns": {"g3": 2}}, "must be 3, 4 or 5"),
    ],
)
def test_bad_grading_is_refused_with_the_reason(grading: dict[str, Any], message: str) -> None:
    with pytest.raises(GradingError, match=message):
        GradingSpec.from_data(grading, NAMES)


def _card(slidelens: dict[str, Any]) -> dict[str, Any]:
    return {
        "spec_version": "1.0",
        "architecture": "small_cnn",
        "num_classes": len(NAMES),
        "class_names": list(NAMES),
        "patch_size_pixels": 64,
        "spacing_um_px": 2.0,
        "transform": [{"name": "ToTensor"}],
        "slidelens": slidelens,
    }


def test_card_validation_checks_grading_and_truth_classes() -> None:
    good = _card({"grading": GRADING, "truth_classes": {"Gleason 3": "g3"}})
    assert validate_card_data(good) == []
    problems = dict(
        validate_card_data(
            _card(
                {
                    "grading": {"rule": "gleason-isup", "patterns": {"gleason9": 4}},
                    "truth_classes": {"Gleason 3": "nope"},
                }
            )
        )
    )
    assert "'gleason9'" in problems["slidelens.grading.patterns"]
    assert "'nope'" in problems["slidelens.truth_classes"]
    schema_problems = dict(validate_card_data(_card({"grading": {"patterns": {"g3": 7}}})))
    assert "slidelens.grading" in " ".join(schema_problems)
