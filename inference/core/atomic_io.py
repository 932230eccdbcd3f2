"""Atomic file writes: a reader sees the old file or the new one, never a torn one.

:func:`atomic_write` writes into a temporary sibling (same folder, so the same file
system), flushes and fsyncs it, renames it over the target with :func:`os.replace`
(atomic on POSIX and Windows) and fsyncs the folder so the rename itself survives a
power cut.  A crash or a full disk at any moment leaves the previous file intact.

With ``backup=True`` the previous version is kept as ``<name>.bak`` first.  The backup
is refreshed atomically too (hard link or copy into a temporary, then rename), so at
every instant the target exists (when it existed before) and the backup is either the
previous backup or the previous version, never a partial file.
"""

from __future__ import annotations

import glob
import os
import shutil
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import IO

#: Appended to a file's name for its previous version.
BACKUP_SUFFIX = ".bak"


def backup_path(path: Path) -> Path:
    """Where :func:`atomic_write` keeps the previous version of ``path``."""
    return path.with_name(path.name + BACKUP_SUFFIX)


def _temporary_sibling(path: Path) -> Path:
    return path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")


def fsync_directory(folder: Path) -> None:
    """Make the renames done in ``folder`` durable.

    A no-op where a folder cannot be opened for syncing (Windows), where renames are
    made durable by the file system itself.
    """
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems refuse fsync on a directory; the rename still happened
    finally:
        os.close(fd)


def _refresh_backup(path: Path) -> None:
    """Make ``path.bak`` hold the current content of ``path`` (nothing if it is absent)."""
    bak = backup_path(path)
    tmp = _temporary_sibling(bak)
    try:
        try:
            # A hard link costs no copy: the later os.replace gives ``path`` a new inode
            # and the link keeps the old one alive as the backup.
            os.link(path, tmp)
        except FileNotFoundError:
            return
        except OSError:  # no hard links on this file system (FAT, some network shares)
            try:
                shutil.copyfile(path, tmp)
            except FileNotFoundError:
                return
            with open(tmp, "r+b") as fh:
                os.fsync(fh.fileno())
        os.replace(tmp, bak)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write(path: Path, write: Callable[[IO[bytes]], object], *, backup: bool = False) -> None:
    """Write a file through ``write(fh)`` into a temporary sibling, then rename it in place.

    A crash or a full disk leaves the old file (or none, if there was none), never a
    truncated one.  With ``backup=True`` the current file, if any, is first kept as
    ``path.bak`` (see :func:`backup_path`); the previous backup is replaced.  Errors
    from ``write`` or the file system propagate after the temporary file is removed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if backup:
        _refresh_backup(path)
    tmp = _temporary_sibling(path)
    try:
        with open(tmp, "xb") as fh:  # honours the umask, unlike mkstemp's 0600
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_directory(path.parent)


def atomic_write_bytes(path: Path, data: bytes, *, backup: bool = False) -> None:
    """:func:`atomic_write` of a byte string."""
    atomic_write(path, lambda fh: fh.write(data), backup=backup)


def atomic_write_text(path: Path, text: str, *, backup: bool = False) -> None:
    """:func:`atomic_write` of a string, encoded as UTF-8."""
    atomic_write_bytes(path, text.encode("utf-8"), backup=backup)


def remove_stale_temporaries(path: Path, older_than_s: float = 3600.0) -> int:
    """Delete temporaries of ``path`` (and of its backup) left by a killed writer.

    Only files older than ``older_than_s`` seconds go, so a write in progress in
    another process is not disturbed.  Returns how many were removed.
    """
    path = Path(path)
    pattern = f".{glob.escape(path.name)}.*.tmp"
    now = time.time()
    removed = 0
    for candidate in path.parent.glob(pattern):
        try:
            if now - candidate.stat().st_mtime >= older_than_s:
                candidate.unlink()
                removed += 1
        except FileNotFoundError:
            continue
    return removed
