"""The ``slidelens`` command line: a mistyped command is answered, never opens a window."""

from __future__ import annotations

from pathlib import Path

import pytest

import viewer.__main__ as entry


@pytest.fixture
def no_window(monkeypatch: pytest.MonkeyPatch) -> list[Path | None]:
    """Records what would have been opened in the viewer instead of opening it."""
    opened: list[Path | None] = []

    def fake_view(slide: Path | None) -> int:
        opened.append(slide)
        return 0

    monkeypatch.setattr(entry, "_run_view", fake_view)
    return opened


@pytest.mark.parametrize(
    ("argv", "suggestion"),
    [
        (["infr", "slide.svs"], "infer"),
        (["evalute"], "evaluate"),
        (["bacth", "--help"], "batch"),
        (["xyzzy-not-a-file.svs"], None),
    ],
)
def test_a_word_that_is_no_command_and_no_file_is_answered(
    no_window: list[Path | None],
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    suggestion: str | None,
) -> None:
    assert entry.main(argv) == entry.USAGE_ERROR
    err = capsys.readouterr().err
    assert f"no command or file named '{argv[0]}'" in err
    if suggestion:
        assert f"did you mean '{suggestion}'" in err
    assert no_window == []


def test_help_after_a_slide_prints_help_without_a_window(
    no_window: list[Path | None], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    slide = tmp_path / "slide.tiff"
    slide.write_bytes(b"not opened")
    assert entry.main([str(slide), "--help"]) == 0
    assert "usage: slidelens" in capsys.readouterr().out
    assert no_window == []


def test_an_existing_file_opens_in_the_viewer(no_window: list[Path | None], tmp_path: Path) -> None:
    slide = tmp_path / "slide.tiff"
    slide.write_bytes(b"opened by the viewer, which checks it")
    assert entry.main([str(slide)]) == 0
    assert no_window == [slide]


def test_command_help_still_works(
    no_window: list[Path | None], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as stop:
        entry.main(["infer", "--help"])
    assert stop.value.code == 0
    assert "usage: slidelens infer" in capsys.readouterr().out
    assert no_window == []
