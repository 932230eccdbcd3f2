"""The slide report: what a whole slide's result says, as one JSON-ready dict.

``slidelens infer`` writes it as ``<stem>.slide.json`` (:func:`write_slide_report`); the
viewer's slide report panel and figure provenance use the same dict
(:func:`slide_report`).  It is made from the result's class map
(:class:`~inference.results.class_map.ClassMap`) and, for a grading model, the card's
grading rule (:mod:`inference.results.grading`).  Keys:

* ``slidelens_slide_report`` (format, 1), ``slide`` and ``model`` (as given), ``task``,
  ``class_names``, ``mpp`` (level-0 um/px or ``null``), ``cell_l0_px`` (side of a class
  map cell in level-0 px) and ``cells`` (cells with a value: the computed tissue);
* ``tissue_area_mm2``, ``class_area_mm2`` (class -> mm², ``null`` without a pixel size)
  and ``class_fraction`` (class -> share of the computed tissue, by cell counts);
* ``largest_region``: class -> where its largest connected region is, in level-0 px
  (``l0_rect`` ``[x, y, w, h]``, ``l0_point`` ``[x, y]`` inside it for a "go to"
  button, ``cells``, ``area_mm2``), ``null`` for a class with no cell;
* ``grading`` (the card's rule, or ``null``), ``gleason_score`` (``"3+4"``),
  ``gleason_primary``, ``gleason_secondary``, ``isup_grade`` (0-5),
  ``pattern_fraction_of_tumour`` and ``tumour_fraction`` (the patterns' share of the
  tissue): all ``null`` for a model that does not grade; ``gleason_score`` is also
  ``null`` for a slide without tumour (``isup_grade`` 0).

Fractions are rounded to six decimals.  No torch, no Qt.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from inference.results.class_map import ClassMap, ClassResult
from inference.results.exports import write_json
from inference.results.grading import GradingSpec, grade_class_map

#: The format of the report (bumped when keys change meaning).
SLIDE_REPORT_FORMAT = 1
_DIGITS = 6


def slide_report_path(out_dir: Path, stem: str) -> Path:
    """``<out_dir>/<stem>.slide.json``."""
    return Path(out_dir) / f"{stem}.slide.json"


def slide_report(
    result: ClassResult,
    *,
    mpp: float | None,
    grading: GradingSpec | None = None,
    threshold: float = 0.5,
    slide: str | None = None,
    model: Mapping[str, Any] | None = None,
    class_map: ClassMap | None = None,
) -> dict[str, Any]:
    """The report of ``result`` (see the module docstring).  ``mpp`` is the slide's
    level-0 pixel size (areas are ``null`` without it); ``threshold`` applies to
    one-output models; ``class_map`` may be passed when already made."""
    cmap = class_map if class_map is not None else ClassMap.from_result(result, threshold=threshold)
    names = cmap.class_names
    counts = cmap.counts()
    cells = cmap.valid_cells
    cell_mm2 = cmap.cell_area_mm2(mpp)

    def area(n: int) -> float | None:
        return None if cell_mm2 is None else round(n * cell_mm2, _DIGITS)

    def share(n: int) -> float:
        return round(n / cells, _DIGITS) if cells else 0.0

    largest: dict[str, Any] = {}
    for index, name in enumerate(names):
        region = cmap.largest_region(index)
        largest[name] = None if region is None else region.to_dict(cell_mm2)
    report: dict[str, Any] = {
        "slidelens_slide_report": SLIDE_REPORT_FORMAT,
        "slide": slide,
        "model": dict(model) if model is not None else None,
        "task": getattr(result, "task", None),
        "class_names": list(names),
        "mpp": mpp,
        "cell_l0_px": cmap.l0_per_px,
        "cells": cells,
        "tissue_area_mm2": area(cells),
        "class_area_mm2": {name: area(int(counts[i])) for i, name in enumerate(names)},
        "class_fraction": {name: share(int(counts[i])) for i, name in enumerate(names)},
        "largest_region": largest,
        "grading": None,
        "gleason_score": None,
        "gleason_primary": None,
        "gleason_secondary": None,
        "isup_grade": None,
        "pattern_fraction_of_tumour": None,
        "tumour_fraction": None,
    }
    if grading is not None:
        grade = grade_class_map(cmap, grading)
        tumour = sum(int(counts[names.index(n)]) for n in grading.patterns)
        report.update(grade.to_dict())
        report["grading"] = grading.to_dict()
        report["tumour_fraction"] = share(tumour)
    return report


def write_slide_report(path: Path, report: Mapping[str, Any]) -> None:
    """Write a report as pretty JSON, atomically."""
    write_json(path, report)


def read_slide_report(path: Path) -> dict[str, Any]:
    """A report written by :func:`write_slide_report`.  Raises ``ValueError`` naming the
    file when it is not one."""
    try:
        doc = json.loads(Path(path).read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"{Path(path).name}: not a readable slide report ({exc})") from exc
    if not isinstance(doc, dict) or doc.get("slidelens_slide_report") != SLIDE_REPORT_FORMAT:
        raise ValueError(f"{Path(path).name}: not a SlideLens slide report")
    return doc
