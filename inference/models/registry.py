"""Where models live: bundled (``resources/models``), the user's (``<data dir>/models``),
and folders named on the command line.  No torch here.

A model is a folder with a ``config.json``; its name is the folder name.  Listing never
raises for a bad folder: the entry carries the error instead, so one broken download does
not hide the others.  A slide-level head (a WSInfer-MIL style config naming a
``feature_extractor``, read by :mod:`inference.slide_level.head_card`) is not a patch
model: :func:`list_models` leaves it out and :func:`list_slide_heads` lists it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from inference.core.paths import user_data_dir
from inference.models.card import ModelCard, ModelError, load_card
from inference.models.loading import ModelLoadError

Source = Literal["bundled", "user", "path"]


class ModelNotFoundError(ModelLoadError, LookupError):
    """No model folder by that path or name; the message lists the available names."""


@dataclass(frozen=True)
class ModelEntry:
    """One listed model folder: its card when valid, else the error text."""

    folder: Path
    source: Source
    card: ModelCard | None = None
    error: str | None = None

    @property
    def name(self) -> str:
        """The model's name: its folder name."""
        return self.folder.name

    @property
    def ok(self) -> bool:
        """True when the card is valid."""
        return self.card is not None


def bundled_models_dir() -> Path:
    """``resources/models``: the demo models shipped with SlideLens."""
    import resources

    return Path(resources.__file__).parent / "models"


def user_models_dir() -> Path:
    """``<user data dir>/models`` (created on demand): where users put their models."""
    path = user_data_dir() / "models"
    path.mkdir(parents=True, exist_ok=True)
    return path


#: The key that makes a folder's config.json a slide-level head's (WSInfer-MIL's).
SLIDE_HEAD_KEY = "feature_extractor"


def is_slide_head(folder: Path) -> bool:
    """Whether ``folder`` holds a slide-level head: its config.json names a
    ``feature_extractor`` and no ``architecture`` (False when unreadable)."""
    import json

    try:
        data = json.loads((Path(folder) / "config.json").read_text("utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and SLIDE_HEAD_KEY in data and "architecture" not in data


def _model_folders(root: Path) -> list[Path]:
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith((".", "_")))


def list_slide_heads() -> list[Path]:
    """Folders of slide-level heads: bundled, then the user's (each sorted by name)."""
    roots = (bundled_models_dir(), user_models_dir())
    return [f for root in roots for f in _model_folders(root) if is_slide_head(f)]


def _entry(folder: Path, source: Source) -> ModelEntry:
    try:
        return ModelEntry(folder=folder, source=source, card=load_card(folder))
    except ModelError as exc:
        return ModelEntry(folder=folder, source=source, error=str(exc))


def list_models(extra: Sequence[Path] = ()) -> list[ModelEntry]:
    """Bundled models, then user models (each sorted by name), then ``extra`` folders.

    An invalid folder is listed with its error, never raised.
    """
    roots: tuple[tuple[Path, Source], ...] = (
        (bundled_models_dir(), "bundled"),
        (user_models_dir(), "user"),
    )
    entries = [
        _entry(f, source)
        for root, source in roots
        for f in _model_folders(root)
        if not is_slide_head(f)
    ]
    entries += [_entry(Path(f), "path") for f in extra]
    return entries


def resolve_model(name_or_path: str) -> Path:
    """The model folder for a path, or for a name found among bundled then user models.

    Raises :class:`ModelNotFoundError` naming what was looked for and listing the
    available model names.
    """
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path
    looks_like_path = any(sep in name_or_path for sep in ("/", "\\")) or name_or_path.startswith(
        "."
    )
    if not looks_like_path:
        for root in (bundled_models_dir(), user_models_dir()):
            candidate = root / name_or_path
            if candidate.is_dir():
                return candidate
    roots = (bundled_models_dir(), user_models_dir())
    names = [f.name for root in roots for f in _model_folders(root)]
    available = ", ".join(names) if names else "none"
    what = "no model folder at" if looks_like_path else "no model named"
    raise ModelNotFoundError(
        f"{what} {name_or_path!r}; available models: {available}. Pass a model folder "
        f"(config.json + weights) or put one in {user_models_dir()}",
        path=path,
    )


#: The demo model of each task that demos, benchmarks and tests mean by "the bundled
#: model" (other bundled models of the task, e.g. the prostate grader, come after it).
DEFAULT_BUNDLED: dict[str, str] = {
    "classification": "demo-tumour-classifier",
    "segmentation": "demo-tumour-unet",
}


def bundled_model(task: str = "classification") -> ModelEntry | None:
    """The bundled model for ``task``: :data:`DEFAULT_BUNDLED`'s when it is there and
    valid, else the first valid bundled model of that task, else ``None``."""
    candidates = [
        entry
        for entry in list_models()
        if entry.source == "bundled" and entry.card is not None and entry.card.task == task
    ]
    preferred = DEFAULT_BUNDLED.get(task)
    for entry in candidates:
        if entry.folder.name == preferred:
            return entry
    return candidates[0] if candidates else None
