"""Runs a project's batch (``inference.batch``, Dask) on a background thread.

Contract: :meth:`ProjectRuns.start` starts one :class:`~inference.batch.runner.BatchRun`
on a thread of its own and returns its run id at once; the run's updates arrive on the
GUI thread as ``update(BatchUpdate)`` (each carrying its run id) and its end as
``finished(run_id, outcome, message)`` (``outcome`` ``None`` and ``message`` saying why
when the batch could not start).  The Dask workers are processes, so the window stays
responsive while slides compute.  :meth:`ProjectRuns.stop` asks the run to stop (Dask
cancels what is left, the local cluster closes); one run at a time.
"""

from __future__ import annotations

import logging
import threading

from PySide6.QtCore import QObject, Signal

from inference.batch.cluster import ClusterRequest
from inference.batch.runner import BatchRequest, BatchRun, BatchSetupError

log = logging.getLogger(__name__)


class ProjectRuns(QObject):
    """One batch at a time, off the GUI thread (see the module docstring)."""

    update = Signal(object)  # BatchUpdate
    finished = Signal(str, object, str)  # run id, BatchOutcome | None, message

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._thread: threading.Thread | None = None
        self._cancel = threading.Event()
        self._busy = False
        self.run_id: str | None = None
        self.finished.connect(self._on_finished)  # first: the owner's slots see it idle

    @property
    def running(self) -> bool:
        """From :meth:`start` until ``finished`` has reached the GUI thread."""
        return self._busy

    def _on_finished(self, run_id: str, *_: object) -> None:
        if run_id == self.run_id:
            self._busy = False

    def start(self, request: BatchRequest, cluster: ClusterRequest) -> str:
        """Start ``request`` on ``cluster``; its run id.  ``RuntimeError`` while another
        run is going."""
        if self.running:
            raise RuntimeError("a batch is already running; stop it first")
        self._cancel = threading.Event()
        self._busy = True
        run = BatchRun(request, cluster=cluster, listener=self.update.emit, cancel=self._cancel)
        self.run_id = run.run_id
        self._thread = threading.Thread(
            target=self._work, args=(run,), name="slidelens-project-batch", daemon=True
        )
        self._thread.start()
        return run.run_id

    def stop(self) -> None:
        """Ask the running batch to stop; finished slides stay done."""
        self._cancel.set()

    def wait(self, timeout: float = 60.0) -> bool:
        """Join the run's thread; whether it ended."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
            return not thread.is_alive()
        return True

    def _work(self, run: BatchRun) -> None:
        try:
            outcome = run.run()
        except BatchSetupError as exc:
            self.finished.emit(run.run_id, None, str(exc))
        except Exception as exc:  # a bug or an unexpected library error: still a message
            log.exception("project batch %s failed", run.run_id)
            self.finished.emit(run.run_id, None, f"unexpected {type(exc).__name__}: {exc}")
        else:
            self.finished.emit(run.run_id, outcome, "")
