"""A model card's domain (``slidelens.domain``): what it was made for, whether a slide is
one of those, and the warning its layers carry when it is not (or is not for diagnosis)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from inference.models.card import load_card, validate_card_data
from inference.models.demo.cards import CLASSIFIER_NAME, SEGMENTER_NAME
from inference.models.domain import ModelDomain, SlideRule, check_domain, warning_of
from inference.models.registry import bundled_models_dir
from inference.slides import open_slide

SYNTH_PROPERTIES = {"openslide.vendor": "generic-tiff", "tiff.Software": "SlideLens synth"}
APERIO_PROPERTIES = {"openslide.vendor": "aperio", "aperio.AppMag": "20"}


def _card(domain: Any) -> dict[str, Any]:
    folder = bundled_models_dir() / CLASSIFIER_NAME
    data = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    data["slidelens"]["domain"] = domain
    return data


@pytest.mark.parametrize("name", [CLASSIFIER_NAME, SEGMENTER_NAME])
def test_bundled_demo_cards_state_their_domain(name: str) -> None:
    card = load_card(bundled_models_dir() / name)
    domain = card.domain
    assert domain.for_diagnosis is False
    assert "synthetic" in domain.trained_on
    assert domain.slides == (SlideRule("tiff.Software", equals="SlideLens synth"),)


def test_demo_models_know_synthetic_slides_by_what_openslide_reports(
    synthetic_slide: Path,
) -> None:
    """The rule reads the TIFF tag ``slidelens synth`` writes, as OpenSlide reports it."""
    domain = load_card(bundled_models_dir() / CLASSIFIER_NAME).domain
    source = open_slide(synthetic_slide)
    try:
        properties = source.info.properties
    finally:
        source.close()
    assert domain.slide_in_domain(properties) is True
    check = check_domain(CLASSIFIER_NAME, domain, properties)
    assert check.warns and not check.asks  # its own slides: labelled, not questioned
    assert check.warning == "NOT FOR DIAGNOSIS"


def test_a_real_slide_is_outside_the_demo_models_domain(aperio_slide: Path) -> None:
    domain = load_card(bundled_models_dir() / CLASSIFIER_NAME).domain
    source = open_slide(aperio_slide)
    try:
        check = check_domain(CLASSIFIER_NAME, domain, source.info.properties)
    finally:
        source.close()
    assert check.outside_domain and check.asks
    lines = check.warning.splitlines()
    assert lines[0] == "NOT FOR DIAGNOSIS"
    assert "outside the model's domain" in lines[1]
    assert "synthetic" in lines[2]
    assert "outside the domain of demo-tumour-classifier" in check.question


def test_rules_equals_and_contains_any_rule_matches() -> None:
    domain = ModelDomain.from_data(
        {
            "slides": [
                {"property": "openslide.vendor", "equals": "hamamatsu"},
                {"property": "tiff.ImageDescription", "contains": "slidelens synth"},
            ]
        }
    )
    assert domain.for_diagnosis is None
    assert domain.slide_in_domain({"openslide.vendor": "hamamatsu"}) is True
    assert domain.slide_in_domain({"tiff.ImageDescription": '{"generator": "slidelens synth"}'})
    assert domain.slide_in_domain(APERIO_PROPERTIES) is False
    assert ModelDomain().slide_in_domain(APERIO_PROPERTIES) is None  # the card cannot tell


def test_what_warns_and_what_asks() -> None:
    unknown = check_domain("m", ModelDomain(), APERIO_PROPERTIES)
    assert not unknown.warns and not unknown.asks and unknown.warning == ""
    diagnostic_outside = check_domain(
        "m",
        ModelDomain(for_diagnosis=True, slides=(SlideRule("a", equals="b"),)),
        APERIO_PROPERTIES,
    )
    assert diagnostic_outside.warns and diagnostic_outside.asks
    assert diagnostic_outside.warning == "Slide outside the model's domain"
    research_unknown = check_domain("m", ModelDomain(for_diagnosis=False), APERIO_PROPERTIES)
    assert research_unknown.asks  # not for diagnosis, and its card cannot tell
    record = research_unknown.to_dict()
    assert record["for_diagnosis"] is False and record["slide_in_domain"] is None
    assert warning_of({"domain": record}) == "NOT FOR DIAGNOSIS"
    assert warning_of({}) == ""


@pytest.mark.parametrize(
    ("domain", "field", "words"),
    [
        ({"for_diagnosis": "no"}, "slidelens.domain.for_diagnosis", "true or false"),
        ({"slides": []}, "slidelens.domain.slides", "non-empty list"),
        ({"slides": [{"property": "x"}]}, "slidelens.domain.slides[0]", '"equals"'),
        (
            {"slides": [{"property": "x", "equals": "a", "contains": "b"}]},
            "slidelens.domain.slides[0]",
            '"contains"',
        ),
        ({"trained": "x"}, "slidelens.domain.trained", "unknown field"),
    ],
)
def test_a_bad_domain_is_reported_by_field(domain: Any, field: str, words: str) -> None:
    problems = dict(validate_card_data(_card(domain)))
    assert field in problems and words in problems[field], problems


def test_a_result_that_names_only_its_model_gets_the_models_warning_back() -> None:
    """Results ``slidelens infer`` cached name the model, not its folder: restored in the
    window, they still carry the card's warning."""
    from viewer.result_layers import restored_domain

    record = restored_domain({"model": CLASSIFIER_NAME}, {})  # a slide that is not synth's
    assert record is not None
    assert warning_of({"domain": record}).splitlines()[:2] == [
        "NOT FOR DIAGNOSIS",
        "Slide outside the model's domain",
    ]
    assert restored_domain({"model": "no-such-model"}, {}) is None
    saved = {"warning": "saved"}
    assert restored_domain({"model": "no-such-model", "domain": saved}, {}) == saved
