"""The project file: a project as JSON, read and written whole.

Contract: :func:`save_project` writes ``{"format": 1, "kind": "slidelens-project",
"name", "source_folder", "results_folder", "model", "slides": [...]}`` atomically (with
the previous version kept as ``.bak``), each slide with its path, name, facts, typed
pixel size, status and message, slide-level outputs, result folder and annotation file.
Paths inside the project file's folder are written relative to it, so a project folder
moved or mounted elsewhere still finds its slides; other paths are absolute.  A running
or queued slide is saved as not run (a run does not survive the viewer).

:func:`load_project` reads it back; a file that cannot be used raises
:class:`ProjectFileError` naming the file and the cause (missing, unreadable, not JSON,
not a project, a newer format).  A slide entry that cannot be used is skipped and named
in ``Project.load_problems``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from inference.core.atomic_io import atomic_write_text
from viewer.projects.model import DONE, FAILED, NOT_RUN, Project, ProjectSlide

FORMAT = 1
KIND = "slidelens-project"


class ProjectFileError(ValueError):
    """A project file that cannot be read (the message names it and says why)."""


def _rel(path: Path | None, base: Path) -> str | None:
    if path is None:
        return None
    try:
        return Path(path).resolve().relative_to(base.resolve()).as_posix()
    except ValueError:
        return str(Path(path).resolve())


def _abs(text: object, base: Path) -> Path | None:
    if not isinstance(text, str) or not text:
        return None
    path = Path(text).expanduser()
    return path if path.is_absolute() else base / path


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def project_document(project: Project, path: Path) -> dict[str, Any]:
    """What :func:`save_project` writes for ``project`` at ``path``."""
    base = path.parent
    slides = []
    for slide in project.slides:
        status = slide.status if slide.status in (DONE, FAILED) else NOT_RUN
        slides.append(
            {
                "path": _rel(slide.path, base),
                "name": slide.name,
                "width": slide.width,
                "height": slide.height,
                "mpp": slide.mpp,
                "typed_mpp": slide.typed_mpp,
                "scanner": slide.scanner,
                "source_id": slide.source_id,
                "status": status,
                "message": slide.message if status == FAILED else "",
                "outputs": slide.outputs,
                "results": _rel(slide.results, base),
                "annotations": _rel(slide.annotations, base),
            }
        )
    return {
        "format": FORMAT,
        "kind": KIND,
        "name": project.name,
        "source_folder": _rel(project.source_folder, base),
        "results_folder": _rel(project.results_folder, base),
        "model": project.model,
        "slides": slides,
    }


def save_project(project: Project, path: Path | None = None) -> Path:
    """Write ``project`` to ``path`` (default: its own) and make that its file.

    Raises :class:`OSError` (with the path) when it cannot be written.
    """
    target = Path(path) if path is not None else project.path
    if target is None:
        raise ValueError("the project has no file yet; give a path")
    previous = project.path
    project.path = target  # its default results folder lives beside the file
    try:
        doc = project_document(project, target)
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(target, json.dumps(doc, indent=2, ensure_ascii=False) + "\n", backup=True)
    except BaseException:
        project.path = previous
        raise
    project.dirty = False
    return target


def load_project(path: Path) -> Project:
    """The project in ``path`` (see the module docstring)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ProjectFileError(f"{path}: no such project file") from None
    except IsADirectoryError:
        raise ProjectFileError(f"{path}: is a folder, not a project file") from None
    except UnicodeDecodeError:
        raise ProjectFileError(f"{path}: not a project file (binary data, not text)") from None
    except OSError as exc:
        raise ProjectFileError(f"{path}: cannot be read ({exc.strerror or exc})") from exc
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise ProjectFileError(f"{path}: not a project file (not valid JSON: {exc})") from exc
    if not isinstance(doc, dict) or doc.get("kind") != KIND:
        raise ProjectFileError(f'{path}: not a SlideLens project file (no "kind": "{KIND}")')
    version = doc.get("format")
    if not isinstance(version, int) or version > FORMAT:
        raise ProjectFileError(
            f"{path}: project format {version!r} is newer than this SlideLens reads "
            f"({FORMAT}); update SlideLens"
        )
    entries = doc.get("slides")
    if not isinstance(entries, list):
        raise ProjectFileError(f'{path}: not a SlideLens project file (no "slides" list)')
    base = path.parent
    project = Project(
        path,
        source_folder=_abs(doc.get("source_folder"), base),
        results_folder=_abs(doc.get("results_folder"), base),
        model=doc.get("model") if isinstance(doc.get("model"), str) else None,
    )
    problems: list[str] = []
    for number, entry in enumerate(entries, 1):
        slide = _slide(entry, base)
        if slide is None or project.index_of(slide.name) is not None:
            problems.append(f"slide entry {number} is unusable or repeats a name")
            continue
        project._append(slide)
    project.load_problems = problems
    project.dirty = False
    return project


def _slide(entry: object, base: Path) -> ProjectSlide | None:
    if not isinstance(entry, dict):
        return None
    path = _abs(entry.get("path"), base)
    name = entry.get("name")
    if path is None or not isinstance(name, str) or not name:
        return None
    outputs = entry.get("outputs")
    status = entry.get("status")
    width, height = entry.get("width"), entry.get("height")
    return ProjectSlide(
        path=path,
        name=name,
        width=width if isinstance(width, int) else None,
        height=height if isinstance(height, int) else None,
        mpp=_number(entry.get("mpp")),
        typed_mpp=_number(entry.get("typed_mpp")),
        scanner=str(entry.get("scanner") or ""),
        source_id=str(entry.get("source_id") or ""),
        status=status if status in (DONE, FAILED) else NOT_RUN,
        message=str(entry.get("message") or ""),
        outputs={
            str(k): float(v)
            for k, v in (outputs.items() if isinstance(outputs, dict) else ())
            if _number(v) is not None
        },
        results=_abs(entry.get("results"), base),
        annotations=_abs(entry.get("annotations"), base),
    )
