"""Where SlideLens keeps per-user data: settings, user models, caches, the demo slide."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

#: Set this environment variable to move every per-user file (tests use a temporary folder).
DATA_DIR_ENV = "SLIDELENS_DATA_DIR"


def user_data_dir() -> Path:
    """The per-user data folder, created on first use.

    ``$SLIDELENS_DATA_DIR`` when set, else the platform's user data directory.
    """
    override = os.environ.get(DATA_DIR_ENV)
    path = Path(override) if override else Path(platformdirs.user_data_dir("slidelens", False))
    path.mkdir(parents=True, exist_ok=True)
    return path
