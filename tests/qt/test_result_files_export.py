"""Analysis > Export result files: a result on screen written as ``slidelens infer``
writes it (CSV, QuPath GeoJSON, heatmap TIFF with a page per class and the class map,
slide report), beside the slide; what is not a finished model result is refused."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import tifffile
from pytestqt.qtbot import QtBot

from inference.results.slide_report import read_slide_report
from tests.helpers.models import model_folder
from tests.qt.qt_helpers import TIMEOUT_MS, answer_save_dialogs, open_slide_in
from viewer.layers.heatmap import HeatmapLayer
from viewer.qt.main_window import MainWindow

SIX = ("background", "stroma", "benign", "gleason3", "gleason4", "gleason5")


def _finished(qtbot: QtBot, window: MainWindow) -> list[object]:
    done: list[object] = []
    window.analysis.result_files.finished.connect(done.append)
    return done


def test_a_six_class_result_is_written_as_infer_writes_it(
    qtbot: QtBot,
    window: MainWindow,
    synthetic_slide: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    folder = model_folder(tmp_path / "six", class_names=SIX, patch=64, spacing=2.0)
    open_slide_in(qtbot, window, synthetic_slide)
    job_id = window.analysis.run_model(folder, "slide")
    assert job_id is not None
    jobs = window.analysis.jobs
    qtbot.waitUntil(lambda: jobs.jobs[job_id].status == "done", timeout=120_000)
    layer = jobs.jobs[job_id].layer
    assert isinstance(layer, HeatmapLayer)
    window.analysis.layers_panel.select(layer)
    out = tmp_path / "out"
    out.mkdir()
    opened_at = answer_save_dialogs(monkeypatch, out / "biopsy.six.geojson")
    done = _finished(qtbot, window)
    window.analysis.result_files.choose()
    qtbot.waitUntil(lambda: bool(done), timeout=TIMEOUT_MS)
    assert opened_at == [str(synthetic_slide.parent / "synthetic.six.geojson")]
    (paths,) = done
    assert isinstance(paths, list)
    names = sorted(Path(p).name for p in paths)
    assert names == sorted(
        f"biopsy.six{s}" for s in (".csv", ".geojson", ".heatmap.tiff", ".slide.json")
    )

    result = layer.result
    computed = int(np.isfinite(result.probabilities()).all(axis=0).sum())
    with (out / "biopsy.six.csv").open() as handle:
        rows = list(csv.reader(handle))
    assert rows[0][4:] == [f"prob_{n}" for n in SIX] and len(rows) - 1 == computed
    features = json.loads((out / "biopsy.six.geojson").read_text())["features"]
    assert len(features) == computed
    assert features[0]["properties"]["classification"]["name"] in SIX
    with tifffile.TiffFile(out / "biopsy.six.heatmap.tiff") as tif:
        page_names = {str(p.tags["PageName"].value) for p in tif.pages if "PageName" in p.tags}  # type: ignore[union-attr]
    assert {"class_map", *(f"prob_{n}" for n in SIX)} <= page_names
    report = read_slide_report(out / "biopsy.six.slide.json")
    assert report["class_names"] == list(SIX) and report["cells"] == computed
    assert report["slide"] == synthetic_slide.name


def test_only_a_finished_model_result_is_exported(
    qtbot: QtBot, window: MainWindow, synthetic_slide: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from PySide6.QtWidgets import QFileDialog

    asked: list[object] = []
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a: asked.append(a) or ("", ""))
    open_slide_in(qtbot, window, synthetic_slide)
    window.analysis.show_tissue()
    qtbot.waitUntil(
        lambda: window.analysis.layers_panel.selected_layer() is not None, timeout=TIMEOUT_MS
    )
    window.analysis.result_files.choose()
    assert asked == []
    assert "Choose a model's result" in (window.analysis.result_files.last_error or "")


def test_a_cancelled_runs_part_of_a_result_is_not_exported(
    qtbot: QtBot,
    window: MainWindow,
    synthetic_slide: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    folder = model_folder(tmp_path / "six", class_names=SIX, patch=64, spacing=2.0)
    asked = answer_save_dialogs(monkeypatch, tmp_path / "part.geojson")
    open_slide_in(qtbot, window, synthetic_slide)
    jobs = window.analysis.jobs
    job_id = window.analysis.run_model(folder, "slide")
    assert job_id is not None
    qtbot.waitUntil(lambda: bool(jobs.jobs[job_id].layers), timeout=120_000)
    jobs.cancel(job_id)
    qtbot.waitUntil(lambda: jobs.jobs[job_id].status != "running", timeout=TIMEOUT_MS)
    state = jobs.jobs[job_id]
    if state.status == "done":
        pytest.skip("the run ended before it could be cancelled")
    layer = state.layer
    assert isinstance(layer, HeatmapLayer) and layer.progress is None
    window.analysis.layers_panel.select(layer)
    window.analysis.result_files.choose()
    assert asked == [] and not (tmp_path / "part.geojson").exists()
    assert "only part of a result" in (window.analysis.result_files.last_error or "")
