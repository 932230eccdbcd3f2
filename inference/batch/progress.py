"""The state of each slide of a batch, and the batch's figures (done, patches/s, time left).

Contract: plain values, no Dask, no threads.  A :class:`SlideState` moves
``queued -> running -> done | failed`` (``running`` may repeat: a retry or a rescheduled
task), or is ``skipped`` (its results were already there), or ``cancelled`` (the batch
stopped first).  :func:`batch_figures` computes what the progress bar and the viewer
show from the states and the seconds since the first slide was sent.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from inference.batch.inputs import BatchItem

QUEUED, RUNNING, DONE, SKIPPED, FAILED, CANCELLED = (
    "queued",
    "running",
    "done",
    "skipped",
    "failed",
    "cancelled",
)
#: States a slide does not leave.
FINAL = frozenset({DONE, SKIPPED, FAILED, CANCELLED})


@dataclass
class SlideState:
    """One slide of a batch run: where it is, and what came of it.

    ``done`` / ``total`` are patches of the current attempt; ``attempts`` counts the
    times a worker started it; ``counts`` and ``outputs`` come from its record once it
    is done or skipped; ``message`` is the error of a failed slide.
    """

    item: BatchItem
    status: str = QUEUED
    message: str = ""
    seconds: float | None = None
    attempts: int = 0
    worker: str = ""
    done: int = 0
    total: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    outputs: dict[str, float] = field(default_factory=dict)
    folder: Path | None = None

    @property
    def name(self) -> str:
        return self.item.name

    @property
    def finished(self) -> bool:
        return self.status in FINAL

    def fraction(self) -> float:
        """How much of this slide is done, 0 to 1 (patches of a running slide)."""
        if self.finished:
            return 1.0
        if self.status == RUNNING and self.total:
            return min(1.0, self.done / self.total)
        return 0.0


@dataclass(frozen=True)
class BatchFigures:
    """What a progress display shows.  ``slides_left`` counts slides this run still has
    to finish; ``eta_s`` is ``None`` until something has been measured."""

    total: int
    done: int
    skipped: int
    failed: int
    cancelled: int
    running: int
    patches: int
    patches_per_s: float
    elapsed_s: float
    eta_s: float | None

    @property
    def finished(self) -> int:
        return self.done + self.skipped + self.failed + self.cancelled

    @property
    def slides_left(self) -> int:
        return self.total - self.finished


def batch_figures(states: Iterable[SlideState], elapsed_s: float) -> BatchFigures:
    """The figures of a batch ``elapsed_s`` seconds after its first slide was sent.

    Patches count the computed patches of slides finished in this run plus those done so
    far on running slides.  Time left scales the time spent by the share of this run's
    slides still to do (a running slide counts by its patches).
    """
    states = list(states)
    count = {s: sum(st.status == s for st in states) for s in (*FINAL, RUNNING)}
    this_run = [st for st in states if st.status != SKIPPED]
    patches = sum(
        st.counts.get("computed", 0) if st.status == DONE else st.done
        for st in this_run
        if st.status in (DONE, RUNNING)
    )
    progress = sum(st.fraction() for st in this_run)
    left = len(this_run) - progress
    eta = elapsed_s * left / progress if progress > 0 and elapsed_s > 0 else None
    return BatchFigures(
        total=len(states),
        done=count[DONE],
        skipped=count[SKIPPED],
        failed=count[FAILED],
        cancelled=count[CANCELLED],
        running=count[RUNNING],
        patches=patches,
        patches_per_s=patches / elapsed_s if elapsed_s > 0 else 0.0,
        elapsed_s=elapsed_s,
        eta_s=0.0 if left <= 0 else eta,
    )


def format_duration(seconds: float | None) -> str:
    """``1:02:03``, ``2:03`` or ``--:--`` for unknown."""
    if seconds is None:
        return "--:--"
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
