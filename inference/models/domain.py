"""What a model was made for (``slidelens.domain`` of its card), and whether a slide is in it.

A card may state its domain::

    "domain": {
      "for_diagnosis": false,
      "trained_on": "synthetic H&E-like tissue made by slidelens synth",
      "slides": [{"property": "tiff.Software", "equals": "SlideLens synth"}]
    }

``for_diagnosis`` says whether the model may inform a diagnosis (absent: the card does
not say).  ``slides`` recognises the slides the model was made for by the properties
OpenSlide reports for them (``SlideInfo.properties``); a slide is in the domain when any
rule matches, outside it when none does, and of unknown domain when the card states no
rule.  :func:`check_domain` turns a card's domain and a slide's properties into a
:class:`DomainCheck`: whether layers made from the model must carry a warning, the
warning's words, and whether a run should ask first.  No torch, no Qt.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class SlideRule:
    """A slide property that marks the slides a model was made for: the property's value
    ``equals`` a text, or ``contains`` it (exactly one of the two is set)."""

    property: str
    equals: str | None = None
    contains: str | None = None

    def matches(self, properties: Mapping[str, str]) -> bool:
        value = properties.get(self.property)
        if value is None:
            return False
        if self.equals is not None:
            return str(value) == self.equals
        return self.contains is not None and self.contains in str(value)

    def describe(self) -> str:
        """The rule in words, e.g. ``tiff.Software is 'SlideLens synth'``."""
        if self.equals is not None:
            return f"{self.property} is {self.equals!r}"
        return f"{self.property} contains {self.contains!r}"


@dataclass(frozen=True)
class ModelDomain:
    """A card's ``slidelens.domain`` (all empty when the card states none)."""

    for_diagnosis: bool | None = None
    trained_on: str = ""
    slides: tuple[SlideRule, ...] = ()

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> ModelDomain:
        """The domain of a validated card's ``slidelens.domain`` object."""
        rules = tuple(
            SlideRule(str(r["property"]), r.get("equals"), r.get("contains"))
            for r in data.get("slides", ())
            if isinstance(r, Mapping) and "property" in r
        )
        flag = data.get("for_diagnosis")
        return cls(
            for_diagnosis=flag if isinstance(flag, bool) else None,
            trained_on=str(data.get("trained_on", "")),
            slides=rules,
        )

    def slide_in_domain(self, properties: Mapping[str, str]) -> bool | None:
        """Whether a slide with these properties is one the model was made for; ``None``
        when the card states no rule to tell."""
        if not self.slides:
            return None
        return any(rule.matches(properties) for rule in self.slides)


@dataclass(frozen=True)
class DomainCheck:
    """A model (``model``: its name) against one slide.

    ``not_for_diagnosis``: the card says the model is not for diagnosis;
    ``in_domain``: the slide is one it was made for (``None``: the card cannot tell).
    """

    model: str
    not_for_diagnosis: bool
    in_domain: bool | None
    trained_on: str = ""

    @property
    def outside_domain(self) -> bool:
        return self.in_domain is False

    @property
    def warns(self) -> bool:
        """Whether a layer made from the model on this slide carries a warning."""
        return self.not_for_diagnosis or self.outside_domain

    @property
    def asks(self) -> bool:
        """Whether a run should ask first: the slide is outside the model's domain, or
        the model is not for diagnosis and its card cannot tell whether the slide is
        one it was made for.  (A demo model on a demo slide only carries its label.)"""
        return self.outside_domain or (self.not_for_diagnosis and self.in_domain is None)

    @property
    def warning(self) -> str:
        """The warning a layer, its legend and every figure made with it carry: short
        lines separated by newlines ("" when there is nothing to warn about)."""
        lines: list[str] = []
        if self.not_for_diagnosis:
            lines.append("NOT FOR DIAGNOSIS")
        if self.outside_domain:
            lines.append("Slide outside the model's domain")
            if self.trained_on:
                lines.append(f"(trained on {self.trained_on})")
        return "\n".join(lines)

    @property
    def question(self) -> str:
        """What a run asks before it starts (see :attr:`asks`)."""
        parts: list[str] = []
        if self.outside_domain:
            trained = f" It was trained on {self.trained_on}." if self.trained_on else ""
            parts.append(
                f"This slide is outside the domain of {self.model}: its card does not "
                f"recognise it as a slide the model was made for.{trained} Its output "
                "here may be meaningless."
            )
        if self.not_for_diagnosis:
            parts.append(f"{self.model} is not for diagnosis.")
        parts.append(
            "Layers and figures made from it will carry a warning. Run it on this slide anyway?"
        )
        return " ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        """For provenance records."""
        return {
            "for_diagnosis": not self.not_for_diagnosis,
            "slide_in_domain": self.in_domain,
            "trained_on": self.trained_on,
            "warning": self.warning,
        }


def check_domain(name: str, domain: ModelDomain, properties: Mapping[str, str]) -> DomainCheck:
    """Model ``name`` with ``domain`` against a slide with ``properties``."""
    return DomainCheck(
        model=name,
        not_for_diagnosis=domain.for_diagnosis is False,
        in_domain=domain.slide_in_domain(properties),
        trained_on=domain.trained_on,
    )


def warning_of(provenance: Mapping[str, Any]) -> str:
    """The warning recorded in a layer's provenance by :meth:`DomainCheck.to_dict` under
    ``"domain"`` ("" when there is none)."""
    domain = provenance.get("domain")
    if isinstance(domain, Mapping):
        return str(domain.get("warning") or "")
    return ""
