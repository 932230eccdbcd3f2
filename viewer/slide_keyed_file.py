"""A small JSON file of what the viewer remembers per slide, ``{"version": V, "slides":
{source_id: entry}}``, read once and rewritten atomically.  Qt-free.

Shared by the stores of typed pixel sizes (:mod:`viewer.pixel_size`) and layer settings
(:mod:`viewer.layer_memory`), which validate their own entries.  Bad input is normal
input: a file that cannot be read leaves ``problem`` naming the file and the cause and
reads as empty; it is kept as ``<name>.damaged`` when the store is next written, so
nothing the user had is overwritten unseen.  A failed write leaves ``problem`` set and
the caller keeps its entries for the session.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from inference.core.atomic_io import atomic_write_text

log = logging.getLogger(__name__)


@dataclass
class SlideKeyedFile:
    """The file at ``path`` and how its messages name what it holds.

    ``contents`` names it when it cannot be read ("the remembered pixel sizes"),
    ``kind`` in the "not a ... file" message ("pixel-size"), ``kept_when`` ends the
    ".damaged" note (e.g. " when a new size is saved"), and ``unsaved`` is the message
    after a failed write, with ``{cause}`` in it.
    """

    path: Path
    version: int
    contents: str
    kind: str
    unsaved: str
    kept_when: str = ""
    indent: int = 1
    problem: str | None = None
    _damaged: bool = False

    def load(self) -> dict[Any, Any]:
        """The ``slides`` object as read (entries unchecked), or ``{}`` with ``problem``
        set when the file is there but unusable; a missing file is simply empty."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        except OSError as exc:
            return self._unreadable(exc.strerror or str(exc))
        try:
            raw = json.loads(text)
        except ValueError as exc:
            return self._unreadable(f"not valid JSON: {exc}")
        slides = raw.get("slides") if isinstance(raw, dict) else None
        if not isinstance(slides, dict):
            return self._unreadable(f'not a {self.kind} file (no "slides" object)')
        return slides

    def save(self, slides: dict[str, Any]) -> bool:
        """Write ``slides`` atomically (keeping a damaged file aside first); ``False``
        with ``problem`` set when it could not be written."""
        doc = {"version": self.version, "slides": slides}
        try:
            if self._damaged and self.path.exists():
                os.replace(self.path, self.path.with_name(self.path.name + ".damaged"))
            self._damaged = False
            text = json.dumps(doc, indent=self.indent, ensure_ascii=False) + "\n"
            atomic_write_text(self.path, text)
        except OSError as exc:
            self.problem = f"{self.path}: " + self.unsaved.format(cause=exc.strerror or exc)
            log.warning("%s", self.problem)
            return False
        self.problem = None
        return True

    def _unreadable(self, cause: str) -> dict[Any, Any]:
        self._damaged = True
        self.problem = (
            f"{self.path}: {self.contents} could not be read ({cause}); starting with none "
            f"(the file will be kept as {self.path.name}.damaged{self.kept_when})"
        )
        log.warning("%s", self.problem)
        return {}
