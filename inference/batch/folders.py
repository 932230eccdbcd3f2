"""Result folders that appear whole or not at all.

Contract: a slide's outputs are written into a hidden temporary sibling of its result
folder (:func:`partial_folder`, ``OUT/.<name>.partial-<id>``), then :func:`publish`
renames it into place (``OUT/<name>``).  A folder being replaced is first renamed
aside (``OUT/.<name>.replaced-<id>``) and removed after the new one is in place, so at
every instant ``OUT/<name>`` is absent, the old complete folder or the new complete
folder.  A crash leaves only hidden ``.partial-`` / ``.replaced-`` folders, which
:func:`remove_stale` deletes (the batch runner does at start and at the end, when no
task of its own is writing).  When another attempt of the same slide (a task Dask
rescheduled while the first still ran) already published an equal result,
:func:`publish` discards its own copy: one folder per slide, never two.
"""

from __future__ import annotations

import os
import re
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path

from inference.core.atomic_io import fsync_directory

_STALE = re.compile(r"^\..+\.(partial|replaced)-[0-9a-f]{12}$")
#: Attempts at moving a folder aside while others publish the same name.
_PUBLISH_TRIES = 5


def _hidden(out: Path, name: str, kind: str) -> Path:
    return out / f".{name}.{kind}-{uuid.uuid4().hex[:12]}"


def partial_folder(out: Path, name: str) -> Path:
    """A new, empty temporary folder for ``name``'s outputs inside ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    folder = _hidden(out, name, "partial")
    folder.mkdir()
    return folder


def publish(partial: Path, final: Path, already_done: Callable[[Path], bool]) -> bool:
    """Rename ``partial`` to ``final``, replacing an older ``final``.

    ``already_done(final)`` says whether an existing ``final`` already holds this very
    result (then ``partial`` is removed and ``False`` returned).  Returns ``True`` when
    ``partial`` became ``final``.
    """
    out = final.parent
    for _ in range(_PUBLISH_TRIES):
        if final.exists():
            if already_done(final):
                shutil.rmtree(partial, ignore_errors=True)
                return False
            aside = _hidden(out, final.name, "replaced")
            try:
                os.rename(final, aside)
            except FileNotFoundError:
                continue  # someone else moved it meanwhile: look again
        else:
            aside = None
        try:
            os.rename(partial, final)
        except OSError:
            if not final.exists():
                raise
            continue  # another attempt published first: look again
        fsync_directory(out)
        if aside is not None:
            shutil.rmtree(aside, ignore_errors=True)
        return True
    raise OSError(f"{final}: could not publish the results: the folder kept changing")


def stale_folders(out: Path) -> list[Path]:
    """The temporary folders a crashed or interrupted run left in ``out``."""
    try:
        return sorted(p for p in out.iterdir() if _STALE.match(p.name) and p.is_dir())
    except OSError:
        return []


def remove_stale(out: Path) -> list[Path]:
    """Delete :func:`stale_folders`; returns what was removed."""
    removed = []
    for folder in stale_folders(out):
        shutil.rmtree(folder, ignore_errors=True)
        if not folder.exists():
            removed.append(folder)
    return removed
