"""What a user points ``slidelens models import`` at: found and classified, nothing run.

Contract: :func:`find_source` turns a path into a :class:`Source`: a folder with a
``config.json`` (a WSInfer model config, or a timm checkpoint's config with
``architecture`` and ``pretrained_cfg``), or one model file (TorchScript, ``.pt2``,
ONNX) told apart by its content.  A Hugging Face cache is followed as the client
leaves it: ``models--ORG--NAME`` (the snapshot ``refs/main`` names, else the only or
newest one), or a ``snapshots/<hash>`` folder, whose files are symlinks into
``blobs/``.  :class:`ImportSourceError` says what was found instead.  No torch here.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from inference.models.card import CONFIG_NAME, ModelError
from inference.models.weights import is_torchscript_archive

SourceKind = Literal["wsinfer", "timm", "torchscript", "pt2", "onnx"]

#: What each kind of source is, for people.
SOURCE_LABELS: dict[str, str] = {
    "wsinfer": "WSInfer model folder",
    "timm": "timm checkpoint folder",
    "torchscript": "TorchScript program",
    "pt2": "torch.export program (.pt2)",
    "onnx": "ONNX model",
}
_HF_PREFIX = "models--"


class ImportSourceError(ModelError):
    """The path is not something ``models import`` understands; the message says what
    it found and what would do."""


@dataclass(frozen=True)
class HubRef:
    """Where in a Hugging Face cache a snapshot came from."""

    repo_id: str
    revision: str
    note: str = ""


@dataclass
class Source:
    """A classified source: its kind, the folder (or file) to read, its ``config.json``
    when it has one, and where in a Hugging Face cache it came from."""

    kind: SourceKind
    path: Path
    folder: Path
    config: dict[str, Any] = field(default_factory=dict)
    hub: HubRef | None = None

    @property
    def label(self) -> str:
        return SOURCE_LABELS[self.kind]

    @property
    def default_name(self) -> str:
        """The model folder's name: the repo's name, else the folder's or file's stem."""
        if self.hub is not None:
            return self.hub.repo_id.rsplit("/", 1)[-1]
        return self.path.name if self.path.is_dir() else self.path.stem


def _snapshot(repo_dir: Path) -> tuple[Path, HubRef]:
    repo_id = repo_dir.name[len(_HF_PREFIX) :].replace("--", "/")
    snapshots = repo_dir / "snapshots"
    candidates = sorted(p for p in snapshots.iterdir() if p.is_dir()) if snapshots.is_dir() else []
    if not candidates:
        raise ImportSourceError(
            f"{repo_dir}: a Hugging Face cache folder for {repo_id} with no snapshot in "
            "snapshots/; download the model again"
        )
    ref = repo_dir / "refs" / "main"
    wanted = ref.read_text(encoding="utf-8").strip() if ref.is_file() else ""
    for snap in candidates:
        if snap.name == wanted:
            return snap, HubRef(repo_id, snap.name, "the snapshot refs/main names")
    newest = max(candidates, key=lambda p: p.stat().st_mtime)
    note = "the only snapshot" if len(candidates) == 1 else f"the newest of {len(candidates)}"
    return newest, HubRef(repo_id, newest.name, note)


def _hub_folder(path: Path) -> tuple[Path, HubRef | None]:
    """A Hugging Face cache path followed to its snapshot folder (others unchanged)."""
    if path.name.startswith(_HF_PREFIX) and path.is_dir():
        return _snapshot(path)
    if path.parent.name == "snapshots" and path.parent.parent.name.startswith(_HF_PREFIX):
        repo_id = path.parent.parent.name[len(_HF_PREFIX) :].replace("--", "/")
        return path, HubRef(repo_id, path.name, "the snapshot given")
    repos = sorted(p.name for p in path.glob(f"{_HF_PREFIX}*") if p.is_dir())
    if repos:
        shown = ", ".join(repos[:8]) + (" ..." if len(repos) > 8 else "")
        raise ImportSourceError(
            f"{path}: a Hugging Face cache holding {len(repos)} models ({shown}); "
            "pass the folder of one of them"
        )
    return path, None


def file_kind(path: Path) -> SourceKind | None:
    """TorchScript, ``.pt2`` or ONNX by content (``None`` for anything else); reads a
    zip's names or the file's start, runs nothing."""
    if zipfile.is_zipfile(path):
        if is_torchscript_archive(path):
            return "torchscript"
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
        if any(n.endswith(("archive_format", "models/model.json")) for n in names):
            return "pt2"
        return None
    if path.suffix.lower() == ".onnx":
        return "onnx"
    return None


def _read_config(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ImportSourceError(f"{path}: cannot be read ({exc})") from None
    except json.JSONDecodeError as exc:
        raise ImportSourceError(
            f"{path}: not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
        ) from None
    if not isinstance(data, dict):
        raise ImportSourceError(f"{path}: must be a JSON object")
    return data


def config_kind(config: dict[str, Any]) -> SourceKind | None:
    """``wsinfer`` for WSInfer's model config, ``timm`` for a timm checkpoint's config."""
    if "spec_version" in config or ("patch_size_pixels" in config and "transform" in config):
        return "wsinfer"
    if isinstance(config.get("architecture"), str) and (
        "pretrained_cfg" in config or "num_features" in config
    ):
        return "timm"
    return None


def _model_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and file_kind(p) is not None)


def find_source(path: Path) -> Source:
    """Classify ``path`` (see the module docstring); :class:`ImportSourceError` if unknown."""
    path = Path(path).expanduser()
    if not path.exists():
        raise ImportSourceError(f"{path}: does not exist")
    if path.is_file():
        kind = file_kind(path)
        if kind is None:
            raise ImportSourceError(
                f"{path}: not a TorchScript program, a torch.export program (.pt2) or an "
                "ONNX model (.onnx); to import weights, point at their folder with its "
                f"{CONFIG_NAME}"
            )
        return Source(kind, path, path.parent)
    folder, hub = _hub_folder(path)
    config_path = folder / CONFIG_NAME
    if config_path.is_file():
        config = _read_config(config_path)
        kind = config_kind(config)
        if kind is None:
            raise ImportSourceError(
                f"{config_path}: neither a WSInfer model config (spec_version, "
                "architecture, patch_size_pixels, spacing_um_px, transform) nor a timm "
                "checkpoint config (architecture, num_classes, pretrained_cfg)"
            )
        return Source(kind, folder, folder, config, hub)
    files = _model_files(folder)
    if len(files) == 1:
        only = files[0]
        kind = file_kind(only)
        assert kind is not None
        return Source(kind, only, folder, {}, hub)
    found = ", ".join(p.name for p in sorted(folder.iterdir())[:10]) or "nothing"
    raise ImportSourceError(
        f"{folder}: no {CONFIG_NAME} and {'several' if files else 'no'} model files "
        f"(found: {found}); point at a model folder with {CONFIG_NAME}, or at one "
        "TorchScript, .pt2 or .onnx file"
    )
