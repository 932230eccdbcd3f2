"""The grade a result layer's provenance carries, so that every figure made with it does.

A layer's provenance is copied into a figure's JSON sidecar (see
:mod:`viewer.export.scene`), so the window (``ClassReportController``) and
``slidelens export`` both store a whole slide's report there under
:data:`PROVENANCE_KEY`, in the compact form :func:`grade_summary` makes from a slide
report (:func:`inference.results.slide_report.slide_report`, ``<stem>.slide.json``).
Qt-free.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: The layer provenance key that holds the summary.
PROVENANCE_KEY = "slide_report"
#: The slide report's keys the summary keeps, as they are in ``<stem>.slide.json``.
SUMMARY_KEYS = (
    "isup_grade",
    "gleason_score",
    "class_area_mm2",
    "class_fraction",
    "tumour_fraction",
    "mpp",
)


def grade_summary(report: Mapping[str, Any]) -> dict[str, Any]:
    """The keys of :data:`SUMMARY_KEYS` of a slide report (``None`` where it has none),
    JSON-ready: mappings are copied, so later changes to the report do not leak in."""
    summary: dict[str, Any] = {}
    for key in SUMMARY_KEYS:
        value = report.get(key)
        summary[key] = dict(value) if isinstance(value, Mapping) else value
    return summary
