"""Status-bar widget for model runs: the running job's progress, time left, queue and
cancel.  The time left comes from the job's :class:`~inference.core.eta.RemainingTime`
(recent throughput, shown once stable) and counts down every second between batches."""

from __future__ import annotations

import qtawesome as qta
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QToolButton, QWidget

from viewer.qt.controllers.inference_jobs import InferenceJobs

#: How often the label counts the time left down while a job runs.
TICK_MS = 1000


def format_eta(seconds: float | None) -> str:
    """``m:ss left`` (``h:mm:ss left``), or "estimating…" while there is no estimate."""
    if seconds is None:
        return "estimating…"
    seconds = round(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d} left"
    return f"{seconds // 60}:{seconds % 60:02d} left"


class JobStatus(QWidget):
    """Hidden while nothing runs; otherwise ``label [progress] (cancel)``."""

    def __init__(self, jobs: InferenceJobs, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.jobs = jobs
        self.label = QLabel()
        self.bar = QProgressBar()
        self.bar.setMaximumWidth(180)
        self.bar.setTextVisible(True)
        self.cancel_button = QToolButton()
        self.cancel_button.setIcon(qta.icon("fa5s.stop-circle", color="#c0392b"))
        self.cancel_button.setToolTip("Cancel the running model job (the queue stays)")
        self.cancel_button.clicked.connect(self.cancel_current)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.label)
        layout.addWidget(self.bar)
        layout.addWidget(self.cancel_button)
        self._tick = QTimer(self)
        self._tick.setInterval(TICK_MS)
        self._tick.timeout.connect(self.refresh)
        jobs.changed.connect(self.refresh)
        self.refresh()

    def cancel_current(self) -> None:
        active = self.jobs.active()
        if active:
            self.jobs.cancel(active[0].job_id)

    def refresh(self) -> None:
        active = self.jobs.active()
        if not active:
            self._tick.stop()
            self.hide()
            return
        if not self._tick.isActive():
            self._tick.start()
        current = active[0]
        queued = len(active) - 1
        text = current.spec.label
        if current.status == "queued":
            text += ": waiting"
        elif current.total == 0:
            text += ": preparing"
        else:
            text += f": {current.done:,} / {current.total:,} patches, {format_eta(current.eta_s())}"
        if queued:
            text += f"  (+{queued} queued)"
        self.label.setText(text)
        self.bar.setRange(0, max(1, current.total))
        self.bar.setValue(current.done)
        self.show()
