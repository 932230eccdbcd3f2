"""Which programs (TorchScript, ``torch.export``) the user has chosen to trust, by SHA-256.

A ``torchscript_model.pt`` is a program, not just weights: loading it runs code the model's
author wrote; so can loading a ``model.pt2`` (see :mod:`inference.models.exported`).
SlideLens loads one only after the user trusts it (``--trust`` on the CLI, a
confirmation in the GUI).  The choice is remembered per file content (SHA-256), so a
changed file must be trusted again.  The store is a small JSON file in the user data folder,
written atomically; an unreadable store counts as empty (nothing trusted), never as a crash.
"""

from __future__ import annotations

import hashlib
import json
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from inference.core.atomic_io import atomic_write_text
from inference.core.paths import user_data_dir

TRUST_FILE_NAME = "trusted-models.json"
_CHUNK = 1 << 20


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class TrustStore:
    """SHA-256 hashes of program files the user trusted, persisted as JSON.

    ``path`` defaults to ``<user data dir>/trusted-models.json`` (see
    :func:`inference.core.paths.user_data_dir`, which honours ``SLIDELENS_DATA_DIR``).
    Thread-safe within a process.
    """

    def __init__(self, path: Path | None = None) -> None:
        self.path = Path(path) if path is not None else user_data_dir() / TRUST_FILE_NAME
        self._lock = threading.Lock()

    def is_trusted(self, sha256: str) -> bool:
        """Whether the file with this SHA-256 was trusted before."""
        with self._lock:
            return sha256.lower() in self._read()

    def trust(self, sha256: str, path: Path) -> None:
        """Remember that the user trusts the file with this hash (``path`` is kept for
        the record only: trust follows the content, not the name)."""
        with self._lock:
            entries = self._read()
            entries[sha256.lower()] = {
                "path": str(Path(path).resolve()),
                "trusted_at": datetime.now(UTC).isoformat(timespec="seconds"),
            }
            self._write(entries)

    def revoke(self, sha256: str) -> None:
        """Forget a trusted hash (no error when it was not trusted)."""
        with self._lock:
            entries = self._read()
            if entries.pop(sha256.lower(), None) is not None:
                self._write(entries)

    def trusted(self) -> dict[str, dict[str, Any]]:
        """A copy of every trusted hash with its record (path, time)."""
        with self._lock:
            return dict(self._read())

    def _read(self) -> dict[str, dict[str, Any]]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        entries = data.get("trusted") if isinstance(data, dict) else None
        if not isinstance(entries, dict):
            return {}
        return {str(k): v if isinstance(v, dict) else {} for k, v in entries.items()}

    def _write(self, entries: dict[str, dict[str, Any]]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        payload = json.dumps({"version": 1, "trusted": entries}, indent=2, sort_keys=True)
        atomic_write_text(self.path, payload + "\n")
