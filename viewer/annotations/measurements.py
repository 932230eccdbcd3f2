"""Measurements of an annotation in level-0 pixels and, when the pixel size is known, microns.

A slide's ``mpp`` (microns per level-0 pixel) may be unknown (``None``), e.g. for a
plain PNG.  :class:`Measurements` then says so (``has_physical_units`` is false, the
micron values are ``None``) and its ``area``/``length`` with their unit labels fall back
to pixels, so a GUI can always show ``f"{m.area:.1f} {m.area_unit}"`` and never presents
pixels as microns.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from viewer.annotations.model import Annotation, AnnotationKind

UM = "µm"
UM2 = "µm²"
PX = "px"
PX2 = "px²"


def check_mpp(mpp: float | None) -> float | None:
    """``mpp`` as a float, or ``None``; :class:`ValueError` unless finite and positive."""
    if mpp is None:
        return None
    value = float(mpp)
    if not math.isfinite(value) or value <= 0.0:
        raise ValueError(f"microns per pixel must be a positive number or None, not {mpp!r}")
    return value


@dataclass(frozen=True)
class Measurements:
    """Size of one annotation.

    ``l0_area`` is in level-0 px² (0 for points and rulers, holes subtracted);
    ``l0_length`` is the perimeter of an area (holes included), the length of a ruler's
    polyline, and 0 for points.  ``count`` is the number of points of a point
    annotation and 1 otherwise.
    """

    kind: AnnotationKind
    l0_area: float
    l0_length: float
    count: int
    mpp: float | None

    @property
    def has_physical_units(self) -> bool:
        """True when the slide's pixel size is known and the micron values are set."""
        return self.mpp is not None

    @property
    def area_um2(self) -> float | None:
        return None if self.mpp is None else self.l0_area * self.mpp * self.mpp

    @property
    def length_um(self) -> float | None:
        return None if self.mpp is None else self.l0_length * self.mpp

    @property
    def area(self) -> float:
        """Area in :attr:`area_unit` (µm² when the pixel size is known, else px²)."""
        um2 = self.area_um2
        return self.l0_area if um2 is None else um2

    @property
    def length(self) -> float:
        """Perimeter or length in :attr:`length_unit` (µm when known, else px)."""
        um = self.length_um
        return self.l0_length if um is None else um

    @property
    def area_unit(self) -> str:
        return PX2 if self.mpp is None else UM2

    @property
    def length_unit(self) -> str:
        return PX if self.mpp is None else UM

    @property
    def length_label(self) -> str:
        """What :attr:`length` is for this kind: ``perimeter``, ``length`` or ``""``."""
        if self.kind.is_area:
            return "perimeter"
        return "length" if self.kind is AnnotationKind.RULER else ""

    def describe(self) -> str:
        """A one-line summary for a status bar, e.g. ``area 12.50 µm², perimeter 14.14 µm``.

        Without a pixel size the values are in px and the text says so.
        """
        if self.kind is AnnotationKind.POINT:
            text = f"{self.count} point" + ("" if self.count == 1 else "s")
        elif self.kind is AnnotationKind.RULER:
            text = f"length {self.length:.2f} {self.length_unit}"
        else:
            text = (
                f"area {self.area:.2f} {self.area_unit}, "
                f"perimeter {self.length:.2f} {self.length_unit}"
            )
        if self.mpp is None and self.kind is not AnnotationKind.POINT:
            text += " (pixel size unknown)"
        return text


def measure(annotation: Annotation, mpp: float | None) -> Measurements:
    """Measure an annotation on a slide of ``mpp`` microns per level-0 px (or ``None``)."""
    count = len(annotation.l0_points) if annotation.kind is AnnotationKind.POINT else 1
    return Measurements(
        kind=annotation.kind,
        l0_area=annotation.l0_area,
        l0_length=annotation.l0_length,
        count=count,
        mpp=check_mpp(mpp),
    )
