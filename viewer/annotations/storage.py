"""Per-slide annotation files in the user data folder: save, autosave and crash recovery.

Files for one slide live in ``<user data>/annotations/`` under the slide's key (its
``source_id``, a content fingerprint, see :func:`slide_key`):

``<key>.geojson``
    the explicitly saved annotations (GeoJSON that QuPath can import too);
``<key>.geojson.bak``
    the version before the last save;
``<key>.autosave.geojson``
    unsaved work, written by :meth:`AnnotationStore.autosave` and removed by
    :meth:`AnnotationStore.save`;
``<key>.geojson.damaged-<time>``
    a file that could not be read, moved aside so the next save cannot rotate it into
    the backup (nothing is deleted that might still hold work).

Every write is atomic (:func:`inference.core.atomic_io.atomic_write`): a crash at any moment
leaves the old or the new file, never a torn one.

How a GUI uses it::

    store = AnnotationStore()
    opened = store.open(source.info.source_id, source.info.mpp)
    for message in opened.messages:            # a damaged file, a backup used...
        show(message)
    annotations = opened.annotations
    if opened.recovery is not None and ask(f"Recover work from {opened.recovery.saved_at}?"):
        annotations = store.recover(source.info.source_id, source.info.mpp)
    elif opened.recovery is not None:
        store.discard_recovery(source.info.source_id)
    ...
    store.autosave(annotations)   # on a timer and after edits; cheap when nothing changed
    store.save(annotations)       # on "Save": keeps .bak, clears the autosave, marks clean

All methods run on the GUI thread (the annotation set is a GUI-thread model).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal

from inference.core.atomic_io import atomic_write_text, backup_path, remove_stale_temporaries
from viewer.annotations.annotation_set import AnnotationSet
from viewer.annotations.classes import DEFAULT_CLASSES, AnnotationClass, ClassPalette, as_rgb
from viewer.annotations.geojson.common import AnnotationFileError, GeoJSONLimits, ImportResult
from viewer.annotations.geojson.reader import import_geojson
from viewer.annotations.geojson.writer import dumps_geojson

#: Limits for reading our own files: generous (several imports may add up), still bounded.
STORE_LIMITS = GeoJSONLimits(
    max_bytes=1024 * 1024 * 1024,
    max_features=1_000_000,
    max_vertices_per_geometry=1_000_000,
    max_total_vertices=50_000_000,
)

_SAFE_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


def slide_key(source_id: str) -> str:
    """A file-name-safe key for a slide: ``source_id`` itself when it is plain
    (letters, digits, ``_.-``; the usual hex fingerprint is), else a hash of it."""
    if not source_id:
        raise ValueError("a slide needs a source_id to store annotations")
    if _SAFE_KEY.fullmatch(source_id) and not source_id.endswith("."):
        return source_id
    return "id-" + hashlib.sha256(source_id.encode("utf-8")).hexdigest()[:32]


def _when(ns: int | None) -> str:
    if not ns:
        return "at an unknown time"
    return datetime.fromtimestamp(ns / 1e9).strftime("%Y-%m-%d %H:%M:%S")


@dataclass(frozen=True)
class SlideFiles:
    """Where one slide's annotations are kept."""

    main: Path
    backup: Path
    recovery: Path


@dataclass(frozen=True)
class RecoveryInfo:
    """Unsaved work found when opening a slide: newer than the saved annotations."""

    path: Path
    saved_at_ns: int
    annotation_count: int

    @property
    def saved_at(self) -> str:
        """When it was written, local time, for a question to the user."""
        return _when(self.saved_at_ns)


@dataclass(frozen=True)
class OpenResult:
    """The annotations of a slide as found on disk.

    ``loaded_from`` is ``"saved"`` (the saved file), ``"backup"`` (the saved file was
    missing or damaged; the set is then dirty so it gets saved again) or ``"none"``
    (nothing saved yet, or nothing readable).  ``recovery`` is set when an autosave
    holds newer work the GUI should offer to recover.  ``messages`` are sentences to
    show the user (damaged files, which backup was used).
    """

    annotations: AnnotationSet
    loaded_from: Literal["saved", "backup", "none"]
    recovery: RecoveryInfo | None
    messages: tuple[str, ...] = ()


class AnnotationStore:
    """Loads and saves the annotations of slides in ``folder``.

    ``folder`` defaults to ``<user data>/annotations``.  Errors reading or writing
    raise :class:`AnnotationFileError`, whose message names the file.
    """

    def __init__(self, folder: Path | None = None, *, limits: GeoJSONLimits = STORE_LIMITS):
        self._folder = None if folder is None else Path(folder)
        self._limits = limits
        # source_id -> (id of the set, revision) last written to its autosave file
        self._autosaved: dict[str, tuple[int, int]] = {}
        # slides whose damaged main file could not be moved aside: never rotate it to .bak
        self._no_backup: set[str] = set()

    @property
    def folder(self) -> Path:
        if self._folder is None:
            from inference.core.paths import user_data_dir

            self._folder = user_data_dir() / "annotations"
        return self._folder

    def files(self, source_id: str) -> SlideFiles:
        key = slide_key(source_id)
        main = self.folder / f"{key}.geojson"
        return SlideFiles(main, backup_path(main), self.folder / f"{key}.autosave.geojson")

    # -- opening -----------------------------------------------------------------------

    def open(
        self,
        source_id: str,
        mpp: float | None = None,
        *,
        palette: Iterable[AnnotationClass] = DEFAULT_CLASSES,
    ) -> OpenResult:
        """Load a slide's saved annotations, falling back to the backup when damaged.

        ``palette`` is the class list to start from (e.g. the user's classes); classes
        saved with the slide are added to it (their saved colours win).  Never raises
        for damaged files: they are moved aside and reported in ``messages``.
        """
        files = self.files(source_id)
        for path in (files.main, files.recovery):
            remove_stale_temporaries(path)
        messages: list[str] = []
        loaded: ImportResult | None = None
        loaded_from: Literal["saved", "backup", "none"] = "none"

        if files.main.exists():
            try:
                loaded = self._read(files.main)
                loaded_from = "saved"
            except AnnotationFileError as exc:
                messages.append(
                    f"The saved annotations could not be read ({exc.problem}); "
                    + self._move_aside(files.main, source_id)
                )
        if loaded is None and files.backup.exists():
            try:
                loaded = self._read(files.backup)
                loaded_from = "backup"
                messages.append(
                    f"Loaded the previous version of the annotations from {files.backup.name} "
                    f"(saved {_when(loaded.saved_at_ns)}); save to make it current."
                )
            except AnnotationFileError as exc:
                messages.append(
                    f"The backup {files.backup.name} could not be read ({exc.problem})."
                )

        annotations = self._make_set(source_id, mpp, loaded, palette, dirty=loaded_from == "backup")
        recovery = self._find_recovery(files, source_id, loaded, messages)
        return OpenResult(annotations, loaded_from, recovery, tuple(messages))

    def _find_recovery(
        self,
        files: SlideFiles,
        source_id: str,
        loaded: ImportResult | None,
        messages: list[str],
    ) -> RecoveryInfo | None:
        if not files.recovery.exists():
            return None
        try:
            found = self._read(files.recovery)
        except AnnotationFileError as exc:
            messages.append(
                f"Autosaved work could not be read ({exc.problem}); "
                + self._move_aside(files.recovery, None)
            )
            return None
        base_ns = (loaded.saved_at_ns or 0) if loaded is not None else 0
        found_ns = found.saved_at_ns or 0
        same = loaded is not None and (found.annotations, found.palette) == (
            loaded.annotations,
            loaded.palette,
        )
        if found_ns > base_ns and not same:
            return RecoveryInfo(files.recovery, found_ns, len(found.annotations))
        files.recovery.unlink(missing_ok=True)  # older than the save, or nothing new in it
        return None

    def recover(
        self,
        source_id: str,
        mpp: float | None = None,
        *,
        palette: Iterable[AnnotationClass] = DEFAULT_CLASSES,
    ) -> AnnotationSet:
        """The autosaved work of a slide, as a dirty set (it is not saved yet).

        The autosave file stays until the next :meth:`save`.
        """
        files = self.files(source_id)
        found = self._read(files.recovery)
        return self._make_set(source_id, mpp, found, palette, dirty=True)

    def discard_recovery(self, source_id: str) -> None:
        """Delete a slide's autosave (the user chose not to recover it)."""
        self.files(source_id).recovery.unlink(missing_ok=True)
        self._autosaved.pop(source_id, None)

    # -- writing -----------------------------------------------------------------------

    def save(self, annotations: AnnotationSet) -> Path:
        """Save explicitly: atomically, keeping the previous version as ``.bak``.

        Then removes the autosave and marks the set clean.  Returns the file written.
        """
        source_id = annotations.source_id
        files = self.files(source_id)
        self._write(files.main, annotations, backup=source_id not in self._no_backup)
        self._no_backup.discard(source_id)
        files.recovery.unlink(missing_ok=True)
        self._autosaved.pop(source_id, None)
        annotations.mark_clean()
        return files.main

    def autosave(self, annotations: AnnotationSet) -> Path | None:
        """Write unsaved work to the slide's autosave file, if there is any new since the
        last autosave; returns the file written, or ``None`` when nothing was needed.

        When the set is clean again (saved, or edits undone) the autosave this store
        wrote for it is removed.  An autosave found when opening is never touched here.
        """
        source_id = annotations.source_id
        files = self.files(source_id)
        mine = self._autosaved.get(source_id)
        if not annotations.dirty:
            if mine is not None and mine[0] == id(annotations):
                files.recovery.unlink(missing_ok=True)
                del self._autosaved[source_id]
            return None
        stamp = (id(annotations), annotations.revision)
        if mine == stamp:
            return None
        self._write(files.recovery, annotations, backup=False)
        self._autosaved[source_id] = stamp
        return files.recovery

    # -- helpers -----------------------------------------------------------------------

    def _read(self, path: Path) -> ImportResult:
        return import_geojson(path, limits=self._limits)

    def _write(self, path: Path, annotations: AnnotationSet, *, backup: bool) -> None:
        text = dumps_geojson(
            annotations.annotations(),
            palette=annotations.palette,
            source_id=annotations.source_id,
            saved_at_ns=time.time_ns(),
        )
        try:
            atomic_write_text(path, text, backup=backup)
        except OSError as exc:
            raise AnnotationFileError(path, f"could not save: {exc.strerror or exc}") from exc

    @staticmethod
    def _make_set(
        source_id: str,
        mpp: float | None,
        loaded: ImportResult | None,
        palette: Iterable[AnnotationClass],
        *,
        dirty: bool,
    ) -> AnnotationSet:
        classes = {c.name: c for c in palette}
        if loaded is not None:
            classes.update((c.name, c) for c in (*loaded.palette, *loaded.classes))
        return AnnotationSet(
            source_id,
            mpp,
            loaded.annotations if loaded is not None else (),
            palette=ClassPalette(classes.values()),
            dirty=dirty,
        )

    def _move_aside(self, path: Path, source_id: str | None) -> str:
        """Rename a damaged file out of the way; a sentence saying where it went."""
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        aside = path.with_name(f"{path.name}.damaged-{stamp}")
        n = 1
        while aside.exists():
            n += 1
            aside = path.with_name(f"{path.name}.damaged-{stamp}-{n}")
        try:
            os.replace(path, aside)
        except OSError as exc:
            if source_id is not None:
                self._no_backup.add(source_id)
            return f"it could not be moved aside ({exc.strerror or exc}) and was left in place."
        return f"it was kept as {aside.name}."


# -- the user's class list, shared by all slides ------------------------------------------

USER_PALETTE_FORMAT = 1
_MAX_PALETTE_BYTES = 1024 * 1024


def user_palette_path() -> Path:
    from inference.core.paths import user_data_dir

    return user_data_dir() / "annotation_classes.json"


def load_user_palette(path: Path | None = None) -> list[AnnotationClass]:
    """The user's annotation classes, or the defaults when none were saved.

    Raises :class:`AnnotationFileError` for a damaged file (the GUI then says so and
    uses :data:`DEFAULT_CLASSES`).
    """
    path = Path(path) if path is not None else user_palette_path()
    if not path.exists():
        return list(DEFAULT_CLASSES)
    try:
        if path.stat().st_size > _MAX_PALETTE_BYTES:
            raise AnnotationFileError(path, f"file is larger than {_MAX_PALETTE_BYTES} bytes")
        doc = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError, RecursionError) as exc:
        raise AnnotationFileError(path, f"cannot read the class list: {exc}") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("classes"), list):
        raise AnnotationFileError(path, "expected an object with a 'classes' array")
    classes = []
    for number, entry in enumerate(doc["classes"], start=1):
        try:
            if not isinstance(entry, dict):
                raise ValueError("not an object")
            name, colour = entry.get("name"), entry.get("color")
            if not isinstance(name, str) or not isinstance(colour, list):
                raise ValueError('expected {"name": ..., "color": [r, g, b]}')
            classes.append(AnnotationClass(name, as_rgb(colour)))
        except (TypeError, ValueError) as exc:
            raise AnnotationFileError(path, f"class {number}: {exc}") from exc
    return classes


def save_user_palette(classes: Iterable[AnnotationClass], path: Path | None = None) -> None:
    """Save the user's class list (atomically, keeping a ``.bak``)."""
    path = Path(path) if path is not None else user_palette_path()
    doc = {
        "format": USER_PALETTE_FORMAT,
        "classes": [{"name": c.name, "color": list(c.colour)} for c in classes],
    }
    try:
        atomic_write_text(path, json.dumps(doc, ensure_ascii=False, indent=1), backup=True)
    except OSError as exc:
        raise AnnotationFileError(path, f"could not save: {exc.strerror or exc}") from exc
