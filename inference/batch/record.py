"""A batch slide's record: what its result folder was made from, and whether it is done.

Contract: every published result folder holds :data:`RECORD_NAME`, written last into the
temporary folder before it is renamed into place.  A slide is done when its folder's
record states the same slide content (``SlideInfo.source_id``, the content fingerprint
that :func:`inference.slides.open_slide` gives the slide), the same model hash and the
same result settings (:meth:`~inference.batch.settings.SlideSettings.result_settings`),
and every file ``slidelens infer`` writes is there and complete.  A missing, damaged or
other-format record means "not done" (the slide runs again), never an error.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from inference.batch.one_slide import is_complete, output_paths
from inference.core.atomic_io import atomic_write_text

#: The record's file name inside a slide's result folder.
RECORD_NAME = "batch-record.json"
#: Bumped when the record's layout changes; older records then mean "not done".
RECORD_FORMAT = 1


@dataclass(frozen=True)
class RunIdentity:
    """What a slide's results depend on: its content, the model and the settings."""

    source_id: str
    model_sha256: str
    settings: dict[str, Any]


@dataclass
class SlideRecord:
    """What one finished slide's folder holds (written as JSON by :func:`write_record`).

    ``seconds`` is the successful attempt's time on its worker; ``counts`` the patch
    counts of ``slidelens infer`` (patches, computed, background, unreadable);
    ``outputs`` the slide-level outputs (:mod:`inference.results.slide_level`).
    """

    slide: str
    name: str
    stem: str
    source_id: str
    model: str
    model_sha256: str
    settings: dict[str, Any]
    seconds: float
    counts: dict[str, int] = field(default_factory=dict)
    outputs: dict[str, float] = field(default_factory=dict)
    finished: str = ""
    worker: str = ""

    @property
    def identity(self) -> RunIdentity:
        return RunIdentity(self.source_id, self.model_sha256, self.settings)

    def to_json(self) -> dict[str, Any]:
        return {"format": RECORD_FORMAT, **asdict(self)}

    @classmethod
    def from_json(cls, doc: Any) -> SlideRecord | None:
        """The record in ``doc``, or ``None`` when it is not a record of this format."""
        if not isinstance(doc, dict) or doc.get("format") != RECORD_FORMAT:
            return None
        try:
            return cls(
                slide=str(doc["slide"]),
                name=str(doc["name"]),
                stem=str(doc["stem"]),
                source_id=str(doc["source_id"]),
                model=str(doc["model"]),
                model_sha256=str(doc["model_sha256"]),
                settings=dict(doc["settings"]),
                seconds=float(doc["seconds"]),
                counts={str(k): int(v) for k, v in dict(doc.get("counts", {})).items()},
                outputs={str(k): float(v) for k, v in dict(doc.get("outputs", {})).items()},
                finished=str(doc.get("finished", "")),
                worker=str(doc.get("worker", "")),
            )
        except (KeyError, TypeError, ValueError):
            return None


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_record(folder: Path, record: SlideRecord) -> None:
    """Write ``record`` into ``folder`` atomically."""
    doc = {k: _clean(v) for k, v in record.to_json().items()}
    atomic_write_text(folder / RECORD_NAME, json.dumps(doc, indent=2) + "\n")


def read_record(folder: Path) -> SlideRecord | None:
    """The record in ``folder``; ``None`` when missing, unreadable or of another format."""
    try:
        doc = json.loads((folder / RECORD_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return SlideRecord.from_json(doc)


def done_record(folder: Path, slide: Path, stem: str, identity: RunIdentity) -> SlideRecord | None:
    """The record of ``folder`` when it holds complete results made from ``identity``
    (see the module docstring); ``None`` otherwise."""
    record = read_record(folder)
    if record is None or record.identity != identity or record.stem != stem:
        return None
    if not is_complete(output_paths(folder, slide, stem)):
        return None
    return record
