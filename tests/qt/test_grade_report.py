"""The grade and class areas in the Slide report panel, offscreen: the bundled prostate
grader on a whole synthetic biopsy slide gives the grade ``slidelens infer`` gives (and the
slide's truth), its pattern buttons move the view into their regions, every layer and
figure carries the grade; views are not graded, stale answers are dropped, another slide
clears the panel and reopening restores the grade from the cache."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pytestqt.qtbot import QtBot

from inference.cli.main import main as cli_main
from inference.models import load_card
from inference.models.demo.cards import GRADER_NAME
from inference.models.registry import bundled_models_dir
from inference.results.class_map import ClassMap
from inference.results.grading import GradingSpec
from inference.results.slide_report import slide_report
from inference.results.store import InferenceResult
from tests.helpers.figures import result_grid
from tests.qt.qt_helpers import TIMEOUT_MS, open_slide_in
from tests.qt.test_ai_layers import JOB_TIMEOUT_MS
from viewer.export.scene import FigureOptions
from viewer.grade_provenance import PROVENANCE_KEY, SUMMARY_KEYS
from viewer.qt.controllers.class_report import SECTION_PREFIX, ClassReportOutcome
from viewer.qt.controllers.inference_jobs import ReadyResult
from viewer.qt.main_window import MainWindow
from viewer.qt.panels.grade_section import NO_AREA, GradeSection, area_text

GRADER = bundled_models_dir() / GRADER_NAME
#: A 3 x 1 mm biopsy at 1 um/px of a seed no training used: truth ISUP 2 (Gleason 3+4).
SEED = 9110
COMPARED = ("isup_grade", "gleason_score", "class_area_mm2", "class_fraction", "tumour_fraction")


@pytest.fixture(scope="module")
def prostate_slide(tmp_path_factory: pytest.TempPathFactory) -> Path:
    slide = tmp_path_factory.mktemp("prostate") / "biopsy.tiff"
    argv = ["synth", str(slide), "--kind", "prostate", "--seed", str(SEED)]
    assert cli_main([*argv, "--width", "3072", "--height", "1024", "--mpp", "1.0"]) == 0
    return slide


def _truth(slide: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(slide.with_name(f"{slide.stem}.truth.json").read_text())
    return doc


def _run_whole_slide(
    qtbot: QtBot, window: MainWindow, readies: list[ReadyResult]
) -> tuple[ClassReportOutcome, InferenceResult]:
    window.analysis.jobs.result_ready.connect(readies.append)
    with qtbot.waitSignal(window.class_report.shown, timeout=JOB_TIMEOUT_MS) as blocker:
        job_id = window.analysis.run_model(GRADER, "slide")
        assert job_id is not None
    outcome: ClassReportOutcome = blocker.args[0]
    result = window.analysis.jobs.jobs[job_id].result
    assert result is not None
    return outcome, result


def _expected(result: InferenceResult, slide: Path, mpp: float | None) -> dict[str, Any]:
    """What ``slidelens infer`` writes as ``<stem>.slide.json`` for this result."""
    card = load_card(GRADER)
    return slide_report(
        result,
        mpp=mpp,
        grading=GradingSpec.from_card(card),
        threshold=card.threshold,
        slide=slide.name,
    )


def test_the_whole_slide_grade_is_shown_goes_to_regions_and_reaches_figures(
    qtbot: QtBot, window: MainWindow, prostate_slide: Path, tmp_path: Path
) -> None:
    open_slide_in(qtbot, window, prostate_slide)
    readies: list[ReadyResult] = []
    outcome, result = _run_whole_slide(qtbot, window, readies)
    expected = _expected(result, prostate_slide, 1.0)
    assert outcome.model == GRADER_NAME and outcome.problem == ""
    for key in COMPARED:
        assert outcome.report[key] == expected[key], key
    truth = _truth(prostate_slide)
    assert (expected["isup_grade"], expected["gleason_score"]) == (2, "3+4")
    assert (truth["isup_grade"], truth["gleason_score"]) == (2, "3+4")

    controller = window.class_report
    section = controller.sections[GRADER_NAME]
    box = window.slide_level.panel.section(SECTION_PREFIX + GRADER_NAME)
    assert box is not None and box.title() == f"Grade: {GRADER_NAME}"
    assert section.grade_text.text() == "ISUP grade group 2"
    assert section.gleason_text.text() == "Gleason 3+4 = 7"
    assert section.tumour_text.text().startswith(
        f"Tumour: {100 * expected['tumour_fraction']:.1f} % of the tissue"
    )
    assert "whole slide" in section.caption_text.text()
    assert "gleason-isup" in section.note_text.text()
    assert "NOT FOR DIAGNOSIS" in section.warning_text.text()
    for name in result.class_names:
        row = section.rows[name]
        assert row.area.text() == area_text(expected["class_area_mm2"][name]) != NO_AREA
        assert row.share.text() == f"{100 * expected['class_fraction'][name]:.1f} %"
    assert section.area_hint.isHidden()

    # each pattern's button centres the view inside its largest region; none without one
    cmap = ClassMap.from_result(result)
    assert not section.go_buttons["gleason5"].isEnabled()  # no pattern 5 on this slide
    for name in ("gleason3", "gleason4"):
        index = result.class_names.index(name)
        window.canvas.viewport.center_on(10.0, 10.0)
        section.go_buttons[name].click()
        cx, cy = window.canvas.viewport.l0_center
        hit = cmap.class_at(cx, cy)
        assert hit is not None and hit[0] == index, name
        x, y, w, h = expected["largest_region"][name]["l0_rect"]
        assert x <= cx <= x + w and y <= cy <= y + h

    # every layer of the result carries the grade, and so does a figure of the view
    assert readies and readies[-1].result is result
    for layer in readies[-1].layers:
        summary = layer.provenance[PROVENANCE_KEY]
        assert set(summary) == set(SUMMARY_KEYS)
        assert summary["isup_grade"] == 2 and summary["gleason_score"] == "3+4"
        assert summary["mpp"] == 1.0
    exports = window.exports
    figure = tmp_path / "view.png"
    with qtbot.waitSignal(exports.finished, timeout=TIMEOUT_MS):
        exports.write(exports.view_compositor(FigureOptions(), 1.0), figure)
    assert exports.last_error is None
    sidecar = json.loads(figure.with_name("view.png.json").read_text())
    graded = [
        layer["provenance"][PROVENANCE_KEY]
        for layer in sidecar["layers"]
        if PROVENANCE_KEY in layer["provenance"]
    ]
    assert graded and all(g["gleason_score"] == "3+4" for g in graded)
    assert graded[0]["class_area_mm2"] == expected["class_area_mm2"]

    # without a pixel size the same table has no areas, and says why
    bare = GradeSection(_expected(result, prostate_slide, None), model=GRADER_NAME)
    qtbot.addWidget(bare)
    assert {row.area.text() for row in bare.rows.values()} == {NO_AREA}
    assert "no pixel size" in bare.area_hint.text() and not bare.area_hint.isHidden()
    assert bare.grade_text.text() == "ISUP grade group 2"


def test_views_are_not_graded_another_slide_clears_and_reopening_restores(
    qtbot: QtBot, window: MainWindow, prostate_slide: Path, synthetic_slide: Path
) -> None:
    open_slide_in(qtbot, window, prostate_slide)
    controller, panel = window.class_report, window.slide_level.panel
    with qtbot.waitSignal(controller.message, timeout=JOB_TIMEOUT_MS) as blocker:
        job_id = window.analysis.run_model(GRADER, "view")
        assert job_id is not None
    assert "whole-slide run" in blocker.args[0]
    assert window.analysis.jobs.jobs[job_id].status == "done"
    assert controller.sections == {} and panel.section(SECTION_PREFIX + GRADER_NAME) is None

    _run_whole_slide(qtbot, window, [])
    assert list(controller.sections) == [GRADER_NAME]

    open_slide_in(qtbot, window, synthetic_slide)
    assert controller.sections == {} and panel.section(SECTION_PREFIX + GRADER_NAME) is None

    # the whole-slide result comes back from the cache, graded again
    with qtbot.waitSignal(controller.shown, timeout=JOB_TIMEOUT_MS) as blocker:
        window.open_path(prostate_slide)
    restored: ClassReportOutcome = blocker.args[0]
    assert restored.report["isup_grade"] == 2
    assert "from the result cache" in controller.sections[GRADER_NAME].caption_text.text()
    assert panel.sections.count() == 1  # one section per model, never stacked


def test_stale_answers_are_dropped_and_a_broken_card_gives_areas_without_grade(
    qtbot: QtBot, window: MainWindow, prostate_slide: Path, tmp_path: Path
) -> None:
    open_slide_in(qtbot, window, prostate_slide)
    readies: list[ReadyResult] = []
    first, _result = _run_whole_slide(qtbot, window, readies)
    controller = window.class_report
    shown: list[ClassReportOutcome] = []
    controller.shown.connect(shown.append)

    # two requests at once: only the newer one's answer is shown
    older, newer = controller.request(GRADER_NAME), controller.request(GRADER_NAME)
    assert first.request_id < older < newer
    qtbot.waitUntil(lambda: bool(shown), timeout=TIMEOUT_MS)
    controller.calls.wait()
    qtbot.wait(50)
    assert [o.request_id for o in shown] == [newer]

    # an answer for a slide closed meanwhile is dropped
    shown.clear()
    assert controller.request(GRADER_NAME) > newer
    window.close_slide()
    controller.calls.wait()
    qtbot.wait(50)
    assert shown == [] and controller.sections == {}

    # a card that cannot be read: the class areas, no grade, and a message saying why
    open_slide_in(qtbot, window, prostate_slide)
    qtbot.waitUntil(lambda: bool(controller.sections), timeout=JOB_TIMEOUT_MS)  # restored
    broken = tmp_path / "broken-grader"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    ready = readies[-1]
    assert window.current is not None
    provenance = {**ready.provenance, "model": "broken-grader", "model_folder": str(broken)}
    with (
        qtbot.waitSignal(controller.shown, timeout=TIMEOUT_MS) as blocker,
        qtbot.waitSignal(controller.message, timeout=TIMEOUT_MS) as said,
    ):
        window.analysis.jobs.result_ready.emit(
            ReadyResult(window.current.tag, ready.result, provenance, ready.layers)
        )
    outcome: ClassReportOutcome = blocker.args[0]
    assert outcome.report["isup_grade"] is None and outcome.report["class_area_mm2"]["stroma"]
    assert "config.json" in outcome.problem and "config.json" in said.args[0]
    section = controller.sections["broken-grader"]
    assert not section.graded and section.grade_text.isHidden()
    assert "could not be read" in section.note_text.text()
    box = window.slide_level.panel.section(SECTION_PREFIX + "broken-grader")
    assert box is not None and box.title() == "Class areas: broken-grader"


def test_a_slide_without_tumour_is_grade_group_zero(qtbot: QtBot) -> None:
    result = result_grid(np.full((4, 6), 0.1), 256)  # benign everywhere
    report = slide_report(result, mpp=0.5, grading=GradingSpec({"tumour": 3}))
    section = GradeSection(report, model="two-class", warning="NOT FOR DIAGNOSIS")
    qtbot.addWidget(section)
    assert section.grade_text.text() == "ISUP grade group 0"
    assert section.gleason_text.text() == "no tumour"
    assert not section.go_buttons["tumour"].isEnabled()
    assert section.go_buttons["benign"].isEnabled()
    emitted: list[object] = []
    section.go_to.connect(emitted.append)
    section.go_buttons["benign"].click()
    (rect,) = emitted
    assert isinstance(rect, tuple) and len(rect) == 4
    assert section.rows["benign"].share.text() == "100.0 %"
