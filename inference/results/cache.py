"""The on-disk result cache: finished results keyed by slide content, model and parameters,
bounded in size with least-recently-used eviction, with an index so a slide's entries are
found without reading anyone else's.

Layout of the cache folder::

    <key>.npz      the result's arrays
    <key>.json     its metadata, written last: its presence marks a complete entry
    index.json     key -> source_id, bytes, created, last_used (a hint, rebuilt when lost)
    index.lock     serialises index updates between processes (the viewer and the CLI)

The index is never the only record: a missing, damaged or outdated index is rebuilt
from the ``<key>.json`` files (once), and an index row whose files are gone is dropped.
Eviction removes least recently used entries (``last_used`` is set by :meth:`save` and
:meth:`load`) until the cache is within ``max_bytes``; the entry just saved is kept.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from inference.core.atomic_io import atomic_write, atomic_write_text
from inference.results.store import CACHE_FORMAT, InferenceResult, result_from_arrays

log = logging.getLogger(__name__)

#: Environment variable that sets the cache cap in MiB (the viewer's setting passes it too).
CACHE_MB_ENV = "SLIDELENS_RESULT_CACHE_MB"
#: Default cap: 4 GiB of results (a whole-slide result is typically 0.1-50 MB).
DEFAULT_CACHE_MB = 4096
INDEX_NAME = "index.json"
INDEX_FORMAT = 1


def default_max_bytes() -> int:
    """``$SLIDELENS_RESULT_CACHE_MB`` (when a positive number) or :data:`DEFAULT_CACHE_MB`."""
    stated = os.environ.get(CACHE_MB_ENV, "")
    try:
        mb = float(stated)
    except ValueError:
        mb = 0.0
    return int((mb if mb > 0 else DEFAULT_CACHE_MB) * 2**20)


@dataclass(frozen=True)
class CachedResult:
    result: InferenceResult
    meta: dict[str, Any]


@dataclass
class IndexRow:
    """What the index knows of one entry."""

    source_id: str
    bytes: int
    created: float
    last_used: float

    @classmethod
    def from_json(cls, data: Any) -> IndexRow | None:
        if not isinstance(data, dict):
            return None
        try:
            return cls(
                str(data["source_id"]),
                int(data["bytes"]),
                float(data["created"]),
                float(data["last_used"]),
            )
        except (KeyError, TypeError, ValueError):
            return None


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock on ``path`` between processes (POSIX ``flock``; elsewhere none)."""
    try:
        import fcntl
    except ImportError:  # Windows: index updates are rare; the index heals itself
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


class ResultCache:
    """Finished results on disk (see the module docstring), at most ``max_bytes`` of them.

    :meth:`load` returns ``None`` for a miss and for an entry that cannot be read back.
    Safe to use from several threads and processes at once: entries are written
    atomically and index updates are serialised by a lock file.
    """

    def __init__(self, folder: Path | None = None, *, max_bytes: int | None = None) -> None:
        if folder is None:
            from inference.core.paths import user_data_dir

            folder = user_data_dir() / "cache" / "results"
        self.folder = Path(folder)
        self.max_bytes = default_max_bytes() if max_bytes is None else int(max_bytes)
        if self.max_bytes <= 0:
            raise ValueError(f"a cache cap must be positive; got {self.max_bytes} bytes")

    @staticmethod
    def key(source_id: str, model_sha256: str, params: Mapping[str, Any]) -> str:
        """SHA-256 over the slide's content id, the model's hash and the parameters."""
        import hashlib

        blob = json.dumps(
            {
                "format": CACHE_FORMAT,
                "source_id": source_id,
                "model_sha256": model_sha256,
                "params": params,
            },
            sort_keys=True,
            default=str,
        )
        return hashlib.sha256(blob.encode()).hexdigest()

    # -- entries --------------------------------------------------------------------

    def _paths(self, key: str) -> tuple[Path, Path]:
        if not key or any(c not in "0123456789abcdef" for c in key):
            raise ValueError(f"not a cache key: {key!r}")
        return self.folder / f"{key}.npz", self.folder / f"{key}.json"

    def save(
        self, key: str, result: InferenceResult, meta: Mapping[str, Any] | None = None
    ) -> Path:
        """Store a result atomically, index it, evict what is over the cap; return the
        JSON path.  ``meta["source_id"]`` names the slide the entry is found under."""
        npz_path, json_path = self._paths(key)
        arrays = result.stored_arrays()  # with the embeddings, when it has them
        atomic_write(npz_path, lambda fh: np.savez_compressed(fh, **arrays))  # type: ignore[arg-type]
        entry_meta = dict(meta or {})
        doc = {
            "format": CACHE_FORMAT,
            "key": key,
            "result": result.meta(),
            "meta": entry_meta,
        }
        atomic_write_text(json_path, json.dumps(doc, indent=1, default=str))
        size = _size(npz_path) + _size(json_path)
        now = time.time()
        with self._index() as index:
            index[key] = IndexRow(str(entry_meta.get("source_id", "")), size, now, now)
            self._evict(index, keep=key)
        return json_path

    def load(self, key: str) -> CachedResult | None:
        """The stored result (and it becomes the most recently used), or ``None`` when
        missing or unreadable (an unreadable entry is removed)."""
        npz_path, json_path = self._paths(key)
        if not json_path.is_file():
            return None
        try:
            doc = json.loads(json_path.read_text("utf-8"))
            if doc.get("format") != CACHE_FORMAT or doc.get("key") != key:
                return None
            with np.load(npz_path, allow_pickle=False) as data:
                arrays = {name: data[name] for name in data.files}
            result = result_from_arrays(doc["result"], arrays)
        except Exception as exc:  # a damaged entry is a miss, whatever broke
            log.warning("ignoring unreadable result cache entry %s: %s", json_path.name, exc)
            return None
        meta = doc.get("meta", {})
        with self._index() as index:
            row = index.get(key)
            if row is not None:
                row.last_used = time.time()
            else:  # written by an older SlideLens, before the index
                size = _size(npz_path) + _size(json_path)
                source_id = str(meta.get("source_id", "")) if isinstance(meta, dict) else ""
                index[key] = IndexRow(source_id, size, time.time(), time.time())
        return CachedResult(result=result, meta=dict(meta) if isinstance(meta, dict) else {})

    def entries_for(self, source_id: str) -> list[tuple[str, dict[str, Any]]]:
        """``(key, meta)`` of every stored result of the slide ``source_id``, newest first.

        Only that slide's entries are read (the index says which); unreadable ones are
        skipped.
        """
        if not self.folder.is_dir():
            return []
        with self._index() as index:
            mine = sorted(
                ((row.created, key) for key, row in index.items() if row.source_id == source_id),
                reverse=True,
            )
        found: list[tuple[str, dict[str, Any]]] = []
        gone: list[str] = []
        for _, key in mine:
            json_path = self._paths(key)[1]
            try:
                doc = json.loads(json_path.read_text("utf-8"))
                meta = doc.get("meta", {})
                if doc.get("format") == CACHE_FORMAT and isinstance(meta, dict):
                    found.append((key, meta))
            except FileNotFoundError:  # removed by hand, or evicted by another process
                gone.append(key)
            except (OSError, ValueError) as exc:
                log.warning("ignoring unreadable result cache entry %s: %s", json_path.name, exc)
        if gone:
            with self._index() as index:
                for key in gone:
                    self._remove(index, key)
        return found

    def discard(self, key: str) -> None:
        """Remove one entry (files and index row)."""
        with self._index() as index:
            self._remove(index, key)

    def total_bytes(self) -> int:
        """Bytes of all indexed entries."""
        with self._index() as index:
            return sum(row.bytes for row in index.values())

    # -- index ----------------------------------------------------------------------

    @contextlib.contextmanager
    def _index(self) -> Iterator[dict[str, IndexRow]]:
        """The index, locked; changes made to the yielded dict are written back."""
        self.folder.mkdir(parents=True, exist_ok=True)
        with _locked(self.folder / "index.lock"):
            index, clean = self._read_index()
            before = {key: (row.bytes, row.last_used) for key, row in index.items()}
            yield index
            after = {key: (row.bytes, row.last_used) for key, row in index.items()}
            if after != before or not clean:
                doc = {
                    "format": INDEX_FORMAT,
                    "entries": {key: vars(row) for key, row in index.items()},
                }
                atomic_write_text(self.folder / INDEX_NAME, json.dumps(doc, indent=0))

    def _read_index(self) -> tuple[dict[str, IndexRow], bool]:
        """The index and whether it was read as it is (``False``: rebuilt or healed)."""
        path = self.folder / INDEX_NAME
        try:
            doc = json.loads(path.read_text("utf-8"))
            entries = doc["entries"] if doc.get("format") == INDEX_FORMAT else None
            if not isinstance(entries, dict):
                raise ValueError("not a SlideLens result-cache index")
        except FileNotFoundError:
            return self._rebuild_index(), False
        except (OSError, ValueError, KeyError, AttributeError) as exc:
            log.warning("%s: rebuilding the result-cache index (%s)", path, exc)
            return self._rebuild_index(), False
        index = {}
        for key, data in entries.items():
            row = IndexRow.from_json(data)
            if row is not None and isinstance(key, str):
                index[key] = row
        return index, len(index) == len(entries)

    def _rebuild_index(self) -> dict[str, IndexRow]:
        """Index every complete entry in the folder (a cache from before the index)."""
        index: dict[str, IndexRow] = {}
        for json_path in self.folder.glob("*.json"):
            if json_path.name == INDEX_NAME:
                continue
            try:
                doc = json.loads(json_path.read_text("utf-8"))
                meta = doc.get("meta", {})
                key = str(doc["key"])
                if doc.get("format") != CACHE_FORMAT or json_path.stem != key:
                    continue
                npz_path = self._paths(key)[0]
                mtime = json_path.stat().st_mtime
                source_id = str(meta.get("source_id", "")) if isinstance(meta, dict) else ""
                size = _size(npz_path) + _size(json_path)
                index[key] = IndexRow(source_id, size, mtime, mtime)
            except (OSError, ValueError, KeyError, AttributeError) as exc:
                log.warning("ignoring unreadable result cache entry %s: %s", json_path.name, exc)
        return index

    def _evict(self, index: dict[str, IndexRow], keep: str) -> None:
        total = sum(row.bytes for row in index.values())
        for key in sorted(index, key=lambda k: index[k].last_used):
            if total <= self.max_bytes:
                break
            if key == keep:
                continue
            total -= index[key].bytes
            self._remove(index, key)

    def _remove(self, index: dict[str, IndexRow], key: str) -> None:
        for path in self._paths(key):
            path.unlink(missing_ok=True)
        index.pop(key, None)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0
