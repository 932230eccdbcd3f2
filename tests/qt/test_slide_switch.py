"""Switching slides while the worker is busy: nothing asked for the previous slide reaches
the next one.  Every payload carries the slide (and opening) it was made for, closing a
slide cancels its queued tasks, and the GUI-side handlers drop payloads for any other."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pytestqt.qtbot import QtBot

from inference.engine.patches import PatchGrid
from inference.results.store import ResultGrid
from tests.qt.qt_helpers import TIMEOUT_MS, open_slide_in
from tests.qt.test_ai_layers import _heatmaps, _wait_job, tiny_model  # noqa: F401
from viewer.layers.base import LayerStack
from viewer.qt.controllers.explain_tasks import ExplainOutcome
from viewer.qt.controllers.inference_jobs import InferenceJobs
from viewer.qt.controllers.job_bodies import CachedPayload
from viewer.qt.inference_worker import InferenceWorker, SlideTag
from viewer.qt.main_window import MainWindow


def _block(worker: InferenceWorker) -> tuple[threading.Event, int]:
    """Occupy the worker (as loading torch does at start-up) until the event is set."""
    gate = threading.Event()

    def body(cancel: threading.Event, emit: Callable[[object], None]) -> None:
        gate.wait(60)

    return gate, worker.submit(body, priority=-100, label="busy")


def _running(worker: InferenceWorker, task_id: int) -> Callable[[], bool]:
    return lambda: bool(worker.pending()) and worker.pending()[0][0] == task_id


@pytest.fixture
def plain_slide(tmp_path: Path) -> Path:
    """Another slide: a plain image with a stained block."""
    image = np.full((600, 800, 3), 235, np.uint8)
    image[150:450, 200:600] = (190, 110, 160)
    path = tmp_path / "other.png"
    Image.fromarray(image).save(path)
    return path


def test_a_cache_restore_queued_for_one_slide_never_shows_on_the_next(
    qtbot: QtBot,
    window: MainWindow,
    synthetic_slide: Path,
    plain_slide: Path,
    tiny_model: Path,  # noqa: F811
) -> None:
    # slide A gets a cached result
    open_slide_in(qtbot, window, synthetic_slide)
    _wait_job(qtbot, window, window.analysis.run_model(tiny_model, "view"))
    window.close_slide()
    worker = window.analysis.worker
    gate, blocker = _block(worker)
    try:
        qtbot.waitUntil(_running(worker, blocker), timeout=60_000)
        open_slide_in(qtbot, window, synthetic_slide)  # A again: its restore waits
        assert window.analysis.jobs._restore_tasks
        open_slide_in(qtbot, window, plain_slide)  # B, at once
    finally:
        gate.set()
    qtbot.waitUntil(worker.is_idle, timeout=TIMEOUT_MS)
    qtbot.wait(200)  # let every queued signal arrive
    assert window.current is not None and window.current.path == plain_slide
    assert _heatmaps(window) == []


@pytest.fixture
def jobs(qtbot: QtBot) -> Iterator[tuple[InferenceJobs, LayerStack, threading.Event]]:
    worker = InferenceWorker()
    layers = LayerStack()
    gate, _ = _block(worker)
    yield InferenceJobs(worker, layers), layers, gate
    gate.set()
    worker.stop()


def _result() -> ResultGrid:
    return ResultGrid(PatchGrid(256, 256, (0, 0), 3, 2), ("benign", "tumour"))


def test_the_gui_side_handler_drops_a_payload_made_for_another_slide(
    jobs: tuple[InferenceJobs, LayerStack, threading.Event],
) -> None:
    inference_jobs, layers, _gate = jobs
    slide_a, slide_b = SlideTag("source-a", 1), SlideTag("source-b", 2)
    inference_jobs.set_slide(slide_b)
    task_id = inference_jobs.restore_cached(slide_b)  # queued behind the busy worker
    meta = {"model": "demo", "scope": "slide"}
    inference_jobs._on_partial(task_id, CachedPayload(slide_a, _result(), meta))
    assert list(layers) == []
    # an earlier opening of the open slide is another slide too
    inference_jobs._on_partial(task_id, CachedPayload(SlideTag("source-b", 1), _result(), meta))
    assert list(layers) == []
    inference_jobs._on_partial(task_id, CachedPayload(slide_b, _result(), meta))
    # "(cached)" is no part of the name, which titles the legend (the panel shows it)
    assert [layer.name for layer in layers] == ["demo on the whole slide"]


def test_closing_a_slide_cancels_every_task_queued_for_it(
    jobs: tuple[InferenceJobs, LayerStack, threading.Event],
) -> None:
    inference_jobs, _layers, _gate = jobs
    worker = inference_jobs.worker
    slide_a, slide_b = SlideTag("source-a", 1), SlideTag("source-b", 2)
    inference_jobs.set_slide(slide_a)
    restore_a = inference_jobs.restore_cached(slide_a)
    other = worker.submit(lambda cancel, emit: None, label="explain A", slide=slide_a)
    inference_jobs.set_slide(slide_b)
    restore_b = inference_jobs.restore_cached(slide_b)
    cancelled = {item.task_id for item in worker._queue if item.cancel.is_set()}
    assert {restore_a, other} <= cancelled
    assert restore_b not in cancelled


def test_an_explanation_for_another_slide_or_an_earlier_click_is_dropped(
    qtbot: QtBot, window: MainWindow, plain_slide: Path
) -> None:
    open_slide_in(qtbot, window, plain_slide)
    explain = window.explain
    assert window.current is not None
    here = window.current.tag
    pixels = np.zeros((4, 4, 3), np.uint8)

    def outcome(slide: SlideTag, request_id: int) -> ExplainOutcome:
        cam = object()  # never looked at when the outcome is dropped
        return ExplainOutcome(cam, pixels, pixels, "here", 0, slide, request_id)  # type: ignore[arg-type]

    explain._tasks[9999] = f"cam:0:{explain.request_id}"
    shown: list[object] = []
    explain.cam_ready.connect(shown.append)
    latest = explain.request_id
    explain._on_partial(9999, outcome(SlideTag("another-slide", here.opening), latest))
    explain._on_partial(9999, outcome(SlideTag(here.source_id, here.opening - 1), latest))
    explain._on_partial(9999, outcome(here, latest - 1))
    assert shown == [] and explain.outcomes == {}
