"""User settings kept between sessions (recent files, cache size).  Qt-free, JSON on disk."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from inference.core.atomic_io import atomic_write_text
from inference.core.paths import user_data_dir
from viewer.export.corners import DEFAULT_LEGEND_CORNER, Corner, as_corner

log = logging.getLogger(__name__)

MAX_RECENT = 10
MIN_CACHE_MB = 64
MAX_CACHE_MB = 16384


@dataclass
class Settings:
    """What the viewer remembers.  Unknown or invalid values fall back to defaults."""

    recent_files: list[str] = field(default_factory=list)
    tile_cache_mb: int = 512
    #: Model folders the user added with "Add model folder…" (besides the user models dir).
    model_folders: list[str] = field(default_factory=list)
    #: Load torch on the inference worker as soon as the window appears, so the first
    #: model run or explanation does not pause the window later (costs ~0.5 GB of RSS).
    preload_models: bool = True
    #: The canvas corner the user dragged the legend to.
    legend_corner: Corner = DEFAULT_LEGEND_CORNER
    #: The result cache's cap in MiB (``None``: its default; see :func:`apply_result_cache`).
    result_cache_mb: int | None = None
    #: What was wrong with the file when it was read, naming it (shown, never saved).
    problems: list[str] = field(default_factory=list)

    def add_recent(self, path: Path) -> None:
        """Put ``path`` first in the recent list (once), keeping at most ``MAX_RECENT``."""
        text = str(path.resolve())
        self.recent_files = [text] + [p for p in self.recent_files if p != text]
        del self.recent_files[MAX_RECENT:]


def settings_path() -> Path:
    return user_data_dir() / "settings.json"


def load_settings(path: Path | None = None) -> Settings:
    """Read settings; a missing or damaged file gives defaults (and is logged, not raised)."""
    path = path or settings_path()
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return Settings()
    except (OSError, ValueError) as exc:
        log.warning("%s: settings unreadable (%s); using defaults", path, exc)
        return Settings(problems=[f"{path}: settings unreadable ({exc}); using defaults"])
    settings = Settings()
    recent = raw.get("recent_files") if isinstance(raw, dict) else None
    if isinstance(recent, list):
        settings.recent_files = [p for p in recent if isinstance(p, str)][:MAX_RECENT]
    preload = raw.get("preload_models") if isinstance(raw, dict) else None
    if isinstance(preload, bool):
        settings.preload_models = preload
    folders = raw.get("model_folders") if isinstance(raw, dict) else None
    if isinstance(folders, list):
        settings.model_folders = [p for p in folders if isinstance(p, str)]
    if isinstance(raw, dict):
        settings.legend_corner = as_corner(raw.get("legend_corner"))
    cache_mb = raw.get("tile_cache_mb") if isinstance(raw, dict) else None
    if isinstance(cache_mb, int) and MIN_CACHE_MB <= cache_mb <= MAX_CACHE_MB:
        settings.tile_cache_mb = cache_mb
    results_mb = raw.get("result_cache_mb") if isinstance(raw, dict) else None
    if results_mb is not None:
        if isinstance(results_mb, int) and not isinstance(results_mb, bool) and results_mb >= 1:
            settings.result_cache_mb = results_mb
        else:
            problem = (
                f"{path}: result_cache_mb must be a whole number of MiB, not {results_mb!r}; "
                "using the default"
            )
            log.warning("%s", problem)
            settings.problems.append(problem)
    return settings


def apply_result_cache(settings: Settings) -> bool:
    """Give this process (and the batch workers it starts) the settings' result cache
    cap, unless ``SLIDELENS_RESULT_CACHE_MB`` is already set (the environment wins);
    returns whether it was applied."""
    from inference.results.cache import CACHE_MB_ENV

    if settings.result_cache_mb is None or os.environ.get(CACHE_MB_ENV):
        return False
    os.environ[CACHE_MB_ENV] = str(settings.result_cache_mb)
    return True


def save_settings(settings: Settings, path: Path | None = None) -> None:
    """Write settings atomically (temporary file in the same folder, then replace)."""
    path = path or settings_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    saved = asdict(settings)
    saved.pop("problems", None)
    try:
        atomic_write_text(path, json.dumps(saved, indent=2))
    except OSError as exc:
        log.warning("%s: could not save settings (%s)", path, exc)
