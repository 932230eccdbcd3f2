"""What the Explain panel shows and carries: the explained patch or region outlined on the
slide, progress that names what it counts, a colour scale and the colours' range in
words, a clean panel for a new slide, a new second method explained at once, and a
region too big refused without a traceback in the log."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from pytestqt.qtbot import QtBot

from inference.core.geometry import Rect
from tests.helpers.models import model_folder
from tests.qt.qt_helpers import TIMEOUT_MS, grab, open_slide_in
from tests.qt.test_ai_layers import JOB_TIMEOUT_MS
from tests.qt.test_explain_tool import _choose, _choose_model
from viewer.qt.canvas.marks import MARK_COLOUR, Mark
from viewer.qt.controllers.explain import HINT, ExplainOutcome
from viewer.qt.controllers.explain_tasks import CamProgress
from viewer.qt.main_window import MainWindow
from viewer.qt.panels.explain import colour_range_text


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """64 px patches at 1 µm/px: 128 level-0 px on the 0.5 µm/px synthetic slide."""
    return model_folder(tmp_path_factory.mktemp("explain-panel") / "tiny-cnn", seed=5)


@pytest.fixture
def ready(qtbot: QtBot, window: MainWindow, synthetic_slide: Path, tiny_model: Path) -> MainWindow:
    open_slide_in(qtbot, window, synthetic_slide)
    _choose_model(qtbot, window, tiny_model)
    _choose(window.explain.panel.method_combo, "gradcam")
    _choose(window.explain.panel.beside_combo, None)
    window.overview.hide()
    return window


def _explain(qtbot: QtBot, window: MainWindow, *, point=None, region=None) -> ExplainOutcome:  # type: ignore[no-untyped-def]
    explain = window.explain
    with qtbot.waitSignal(explain.cam_ready, timeout=JOB_TIMEOUT_MS) as blocker:
        if point is not None:
            explain.explain_point(*point)
        else:
            explain.explain_region(region)
    outcome: ExplainOutcome = blocker.args[0]
    return outcome


def _outline_pixels(window: MainWindow) -> int:
    rgb = grab(window).astype(int)
    target = np.array([MARK_COLOUR.red(), MARK_COLOUR.green(), MARK_COLOUR.blue()])
    return int((np.abs(rgb - target).max(axis=2) <= 12).sum())


def test_the_explained_patch_is_outlined_while_the_panel_shows_it(
    qtbot: QtBot, ready: MainWindow
) -> None:
    window, explain = ready, ready.explain
    canvas = window.canvas
    canvas.viewport.set_scale(0.5)
    canvas.viewport.center_on(2000, 1500)
    qtbot.waitUntil(canvas.visible_tiles_ready, timeout=TIMEOUT_MS)
    assert explain.marks.marks == () and _outline_pixels(window) < 20

    explain.explain_point(2000, 1500)
    assert explain.marks.marks == (Mark(Rect(2000, 1500, 0, 0), pending=True),)
    qtbot.waitUntil(lambda: 0 in explain.outcomes, timeout=JOB_TIMEOUT_MS)
    cam = explain.outcomes[0].cam
    x, y, w, h = (float(v) for v in cam.patch_l0_rects[0])
    assert (w, h) == (128, 128) and x <= 2000 < x + w and y <= 1500 < y + h
    assert explain.marks.marks == (Mark(Rect(x, y, w, h)),)
    # on screen: a yellow square of 64 screen px at scale 0.5 around the clicked point
    qtbot.waitUntil(lambda: _outline_pixels(window) > 4 * 50, timeout=TIMEOUT_MS)

    # a region: its rectangle, dashed while it is being made
    region = Rect(1500, 1200, 700, 500)
    explain.explain_region(region)
    assert explain.marks.marks == (Mark(region, pending=True),)
    qtbot.waitUntil(lambda: 0 in explain.outcomes, timeout=JOB_TIMEOUT_MS)
    assert explain.marks.marks == (Mark(region),)

    # another slide (here: none) takes the outline away
    window.close_slide()
    assert explain.marks.marks == ()


def test_progress_names_what_it_counts_and_the_colours_have_a_scale(
    qtbot: QtBot, ready: MainWindow
) -> None:
    window, explain = ready, ready.explain
    seen: list[CamProgress] = []
    window.analysis.worker.partial.connect(
        lambda _id, payload: seen.append(payload) if isinstance(payload, CamProgress) else None
    )
    region = Rect(1400, 1000, 900, 700)
    outcome = _explain(qtbot, window, region=region)
    cam = outcome.cam
    patches = cam.provenance["geometry"]["patches"]
    assert patches > 1
    # every report after planning says how many patches: the count the CLI reports
    assert seen and {p.patches for p in seen} == {patches}
    assert seen[-1].done == seen[-1].total == 2 * patches  # Grad-CAM: score + CAM pass
    shown = explain.panel.progress.format()
    assert shown == f"Explaining {patches} patches: %v / %m passes", shown

    view = explain.panel.views[0]
    assert view.scale.isVisible()
    assert view.scale.high.text() == f"{cam.vmax:.3g}" and view.scale.low.text() == "0"
    details = view.details.text()
    assert f"Explained: {patches} patches" in details
    assert (
        f"Colours span 0 to {cam.vmax:.3g} of the raw map, shared across the region's "
        f"{patches} patches (its 99th percentile)"
    ) in details

    # a single patch says so
    _explain(qtbot, window, point=(2000, 1500))
    assert "Explained: 1 patch<br>" in view.details.text()


@pytest.mark.parametrize(
    ("kind", "norm", "expected"),
    [
        (
            "region",
            {"kind": "shared-percentile", "percentile": 99.0, "vmax": 0.0221},
            "colours span 0 to 0.0221 of the raw map, shared across the region's 12 "
            "patches (its 99th percentile)",
        ),
        (
            "patch",
            {"kind": "shared-percentile", "percentile": 99.0, "vmax": 3.5},
            "colours span 0 to 3.5 of this patch's raw map (its 99th percentile)",
        ),
        (
            "patch",
            {"kind": "fixed", "vmax": 2.0},
            "colours span 0 to 2 of this patch's raw map (a fixed top)",
        ),
        (
            "region",
            {"percentile": 99.0, "vmax": 0.5, "note": "percentile was 0; used the maximum"},
            "colours span 0 to 0.5 of the raw map, shared across the region's 12 patches "
            "(its maximum, as its 99th percentile is 0)",
        ),
        (
            "patch",
            {"vmax": 1.0, "note": "map is 0"},
            "the raw map is 0 everywhere: nothing to colour",
        ),
    ],
)
def test_the_colours_range_in_words(kind: str, norm: dict[str, object], expected: str) -> None:
    provenance = {"kind": kind, "normalisation": norm, "geometry": {"patches": 12}}
    assert colour_range_text(provenance) == expected


def test_a_new_slide_starts_with_a_clean_panel(
    qtbot: QtBot, ready: MainWindow, synthetic_slide: Path
) -> None:
    window, explain = ready, ready.explain
    _explain(qtbot, window, point=(2000, 1500))
    view = explain.panel.views[0]
    assert view.title() != "Explanation" and view.patch.pixmap() is not None
    assert not view.patch.pixmap().isNull()
    explain.explain_point(-50, -50)  # outside the slide: an error in the hint
    qtbot.waitUntil(lambda: explain.last_error is not None, timeout=JOB_TIMEOUT_MS)
    assert "outside the slide" in explain.panel.hint.text()

    window.close_slide()
    open_slide_in(qtbot, window, synthetic_slide)
    for view in explain.panel.views:
        assert view.title() == view.default_title
        assert view.patch.pixmap().isNull() and view.overlay.pixmap().isNull()
        assert view.details.text() == "" and not view.scale.isVisible()
        assert not view.pin_button.isEnabled()
    assert explain.panel.hint.text() == HINT
    assert not explain.panel.progress.isVisible()
    assert explain.outcomes == {} and explain.marks.marks == ()


def test_a_new_second_method_is_explained_at_once(qtbot: QtBot, ready: MainWindow) -> None:
    window, explain = ready, ready.explain
    first = _explain(qtbot, window, point=(2000, 1500))
    assert 1 not in explain.outcomes
    with qtbot.waitSignal(explain.cam_ready, timeout=JOB_TIMEOUT_MS) as blocker:
        _choose(explain.panel.beside_combo, "eigencam")
    beside: ExplainOutcome = blocker.args[0]
    assert beside.slot == 1 and beside.cam.provenance["method"] == "eigencam"
    assert beside.cam.l0_rect == first.cam.l0_rect  # the same patch
    assert explain.outcomes[0] is first  # the first explanation stays
    assert "Eigen-CAM" in explain.panel.views[1].title()

    # another, while that one is still being made: only the last one shows
    _choose(explain.panel.beside_combo, "gradcam++")
    _choose(explain.panel.beside_combo, "xgradcam")
    qtbot.waitUntil(
        lambda: (
            1 in explain.outcomes and explain.outcomes[1].cam.provenance["method"] == "xgradcam"
        ),
        timeout=JOB_TIMEOUT_MS,
    )
    qtbot.wait(300)
    assert explain.outcomes[1].cam.provenance["method"] == "xgradcam"

    _choose(explain.panel.beside_combo, None)
    assert 1 not in explain.outcomes
    assert explain.panel.views[1].details.text() == ""


def test_a_region_too_big_is_refused_without_a_traceback(
    qtbot: QtBot,
    window: MainWindow,
    synthetic_slide: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    small = model_folder(tmp_path / "small-patches", patch=32, seed=2)
    open_slide_in(qtbot, window, synthetic_slide)
    _choose_model(qtbot, window, small)
    explain = window.explain
    _choose(explain.panel.method_combo, "gradcam")
    caplog.set_level(logging.INFO)
    with qtbot.waitSignal(explain.failed, timeout=JOB_TIMEOUT_MS) as blocker:
        explain.explain_region(Rect(0, 0, 4096, 3072))
    message: str = blocker.args[0]
    assert "more than 2048 at once; explain a smaller region" in message
    assert message in explain.panel.hint.text()
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], [r.getMessage() for r in errors]
    assert any("refused" in r.getMessage() for r in caplog.records)
    assert explain.marks.marks == ()  # nothing explained: nothing outlined
