"""A project: the slides of a study and what is known of each, with events.

Contract: :class:`Project` holds :class:`ProjectSlide`\\ s in the order they were added,
each with a name unique in the project (its result folder's name in a batch run, see
:mod:`inference.batch.inputs`), the facts its file states (dimensions, pixel size,
scanner, content id), the pixel size the user typed for it, its status (:data:`STATUSES`)
with the message of a failure, the patches of a running slide, its slide-level outputs,
its result folder and its annotation file.  Every change goes through the project and
emits ``slide_changed(index)`` (one slide) or ``changed()`` (slides added or removed);
:attr:`Project.dirty` says whether it differs from its file.  GUI thread only.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from psygnal import Signal

from inference.batch.inputs import slides_in_folder
from inference.batch.one_slide import output_stem
from inference.batch.progress import SlideState

NOT_RUN, QUEUED, RUNNING, DONE, FAILED = "not run", "queued", "running", "done", "failed"
#: What a slide's status may be, in the order a run goes through them.
STATUSES = (NOT_RUN, QUEUED, RUNNING, DONE, FAILED)
#: A batch slide's status as a project shows it (``cancelled``: as before the run).
_FROM_BATCH = {
    "queued": QUEUED,
    "running": RUNNING,
    "done": DONE,
    "skipped": DONE,
    "failed": FAILED,
}


@dataclass
class ProjectSlide:
    """One slide of a project (see the module docstring).

    ``mpp`` is the pixel size the slide states, ``typed_mpp`` one the user typed for a
    slide that states none; ``facts_error`` says why the file could not be read (the
    slide stays in the project).  ``done`` / ``total`` are patches of a running slide.
    """

    path: Path
    name: str
    width: int | None = None
    height: int | None = None
    mpp: float | None = None
    typed_mpp: float | None = None
    scanner: str = ""
    source_id: str = ""
    facts_error: str = ""
    status: str = NOT_RUN
    message: str = ""
    done: int = 0
    total: int = 0
    outputs: dict[str, float] = field(default_factory=dict)
    results: Path | None = None
    annotations: Path | None = None

    @property
    def effective_mpp(self) -> float | None:
        """The pixel size models run at: the stated one, else the typed one."""
        return self.mpp or self.typed_mpp

    @property
    def has_facts(self) -> bool:
        return self.width is not None or bool(self.facts_error)

    def progress(self) -> float | None:
        """0 to 1 for a running slide whose patches are known, else ``None``."""
        if self.status == RUNNING and self.total:
            return min(1.0, self.done / self.total)
        return None


_FIELDS = frozenset(f.name for f in fields(ProjectSlide))


def unique_name(wanted: str, taken: Iterable[str]) -> str:
    """``wanted``, or ``wanted~2``, ``wanted~3``... the first not in ``taken`` (compared
    without case: one folder on case-insensitive file systems)."""
    used = {t.casefold() for t in taken}
    if wanted.casefold() not in used:
        return wanted
    number = 2
    while f"{wanted}~{number}".casefold() in used:
        number += 1
    return f"{wanted}~{number}"


class Project:
    """The slides of a study (see the module docstring).

    ``path`` is the project file (``None`` until saved); ``source_folder`` the folder
    the slides came from, if any; ``model`` the model last run on the project.
    """

    changed = Signal()
    slide_changed = Signal(int)

    def __init__(
        self,
        path: Path | None = None,
        slides: Sequence[ProjectSlide] = (),
        *,
        source_folder: Path | None = None,
        results_folder: Path | None = None,
        model: str | None = None,
    ) -> None:
        self.path = path
        self.slides: list[ProjectSlide] = []
        self.source_folder = source_folder
        self._results_folder = results_folder
        self.model = model
        self.dirty = False
        #: Entries of its file that could not be used (see :mod:`viewer.projects.storage`).
        self.load_problems: list[str] = []
        self._index: dict[str, int] = {}
        for slide in slides:
            self._append(slide)

    @classmethod
    def from_folder(cls, folder: Path, path: Path | None = None) -> Project:
        """A project of every whole-slide file below ``folder`` (searched as
        ``slidelens batch`` searches a folder, leaving out the project's results)."""
        project = cls(path, source_folder=folder)
        exclude = [project.results_folder] if path is not None else []
        for item in slides_in_folder(folder, exclude):
            project._append(ProjectSlide(item.slide, unique_name(item.name, project._index)))
        project.dirty = True
        return project

    @property
    def name(self) -> str:
        if self.path is not None:
            return self.path.name.removesuffix(PROJECT_SUFFIX)
        return self.source_folder.name if self.source_folder is not None else "Untitled"

    @property
    def results_folder(self) -> Path:
        """Where batch runs write: stated, else ``<project file>-results`` beside it."""
        if self._results_folder is not None:
            return self._results_folder
        if self.path is None:
            raise ValueError("an unsaved project has no results folder yet; save it first")
        return self.path.with_name(f"{self.name}-results")

    @results_folder.setter
    def results_folder(self, folder: Path | None) -> None:
        self._results_folder = folder
        self.dirty = True

    def __len__(self) -> int:
        return len(self.slides)

    def __getitem__(self, index: int) -> ProjectSlide:
        return self.slides[index]

    def index_of(self, name: str) -> int | None:
        """The index of the slide called ``name``, or ``None``."""
        return self._index.get(name.casefold())

    def index_of_path(self, path: Path) -> int | None:
        """The index of the slide file ``path`` (compared resolved), or ``None``."""
        wanted = _resolved(path)
        return next((i for i, s in enumerate(self.slides) if _resolved(s.path) == wanted), None)

    def _append(self, slide: ProjectSlide) -> None:
        self._index[slide.name.casefold()] = len(self.slides)
        self.slides.append(slide)

    def add_slides(self, paths: Iterable[Path]) -> list[int]:
        """Add slide files not in the project yet; the indices of those added."""
        added = []
        for path in paths:
            if self.index_of_path(path) is not None:
                continue
            name = unique_name(output_stem(path), self._index)
            self._append(ProjectSlide(path, name))
            added.append(len(self.slides) - 1)
        if added:
            self.dirty = True
            self.changed.emit()
        return added

    def remove(self, indices: Iterable[int]) -> None:
        """Take slides out of the project (their files and results stay)."""
        gone = set(indices)
        if not gone:
            return
        kept = [s for i, s in enumerate(self.slides) if i not in gone]
        self.slides, self._index = [], {}
        for slide in kept:
            self._append(slide)
        self.dirty = True
        self.changed.emit()

    def update(self, index: int, **changes: Any) -> None:
        """Change fields of slide ``index``; emits ``slide_changed`` when any changed.

        Fields that are only a run's progress (``done``, ``total``) do not make the
        project dirty.
        """
        unknown = set(changes) - _FIELDS - {"name", "path"}
        if unknown or "name" in changes or "path" in changes:
            raise ValueError(f"cannot set {sorted(set(changes) - _FIELDS) or ['name/path']}")
        slide = self.slides[index]
        different = {k: v for k, v in changes.items() if getattr(slide, k) != v}
        if not different:
            return
        for key, value in different.items():
            setattr(slide, key, value)
        if set(different) - {"done", "total"}:
            self.dirty = True
        self.slide_changed.emit(index)

    def apply_batch_state(self, state: SlideState) -> int | None:
        """Show a batch slide's state on the project slide of the same name; its index
        (``None``: not in this project).  A ``cancelled`` slide goes back to how it was
        before the run: done when it has results, else not run."""
        index = self.index_of(state.name)
        if index is None:
            return None
        slide = self.slides[index]
        status = _FROM_BATCH.get(state.status)
        if status is None:  # cancelled
            status = DONE if slide.results is not None and slide.message == "" else NOT_RUN
            self.update(index, status=status, done=0, total=0)
            return index
        changes: dict[str, Any] = {"status": status, "done": state.done, "total": state.total}
        if status == DONE:
            changes.update(message="", outputs=dict(state.outputs), results=state.folder)
        elif status == FAILED:
            changes.update(message=state.message)
        elif status in (QUEUED, RUNNING):
            changes.update(message="")
        self.update(index, **changes)
        return index

    def output_names(self) -> list[str]:
        """Every slide-level output name any slide has, sorted."""
        return sorted({k for s in self.slides for k in s.outputs})

    def counts(self) -> dict[str, int]:
        """Slides per status."""
        return {status: sum(s.status == status for s in self.slides) for status in STATUSES}


#: The file name ending of project files.
PROJECT_SUFFIX = ".slidelens-project.json"


def _resolved(path: Path) -> Path:
    try:
        return path.expanduser().resolve()
    except OSError:
        return path
