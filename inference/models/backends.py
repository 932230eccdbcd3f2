"""Which form of a model runs fastest on this machine, measured once and remembered.

Contract: a :class:`BackendChoice` records the patches per second each form of a model
reached on one machine and device, and which one won.  :class:`BackendStore` keeps the
choices in ``<user data dir>/backend-choices.json`` (written atomically; an unreadable
file counts as empty), keyed by :func:`model_key` (the SHA-256 of every form's files, so
a changed file is measured again) and :func:`machine_key` (CPU model, cores, device,
torch and ONNX Runtime versions).  :func:`backend_summary` is one line for a model's
info in the viewer, from file names and the store only (no hashing, no torch).
Measuring is :mod:`inference.models.selection` (on load) and ``slidelens bench
inference`` (on real patches); both write here.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
import threading
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from inference.core.atomic_io import atomic_write_text
from inference.core.paths import user_data_dir
from inference.models.card import ModelCard
from inference.models.forms import FORM_LABELS, find_forms

BACKENDS_FILE_NAME = "backend-choices.json"


@functools.cache
def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, else the platform's word)."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(dist: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def machine(device: str, gpu: str | None = None) -> dict[str, Any]:
    """What a measurement depends on besides the model: CPU, cores, device, versions."""
    from inference.models.onnx_runtime import onnxruntime_version

    return {
        "cpu": cpu_name(),
        "cores": len(os.sched_getaffinity(0))
        if hasattr(os, "sched_getaffinity")
        else os.cpu_count(),
        "device": device if gpu is None else f"{device} ({gpu})",
        "torch": _version("torch"),
        "onnxruntime": onnxruntime_version(),
    }


def machine_key(info: Mapping[str, Any]) -> str:
    """A short stable key for :func:`machine`'s record."""
    text = json.dumps(dict(info), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def model_key(hashes: Mapping[str, str]) -> str:
    """The key of a set of forms: SHA-256 over ``form: file hash`` lines."""
    text = "\n".join(f"{k}:{v}" for k, v in sorted(hashes.items()))
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class BackendChoice:
    """The fastest form of a model on a machine, and every measured rate.

    ``measured_by``: ``"load"`` (a short probe on random patches when the model was
    first loaded) or ``"bench inference"`` (the engine's forward steps on slide patches).
    ``skipped``: forms not measured and why (an untrusted program, no CUDA provider).
    """

    backend: str
    patches_per_s: Mapping[str, float]
    measured_by: str
    machine: Mapping[str, Any]
    folder: str
    measured_at: str = field(
        default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds")
    )
    skipped: Mapping[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BackendChoice | None:
        try:
            return cls(
                backend=str(data["backend"]),
                patches_per_s={str(k): float(v) for k, v in data["patches_per_s"].items()},
                measured_by=str(data["measured_by"]),
                machine=dict(data["machine"]),
                folder=str(data["folder"]),
                measured_at=str(data.get("measured_at", "")),
                skipped={str(k): str(v) for k, v in data.get("skipped", {}).items()},
            )
        except (KeyError, TypeError, ValueError, AttributeError):
            return None


def fastest(rates: Mapping[str, float], order: Sequence[str]) -> str:
    """The form with the highest rate; ties go to the earlier form of ``order``."""
    return max(rates, key=lambda k: (rates[k], -order.index(k) if k in order else -99))


class BackendStore:
    """Backend choices by model and machine, persisted as JSON (thread-safe in a process).

    ``path`` defaults to ``<user data dir>/backend-choices.json`` (``SLIDELENS_DATA_DIR``
    honoured through :func:`inference.core.paths.user_data_dir`).
    """

    def __init__(self, path: Path | None = None) -> None:
        self.path = Path(path) if path is not None else user_data_dir() / BACKENDS_FILE_NAME
        self._lock = threading.Lock()

    def get(self, model: str, machine_info: Mapping[str, Any]) -> BackendChoice | None:
        """The choice recorded for this model on this machine, if any."""
        with self._lock:
            entry = self._read().get(f"{model}/{machine_key(machine_info)}")
        return BackendChoice.from_dict(entry) if isinstance(entry, dict) else None

    def put(self, model: str, choice: BackendChoice) -> None:
        """Record (or replace) the choice for this model on the choice's machine."""
        with self._lock:
            entries = self._read()
            entries[f"{model}/{machine_key(choice.machine)}"] = choice.as_dict()
            self._write(entries)

    def latest_for_folder(self, folder: Path) -> BackendChoice | None:
        """The newest choice recorded for a folder on this machine's CPU (any device)."""
        where = str(Path(folder).resolve())
        with self._lock:
            entries = self._read()
        found = [
            c
            for c in (BackendChoice.from_dict(e) for e in entries.values() if isinstance(e, dict))
            if c is not None and c.folder == where and c.machine.get("cpu") == cpu_name()
        ]
        return max(found, key=lambda c: c.measured_at) if found else None

    def _read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        entries = data.get("choices") if isinstance(data, dict) else None
        return dict(entries) if isinstance(entries, dict) else {}

    def _write(self, entries: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        payload = json.dumps({"version": 1, "choices": entries}, indent=2, sort_keys=True)
        atomic_write_text(self.path, payload + "\n")


def backend_summary(card: ModelCard, store: BackendStore | None = None) -> str:
    """One line on what runs the model: its forms and, once measured, the fastest here."""
    forms = find_forms(card.folder, card)
    if not forms:
        return "no weights"
    labels = [f.label for f in forms]
    if len(forms) == 1:
        return labels[0]
    choice = (store or BackendStore()).latest_for_folder(card.folder)
    if choice is None or choice.backend not in FORM_LABELS:
        return f"{', '.join(labels)}; the fastest is measured on first use"
    rates = ", ".join(
        f"{FORM_LABELS.get(k, k)} {v:.0f}"
        for k, v in sorted(choice.patches_per_s.items(), key=lambda kv: -kv[1])
    )
    return (
        f"{FORM_LABELS[choice.backend]}, the fastest on {choice.machine.get('device', '?')} "
        f"here ({rates} patches/s)"
    )
