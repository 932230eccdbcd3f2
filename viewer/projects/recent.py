"""Recently opened projects, newest first, kept in the user data folder.

Contract: :class:`RecentProjects` reads ``recent-projects.json`` once and rewrites it
atomically on every change; at most :data:`MAX_RECENT` paths.  A missing or damaged
file is an empty list (never an error); a failed write keeps the list for the session.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from inference.core.atomic_io import atomic_write_text
from inference.core.paths import user_data_dir

log = logging.getLogger(__name__)

FILE_NAME = "recent-projects.json"
MAX_RECENT = 10


class RecentProjects:
    """The recent project files (see the module docstring)."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = Path(path) if path is not None else user_data_dir() / FILE_NAME
        self.paths: list[Path] = self._load()

    def _load(self) -> list[Path]:
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as exc:
            log.warning("%s: recent projects unreadable (%s); starting with none", self.path, exc)
            return []
        items = raw.get("projects") if isinstance(raw, dict) else None
        if not isinstance(items, list):
            return []
        return [Path(p) for p in items if isinstance(p, str)][:MAX_RECENT]

    def add(self, project_file: Path) -> None:
        """Put ``project_file`` first (once) and save."""
        path = Path(project_file).resolve()
        self.paths = [path, *(p for p in self.paths if p != path)][:MAX_RECENT]
        self._save()

    def remove(self, project_file: Path) -> None:
        """Forget ``project_file`` (one that could not be opened) and save."""
        path = Path(project_file).resolve()
        if path in self.paths:
            self.paths = [p for p in self.paths if p != path]
            self._save()

    def _save(self) -> None:
        doc = {"projects": [str(p) for p in self.paths]}
        try:
            atomic_write_text(self.path, json.dumps(doc, indent=2) + "\n")
        except OSError as exc:
            log.warning("%s: recent projects not saved (%s)", self.path, exc)
