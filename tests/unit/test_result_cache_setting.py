"""The result cache's cap from the viewer's settings: read and checked from
``settings.json``, given to the process unless the environment already says."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from inference.results.cache import CACHE_MB_ENV, ResultCache
from viewer.settings import Settings, apply_result_cache, load_settings, save_settings


def test_the_setting_caps_the_result_cache_unless_the_environment_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "settings.json"
    save_settings(Settings(result_cache_mb=256), path)
    settings = load_settings(path)
    assert settings.result_cache_mb == 256

    monkeypatch.delenv(CACHE_MB_ENV, raising=False)
    assert apply_result_cache(settings)
    assert ResultCache(tmp_path / "cache").max_bytes == 256 * 2**20

    monkeypatch.setenv(CACHE_MB_ENV, "100")
    assert not apply_result_cache(settings)
    assert ResultCache(tmp_path / "cache").max_bytes == 100 * 2**20
    monkeypatch.delenv(CACHE_MB_ENV)
    assert not apply_result_cache(Settings())  # no setting: the default stays


@pytest.mark.parametrize("value", [0, -5, 2.5, "big", True])
def test_a_bad_cap_is_named_and_the_default_kept(
    tmp_path: Path, value: object, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "settings.json"
    path.write_text(json.dumps({"result_cache_mb": value}))
    settings = load_settings(path)
    assert settings.result_cache_mb is None
    assert "result_cache_mb" in caplog.text and str(path) in caplog.text
    (problem,) = settings.problems  # shown in the window's status bar, never saved
    assert str(path) in problem and "result_cache_mb" in problem
    save_settings(settings, path)
    assert "problems" not in json.loads(path.read_text())
