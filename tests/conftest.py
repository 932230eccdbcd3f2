"""Shared fixtures: an isolated user data folder, offscreen Qt, slides written by code."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("TQDM_DISABLE", "1")

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
APERIO_SLIDE = SHARED_DATA / "cmu_small_region.svs"


@pytest.fixture(autouse=True)
def _isolated_user_data(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """Every test gets its own user data folder: no test reads or writes the user's."""
    folder = tmp_path_factory.mktemp("userdata")
    monkeypatch.setenv("SLIDELENS_DATA_DIR", str(folder))
    return folder


@pytest.fixture
def aperio_slide() -> Path:
    """The real Aperio slide from ../shared/data, or a clean skip where it is absent."""
    if not APERIO_SLIDE.is_file():
        pytest.skip(
            f"real Aperio slide not present at {APERIO_SLIDE} (only in CI and dev machines)"
        )
    return APERIO_SLIDE


@pytest.fixture(scope="session")
def synthetic_slide(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small synthetic pyramidal slide (3 levels) with its ground truth beside it."""
    from inference.slides.synth.writer import SynthParams, write_synthetic_slide

    path = tmp_path_factory.mktemp("synth") / "synthetic.tiff"
    write_synthetic_slide(path, SynthParams(width=4096, height=3072, seed=3, mpp=0.5))
    return path
