"""The one worker thread that owns the compute device.

Tasks (inference jobs, explanations) wait in a priority queue; explanations jump ahead
of bulk jobs.  Each task reports through queued signals, carrying its id, so the GUI
thread folds results in as they arrive and drops what belongs to a cancelled task.
The GUI never waits for this thread.

A task made for a slide is submitted with that slide's :class:`SlideTag`, and every
payload it emits carries the same tag: closing the slide cancels all its tasks
(:meth:`InferenceWorker.cancel_slide`), and a payload already on its way when that
happens is recognised and dropped by the GUI-side handler.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from PySide6.QtCore import QObject, QThread, Signal

from viewer.runtime import lower_this_thread_priority

log = logging.getLogger(__name__)

#: Priorities: lower runs first.
PRIORITY_EXPLAIN = 0
PRIORITY_VIEW = 10
PRIORITY_SLIDE = 20


@dataclass(frozen=True)
class SlideTag:
    """Which slide, and which opening of it, a task or payload was made for.

    ``source_id`` is the slide's content fingerprint (``SlideInfo.source_id``);
    ``opening`` tells apart two openings of the same file (close it and open it again:
    what the first opening asked for is not the second's).
    """

    source_id: str
    opening: int = 0


class TaskRefused(Exception):
    """A task met input it cannot work on (a region too big, a class the model lacks):
    the user gets the message, the log one line at info level.  Any other exception is
    a fault: the user gets its message too, the log its traceback at error level."""


#: ``run(cancel, emit)``: do the work, call ``emit(payload)`` for each partial result,
#: return when done; check ``cancel.is_set()`` between steps.
TaskBody = Callable[[threading.Event, Callable[[object], None]], None]


@dataclass(order=True)
class _Queued:
    priority: int
    sequence: int
    task_id: int = field(compare=False)
    body: TaskBody = field(compare=False)
    cancel: threading.Event = field(compare=False)
    label: str = field(compare=False, default="")
    slide: SlideTag | None = field(compare=False, default=None)


class InferenceWorker(QObject):
    """Runs tasks one at a time on its own QThread, most urgent first.

    Signals (delivered on the GUI thread): ``started(task_id, label)``,
    ``partial(task_id, payload)``, ``finished(task_id, cancelled)``,
    ``failed(task_id, message)``.  An exception in a task becomes ``failed``; the
    worker keeps running (a :class:`TaskRefused` is logged without a traceback).
    """

    started = Signal(int, str)
    partial = Signal(int, object)
    finished = Signal(int, bool)
    failed = Signal(int, str)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._queue: list[_Queued] = []
        self._cond = threading.Condition()
        self._ids = itertools.count(1)
        self._sequence = itertools.count()
        #: Running tasks, outermost first (a job that let urgent tasks run between two
        #: of its batches stays here under them, see :meth:`run_urgent`).
        self._running: list[_Queued] = []
        self._stopping = False
        self._thread_object: threading.Thread | None = None
        self._thread = _WorkerThread(self._loop)
        self._thread.setObjectName("slidelens-inference")
        self._thread.start()

    def submit(
        self,
        body: TaskBody,
        *,
        priority: int = PRIORITY_SLIDE,
        label: str = "",
        slide: SlideTag | None = None,
    ) -> int:
        """Queue a task; returns its id at once.  ``slide``: the slide it works for
        (:meth:`cancel_slide` cancels it with the slide's other tasks)."""
        task_id = next(self._ids)
        item = _Queued(
            priority, next(self._sequence), task_id, body, threading.Event(), label, slide
        )
        with self._cond:
            if self._stopping:
                raise RuntimeError("the inference worker has stopped")
            heapq.heappush(self._queue, item)
            self._cond.notify()
        return task_id

    @property
    def _current(self) -> _Queued | None:
        """The task running now (the innermost, when a job let urgent ones run)."""
        return self._running[-1] if self._running else None

    def cancel(self, task_id: int) -> None:
        """Cancel a queued task (it never starts) or a running one (stops at its next check)."""
        with self._cond:
            for item in [*self._queue, *self._running]:
                if item.task_id == task_id:
                    item.cancel.set()

    def cancel_slide(self, slide: SlideTag) -> list[int]:
        """Cancel every queued and running task submitted for ``slide``; returns their ids.
        Each still reports ``finished(task_id, True)``."""
        with self._cond:
            items = [item for item in [*self._queue, *self._running] if item.slide == slide]
            for item in items:
                item.cancel.set()
        return [item.task_id for item in items]

    def cancel_all(self) -> None:
        with self._cond:
            for item in [*self._queue, *self._running]:
                item.cancel.set()

    def pending(self) -> list[tuple[int, str]]:
        """``(task_id, label)`` of the running tasks (innermost first), then the queued
        ones in order."""
        with self._cond:
            items = sorted(self._queue)
            running = list(reversed(self._running))
        return [(i.task_id, i.label) for i in running + items]

    def run_urgent(self) -> int:
        """Run, now and on this (the worker's) thread, every queued task more urgent than
        the running one; returns how many ran.

        A long task calls this between its steps (a model job between batches), so a
        click's explanation does not wait for a whole-slide job to finish: the job
        pauses, the explanation runs, the job goes on.  Called from any other thread, or
        with nothing more urgent queued, it does nothing.
        """
        if threading.current_thread() is not self._thread_object:
            return 0
        ran = 0
        while True:
            with self._cond:
                outer = self._current
                if outer is None or not self._queue or self._queue[0].priority >= outer.priority:
                    return ran
                item = heapq.heappop(self._queue)
                self._running.append(item)
            try:
                self._run_one(item)
            finally:
                with self._cond:
                    self._running.remove(item)
            ran += 1

    def is_idle(self) -> bool:
        with self._cond:
            return not self._running and not self._queue

    def stop(self, timeout_ms: int = 10_000) -> None:
        """Cancel everything and join the thread."""
        with self._cond:
            self._stopping = True
            for item in [*self._queue, *self._running]:
                item.cancel.set()
            self._cond.notify_all()
        self._thread.wait(timeout_ms)

    def _loop(self) -> None:
        self._thread_object = threading.current_thread()
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._queue or self._stopping)
                if self._stopping:
                    return
                item = heapq.heappop(self._queue)
                self._running.append(item)
            try:
                self._run_one(item)
            finally:
                with self._cond:
                    self._running.remove(item)

    def _run_one(self, item: _Queued) -> None:
        if item.cancel.is_set():
            self.finished.emit(item.task_id, True)
            return
        self.started.emit(item.task_id, item.label)

        def emit(payload: object) -> None:
            if not item.cancel.is_set():
                self.partial.emit(item.task_id, payload)

        try:
            item.body(item.cancel, emit)
        except TaskRefused as exc:  # bad input is normal input: no traceback
            log.info("task %s (%s) refused: %s", item.task_id, item.label, exc)
            self.failed.emit(item.task_id, str(exc) or type(exc).__name__)
            return
        except Exception as exc:  # every failure reaches the user, none kills the worker
            log.error("task %s (%s) failed:\n%s", item.task_id, item.label, traceback.format_exc())
            self.failed.emit(item.task_id, str(exc) or type(exc).__name__)
            return
        self.finished.emit(item.task_id, item.cancel.is_set())


#: How much nicer than the GUI the worker (and every thread it starts) runs.
WORKER_NICENESS = 10


class _WorkerThread(QThread):
    """A QThread running one Python callable (exceptions are the callable's business)."""

    def __init__(self, target: Callable[[], Any]) -> None:
        super().__init__()
        self._target = target

    def run(self) -> None:
        # The GUI thread must win the two cores whenever it needs them: a model job is
        # allowed to be a little slower, a pan is not allowed to stutter.
        if not lower_this_thread_priority(WORKER_NICENESS):
            self.setPriority(QThread.Priority.LowPriority)
        try:
            self._target()
        except Exception:  # the loop catches per task; this guards the loop itself
            log.exception("inference worker loop crashed")
