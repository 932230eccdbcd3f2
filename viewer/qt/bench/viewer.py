"""The viewer benchmark: every figure measured in the same run, ratios against raw OpenSlide."""

from __future__ import annotations

import random
import resource
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import numpy as np
import openslide
from PySide6.QtCore import QElapsedTimer, QEventLoop, Qt, QTimer
from PySide6.QtWidgets import QApplication

from inference.core.geometry import TileGrid
from inference.slides import SlideSource, open_slide
from viewer.app import create_app
from viewer.qt.canvas.adjusted_tiles import AdjustedTiles
from viewer.qt.canvas.tile_bridge import DecodedTile
from viewer.qt.main_window import MainWindow
from viewer.runtime import tune_for_interaction
from viewer.settings import Settings
from viewer.tiles.adjustment import NEUTRAL, DisplayAdjustment
from viewer.tiles.cache import TileCache
from viewer.tiles.keys import TileKey
from viewer.tiles.planner import TILE_SIZE
from viewer.tiles.scheduler import TileScheduler

HEARTBEAT_MS = 5


@dataclass(frozen=True)
class ViewerBenchConfig:
    slide: Path
    threads: int = 2
    n_tiles: int = 1500
    tour_seconds: float = 10.0
    cache_mb: int = 512
    window_size: tuple[int, int] = (1600, 1000)
    #: The display adjustment in effect for the whole run (tour and tile pipeline).
    adjustment: DisplayAdjustment = NEUTRAL


#: What the bench switches to after the tour to time a change of the adjustment.
_CHANGE_TO = DisplayAdjustment(brightness=0.05, contrast=1.3, gamma=0.85)


def _level0_tiles(source: SlideSource, n_tiles: int) -> list[tuple[int, int, int, int]]:
    """Up to ``n_tiles`` level-0 tiles from the slide's centre outwards, each read once."""
    l0_w, l0_h = source.info.dimensions
    grid = TileGrid(l0_w, l0_h, TILE_SIZE)
    tiles = [(c, r) for r in range(grid.t_rows) for c in range(grid.t_cols)]
    cx, cy = grid.t_cols / 2, grid.t_rows / 2
    tiles.sort(key=lambda t: (t[0] - cx) ** 2 + (t[1] - cy) ** 2)
    return [grid.tile_lv_rect(c, r) for c, r in tiles[:n_tiles]]


def _raw_rate(slide: Path, tiles: list[tuple[int, int, int, int]], threads: int) -> float:
    """The ceiling: OpenSlide's own ``read_region`` of the tiles on ``threads`` threads.

    A fresh handle each time, so neither side profits from the other's OpenSlide cache.
    Plain images (which OpenSlide can't open) use our source's ``read_region``.
    """
    read: Callable[[tuple[int, int, int, int]], object]
    try:
        handle = openslide.OpenSlide(str(slide))
    except openslide.OpenSlideError:
        source = open_slide(slide)
        read = lambda t: source.read_region(0, *t)  # noqa: E731
        close = source.close
    else:
        read = lambda t: handle.read_region((t[0], t[1]), 0, (t[2], t[3]))  # noqa: E731
        close = handle.close
    try:
        start = time.perf_counter()
        with ThreadPoolExecutor(threads) as pool:
            for _ in pool.map(read, tiles):
                pass
        return len(tiles) / (time.perf_counter() - start)
    finally:
        close()


def _pipeline_rate(slide: Path, tiles: list[tuple[int, int, int, int]], threads: int) -> float:
    """The viewer's path: scheduler + reader pool + QImage conversion + byte-bounded cache."""
    source = open_slide(slide)
    cache = TileCache(4096 * 2**20)
    done = threading.Event()
    remaining = [len(tiles)]
    lock = threading.Lock()

    def load(key: TileKey) -> tuple[object, int]:
        lv_x, lv_y = key.t_col * TILE_SIZE, key.t_row * TILE_SIZE
        l0_w, l0_h = source.info.dimensions
        w, h = min(TILE_SIZE, l0_w - lv_x), min(TILE_SIZE, l0_h - lv_y)
        tile = DecodedTile(source.read_region_bgrx(0, lv_x, lv_y, w, h))
        return tile, tile.nbytes

    def loaded(key: TileKey) -> None:
        with lock:
            remaining[0] -= 1
            if remaining[0] == 0:
                done.set()

    scheduler = TileScheduler(
        cache, load, n_readers=threads, on_loaded=loaded, on_failed=lambda k, e: loaded(k)
    )
    keys = [
        TileKey(source.info.source_id, 0, x // TILE_SIZE, y // TILE_SIZE) for x, y, _, _ in tiles
    ]
    try:
        start = time.perf_counter()
        scheduler.request(keys)
        done.wait(300)
        return len(tiles) / (time.perf_counter() - start)
    finally:
        scheduler.shutdown()
        source.close()


def _wait_until(app: QApplication, predicate: object, timeout: float) -> bool:
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        app.processEvents()
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.001)
    return False


class _Heartbeat:
    """A 5 ms precise timer; its lateness is how long the GUI thread was busy."""

    def __init__(self) -> None:
        self.timer = QTimer()
        self.timer.setTimerType(Qt.TimerType.PreciseTimer)
        self.timer.setInterval(HEARTBEAT_MS)
        self.timer.timeout.connect(self._beat)
        self.clock = QElapsedTimer()
        self.lateness_ms: list[float] = []
        self._last = 0.0

    def start(self) -> None:
        self.clock.start()
        self._last = 0.0
        self.timer.start()

    def _beat(self) -> None:
        now = self.clock.nsecsElapsed() / 1e6
        self.lateness_ms.append(max(0.0, now - self._last - HEARTBEAT_MS))
        self._last = now

    def stop(self) -> None:
        self.timer.stop()


def _tour(window: MainWindow, seconds: float, seed: int = 7) -> int:
    """Pan and zoom like a pathologist for ``seconds``: drags, wheel zooms, jumps.

    One step every 16 ms (the rate a mouse drag delivers moves at; pans by whole
    pixels, as a mouse on a standard-density screen reports them), from a timer in the
    application's own event loop, so the window works as it does for a user: it sleeps
    between events, and the heartbeat measures how late it answers.
    """
    viewport = window.canvas.viewport
    rng = random.Random(seed)
    steps = 0
    direction = (1.0, 0.0)
    carry = (0.0, 0.0)
    loop = QEventLoop()
    start = time.perf_counter()

    def step() -> None:
        nonlocal steps, direction, carry
        if time.perf_counter() - start >= seconds:
            loop.quit()
            return
        phase = steps % 240
        if phase == 0:
            l0_w, l0_h = viewport.l0_size
            viewport.center_on(rng.uniform(0.2, 0.8) * l0_w, rng.uniform(0.2, 0.8) * l0_h)
            viewport.set_scale(viewport.fit_scale() * rng.choice([2.0, 4.0, 8.0]))
            angle = rng.uniform(0, 2 * np.pi)
            direction = (float(np.cos(angle)), float(np.sin(angle)))
        elif phase % 60 == 30:
            scr_w, scr_h = viewport.scr_size
            factor = rng.choice([1.25**2, 1.25**-2, 1.25**3])
            viewport.zoom_by(factor, (rng.uniform(0, scr_w), rng.uniform(0, scr_h)))
        else:
            # a mouse reports whole pixels: move by those, carrying the remainder
            want_x, want_y = direction[0] * 14 + carry[0], direction[1] * 14 + carry[1]
            scr_dx, scr_dy = round(want_x), round(want_y)
            carry = (want_x - scr_dx, want_y - scr_dy)
            viewport.pan_by_scr(scr_dx, scr_dy)
        steps += 1

    timer = QTimer()
    timer.setTimerType(Qt.TimerType.PreciseTimer)
    timer.setInterval(16)
    timer.timeout.connect(step)
    timer.start()
    loop.exec()
    timer.stop()
    return steps


def _rss_mb() -> tuple[float, float]:
    current = 0.0
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                current = int(line.split()[1]) / 1024
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return current, peak


def run_viewer_bench(config: ViewerBenchConfig, log: TextIO | None = None) -> dict[str, object]:
    """Run every measurement and return the figures as one JSON-able dict."""

    def say(text: str) -> None:
        if log is not None:
            print(text, file=log, flush=True)

    app = create_app()
    tune_for_interaction()
    probe = open_slide(config.slide)
    info = probe.info
    tiles = _level0_tiles(probe, config.n_tiles)
    probe.close()
    say(f"{config.slide.name}: {info.dimensions[0]} x {info.dimensions[1]}, {len(tiles)} tiles")
    # the viewer alone: torch is not loaded (bench ui measures the window with models)
    settings = Settings(tile_cache_mb=config.cache_mb, preload_models=False)
    window = MainWindow(settings)
    tune_for_interaction()  # again: freezes what the window holds
    window.resize(*config.window_size)
    window.show()
    _wait_until(app, lambda: window.canvas.isVisible(), 5)
    paints_before = window.canvas.paint_count
    start = time.perf_counter()
    window.open_path(config.slide)
    _wait_until(app, lambda: window.current is not None, 30)
    window.display.model.set(config.adjustment)  # a new slide starts as scanned
    _wait_until(app, lambda: window.canvas.paint_count > paints_before, 30)
    first_coarse = time.perf_counter() - start
    _wait_until(app, window.canvas.visible_tiles_ready, 30)
    painted = window.canvas.paint_count
    _wait_until(app, lambda: window.canvas.paint_count > painted, 5)
    first_sharp = time.perf_counter() - start
    say(f"first coarse frame {first_coarse:.3f} s, sharp {first_sharp:.3f} s")

    heartbeat = _Heartbeat()
    heartbeat.start()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    steps = _tour(window, config.tour_seconds)
    tour_cores = (time.process_time() - cpu0) / (time.perf_counter() - wall0)
    heartbeat.stop()
    lateness = np.asarray(heartbeat.lateness_ms[1:] or [0.0])
    change_ms, change_reads = _change_adjustment(app, window, config.adjustment)
    say(f"changing the adjustment: repaint {change_ms:.1f} ms, {change_reads} tiles read")
    rss, peak = _rss_mb()
    paints = window.canvas.paint_count
    stats = window.bridge.scheduler.stats
    loaded, dropped = stats.loaded, stats.dropped_stale
    cache_used_mb = window.bridge.cache.nbytes / 2**20
    window.close()
    # throughput last, so its own caches and handles do not count in the viewer's RSS
    raw_rates: list[float] = []
    pipe_rates: list[float] = []
    spent = time.perf_counter()
    while len(raw_rates) < 3 or (time.perf_counter() - spent < 6.0 and len(raw_rates) < 15):
        # alternate, so drift in the machine's load hits both sides alike
        raw_rates.append(_raw_rate(config.slide, tiles, config.threads))
        pipe_rates.append(_pipeline_rate(config.slide, tiles, config.threads))
    raw, pipeline = float(np.median(raw_rates)), float(np.median(pipe_rates))
    say(f"raw {raw:.0f} tiles/s, pipeline {pipeline:.0f} tiles/s")
    shown = _CHANGE_TO if config.adjustment.is_identity else config.adjustment
    read_ms, adjust_ms = _adjust_cost_ms(config.slide, tiles[:300], shown)
    say(f"a tile through the display adjustment: {adjust_ms:.3f} ms (read: {read_ms:.2f} ms)")

    result: dict[str, object] = {
        "slide": str(config.slide),
        "slide_dimensions": list(info.dimensions),
        "threads": config.threads,
        "tiles_measured": len(tiles),
        "throughput_rounds": len(raw_rates),
        "raw_tiles_per_s": round(raw, 1),
        "pipeline_tiles_per_s": round(pipeline, 1),
        "reader_ratio": round(pipeline / raw, 3),
        # what the GUI thread spends on a tile under a display adjustment (once per
        # tile and adjustment), against reading and decoding it, measured alike
        "adjust_tile_ms": round(adjust_ms, 4),
        "read_tile_ms": round(read_ms, 3),
        "adjust_vs_read_ratio": round(adjust_ms / read_ms, 4),
        "first_coarse_frame_s": round(first_coarse, 3),
        "first_sharp_frame_s": round(first_sharp, 3),
        "pan_stall_p99_ms": round(float(np.percentile(lateness, 99)), 2),
        "pan_stall_max_ms": round(float(lateness.max()), 2),
        "pan_stall_p50_ms": round(float(np.percentile(lateness, 50)), 2),
        "heartbeats": int(lateness.size),
        "tour_steps": steps,
        "tour_seconds": config.tour_seconds,
        # CPU the whole viewer used during the tour (GUI thread plus tile readers), in cores
        "tour_cpu_cores": round(tour_cores, 2),
        "canvas_paints": paints,
        "tiles_loaded": loaded,
        "tiles_dropped_stale": dropped,
        "rss_mb": round(rss, 1),
        "peak_rss_mb": round(peak, 1),
        "cache_cap_mb": config.cache_mb,
        "cache_used_mb": round(cache_used_mb, 1),
        "display_adjustment": (
            None if config.adjustment.is_identity else config.adjustment.to_dict()
        ),
        # one change of the adjustment with the view settled: the repaint it costs the
        # GUI thread (every visible tile through the lookup table once) and the tiles
        # it read from the slide (none: decoded tiles are kept as read)
        "adjust_change_repaint_ms": round(change_ms, 2),
        "adjust_change_tiles_read": change_reads,
    }
    return result


def _adjust_cost_ms(
    slide: Path, tiles: list[tuple[int, int, int, int]], adjustment: DisplayAdjustment
) -> tuple[float, float]:
    """Median milliseconds to read and decode one level-0 tile, and to make its adjusted
    copy (as the canvas does when it paints it), one thread, over ``tiles``."""
    source = open_slide(slide)
    copies = AdjustedTiles(capacity_bytes=2**40)
    read: list[float] = []
    adjust: list[float] = []
    try:
        for n, (x, y, w, h) in enumerate(tiles):
            start = time.perf_counter()
            tile = DecodedTile(source.read_region_bgrx(0, x, y, w, h))
            mid = time.perf_counter()
            copies.image(TileKey("bench", 0, n, 0), tile, adjustment)
            read.append(mid - start)
            adjust.append(time.perf_counter() - mid)
    finally:
        source.close()
    return float(np.median(read)) * 1000, float(np.median(adjust)) * 1000


def _change_adjustment(
    app: QApplication, window: MainWindow, current: DisplayAdjustment
) -> tuple[float, int]:
    """Settle, then change the display adjustment and repaint once: the milliseconds of
    that repaint and the tiles read from the slide because of the change."""
    scheduler = window.bridge.scheduler
    _wait_until(app, window.canvas.visible_tiles_ready, 30)
    scheduler.wait_idle(30)
    app.processEvents()
    loaded = scheduler.stats.loaded
    target = NEUTRAL if current == _CHANGE_TO else _CHANGE_TO
    start = time.perf_counter()
    window.display.model.set(target)
    window.canvas.repaint()
    elapsed_ms = (time.perf_counter() - start) * 1000
    app.processEvents()
    scheduler.wait_idle(30)
    return elapsed_ms, scheduler.stats.loaded - loaded
