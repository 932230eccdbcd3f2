"""Typed pixel sizes: the JSON store (round trip, damaged files) and the open slide's
effective pixel size (stated wins, asked once, events)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from inference.slides import SlideInfo
from viewer.pixel_size import STORE_FILE_NAME, SlidePixelSize, TypedPixelSizes


def _info(mpp: float | None, source_id: str = "abc123", name: str = "patch.png") -> SlideInfo:
    return SlideInfo(
        path=Path("/slides") / name,
        source_id=source_id,
        vendor="image",
        level_dimensions=((800, 600),),
        level_downsamples=(1.0,),
        mpp=mpp,
        objective_power=None,
    )


def test_a_typed_size_survives_a_new_store(tmp_path: Path) -> None:
    path = tmp_path / STORE_FILE_NAME
    store = TypedPixelSizes(path)
    assert store.get("abc123") is None and store.problem is None
    store.set("abc123", 0.5, "patch.png")
    again = TypedPixelSizes(path)
    assert again.get("abc123") == 0.5 and again.problem is None
    assert json.loads(path.read_text())["slides"]["abc123"]["file"] == "patch.png"
    again.set("abc123", None)
    assert TypedPixelSizes(path).get("abc123") is None


def test_the_store_lives_in_the_user_data_folder(_isolated_user_data: Path) -> None:
    TypedPixelSizes().set("abc123", 0.25)
    assert (_isolated_user_data / STORE_FILE_NAME).is_file()


@pytest.mark.parametrize(
    ("content", "cause"),
    [
        ('{"version": 1, "slides": {"abc123": {"mpp": 0.5}', "not valid JSON"),
        ("[1, 2, 3]", 'no "slides" object'),
        ("", "not valid JSON"),
    ],
)
def test_a_damaged_file_gives_a_clear_message_and_an_empty_store(
    tmp_path: Path, content: str, cause: str
) -> None:
    path = tmp_path / STORE_FILE_NAME
    path.write_text(content)
    store = TypedPixelSizes(path)
    assert len(store) == 0 and store.get("abc123") is None
    assert store.problem is not None
    assert str(path) in store.problem and cause in store.problem
    # a new size is saved; the damaged file is kept aside, not lost
    store.set("def456", 0.25)
    assert TypedPixelSizes(path).get("def456") == 0.25
    assert path.with_name(STORE_FILE_NAME + ".damaged").read_text() == content
    assert store.problem is None


def test_unusable_entries_are_skipped_and_named(tmp_path: Path) -> None:
    path = tmp_path / STORE_FILE_NAME
    slides = {"good": {"mpp": 0.5}, "zero": {"mpp": 0}, "text": {"mpp": "half"}}
    path.write_text(json.dumps({"version": 1, "slides": slides}))
    store = TypedPixelSizes(path)
    assert store.get("good") == 0.5 and len(store) == 1
    assert store.problem is not None and str(path) in store.problem


def test_impossible_sizes_are_refused(tmp_path: Path) -> None:
    store = TypedPixelSizes(tmp_path / STORE_FILE_NAME)
    for bad in (0.0, -1.0, float("nan"), float("inf"), 1e6):
        with pytest.raises(ValueError, match="pixel size"):
            store.set("abc123", bad)
    assert store.get("abc123") is None


def test_an_unwritable_store_keeps_the_size_for_the_session(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    store = TypedPixelSizes(blocker / STORE_FILE_NAME)
    store.set("abc123", 0.5)
    assert store.get("abc123") == 0.5
    assert store.problem is not None and "could not be saved" in store.problem


def test_the_slide_s_own_size_wins_and_a_typed_one_fills_in(tmp_path: Path) -> None:
    model = SlidePixelSize(TypedPixelSizes(tmp_path / STORE_FILE_NAME))
    seen: list[object] = []
    model.changed.connect(seen.append)
    model.set_slide(_info(0.25))
    assert (model.mpp, model.source) == (0.25, "slide")
    with pytest.raises(ValueError, match="states its own pixel size"):
        model.set_typed(0.5)
    model.set_slide(_info(None))
    assert (model.mpp, model.source) == (None, None)
    model.set_typed(0.5)
    assert (model.mpp, model.source, model.typed) == (0.5, "typed", 0.5)
    assert model.provenance() == {"mpp": 0.5, "mpp_source": "typed"}
    model.set_typed(None)
    assert model.mpp is None
    assert seen == [0.25, None, 0.5, None]


def test_require_asks_once_per_slide_and_again_after_a_cancel(tmp_path: Path) -> None:
    model = SlidePixelSize(TypedPixelSizes(tmp_path / STORE_FILE_NAME))
    answers: list[float | None] = [None, 0.5]
    asked: list[str] = []

    def ask(info: SlideInfo) -> float | None:
        asked.append(info.path.name)
        return answers.pop(0)

    assert model.require(ask) is None  # no slide: nothing to ask
    model.set_slide(_info(None))
    assert model.require(ask) is None  # cancelled
    assert model.require(ask) == 0.5
    assert model.require(ask) == 0.5
    assert asked == ["patch.png", "patch.png"]
    model.set_slide(_info(0.25, source_id="other"))
    assert model.require(ask) == 0.25 and len(asked) == 2
