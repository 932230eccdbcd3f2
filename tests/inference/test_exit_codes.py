"""The same fault gives the same exit code in every command (``inference.cli.exit_codes``):
1 a slide or job failed, 2 usage or bad input, 3 no window, 130 Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import inference.cli.explain as explain_cli
import inference.cli.infer as infer_cli
from inference.cli.exit_codes import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_NO_WINDOW,
    EXIT_OK,
    EXIT_USAGE,
)
from tests.helpers.models import write_model_folder
from viewer.__main__ import main

ROOT = Path(__file__).resolve().parents[2]
#: A slide that takes minutes to write: long enough to be interrupted.
SYNTH_BIG = ("--width", "60000", "--height", "60000", "--workers", "1")


@pytest.fixture(scope="module")
def slide(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from inference.slides.synth.writer import SynthParams, write_synthetic_slide

    path = tmp_path_factory.mktemp("slide") / "codes.tiff"
    write_synthetic_slide(path, SynthParams(width=1024, height=768, seed=4, mpp=0.5))
    return path


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_model_folder(tmp_path_factory.mktemp("model") / "tiny-cnn")


@pytest.fixture(scope="module")
def broken_slide(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("broken") / "broken.svs"
    path.write_bytes(b"this is not a slide at all" * 10)
    return path


def _code(argv: list[str]) -> int:
    """The exit code of ``slidelens argv`` (argparse's own refusals included)."""
    try:
        return main(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)


def _ctrl_c(*_args: object, **_kwargs: object) -> None:
    raise KeyboardInterrupt


def test_the_codes_are_the_documented_ones() -> None:
    assert (EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_NO_WINDOW, EXIT_INTERRUPTED) == (
        0,
        1,
        2,
        3,
        130,
    )
    readme = (ROOT / "README.md").read_text("utf-8")
    for line in ("| 0 |", "| 1 |", "| 2 |", "| 3 |", "| 130 |"):
        assert line in readme, f"README's Command line section lacks the code row {line}"


def test_a_slide_that_cannot_be_read_is_1_everywhere(
    slide: Path, model: Path, broken_slide: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    assert _code(["infer", str(broken_slide), "--model", str(model), "--out", str(out)]) == 1
    explain = ["explain", str(broken_slide), "--model", str(model), "--at", "5,5"]
    assert _code([*explain, "--out", str(tmp_path / "cam.png")]) == 1
    assert _code(["export", str(broken_slide), "--out", str(tmp_path / "fig.png")]) == 1
    truth = tmp_path / "truth.png"
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(truth)
    evaluate = ["evaluate", str(broken_slide), "--results", str(out), "--truth", str(truth)]
    assert _code(evaluate) == 1
    # a place synth cannot write to
    (tmp_path / "a-file").write_text("not a folder")
    synth = ["synth", str(tmp_path / "a-file" / "s.tiff"), "--width", "512", "--height", "512"]
    assert _code(synth) == 1


def test_bad_input_is_2_everywhere(slide: Path, model: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    bad_model = tmp_path / "nowhere"
    assert _code(["infer", str(slide), "--model", str(bad_model), "--out", str(out)]) == 2
    assert _code(["models", "--model", str(bad_model)]) == 2
    explain = ["explain", str(slide), "--model", str(model), "--out", str(tmp_path / "c.png")]
    assert _code([*explain, "--at", "5,5", "--method", "gradcam3"]) == 2
    assert _code([*explain, "--region", "90000,0,512,512"]) == 2  # outside the slide
    assert _code([*explain, "--at", "5,5", "--class", "necrosis"]) == 2
    fig = str(tmp_path / "fig.png")
    assert _code(["export", str(slide), "--region", "9000,0,100,100", "--out", fig]) == 2
    assert _code(["export", str(slide), "--out", str(tmp_path / "fig.bmp")]) == 2
    evaluate = ["evaluate", str(slide), "--results", str(out), "--truth", str(slide)]
    assert _code([*evaluate, "--threshold", "1.5"]) == 2
    assert _code(["synth", str(tmp_path / "s.tiff"), "--width", "0", "--height", "10"]) == 2
    assert _code(["infr", str(slide)]) == 2  # no such command
    assert _code(["infer", str(slide), "--model", str(model), "--bogus"]) == 2


def test_ctrl_c_is_130_with_one_line(
    slide: Path,
    model: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Ctrl-C arriving while the work reports its progress (as it would on a terminal)."""
    monkeypatch.setattr(infer_cli.ProgressBar, "update", _ctrl_c)
    out = tmp_path / "out"
    argv = ["infer", str(slide), "--model", str(model), "--out", str(out), "--no-cache"]
    assert _code(argv) == 130
    err = capsys.readouterr().err
    assert "interrupted" in err and "Traceback" not in err

    monkeypatch.setattr(explain_cli._Bar, "__call__", _ctrl_c)
    explain = ["explain", str(slide), "--model", str(model), "--at", "300,300"]
    assert _code([*explain, "--out", str(tmp_path / "cam.png")]) == 130
    assert "interrupted" in capsys.readouterr().err


def test_a_real_sigint_ends_a_command_with_130(tmp_path: Path) -> None:
    """A command without its own Ctrl-C handling (synth) gets it from the dispatcher."""
    out = tmp_path / "big.tiff"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "viewer", "synth", str(out), *SYNTH_BIG],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env=env,
        cwd=ROOT,
    )
    assert process.stderr is not None
    try:
        started = time.monotonic()
        seen = ""
        while "tiles" not in seen and time.monotonic() - started < 60:
            seen += process.stderr.read(1)  # progress: "big.tiff: 3/... tiles"
        assert "tiles" in seen, seen
        process.send_signal(signal.SIGINT)
        _, rest = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, rest
    assert "interrupted" in rest and "Traceback" not in rest


def test_no_window_is_3() -> None:
    code = (
        "import sys, viewer.app as app\n"
        "app.platform_problem = lambda: 'no display'\n"
        "from viewer.__main__ import main\n"
        "sys.exit(main([]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert done.returncode == 3, done.stderr
    assert "no display" in done.stderr


def test_infer_says_when_it_reuses_a_cached_result(
    slide: Path, model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["infer", str(slide), "--model", str(model), "--region", "0,0,512,512"]
    assert _code([*args, "--out", str(tmp_path / "first")]) == 0
    assert "reused" not in capsys.readouterr().err  # computed
    # another output folder: nothing there, but the same model and settings were run
    assert _code([*args, "--out", str(tmp_path / "second")]) == 0
    err = capsys.readouterr().err
    assert f"{slide.name}: reused the cached result of the same model and settings" in err
    assert "--force or --no-cache recomputes" in err
    assert _code([*args, "--out", str(tmp_path / "third"), "--no-cache"]) == 0
    assert "reused" not in capsys.readouterr().err
