"""The job status bar's time left: from the recent throughput, shown once stable, and
counting down between batches."""

from __future__ import annotations

import time
from pathlib import Path

from pytestqt.qtbot import QtBot

from viewer.qt.controllers.inference_jobs import JobState
from viewer.qt.controllers.job_bodies import JobSpec
from viewer.qt.main_window import MainWindow
from viewer.qt.panels.job_status import format_eta


def _running_job(window: MainWindow) -> JobState:
    spec = JobSpec(Path("slide.tiff"), "abc", Path("demo-model"), "slide", None)
    state = JobState(job_id=10_000, spec=spec, status="running")
    window.analysis.jobs.jobs[state.job_id] = state
    return state


def test_the_time_left_waits_for_a_stable_rate(qtbot: QtBot, window: MainWindow) -> None:
    status = window.analysis.job_status
    state = _running_job(window)
    start = time.monotonic() - 2.0
    # the patches on screen came first and fast: 11 % in two seconds; averaging since
    # the start would promise the rest in about 16 s
    state.total = 1000
    for i in range(1, 5):
        state.done = 110 * i // 4
        state.remaining.update(state.done, state.total, start + 0.5 * i)
    status.refresh()
    assert status.isVisible()
    assert "110 / 1,000 patches, estimating…" in status.label.text()

    # then a steady 10 patches per second: an estimate appears, and it is right
    now = start + 2.0
    for _ in range(20):
        now += 1.0
        state.done += 10
        state.remaining.update(state.done, state.total, now)
    left = state.eta_s(now)
    assert left is not None
    assert abs(left - (state.total - state.done) / 10) < 5.0
    window.analysis.jobs.jobs.pop(state.job_id)


def test_the_label_counts_down_between_batches(qtbot: QtBot, window: MainWindow) -> None:
    status = window.analysis.job_status
    state = _running_job(window)
    state.total = 2000
    now = time.monotonic() - 30.0
    for i in range(1, 31):
        state.done = 10 * i
        state.remaining.update(state.done, state.total, now + i)
    status.refresh()
    first = status.label.text()
    assert "left" in first, first
    # no batch arrives; the status bar's own tick moves the label on
    qtbot.waitUntil(lambda: status.label.text() != first, timeout=3000)
    assert "left" in status.label.text()
    window.analysis.jobs.jobs.pop(state.job_id)
    window.analysis.jobs.changed.emit()
    assert not status.isVisible()


def test_format_eta() -> None:
    assert format_eta(None) == "estimating…"
    assert format_eta(75.4) == "1:15 left"
    assert format_eta(3725) == "1:02:05 left"
