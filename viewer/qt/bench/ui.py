"""``slidelens bench ui``: is the window still smooth while a whole-slide model job runs?

Measured in one run on one slide and model:

* ``headless_patches_per_s``: the engine alone on the whole slide (no window), from its
  first batch to its last (model loading and the tissue mask are left out);
* ``patches_per_s``: the same job started from the viewer's Analysis menu while a
  scripted pan and zoom tour runs, over the same span;
* ``stall_p99_ms`` / ``stall_max_ms``: lateness of a 5 ms heartbeat timer on the GUI
  thread during that tour (the time the window could not respond).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import numpy as np

from viewer.app import create_app
from viewer.qt.bench.viewer import _Heartbeat, _tour, _wait_until
from viewer.qt.main_window import MainWindow
from viewer.runtime import tune_for_interaction
from viewer.settings import Settings


@dataclass(frozen=True)
class UiBenchConfig:
    slide: Path
    model: Path
    tour_seconds: float = 10.0
    batch_size: int = 32
    max_job_seconds: float = 60.0
    window_size: tuple[int, int] = (1600, 1000)


def headless_rate(config: UiBenchConfig) -> tuple[float, int]:
    """Patches per second of the engine alone, first batch to last, and patches done."""
    import threading

    from inference.engine.job import InferenceJob
    from inference.engine.runner import run

    cancel = threading.Event()
    job = InferenceJob(slide=config.slide, model=config.model, batch_size=config.batch_size)
    first: float | None = None
    done_at_first = 0
    done = 0
    last = time.perf_counter()
    for batch in run(job, cancel=cancel):
        last = time.perf_counter()
        if first is None:
            first, done_at_first = last, batch.done
        done = batch.done
        if last - first > config.max_job_seconds:
            cancel.set()
            break
    if first is None or done <= done_at_first or last <= first:
        return 0.0, done
    return (done - done_at_first) / (last - first), done


def run_ui_bench(config: UiBenchConfig, log: TextIO | None = None) -> dict[str, object]:
    def say(text: str) -> None:
        if log is not None:
            print(text, file=log, flush=True)

    app = create_app()
    say(f"headless run of {config.model.name} on {config.slide.name}…")
    headless, headless_done = headless_rate(config)
    say(f"headless: {headless:.1f} patches/s ({headless_done} patches)")

    # the cache would answer the GUI's job at once: measure a fresh run
    import tempfile

    with tempfile.TemporaryDirectory(prefix="slidelens-bench-ui-") as cache_dir:
        window = MainWindow(Settings())
        tune_for_interaction()
        window.analysis.jobs.cache_folder = Path(cache_dir)
        window.resize(*config.window_size)
        window.show()
        _wait_until(app, lambda: window.canvas.isVisible(), 5)
        window.open_path(config.slide)
        _wait_until(app, lambda: window.current is not None, 60)
        _wait_until(app, window.canvas.visible_tiles_ready, 30)
        # let the warm-up (importing torch on the worker) finish first, as it would
        # for a user who opened a slide and then reached for a model
        _wait_until(app, window.analysis.worker.is_idle, 60)
        window.analysis.models_panel.batch_spin.setValue(config.batch_size)
        job_id = window.analysis.run_model(config.model, "slide")
        assert job_id is not None
        state = window.analysis.jobs.jobs[job_id]
        _wait_until(
            app,
            lambda: state.first_batch_at is not None or state.status in ("failed", "done"),
            120,
        )
        if state.status == "failed":
            raise RuntimeError(window.analysis.last_error or "the model job failed")
        start_done, start_t = state.done, time.perf_counter()
        heartbeat = _Heartbeat()
        heartbeat.start()
        steps = _tour(window, config.tour_seconds)
        heartbeat.stop()
        end_done, end_t = state.done, time.perf_counter()
        job_finished_in_tour = state.status == "done"
        if job_finished_in_tour and state.last_batch_at is not None:
            # measure up to the last batch, not to the end of the tour
            end_t = state.last_batch_at - time.monotonic() + time.perf_counter()
        lateness = np.asarray(heartbeat.lateness_ms[1:] or [0.0])
        window.analysis.jobs.cancel_all()
        _wait_until(app, window.analysis.worker.is_idle, 30)
        window.close()

    rate = (end_done - start_done) / (end_t - start_t) if end_t > start_t else 0.0
    result: dict[str, object] = {
        "slide": str(config.slide),
        "model": str(config.model),
        "batch_size": config.batch_size,
        "tour_seconds": config.tour_seconds,
        "tour_steps": steps,
        "heartbeats": int(lateness.size),
        "stall_p50_ms": round(float(np.percentile(lateness, 50)), 2),
        "stall_p99_ms": round(float(np.percentile(lateness, 99)), 2),
        "stall_max_ms": round(float(lateness.max()), 2),
        "patches_during_tour": end_done - start_done,
        "job_finished_during_tour": job_finished_in_tour,
        "patches_per_s": round(rate, 1),
        "headless_patches_per_s": round(headless, 1),
        "job_rate_ratio": round(rate / headless, 3) if headless > 0 else None,
    }
    return result
