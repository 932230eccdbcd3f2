"""The on-disk result cache: round trips, damaged entries, the size cap with
least-recently-used eviction, and the index that keeps a slide's look-up to its own
entries."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from inference.engine.patches import PatchGrid
from inference.results.cache import INDEX_NAME, ResultCache
from inference.results.store import ResultGrid, SegmentationMap
from tests.helpers.results import NAMES, batch, classification_result


def test_cache_round_trip_miss_and_corruption(tmp_path: Path) -> None:
    cache = ResultCache(tmp_path / "cache")
    result = classification_result()
    key = ResultCache.key("slide-abc", "f" * 64, {"overlap": 0.0, "grid": result.grid.to_dict()})
    assert key != ResultCache.key("slide-abc", "f" * 64, {"overlap": 0.5})
    assert cache.load(key) is None
    cache.save(key, result, {"elapsed_s": 1.5})
    hit = cache.load(key)
    assert hit is not None and hit.meta == {"elapsed_s": 1.5}
    assert isinstance(hit.result, ResultGrid) and hit.result.grid == result.grid
    np.testing.assert_array_equal(hit.result.probabilities(), result.probabilities())
    np.testing.assert_array_equal(hit.result.background, result.background)
    assert not list((tmp_path / "cache").glob("*.tmp"))
    (tmp_path / "cache" / f"{key}.npz").write_bytes(b"not a zip")
    assert cache.load(key) is None


def test_cache_defaults_to_the_user_data_dir(_isolated_user_data: Path) -> None:
    assert ResultCache().folder == _isolated_user_data / "cache" / "results"


def test_segmentation_result_survives_the_cache(tmp_path: Path) -> None:
    grid = PatchGrid(l0_patch=32, l0_stride=32, l0_origin=(64, 0), p_cols=2, p_rows=1)
    seg = SegmentationMap(grid, NAMES, l0_per_px=4.0, tile_px=8)
    seg.add(batch(grid, [(1, 0)], np.full((1, 2, 8, 8), 0.5), l0_per_px=4.0))
    cache = ResultCache(tmp_path)
    key = ResultCache.key("s", "m", {})
    cache.save(key, seg)
    hit = cache.load(key)
    assert hit is not None and isinstance(hit.result, SegmentationMap)
    assert hit.result.l0_per_px == 4.0
    np.testing.assert_array_equal(hit.result.probabilities(), seg.probabilities())


def _entry_bytes(tmp_path: Path) -> int:
    """The size on disk of one cached ``classification_result``."""
    probe = ResultCache(tmp_path / "probe")
    probe.save(ResultCache.key("s", "m", {}), classification_result(), {"source_id": "s"})
    return probe.total_bytes()


def _save(cache: ResultCache, slide: str, n: int) -> str:
    key = ResultCache.key(slide, "m" * 64, {"n": n})
    cache.save(key, classification_result(), {"source_id": slide, "n": n})
    return key


def test_the_cache_stays_within_its_cap_evicting_the_least_recently_used(
    tmp_path: Path,
) -> None:
    size = _entry_bytes(tmp_path)
    cache = ResultCache(tmp_path / "cache", max_bytes=int(3.5 * size))
    keys = [_save(cache, "slide-a", n) for n in range(3)]
    time.sleep(0.01)
    assert cache.load(keys[0]) is not None  # 0 is now more recent than 1 and 2
    time.sleep(0.01)
    fourth = _save(cache, "slide-b", 3)
    assert cache.total_bytes() <= cache.max_bytes
    assert cache.load(keys[1]) is None  # the least recently used went
    assert not (tmp_path / "cache" / f"{keys[1]}.npz").exists()
    for kept in (keys[0], keys[2], fourth):
        assert cache.load(kept) is not None


def test_an_entry_larger_than_the_cap_is_kept_alone(tmp_path: Path) -> None:
    cache = ResultCache(tmp_path / "cache", max_bytes=1)
    first = _save(cache, "a", 0)
    second = _save(cache, "a", 1)
    assert cache.load(first) is None and cache.load(second) is not None


def test_opening_a_slide_reads_only_its_own_entries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = ResultCache(tmp_path / "cache")
    mine = [_save(cache, "slide-a", n) for n in range(2)]
    others = [_save(cache, "slide-b", n) for n in range(5)]
    read: list[str] = []
    original = Path.read_text

    def counting(self: Path, *args: object, **kwargs: object) -> str:
        read.append(self.name)
        return original(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "read_text", counting)
    found = ResultCache(tmp_path / "cache").entries_for("slide-a")
    assert [key for key, _ in found] == mine[::-1]  # newest first
    assert {meta["n"] for _, meta in found} == {0, 1}
    assert not any(name.startswith(tuple(others)) for name in read)
    assert sorted(read) == sorted([INDEX_NAME, *(f"{k}.json" for k in mine)])


def test_a_cache_without_index_is_indexed_once(tmp_path: Path) -> None:
    """Caches written before the index (and damaged indexes) are rebuilt from entries."""
    cache = ResultCache(tmp_path / "cache")
    key = _save(cache, "slide-a", 0)
    index = tmp_path / "cache" / INDEX_NAME
    for damage in (None, "{not json", json.dumps({"format": 99})):
        if damage is None:
            index.unlink()
        else:
            index.write_text(damage)
        assert [k for k, _ in ResultCache(tmp_path / "cache").entries_for("slide-a")] == [key]
        assert json.loads(index.read_text())["entries"][key]["source_id"] == "slide-a"


def test_entries_removed_by_hand_leave_the_index(tmp_path: Path) -> None:
    cache = ResultCache(tmp_path / "cache")
    key = _save(cache, "slide-a", 0)
    (tmp_path / "cache" / f"{key}.json").unlink()
    assert cache.entries_for("slide-a") == []
    assert key not in json.loads((tmp_path / "cache" / INDEX_NAME).read_text())["entries"]
    assert cache.total_bytes() == 0


def test_the_cap_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLIDELENS_RESULT_CACHE_MB", "12")
    assert ResultCache(Path("unused")).max_bytes == 12 * 2**20
    monkeypatch.setenv("SLIDELENS_RESULT_CACHE_MB", "lots")
    assert ResultCache(Path("unused")).max_bytes == 4096 * 2**20
    with pytest.raises(ValueError, match="positive"):
        ResultCache(Path("unused"), max_bytes=0)
