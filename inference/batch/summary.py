"""``OUT/summary.csv`` and ``OUT/summary.json``: one row per slide of a batch.

Contract: :func:`write_summary` writes both files atomically from the slides' states, in
the batch's order.  Columns: ``slide`` (the path as given), ``name`` (its result folder
below OUT), ``status`` (done, skipped, failed, cancelled, or queued / running while a
batch is under way), ``seconds`` (the slide's time on its worker), ``patches``,
``computed``, ``background``, ``unreadable``, ``attempts``, ``error``, then the
slide-level outputs (``fraction_<class>``, ``max_prob_<class>``; ``isup_grade`` and the
Gleason patterns for a grading model; ``slide_prob_<class>`` for a slide-level model;
empty where a slide has none).  The JSON holds the same rows (outputs as an object)
and ``run``: the model, its hash, the settings and the batch's figures.
:func:`read_summary_json` reads it back.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from inference.batch.progress import SlideState
from inference.core.atomic_io import atomic_write_text

SUMMARY_CSV = "summary.csv"
SUMMARY_JSON = "summary.json"
COLUMNS = (
    "slide",
    "name",
    "status",
    "seconds",
    "patches",
    "computed",
    "background",
    "unreadable",
    "attempts",
    "error",
)


def summary_row(state: SlideState) -> dict[str, Any]:
    """One slide's row (outputs as a nested object)."""
    return {
        "slide": str(state.item.slide),
        "name": state.name,
        "status": state.status,
        "seconds": state.seconds,
        "patches": state.counts.get("patches"),
        "computed": state.counts.get("computed"),
        "background": state.counts.get("background"),
        "unreadable": state.counts.get("unreadable"),
        "attempts": state.attempts,
        "error": state.message,
        "outputs": dict(state.outputs),
    }


def write_summary(out: Path, states: Sequence[SlideState], run: Mapping[str, Any]) -> None:
    """Write ``summary.csv`` and ``summary.json`` into ``out`` (see the module docstring)."""
    rows = [summary_row(s) for s in states]
    output_names = sorted({k for row in rows for k in row["outputs"]})
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([*COLUMNS, *output_names])
    for row in rows:
        cells = ["" if row[c] is None else row[c] for c in COLUMNS]
        cells += [row["outputs"].get(name, "") for name in output_names]
        writer.writerow(cells)
    atomic_write_text(out / SUMMARY_CSV, buffer.getvalue())
    doc = {"run": dict(run), "slides": rows}
    atomic_write_text(out / SUMMARY_JSON, json.dumps(doc, indent=2, default=str) + "\n")


def read_summary_json(out: Path) -> dict[str, Any] | None:
    """The summary in ``out``; ``None`` when missing or unreadable."""
    try:
        doc = json.loads((out / SUMMARY_JSON).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) and isinstance(doc.get("slides"), list) else None
